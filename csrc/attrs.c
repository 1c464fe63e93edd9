/* The remaining process and linux settings (attrs.h), applied by the container's processes.
 *
 * ocirun/attrs.py has checked and converted every value; what is left to fail here is what
 * only the kernel can refuse. Each failure is reported as one line naming the config field.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/magic.h>
#include <linux/openat2.h>

#include "attrs.h"

/* The new mount API, under names of our own: glibc's <sys/mount.h> and <linux/mount.h>
 * disagree about which of them defines what. */
#define OCI_FSOPEN_CLOEXEC 0x00000001
#define OCI_FSCONFIG_CMD_CREATE 6
#define OCI_FSMOUNT_CLOEXEC 0x00000001
#define OCI_MOUNT_ATTR_NOSUID 0x00000002
#define OCI_MOUNT_ATTR_NODEV 0x00000004
#define OCI_MOUNT_ATTR_NOEXEC 0x00000008
#define OCI_OPEN_TREE_CLONE 1
#define OCI_PROC_ROOT_INO 1
#define OCI_IOPRIO_WHO_PROCESS 1
#define OCI_IOPRIO_CLASS_SHIFT 13

/* struct sched_attr (SCHED_ATTR_SIZE_VER1), under a name glibc >= 2.41 doesn't also use. */
struct oci_sched_attr {
    unsigned int size;
    unsigned int sched_policy;
    unsigned long long sched_flags;
    int sched_nice;
    unsigned int sched_priority;
    unsigned long long sched_runtime;
    unsigned long long sched_deadline;
    unsigned long long sched_period;
    unsigned int sched_util_min;
    unsigned int sched_util_max;
};

const char *oci_errtext(int e)
{
    const char *text = strerrordesc_np(e);
    return text ? text : "unknown error";
}

/* Put one line in err: the formatted text, then ": errno's text" if errno is set.
 * Leaves errno 0 so that a caller's own reporting adds nothing. Returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, int errlen, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    if (!err || errlen <= 0) {
        errno = 0;
        return -1;
    }
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (saved && n >= 0 && n < errlen)
        snprintf(err + n, errlen - n, ": %s", oci_errtext(saved));
    errno = 0;
    return -1;
}

/* ---- linux.sysctl ------------------------------------------------------------------------ */

/* A procfs root the container can't redirect: a fresh instance that was never attached to
 * any mount tree (so nothing can be mounted over its files), or, where the kernel refuses one
 * (a user namespace with no fully visible procfs), a detached, non-recursive copy of the
 * container's own /proc mount (so none of the mounts on top of it come along), checked to be
 * a procfs root. Nothing of the container has run yet either way. A sysctl write lands in
 * the writer's namespaces whatever the procfs instance, so both are as good. */
