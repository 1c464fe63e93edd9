"""OCI hooks (config.md, "POSIX-platform Hooks"): order, the state on stdin, the namespaces each
phase runs in, args and env, and what a failing, hanging or missing hook does to the lifecycle.

Every hook appends its name to one log file in a host directory; the startContainer hook runs
inside the container and reaches the same directory through a bind mount.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ocitest_conftest import MARK

IN_CONTAINER = "/hooklog"
HOOK = """#!/bin/sh
# $1: the name this hook logs under. Saves its stdin (the state) and its mount namespace.
cat > "$HOOKDIR/$1.state"
readlink /proc/self/ns/mnt > "$HOOKDIR/$1.mnt"
echo "$1" >> "$HOOKDIR/order"
"""
FAILING = """#!/bin/sh
echo "$1" >> "$HOOKDIR/order"
exit 3
"""
HANGING = """#!/bin/sh
# the pid as the host sees it ($$ is the container's in createContainer's pid namespace):
# cut's parent, read from the host's procfs, which the hook's mount namespace has at /proc
cut -d' ' -f4 /proc/self/stat > "$HOOKDIR/$1.pid"
echo "$1" >> "$HOOKDIR/order"
exec sleep 30
"""
CREATE_PHASES = ("prestart", "createRuntime", "createContainer")


class Hooks:
    """A host directory the hooks log to, the hook scripts in it, and config builders."""

    def __init__(self, d: Path):
        self.dir = d
        for name, text in (("hook.sh", HOOK), ("fail.sh", FAILING), ("hang.sh", HANGING)):
            (d / name).write_text(text)
            os.chmod(d / name, 0o755)

    def host(self, name: str, script: str = "hook.sh", **extra) -> dict:
        return {"path": str(self.dir / script), "args": [script, name],
                "env": [f"HOOKDIR={self.dir}", "PATH=/usr/bin:/bin"], **extra}

    def inside(self, name: str, script: str = "hook.sh", **extra) -> dict:
        """A hook run in the container: the script is copied into the rootfs by `config`."""
        return {"path": f"/{script}", "args": [script, name],
                "env": [f"HOOKDIR={IN_CONTAINER}", "PATH=/bin"], **extra}

    def config(self, hooks: dict):
        """A bundle patch: the hooks, the log directory bind-mounted, the scripts in the rootfs."""
        def patch(cfg):
            cfg["hooks"] = hooks
            cfg["mounts"].append({"destination": IN_CONTAINER, "type": "bind", "source": str(self.dir),
                                  "options": ["rbind", "rw"]})
        return patch

    def order(self) -> list[str]:
        try:
            return (self.dir / "order").read_text().split()
        except FileNotFoundError:
            return []

    def state(self, name: str) -> dict:
        return json.loads((self.dir / f"{name}.state").read_text())

    def mnt(self, name: str) -> str:
        return (self.dir / f"{name}.mnt").read_text().strip()


@pytest.fixture
def hooks():
    # Outside pytest's 0700 tmp dirs, and writable by the container (bind-mounted into it).
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-hooks-", dir="/tmp"))
    os.chmod(d, 0o777)
    yield Hooks(d)
    shutil.rmtree(d, ignore_errors=True)


def make_bundle(bundle, hooks: Hooks, config: dict, args=("sleep", "1000")) -> Path:
    b = bundle(list(args), hooks.config(config))
    for script in ("hook.sh", "fail.sh", "hang.sh"):
        shutil.copy(hooks.dir / script, b / "rootfs" / script)
    return b


def all_hooks(h: Hooks) -> dict:
    return {
        "prestart": [h.host("prestart")],
        "createRuntime": [h.host("createRuntime"), h.host("createRuntime2")],
        "createContainer": [h.host("createContainer")],
        "startContainer": [h.inside("startContainer")],
        "poststart": [h.host("poststart")],
        "poststop": [h.host("poststop")],
    }


# --- order and state --------------------------------------------------------------------------

def test_hooks_run_in_order_at_their_steps(rt, bundle, unique_id, hooks):
    b = make_bundle(bundle, hooks, all_hooks(hooks))
    rt("create", "--bundle", b, unique_id)
    assert hooks.order() == ["prestart", "createRuntime", "createRuntime2", "createContainer"]
    rt("start", unique_id)
    assert hooks.order()[4:] == ["startContainer", "poststart"]
    rt("kill", unique_id, "KILL")
    rt.wait_status(unique_id, "stopped")
    assert len(hooks.order()) == 6
    rt("delete", unique_id)
    assert hooks.order() == ["prestart", "createRuntime", "createRuntime2", "createContainer",
                             "startContainer", "poststart", "poststop"]


def test_hooks_get_the_state_on_stdin(rt, bundle, unique_id, hooks):
    b = make_bundle(bundle, hooks, all_hooks(hooks))
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    rt("start", unique_id)
    rt("delete", "--force", unique_id)
    # the create phases come after the environment is made (step 2 of the lifecycle, which the
    # spec says `created` comes after), as crun and runtime-tools have it
    want_status = {"prestart": "created", "createRuntime": "created", "createContainer": "created",
                   "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    for phase, status in want_status.items():
        st = hooks.state(phase)
        assert st["id"] == unique_id, phase
        assert st["bundle"] == str(b), phase
        assert st["status"] == status, phase
        assert st["ociVersion"], phase
        if phase != "poststop":
            # the host pid, also for the hook inside the container's pid namespace
            assert st["pid"] == pid, phase


def test_create_hooks_namespaces(rt, bundle, unique_id, hooks):
    b = make_bundle(bundle, hooks, all_hooks(hooks))
    rt("create", "--bundle", b, unique_id)
    init_mnt = os.readlink(f"/proc/{rt.state(unique_id)['pid']}/ns/mnt")
    rt("start", unique_id)
    host_mnt = os.readlink("/proc/self/ns/mnt")
    assert init_mnt != host_mnt
    assert hooks.mnt("prestart") == host_mnt
    assert hooks.mnt("createRuntime") == host_mnt  # the runtime's namespace
    assert hooks.mnt("createContainer") == init_mnt  # the container's mount namespace
    assert hooks.mnt("startContainer") == init_mnt
    assert hooks.mnt("poststart") == host_mnt
    rt("delete", "--force", unique_id)
    assert hooks.mnt("poststop") == host_mnt


def test_create_container_hook_sees_the_rootfs_before_pivot(rt, bundle, unique_id, hooks):
    # In the container's mount namespace, before pivot_root: the mounts of config.json are made
    # under the rootfs, and the host's paths (the hook itself) are still there.
    script = hooks.dir / "mounts.sh"
    script.write_text('#!/bin/sh\ncat /proc/self/mountinfo > "$HOOKDIR/mountinfo"\n')
    os.chmod(script, 0o755)
    b = make_bundle(bundle, hooks, {"createContainer": [hooks.host("x", "mounts.sh")]})
    rt("create", "--bundle", b, unique_id)
    points = [ln.split()[4] for ln in (hooks.dir / "mountinfo").read_text().splitlines()]
    assert f"{b}/rootfs/proc" in points
    assert f"{b}/rootfs{IN_CONTAINER}" in points
    rt("delete", "--force", unique_id)


def test_hook_args_and_env_are_passed_exactly(rt, bundle, unique_id, hooks):
    out = hooks.dir / "argv-env.json"
    code = ("import json; "
            "argv = open('/proc/self/cmdline', 'rb').read().split(b'\\0')[:-1]; "
            "env = open('/proc/self/environ', 'rb').read().split(b'\\0')[:-1]; "
            f"json.dump({{'argv': [a.decode() for a in argv], 'env': [e.decode() for e in env]}}, open('{out}', 'w'))")
    args = ["my-argv0", "-c", code, "two words", "", "--flag=x"]
    env = ["ONE=1", "SPACES=a b  c", "EMPTY=", "PATH=/nowhere"]
    b = make_bundle(bundle, hooks, {"createRuntime": [{"path": sys.executable, "args": args, "env": env}]})
    rt("create", "--bundle", b, unique_id)
    seen = json.loads(out.read_text())
    assert seen["argv"] == args
    assert seen["env"] == env  # nothing of the runtime's environment added
    rt("delete", "--force", unique_id)


def test_hook_without_args_gets_its_path_as_argv0(rt, bundle, unique_id, hooks):
    out = hooks.dir / "argv"
    script = hooks.dir / "argv0.sh"
    script.write_text(f'#!/bin/sh\necho "$0" "$#" > {out}\n')
    os.chmod(script, 0o755)
    b = make_bundle(bundle, hooks, {"createRuntime": [{"path": str(script)}]})
    rt("create", "--bundle", b, unique_id)
    assert out.read_text().split() == [str(script), "0"]
    rt("delete", "--force", unique_id)


def test_start_container_hook_runs_inside_before_the_process(rt, bundle, unique_id, hooks):
    # It runs in the container (its root, its pid namespace), after `start`, before the program.
    script = ("#!/bin/sh\n"
              f"echo root=$(ls / | tr '\\n' ' ') > {IN_CONTAINER}/inside\n"
              f"echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline | cut -c1-6) >> {IN_CONTAINER}/inside\n"
              f"echo startContainer >> {IN_CONTAINER}/order\n")
    b = make_bundle(bundle, hooks, {"startContainer": [hooks.inside("s", "probe.sh")]},
                    args=["sh", "-c", f"echo process >> {IN_CONTAINER}/order; sleep 1000"])
    (b / "rootfs/probe.sh").write_text(script)
    os.chmod(b / "rootfs/probe.sh", 0o755)
    rt("create", "--bundle", b, unique_id)
    assert hooks.order() == []
    rt("start", unique_id)
    deadline = time.monotonic() + 5
    while len(hooks.order()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hooks.order() == ["startContainer", "process"]
    inside = (hooks.dir / "inside").read_text()
    assert "probe.sh" in inside and "hooklog" in inside  # the container's root, not the host's
    rt("delete", "--force", unique_id)


# --- failures -----------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", CREATE_PHASES)
def test_failing_create_hook(rt, bundle, unique_id, hooks, phase):
    cfg = {phase: [hooks.host(phase, "fail.sh")], "poststop": [hooks.host("poststop")],
           "poststart": [hooks.host("poststart")]}
    b = make_bundle(bundle, hooks, cfg)
    rt.expect_error("create", "--bundle", b, unique_id, mentions=[f"hooks.{phase}[0]"])
    assert not rt.exists(unique_id)
    # the container counts as stopped, and the lifecycle goes on at delete: poststop runs
    assert hooks.order() == [phase, "poststop"]
    assert hooks.state("poststop")["id"] == unique_id


def test_failing_create_hook_stops_at_the_first(rt, bundle, unique_id, hooks):
    cfg = {"createRuntime": [hooks.host("first"), hooks.host("second", "fail.sh"), hooks.host("third")],
           "createContainer": [hooks.host("createContainer")], "poststop": [hooks.host("poststop")]}
    b = make_bundle(bundle, hooks, cfg)
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["hooks.createRuntime[1]"])
    assert hooks.order() == ["first", "second", "poststop"]


def test_failing_create_hook_with_run(rt, bundle, unique_id, hooks):
    cfg = {"createRuntime": [hooks.host("createRuntime", "fail.sh")], "poststop": [hooks.host("poststop")]}
    b = make_bundle(bundle, hooks, cfg, args=["sh", "-c", f"echo process >> {IN_CONTAINER}/order"])
    rt.expect_error("run", "--bundle", b, unique_id, mentions=["hooks.createRuntime[0]"])
    assert not rt.exists(unique_id)
    assert hooks.order() == ["createRuntime", "poststop"]


@pytest.mark.parametrize("phase", ["createRuntime", "createContainer"])
def test_hook_timeout_is_killed(rt, bundle, unique_id, hooks, phase):
    cfg = {phase: [hooks.host(phase, "hang.sh", timeout=1)], "poststop": [hooks.host("poststop")]}
    b = make_bundle(bundle, hooks, cfg)
    t0 = time.monotonic()
    rt.expect_error("create", "--bundle", b, unique_id, mentions=[f"hooks.{phase}[0]", "timed out"],
                    timeout=15)
    assert time.monotonic() - t0 < 5, "the hook was not killed at its timeout"
    pid = int((hooks.dir / f"{phase}.pid").read_text())
    assert not os.path.exists(f"/proc/{pid}"), "the timed-out hook is still there"
    assert not rt.exists(unique_id)
    assert hooks.order() == [phase, "poststop"]


@pytest.mark.parametrize("phase", CREATE_PHASES)
def test_missing_hook_path(rt, bundle, unique_id, hooks, phase):
    missing = str(hooks.dir / "no-such-hook")
    b = make_bundle(bundle, hooks, {phase: [{"path": missing}], "poststop": [hooks.host("poststop")]})
    rt.expect_error("create", "--bundle", b, unique_id, mentions=[f"hooks.{phase}[0]", missing])
    assert not rt.exists(unique_id)


def test_hook_path_not_executable(rt, bundle, unique_id, hooks):
    path = hooks.dir / "not-executable.sh"
    path.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(path, 0o644)
    b = make_bundle(bundle, hooks, {"createRuntime": [{"path": str(path)}]})
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["hooks.createRuntime[0]", str(path)])
    assert not rt.exists(unique_id)


def test_relative_hook_path_is_refused(rt, bundle, unique_id, hooks):
    b = make_bundle(bundle, hooks, {"createRuntime": [{"path": "hook.sh"}]})
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["hooks.createRuntime[0]"])
    assert not rt.exists(unique_id)


def test_failing_start_container_hook(rt, bundle, unique_id, hooks):
    cfg = {"startContainer": [hooks.inside("startContainer", "fail.sh")], "poststop": [hooks.host("poststop")],
           "poststart": [hooks.host("poststart")]}
    b = make_bundle(bundle, hooks, cfg, args=["sh", "-c", f"echo process >> {IN_CONTAINER}/order"])
    rt("create", "--bundle", b, unique_id)
    r = rt("start", unique_id, check=False)
    assert r.returncode != 0
    assert rt.state(unique_id)["status"] == "stopped"
    assert hooks.order() == ["startContainer"]  # neither the program nor poststart ran
    rt("delete", unique_id)
    assert hooks.order() == ["startContainer", "poststop"]


def test_failing_start_container_hook_is_named_in_the_error(rt, bundle, unique_id, hooks):
    b = make_bundle(bundle, hooks, {"startContainer": [hooks.inside("startContainer", "fail.sh")]})
    rt("create", "--bundle", b, unique_id)
    try:
        rt.expect_error("start", unique_id, mentions=["hooks.startContainer[0]"])
    finally:
        rt("delete", "--force", unique_id)


def test_start_container_hook_timeout(rt, bundle, unique_id, hooks):
    cfg = {"startContainer": [hooks.inside("startContainer", "hang.sh", timeout=1)],
           "poststop": [hooks.host("poststop")]}
    b = make_bundle(bundle, hooks, cfg, args=["sh", "-c", f"echo process >> {IN_CONTAINER}/order"])
    rt("create", "--bundle", b, unique_id)
    t0 = time.monotonic()
    assert rt("start", unique_id, check=False, timeout=15).returncode != 0
    assert time.monotonic() - t0 < 5, "the startContainer hook was not killed at its timeout"
    assert rt.state(unique_id)["status"] == "stopped"
    assert hooks.order() == ["startContainer"]
    rt("delete", unique_id)
    assert hooks.order() == ["startContainer", "poststop"]


def test_failing_poststart_hook_is_a_warning(rt, bundle, unique_id, hooks):
    cfg = {"poststart": [hooks.host("poststart", "fail.sh"), hooks.host("poststart2")]}
    b = make_bundle(bundle, hooks, cfg)
    rt("create", "--bundle", b, unique_id)
    r = rt("start", unique_id)
    assert r.returncode == 0
    assert "warning" in r.stderr.lower() and "hooks.poststart[0]" in r.stderr
    assert rt.state(unique_id)["status"] == "running"
    assert hooks.order() == ["poststart", "poststart2"]
    rt("delete", "--force", unique_id)


def test_failing_poststop_hook_is_a_warning(rt, bundle, unique_id, hooks):
    cfg = {"poststop": [hooks.host("poststop", "fail.sh"), hooks.host("poststop2")]}
    b = make_bundle(bundle, hooks, cfg)
    rt("run", "--detach", "--bundle", b, unique_id)
    r = rt("delete", "--force", unique_id)
    assert r.returncode == 0
    assert "warning" in r.stderr.lower() and "hooks.poststop[0]" in r.stderr
    assert not rt.exists(unique_id)
    assert hooks.order() == ["poststop", "poststop2"]


def test_poststop_hook_runs_once_with_foreground_run(rt, bundle, unique_id, hooks):
    cfg = {"poststop": [hooks.host("poststop")], "poststart": [hooks.host("poststart")]}
    b = make_bundle(bundle, hooks, cfg, args=["sh", "-c", "exit 2"])
    r = rt("run", "--bundle", b, unique_id, check=False)
    assert r.returncode == 2
    assert hooks.order().count("poststop") == 1
    assert hooks.state("poststop")["status"] == "stopped"


def test_failing_hook_log_line(rt, bundle, unique_id, hooks, tmp_path):
    # containerd shows the msg of the last error line of the JSON log: it must name the hook.
    log = tmp_path / "log.json"
    b = make_bundle(bundle, hooks, {"createRuntime": [hooks.host("createRuntime", "fail.sh")]})
    r = subprocess.run([rt.binary, "--root", str(rt.state_root), "--log", str(log), "--log-format", "json",
                        "create", "--bundle", str(b), unique_id], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    lines = [json.loads(ln) for ln in log.read_text().splitlines()]
    errors = [ln for ln in lines if ln["level"] == "error"]
    assert errors and "hooks.createRuntime[0]" in errors[-1]["msg"]
    assert not rt.exists(unique_id)
