"""cffi build script (API mode, out of line): libseccomp bindings as ocirun._seccomp.

The seccomp filter of a container is compiled in the ocirun process (ocirun/seccomp.py) with
libseccomp into a classic-BPF program; the container init only hands that program to seccomp(2).
This module exposes the part of libseccomp's API that compilation needs, the notify API
(receive/respond, for tests and seccomp agents), and a few small C helpers:

  ocirun_export_bpf(ctx, &buf, &len)      the filter as struct sock_filter[], malloc'd (free())
  ocirun_seccomp_set_filter(prog, n, fl)  seccomp(SECCOMP_SET_MODE_FILTER, fl, {n, prog}):
                                          the listener fd with NEW_LISTENER, else 0; -errno
  ocirun_seccomp_flags_supported(fl)      0 when this kernel accepts these filter flags, -errno
  ocirun_seccomp_action_available(act)    0 when this kernel knows the SECCOMP_RET_* action

`python3 csrc/seccomp_build.py` builds the module in place (ocirun/_seccomp.*.so at the repo
root); setup.py builds it through its `cffi_modules` list.
"""
import os

from cffi import FFI

here = os.path.dirname(os.path.abspath(__file__))

CDEF = r"""
typedef void *scmp_filter_ctx;
typedef uint64_t scmp_datum_t;

enum scmp_compare {
    SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT,
    SCMP_CMP_MASKED_EQ, ...
};

struct scmp_arg_cmp {
    unsigned int arg;
    enum scmp_compare op;
    scmp_datum_t datum_a;
    scmp_datum_t datum_b;
};

enum scmp_filter_attr {
    SCMP_FLTATR_ACT_DEFAULT, SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP, SCMP_FLTATR_CTL_TSYNC,
    SCMP_FLTATR_API_TSKIP, SCMP_FLTATR_CTL_LOG, SCMP_FLTATR_CTL_SSB, SCMP_FLTATR_CTL_OPTIMIZE,
    SCMP_FLTATR_API_SYSRAWRC, ...
};

struct scmp_version {
    unsigned int major;
    unsigned int minor;
    unsigned int micro;
};

#define SCMP_ARCH_NATIVE ...
#define __NR_SCMP_ERROR ...

#define SCMP_ACT_KILL_PROCESS ...
#define SCMP_ACT_KILL_THREAD ...
#define SCMP_ACT_KILL ...
#define SCMP_ACT_TRAP ...
#define SCMP_ACT_NOTIFY ...
#define SCMP_ACT_LOG ...
#define SCMP_ACT_ALLOW ...
#define OCIRUN_ACT_ERRNO ...
#define OCIRUN_ACT_TRACE ...

#define SECCOMP_FILTER_FLAG_TSYNC ...
#define SECCOMP_FILTER_FLAG_LOG ...
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW ...
#define SECCOMP_FILTER_FLAG_NEW_LISTENER ...
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH ...
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ...
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE ...

const struct scmp_version *seccomp_version(void);
unsigned int seccomp_api_get(void);
int seccomp_api_set(unsigned int level);

scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);

uint32_t seccomp_arch_resolve_name(const char *arch_name);
uint32_t seccomp_arch_native(void);
int seccomp_arch_exist(const scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_remove(scmp_filter_ctx ctx, uint32_t arch_token);

int seccomp_attr_get(const scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t *value);
int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);

int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
char *seccomp_syscall_resolve_num_arch(uint32_t arch_token, int num);

int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);

int seccomp_export_pfc(const scmp_filter_ctx ctx, int fd);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);

struct seccomp_data {
    int nr;
    uint32_t arch;
    uint64_t instruction_pointer;
    unsigned long long args[6];  /* __u64: unsigned long long on every Linux ABI */
};
struct seccomp_notif {
    uint64_t id;
    uint32_t pid;
    uint32_t flags;
    struct seccomp_data data;
};
struct seccomp_notif_resp {
    uint64_t id;
    int64_t val;
    int32_t error;
    uint32_t flags;
};
int seccomp_notify_alloc(struct seccomp_notif **req, struct seccomp_notif_resp **resp);
void seccomp_notify_free(struct seccomp_notif *req, struct seccomp_notif_resp *resp);
int seccomp_notify_receive(int fd, struct seccomp_notif *req);
int seccomp_notify_respond(int fd, struct seccomp_notif_resp *resp);
int seccomp_notify_id_valid(int fd, uint64_t id);

void free(void *ptr);

int ocirun_export_bpf(scmp_filter_ctx ctx, void **buf, size_t *len);
int ocirun_seccomp_set_filter(const void *prog, unsigned int ninsns, unsigned int flags);
int ocirun_seccomp_flags_supported(unsigned int flags);
int ocirun_seccomp_action_available(uint32_t action);
"""

