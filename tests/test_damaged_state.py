"""Damaged state: a truncated, empty or garbage state.json, a state directory with files missing,
and a state root that is full, read-only, missing or not a directory.

Every command must give one clear line naming the file at fault (no traceback, no "internal
error"), exit non-zero, and `delete -f` must still clean up what it can find; `list` and `state`
must answer and report what is really there. The autouse leak guard checks that nothing
(process, cgroup, mount, fifo, state directory) is left behind.

The state store (ocirun/state.py): ROOT/ID/ (its flock is the container's lock),
ROOT/ID/init.json (the cgroups, then the init's pid, written by create as it goes),
ROOT/ID/state.json (written when create has finished), ROOT/ID/exec.fifo (until start).
"""
import json
import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager

import pytest

SLEEP = ["sleep", "1000"]
COMMANDS = [("state",), ("start",), ("kill", "KILL"), ("pause",), ("exec", None, "true"), ("delete",)]


# --- helpers ------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def _argv(cmd, cid):
    """A COMMANDS entry with the id put in (after the command, or where None stands)."""
    if None in cmd:
        return [cid if a is None else a for a in cmd]
    return [cmd[0], cid, *cmd[1:]]


def _clean_line(rt, args, mentions=(), **kw) -> str:
    """expect_error, and the line is an ocirun error, not a bug's "internal error"."""
    line = rt.expect_error(*args, mentions=mentions, **kw)
    assert "traceback" not in line.lower() and "internal error" not in line.lower(), line
    return line


def _no_traceback(r):
    text = r.stdout + r.stderr
    assert "Traceback" not in text and "internal error" not in text, text


def _make(rt, bundle, cid, running: bool):
    b = bundle(SLEEP)
    rt("create", "--bundle", b, cid)
    if running:
        rt("start", cid)
    pid = rt.state(cid)["pid"]
    assert _alive(pid)
    return b, pid


