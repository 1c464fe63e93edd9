"""OCI hooks (config.md, "POSIX-platform Hooks"): each gets the container state on stdin.

prestart and createRuntime run in the runtime's namespaces, createContainer in the container's
mount namespace, all before pivot_root; poststart after `start`, poststop at `delete`.
A hook that fails or outlives its timeout fails the step it belongs to.
"""
import os

from . import jsonio, kernel
from .errors import OciError

CREATE_PHASES = ("prestart", "createRuntime", "createContainer")
STORED_PHASES = ("startContainer", "poststart", "poststop")


def to_state(hooks: dict) -> dict:
    """The hooks that later commands run, as plain data for state.json."""
    return {phase: [{"path": h.path, "args": h.args, "env": h.env, "timeout": h.timeout}
                    for h in hooks.get(phase, [])]
            for phase in STORED_PHASES if hooks.get(phase)}


def has_create_hooks(hooks: dict) -> bool:
    return any(hooks.get(phase) for phase in CREATE_PHASES)


def run_create_hooks(cfg, container, init_pid: int) -> None:
    doc = {"ociVersion": cfg.oci_version, "id": container.id, "status": "creating", "pid": init_pid,
           "bundle": cfg.bundle, "annotations": cfg.annotations}
    for phase in CREATE_PHASES:
        for i, h in enumerate(cfg.hooks.get(phase, [])):
            join = init_pid if phase == "createContainer" else None
            run_one(phase, i, h.path, h.args, h.env, h.timeout, doc, join)


def run_stored(container, phase: str, doc: dict) -> None:
    for i, h in enumerate(container.private.get("hooks", {}).get(phase, [])):
        run_one(phase, i, h["path"], h["args"], h["env"], h["timeout"], doc, None)


def run_one(phase, index, path, args, env, timeout, doc, join_pid) -> None:
    import subprocess

    where = f"hooks.{phase}[{index}]"
    preexec = None
    if join_pid:
        ns_fd = os.open(f"/proc/{join_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

        def preexec():
            from ._trampoline import lib

            if lib.setns(ns_fd, kernel.CLONE_NEWNS) != 0:
                os._exit(126)
    try:
        proc = subprocess.Popen(args or [path], executable=path, env=_env(env), stdin=subprocess.PIPE,
                                preexec_fn=preexec, close_fds=True)
    except OSError as e:
        raise OciError(f"run {path}: {e.strerror}", where) from None
    finally:
        if join_pid:
            os.close(ns_fd)
    try:
        proc.communicate(jsonio.dumps(doc).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise OciError(f"{path} timed out after {timeout}s", where) from None
    if proc.returncode:
        raise OciError(f"{path} failed with exit status {proc.returncode}", where)


def _env(items: list[str]) -> dict:
    return dict(item.split("=", 1) for item in items if "=" in item)
