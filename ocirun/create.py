"""`create`: from a bundle to an init process waiting on the exec fifo.

The flow: load and check config.json; claim the id in the state store; make the cgroup; make
the exec fifo; build the plan; start the trampoline and answer it over the sync socket (write
the id maps, place the init in its cgroup, run the create hooks); record the state and the pid
file. Any failure undoes every step, so nothing is left behind.
"""
import posix

from . import cgroups, config, kernel, log, state
from .errors import ConfigError, OciError
from .mountopts import PROPAGATION
from .plan import Plan, rootfs_ops, timens_offsets
from .spawn import Spawn


class Options:
    __slots__ = ("bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring", "preserve_fds",
                 "systemd_cgroup", "rootless", "on_pty")

    def __init__(self, bundle=".", pid_file=None, console_socket=None, no_pivot=False,
                 no_new_keyring=False, preserve_fds=0, systemd_cgroup=False, rootless=False, on_pty=None):
        self.on_pty = on_pty  # `run` without --console-socket keeps the pty master itself
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.no_pivot, self.no_new_keyring, self.preserve_fds = no_pivot, no_new_keyring, preserve_fds
        self.systemd_cgroup, self.rootless = systemd_cgroup, rootless


def create(root: str, container_id: str, opts: Options) -> state.Container:
    cfg = config.load(opts.bundle)
    if cfg.process.terminal and not (opts.console_socket or opts.on_pty):
        raise ConfigError("a terminal needs --console-socket (or use `run`)", "process.terminal")
    if cfg.process.terminal and opts.console_socket:
        from .console import check_socket

        check_socket(opts.console_socket)
    mount_ns = cfg.namespace("mount")
    if mount_ns is None or mount_ns.path:
        check_shared_mount_ns(cfg)

    hooks = _hooks_module(cfg)
    found = cgroups.hierarchies()
    resources, device_rules = cfg.resources, cgroups.device_allows(cfg.devices)
    if opts.rootless:
        from . import rootless

        found = rootless.usable_hierarchies(found, cfg.cgroups_path, container_id, resources)
        resources, device_rules = {k: v for k, v in resources.items() if k != "devices"}, None
    cg = cgroups.manager(cfg.cgroups_path, container_id, opts.systemd_cgroup, found, cfg.annotations)
    dirs = cg.dirs
    c = state.new(root, container_id)
    prepared = False
    spawn = None
    fds: list[int] = []
    moved: dict[str, str] = {}  # the interfaces in the container so far
    try:
        # First, and before the cgroups exist: a create killed from here on leaves what
        # delete -f needs.
        c.save_record(**cg.record(), **_net_record(cfg))
        posix.mkfifo(c.fifo, 0o600)
        posix.chmod(c.fifo, 0o622)  # the init may run as any user when it opens it
        plan = build_plan(cfg, opts, c, cg, found, fds)
        # Without a user namespace the init places itself in its cgroups, which costs no kernel
        # wait (csrc/trampoline.h, cgroup_tasks_fds); with one, the parent joins it through
        # cgroup.procs and waits for an RCU grace period, as runc does.
        self_join = cfg.namespace("user") is None and cg.self_join
        prepared = True
        cg.prepare(resources, device_rules)
        if self_join:
            plan.set_cgroup_self_join(*cgroups.open_for_self_join(dirs, found, fds))
        spawn = Spawn(plan, None if self_join else cg.place, (cfg.uid_mappings, cfg.gid_mappings),
                      cfg.process.oom_score_adj,
                      on_pty=lambda fd: _hand_over_pty(fd, opts),
                      on_hooks=lambda pid: _at_hooks_point(cfg, c, hooks, pid, moved),
                      on_seccomp_fd=lambda pid, fd: plan.send_seccomp_listener(
                          state_doc(cfg, c.id, "creating", pid), fd, pid))
        pid = spawn.run()
        start_time = state.proc_stat(pid)[1]
        c.save_record(pid=pid, start_time=start_time)
        c.data = {
            "ociVersion": cfg.oci_version,
            "id": container_id,
            "pid": pid,
            "bundle": cfg.bundle,
            "rootfs": cfg.rootfs,
            "created": log.now_rfc3339(),
            "owner": "",
            "annotations": cfg.annotations,
            "ocirun": {
                "start_time": start_time,
                **cg.state(),
                **_net_record(cfg),
                "cgroup_devices": device_rules,
                "hooks": hooks.to_state(cfg.hooks) if hooks else {},
                "process": cfg.process_doc,
                "seccomp": cfg.seccomp,
                "attrs": cfg.attrs_state,
                # no mount namespace of its own: `exec` chroots into the init's root
                "chroot": plan.c.shared_mntns_fd >= 0,
            },
        }
        c.save()
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        spawn.commit()
    except BaseException as e:
        if spawn is not None:
            spawn.kill()
        if prepared:
            cg.destroy()
        if cfg.net_devices:
            _net_devices_back(c, moved)
        state.remove(c)
        if hooks and isinstance(e, hooks.HookError):
            # The spec's rule: the container is stopped and the lifecycle goes on at delete.
            hooks.warn_on_failure("poststop", [hooks.as_dict(h) for h in cfg.hooks["poststop"]],
                                  state_doc(cfg, container_id, "stopped"))
        raise
    finally:
        for fd in fds:
            posix.close(fd)
        c.unlock()
    return c


