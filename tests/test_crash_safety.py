"""ocirun killed with SIGKILL at a random moment of create, start, exec, delete, update and pause.

containerd and podman kill a runtime that runs past their timeout, and call `delete -f` after
it. Whatever moment the kill lands on, afterwards:
  * `list` and `state` answer without a traceback, and tell the truth: a container they report
    as created or running has its init alive, and one they don't know has no process left;
  * `delete -f ID` removes everything: processes, cgroups, the fifo and the state directory;
  * a container that was fully created (or started) is never lost or reported gone while its
    init runs.

The delays are drawn from a fixed seed (SEED), uniform over 0-50 ms, which spans a whole
`create` on this machine; OCIRUN_CRASH_ROUNDS multiplies the rounds for a longer run.
"""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from ocitest_conftest import find_cgroup_dirs, pid_alive, settled

SEED = 19
ROUNDS = int(os.environ.get("OCIRUN_CRASH_ROUNDS", "1"))
MAX_DELAY = 0.05
SLEEPER = ["sh", "-c", "sleep 60"]


def _procs_in(name: str) -> list[int]:
    """Live processes whose cgroup path names `name` (every bundle's cgroupsPath is its name)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                cg = f.read()
            with open(f"/proc/{entry}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if f"/{name}\n" in cg and st[st.rindex(")") + 2] not in "ZX":
            found.append(int(entry))
    return found



def _left_of(rt, cid: str, name: str) -> list[str]:
    left = [f"process {pid}" for pid in _procs_in(name)]
    left += [f"cgroup {d}" for d in find_cgroup_dirs(name)]
    if (rt.state_root / cid).exists():
        left.append(f"state dir {rt.state_root / cid}: {sorted(os.listdir(rt.state_root / cid))}")
    return left


def _kill_during(rt, delay: float, *args) -> int:
    p = rt.popen(*args)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    return p.wait()


def _clean_answer(r, what: str) -> None:
    for text in (r.stdout, r.stderr):
        assert "Traceback" not in text and "internal error" not in text, f"{what}: {text}"
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"{what}: want one error line, got: {r.stderr!r}"


def _answers(rt, cid: str) -> dict | None:
    """`list` and `state` after a kill: both answer cleanly; the state, or None if unknown."""
    r = rt("list", "--format", "json", check=False)
    _clean_answer(r, "list")
    assert r.returncode == 0, r.stderr
    listed = {s["id"]: s for s in json.loads(r.stdout)}
    r = rt("state", cid, check=False)
    _clean_answer(r, f"state {cid}")
    if r.returncode != 0:
        assert "does not exist" in r.stderr, r.stderr
        assert cid not in listed
        return None
    st = json.loads(r.stdout)
    assert listed[cid]["status"] == st["status"] or st["status"] == "running", (listed[cid], st)
    return st


def _check_truth(st: dict | None, name: str) -> None:
    if st is None or st["status"] == "stopped":
        # Unknown, or a create that died: nothing of it may run on (the orphaned-init leak).
        left = settled(lambda: _procs_in(name))
        assert not left, f"processes {left} of a container reported {st and st['status']}"
    elif st["status"] in ("created", "running", "paused"):
        assert pid_alive(st["pid"]), f"reported {st['status']} but init {st['pid']} is gone"


def _delete_cleans(rt, cid: str, name: str) -> None:
    # Reaping meanwhile, as a shim does: the processes of killed `exec`s are our children (we
    # are their subreaper), and the container's init ends only once they are reaped.
    p = rt.popen("delete", "-f", cid)
    deadline = time.monotonic() + 30
    while p.poll() is None:
        assert time.monotonic() < deadline, f"delete -f {cid} hangs"
        rt.reap()
        time.sleep(0.01)
    r = subprocess.CompletedProcess(p.args, p.returncode, p.stdout_path.read_text(), p.stderr_path.read_text())
    _clean_answer(r, f"delete -f {cid}")
    assert r.returncode == 0, r.stderr
    left = settled(lambda: _left_of(rt, cid, name))
    assert not left, f"after delete -f {cid}: {left}"


def _running(rt, bundle_path, cid: str) -> dict:
    rt("create", "--bundle", bundle_path, cid)
    rt("start", cid)
    return rt.state(cid)


def test_create_killed_at_any_moment(rt, bundle, new_id):
    rng = random.Random(SEED)
    b = bundle(SLEEPER)
    seen = {"unknown": 0, "creating/stopped": 0, "created": 0}
    for _ in range(150 * ROUNDS):
        cid = new_id()
        _kill_during(rt, rng.uniform(0, MAX_DELAY), "create", "--bundle", b, cid)
        st = _answers(rt, cid)
        _check_truth(st, b.name)
        seen["unknown" if st is None else st["status"] if st["status"] == "created" else "creating/stopped"] += 1
        _delete_cleans(rt, cid, b.name)
    print(f"create killed 150x{ROUNDS} (seed {SEED}): {seen}")
    # The delays must have spread the kills over the whole command, not all before or after it.
    assert all(seen.values()), seen


def test_start_killed_at_any_moment(rt, bundle, new_id):
    rng = random.Random(SEED + 1)
    b = bundle(SLEEPER)
    seen = {"created": 0, "running": 0}
    for _ in range(30 * ROUNDS):
        cid = new_id()
        rt("create", "--bundle", b, cid)
        pid = rt.state(cid)["pid"]
        _kill_during(rt, rng.uniform(0, MAX_DELAY), "start", cid)
        st = _answers(rt, cid)
        # created and committed: never lost, whatever happened to start
        assert st is not None and st["status"] in ("created", "running") and st["pid"] == pid, st
        _check_truth(st, b.name)
        seen[st["status"]] += 1
        if st["status"] == "created":
            rt("start", cid)
            assert rt.state(cid)["status"] == "running"
        _delete_cleans(rt, cid, b.name)
    print(f"start killed 30x{ROUNDS}: {seen}")
    assert all(seen.values()), seen


def test_delete_killed_at_any_moment(rt, bundle, new_id):
    rng = random.Random(SEED + 2)
    b = bundle(SLEEPER)
    seen = {"running": 0, "stopped": 0, "unknown": 0}
    for _ in range(30 * ROUNDS):
        cid = new_id()
        _running(rt, b, cid)
        _kill_during(rt, rng.uniform(0, MAX_DELAY / 2), "delete", "-f", cid)
        st = _answers(rt, cid)
        _check_truth(st, b.name)
        seen["unknown" if st is None else "stopped" if st["status"] == "stopped" else "running"] += 1
        _delete_cleans(rt, cid, b.name)
    print(f"delete -f killed 30x{ROUNDS}: {seen}")


@pytest.mark.parametrize("command", ["exec", "update", "pause"])
def test_command_on_a_running_container_killed_at_any_moment(rt, bundle, new_id, command):
    """exec, update and pause killed halfway: the container stays known and running (or
    paused), and delete -f still removes all of it, the exec'd processes included."""
    rng = random.Random(f"{SEED}-{command}")
    b = bundle(SLEEPER)
    cid = new_id()
    pid = _running(rt, b, cid)["pid"]
    args = {"exec": ("exec", cid, "sleep", "60"), "update": ("update", "--pids-limit", "200", cid),
            "pause": ("pause", cid)}[command]
    for _ in range(40 * ROUNDS):
        _kill_during(rt, rng.uniform(0, MAX_DELAY), *args)
        st = _answers(rt, cid)
        assert st is not None and st["pid"] == pid and st["status"] in ("running", "paused"), st
        _check_truth(st, b.name)
        if st["status"] == "paused":
            rt("resume", cid)
    assert rt.state(cid)["status"] == "running"
    _delete_cleans(rt, cid, b.name)
