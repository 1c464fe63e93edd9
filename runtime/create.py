"""`create`: from a bundle to an init process waiting on the exec fifo.

The flow: load and check config.json; claim the id in the state store; make the cgroup; make
the exec fifo; build the plan; start the trampoline and answer it over the sync socket (write
the id maps, place the init in its cgroup, run the create hooks); record the state and the pid
file. Any failure undoes every step, so nothing is left behind.
"""
import os

from . import cgroups, config, hooks, kernel, log, state, sync
from .errors import ConfigError, OciError
from .plan import Plan, capability_mask, rootfs_ops, timens_offsets


class Options:
    __slots__ = ("bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring", "preserve_fds",
                 "systemd_cgroup")

    def __init__(self, bundle=".", pid_file=None, console_socket=None, no_pivot=False,
                 no_new_keyring=False, preserve_fds=0, systemd_cgroup=False):
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.no_pivot, self.no_new_keyring, self.preserve_fds = no_pivot, no_new_keyring, preserve_fds
        self.systemd_cgroup = systemd_cgroup


def create(root: str, container_id: str, opts: Options) -> state.Container:
    cfg = config.load(opts.bundle)
    if cfg.process.terminal and not opts.console_socket:
        raise ConfigError("a terminal needs --console-socket (or use `run`)", "process.terminal")
    mount_ns = cfg.namespace("mount")
    if mount_ns is None or mount_ns.path:
        raise ConfigError("a new mount namespace is required", "linux.namespaces")

    c = state.new(root, container_id)
    made_cgroups: list[str] = []
    setup = None
    try:
        found = cgroups.hierarchies()
        dirs = cgroups.container_dirs(cfg.cgroups_path, container_id, opts.systemd_cgroup)
        made_cgroups = cgroups.create(dirs)
        os.mkfifo(c.fifo, 0o600)
        os.chmod(c.fifo, 0o622)  # the init may run as any user when it opens it
        setup = Setup(cfg, opts, c, dirs, found)
        pid = setup.run()
        start_time = state.proc_stat(pid)[1]
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
                "cgroup_dirs": dirs,
                "cgroup_made": made_cgroups,
                "hooks": hooks.to_state(cfg.hooks),
            },
        }
        c.save()
        if opts.pid_file:
            _write_pid_file(opts.pid_file, pid)
    except BaseException:
        if setup is not None:
            setup.kill()
        cgroups.remove(made_cgroups)
        state.remove(c)
        raise
    return c


def _write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        raise OciError(f"write pid file: {e.strerror}", path) from None