static int private_proc(const char *field, char *err, int errlen)
{
    const char *step = "fsopen";
    int fs = syscall(SYS_fsopen, "proc", OCI_FSOPEN_CLOEXEC);
    if (fs >= 0) {
        int mnt = -1;
        step = "fsconfig";
        if (syscall(SYS_fsconfig, fs, OCI_FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0) {
            step = "fsmount";
            mnt = syscall(SYS_fsmount, fs, OCI_FSMOUNT_CLOEXEC,
                          OCI_MOUNT_ATTR_NOSUID | OCI_MOUNT_ATTR_NODEV | OCI_MOUNT_ATTR_NOEXEC);
        }
        int saved = errno;
        close(fs);
        errno = saved;
        if (mnt >= 0)
            return mnt;
    }
    int first = errno;

    int fd = syscall(SYS_open_tree, AT_FDCWD, "/proc", OCI_OPEN_TREE_CLONE | O_CLOEXEC);
    if (fd >= 0) {
        struct statfs sfs;
        struct stat st;
        if (fstatfs(fd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC && fstat(fd, &st) == 0 &&
            st.st_ino == OCI_PROC_ROOT_INO)
            return fd;
        close(fd);
    }
    errno = first;
    /* The kernel mounts a procfs in a user namespace only where one is fully visible already. */
    return fail(err, errlen, "%s: no procfs to write through%s: %s", field,
                first == EPERM ? " (with a user namespace, the container must mount /proc)" : "", step);
}

/* Write value to rel, a file of the procfs instance proc: no symlinks, no mount crossings,
 * nothing outside it. Returns 0, or -1 with errno and *step ("open" or "write"). */
static int write_proc(int proc, const char *rel, const char *value, const char **step)
{
    struct open_how how = {
        .flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    int fd;
    *step = "open";
    while ((fd = syscall(SYS_openat2, proc, rel, &how, sizeof how)) < 0 && errno == EAGAIN)
        ;
    if (fd < 0)
        return -1;
    *step = "write";
    size_t n = strlen(value);
    ssize_t w;
    while ((w = write(fd, value, n)) < 0 && errno == EINTR)
        ;
    int saved = w < 0 ? errno : EIO; /* a proc file takes a value whole or not at all */
    close(fd);
    if (w >= 0 && (size_t)w == n)
        return 0;
    errno = saved;
    return -1;
}

static int write_sysctl(int proc, const char *key, const char *path, const char *value, char *err, int errlen)
{
    char rel[4096];
    const char *step = "open";
    if (snprintf(rel, sizeof rel, "sys/%s", path) >= (int)sizeof rel)
        errno = ENAMETOOLONG;
    else if (write_proc(proc, rel, value, &step) == 0)
        return 0;
    return fail(err, errlen, "linux.sysctl: %s: %s", key, step);
}

static int apply_sysctls(const struct oci_attrs *a, char *err, int errlen)
{
    if (a->nsysctl <= 0)
        return 0;
    int proc = private_proc("linux.sysctl", err, errlen);
    if (proc < 0)
        return -1;
    for (int i = 0; i < a->nsysctl; i++) {
        if (write_sysctl(proc, a->sysctl_keys[i], a->sysctl_paths[i], a->sysctl_values[i], err, errlen) < 0) {
            close(proc);
            return -1;
        }
    }
    close(proc);
    return 0;
}

/* ---- the process settings ------------------------------------------------------------------ */

static int apply_mempolicy(const struct oci_attrs *a, char *err, int errlen)
{
    if (!a->set_mempolicy)
        return 0;
    /* The kernel reads maxnode - 1 bits. */
    unsigned long maxnode = 0;
    if (a->mpol_nodes && a->nmpol_nodes > 0)
        maxnode = (unsigned long)a->nmpol_nodes * 8 * sizeof(unsigned long) + 1;
    if (syscall(SYS_set_mempolicy, a->mpol_mode | (int)a->mpol_flags, maxnode ? a->mpol_nodes : NULL, maxnode) < 0)
        return fail(err, errlen, "linux.memoryPolicy: set_mempolicy");
    return 0;
}

static int apply_personality(const struct oci_attrs *a, char *err, int errlen)
{
    if (!a->set_personality)
        return 0;
    errno = 0;
    if (personality(a->personality) < 0 && errno)
        return fail(err, errlen, "linux.personality: personality");
    /* The kernel takes any value; read it back to be sure it is the one asked for. */
    int now = personality(0xffffffff);
    if (now < 0 || (unsigned long)(unsigned int)now != (a->personality & 0xffffffffUL)) {
        errno = EINVAL;
        return fail(err, errlen, "linux.personality: personality %#lx not taken", a->personality);
    }
    return 0;
}

static int apply_ioprio(const struct oci_attrs *a, char *err, int errlen)
{
    if (!a->set_ioprio)
        return 0;
    int prio = (a->ioprio_class << OCI_IOPRIO_CLASS_SHIFT) | a->ioprio_level;
    if (syscall(SYS_ioprio_set, OCI_IOPRIO_WHO_PROCESS, 0, prio) < 0)
        return fail(err, errlen, "process.ioPriority: ioprio_set");
    return 0;
}

static int apply_scheduler(const struct oci_attrs *a, char *err, int errlen)
{
    if (!a->set_scheduler)
        return 0;
    struct oci_sched_attr attr = {
        .size = sizeof attr,
        .sched_policy = a->sched_policy,
        .sched_flags = a->sched_flags,
        .sched_nice = a->sched_nice,
        .sched_priority = a->sched_priority,
        .sched_runtime = a->sched_runtime,
        .sched_deadline = a->sched_deadline,
        .sched_period = a->sched_period,
    };
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0) {
        /* With RT group scheduling (cgroup v1 cpu.rt_runtime_us), a new cgroup has no real-time
         * budget: say which field gives it one rather than a bare EPERM. */
        int rt = a->sched_policy == SCHED_FIFO || a->sched_policy == SCHED_RR;
        return fail(err, errlen, "process.scheduler: sched_setattr%s",
                    errno == EPERM && rt ? " (a real-time policy in a cgroup with no real-time budget "
                                           "needs linux.resources.cpu.realtimeRuntime)" : "");
    }
    return 0;
}

static int set_affinity(const unsigned long *mask, int words, const char *field, char *err, int errlen)
{
    if (!mask || words <= 0)
        return 0;
    if (syscall(SYS_sched_setaffinity, 0, (size_t)words * sizeof(unsigned long), mask) < 0)
        return fail(err, errlen, "%s: sched_setaffinity", field);
    return 0;
}

int oci_apply_initial_affinity(const struct oci_attrs *a, char *err, int errlen)
{
    if (!a)
        return 0;
    return set_affinity(a->cpus_initial, a->ncpus_initial, "process.execCPUAffinity.initial", err, errlen);
}

/* ---- process.apparmorProfile, process.selinuxLabel ------------------------------------- */

/* Both take effect at the next execve, through this process's attr files in a procfs the
 * container can't redirect (private_proc): AppArmor's own attr/apparmor/exec where the kernel
 * has it (it stacks with other LSMs), else the shared attr/exec, which SELinux uses too. */
static int apply_lsm(const struct oci_attrs *a, char *err, int errlen)
{
    if (!a->apparmor_profile && !a->selinux_label)
        return 0;
    const char *field = a->apparmor_profile ? "process.apparmorProfile" : "process.selinuxLabel";
    int proc = private_proc(field, err, errlen);
    if (proc < 0)
        return -1;
    char rel[64], value[4096];
    const char *step = "open";
    int r = 0, pid = getpid();
    if (a->apparmor_profile) {
        snprintf(value, sizeof value, "exec %s", a->apparmor_profile);
        snprintf(rel, sizeof rel, "%d/attr/apparmor/exec", pid);
        r = write_proc(proc, rel, value, &step);
        if (r < 0 && errno == ENOENT && strcmp(step, "open") == 0) {
            snprintf(rel, sizeof rel, "%d/attr/exec", pid);
            r = write_proc(proc, rel, value, &step);
        }
        if (r < 0)
            r = fail(err, errlen, "process.apparmorProfile: %s: %s %s", a->apparmor_profile, step, rel);
    }
    if (r == 0 && a->selinux_label) {
        snprintf(rel, sizeof rel, "%d/attr/exec", pid);
        if (write_proc(proc, rel, a->selinux_label, &step) < 0)
            r = fail(err, errlen, "process.selinuxLabel: %s: %s %s", a->selinux_label, step, rel);
    }
    close(proc);
    return r;
}

int oci_apply_attrs(const struct oci_attrs *a, char *err, int errlen)
{
    if (!a)
        return 0;
    /* Sysctls first, while we certainly hold CAP_SYS_ADMIN and CAP_NET_ADMIN here. The
     * scheduler goes last of the process settings: a real-time or idle policy should take
     * effect with as little of our own work as possible left to run under it. */
    if (apply_sysctls(a, err, errlen) < 0 || apply_mempolicy(a, err, errlen) < 0 ||
        apply_personality(a, err, errlen) < 0 || apply_ioprio(a, err, errlen) < 0 ||
        apply_lsm(a, err, errlen) < 0 ||
        set_affinity(a->cpus_final, a->ncpus_final, "process.execCPUAffinity.final", err, errlen) < 0 ||
        apply_scheduler(a, err, errlen) < 0)
        return -1;
    return 0;
}
