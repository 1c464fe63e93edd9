"""containerd 1.6 through `ctr`, with the runc v2 shim calling ocirun as its runc binary
(`ctr run --runc-binary`): what a user sees.

containerd runs on the session's private socket, root and state (conftest.py); every container
lives in the namespace ocitest-XXXXXX, whose cgroups are /ocitest-XXXXXX/<id>.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from integ_support import Pty, cgroup_dirs, wait_for

pytestmark = pytest.mark.usefixtures("ctr")

LOOP = "trap 'exit 0' TERM; {pre} while :; do sleep 0.1; done"


def run_d(ctr, *args, opts=(), log=None) -> str:
    """`ctr run -d`; the container's id. Output goes to `log` (a file) or nowhere."""
    name = ctr.name()
    io = ["--log-uri", f"file://{log}"] if log else ["--null-io"]
    ctr("run", "-d", *io, *ctr.runtime_flags, *opts, ctr.image, name, *args)
    wait_for(lambda: ctr.tasks().get(name, {}).get("status") == "RUNNING", what=f"{name} running")
    return name


def task(ctr, name) -> dict:
    return ctr.tasks().get(name, {})


def cgroup(ctr, name, controller) -> Path:
    p = Path(f"/sys/fs/cgroup/{controller}/{ctr.namespace}/{name}")
    assert p.is_dir(), f"no cgroup {p}"
    return p


# --- ctr run --rm --------------------------------------------------------------------------

def test_ctr_run_rm(ctr):
    name = ctr.name()
    r = ctr("run", "--rm", *ctr.runtime_flags, ctr.image, name, "echo", "hello from ctr")
    assert r.stdout == "hello from ctr\n"

    name = ctr.name()
    r = ctr("run", "--rm", *ctr.runtime_flags, "--env", "FOO=bar", "--cwd", "/tmp", ctr.image, name,
            "sh", "-c", 'echo "$FOO $(pwd)"; echo err >&2; exit 4', check=False)
    assert r.returncode == 4, r.stderr
    assert r.stdout == "bar /tmp\n"
    assert "err" in r.stderr
    # --rm: nothing left, neither container nor task nor cgroup.
    assert name not in ctr.containers() and name not in ctr.tasks()
    assert not cgroup_dirs([name])

    # (ctr run does not close the container's stdin at EOF of its own, with any runtime: stdin is
    # checked with podman.)


def test_ctr_run_tty(ctr):
    name = ctr.name()
    t = Pty(ctr.argv("run", "--rm", "-t", *ctr.runtime_flags, ctr.image, name, "sh"), ctr.env, rows=25, cols=90)
    try:
        # ctr sizes the terminal only after the task has started: wait for the shell's prompt.
        t.expect(r"# ")
        t.send("tty; stty size; echo $((6*7))\n")
        t.expect(r"/dev/(pts/\d+|console)")
        t.expect(r"25 90")
        t.expect(r"42")
        t.send("exit 6\n")
        assert t.wait() == 6
    finally:
        t.kill()


# --- ctr task exec -------------------------------------------------------------------------

def test_ctr_task_exec(ctr):
    name = run_d(ctr, "sh", "-c", LOOP.format(pre=""))
    r = ctr("task", "exec", "--exec-id", "e1", name, "sh", "-c", "echo in-$(cat /proc/1/comm); echo err >&2; exit 3",
            check=False)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "in-sh\n"
    assert "err" in r.stderr
    r = ctr("task", "exec", "--exec-id", "e2", "--cwd", "/tmp", "--user", "1000", name, "sh", "-c", "pwd; id -u")
    assert r.stdout.split() == ["/tmp", "1000"]
    r = ctr("task", "exec", "--exec-id", "e3", name, "cat", input="exec stdin\n")
    assert r.stdout == "exec stdin\n"
    r = ctr("task", "exec", "--exec-id", "e4", name, "/no/such/program", check=False)
    assert r.returncode != 0
    assert re.search(r"no such file|not found", r.stderr, re.I), r.stderr
    assert task(ctr, name)["status"] == "RUNNING"


def test_ctr_task_exec_tty(ctr):
    name = run_d(ctr, "sh", "-c", LOOP.format(pre=""))
    t = Pty(ctr.argv("task", "exec", "-t", "--exec-id", "t1", name, "sh"), ctr.env, rows=30, cols=70)
    try:
        t.expect(r"# ")
        t.send("tty; stty size\n")
        t.expect(r"/dev/pts/\d+")
        t.expect(r"30 70")
        t.send("exit 2\n")
        assert t.wait() == 2
    finally:
        t.kill()


# --- ctr task kill -------------------------------------------------------------------------

def test_ctr_task_kill(ctr, tmp_path):
    log = tmp_path / "out.log"
    name = run_d(ctr, "sh", "-c", LOOP.format(pre="trap 'echo got-usr1' USR1; echo ready;"), log=log)
    wait_for(lambda: log.exists() and "ready" in log.read_text(), what="ready in the log")
    ctr("task", "kill", "--signal", "SIGUSR1", name)
    wait_for(lambda: "got-usr1" in log.read_text(), what="the USR1 trap's output")
    assert task(ctr, name)["status"] == "RUNNING"

    ctr("task", "kill", name)  # SIGTERM: the trap exits 0
    wait_for(lambda: task(ctr, name).get("status") == "STOPPED", what="the task to stop")
    r = ctr("task", "delete", name)
    assert re.search(r"\b0\b", r.stdout) or r.stdout.strip() == "", r.stdout
    ctr("containers", "delete", name)

    # SIGKILL, and --all, on a task whose init ignores SIGTERM.
    name = run_d(ctr, "sh", "-c", "sleep 1000 & sleep 1000")
    ctr("task", "kill", "--signal", "SIGTERM", name)
    time.sleep(0.5)
    assert task(ctr, name)["status"] == "RUNNING"  # pid 1 without a handler ignores SIGTERM
    ctr("task", "kill", "--all", "--signal", "SIGKILL", name)
    wait_for(lambda: task(ctr, name).get("status") == "STOPPED", what="the task to stop on SIGKILL")
    ctr("task", "delete", name)
    ctr("containers", "delete", name)
    wait_for(lambda: not cgroup_dirs([name]), what="the task's cgroups to be removed")


