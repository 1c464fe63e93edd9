"""OCI hooks (config.md, "POSIX-platform Hooks"): each gets the container state on stdin.

prestart and createRuntime run in the runtime's namespaces, createContainer in the container's
namespaces, all before pivot_root; startContainer in the container, run by the init itself
(csrc/trampoline.c) once `start` releases it; poststart after `start`, poststop at `delete`.
A hook that fails or outlives its timeout fails the step it belongs to.

The state each gets is its step's, as crun passes it: `created` in the create phases (they come
after the environment is made, step 2 of the lifecycle) and startContainer, `running` in
poststart, `stopped` in poststop. A hook without `env` runs with the runtime's environment, as
runc's and crun's do; a startContainer hook, which runs in the container, with the process's.
The others run in the bundle directory, as crun runs them; a createContainer hook is in each of
the container's namespaces, its pid namespace included.
"""
import os

from . import jsonio, kernel
from .errors import OciError

CREATE_PHASES = ("prestart", "createRuntime", "createContainer")
STORED_PHASES = ("poststart", "poststop")


class HookError(OciError):
    """A hook failed: the step it belongs to fails with it."""


def as_dict(h) -> dict:
    return {"path": h.path, "args": h.args, "env": h.env, "timeout": h.timeout}


def to_state(hooks: dict) -> dict:
    """The hooks that later commands run, as plain data for state.json."""
    return {phase: [as_dict(h) for h in hooks.get(phase, [])] for phase in STORED_PHASES if hooks.get(phase)}


def set_start_hooks(plan, items: list, doc: dict, plan_env: list[str]) -> None:
    """startContainer hooks into the plan, with the state doc they get on stdin split around
    its pid, which only the init knows."""
    if not items:
        return
    arr = plan.array("struct oci_hook", len(items))
    for i, h in enumerate(items):
        arr[i].path, arr[i].argv = plan.str(h.path), plan.strv(h.args or [h.path])
        # no env: the process's, as runc's init has by then; never the runtime's, in there
        env = h.env if h.env is not None else plan_env
        arr[i].envp, arr[i].timeout = plan.strv(env), h.timeout or 0
    plan.c.start_hooks, plan.c.nstart_hooks = arr, len(items)
    head, tail = jsonio.dumps(doc).split('"pid":0', 1)
    plan.c.state_head, plan.c.state_tail = plan.str(head + '"pid":'), plan.str(tail)


def has_create_hooks(hooks: dict) -> bool:
    return any(hooks.get(phase) for phase in CREATE_PHASES)


def run_create_hooks(cfg, doc: dict) -> None:
    init_pid = doc["pid"]
    for phase in CREATE_PHASES:
        join = init_pid if phase == "createContainer" else None
        run_phase(phase, [as_dict(h) for h in cfg.hooks.get(phase, [])], doc, join)


def run_phase(phase: str, hooks: list[dict], doc: dict, join_pid: int | None = None) -> None:
    for i, h in enumerate(hooks):
        run_one(f"hooks.{phase}[{i}]", h, doc, join_pid)


def warn_on_failure(phase: str, hooks: list[dict], doc: dict) -> None:
    """poststart and poststop: a failing hook is a warning, and the rest still run."""
    from . import log

    for i, h in enumerate(hooks):
        try:
            run_one(f"hooks.{phase}[{i}]", h, doc, None)
        except HookError as e:
            log.warning(str(e))


def run_one(where: str, h: dict, doc: dict, join_pid: int | None) -> None:
    import subprocess

    path, timeout = h["path"], h["timeout"]
    # in the bundle, as crun runs them (runc's callers call it from there): relative paths in a
    # hook's args then mean the bundle's files; a bundle gone by poststop leaves ocirun's cwd
    bundle = doc.get("bundle") or None
    if bundle and not os.path.isdir(bundle):
        bundle = None
    preexec = None
    ns_fds = []
    if join_pid:
        # the container's namespaces (its pid namespace applies to what the hook forks)
        ns_fds = [(os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag) for path, flag in kernel.namespaces_of(join_pid)]

        def preexec():
            from ._trampoline import lib

            for fd, flag in ns_fds:
                if lib.setns(fd, flag) != 0:
                    os._exit(126)
            if lib.oci_fork_into_pid_ns() < 0:  # the hook itself in the pid namespace too
                os._exit(126)
            if bundle:  # joining a mount namespace moved the cwd to its root
                os.chdir(bundle)
    try:
        proc = subprocess.Popen(h["args"] or [path], executable=path, env=_env(h["env"]), cwd=bundle,
                                stdin=subprocess.PIPE, preexec_fn=preexec, close_fds=True)
    except OSError as e:
        raise HookError(f"run {path}: {e.strerror}", where) from None
    finally:
        for fd, _ in ns_fds:
            os.close(fd)
    try:
        proc.communicate(jsonio.dumps(doc).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        # a joined hook runs under a parent that kills it at SIGTERM and reaps it
        # (csrc/trampoline.h, oci_fork_into_pid_ns)
        proc.terminate() if join_pid else proc.kill()
        proc.wait()
        raise HookError(f"{path} timed out after {timeout}s", where) from None
    except BrokenPipeError:
        proc.wait()  # a hook need not read its stdin
    if proc.returncode:
        raise HookError(f"{path} failed with exit status {proc.returncode}", where)


def _env(items: list[str] | None) -> dict | None:
    """A hook without env runs with the runtime's own environment (None), as runc's does."""
    if items is None:
        return None
    return dict(item.split("=", 1) for item in items if "=" in item)
