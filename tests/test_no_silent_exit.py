"""No silent failure: every error path the CLI can reach exits non-zero with one `ocirun: MSG`
line on stderr (no traceback), and the last line of `--log` is an error line in the chosen
`--log-format` with the same MSG: containerd and conmon show only what the log says.

The walk is table-driven, in both formats: cases that need no container (flags, ids, bundles,
the root, the log itself), then cases against a container in each state (created, running,
paused, stopped). Then what has nowhere to go: a closed or broken stderr (the log still gets
the line), a broken stdout (`list`, `state`), and SIGTERM or ^C while a command runs.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

SLEEP = ["sleep", "1000"]
LOG = object()  # where in a case's argv `--log FILE --log-format FMT` goes (default: first)
TEXT_LINE = re.compile(r'^time="(\d{4}-\d\d-\d\dT[^"]+)" level=(\w+) msg="((?:[^"\\]|\\.)*)"$')
ID_COMMANDS = ("create", "start", "state", "kill", "delete", "run", "exec", "pause", "resume", "ps",
               "events", "update")


def _text_msg(quoted: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], quoted)


def _last_log_line(path, fmt) -> tuple[str, str]:
    """(level, msg) of the log's last line, which must be well formed in `fmt`."""
    lines = path.read_text().splitlines()
    assert lines, "the log is empty"
    if fmt == "json":
        doc = json.loads(lines[-1])
        assert set(doc) == {"level", "msg", "time"}, lines[-1]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", doc["time"]), lines[-1]
        return doc["level"], doc["msg"]
    m = TEXT_LINE.match(lines[-1])
    assert m, f"not a text log line: {lines[-1]!r}"
    return m[2], _text_msg(m[3])