# --- ctr task pause / resume ---------------------------------------------------------------

def test_ctr_task_pause_resume(ctr, tmp_path, host):
    d = tmp_path / "counter"
    d.mkdir()
    name = run_d(ctr, "sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo $i > /out/n; sleep 0.05; done",
                 opts=("--mount", f"type=bind,src={d},dst=/out,options=rbind:rw"))
    n = d / "n"
    wait_for(lambda: n.exists() and n.read_text().strip(), what="the counter")
    ctr("task", "pause", name)
    assert task(ctr, name)["status"] == "PAUSED"
    if "freezer" in host.v1:
        assert (cgroup(ctr, name, "freezer") / "freezer.state").read_text().strip() == "FROZEN"
    time.sleep(0.2)
    a = n.read_text()
    time.sleep(0.6)
    assert n.read_text() == a, "the counter advanced while paused"
    ctr("task", "resume", name)
    assert task(ctr, name)["status"] == "RUNNING"
    wait_for(lambda: n.read_text() not in ("", a), timeout=5, what="the counter to advance after resume")


# --- ctr task ps ---------------------------------------------------------------------------

def test_ctr_task_ps(ctr):
    name = run_d(ctr, "sh", "-c", "sleep 1000 & sleep 1001 & wait")
    init = task(ctr, name)["pid"]

    def pids():
        out = ctr("task", "ps", name).stdout.splitlines()
        assert out and out[0].split()[0] == "PID", out
        return {int(ln.split()[0]) for ln in out[1:] if ln.strip()}

    def three():
        p = pids()
        return p if len(p) == 3 else None

    got = wait_for(three, what="3 processes in task ps")
    assert init in got
    # They are the container's processes: host pids in its pids cgroup.
    for pid in got:
        cg = Path(f"/proc/{pid}/cgroup").read_text()
        assert f"/{ctr.namespace}/{name}" in cg, (pid, cg)
    cmds = {Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in got if Path(f"/proc/{p}").exists()}
    assert b"sleep" in cmds and b"sh" in cmds, cmds


# --- ctr task metrics ----------------------------------------------------------------------

def test_ctr_task_metrics(ctr, host):
    name = run_d(ctr, "sh", "-c", "sleep 1000 & " + LOOP.format(pre=""), opts=("--memory-limit", str(96 << 20)))
    wait_for(lambda: len(ctr("task", "ps", name).stdout.splitlines()) >= 3, what="the sleep")
    table = ctr("task", "metrics", name).stdout
    assert re.search(r"^ID\s+TIMESTAMP", table, re.M), table
    assert name in table
    raw = ctr("task", "metrics", "--format", "json", name).stdout
    m = json.loads(raw)
    if host.cgroup2_only:
        assert m["pids"]["current"] >= 2, m
        assert m["memory"]["usage"] > 0 and m["memory"]["usage_limit"] == 96 << 20, m
    else:
        assert m["pids"]["current"] >= 2, m
        assert m["memory"]["usage"]["usage"] > 0, m
        assert m["memory"]["usage"]["limit"] == 96 << 20, m
        assert m["cpu"]["usage"]["total"] > 0, m
    assert re.search(r"pids\.current\s+\d+", table) or "memory" in table, table


# --- a task created and then removed, never started ----------------------------------------

def test_ctr_removes_a_created_task(ctr, tmp_path):
    """What containerd does with a task that was created and never started (here its start
    fails) when it is removed (`ctr task rm --force`; CRI's cleanup after a failed start does
    the same): the shim sends `kill --all ID 9`, then a plain `delete ID` straight away, then
    `delete --force`. Here the killed init is gone by the plain delete, so it succeeds with the
    old refusal too; a `delete` of a container still `created` is checked on its own in
    tests/test_peer_behaviour.py. A wrapper refuses `start` and logs every call with its exit
    status."""
    log = tmp_path / "calls"
    wrapper = tmp_path / "runtime"
    wrapper.write_text(f"""#!/bin/sh
for a; do [ "$a" = start ] && {{ echo "start $*" >> {log}; echo "start refused by the test" >&2; exit 1; }}; done
{ctr.runtime_flags[1]} "$@"
rc=$?
echo "rc=$rc $*" >> {log}
exit $rc
""")
    wrapper.chmod(0o755)
    name = ctr.name()
    r = ctr("run", "--null-io", "--runc-binary", str(wrapper), ctr.image, name, "sleep", "100", check=False)
    assert r.returncode != 0 and "start refused by the test" in r.stderr
    assert task(ctr, name).get("status") == "CREATED"  # ctr run leaves it so
    ctr("task", "rm", "--force", name)
    calls = [line.split() for line in log.read_text().splitlines()]
    verbs = [next(w for w in c[1:] if w in ("create", "start", "kill", "delete", "state")) for c in calls]
    first_delete = verbs.index("delete")
    assert verbs[first_delete - 1] == "kill" and "--all" in calls[first_delete - 1], calls
    assert "--force" not in calls[first_delete], calls
    assert calls[first_delete][0] == "rc=0", f"the plain delete of the created task failed: {calls}"
    assert name not in ctr.tasks()
    assert not cgroup_dirs([name])
    ctr("container", "rm", name)