SOURCE = r"""
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

/* Fallbacks for older kernel headers; the values are the kernel ABI. */
#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC (1UL << 0)
#endif
#ifndef SECCOMP_FILTER_FLAG_LOG
#define SECCOMP_FILTER_FLAG_LOG (1UL << 1)
#endif
#ifndef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif
#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif

/* SCMP_ACT_ERRNO(x) and SCMP_ACT_TRACE(x) are function-like macros: the action bits alone,
 * to be or'ed with the 16-bit data in Python. */
#define OCIRUN_ACT_ERRNO SCMP_ACT_ERRNO(0)
#define OCIRUN_ACT_TRACE SCMP_ACT_TRACE(0)

/* The compiled filter as a malloc'd struct sock_filter array (the caller free()s *buf). */
static int ocirun_export_bpf(scmp_filter_ctx ctx, void **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 6)
    size_t n = 0;
    int rc = seccomp_export_bpf_mem(ctx, NULL, &n);
    if (rc < 0)
        return rc;
    void *p = malloc(n ? n : 1);
    if (!p)
        return -ENOMEM;
    rc = seccomp_export_bpf_mem(ctx, p, &n);
    if (rc < 0) {
        free(p);
        return rc;
    }
    *buf = p;
    *len = n;
    return 0;
#else
    /* libseccomp < 2.6 only exports to an fd: a memfd, read back. */
    int fd = (int)syscall(SYS_memfd_create, "ocirun-seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    size_t n = (size_t)st.st_size;
    char *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            free(p);
            close(fd);
            return rc;
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = p;
    *len = n;
    return 0;
#endif
}

/* Install a compiled program on the calling thread: what the container init does. */
static int ocirun_seccomp_set_filter(const void *prog, unsigned int ninsns, unsigned int flags)
{
    struct sock_fprog fprog = {
        .len = (unsigned short)ninsns,
        .filter = (struct sock_filter *)prog,
    };
    if (ninsns == 0 || ninsns > 0xffff)
        return -EINVAL;
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
    return rc < 0 ? -errno : (int)rc;
}

/* Whether this kernel takes these SECCOMP_SET_MODE_FILTER flags. The kernel checks the flags
 * before it reads the program, so a NULL program gets EFAULT for good flags and EINVAL for bad
 * ones, and installs nothing. */
static int ocirun_seccomp_flags_supported(unsigned int flags)
{
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL);
    if (rc == 0)  /* cannot happen with a NULL program */
        return 0;
    return errno == EFAULT ? 0 : -errno;
}

static int ocirun_seccomp_action_available(uint32_t action)
{
    long rc = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
    return rc < 0 ? -errno : 0;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "ocirun._seccomp",
    SOURCE,
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Werror=implicit-function-declaration"],
)

if __name__ == "__main__":
    # Build in place: ocirun/_seccomp.c and ocirun/_seccomp.*.so under the repo root, so
    # `import ocirun._seccomp` works from a checkout.
    ffibuilder.compile(tmpdir=os.path.dirname(here), verbose=True)
