/* The container's processes never run the host's interpreter (issue 19, the CVE-2019-5736
 * class).
 *
 * The init and an exec'd process are raw clones of ocirun, a Python process: until their last
 * execve their /proc/self/exe is the host's python binary. A container that runs
 * `/proc/self/exe` (as its args[0], through `exec`, or as a `#!/proc/self/exe` interpreter)
 * would get the kernel to execute that host file inside the container, with a loader of the
 * image's own (the ELF interpreter is looked up in the container's root), holding a handle
 * to a binary every later ocirun runs as root.
 *
 * runc executes itself from a sealed memfd copy. ocirun needs no copy: a process may point its
 * mm's exe file at another file once nothing maps the old one (prctl PR_SET_MM_MAP with
 * exe_fd; the kernel refuses with EBUSY while a mapping of the old exe is left). The child
 * unmaps the python binary's segments (a created init has unmapped them already: shrink.c)
 * and makes an empty memfd, sealed against any write, growth and chmod, its executable. From
 * then on /proc/self/exe is that memfd: executing it fails with ENOEXEC, and there is nothing
 * behind it to overwrite. The user's execve replaces it.
 *
 * PR_SET_MM_MAP sets every field of the mm's layout at once, so the runtime notes them from
 * /proc/self/stat before it clones (a child may have no procfs of its own to read). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/prctl.h>

#include "sealexe.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

static struct {
    struct prctl_mm_map map;
    uintptr_t prog_start, prog_end;  /* the main program's PT_LOAD segments, page-aligned */
    int ready;
    int sealed;                      /* done, in this process or the one it was cloned from */
} layout;

static int main_program(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0, page = (uintptr_t)getpagesize();
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
        lo = s < lo ? s : lo;
        hi = e > hi ? e : hi;
    }
    if (lo < hi) {
        layout.prog_start = lo & ~(page - 1);
        layout.prog_end = (hi + page - 1) & ~(page - 1);
    }
    return 1;  /* the first object is the main program */
}

/* Fields 26-28 and 45-51 of /proc/PID/stat (proc(5)), counted after the command's ")". */
enum { F_STARTCODE = 23, F_ENDCODE, F_STARTSTACK, F_STARTDATA = 42, F_ENDDATA, F_STARTBRK, F_ARGSTART,
       F_ARGEND, F_ENVSTART, F_ENVEND, F_COUNT };

int oci_exe_layout(void)
{
    if (layout.ready)
        return 0;
    char buf[2048];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -e : -EIO;
    buf[n] = 0;
    char *s = strrchr(buf, ')');
    if (!s)
        return -EIO;
    unsigned long long v[F_COUNT] = {0};
    s += 2;
    for (int i = 0; i < F_COUNT && *s; i++) {
        while (*s >= '0' && *s <= '9')
            v[i] = v[i] * 10 + (unsigned long long)(*s++ - '0');
        while (*s && *s != ' ')  /* the state letter, negative fields */
            s++;
        while (*s == ' ')
            s++;
    }
    struct prctl_mm_map *m = &layout.map;
    m->start_code = v[F_STARTCODE];
    m->end_code = v[F_ENDCODE];
    m->start_stack = v[F_STARTSTACK];
    /* The data and the brk heap as empty: the kernel checks their size against RLIMIT_DATA,
     * which the container's rlimits may have lowered already, and the image they describe is
     * gone at the next execve anyway. */
    m->start_data = m->end_data = v[F_STARTDATA];
    m->start_brk = m->brk = v[F_STARTBRK];
    m->arg_start = v[F_ARGSTART];
    m->arg_end = v[F_ARGEND];
    m->env_start = v[F_ENVSTART];
    m->env_end = v[F_ENVEND];
    if (!m->start_code || m->end_code <= m->start_code || !m->arg_start)
        return -EIO;
    dl_iterate_phdr(main_program, NULL);
    if (!layout.prog_end)
        return -ENOENT;
    layout.ready = 1;
    return 0;
}

int oci_seal_exe(void)
{
    if (layout.sealed)
        return 0;
    if (!layout.ready)
        return -EINVAL;
    munmap((void *)layout.prog_start, layout.prog_end - layout.prog_start);
    int fd = syscall(SYS_memfd_create, "ocirun-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)  /* before 6.3, no MFD_EXEC: a memfd is executable anyway */
        fd = syscall(SYS_memfd_create, "ocirun-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    if (fcntl(fd, F_ADD_SEALS, seals | F_SEAL_EXEC) < 0 && (errno != EINVAL || fcntl(fd, F_ADD_SEALS, seals) < 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct prctl_mm_map m = layout.map;
    m.exe_fd = (unsigned int)fd;
    int r = (int)syscall(SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0);
    int e = errno;
    close(fd);
    if (r < 0)
        return -e;
    layout.sealed = 1;
    return 0;
}
