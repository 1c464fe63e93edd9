"""Concurrency: racing commands on one id, and many containers at once.

Two `create`s of one id at the same moment: exactly one wins, the other gets one clear error line,
and nothing is left of the loser. `kill`, `state`, `delete`, `exec`, `list`, `pause`, `resume` and
`update` racing on one container (the container's lock is its state directory's flock) never
corrupt its state or end in a traceback. 200 create/start/delete loops at once: nothing lost,
nothing leaked.

Racing calls are started through a gate: each is a `sh` blocked reading an empty pipe, and
closing the pipe's write end lets them all `exec` ocirun at the same moment.
"""
import json
import os
import random
import subprocess
import threading
import time

import pytest

from ocitest_conftest import _descendants, _procs, pid_alive

SLEEP = ["sleep", "60"]
STATUSES = {"created", "running", "paused", "stopped"}
CALL_TIMEOUT = 60



def _blocked_in_read(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] == "0"  # read(2) on x86_64
    except (OSError, IndexError):
        return False


class Call:
    """One gated ocirun call: args, its Popen, and its output once it has finished."""

    def __init__(self, args, popen):
        self.args, self.p = args, popen
        self.rc = None
        self.stdout = self.stderr = ""

    def finish(self, deadline: float) -> None:
        try:
            self.rc = self.p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return
        self.stdout = self.p.stdout_path.read_text()
        self.stderr = self.p.stderr_path.read_text()

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    def __str__(self) -> str:
        return f"`{' '.join(map(str, self.args))}` exit {self.rc}, stderr {self.stderr!r}"


def gated(rt, commands) -> list[Call]:
    """Start every command (a tuple of ocirun args) at the same moment; returns them running.
    They are in rt.popens, so that teardown kills any still running and reap() leaves them."""
    r, w = os.pipe()
    calls = []
    try:
        for args in commands:
            args = tuple(map(str, args))
            rt._note_ids(args)
            out_p, err_p = rt._files()
            argv = ["/bin/sh", "-c", 'read _ ; exec "$@" </dev/null', "sh",
                    rt.binary, "--root", str(rt.state_root), *args]
            with open(out_p, "w") as out, open(err_p, "w") as err:
                p = subprocess.Popen(argv, stdin=r, stdout=out, stderr=err, env=rt._env(None))
            p.stdout_path, p.stderr_path = out_p, err_p
            rt.popens.append(p)
            calls.append(Call(args, p))
        # Let them all get to the read first (after 5 s, go anyway: a late one reads EOF too).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(_blocked_in_read(c.p.pid) for c in calls):
            time.sleep(0.002)
    finally:
        os.close(r)
        os.close(w)  # EOF for every reader at once: off they go
    return calls


def finish_all(calls, timeout: float = CALL_TIMEOUT) -> list[str]:
    deadline = time.monotonic() + timeout
    for c in calls:
        c.finish(deadline)
    return [f"still running after {timeout}s: `{' '.join(c.args)}`" for c in calls if c.rc is None]


def clean_error(c: Call) -> str | None:
    """None if a failed call failed cleanly (one stderr line, no traceback), else the problem."""
    if "Traceback" in c.stderr or "internal error" in c.stderr:
        return f"traceback/internal error: {c}"
    if c.rc != 0 and len(c.lines) != 1:
        return f"want exactly one error line: {c}"
    return None


def live_strays(baseline: set, allowed: set) -> list[str]:
    """Live processes below this pytest that were not there at `baseline` and are not `allowed`
    (nor below them)."""
    procs = _procs()
    me = os.getpid()
    ok = set(allowed)
    for pid in allowed:
        ok |= _descendants(procs, pid)
    out = []
    for pid in _descendants(procs, me):
        if (pid, procs[pid]["start"]) in baseline or pid in ok or procs[pid]["state"] == "Z":
            continue
        cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ") if os.path.exists(f"/proc/{pid}") else "?"
        out.append(f"pid {pid}: {cmd}")
    return out


def _baseline() -> set:
    return {(pid, p["start"]) for pid, p in _procs().items()}


# --- 1. two creates of one id ------------------------------------------------------------

ROUNDS = [(2 if i % 3 else 4, "same" if i % 2 else "distinct") for i in range(20)]


