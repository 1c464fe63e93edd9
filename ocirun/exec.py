"""`exec`: a new process in a running container.

The process joins every namespace of the container's init (the user namespace first) in the
trampoline's stage 1, then its cgroup, and gets the process settings of config.json (or of
--process FILE) with the command-line overrides runc has. It uses the same trampoline and the
same sync exchange as `create`, with no rootfs to set up and no fifo to wait on.
"""
import os

from . import cgroups, config, console, jsonio, kernel, state
from .errors import ConfigError, OciError, WrongState
from .forward import exit_code, wait_in_foreground
from .plan import Plan
from .spawn import Spawn


class ExecOptions:
    __slots__ = ("process_file", "args", "tty", "cwd", "env", "user", "additional_gids", "caps",
                 "no_new_privs", "preserve_fds", "detach", "pid_file", "console_socket", "apparmor",
                 "process_label")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))


def process_doc(c: state.Container, o: ExecOptions) -> tuple[dict, str]:
    """The process to run, and the name of the document it came from (for errors).
    --apparmor and --process-label override the profile and label of either."""
    doc, source = _process_doc(c, o)
    if not isinstance(doc, dict):
        return doc, source  # the schema check names it
    if o.apparmor is not None:
        doc["apparmorProfile"] = o.apparmor
    if o.process_label is not None:
        doc["selinuxLabel"] = o.process_label
    return doc, source


def _process_doc(c: state.Container, o: ExecOptions) -> tuple[dict, str]:
    if o.process_file:
        return jsonio.load_file(o.process_file), o.process_file
    if not o.args:
        raise OciError("exec needs --process FILE or a command", c.id)
    doc = dict(c.private["process"])
    doc["args"] = list(o.args)
    doc["terminal"] = bool(o.tty)
    doc.pop("consoleSize", None)
    if o.cwd:
        doc["cwd"] = o.cwd
    if o.env:
        # --env NAME=VALUE replaces the config's NAME (crun's exec-add-environment_variable)
        given = {e.partition("=")[0] for e in o.env}
        doc["env"] = [e for e in doc.get("env") or [] if e.partition("=")[0] not in given] + list(o.env)
    if o.no_new_privs:
        doc["noNewPrivileges"] = True
    user = dict(doc.get("user") or {})
    if o.user:
        uid, _, gid = o.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise OciError(f"--user takes UID[:GID] as numbers, not {o.user!r}")
        user["uid"] = int(uid)
        if gid:
            user["gid"] = int(gid)
    if o.additional_gids:
        user["additionalGids"] = [int(g) for g in o.additional_gids]
    doc["user"] = user
    if o.caps:
        caps = {k: list(v) for k, v in (doc.get("capabilities") or {}).items()}
        for cap in o.caps:
            name = cap if cap.startswith("CAP_") else "CAP_" + cap.upper()
            for kind in ("bounding", "effective", "permitted", "ambient"):
                caps.setdefault(kind, [])
                if name not in caps[kind]:
                    caps[kind].append(name)
        doc["capabilities"] = caps
    return doc, "exec"


def exec_process(root: str, container_id: str, o: ExecOptions) -> int:
    """`exec`: the new process's exit code in the foreground (0 detached)."""
    pid, masters = spawn_process(root, container_id, o)
    return 0 if o.detach else exit_code(wait_in_foreground(pid, masters))


def spawn_process(root: str, container_id: str, o: ExecOptions) -> tuple[int, list[int]]:
    """Start the process in the container: its pid (our child) and the pty master we keep
    (a terminal without --console-socket), if any."""
    c = state.load(root, container_id)
    status = c.status()
    if status != "running":
        raise WrongState(f"cannot exec in a container that is {status}", container_id, status)
    doc, source = process_doc(c, o)
    from .schema import check_config

    try:
        check_config({"ociVersion": c.data["ociVersion"], "root": {"path": "/"}, "process": doc})
        proc = config.convert_process(doc)
        from . import attrs

        attrs.check_lsm({"process": doc})
        exec_attrs = attrs.convert_exec(doc, c.private.get("attrs"))
    except ConfigError as e:
        raise ConfigError(e.message, e.where, file=source) from None
    if proc.terminal and o.console_socket:
        console.check_socket(o.console_socket)
    if proc.terminal and o.detach and not o.console_socket:
        raise OciError("a detached exec with a terminal needs --console-socket")

    from ._trampoline import ffi

    fds: list[int] = []
    masters: list[int] = []
    spawn = None
    try:
        p = Plan(ffi)
        try:
            p.set_joins(kernel.namespaces_of(c.pid), fds, container_id)
        except ConfigError as e:  # not the config's fault: the init died meanwhile (a delete)
            raise OciError(f"the container's init has gone: {e.message}", container_id) from None
        p.set_process(proc, setgroups=_setgroups_allowed(c.pid))
        p.set_seccomp(c.private.get("seccomp"))
        p.c.attrs = attrs.fill(p, exec_attrs)
        p.c.preserve_fds = int(o.preserve_fds or 0)
        if c.private.get("chroot"):
            # The container shares a mount namespace and lives chrooted in a detached tree (see
            # create.check_shared_mount_ns): joining the namespaces doesn't bring one there.
            try:
                p.c.chroot_fd = os.open(f"/proc/{c.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise OciError(f"open the container's root: {e.strerror}", container_id) from None
            fds.append(p.c.chroot_fd)
        spawn = Spawn(p, cgroups.manager_of(c.private).enter,
                      on_pty=lambda fd: console.hand_over(fd, o.console_socket, masters.append),
                      on_seccomp_fd=lambda pid, fd: p.send_seccomp_listener(c.oci_state(), fd, pid))
        pid = spawn.run()
        if o.pid_file:
            from .create import write_pid_file

            write_pid_file(o.pid_file, pid)
    except BaseException:
        if spawn is not None:
            spawn.kill()
        for fd in masters:
            os.close(fd)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    return pid, masters


def _setgroups_allowed(pid: int) -> bool:
    """A user namespace whose gid map its unprivileged maker wrote says `deny` (rootless.py)."""
    try:
        with open(f"/proc/{pid}/setgroups", "rb") as f:
            return f.read().strip() != b"deny"
    except OSError:
        return True
