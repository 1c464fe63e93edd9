/* The parent <-> child sync protocol over a SOCK_SEQPACKET socketpair.
 *
 * Every message is one packet: a struct oci_msg header, then (for SYNC_ERROR) the error text;
 * SYNC_PTY carries the pty master as SCM_RIGHTS. The numbers are mirrored in ocirun/sync.py,
 * and tests/test_units.py checks the two agree.
 *
 *   parent (ocirun)                 stage 1                        init (or exec'd process)
 *   ---------------                 -------                        ------------------------
 *   oci_spawn: clone  ───────────▶  open_tree the bind sources
 *                                   setns(joined namespaces)
 *                                   unshare(new namespaces)
 *                    ◀───────────── SYNC_USERNS_READY   (only with a new user namespace)
 *   write uid_map, gid_map
 *   SYNC_USERNS_DONE ─────────────▶ setresuid(0), timens offsets,
 *                                   non-dumpable, clone(CLONE_PARENT   ──▶ write "0" to each v1
 *                                   [| CLONE_INTO_CGROUP v2 dir])          `tasks` fd (no user ns)
 *                    ◀───────────── SYNC_INIT_PID(pid), exits
 *   reap stage 1, write oom_score_adj,
 *   join cgroups (only with a user namespace, or for exec)
 *   SYNC_CGROUP_DONE(host pid) ───────────────────────────────▶  unshare(cgroup ns), mounts, devices
 *                    ◀───────────────────────────────────────────  SYNC_PTY(master)  (only with a terminal)
 *   pass it to --console-socket, or keep it to proxy
 *                    ◀───────────────────────────────────────────  SYNC_HOOKS   (only with create hooks)
 *   prestart, createRuntime, createContainer hooks
 *   SYNC_HOOKS_DONE  ─────────────────────────────────────────▶  pivot_root, hostname, rlimits, user,
 *                                                                 caps, cwd, executable lookup
 *                    ◀───────────────────────────────────────────  SYNC_SECCOMP_FD(fd)  (notify filters)
 *   hand the fd to listenerPath
 *   SYNC_SECCOMP_DONE ────────────────────────────────────────▶
 *                    ◀───────────────────────────────────────────  SYNC_READY
 *   create: write state and pid file
 *   SYNC_COMMIT ──────────────────────────────────────────────▶  (create only; EOF instead: ocirun
 *   exit                                                          died before recording it: _exit)
 *                                                                 create: block opening the exec fifo
 *   run/exec: wait for the process                                until `start`, startContainer hooks;
 *                                                                 then execve
 *
 * Any child may send SYNC_ERROR instead, with a one-line message, and exit.
 * `exec` runs the same exchange with nothing to unshare, no rootfs and no fifo: its process
 * joins the container's namespaces in stage 1 and execs right after SYNC_READY.
 */
#ifndef OCIRUN_SYNC_H
#define OCIRUN_SYNC_H
#include <stdint.h>

enum oci_sync {
    SYNC_USERNS_READY = 1,
    SYNC_USERNS_DONE = 2,
    SYNC_INIT_PID = 3,
    SYNC_CGROUP_DONE = 4,
    SYNC_HOOKS = 5,
    SYNC_HOOKS_DONE = 6,
    SYNC_READY = 7,
    SYNC_ERROR = 8,
    SYNC_PTY = 9,
    SYNC_SECCOMP_FD = 10,
    SYNC_SECCOMP_DONE = 11,
    SYNC_COMMIT = 12,
};

struct oci_msg {
    uint32_t type;
    int32_t value;
};
#endif
