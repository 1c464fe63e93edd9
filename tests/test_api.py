"""The library (ocirun/api.py), used in this process as a Python program would: typed state,
the error kinds, reaping, no leaked fd, thread or signal handler, and calls from threads."""
import os
import signal
import threading
from pathlib import Path

import pytest

import ocirun


@pytest.fixture
def api(state_root):
    return ocirun.Runtime(root=str(state_root))


def _host_status(pid: int, key: str) -> str:
    return next(ln.split(":", 1)[1].strip() for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                if ln.startswith(key + ":"))


def test_lifecycle(api, bundle, unique_id):
    c = api.create(unique_id, str(bundle(["sleep", "1000"])))
    st = c.state()
    assert isinstance(st, ocirun.State) and st.status == "created" and st.pid == c.pid
    assert _host_status(c.pid, "NSpid").split()[-1] == "1", "the init is pid 1 in its namespace"
    c.start()
    assert c.state().status == "running", "start() returns once the init has run its execve"
    assert c.exec(["sh", "-c", "exit 3"]) == 3
    p = c.exec(["sleep", "0.1"], detach=True)
    assert isinstance(p, ocirun.Process) and p.wait() == 0
    assert c.pid in c.ps()
    assert [x.id for x in api.list()] == [unique_id]
    c.kill(signal.SIGKILL)
    assert c.wait() == 128 + signal.SIGKILL
    assert c.state().status == "stopped"
    c.delete()
    with pytest.raises(ocirun.NotFound):
        api.get(unique_id)


def test_run_gives_the_exit_code(api, bundle, unique_id):
    c = api.run(unique_id, str(bundle(["sh", "-c", "exit 7"])))
    assert c.wait() == 7
    c.delete()


def test_error_kinds(api, bundle, unique_id, tmp_path):
    with pytest.raises(ocirun.NotFound) as e:
        api.get("nope")
    assert isinstance(e.value, ocirun.Error) and e.value.where == "nope"
    b = str(bundle(["sleep", "1000"]))
    c = api.run(unique_id, b)
    with pytest.raises(ocirun.AlreadyExists):
        api.create(unique_id, b)
    with pytest.raises(ocirun.WrongState) as ws:
        c.start()
    assert ws.value.status == "running"
    with pytest.raises(ocirun.WrongState):
        c.delete()
    c.delete(force=True)
    bad = bundle(["true"], process={"args": []})
    with pytest.raises(ocirun.ConfigError) as ce:
        api.create(unique_id, str(bad))
    assert ce.value.path == "process.args"


def test_pause_update_stats_events(api, bundle, unique_id):
    c = api.run(unique_id, str(bundle(["sleep", "1000"])))
    c.pause()
    assert c.state().status == "paused"
    c.resume()
    assert c.state().status == "running"
    c.update({"pids": {"limit": 42}})
    assert c.exec(["sh", "-c", "test \"$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || "
                   "cat /sys/fs/cgroup/pids.max)\" = 42"]) == 0
    assert c.stats()["pids"]["limit"] == 42
    event = next(iter(c.events(interval=0.1)))
    assert event["type"] == "stats" and event["id"] == unique_id
    c.delete(force=True)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    return int(_host_status(os.getpid(), "VmRSS").split()[0])


def test_a_hundred_containers_leak_nothing(api, bundle, new_id):
    """psutil's leak-test shape: warm up, then 100 create/start/wait/delete in a row; the same
    fds, the same threads, the same signal handlers, and memory within a bound."""
    b = str(bundle(["true"]))

    def once():
        c = api.run(new_id(), b)
        assert c.wait() == 0
        c.delete()
    for _ in range(10):
        once()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGWINCH)}
    fds, threads, rss = _open_fds(), threading.active_count(), _rss_kib()
    for _ in range(100):
        once()
    assert _open_fds() == fds
    assert threading.active_count() == threads
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert _rss_kib() - rss < 4096, "more than 4 MiB more after 100 containers"


def test_threads(api, bundle, new_id):
    """Containers made and removed from four threads at once."""
    b = [str(bundle(["sh", "-c", f"exit {i}"])) for i in range(4)]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(5):
                c = api.run(new_id(), b[i])
                results.setdefault(i, []).append(c.wait())
                c.delete()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert results == {i: [i] * 5 for i in range(4)}
