/* The plan the Python side hands to the trampoline, and the one entry point.
 *
 * This header is read twice: by the C compiler, and by cffi's cdef (runtime's build step),
 * so it holds only plain declarations: no #include, no macros, no inline code.
 * Every string is NUL-terminated; every array comes with its count.
 * The sync protocol is documented in csrc/sync.h and ocirun/sync.py.
 */

/* What to do to the rootfs, in order, before pivot_root. Paths are inside the rootfs. */
enum oci_op_kind {
    OCI_OP_MOUNT = 1,    /* mount(2) source on target; a bind when flags has MS_BIND */
    OCI_OP_MKNOD = 2,    /* a device node */
    OCI_OP_SYMLINK = 3,  /* target becomes a symlink to source (the link text) */
    OCI_OP_MKDIR = 4,    /* target created as a directory if missing */
    OCI_OP_MASK = 5,     /* target hidden: /dev/null over a file, an empty read-only tmpfs over a dir */
    OCI_OP_READONLY = 6  /* target bind-mounted onto itself read-only */
};

struct oci_op {
    int kind;
    const char *where;        /* the config field it comes from, for error messages */
    const char *source;       /* host path (bind), device name (mount), or link text */
    const char *target;       /* absolute path inside the container */
    const char *fstype;
    const char *data;         /* mount(2) data, comma-separated */
    unsigned long flags;      /* MS_* flags for mount(2) */
    unsigned long propagation;/* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE, with MS_REC, or 0 */
    unsigned long long attr_set; /* mount_setattr(2) attributes for the recursive r* options */
    unsigned long long attr_clr;
    int target_is_dir;        /* create a missing target as a directory (1) or a file (0) */
    unsigned long long resolve_flags; /* extra RESOLVE_* (RESOLVE_NO_SYMLINKS for /proc, /sys) */
    int copy_up;              /* tmpcopyup: the new tmpfs gets what the destination held */
    int source_fd;            /* set by stage 1: a detached copy of the bind source's tree */
    int userns_fd;            /* idmap/ridmap: a user namespace whose mappings the bind's copy
                               * takes (MOUNT_ATTR_IDMAP), or -1 */
    int idmap_recursive;      /* ridmap: every mount of the copied tree, not only its top */
    int source_late;          /* the source exists only once the init is in its cgroup (the
                               * scope systemd makes around it): the init opens it then */
    unsigned int mode;        /* mknod: S_IFCHR/S_IFBLK/S_IFIFO | permission bits */
    unsigned int major;
    unsigned int minor;
    int uid;                  /* mknod owner, -1 to leave as is */
    int gid;
};

struct oci_ns_join {
    int fd;                   /* an open nsfs file */
    int type;                 /* CLONE_NEW* of that namespace */
};

struct oci_rlimit {
    int resource;
    unsigned long long soft;
    unsigned long long hard;
    const char *name;         /* for error messages */
};

struct oci_hook {
    const char *path;
    const char *const *argv;  /* NULL-terminated */
    const char *const *envp;  /* NULL-terminated */
    int timeout;              /* seconds, 0 for none */
};

struct oci_plan {
    /* namespaces */
    int unshare_flags;        /* CLONE_NEW* to create, except CLONE_NEWCGROUP */
    int new_cgroupns;         /* unshare the cgroup namespace once placed in the cgroup */
    struct oci_ns_join *joins;
    int njoins;
    const char *timens_offsets; /* text for /proc/self/timens_offsets, or NULL */

    /* rootfs: NULL for `exec`, which joins a container whose rootfs is set up already */
    const char *rootfs;       /* absolute host path */
    unsigned long root_propagation; /* applied to / before setup (MS_SLAVE|MS_REC by default) */
    unsigned long rootfs_propagation; /* linux.rootfsPropagation, applied after pivot, or 0 */
    int no_pivot;
    /* 1 when the runtime is not root on the host (rootless): bind sources are copied in the
     * new user and mount namespaces, the only ones where an unprivileged open_tree may clone */
    int sources_in_userns;
    /* -1: the container has a mount namespace of its own (set up there, then pivot_root).
     * Otherwise the mount namespace the container shares (the runtime's, or one joined by
     * path), which must not change: the rootfs is set up in a private copy of it, and the init
     * goes back to it and chroots into a detached copy of the finished tree. */
    int shared_mntns_fd;
    /* exec into a container that shares a mount namespace: an O_PATH fd of its init's root
     * (/proc/PID/root, opened by the runtime), entered with chroot once the namespaces are
     * joined; -1 otherwise */
    int chroot_fd;
    int readonly_root;
    struct oci_op *ops;
    int nops;

