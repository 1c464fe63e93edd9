/* The remaining process and linux settings, computed and checked by ocirun/attrs.py and
 * carried out here, in the container's processes, between clone and execve:
 *
 *   linux.sysctl            written through a private procfs instance (never the container's /proc)
 *   linux.personality       personality(2)
 *   process.scheduler       sched_setattr(2)
 *   process.ioPriority      ioprio_set(2)
 *   process.execCPUAffinity sched_setaffinity(2): `initial` in stage 1, before the cgroup move;
 *                           `final` in the process, once it is in the container's cgroup
 *   linux.memoryPolicy      set_mempolicy(2)
 *   process.apparmorProfile "exec PROFILE" to the process's attr/apparmor/exec, for its execve
 *   process.selinuxLabel    the label to its attr/exec, for its execve
 *
 * This header is read twice: by the C compiler, and by cffi's cdef (csrc/build.py), so it
 * holds only plain declarations: no #include, no macros, no inline code. Every string is
 * NUL-terminated; every array comes with its count. A zero `set_*` (or a NULL mask) leaves
 * that setting as it is.
 */

struct oci_attrs {
    /* linux.sysctl: nsysctl entries; keys[i] as config.json spells it (for messages),
     * paths[i] the file below /proc/sys ("net/ipv4/ip_forward"), values[i] written as is */
    const char *const *sysctl_keys;
    const char *const *sysctl_paths;
    const char *const *sysctl_values;
    int nsysctl;

    /* linux.personality: the persona, domain | flags */
    int set_personality;
    unsigned long personality;

    /* process.scheduler: the fields of struct sched_attr */
    int set_scheduler;
    unsigned int sched_policy;     /* SCHED_* */
    int sched_nice;
    unsigned int sched_priority;
    unsigned long long sched_flags; /* SCHED_FLAG_* */
    unsigned long long sched_runtime;  /* nanoseconds, SCHED_DEADLINE only */
    unsigned long long sched_deadline;
    unsigned long long sched_period;

    /* process.ioPriority */
    int set_ioprio;
    int ioprio_class;              /* IOPRIO_CLASS_RT 1, BE 2, IDLE 3 */
    int ioprio_level;              /* 0 (highest) .. 7 */

    /* process.execCPUAffinity: CPU bitmasks, bit n of the mask = CPU n, in words of the size
     * and byte order of unsigned long (what sched_setaffinity reads); NULL: leave as is */
    const unsigned long *cpus_initial;
    int ncpus_initial;             /* words */
    const unsigned long *cpus_final;
    int ncpus_final;

    /* linux.memoryPolicy */
    int set_mempolicy;
    int mpol_mode;                 /* MPOL_* */
    unsigned int mpol_flags;       /* MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES, MPOL_F_NUMA_BALANCING */
    const unsigned long *mpol_nodes; /* node bitmask, like the CPU masks; NULL: no nodes */
    int nmpol_nodes;               /* words */

    /* process.apparmorProfile and process.selinuxLabel: NULL leaves the process as it is */
    const char *apparmor_profile;
    const char *selinux_label;
};

/* Apply everything but the initial CPU affinity to the calling process. Called by the
 * container init (and an exec'd process) once it is in its namespaces and cgroup, after
 * pivot_root and the hostname, while it is still root there with all its capabilities and
 * before any seccomp filter. Returns 0, or -1 with a one-line message in err naming the
 * config field, e.g. "linux.sysctl: net.ipv4.ip_forward: write: Permission denied"
 * (strerror included; errno is 0 on return, so the message is complete as it is). */
int oci_apply_attrs(const struct oci_attrs *a, char *err, int errlen);

/* Apply process.execCPUAffinity.initial to the calling process, if set: called in stage 1,
 * before the process it clones is moved into the container's cgroup, so that process starts
 * with it. Returns 0, or -1 with a message in err, as oci_apply_attrs. */
int oci_apply_initial_affinity(const struct oci_attrs *a, char *err, int errlen);

/* errno's text, untranslated (the one strerror gives in the C locale ocirun's messages use).
 * Not strerror: it goes through gettext, which calls free(), and libc reaches free() through
 * the python binary's PLT, which a child has unmapped once it is sealed or shrunk. */
const char *oci_errtext(int e);
