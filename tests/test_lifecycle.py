"""The runc lifecycle: create, start, state, kill, delete, run, list, spec, and their flags."""
import json
import os
import re

import pytest

from ocitest_conftest import pid_alive

SLEEP = ["sleep", "1000"]
# A pid 1 that reports the signals it gets (pid 1 ignores signals it has no handler for).
TRAP = ["sh", "-c", 'for s in TERM USR1 HUP; do trap "echo got $s" $s; done; '
        'echo ready; while :; do sleep 0.05; done']


def _wait_for_output(rt, cid, text, timeout=10):
    import time
    deadline = time.monotonic() + timeout
    while text not in rt.out(cid):
        assert time.monotonic() < deadline, f"{cid}: never printed {text!r}; printed {rt.out(cid)!r}"
        time.sleep(0.01)


def test_run_prints_from_inside(run_in):
    r = run_in(["echo", "hello from inside"])
    assert r.returncode == 0
    assert r.stdout == "hello from inside\n"


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_run_exits_with_the_container_exit_code(run_in, code):
    r = run_in(["sh", "-c", f"exit {code}"], check=False)
    assert r.returncode == code, r.stderr


def test_run_killed_by_sigkill_exits_137(rt, bundle, unique_id):
    p = rt.popen("run", "--bundle", bundle(SLEEP), unique_id)
    rt.wait_status(unique_id, "running")
    rt("kill", unique_id, "KILL")
    assert p.wait(timeout=10) == 137


def test_run_killed_by_sigterm_exits_143(rt, bundle, unique_id):
    # No pid namespace: as pid 1, sleep would ignore a SIGTERM it has no handler for.
    no_pidns = [{"type": t} for t in ("mount", "uts", "ipc", "network")]
    p = rt.popen("run", "--bundle", bundle(SLEEP, linux={"namespaces": no_pidns}), unique_id)
    rt.wait_status(unique_id, "running")
    rt("kill", unique_id, "TERM")
    assert p.wait(timeout=10) == 143


def test_run_passes_stdin_through(run_in):
    r = run_in(["cat"], input="piped in\n")
    assert r.stdout == "piped in\n"