def check_shared_mount_ns(cfg) -> None:
    """A container without a mount namespace of its own shares the runtime's, or the one joined
    by path. ocirun leaves that namespace as it was: the rootfs is set up in a private copy of it,
    and the process chroots into a detached copy of the finished tree (csrc/trampoline.c,
    chroot_detached). Refused here is what that can't honour."""
    user_ns = cfg.namespace("user")
    if user_ns is not None and (not user_ns.path or cfg.namespace("mount") is None):
        raise ConfigError("a user namespace needs a mount namespace of its own, or one joined with it",
                          "linux.namespaces")
    if cfg.rootfs_propagation in ("shared", "rshared", "unbindable", "runbindable"):
        raise ConfigError(f"{cfg.rootfs_propagation} needs a mount namespace of the container's own",
                          "linux.rootfsPropagation")
    for i, m in enumerate(cfg.mounts):
        for opt in m.options or ():
            if opt in ("unbindable", "runbindable"):
                raise ConfigError(f"{opt} needs a mount namespace of the container's own", f"mounts[{i}].options")


def state_doc(cfg, container_id: str, status: str, pid: int = 0) -> dict:
    """The runtime.md state of a container whose state.json isn't written (yet, or any more):
    what hooks and the seccomp agent get during create."""
    return {"ociVersion": cfg.oci_version, "id": container_id, "status": status, "pid": pid,
            "bundle": cfg.bundle, "annotations": cfg.annotations}


def write_pid_file(path: str, pid: int) -> None:
    from .posixio import abspath, write_atomically

    path = abspath(path)
    try:
        write_atomically(path, str(pid))
    except OSError as e:
        raise OciError(f"write pid file: {e.strerror}", path) from None


