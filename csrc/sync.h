/* The parent <-> child sync protocol over a SOCK_SEQPACKET socketpair.
 *
 * Every message is one packet: a struct oci_msg header, then (for SYNC_ERROR) the error text.
 * The numbers are mirrored in runtime/sync.py; a test checks the two agree.
 *
 *   parent (ocirun)                 stage-1 child                 init (stage-2 child)
 *   ---------------                 -------------                 --------------------
 *   oci_spawn: clone  ───────────▶  setns(joined namespaces)
 *                                   unshare(new namespaces)
 *                    ◀───────────── SYNC_USERNS_READY   (only with a new user namespace)
 *   write uid_map, gid_map
 *   SYNC_USERNS_DONE ─────────────▶ setresuid(0), timens offsets
 *                                   clone(CLONE_PARENT) ────────▶ (waits)
 *                    ◀───────────── SYNC_INIT_PID(pid), exits
 *   reap stage 1, join cgroups
 *   SYNC_CGROUP_DONE(host pid) ──────────────────────────────▶   unshare(cgroup ns), mounts, devices
 *                    ◀────────────────────────────────────────   SYNC_HOOKS   (only if asked)
 *   createRuntime/createContainer hooks
 *   SYNC_HOOKS_DONE  ────────────────────────────────────────▶   pivot_root, hostname, rlimits, user,
 *                                                                caps, cwd, executable lookup
 *                    ◀────────────────────────────────────────   SYNC_READY, then blocks opening
 *   write state, exit                                            the exec fifo until `start`
 *
 * Any child may send SYNC_ERROR instead, with a one-line message, and exit.
 * With a terminal, the init sends SYNC_PTY (the pty master as SCM_RIGHTS) before SYNC_HOOKS.
 * `exec` runs the same exchange with nothing to unshare and no rootfs: its process joins the
 * container's namespaces in stage 1 and execs right after SYNC_READY.
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
};

struct oci_msg {
    uint32_t type;
    int32_t value;
};
#endif