def _stderr_msg(stderr: str) -> str:
    """MSG of stderr's one line, `ocirun: MSG`."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ocirun: "), f"want one `ocirun:` line: {stderr!r}"
    assert not lines[0].startswith(("ocirun: warning:", "ocirun: debug:")), stderr
    return lines[0][len("ocirun: "):]


def _fails(rt, tmp_path, fmt, args, *, log_fmt=None) -> str:
    """Run a call that must fail, with --log; check stderr and the log; return the message."""
    log = tmp_path / f"log-{time.monotonic_ns()}"
    flags = ["--log", log, "--log-format", log_fmt or fmt]
    args = list(args)
    argv = args[:args.index(LOG)] + flags + args[args.index(LOG) + 1:] if LOG in args else flags + args
    r = rt(*argv, check=False)
    assert r.returncode == 1, f"exit {r.returncode}, want 1; stderr: {r.stderr!r}"
    msg = _stderr_msg(r.stderr)
    assert log.is_file(), f"nothing reached the log; stderr: {msg!r}"
    level, logged = _last_log_line(log, "json" if (log_fmt or fmt) == "json" else "text")
    assert (level, logged) == ("error", msg), f"log has {level}: {logged!r}, stderr {msg!r}"
    return msg


def _walk(rt, tmp_path, fmt, cases) -> None:
    problems = []
    for name, args, mention in cases:
        args = [a() if callable(a) else a for a in args]
        try:
            msg = _fails(rt, tmp_path, fmt, args)
            assert mention.lower() in msg.lower(), f"does not mention {mention!r}: {msg!r}"
        except AssertionError as e:
            shown = " ".join("--log LOG" if a is LOG else str(a) for a in args)
            problems.append(f"{name}: ocirun {shown}: {e}")
    assert not problems, "\n".join(problems)


# --- no container needed ------------------------------------------------------------------

def _cases(tmp_path, bundle, cid):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    no_config = tmp_path / "no-config"
    no_config.mkdir()

    def bad_json():
        b = bundle(["true"])
        (b / "config.json").write_text('{"ociVersion": ')
        return b

    def bad_schema():
        return bundle(["true"], process={"args": []})

    cases = [
        ("no command", [], "command"),
        ("unknown command", ["bogus"], "bogus"),
        ("unknown global flag after --log", ["--bogus", "state", cid], "--bogus"),
        ("unknown global flag before --log", ["--bogus", LOG, "state", cid], "--bogus"),
        ("global flag without its value", [LOG, "--root"], "--root"),
        ("bad boolean global flag", ["--debug=maybe", "list"], "maybe"),
        ("unexpected argument", ["state", cid, "extra"], "extra"),
        ("invalid id", ["state", "../x"], "../x"),
        ("a quote in the message", ["state", 'a"b'], 'a"b'),
        ("bad --preserve-fds", ["create", "--preserve-fds", "x", cid], "--preserve-fds"),
        ("exec --preserve-fds", ["exec", "--preserve-fds", "x", cid, "true"], "--preserve-fds"),
        ("flag without its value", ["create", cid, "--bundle"], "--bundle"),
        ("bad boolean flag", ["kill", "--all=maybe", cid], "maybe"),
        ("list --format", ["list", "--format", "yaml"], "yaml"),
        ("ps --format", ["ps", "--format", "yaml", cid], "yaml"),
        ("bad signal", ["kill", cid, "NOSUCHSIG"], "NOSUCHSIG"),
        ("events --interval", ["events", "--interval", "soon", cid], "soon"),
        ("update without resources", ["update", cid], "resources"),
        ("update --memory", ["update", "--memory", "lots", cid], "lots"),
        ("update --resources missing", ["update", "--resources", tmp_path / "none.json", cid], "none.json"),
        ("missing bundle", ["create", "--bundle", tmp_path / "no-bundle", cid], "no-bundle"),
        ("no config.json", ["create", "--bundle", no_config, cid], "config.json"),
        ("bad JSON", ["create", "--bundle", bad_json, cid], "config.json"),
        ("schema violation", ["create", "--bundle", bad_schema, cid], "args"),
        ("run, missing bundle", ["run", "--bundle", tmp_path / "no-bundle", cid], "no-bundle"),
        ("--root a file: state", ["--root", a_file, "state", cid], str(a_file)),
        ("--root a file: list", ["--root", a_file, "list"], str(a_file)),
        ("--root a file: delete", ["--root", a_file, "delete", cid], str(a_file)),
        ("spec over a config.json", ["spec", "--bundle", bundle(["true"])], "config.json"),
        ("spec, missing dir", ["spec", "--bundle", tmp_path / "no-dir"], "no-dir"),
    ]
    cases += [(f"{c} without an id", [c], c) for c in ID_COMMANDS]
    cases += [(f"{c}: unknown flag", [c, "--bogus", cid], "--bogus") for c in ID_COMMANDS]
    unknown = [["start"], ["state"], ["kill"], ["delete"], ["pause"], ["resume"], ["ps"],
               ["events", "--stats"], ["update", "--memory", "1m"], ["exec"]]
    cases += [(f"{a[0]} of an unknown container", [*a, cid] + (["true"] if a[0] == "exec" else []),
               "does not exist") for a in unknown]
    return cases


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_every_error_path_says_why(rt, bundle, unique_id, tmp_path, fmt):
    _walk(rt, tmp_path, fmt, _cases(tmp_path, bundle, unique_id))
    assert not rt.exists(unique_id)


def test_bad_log_format_still_logs_as_text(rt, tmp_path, unique_id):
    msg = _fails(rt, tmp_path, "text", ["state", unique_id], log_fmt="yaml")
    assert "yaml" in msg


@pytest.mark.parametrize("where", ["no-such-dir/log", "."])
def test_log_that_cannot_be_opened_is_named(rt, tmp_path, unique_id, where):
    log = tmp_path / where
    r = rt("--log", log, "--log-format", "json", "state", unique_id, check=False)
    assert r.returncode == 1
    msg = _stderr_msg(r.stderr)
    assert str(log) in msg and "log file" in msg and "internal error" not in msg, msg


# --- a container in each state -------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "text"])
def test_wrong_state_says_why(rt, bundle, new_id, tmp_path, fmt):
    created, running, paused, stopped, twice = (new_id() for _ in range(5))
    for cid in (created, running, paused, twice):  # a bundle each: its name is their cgroup's
        rt("create", "--bundle", bundle(SLEEP), cid)
    for cid in (running, paused):
        rt("start", cid)
    rt("pause", paused)
    rt("run", "--detach", "--bundle", bundle(["true"]), stopped)
    rt.wait_status(stopped, "stopped")
    rt("start", twice)
    resources = tmp_path / "resources.json"
    resources.write_text("[1, 2]")
    cases = [
        ("start a running one", ["start", running], "running"),
        ("start twice", ["start", twice], "running"),
        ("start a stopped one", ["start", stopped], "stopped"),
        ("start a paused one", ["start", paused], "paused"),
        ("create over an existing one", ["create", "--bundle", bundle(SLEEP), running], running),
        ("delete a running one", ["delete", running], "--force"),
        ("delete a paused one", ["delete", paused], "--force"),
        ("kill a stopped one", ["kill", stopped, "TERM"], "stopped"),
        ("pause a stopped one", ["pause", stopped], "stopped"),
        ("resume a running one", ["resume", running], "running"),
        ("exec into a stopped one", ["exec", stopped, "true"], "stopped"),
        ("exec into a created one", ["exec", created, "true"], "created"),
        ("exec into a paused one", ["exec", paused, "true"], "paused"),
        ("exec, bad --user", ["exec", "--user", "x:y:z", running, "true"], "user"),
        ("exec, missing --process", ["exec", "--process", tmp_path / "none.json", running], "none.json"),
        ("update, bad --memory", ["update", "--memory", "-5", running], "memory"),
        ("update, bad --blkio-weight", ["update", "--blkio-weight", "5", running], "blkio"),
        ("update, --resources not an object", ["update", "--resources", resources, running], "object"),
        ("ps --format", ["ps", "--format", "csv", running], "csv"),
        ("events --interval 0", ["events", "--interval", "0", running], "interval"),
        ("events --interval bad", ["events", "--interval", "1x", running], "1x"),
    ]
    _walk(rt, tmp_path, fmt, cases)
    for cid in (created, running, paused, stopped, twice):
        rt("delete", "--force", cid)


# --- nowhere to write -----------------------------------------------------------------------

def _broken_pipe():
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("how", ["broken pipe", "closed"])
def test_broken_stderr_still_logs(rt, tmp_path, unique_id, how):
    log = tmp_path / "log.json"
    argv = [rt.binary, "--root", str(rt.state_root), "--log", str(log), "--log-format", "json",
            "state", unique_id]
    if how == "closed":
        p = subprocess.run(["/bin/bash", "-c", 'exec "$@" 2>&-', "bash", *argv], timeout=30)
    else:
        w = _broken_pipe()
        try:
            p = subprocess.run(argv, stderr=w, timeout=30)
        finally:
            os.close(w)
    assert p.returncode == 1
    level, msg = _last_log_line(log, "json")
    assert level == "error" and "does not exist" in msg


@pytest.mark.parametrize("command", ["list", "state"])
def test_broken_stdout_is_an_error(rt, bundle, unique_id, tmp_path, command):
    rt("create", "--bundle", bundle(SLEEP), unique_id)
    for fmt in ("json", "text"):
        log = tmp_path / f"log.{fmt}"
        argv = [rt.binary, "--root", str(rt.state_root), "--log", str(log), "--log-format", fmt, command]
        w = _broken_pipe()
        try:
            p = subprocess.run(argv + ([unique_id] if command == "state" else []), stdout=w,
                               stderr=subprocess.PIPE, text=True, timeout=30)
        finally:
            os.close(w)
        assert p.returncode == 1, p.stderr
        msg = _stderr_msg(p.stderr)
        assert "stdout" in msg, msg
        assert _last_log_line(log, fmt) == ("error", msg)
    rt("delete", "--force", unique_id)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGINT, 130, "interrupted")])
def test_signal_says_why(rt, bundle, unique_id, tmp_path, sig, code, word):
    rt("run", "--detach", "--bundle", bundle(SLEEP), unique_id)
    log = tmp_path / "log.json"
    p = rt.popen("--log", log, "--log-format", "json", "events", "--interval", "10s", unique_id)
    deadline = time.monotonic() + 10
    while not p.stdout_path.read_text():  # the first stats line: past start-up
        assert p.poll() is None and time.monotonic() < deadline, p.stderr_path.read_text()
        time.sleep(0.01)
    p.send_signal(sig)
    assert p.wait(timeout=10) == code
    assert _stderr_msg(p.stderr_path.read_text()) == word
    assert _last_log_line(log, "json") == ("error", word)
    rt("delete", "--force", unique_id)