def test_same_id_create_race(rt, bundle, new_id):
    base = _baseline()
    problems = []
    for rnd, (n, kind) in enumerate(ROUNDS):
        rt.reap()
        cid = new_id()
        shared = bundle(SLEEP) if kind == "same" else None
        bundles = [shared or bundle(SLEEP) for _ in range(n)]
        calls = gated(rt, [("create", "--bundle", b, cid) for b in bundles])
        problems += finish_all(calls)
        where = f"round {rnd} ({n} creates, {kind} bundles)"
        winners = [i for i, c in enumerate(calls) if c.rc == 0]
        if len(winners) != 1:
            problems.append(f"{where}: {len(winners)} creates succeeded, want 1: "
                            + "; ".join(map(str, calls)))
        for i, c in enumerate(calls):
            if c.rc == 0:
                if c.stderr.strip():
                    problems.append(f"{where}: the winner wrote to stderr: {c}")
                continue
            bad = clean_error(c)
            if bad:
                problems.append(f"{where}: loser: {bad}")
            elif c.rc is not None and "already exists" not in c.stderr and cid not in c.stderr:
                problems.append(f"{where}: loser's error names neither 'already exists' nor the id: {c}")
        r = rt("state", cid, check=False)
        if r.returncode != 0:
            problems.append(f"{where}: state after the race failed: {r.stderr.strip()}")
            rt("delete", "--force", cid, check=False)
            continue
        st = json.loads(r.stdout)
        if st["status"] != "created" or not pid_alive(st["pid"]):
            problems.append(f"{where}: state after the race: {st}")
        if len(winners) == 1:
            w = winners[0]
            if os.path.realpath(st["bundle"]) != os.path.realpath(bundles[w]):
                problems.append(f"{where}: state names bundle {st['bundle']}, the winner's is {bundles[w]}")
            if kind == "distinct":
                for i, b in enumerate(bundles):
                    dirs = rt.cgroup_dirs(b.name)
                    if i == w and not dirs:
                        problems.append(f"{where}: the winner has no cgroup {b.name}")
                    if i != w and dirs:
                        problems.append(f"{where}: a loser left its cgroup: {dirs}")
        strays = live_strays(base, {st["pid"]} if st.get("pid") else set())
        if strays:
            problems.append(f"{where}: processes besides the winner's init: {strays}")
        rt("delete", "--force", cid)
        rt.reap()
        for b in set(bundles):
            if rt.cgroup_dirs(b.name):
                problems.append(f"{where}: cgroup left after delete: {rt.cgroup_dirs(b.name)}")
        if os.path.exists(rt.state_root / cid):
            problems.append(f"{where}: state directory left after delete")
    assert not problems, "\n".join(problems)


# --- 2. racing commands on one container ------------------------------------------------

def _mix(cid: str, rng: random.Random) -> list[tuple]:
    cmds = ([("state", cid)] * 10 + [("kill", cid, "CONT")] * 6 + [("exec", cid, "true")] * 6
            + [("list", "--format", "json")] * 4 + [("pause", cid)] * 3 + [("resume", cid)] * 3
            + [("update", "--pids-limit", "100", cid)] * 4 + [("delete", "-f", cid)] * rng.choice((1, 2)))
    rng.shuffle(cmds)
    return cmds


def _check_racing(c: Call, cid: str) -> str | None:
    if c.args[0] == "exec" and c.rc == 137 and not c.stderr.strip():
        return None  # `true` was SIGKILLed by a racing delete -f: its status, no error
    bad = clean_error(c)
    if bad:
        return bad
    if c.rc != 0:
        return None
    if c.args[0] == "state":
        try:
            st = json.loads(c.stdout)
        except ValueError:
            return f"state printed no JSON: {c}, stdout {c.stdout!r}"
        if st.get("id") != cid or st.get("status") not in STATUSES:
            return f"state printed {st}"
    elif c.args[0] == "list":
        try:
            docs = json.loads(c.stdout)
        except ValueError:
            return f"list printed no JSON: {c}, stdout {c.stdout!r}"
        for st in docs:
            if st.get("id") == cid and st.get("status") not in STATUSES:
                return f"list shows {st}"
    return None