def build_plan(cfg, opts, container, cg, found, fds: list[int]) -> Plan:
    """The plan of a container init: namespaces to make or join, the rootfs, the process."""
    from ._trampoline import ffi

    p = Plan(ffi)
    c = p.c
    new = [ns for ns in cfg.namespaces if not ns.path]
    for ns in new:
        if ns.type != "cgroup":
            c.unshare_flags |= kernel.NAMESPACES[ns.type][0]
    c.new_cgroupns = int(any(ns.type == "cgroup" for ns in new))
    joined = sorted((ns for ns in cfg.namespaces if ns.path), key=lambda ns: ns.type != "user")
    p.set_joins([(ns.path, kernel.NAMESPACES[ns.type][0]) for ns in joined], fds, "linux.namespaces")
    c.timens_offsets = p.str(timens_offsets(cfg.time_offsets))
    in_userns = cfg.namespace("user") is not None

    c.rootfs = p.str(cfg.rootfs)
    prop = cfg.rootfs_propagation
    if prop in ("shared", "rshared", "unbindable", "runbindable"):
        # pivot_root refuses a shared /, and the rootfs can't be bound onto itself from an
        # unbindable one: slave until the pivot, the asked propagation after it
        c.root_propagation = kernel.MS_SLAVE | kernel.MS_REC
        c.rootfs_propagation = PROPAGATION[prop]
    else:
        # always recursive: a shared mount left below / would carry the rootfs bind to the host
        c.root_propagation = PROPAGATION.get(prop, kernel.MS_SLAVE) | kernel.MS_REC
    c.no_pivot = int(opts.no_pivot)
    c.sources_in_userns = int(in_userns and posix.geteuid() != 0)
    mount_ns = cfg.namespace("mount")
    if mount_ns is None:  # the runtime's own mount namespace, which the init goes back to
        c.shared_mntns_fd = posix.open("/proc/self/ns/mnt", posix.O_RDONLY | posix.O_CLOEXEC)
        fds.append(c.shared_mntns_fd)
    elif mount_ns.path:  # the joined one, which stage 1 has entered already
        c.shared_mntns_fd = next(c.joins[i].fd for i in range(c.njoins) if c.joins[i].type == kernel.CLONE_NEWNS)
    c.readonly_root = int(cfg.readonly_root)
    # A scope systemd makes around the init exists only once the init does: a bind of it is
    # opened by the init, in its copy of the host's mount namespace (never a joined one).
    late = not cg.self_join and not c.new_cgroupns
    if late and mount_ns is not None and mount_ns.path and any(m.type == "cgroup" for m in cfg.mounts):
        raise ConfigError("a cgroup mount with --systemd-cgroup in a joined mount namespace needs a cgroup "
                          "namespace of the container's own", "linux.namespaces")
    # rootless podman starts the runtime as root of a user namespace it made, and gives a config
    # with none: mknod is refused there too
    ops = rootfs_ops(cfg, in_userns or opts.rootless, cg.dirs, found, bool(c.new_cgroupns), late)
    p.set_ops(ops)
    p.set_idmaps(ops, fds)
    c.hostname, c.domainname = p.str(cfg.hostname), p.str(cfg.domainname)
    c.loopback_up = int(any(ns.type == "network" for ns in new))
    c.new_keyring = int(not opts.no_new_keyring)
    if opts.rootless:
        from .rootless import setgroups_denied

        p.set_process(cfg.process, setgroups=not setgroups_denied(cfg.gid_mappings))
    else:
        p.set_process(cfg.process)
    p.set_seccomp(cfg.seccomp)
    if cfg.attrs is not None:
        from . import attrs

        c.attrs = attrs.fill(p, cfg.attrs)
    c.preserve_fds = opts.preserve_fds
    fifo_fd = posix.open(container.fifo, posix.O_PATH | posix.O_CLOEXEC)
    fds.append(fifo_fd)
    c.exec_fifo_fd = fifo_fd
    c.lock_fd = container.lock_fd
    hooks = _hooks_module(cfg)
    # the init stops there for the create hooks, and for the interfaces to be moved in first
    c.hooks_point = int(bool(cfg.net_devices) or (hooks is not None and hooks.has_create_hooks(cfg.hooks)))
    if hooks:
        hooks.set_start_hooks(p, cfg.hooks.get("startContainer", []), state_doc(cfg, container.id, "created"),
                              cfg.process.env)
    return p


def _net_record(cfg) -> dict:
    """What delete needs to bring the interfaces back (and what a killed create leaves for it)."""
    return {"net_devices": cfg.net_devices} if cfg.net_devices else {}


def _at_hooks_point(cfg, c: state.Container, hooks, pid: int, moved: dict) -> None:
    """The init has its namespaces and waits: move the interfaces in, then run the create hooks
    (prestart and createRuntime hooks may configure them)."""
    if cfg.net_devices:
        from . import netdevices

        netdevices.move_in(cfg.net_devices, pid, c.dir, moved)
    if hooks:
        hooks.run_create_hooks(cfg, state_doc(cfg, c.id, "created", pid))


def _net_devices_back(c: state.Container, moved: dict) -> None:
    """A failed create: the interfaces moved in so far go back; the pin goes in any case."""
    from . import netdevices

    try:
        for w in netdevices.move_out({"net_devices": moved}, c.dir):
            log.warning(w)
    except OciError as e:
        log.warning(str(e))
        netdevices.unpin(c.dir)


def _hooks_module(cfg):
    """ocirun.hooks for a config that has hooks; None, and not imported, for one without."""
    if not any(cfg.hooks.values()):
        return None
    from . import hooks

    return hooks


def _hand_over_pty(master: int, opts: Options) -> None:
    from .console import hand_over

    hand_over(master, opts.console_socket, opts.on_pty)