class Setup:
    """One run of the trampoline: builds the plan, starts it, answers its messages."""

    def __init__(self, cfg, opts, container, cgroup_dirs, found):
        self.cfg, self.opts, self.container, self.cgroup_dirs = cfg, opts, container, cgroup_dirs
        self.found = found
        self.stage1 = self.init = None
        self.fds: list[int] = []

    def run(self) -> int:
        from ._trampoline import ffi, lib

        plan = self._plan(ffi)
        sock_out = ffi.new("int *")
        try:
            r = lib.oci_spawn(plan.c, sock_out)
            if r < 0:
                raise OciError(f"clone: {os.strerror(-r)}")
            self.stage1 = r
            sock = sock_out[0]
            try:
                self._converse(sock)
            finally:
                os.close(sock)
        finally:
            for fd in self.fds:
                os.close(fd)
        return self.init

    def _converse(self, sock: int) -> None:
        while True:
            kind, value, text = sync.recv(sock)
            if kind == sync.USERNS_READY:
                self._write_id_maps(self.stage1)
                sync.send(sock, sync.USERNS_DONE)
            elif kind == sync.INIT_PID:
                self.init = value
                self._reap_stage1()
                cgroups.join(self.cgroup_dirs, value)
                sync.send(sock, sync.CGROUP_DONE)
            elif kind == sync.HOOKS:
                hooks.run_create_hooks(self.cfg, self.container, self.init)
                sync.send(sock, sync.HOOKS_DONE)
            elif kind == sync.READY:
                return
            elif kind == sync.ERROR:
                raise OciError(text)
            else:
                raise OciError("container init exited during setup")

    def _reap_stage1(self) -> None:
        if self.stage1:
            os.waitpid(self.stage1, 0)
            self.stage1 = None

    def kill(self) -> None:
        """Undo a half-done setup: no process of it may survive."""
        for pid in (self.init, self.stage1):
            if pid:
                try:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass

    def _write_id_maps(self, pid: int) -> None:
        for name, maps in (("uid_map", self.cfg.uid_mappings), ("gid_map", self.cfg.gid_mappings)):
            text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(text)
            except OSError as e:
                where = "linux.uidMappings" if name == "uid_map" else "linux.gidMappings"
                raise ConfigError(f"write {name}: {e.strerror}", where) from None

    def _plan(self, ffi) -> Plan:
        cfg, opts = self.cfg, self.opts
        p = Plan(ffi)
        c = p.c
        new = [ns for ns in cfg.namespaces if not ns.path]
        joined = sorted((ns for ns in cfg.namespaces if ns.path), key=lambda ns: ns.type != "user")
        for ns in new:
            if ns.type != "cgroup":
                c.unshare_flags |= kernel.NAMESPACES[ns.type][0]
        c.new_cgroupns = int(any(ns.type == "cgroup" for ns in new))
        joins = p.array("struct oci_ns_join", len(joined))
        for i, ns in enumerate(joined):
            try:
                fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise ConfigError(f"open {ns.path}: {e.strerror}", "linux.namespaces") from None
            self.fds.append(fd)
            joins[i].fd, joins[i].type = fd, kernel.NAMESPACES[ns.type][0]
        c.joins, c.njoins = joins, len(joined)
        c.timens_offsets = p.str(timens_offsets(cfg.time_offsets))
        in_userns = cfg.namespace("user") is not None

        c.rootfs = p.str(cfg.rootfs)
        prop = cfg.rootfs_propagation
        from .mountopts import PROPAGATION

        if prop in ("shared", "rshared"):
            c.root_propagation = kernel.MS_SLAVE | kernel.MS_REC
            c.rootfs_propagation = PROPAGATION[prop]
        else:
            c.root_propagation = PROPAGATION.get(prop, kernel.MS_SLAVE | kernel.MS_REC)
        c.no_pivot = int(opts.no_pivot)
        c.readonly_root = int(cfg.readonly_root)
        p.set_ops(rootfs_ops(cfg, in_userns, self.cgroup_dirs, self.found, bool(c.new_cgroupns)))
        c.hostname, c.domainname = p.str(cfg.hostname), p.str(cfg.domainname)
        c.loopback_up = int(any(ns.type == "network" for ns in new))
        c.new_keyring = int(not opts.no_new_keyring)
        proc = cfg.process
        c.oom_score_adj = p.str(None if proc.oom_score_adj is None else str(proc.oom_score_adj))

        c.argv, c.envp, c.cwd = p.strv(proc.args), p.strv(proc.env), p.str(proc.cwd)
        u = proc.user
        c.uid, c.gid = u.uid, u.gid
        groups = p.array("unsigned int", len(u.additional_gids))
        for i, g in enumerate(u.additional_gids):
            groups[i] = g
        c.groups, c.ngroups, c.set_groups = groups, len(u.additional_gids), 1
        c.umask = -1 if u.umask is None else u.umask
        rl = p.array("struct oci_rlimit", len(proc.rlimits))
        for i, r in enumerate(proc.rlimits):
            rl[i].resource, rl[i].soft, rl[i].hard, rl[i].name = r.resource, r.soft, r.hard, p.str(r.name)
        c.rlimits, c.nrlimits = rl, len(proc.rlimits)
        c.no_new_privs = int(proc.no_new_privileges)
        caps = proc.capabilities
        if caps is not None:
            c.set_caps = 1
            c.cap_bounding = capability_mask(caps.get("bounding"))
            c.cap_effective = capability_mask(caps.get("effective"))
            c.cap_permitted = capability_mask(caps.get("permitted"))
            c.cap_inheritable = capability_mask(caps.get("inheritable"))
            c.cap_ambient = capability_mask(caps.get("ambient"))
            c.last_cap = kernel.last_cap()

        c.preserve_fds = opts.preserve_fds
        fifo_fd = os.open(self.container.fifo, os.O_PATH | os.O_CLOEXEC)
        self.fds.append(fifo_fd)
        c.exec_fifo_fd = fifo_fd
        c.hooks_point = int(hooks.has_create_hooks(cfg.hooks))
        return p