@pytest.mark.parametrize("rnd", range(5))
def test_racing_commands_on_one_container(rt, bundle, unique_id, rnd):
    base = _baseline()
    b = bundle(SLEEP)
    rt("create", "--bundle", b, unique_id)
    rt("start", unique_id)
    init = rt.state(unique_id)["pid"]
    calls = gated(rt, _mix(unique_id, random.Random(rnd)))
    problems = finish_all(calls)
    for c in calls:
        if c.rc is not None:
            bad = _check_racing(c, unique_id)
            if bad:
                problems.append(bad)
    deletes = [c for c in calls if c.args[0] == "delete"]
    if not any(c.rc == 0 for c in deletes):
        problems.append("no `delete -f` succeeded: " + "; ".join(map(str, deletes)))
    r = rt("state", unique_id, check=False)
    if r.returncode == 0 or "does not exist" not in r.stderr:
        problems.append(f"after `delete -f` won, state says: exit {r.returncode} {r.stdout}{r.stderr}")
    rt("delete", "-f", unique_id)
    rt.reap()
    if pid_alive(init):
        problems.append(f"the init {init} is alive after delete -f")
    if rt.cgroup_dirs(b.name):
        problems.append(f"cgroup left: {rt.cgroup_dirs(b.name)}")
    if os.path.exists(rt.state_root / unique_id):
        problems.append(f"state directory left: {os.listdir(rt.state_root / unique_id)}")
    strays = live_strays(base, set())
    if strays:
        problems.append(f"processes left: {strays}")
    assert not problems, "\n".join(problems)


# --- 3. 200 create/start/delete loops at once --------------------------------------------

N_LOOPS = 200


def test_200_concurrent_lifecycles(rt, bundle, new_id):
    proto = bundle(["true"])
    cfg = json.loads((proto / "config.json").read_text())
    cfg["root"]["path"] = str(proto / "rootfs")
    jobs = []
    for _ in range(N_LOOPS):
        cid = new_id()
        b = proto.parent / f"{cid}-bundle"
        b.mkdir()
        cfg["linux"]["cgroupsPath"] = cid
        (b / "config.json").write_text(json.dumps(cfg))
        jobs.append((cid, b))
    io = rt.io / "loops"
    io.mkdir()
    base_argv = [rt.binary, "--root", str(rt.state_root)]
    env = rt._env(None)

    def call(cid, step, *args):
        out_p, err_p = io / f"{cid}.{step}.out", io / f"{cid}.{step}.err"
        with open(out_p, "w") as out, open(err_p, "w") as err:
            try:
                p = subprocess.run([*base_argv, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   env=env, timeout=CALL_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"`{' '.join(args)}` timed out after {CALL_TIMEOUT}s") from None
        return p.returncode, out_p.read_text(), err_p.read_text()

    def must(cid, step, *args):
        rc, out, err = call(cid, step, *args)
        if rc != 0 or "Traceback" in err:
            raise AssertionError(f"`{' '.join(args)}` exited {rc}: {err.strip()}")
        return out

    barrier = threading.Barrier(N_LOOPS)
    results: dict[str, str] = {}  # cid -> "ok" or what went wrong

    def loop(cid, b):
        try:
            barrier.wait(timeout=60)
            must(cid, "create", "create", "--bundle", str(b), cid)
            st = json.loads(must(cid, "state1", "state", cid))
            if st["status"] != "created" or st["pid"] <= 0:
                raise AssertionError(f"after create: {st}")
            pid = st["pid"]
            must(cid, "start", "start", cid)
            deadline = time.monotonic() + CALL_TIMEOUT
            n = 0
            while True:
                n += 1
                st = json.loads(must(cid, f"poll{n}", "state", cid))
                if st["status"] == "stopped":
                    break
                if st["status"] != "running" or time.monotonic() > deadline:
                    raise AssertionError(f"waiting for stopped: {st}")
                time.sleep(0.05)
            try:  # the init is our child (we are its subreaper): reap it, as a shim does
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            must(cid, "delete", "delete", cid)
            rc, _, err = call(cid, "state2", "state", cid)
            if rc == 0 or "does not exist" not in err:
                raise AssertionError(f"after delete, state: exit {rc}: {err.strip()}")
            results[cid] = "ok"
        except BaseException as e:  # noqa: BLE001 - reported below
            results[cid] = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=loop, args=job, daemon=True) for job in jobs]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1, t0 + 170 - time.monotonic()))
    wall = time.monotonic() - t0
    rt.reap()
    print(f"{N_LOOPS} concurrent create/start/delete loops: {wall:.1f} s")
    failed = {cid: why for cid, why in results.items() if why != "ok"}
    lost = [cid for cid, _ in jobs if cid not in results]
    left = sorted(os.listdir(rt.state_root))
    assert not failed and not lost and not left, (
        f"{len(failed)} of {N_LOOPS} loops failed, {len(lost)} never finished, "
        f"{len(left)} state dirs left ({left[:5]}); wall {wall:.1f} s\n"
        + "\n".join(f"{cid}: {why}" for cid, why in sorted(failed.items())[:20]))
    assert wall < 90, f"{N_LOOPS} loops took {wall:.1f} s (budget 90 s)"