def test_run_foreground_removes_the_container(rt, bundle, unique_id):
    rt("run", "--bundle", bundle(["true"]), unique_id)
    r = rt("state", unique_id, check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_state_sequence_created_running_stopped(rt, bundle, unique_id):
    b = bundle(SLEEP)
    rt("create", "--bundle", b, unique_id)
    st = rt.state(unique_id)
    assert st["status"] == "created"
    assert st["id"] == unique_id
    assert st["ociVersion"]
    assert os.path.realpath(st["bundle"]) == os.path.realpath(b)
    pid = st["pid"]
    assert isinstance(pid, int) and pid > 0 and pid_alive(pid)

    rt("start", unique_id)
    st = rt.state(unique_id)
    assert st["status"] == "running"
    assert st["pid"] == pid

    rt("kill", unique_id, "KILL")
    st = rt.wait_status(unique_id, "stopped")
    assert not pid_alive(pid)

    rt("delete", unique_id)
    r = rt("state", unique_id, check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_create_waits_for_start(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(["echo", "after start"]), unique_id)
    assert rt.out(unique_id) == ""
    assert rt.state(unique_id)["status"] == "created"
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    assert rt.out(unique_id) == "after start\n"
    rt("delete", unique_id)


def test_created_container_inherits_stdio_of_create(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(["readlink", "/proc/self/fd/1"]), unique_id)
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    assert rt.out(unique_id).strip() == str(rt.created[unique_id].stdout_path)
    rt("delete", unique_id)


def test_run_detach(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(SLEEP), unique_id)
    assert rt.state(unique_id)["status"] == "running"
    rt("delete", "--force", unique_id)
    assert not rt.exists(unique_id)


def test_state_shows_annotations(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(SLEEP, annotations={"org.example.key": "value"}), unique_id)
    assert rt.state(unique_id).get("annotations") == {"org.example.key": "value"}
    rt("delete", "--force", unique_id)


def test_status_follows_the_process(rt, bundle, unique_id):
    """Status is computed from the live process: a container that exits on its own is stopped."""
    rt("run", "--detach", "--bundle", bundle(["true"]), unique_id)
    rt.wait_status(unique_id, "stopped")
    rt("delete", unique_id)


@pytest.mark.parametrize("sig, name", [
    ("TERM", "TERM"), ("SIGTERM", "TERM"), ("15", "TERM"),
    ("USR1", "USR1"), ("SIGUSR1", "USR1"), ("10", "USR1"),
    ("HUP", "HUP"), ("1", "HUP"),
])
def test_kill_by_name_and_number(rt, bundle, unique_id, sig, name):
    rt("run", "--detach", "--bundle", bundle(TRAP), unique_id)
    _wait_for_output(rt, unique_id, "ready")
    rt("kill", unique_id, sig)
    _wait_for_output(rt, unique_id, f"got {name}")
    assert rt.state(unique_id)["status"] == "running"
    rt("delete", "--force", unique_id)


def test_kill_default_signal_is_sigterm(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(TRAP), unique_id)
    _wait_for_output(rt, unique_id, "ready")
    rt("kill", unique_id)
    _wait_for_output(rt, unique_id, "got TERM")
    rt("delete", "--force", unique_id)


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_sigkill_stops_the_container(rt, bundle, unique_id, sig):
    rt("run", "--detach", "--bundle", bundle(SLEEP), unique_id)
    rt("kill", unique_id, sig)
    rt.wait_status(unique_id, "stopped")
    rt("delete", unique_id)


def test_kill_created_container(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(SLEEP), unique_id)
    rt("kill", unique_id, "KILL")
    rt.wait_status(unique_id, "stopped")
    rt("delete", unique_id)


def test_delete_removes_state_and_cgroup(rt, bundle, unique_id):
    b = bundle(["true"])
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    dirs = rt.cgroup_dirs(b.name)
    assert dirs, f"no cgroup named {b.name} under /sys/fs/cgroup"
    assert any(str(pid) in (open(os.path.join(d, "cgroup.procs")).read().split()) for d in dirs)
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    rt("delete", unique_id)
    assert rt.cgroup_dirs(b.name) == []
    assert not rt.exists(unique_id)
    assert unique_id not in os.listdir(rt.state_root)


@pytest.mark.parametrize("start", [False, True], ids=["created", "running"])
def test_delete_force(rt, bundle, unique_id, start):
    b = bundle(SLEEP)
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    if start:
        rt("start", unique_id)
    rt("delete", "--force", unique_id)
    rt.reap()
    assert not pid_alive(pid)
    assert not rt.exists(unique_id)
    assert rt.cgroup_dirs(b.name) == []


def test_pid_file(rt, bundle, unique_id, tmp_path):
    pid_file = tmp_path / "container.pid"
    rt("create", "--bundle", bundle(SLEEP), "--pid-file", pid_file, unique_id)
    text = pid_file.read_text()
    pid = int(text.strip())
    assert pid == rt.state(unique_id)["pid"]
    # The host pid of the container's init: in its own pid namespace it is pid 1.
    nspid = next(ln for ln in open(f"/proc/{pid}/status") if ln.startswith("NSpid:")).split()[1:]
    assert nspid[0] == str(pid) and nspid[-1] == "1"
    rt("delete", "--force", unique_id)


def test_pid_file_with_run_detach(rt, bundle, unique_id, tmp_path):
    pid_file = tmp_path / "run.pid"
    rt("run", "--detach", "--pid-file", pid_file, "--bundle", bundle(SLEEP), unique_id)
    assert int(pid_file.read_text().strip()) == rt.state(unique_id)["pid"]
    rt("delete", "--force", unique_id)


def test_list(rt, bundle, new_id):
    a, b = new_id(), new_id()
    rt("create", "--bundle", bundle(SLEEP), a)
    rt("run", "--detach", "--bundle", bundle(SLEEP), b)

    table = rt("list").stdout
    rows = {ln.split()[0]: ln for ln in table.splitlines()[1:] if ln.strip()}
    assert "created" in rows[a] and "running" in rows[b]

    entries = {e["id"]: e for e in json.loads(rt("list", "--format", "json").stdout)}
    assert set(entries) == {a, b}
    assert entries[a]["status"] == "created" and entries[b]["status"] == "running"
    assert entries[b]["pid"] == rt.state(b)["pid"]

    rt("delete", "--force", a)
    rt("delete", "--force", b)
    assert json.loads(rt("list", "--format", "json").stdout or "null") in (None, [])


def test_list_empty_root(rt):
    assert json.loads(rt("list", "--format", "json").stdout or "null") in (None, [])


def test_spec_writes_a_runnable_config(rt, bundle, unique_id):
    b = bundle(["true"])
    (b / "config.json").unlink()
    rt("spec", "--bundle", b)
    cfg = json.loads((b / "config.json").read_text())
    assert re.match(r"^1\.\d+\.\d+", cfg["ociVersion"])
    assert cfg["root"]["path"] == "rootfs"
    assert cfg["process"]["args"] and cfg["process"]["cwd"] == "/"
    assert {ns["type"] for ns in cfg["linux"]["namespaces"]} >= {"pid", "mount"}
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["echo", "spec ok"]
    cfg["linux"]["cgroupsPath"] = b.name
    (b / "config.json").write_text(json.dumps(cfg))
    assert rt("run", "--bundle", b, unique_id).stdout == "spec ok\n"


def test_spec_rootless_has_a_user_namespace(rt, tmp_path):
    rt("spec", "--rootless", "--bundle", tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert "user" in {ns["type"] for ns in cfg["linux"]["namespaces"]}
    assert cfg["linux"]["uidMappings"] and cfg["linux"]["gidMappings"]


def test_version(rt):
    r = rt("--version")
    assert "version" in r.stdout.lower()


def test_json_log_of_a_failing_create(rt, tmp_path, unique_id):
    log = tmp_path / "log.json"
    missing = tmp_path / "no-such-bundle"
    r = rt("--log", log, "--log-format", "json", "create", "--bundle", missing, unique_id, check=False)
    assert r.returncode != 0
    assert r.stderr.strip(), "the error must also reach stderr"
    last = json.loads(log.read_text().strip().splitlines()[-1])
    assert set(last) >= {"level", "msg", "time"}
    assert last["level"] == "error"
    assert str(missing) in last["msg"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", last["time"])