def _wait_dead(rt, pid, timeout=2.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        rt.reap()
        if not _alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _scrub(rt, cid, pid, bundle_name):
    """What ocirun could not (or did not) clean up, by hand: the init (by its pid), the
    cgroups of the bundle (deepest first) and the state directory."""
    if pid and _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_dead(rt, pid)
    for d in sorted(rt.cgroup_dirs(bundle_name), key=len, reverse=True):
        for _ in range(200):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                try:
                    with open(os.path.join(d, "cgroup.kill"), "w") as f:
                        f.write("1")
                except OSError:
                    pass
                time.sleep(0.01)
    shutil.rmtree(rt.state_root / cid, ignore_errors=True)


@contextmanager
def _scrubbed_on_failure(rt, cid, pid, bundle_name):
    try:
        yield
    except BaseException:
        _scrub(rt, cid, pid, bundle_name)
        raise


def _assert_cleaned(rt, cid, pid, bundle_name):
    assert _wait_dead(rt, pid), f"init {pid} still alive after delete -f"
    assert rt.cgroup_dirs(bundle_name) == [], f"cgroups left: {rt.cgroup_dirs(bundle_name)}"
    assert not (rt.state_root / cid).exists(), f"state dir left: {os.listdir(rt.state_root / cid)}"


def _check_list_names(rt, cid, path):
    """`list` exits 0 without a traceback and does not hang; the damaged container is either
    listed or named in a warning on stderr (which of the two is ocirun's choice, being
    settled in ocirun/cli.py: either is fine, silently leaving it out is not)."""
    for args in (("list",), ("list", "--format", "json"), ("list", "-q")):
        r = rt(*args, check=False, timeout=10)
        assert r.returncode == 0, f"{' '.join(args)} exited {r.returncode}: {r.stderr}"
        _no_traceback(r)
        if "json" in args:
            json.loads(r.stdout or "null")  # a warning goes to stderr, never into the JSON
        shown = cid in r.stdout
        warned = any(str(path) in ln or ("state.json" in ln and cid in ln) for ln in r.stderr.splitlines())
        assert shown or warned, (f"{' '.join(args)}: the damaged {cid} is neither listed nor warned "
                                 f"about\nstdout: {r.stdout}\nstderr: {r.stderr}")


# --- 1. a damaged state.json ----------------------------------------------------------------------

def _put(data: bytes):
    def damage(path):
        path.write_bytes(data)
    return damage


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _make_dir(path):
    path.unlink()
    path.mkdir()


def _make_full_dir(path):
    # A non-empty directory: rmdir alone can't take it. delete -f is still expected to remove
    # the whole state directory, which is ocirun's own (runc's delete does os.RemoveAll).
    _make_dir(path)
    (path / "x").write_text("{}")


DAMAGES = {
    "empty": _put(b""),
    "garbage": _put(b"\x00\x01garbage \x7f{{{ not json"),
    "cut-in-half": _cut_in_half,
    "not-utf8": _put(b"\xff\xfe\x00{\"pid\": 1}"),
    "json-list": _put(b"[]"),
    "json-empty-object": _put(b"{}"),
    "json-wrong-types": _put(b'{"pid": "x"}'),
    "json-no-private-part": _put(b'{"ociVersion": "1.3.0", "id": "x", "pid": 1, "status": "running"}'),
    "directory": _make_dir,
    "directory-not-empty": _make_full_dir,
}


@pytest.mark.parametrize("running", [False, True], ids=["created", "running"])
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_state_json(rt, bundle, unique_id, damage, running):
    b, pid = _make(rt, bundle, unique_id, running)
    path = rt.state_root / unique_id / "state.json"
    with _scrubbed_on_failure(rt, unique_id, pid, b.name):
        DAMAGES[damage](path)
        for cmd in COMMANDS:
            _clean_line(rt, _argv(cmd, unique_id), mentions=["state.json"])
        assert _alive(pid), "a failed command must not have touched the container"
        # delete -f cleans up from init.json, and still says that state.json was damaged
        _clean_line(rt, ["delete", "-f", unique_id], mentions=["state.json"])
        _assert_cleaned(rt, unique_id, pid, b.name)
        r = rt("state", unique_id, check=False)
        assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr


@pytest.mark.parametrize("damage", ["empty", "garbage", "json-wrong-types", "directory"])
def test_list_with_a_damaged_state_json(rt, bundle, new_id, damage):
    # A healthy container next to the damaged one is still listed as it is.
    ok, bad = new_id(), new_id()
    rt("create", "--bundle", bundle(SLEEP), ok)
    b, pid = _make(rt, bundle, bad, running=True)
    path = rt.state_root / bad / "state.json"
    try:
        DAMAGES[damage](path)
        _check_list_names(rt, bad, path)
        entries = {e["id"]: e for e in json.loads(rt("list", "--format", "json").stdout)}
        assert entries[ok]["status"] == "created", entries
    finally:
        # This test is about list: what delete -f leaves of the damaged one (see
        # test_damaged_state_json) is scrubbed here, so that the leak guard judges list alone.
        rt("delete", "-f", bad, check=False)
        _scrub(rt, bad, pid, b.name)
        rt("delete", "-f", ok)


@pytest.mark.parametrize("running", [False, True], ids=["created", "running"])
def test_state_json_removed_is_a_create_that_died(rt, bundle, unique_id, running):
    # No state.json, init.json there, nobody holding the lock: a create that died. `state`
    # says "stopped" (as designed, though the init recorded in init.json still lives), the
    # other commands refuse with one line, and delete -f cleans up from init.json, exit 0.
    b, pid = _make(rt, bundle, unique_id, running)
    with _scrubbed_on_failure(rt, unique_id, pid, b.name):
        (rt.state_root / unique_id / "state.json").unlink()
        st = rt.state(unique_id)
        assert st["id"] == unique_id and st["status"] == "stopped", st
        for cmd in COMMANDS[1:-1]:  # start, kill, pause, exec
            _clean_line(rt, _argv(cmd, unique_id), mentions=[unique_id])
        r = rt("list", "--format", "json", timeout=10)
        _no_traceback(r)
        assert {e["id"]: e["status"] for e in json.loads(r.stdout)}.get(unique_id) == "stopped", r.stdout
        r = rt("delete", "-f", unique_id, check=False)
        assert r.returncode == 0, r.stderr
        _no_traceback(r)
        _assert_cleaned(rt, unique_id, pid, b.name)


def _rm(path):
    path.unlink()


INIT_DAMAGES = {
    "removed": _rm,
    "garbage": _put(b"\x00 not json"),
    "json-list": _put(b"[]"),
    # the wrong types where ocirun expects a pid, a start time and lists of directories
    "json-wrong-types": _put(b'{"pid": "x", "start_time": [], "cgroup_dirs": 5, "cgroup_made": 7}'),
}


@pytest.mark.parametrize("init_damage", list(INIT_DAMAGES))
def test_damaged_state_json_and_init_json(rt, bundle, unique_id, init_damage):
    # With init.json gone too, nothing says where the init and its cgroups are: delete -f can
    # only remove the state directory (and says state.json was damaged). What remains is the
    # init process (still waiting on its exec fifo's O_PATH fd) and the bundle's cgroups; the
    # test kills the init by the pid it read before and removes the cgroups itself.
    b, pid = _make(rt, bundle, unique_id, running=False)
    d = rt.state_root / unique_id
    try:
        (d / "state.json").write_bytes(b"garbage")
        INIT_DAMAGES[init_damage](d / "init.json")
        for cmd in COMMANDS:
            _clean_line(rt, _argv(cmd, unique_id), mentions=["state.json"])
        _clean_line(rt, ["delete", "-f", unique_id], mentions=["state.json"])
        assert not d.exists(), f"state dir left: {os.listdir(d)}"
        r = rt("state", unique_id, check=False)
        assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr
    finally:
        _scrub(rt, unique_id, pid, b.name)


# --- 2. a state directory with files missing -----------------------------------------------------

def test_exec_fifo_removed(rt, bundle, unique_id):
    b, pid = _make(rt, bundle, unique_id, running=False)
    with _scrubbed_on_failure(rt, unique_id, pid, b.name):
        (rt.state_root / unique_id / "exec.fifo").unlink()
        # The init has not run its program (its exe is still the sealed one): by the spec's
        # definition the container is "created", not "running", though it can't be started.
        r = rt("state", unique_id)
        _no_traceback(r)
        assert json.loads(r.stdout)["status"] == "created", r.stdout
        _clean_line(rt, ["start", unique_id], mentions=["exec.fifo"])
        assert _alive(pid)
        r = rt("delete", "-f", unique_id, check=False)
        assert r.returncode == 0, r.stderr
        _assert_cleaned(rt, unique_id, pid, b.name)


def test_init_json_removed_changes_nothing(rt, bundle, unique_id):
    b, pid = _make(rt, bundle, unique_id, running=False)
    with _scrubbed_on_failure(rt, unique_id, pid, b.name):
        (rt.state_root / unique_id / "init.json").unlink()
        assert rt.state(unique_id)["status"] == "created"
        rt("start", unique_id)
        assert rt.state(unique_id)["status"] == "running"
        rt("pause", unique_id)
        assert rt.state(unique_id)["status"] == "paused"
        rt("resume", unique_id)
        assert rt("exec", unique_id, "true").returncode == 0
        rt("kill", unique_id, "KILL")
        rt.wait_status(unique_id, "stopped")
        rt("delete", unique_id)
        _assert_cleaned(rt, unique_id, pid, b.name)


@pytest.mark.parametrize("force", [False, True], ids=["delete", "delete-f"])
def test_empty_state_dir_is_stopped(rt, unique_id, force):
    d = rt.state_root / unique_id
    d.mkdir(mode=0o700)
    try:
        st = rt.state(unique_id)
        assert st["status"] == "stopped" and st["pid"] == 0, st
        r = rt("list", "--format", "json", timeout=10)
        _no_traceback(r)
        assert {e["id"]: e["status"] for e in json.loads(r.stdout)}.get(unique_id) == "stopped", r.stdout
        _clean_line(rt, ["start", unique_id], mentions=[unique_id])
        r = rt("delete", *(["-f"] if force else []), unique_id, check=False)
        assert r.returncode == 0, r.stderr
        assert not d.exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- 3. the state root: full, read-only, missing, a file -----------------------------------------

@contextmanager
def _tmpfs(path, opts):
    """A tmpfs on `path` (the test's marked state_root), private, unmounted afterwards."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-private", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _fill(root):
    with open(root / "fill", "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == 28, e  # ENOSPC
                break
        chunk = b"\0" * 512
        while True:  # the last part of a page
            try:
                f.write(chunk)
            except OSError:
                break
    with pytest.raises(OSError):
        (root / "probe").write_bytes(b"x" * 4096)


def test_full_root_create_fails_cleanly(rt, bundle, state_root, unique_id):
    b = bundle(SLEEP)
    with _tmpfs(state_root, "size=1m,mode=0700"):
        _fill(state_root)
        line = _clean_line(rt, ["create", "--bundle", b, unique_id], mentions=[str(state_root)])
        assert any(w in line.lower() for w in ("space", "full")), line
        assert rt.cgroup_dirs(b.name) == []
        assert not (state_root / unique_id).exists()
        r = rt("state", unique_id, check=False)
        assert r.returncode != 0 and "does not exist" in r.stderr


def test_full_root_existing_container_still_deletes(rt, bundle, state_root, unique_id):
    b = bundle(SLEEP)
    with _tmpfs(state_root, "size=1m,mode=0700"):
        rt("create", "--bundle", b, unique_id)
        pid = rt.state(unique_id)["pid"]
        with _scrubbed_on_failure(rt, unique_id, pid, b.name):
            _fill(state_root)
            assert rt.state(unique_id)["status"] == "created"
            rt("start", unique_id)
            assert rt.state(unique_id)["status"] == "running"
            _no_traceback(rt("list"))
            rt("delete", "-f", unique_id)
            _assert_cleaned(rt, unique_id, pid, b.name)


def test_read_only_root(rt, bundle, state_root, unique_id):
    b = bundle(SLEEP)
    with _tmpfs(state_root, "ro,mode=0700"):
        _clean_line(rt, ["create", "--bundle", b, unique_id], mentions=[str(state_root)])
        assert rt.cgroup_dirs(b.name) == []
        r = rt("list", timeout=10)
        _no_traceback(r)
        r = rt("list", "--format", "json", timeout=10)
        assert json.loads(r.stdout or "null") in (None, [])
        _clean_line(rt, ["state", unique_id], mentions=["does not exist"])
        r = rt("delete", "-f", unique_id, check=False)
        assert r.returncode == 0, r.stderr


def test_read_only_root_with_a_container(rt, bundle, state_root, unique_id):
    # Made read-only under a created container: reading works; delete -f kills it and removes
    # its cgroups, then fails with one line naming what it could not remove; once the root is
    # writable again, delete -f finishes.
    b = bundle(SLEEP)
    with _tmpfs(state_root, "size=1m,mode=0700"):
        rt("create", "--bundle", b, unique_id)
        pid = rt.state(unique_id)["pid"]
        with _scrubbed_on_failure(rt, unique_id, pid, b.name):
            subprocess.run(["mount", "-o", "remount,ro", str(state_root)], check=True)
            try:
                assert rt.state(unique_id)["status"] == "created"
                r = rt("list", timeout=10)
                _no_traceback(r)
                assert unique_id in r.stdout
                _clean_line(rt, ["delete", "-f", unique_id], mentions=[str(state_root / unique_id)])
                assert _wait_dead(rt, pid), "delete -f on a read-only root must still kill the init"
                assert rt.cgroup_dirs(b.name) == [], "delete -f on a read-only root must remove the cgroups"
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(state_root)], check=True)
            r = rt("delete", "-f", unique_id, check=False)
            assert r.returncode == 0, r.stderr
            _assert_cleaned(rt, unique_id, pid, b.name)


def test_root_that_does_not_exist(rt, bundle, state_root, unique_id):
    state_root.rmdir()
    r = rt("list", timeout=10)
    _no_traceback(r)
    assert [ln for ln in r.stdout.splitlines()[1:] if ln.strip()] == [], r.stdout
    assert json.loads(rt("list", "--format", "json").stdout or "null") in (None, [])
    _clean_line(rt, ["state", unique_id], mentions=["does not exist"])
    assert rt("delete", "-f", unique_id, check=False).returncode == 0
    assert not state_root.exists(), "delete -f must not make the root"
    b = bundle(SLEEP)
    rt("create", "--bundle", b, unique_id)
    assert state_root.is_dir()
    assert rt.state(unique_id)["status"] == "created"
    rt("delete", "-f", unique_id)
    assert rt.cgroup_dirs(b.name) == []


@pytest.mark.parametrize("cmd", [("create",), ("list",), ("list", "--format", "json"), ("state",)],
                         ids=["create", "list", "list-json", "state"])
def test_root_is_a_file(rt, bundle, state_root, unique_id, cmd):
    state_root.rmdir()
    state_root.write_text("not a directory\n")
    try:
        if cmd == ("create",):
            b = bundle(SLEEP)
            args = ["create", "--bundle", b, unique_id]
        elif cmd[0] == "list":
            args = list(cmd)
        else:
            args = [*cmd, unique_id]
        _clean_line(rt, args, mentions=[str(state_root)])
        if cmd == ("create",):
            assert rt.cgroup_dirs(b.name) == []
    finally:
        state_root.unlink()
        state_root.mkdir()