    const char *hostname;     /* NULL: leave as is */
    const char *domainname;
    int loopback_up;          /* a new network namespace: bring lo up */
    int new_keyring;          /* join a fresh session keyring */

    /* process */
    const char *const *argv;  /* NULL-terminated */
    const char *const *envp;  /* NULL-terminated */
    int home_from_passwd;     /* envp's last entry is "HOME=/": replace it from /etc/passwd */
    const char *cwd;
    int uid;
    int gid;
    unsigned int *groups;
    int ngroups;
    int set_groups;           /* call setgroups (not allowed where setgroups is denied) */
    int umask;                /* -1: leave as is */
    struct oci_rlimit *rlimits;
    int nrlimits;
    int no_new_privs;
    int set_caps;             /* apply the five sets below */
    unsigned long long cap_bounding;
    unsigned long long cap_effective;
    unsigned long long cap_permitted;
    unsigned long long cap_inheritable;
    unsigned long long cap_ambient;
    int last_cap;

    /* seccomp: a BPF program compiled by the parent (ocirun/seccomp.py), installed last */
    const unsigned char *seccomp_prog; /* struct sock_filter[seccomp_len], or NULL */
    int seccomp_len;
    unsigned int seccomp_flags;       /* SECCOMP_FILTER_FLAG_* */
    int seccomp_notify;               /* the filter returns a listener fd: send it to the parent */

    struct oci_attrs *attrs;  /* csrc/attrs.h: sysctl, personality, scheduler ..., or NULL */

    /* Cgroups the init places itself in, without the parent's cgroup.procs writes: the first
     * of those after a quiet spell waits for an RCU grace period (cgroup_threadgroup_rwsem),
     * 5-15 ms. A single-threaded process moving itself does not take that lock: the init writes
     * "0" to each v1 directory's `tasks` file (fds opened by the runtime, as host root). The
     * cgroup v2 directory is entered at birth: stage 1 clones the init with CLONE_INTO_CGROUP.
     * Both unset (0 fds, cgroup_v2_fd -1): the parent joins the pid through cgroup.procs. */
    const int *cgroup_tasks_fds;
    const char *const *cgroup_tasks_dirs; /* for error messages */
    int ncgroup_tasks;
    int cgroup_v2_fd;         /* O_PATH fd of the v2 directory, or -1 */
    const char *cgroup_v2_dir; /* its path, for error messages */

    /* protocol */
    int preserve_fds;         /* fds 3 .. 3+n-1 stay open across execve */
    int exec_fifo_fd;         /* O_PATH fd of the exec fifo, or -1 to exec at once */
    int lock_fd;              /* the container's lock (its state directory, flock'ed), or -1:
                               * stage 1 closes it, so that no child of ours holds the lock */
    int hooks_point;          /* stop before pivot_root so createRuntime/createContainer hooks run */

    /* startContainer hooks: run in the container after `start`, before execve; each gets the
     * state JSON state_head + host pid + state_tail on stdin */
    struct oci_hook *start_hooks;
    int nstart_hooks;
    const char *state_head;
    const char *state_tail;

    /* terminal: a pty from the container's devpts; the master goes to the parent (SYNC_PTY) */
    int terminal;
    unsigned short rows;
    unsigned short cols;
};

/* Starts the container: returns the pid of the first child (>0) and the parent's end of the
 * sync socket in *sync_fd, or -errno. Everything after that is driven through the sync socket. */
int oci_spawn(const struct oci_plan *plan, int *sync_fd);

/* libc's setns, for hooks that run in the container's namespaces (Python 3.11 has no os.setns). */
int setns(int fd, int nstype);

/* For a createContainer hook, in its child process once it has joined the container's
 * namespaces: setns of a pid namespace only takes the children there, so this forks once
 * more. Returns 0 in the new child (killed if its parent dies); the parent closes every fd
 * but stdio (the caller's exec-error pipe among them: the caller sees the exec), waits, and
 * ends as the child ended. SIGTERM to the parent kills the child (use it, not SIGKILL). */
int oci_fork_into_pid_ns(void);
