/* The native stage of ocirun: everything that must happen in the container's processes
 * between clone() and execve(), where no Python may run.
 *
 * Python builds one struct oci_plan (trampoline.h) and calls oci_spawn(). The children are
 * raw clone()s of the Python process that only run this file's code and then execve or _exit.
 * The exchange with the parent is described in sync.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/magic.h>

#include "attrs.h"
#include "trampoline.h"
#include "sealexe.h"
#include "shrink.h"
#include "sync.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
struct mount_attr { unsigned long long attr_set, attr_clr, propagation, userns_fd; };
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#define KEYCTL_JOIN_SESSION_KEYRING 1
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
/* clone3's argument, up to the cgroup field (kernel 5.7); named ours to stay clear of headers. */
struct oci_clone_args {
    unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

static int sync_fd = -1;
/* The host's procfs, opened by stage 1 before it joins or makes any namespace: the init reaches
 * its own fds through it (fd_path) and reopens the exec fifo through it, whatever is (or is not)
 * at /proc in the mount namespace it is in. */
static int host_proc = -1;

/* ---- reporting ------------------------------------------------------------------------- */

static void send_msg(int type, int value, const char *text)
{
    char buf[sizeof(struct oci_msg) + 1024];
    struct oci_msg m = {.type = type, .value = value};
    size_t n = text ? strnlen(text, 1024) : 0;
    memcpy(buf, &m, sizeof m);
    if (n)
        memcpy(buf + sizeof m, text, n);
    while (send(sync_fd, buf, sizeof m + n, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* Send a message carrying one fd (SCM_RIGHTS). */
static int send_fd(int type, int fd)
{
    struct oci_msg m = {.type = type, .value = fd};
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
    char ctl[CMSG_SPACE(sizeof(int))] = {0};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sync_fd, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Report a one-line error to the parent and end this child. */
__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    char text[1024];
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (saved && n >= 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - n, ": %s", oci_errtext(saved));
    send_msg(SYNC_ERROR, saved, text);
    _exit(1);
}

/* Wait for one message of the expected type from the parent and return its value;
 * anything else ends the child. */
static int expect(int type)
{
    struct oci_msg m;
    ssize_t n;
    while ((n = recv(sync_fd, &m, sizeof m, 0)) < 0 && errno == EINTR)
        ;
    if (n != sizeof m || (int)m.type != type)
        _exit(1); /* the parent has gone away or given up: nothing to report to */
    return m.value;
}

/* ---- paths inside the rootfs ------------------------------------------------------------ */

/* Open path (absolute in the container) below root without ever leaving it: symlinks,
 * including ones the container swaps in, resolve as if root were "/". */
static int open_in_root_r(int root, const char *path, int flags, unsigned long long resolve)
{
    struct open_how how = {
        .flags = flags | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve,
    };
    int fd;
    while (*path == '/')
        path++;
    if (!*path)
        path = ".";
    while ((fd = syscall(SYS_openat2, root, path, &how, sizeof how)) < 0 && errno == EAGAIN)
        ;
    return fd;
}

static int open_in_root(int root, const char *path, int flags)
{
    return open_in_root_r(root, path, flags, 0);
}

/* Open path below root, creating what is missing: directories along the way, and the last
 * component as a directory or an empty file. Every prefix is resolved again from root, so a
 * symlink met (or swapped in) on the way still can't lead out. A dangling symlink on the way
 * (/etc/x -> /tmp/somewhere, which doesn't exist yet) is followed as runc does: its target,
 * taken inside root, is what gets created (unless links is -1). Returns an O_PATH fd. */
static int mkpath_walk(int root, const char *path, int last_is_dir, unsigned long long resolve, int links)
{
    int fd = open_in_root_r(root, path, O_PATH, resolve);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    char prefix[PATH_MAX] = "/";
    size_t plen = 0;
    const char *p = path;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        int last = p[n + strspn(p + n, "/")] == 0;
        if (n > NAME_MAX || plen + 1 + n >= sizeof prefix)
            return errno = ENAMETOOLONG, -1;
        char name[NAME_MAX + 1];
        memcpy(name, p, n);
        name[n] = 0;
        int parent = open_in_root_r(root, prefix, O_PATH | O_DIRECTORY, resolve);
        if (parent < 0)
            return -1;
        int r = 0;
        if (strcmp(name, ".") && strcmp(name, "..")) {
            if (!last || last_is_dir) {
                r = mkdirat(parent, name, 0755);
            } else {
                int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                r = f < 0 ? -1 : close(f);
            }
        }
        int saved = errno;
        struct stat st;
        char target[PATH_MAX];
        ssize_t tl = -1;
        if (r < 0 && saved == EEXIST && links >= 0 && !(resolve & RESOLVE_NO_SYMLINKS) &&
            fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
            tl = readlinkat(parent, name, target, sizeof target - 1);
        close(parent);
        if (tl > 0) {
            /* A symlink the first open could not get through: start again from its target,
             * with the rest of the path after it; RESOLVE_IN_ROOT keeps ".." and "/" inside. */
            target[tl] = 0;
            char next[PATH_MAX];
            const char *rest = p + n;  /* "" at the last component, else "/..." */
            int len = snprintf(next, sizeof next, "%s/%s%s", target[0] == '/' ? "" : prefix, target, rest);
            if (len < 0 || (size_t)len >= sizeof next)
                return errno = ENAMETOOLONG, -1;
            if (links >= 40)
                return errno = ELOOP, -1;
            return mkpath_walk(root, next, last_is_dir, resolve, links + 1);
        }
        if (r < 0 && saved != EEXIST)
            return errno = saved, -1;
        prefix[plen++] = '/';
        memcpy(prefix + plen, name, n + 1);
        plen += n;
        p += n;
    }
    return open_in_root_r(root, path, O_PATH, resolve);
}

/* A config mount's destination: dangling symlinks on the way are followed. */
static int mkpath_in_root_r(int root, const char *path, int last_is_dir, unsigned long long resolve)
{
    return mkpath_walk(root, path, last_is_dir, resolve, 0);
}

/* ocirun's own paths (/dev/console, device nodes, symlinks, parents): a dangling symlink there
 * is the container's doing, and nothing is made at its target (links -1: not followed). */
static int mkpath_in_root(int root, const char *path, int last_is_dir)
{
    return mkpath_walk(root, path, last_is_dir, 0, -1);
}

/* A path to one of our fds for the calls that take no fd (mount, umount2, statvfs): relative to
 * the host's procfs, which is the init's working directory while it sets the rootfs up, so a
 * /proc that a joined mount namespace holds is never used. */
static void fd_path(int fd, char *buf, size_t len)
{
    snprintf(buf, len, "self/fd/%d", fd);
}

/* Flags the kernel locks on a mount seen from a user namespace: a remount must keep them. */
static unsigned long locked_flags(const char *path)
{
    struct statvfs s;
    unsigned long f = 0;
    if (statvfs(path, &s) < 0)
        return 0;
    if (s.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (s.f_flag & ST_NODEV) f |= MS_NODEV;
    if (s.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (s.f_flag & ST_RDONLY) f |= MS_RDONLY;
    if (s.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (s.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (s.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

/* ---- the rootfs operations ---------------------------------------------------------------- */

#define BIND_KEEP (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | \
                   MS_RELATIME | MS_STRICTATIME)

/* Copy a directory tree between two directory fds (tmpcopyup): files, dirs, symlinks and
 * device nodes, with their modes and owners, never following a symlink. The new root takes the
 * mode and owner of the directory it covers when that was the image's (`top`); one made just
 * now for the mount keeps the tmpfs's own (its mode= option), as with runc. */
static void copy_tree(const struct oci_op *op, int from, int to, int top)
{
    int dupfd = dup(from);
    DIR *dir = dupfd < 0 ? NULL : fdopendir(dupfd);
    if (!dir)
        die("%s: tmpcopyup %s: read directory", op->where, op->target);
    struct dirent *e;
    while ((e = readdir(dir))) {
        const char *n = e->d_name;
        struct stat st;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        if (fstatat(from, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
            die("%s: tmpcopyup %s/%s: stat", op->where, op->target, n);
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(to, n, 0700) < 0)
                die("%s: tmpcopyup %s/%s: mkdir", op->where, op->target, n);
            int f = openat(from, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int t = openat(to, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (f < 0 || t < 0)
                die("%s: tmpcopyup %s/%s: open", op->where, op->target, n);
            copy_tree(op, f, t, 1);
            close(f);
            close(t);
        } else if (S_ISREG(st.st_mode)) {
            int f = openat(from, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            int t = openat(to, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (f < 0 || t < 0)
                die("%s: tmpcopyup %s/%s: open", op->where, op->target, n);
            char buf[65536];
            ssize_t r;
            while ((r = read(f, buf, sizeof buf)) > 0)
                if (write(t, buf, r) != r)
                    die("%s: tmpcopyup %s/%s: write", op->where, op->target, n);
            if (r < 0)
                die("%s: tmpcopyup %s/%s: read", op->where, op->target, n);
            close(f);
            close(t);
        } else if (S_ISLNK(st.st_mode)) {
            char link[PATH_MAX];
            ssize_t len = readlinkat(from, n, link, sizeof link - 1);
            if (len < 0)
                die("%s: tmpcopyup %s/%s: readlink", op->where, op->target, n);
            link[len] = 0;
            if (symlinkat(link, to, n) < 0)
                die("%s: tmpcopyup %s/%s: symlink", op->where, op->target, n);
        } else if (mknodat(to, n, st.st_mode, st.st_rdev) < 0) {
            die("%s: tmpcopyup %s/%s: mknod", op->where, op->target, n);
        }
        if (fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            (!S_ISLNK(st.st_mode) && fchmodat(to, n, st.st_mode & 07777, 0) < 0))
            die("%s: tmpcopyup %s/%s: owner and mode", op->where, op->target, n);
    }
    closedir(dir);
    struct stat st;
    if (top && (fstat(from, &st) < 0 || fchown(to, st.st_uid, st.st_gid) < 0 || fchmod(to, st.st_mode & 07777) < 0))
        die("%s: tmpcopyup %s: owner and mode", op->where, op->target);
}

static void do_mount(int root, const struct oci_op *op)
{
    char where[64];
    /* A tmpfs over a directory the image has takes that directory's mode, as with runc and
     * crun, unless its options say mode=: given as mode= here, so that it holds for a
     * read-only tmpfs too. tmpcopyup also takes the owner (copy_tree). */
    int tmpfs = op->fstype && !strcmp(op->fstype, "tmpfs");
    int existed = -1;
    struct stat covered;
    char data[4096];
    const char *mount_data = op->data;
    if (tmpfs && (existed = open_in_root_r(root, op->target, O_PATH, op->resolve_flags)) >= 0) {
        int is_dir = fstat(existed, &covered) == 0 && S_ISDIR(covered.st_mode);
        close(existed);
        const char *d = op->data ? op->data : "";
        if (is_dir && strncmp(d, "mode=", 5) && !strstr(d, ",mode=")) {
            int n = snprintf(data, sizeof data, "mode=%o%s%s", covered.st_mode & 07777, *d ? "," : "", d);
            if (n > 0 && (size_t)n < sizeof data)
                mount_data = data;
        }
    }
    int fd = mkpath_in_root_r(root, op->target, op->target_is_dir, op->resolve_flags);
    if (fd < 0)
        die("%s: mount %s: create destination%s", op->where, op->target,
            errno == ELOOP ? " (must not be reached through a symlink)" : "");
    /* plan.py keeps every mount but proc out of /proc by the destination as written; one that
     * an image's symlink (/etc/p -> /proc) leads into the procfs is refused here, where it is
     * resolved (the CVE-2019-16884 class: a fake /proc takes the LSM labels). */
    struct statfs sf;
    if (strcmp(op->target, "/proc") && strncmp(op->target, "/proc/", 6) && fstatfs(fd, &sf) == 0 &&
        sf.f_type == PROC_SUPER_MAGIC) {
        errno = 0;
        die("%s: mount %s: the destination leads into /proc through a symlink: only proc may be mounted there",
            op->where, op->target);
    }
    fd_path(fd, where, sizeof where);

    if (op->flags & MS_BIND) {
        if (syscall(SYS_move_mount, op->source_fd, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            die("%s: mount %s on %s: bind", op->where, op->source, op->target);
        /* The tree was copied in stage 1, before any other mount, and a mount's place in
         * /proc/self/mountinfo is fixed when it is made (kernel 6.8 on lists mounts by id): so
         * it is replaced by a copy of itself made now, in config order. The first copy is made
         * private, submounts included, before it is detached: it may share a peer group with
         * the host's source and with the new copy, and a detach would take their submounts. */
        int copy = syscall(SYS_open_tree, op->source_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
                           (op->flags & MS_REC ? AT_RECURSIVE : 0));
        if (copy < 0)
            die("%s: mount %s: copy the attached tree", op->where, op->target);
        char first[64];
        fd_path(op->source_fd, first, sizeof first);
        if (mount(NULL, first, NULL, MS_PRIVATE | MS_REC, NULL) < 0 || umount2(first, MNT_DETACH) < 0)
            die("%s: mount %s: detach the first copy", op->where, op->target);
        close(op->source_fd);
        if (syscall(SYS_move_mount, copy, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            die("%s: mount %s on %s: bind", op->where, op->source, op->target);
        close(fd);
        /* The copy's fd is now the attached mount itself: options go to it through that fd,
         * never through the destination's path, which the container may have swapped since. */
        fd = copy;
        fd_path(fd, where, sizeof where);
        unsigned long extra = op->flags & BIND_KEEP;
        if (extra) {
            unsigned long keep = locked_flags(where) & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
            if (!(extra & (MS_NOATIME | MS_RELATIME | MS_STRICTATIME)))
                keep |= locked_flags(where) & (MS_NOATIME | MS_RELATIME | MS_NODIRATIME);
            if (mount(NULL, where, NULL, MS_REMOUNT | MS_BIND | extra | keep, NULL) < 0)
                die("%s: mount %s: remount with options", op->where, op->target);
        }
    } else {
        /* tmpcopyup: what the destination holds, opened before the mount hides it */
        int old = op->copy_up ? open_in_root(root, op->target, O_RDONLY | O_DIRECTORY) : -1;
        if (op->copy_up && old < 0)
            die("%s: tmpcopyup %s", op->where, op->target);
        if (mount(op->source, where, op->fstype, op->flags & ~MS_REC, mount_data) < 0)
            die("%s: mount %s (%s) on %s", op->where, op->source ? op->source : "none", op->fstype, op->target);
        close(fd);
        fd = open_in_root_r(root, op->target, O_PATH, op->resolve_flags);
        if (fd < 0)
            die("%s: mount %s: reopen", op->where, op->target);
        fd_path(fd, where, sizeof where);
        if (old >= 0) {
            int new = open_in_root(root, op->target, O_RDONLY | O_DIRECTORY);
            if (new < 0)
                die("%s: tmpcopyup %s: open the new mount", op->where, op->target);
            copy_tree(op, old, new, existed >= 0);
            close(new);
            close(old);
        }
    }
    if (op->propagation && mount(NULL, where, NULL, op->propagation, NULL) < 0)
        die("%s: mount %s: set propagation", op->where, op->target);
    if (op->attr_set || op->attr_clr) {
        struct mount_attr attr = {.attr_set = op->attr_set, .attr_clr = op->attr_clr};
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
            die("%s: mount %s: recursive options", op->where, op->target);
    }
    close(fd);
}

static void split_parent(int root, const char *path, int *parent, const char **name)
{
    static char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
    *name = slash ? slash + 1 : path;
    *parent = mkpath_in_root(root, dir[0] ? dir : "/", 1);
    if (*parent < 0)
        die("create parent of %s", path);
}

static void do_mknod(int root, const struct oci_op *op)
{
    int parent;
    const char *name;
    split_parent(root, op->target, &parent, &name);
    /* A device replaces a device or fifo the image had there, never a file or directory. */
    struct stat old;
    if (fstatat(parent, name, &old, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISCHR(old.st_mode) && !S_ISBLK(old.st_mode) && !S_ISFIFO(old.st_mode)) {
            errno = EEXIST;
            die("%s: device %s: something other than a device is there", op->where, op->target);
        }
        unlinkat(parent, name, 0);
    }
    if (mknodat(parent, name, op->mode, makedev(op->major, op->minor)) < 0)
        die("%s: device %s: mknod", op->where, op->target);
    if ((op->uid >= 0 || op->gid >= 0) && fchownat(parent, name, op->uid, op->gid, AT_SYMLINK_NOFOLLOW) < 0)
        die("%s: device %s: chown", op->where, op->target);
    /* mknod is subject to the umask; the spec's fileMode is the final mode. */
    if (fchmodat(parent, name, op->mode & 07777, 0) < 0)
        die("%s: device %s: chmod", op->where, op->target);
    close(parent);
}

static void do_symlink(int root, const struct oci_op *op)
{
    int parent;
    const char *name;
    split_parent(root, op->target, &parent, &name);
    if (symlinkat(op->source, parent, name) < 0 && errno != EEXIST)
        die("%s: symlink %s", op->where, op->target);
    close(parent);
}

/* A masked path gets /dev/null (the host's, opened here, verified) or an empty read-only tmpfs. */
static void do_mask(int root, const struct oci_op *op)
{
    char where[64];
    struct stat st;
    int fd = open_in_root_r(root, op->target, O_PATH, op->resolve_flags);
    if (fd < 0) {
        if (errno == ENOENT)
            return; /* nothing there to hide */
        die("%s: %s", op->where, op->target);
    }
    fd_path(fd, where, sizeof where);
    if (fstat(fd, &st) < 0)
        die("%s: %s: stat", op->where, op->target);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", where, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k,mode=500") < 0)
            die("%s: %s: mount tmpfs", op->where, op->target);
    } else {
        int null = open("/dev/null", O_PATH | O_CLOEXEC | O_NOFOLLOW);
        struct stat ns;
        if (null < 0 || fstat(null, &ns) < 0 || !S_ISCHR(ns.st_mode) || ns.st_rdev != makedev(1, 3))
            die("%s: %s: /dev/null is not the null device", op->where, op->target);
        char src[64];
        fd_path(null, src, sizeof src);
        if (mount(src, where, NULL, MS_BIND, NULL) < 0)
            die("%s: %s: bind /dev/null", op->where, op->target);
        close(null);
    }
    close(fd);
}

static void do_readonly(int root, const struct oci_op *op)
{
    int fd = open_in_root_r(root, op->target, O_PATH, op->resolve_flags);
    if (fd < 0) {
        if (errno == ENOENT)
            return;
        die("%s: %s", op->where, op->target);
    }
    /* A read-only copy of the tree, attached on the very inode resolved above: no second lookup
     * by path that a swapped symlink could redirect. */
    int tree = syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (tree < 0 || syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        die("%s: %s: read-only copy", op->where, op->target);
    if (syscall(SYS_move_mount, tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        die("%s: %s: attach the read-only copy", op->where, op->target);
    close(tree);
    close(fd);
}

static void run_op(int root, const struct oci_op *op)
{
    switch (op->kind) {
    case OCI_OP_MOUNT: do_mount(root, op); break;
    case OCI_OP_MKNOD: do_mknod(root, op); break;
    case OCI_OP_SYMLINK: do_symlink(root, op); break;
    case OCI_OP_MASK: do_mask(root, op); break;
    case OCI_OP_READONLY: do_readonly(root, op); break;
    case OCI_OP_MKDIR: {
        int fd = mkpath_in_root(root, op->target, 1);
        if (fd < 0)
            die("%s: create %s", op->where, op->target);
        close(fd);
        break;
    }
    default:
        errno = EINVAL;
        die("unknown rootfs operation %d", op->kind);
    }
}

/* ---- the container init, between the parent's go-ahead and execve -------------------------- */

/* csrc/sealexe.c: from here on /proc/self/exe is a sealed empty memfd, not the host's python. */
static void seal_exe(void)
{
    int r = oci_seal_exe();
    if (r < 0) {
        errno = -r;
        die("seal the runtime's executable away from the container (/proc/self/exe)");
    }
}

/* A pty from the container's own devpts instance (its /dev/ptmx, resolved inside root).
 * The slave is opened from the master (TIOCGPTPEER), never by a path the container controls.
 * The master goes to the parent; returns the slave. */
static int open_pty(int root, const struct oci_plan *p)
{
    int master = open_in_root(root, "/dev/ptmx", O_RDWR | O_NOCTTY);
    int unlock = 0;
    if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) < 0)
        die("process.terminal: open /dev/ptmx in the container");
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        die("process.terminal: open the pty slave");
    struct winsize ws = {.ws_row = p->rows, .ws_col = p->cols};
    if ((p->rows || p->cols) && ioctl(slave, TIOCSWINSZ, &ws) < 0)
        die("process.consoleSize");
    if (send_fd(SYNC_PTY, master) < 0)
        die("process.terminal: send the pty master");
    close(master);
    return slave;
}

/* /dev/console becomes the init's pty, bound through fds: no path the container could swap. */
static void bind_console(int root, int slave)
{
    char src[64], dst[64];
    int target = mkpath_in_root(root, "/dev/console", 0);
    if (target < 0)
        die("process.terminal: create /dev/console");
    fd_path(slave, src, sizeof src);
    fd_path(target, dst, sizeof dst);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
        die("process.terminal: bind the pty on /dev/console");
    close(target);
}

/* Make the pty slave the controlling terminal and stdio of a new session. */
static void take_terminal(int slave)
{
    if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
        die("process.terminal: make the pty the controlling terminal");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            die("process.terminal: dup the pty onto stdio");
    if (slave > 2)
        close(slave);
}

/* A container that shares a mount namespace (the runtime's own, or one joined by path) must
 * leave it as it was. Its rootfs was set up in a private copy of that namespace; the finished
 * tree is taken as one detached copy, the init goes back to the shared namespace and chroots
 * into the copy. The copy is in no namespace's mount table, so nothing of it shows there or
 * needs undoing: it goes away with the container's last process. */
static void chroot_detached(const struct oci_plan *p, int root)
{
    int tree = syscall(SYS_open_tree, root, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (tree < 0)
        die("root.path %s: copy the finished tree", p->rootfs);
    if (p->readonly_root) {
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
            die("root.readonly: make / read-only");
    }
    if (setns(p->shared_mntns_fd, CLONE_NEWNS) < 0)
        die("linux.namespaces: go back to the shared mount namespace");
    if (fchdir(tree) < 0 || chroot(".") < 0 || chdir("/") < 0)
        die("root.path %s: chroot", p->rootfs);
    close(tree);
}

static int setup_rootfs(const struct oci_plan *p)
{
    int slave = -1;
    if (p->shared_mntns_fd >= 0 && unshare(CLONE_NEWNS) < 0)
        die("linux.namespaces: a private mount namespace to set the rootfs up in");
    if (fchdir(host_proc) < 0)
        die("enter the host's /proc");
    if (mount(NULL, "/", NULL, p->root_propagation, NULL) < 0)
        die("linux.rootfsPropagation: make / %lx", p->root_propagation);
    /* pivot_root needs the new root to be a mount point whose parent is not shared. */
    if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        die("root.path %s: bind onto itself", p->rootfs);
    if (mount(NULL, p->rootfs, NULL, MS_PRIVATE, NULL) < 0)
        die("root.path %s: make private", p->rootfs);
    int root = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        die("root.path %s", p->rootfs);
    for (int i = 0; i < p->nops; i++)
        run_op(root, &p->ops[i]);
    if (p->terminal) {
        slave = open_pty(root, p);
        bind_console(root, slave);
    }

    if (p->hooks_point) {
        send_msg(SYNC_HOOKS, 0, NULL);
        expect(SYNC_HOOKS_DONE);
    }

    if (p->shared_mntns_fd >= 0) {
        chroot_detached(p, root);
        close(root);
        return slave;
    }
    if (fchdir(root) < 0)
        die("root.path %s: chdir", p->rootfs);
    if (p->no_pivot) {
        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0)
            die("root.path %s: move to / (--no-pivot)", p->rootfs);
    } else {
        int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (oldroot < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
            die("root.path %s: pivot_root", p->rootfs);
        /* The old root now sits on top of the new one: detach it, from the old root's own
         * directory, so that making it a slave can't touch the new root's mounts. */
        if (fchdir(oldroot) < 0 || mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0 ||
            umount2(".", MNT_DETACH) < 0)
            die("root.path %s: detach the old root", p->rootfs);
        close(oldroot);
    }
    if (chdir("/") < 0)
        die("chdir /");
    close(root);
    if (p->rootfs_propagation && mount(NULL, "/", NULL, p->rootfs_propagation, NULL) < 0)
        die("linux.rootfsPropagation");
    if (p->readonly_root) {
        unsigned long keep = locked_flags("/") & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
        if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL) < 0)
            die("root.readonly: remount / read-only");
    }
    return slave;
}

static void loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        die("network namespace: read lo flags");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        die("network namespace: bring lo up");
    close(s);
}

static void set_credentials(const struct oci_plan *p)
{
    if (p->set_caps) {
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            die("process.capabilities: keep capabilities");
        for (int c = 0; c <= p->last_cap; c++)
            if (!(p->cap_bounding & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
                die("process.capabilities.bounding: drop %d", c);
    }
    /* Raw system calls: glibc's set*id would signal every thread it thinks the process has,
     * and a clone of a multithreaded runtime (ocirun's cgroup warm-up thread) has only one. */
    if (p->set_groups && syscall(SYS_setgroups, p->ngroups, (gid_t *)p->groups) < 0)
        die("process.user.additionalGids");
    if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
        die("process.user.gid %d", p->gid);
    if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
        die("process.user.uid %d", p->uid);
    if (!p->set_caps)
        return;
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        die("process.capabilities: clear keep-capabilities");
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = (unsigned)(p->cap_effective >> (32 * i));
        data[i].permitted = (unsigned)(p->cap_permitted >> (32 * i));
        data[i].inheritable = (unsigned)(p->cap_inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        die("process.capabilities: capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        die("process.capabilities.ambient: clear");
    /* An ambient cap must also be inheritable; like runc, one that is not is skipped. */
    for (int c = 0; c <= p->last_cap; c++)
        if (p->cap_ambient & (1ULL << c))
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
}

/* The filter goes on last, so the runtime's own syscalls before it are not filtered. With a
 * notify rule the kernel returns a listener fd, which the parent passes to listenerPath. */
static void install_seccomp(const struct oci_plan *p)
{
    struct sock_fprog prog = {.len = (unsigned short)p->seccomp_len, .filter = (struct sock_filter *)p->seccomp_prog};
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog);
    if (fd < 0)
        die("linux.seccomp: install the filter");
    if (p->seccomp_notify) {
        if (send_fd(SYNC_SECCOMP_FD, (int)fd) < 0)
            die("linux.seccomp: send the listener fd");
        close((int)fd);
        expect(SYNC_SECCOMP_DONE);
    }
}

static const char *env_get(const char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* The home field of a passwd line (name:password:uid:gid:gecos:home:shell) if its uid is uid. */
static const char *passwd_home(char *line, unsigned int uid)
{
    char *f[7] = {line}, *c = line;
    int nf = 1;
    for (; *c && nf < 7; c++)
        if (*c == ':') {
            *c = 0;
            f[nf++] = c + 1;
        }
    if (nf < 6 || !*f[2] || !*f[5])
        return NULL;
    char *end;
    unsigned long id = strtoul(f[2], &end, 10);
    return !*end && id == uid ? f[5] : NULL;
}

/* HOME from the container's /etc/passwd entry for the process's uid, as runc and crun set it
 * when process.env has none; "/" (the plan's default) without one. The file is the container's:
 * opened inside its root, a regular file only (a fifo would block), read at most 1 MiB. */
static void home_from_passwd(const struct oci_plan *p, int root)
{
    static char home_env[PATH_MAX + 8];
    char buf[4096], line[PATH_MAX + 512];
    size_t used = 0, total = 0;
    int skip = 0, eof = 0;
    const char *home = NULL;
    struct stat st;
    int fd = open_in_root(root, "/etc/passwd", O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    while (!home && !eof && total < (1 << 20)) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {  /* the last line may have no newline */
            eof = 1;
            buf[0] = '\n';
            n = 1;
        }
        total += (size_t)n;
        for (ssize_t i = 0; i < n && !home; i++) {
            if (buf[i] != '\n') {
                if (used < sizeof line - 1)
                    line[used++] = buf[i];
                else
                    skip = 1;  /* longer than any entry we could use */
                continue;
            }
            line[used] = 0;
            if (!skip)
                home = passwd_home(line, (unsigned int)p->uid);
            used = 0;
            skip = 0;
        }
    }
    close(fd);
    if (!home)
        return;
    snprintf(home_env, sizeof home_env, "HOME=%s", home);
    const char **envp = (const char **)p->envp;
    while (envp[1])
        envp++;
    *envp = home_env;
}

/* Find args[0] as execve will need it, so a missing program fails `create` like runc. */
static const char *find_executable(const struct oci_plan *p, char *buf, size_t len)
{
    const char *name = p->argv[0];
    if (strchr(name, '/')) {
        if (faccessat(AT_FDCWD, name, X_OK, AT_EACCESS) < 0)
            die("process.args[0]: exec: \"%s\"", name);
        return name;
    }
    const char *path = env_get(p->envp, "PATH");
    if (!path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    while (*path) {
        const char *end = strchrnul(path, ':');
        int dl = (int)(end - path);
        snprintf(buf, len, "%.*s%s%s", dl, path, dl ? "/" : "", name);
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) == 0)
            return buf;
        path = *end ? end + 1 : end;
    }
    errno = 0;
    die("process.args[0]: exec: \"%s\": executable file not found in $PATH", name);
}

/* Write a file of the host's procfs (path relative to it). */
static void write_file(const char *path, const char *text, const char *what)
{
    int fd = openat(host_proc, path, O_WRONLY | O_CLOEXEC);
    size_t n = strlen(text);
    if (fd < 0 || write(fd, text, n) != (ssize_t)n)
        die("%s", what);
    close(fd);
}

/* All of text, or as much as fd takes: dprintf would malloc, and the init has no heap left. */
static void write_text(int fd, const char *text)
{
    size_t n = strlen(text);
    while (n) {
        ssize_t w = write(fd, text, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        text += w;
        n -= (size_t)w;
    }
}

/* A startContainer hook failed: tell `start` why through the fifo (instead of the "0" that
 * means go), so its error line names the hook, and end before execve. */
__attribute__((noreturn, format(printf, 2, 3))) static void hook_failed(int fifo, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ssize_t unused = write(fifo, text, strlen(text)); /* nothing more to do if it fails */
    (void)unused;
    _exit(127);
}

/* startContainer hooks, run by the init once released, as the spec asks: in the container.
 * A hook that fails or times out ends the init before execve, so `start` fails. */
static void run_start_hooks(const struct oci_plan *p, int host_pid, int fifo)
{
    signal(SIGPIPE, SIG_IGN); /* a hook need not read its stdin */
    for (int i = 0; i < p->nstart_hooks; i++) {
        const struct oci_hook *h = &p->start_hooks[i];
        if (access(h->path, X_OK) < 0)
            hook_failed(fifo, "hooks.startContainer[%d]: %s: %s", i, h->path, oci_errtext(errno));
        int in[2];
        if (pipe2(in, O_CLOEXEC) < 0)
            hook_failed(fifo, "hooks.startContainer[%d]: pipe: %s", i, oci_errtext(errno));
        pid_t pid = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
        if (pid < 0)
            hook_failed(fifo, "hooks.startContainer[%d]: clone: %s", i, oci_errtext(errno));
        if (pid == 0) {
            signal(SIGPIPE, SIG_DFL);
            dup2(in[0], 0);
            execve(h->path, (char *const *)h->argv, (char *const *)h->envp);
            _exit(127); /* the parent reports the exit status */
        }
        close(in[0]);
        char pid_text[16];
        snprintf(pid_text, sizeof pid_text, "%d", host_pid);
        write_text(in[1], p->state_head);
        write_text(in[1], pid_text);
        write_text(in[1], p->state_tail);
        close(in[1]);
        int status = 0;
        for (long waited_ms = 0;; waited_ms += 5) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                break;
            if (r < 0 && errno != EINTR)
                hook_failed(fifo, "hooks.startContainer[%d]: wait: %s", i, oci_errtext(errno));
            if (h->timeout > 0 && waited_ms >= h->timeout * 1000L) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                hook_failed(fifo, "hooks.startContainer[%d]: %s timed out after %ds", i, h->path, h->timeout);
            }
            usleep(5000);
        }
        if (!WIFEXITED(status))
            hook_failed(fifo, "hooks.startContainer[%d]: %s killed by signal %d", i, h->path, WTERMSIG(status));
        if (WEXITSTATUS(status))
            hook_failed(fifo, "hooks.startContainer[%d]: %s failed with exit status %d", i, h->path, WEXITSTATUS(status));
    }
    signal(SIGPIPE, SIG_DFL);
}

/* The init moves itself into the v1 cgroups, as one thread (see cgroup_tasks_fds); it was
 * born in the v2 one. Then it lets go of the host's cgroup files. */
static void join_cgroups_v1(const struct oci_plan *p)
{
    for (int i = 0; i < p->ncgroup_tasks; i++) {
        if (write(p->cgroup_tasks_fds[i], "0", 1) != 1)
            die("join cgroup %s", p->cgroup_tasks_dirs[i]);
        close(p->cgroup_tasks_fds[i]);
    }
    if (p->cgroup_v2_fd >= 0)
        close(p->cgroup_v2_fd);
}

static void open_host_paths(const struct oci_plan *p, int late);

__attribute__((noreturn)) static void container_init(const struct oci_plan *p)
{
    join_cgroups_v1(p);
    int host_pid = expect(SYNC_CGROUP_DONE);
    open_host_paths(p, 1);
    if (p->new_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
        die("linux.namespaces: cgroup");
    if (p->new_keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS)
        die("join a new session keyring");
    /* The host's procfs (stage 1 opened it), kept to reopen the exec fifo once the host is out
     * of sight. */
    int hostproc = host_proc;

    int slave = -1;
    if (p->rootfs) {
        slave = setup_rootfs(p);
    } else if (p->chroot_fd >= 0 && (fchdir(p->chroot_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)) {
        die("enter the container's root");
    }
    if (!p->rootfs && p->terminal) {
        int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        slave = open_pty(root, p);
        close(root);
    }

    if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
        die("hostname");
    if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
        die("domainname");
    if (p->loopback_up)
        loopback_up();
    for (int i = 0; i < p->nrlimits; i++) {
        struct rlimit rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
        if (setrlimit(p->rlimits[i].resource, &rl) < 0)
            die("process.rlimits: %s (soft %llu, hard %llu)", p->rlimits[i].name,
                p->rlimits[i].soft, p->rlimits[i].hard);
    }
    /* Before seccomp: a profile may well refuse fsopen or personality. */
    if (p->attrs) {
        char msg[1024];
        if (oci_apply_attrs(p->attrs, msg, sizeof msg) < 0) {
            errno = 0;
            die("%s", msg);
        }
    }
    /* A session of its own, as runc gives every process it starts: the caller's terminal sends
     * ^C to its foreground group, which reaches the container only through the runtime, and
     * getpgrp() inside names a process the container can see. */
    if (slave >= 0)
        take_terminal(slave);
    else if (setsid() < 0)
        die("setsid");
    /* cwd resolved inside the container's root with no magic links: an fd the caller leaked
     * (/proc/self/fd/N) can't lead to a host directory. Entered again once we are the user, so
     * that the user's permission to be there is checked too. */
    int here = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int cwd = here < 0 ? -1 : open_in_root(here, p->cwd, O_PATH | O_DIRECTORY);
    if (cwd < 0 || fchdir(cwd) < 0)
        die("process.cwd %s", p->cwd);
    if (p->home_from_passwd)
        home_from_passwd(p, here);
    close(here);
    char exe_buf[PATH_MAX];
    const char *exe = find_executable(p, exe_buf, sizeof exe_buf);
    /* Every fd but stdio, the preserved ones (and ours, all close-on-exec) goes at execve. */
    if (syscall(SYS_close_range, 3 + p->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        die("close_range");
    /* Python ignores SIGPIPE and SIGXFSZ; ignored signals would survive into hooks and execve. */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Nothing from here on needs the runtime's memory: a created container waits with only a
     * copy of the rest of the plan (csrc/shrink.c). No malloc or stdio after this. */
    p = oci_shrink_init(p, hostproc, &exe);
    /* Before the credentials change, which takes the capability it needs: from here on the
     * process's executable is a sealed empty memfd, never the host's interpreter. */
    seal_exe();

    /* The filter comes as late as it can, so that a profile need not allow ocirun's own setup
     * calls: without no_new_privs it needs CAP_SYS_ADMIN, so before the user switch; with it,
     * after everything but the hand-over and the fifo. */
    if (p->seccomp_prog && !p->no_new_privs)
        install_seccomp(p);
    set_credentials(p);
    if (fchdir(cwd) < 0)
        die("process.cwd %s", p->cwd);
    close(cwd);
    if (p->umask >= 0)
        umask(p->umask);
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("process.noNewPrivileges");
    if (p->seccomp_prog && p->no_new_privs)
        install_seccomp(p);
    send_msg(SYNC_READY, 0, NULL);
    /* A created init exists once ocirun has recorded it: if ocirun dies before (killed halfway
     * through create), nobody could find this process again, so it ends here (expect: EOF). */
    if (p->exec_fifo_fd >= 0)
        expect(SYNC_COMMIT);
    close(sync_fd);

    if (p->exec_fifo_fd >= 0) {
        char name[64];
        snprintf(name, sizeof name, "self/fd/%d", p->exec_fifo_fd);
        /* A `start` killed before it read the "0" leaves the container created, not dead: the
         * write fails (EPIPE: SIGPIPE is ignored for it) and the init waits for the next one. */
        for (;;) {
            /* Blocks until `start` opens the fifo for reading. */
            int fifo = openat(hostproc, name, O_WRONLY | O_CLOEXEC);
            if (fifo < 0)
                _exit(127);
            run_start_hooks(p, host_pid, fifo);
            signal(SIGPIPE, SIG_IGN);
            int sent = write(fifo, "0", 1) == 1;
            signal(SIGPIPE, SIG_DFL);
            close(fifo);
            if (sent)
                break;
        }
    }
    if (hostproc >= 0)
        close(hostproc);
    execve(exe, (char *const *)p->argv, (char *const *)p->envp);
    int e = errno;
    /* Straight to the container's stderr, not through ocirun's log: its control characters
     * escaped here, as log.error does, so that the path can't split the line. */
    char shown[PATH_MAX], msg[PATH_MAX + 128];
    size_t n = 0;
    for (const char *c = exe; *c && n + 5 < sizeof shown; c++) {
        unsigned char b = (unsigned char)*c;
        if (b < 0x20 || b == 0x7f)
            n += (size_t)snprintf(shown + n, 5, "\\x%02x", b);
        else
            shown[n++] = *c;
    }
    shown[n] = 0;
    snprintf(msg, sizeof msg, "ocirun: process.args: exec %s: %s\n", shown, oci_errtext(e));
    write_text(2, msg);
    _exit(127);
}

/* ---- stage 1: namespaces ---------------------------------------------------------------- */

/* Bind sources become detached copies of their trees, taken by host root in the host's mount
 * namespace (a late one in the init's copy of it, before anything of the container is
 * mounted there): the init attaches them without resolving a host path when it mounts. */
static void open_bind_source(struct oci_op *op)
{
    int rec = op->flags & MS_REC ? AT_RECURSIVE : 0;
    op->source_fd = syscall(SYS_open_tree, AT_FDCWD, op->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
    if (op->source_fd < 0)
        die("%s: bind source %s", op->where, op->source);
    /* An idmapping can only be given to a mount not yet attached: this copy. The copies made
     * of it later (do_mount) keep it. */
    if (op->userns_fd >= 0) {
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = op->userns_fd};
        if (syscall(SYS_mount_setattr, op->source_fd, "", AT_EMPTY_PATH | (op->idmap_recursive ? AT_RECURSIVE : 0),
                    &attr, sizeof attr) < 0)
            die("%s: idmapped mount of %s (the file system or kernel may not support it)", op->where, op->source);
    }
}

/* Open, as host root and before any namespace changes, what the init will need from the host;
 * with late=1, the sources that exist only once the init is in its cgroup. */
static void open_host_paths(const struct oci_plan *p, int late)
{
    if (!p->rootfs)
        return;
    for (int i = 0; i < p->nops; i++) {
        struct oci_op *op = &p->ops[i];
        if (op->kind == OCI_OP_MOUNT && (op->flags & MS_BIND) && op->source && op->source_late == late)
            open_bind_source(op);
    }
}

__attribute__((noreturn)) static void stage1(struct oci_plan *p)
{
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    if (p->attrs) {  /* exec's execCPUAffinity.initial, inherited by the process */
        char msg[1024];
        if (oci_apply_initial_affinity(p->attrs, msg, sizeof msg) < 0) {
            errno = 0;
            die("%s", msg);
        }
    }
    if (!p->sources_in_userns)
        open_host_paths(p, 0);
    /* Not for exec, which needs none of it: an exec'd process is visible in the container
     * before its execve, and should hold no fd of the host's that could be reached from there. */
    if (p->rootfs || p->exec_fifo_fd >= 0 || p->timens_offsets) {
        host_proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (host_proc < 0)
            die("open /proc");
    }
    /* Joined namespaces first, the user namespace before the rest (the plan orders them). */
    for (int i = 0; i < p->njoins; i++)
        if (setns(p->joins[i].fd, p->joins[i].type) < 0)
            die("linux.namespaces: join namespace of type %x", p->joins[i].type);
    if (p->unshare_flags && unshare(p->unshare_flags) < 0)
        die("linux.namespaces: unshare %x", p->unshare_flags);
    int in_userns = 0;
    for (int i = 0; i < p->njoins; i++)
        in_userns |= p->joins[i].type == CLONE_NEWUSER;
    if (p->unshare_flags & CLONE_NEWUSER) {
        send_msg(SYNC_USERNS_READY, 0, NULL);
        expect(SYNC_USERNS_DONE);
        in_userns = 1;
    }
    if (in_userns && (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0))
        die("user namespace: become root (is 0 mapped?)");
    if (p->sources_in_userns)
        open_host_paths(p, 0);
    if (p->timens_offsets)
        write_file("self/timens_offsets", p->timens_offsets, "linux.timeOffsets");

    /* From here on a process of ours may be visible in the container's pid namespace: while it
     * is still a copy of the runtime, nobody may ptrace it or open its /proc/PID/exe. execve of
     * the container's program makes it dumpable again. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        die("make the runtime non-dumpable");
    /* An exec'd process is born in the container's pid namespace, where others may look at
     * it: it is sealed from birth. (An init's setup still needs the interpreter's binary:
     * copy_tree's opendir allocates; it seals later, container_init.) */
    if (!p->rootfs && p->exec_fifo_fd < 0)
        seal_exe();
    /* The init is the parent's child, not ours, so the parent can wait for it. */
    pid_t pid;
    if (p->cgroup_v2_fd >= 0) {
        /* No exit_signal with CLONE_PARENT: the child takes ours, SIGCHLD (clone3 refuses one). */
        struct oci_clone_args args = {.flags = CLONE_PARENT | CLONE_INTO_CGROUP,
                                      .cgroup = (unsigned long long)p->cgroup_v2_fd};
        pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0)
            die("join cgroup %s", p->cgroup_v2_dir);
    } else {
        pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
        if (pid < 0)
            die("clone the container init");
    }
    if (pid == 0)
        container_init(p);
    send_msg(SYNC_INIT_PID, pid, NULL);
    _exit(0);
}

int oci_spawn(const struct oci_plan *plan, int *parent_fd)
{
    int sv[2];
    int min_fd = 3 + plan->preserve_fds;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    /* Keep our own fds out of the range the caller asked to preserve. */
    for (int i = 0; i < 2; i++)
        if (sv[i] < min_fd) {
            int high = fcntl(sv[i], F_DUPFD_CLOEXEC, min_fd);
            close(sv[i]);
            sv[i] = high;
        }
    pid_t pid = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    if (pid == 0) {
        close(sv[0]);
        sync_fd = sv[1];
        /* Die with the parent rather than run on alone. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        stage1((struct oci_plan *)plan); /* our own copy of the plan, after clone */
    }
    close(sv[1]);
    *parent_fd = sv[0];
    return pid;
}

static volatile pid_t hook_child;

static void kill_hook_child(int sig)
{
    (void)sig;
    if (hook_child > 0)
        kill(hook_child, SIGKILL);
}

int oci_fork_into_pid_ns(void)
{
    /* SIGTERM (a timeout) kills the hook, which this process then reaps: were this process
     * killed first, the dead hook would go to the nearest subreaper outside, which may not
     * reap it while ocirun waits, and the namespace's init could not finish dying. */
    signal(SIGTERM, kill_hook_child);
    pid_t child = fork();
    if (child < 0)
        return -errno;
    if (child == 0) {
        signal(SIGTERM, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        return 0;
    }
    hook_child = child;
    syscall(SYS_close_range, 3, ~0U, 0);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            _exit(127);
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}
