"""Terminals: the pty master handed to --console-socket, and the proxy of `run`/`exec` without one.

The test plays the caller's part: a unix socket that receives the master with SCM_RIGHTS (as
conmon and containerd's shim do), or a real pty of its own on ocirun's stdio (as a person's
terminal). Every read and wait is bounded.
"""
import errno
import fcntl
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import termios
import time

import pytest

from ocitest_conftest import MARK

WAIT = 10  # seconds: the bound on every read and wait
TIOCGPTN = getattr(termios, "TIOCGPTN", 0x80045430)  # _IOR('T', 0x30, unsigned int)


def read_until(fd: int, done, timeout: float = WAIT) -> bytes:
    """Read fd until done(bytes so far) holds, end-of-file, or EIO (the slave side is gone)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not done(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s; read so far: {buf!r}")
        if not select.select([fd], [], [], left)[0]:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError as e:
            if e.errno == errno.EIO:
                break
            raise
        if not data:
            break
        buf += data
    return buf


def to_eof(fd: int, timeout: float = WAIT) -> bytes:
    return read_until(fd, lambda b: False, timeout)


def read_for(fd: int, seconds: float) -> bytes:
    """Whatever fd yields in the next `seconds` (no error when that is nothing)."""
    buf = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            buf += data
    return buf


def between(out: bytes, begin: str = "BEGIN", end: str = "END") -> list[str]:
    """The output lines between a line `begin` and a line `end` (the echoed command line, which
    also contains both words, is not one of them)."""
    lines = [ln.rstrip("\r") for ln in out.decode(errors="replace").split("\n")]
    assert begin in lines and end in lines, f"markers not found in {out!r}"
    return lines[lines.index(begin) + 1:lines.index(end)]


def has_line(word: str):
    return lambda b: f"\n{word}\r\n".encode() in b


def winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def pty_index(master: int) -> int:
    return struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]


def wait_child(pid: int, timeout: float = WAIT) -> int:
    """Wait (bounded) for a child of ours, such as a container init reparented to this subreaper;
    returns its exit code (128+N when killed)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        assert time.monotonic() < deadline, f"pid {pid} did not exit in {timeout}s"
        time.sleep(0.01)


class ConsoleSocket:
    """A listening unix socket that receives pty masters as conmon or the containerd shim do."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.received: list[int] = []

    def receive(self, timeout: float = WAIT) -> int:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(timeout)
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 4)
        self.received += fds
        assert len(fds) == 1, f"want exactly one fd in the message, got {fds} ({msg!r})"
        return fds[0]

    def close(self) -> None:
        self.sock.close()
        for fd in self.received:
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def short_dir():
    # A unix socket path is limited to 108 bytes: pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix=f"{MARK}-con-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def console(short_dir):
    c = ConsoleSocket(os.path.join(short_dir, "console.sock"))
    yield c
    c.close()


# A shell that runs what is typed, line by line: no prompt and no line editing of its own (an
# interactive ash would ask the terminal for the cursor position), so the output is exactly
# the pty's echo of the input and what the commands print.
SHELL = ["sh", "-c", 'while read -r line; do eval "$line"; done']


def terminal(**extra) -> dict:
    return {"process": {"terminal": True, **extra}}


COMMANDS = (b"echo BEGIN; tty; stty size; stat -c %t:%T /dev/console; stat -c %t:%T $(tty); "
            b"ls /proc/self/fd | tr '\\n' ' '; echo; echo END; exit 3\n")


# --- create --console-socket -------------------------------------------------------------------

def test_create_console_socket_gives_a_working_pty(rt, bundle, unique_id, console):
    b = bundle(SHELL, **terminal(consoleSize={"height": 37, "width": 101}))
    rt("create", "--console-socket", console.path, "--bundle", b, unique_id)
    master = console.receive()
    pid = rt.state(unique_id)["pid"]
    assert os.isatty(master)
    assert winsize(master) == (37, 101)
    n = pty_index(master)
    rt("start", unique_id)
    os.write(master, COMMANDS)
    out = read_until(master, has_line("END"))
    tty, size, console_dev, tty_dev, fds = between(out)
    assert tty == f"/dev/pts/{n}"  # the container's own devpts: the index of the master we got
    assert size == "37 101"
    assert console_dev == tty_dev, "/dev/console is not the init's pty"
    assert fds.split() == ["0", "1", "2", "3"]  # the pty on stdio, and ls's own dir fd
    to_eof(master)  # the shell exits: every slave fd is closed
    assert wait_child(pid) == 3
    assert rt.state(unique_id)["status"] == "stopped"
    rt("delete", unique_id)


def test_create_console_socket_pty_is_the_controlling_terminal(rt, bundle, unique_id, console):
    args = ["sh", "-c", "trap 'echo INTR' INT; " + SHELL[2]]
    rt("create", "--console-socket", console.path, "--bundle", bundle(args, **terminal()), unique_id)
    master = console.receive()
    pid = rt.state(unique_id)["pid"]
    rt("start", unique_id)
    os.write(master, b"echo BEGIN; cut -d' ' -f6,7,8 /proc/self/stat; echo $$; echo END\n")
    out = between(read_until(master, has_line("END")))
    session, tty_nr, tpgid = out[0].split()
    assert session == out[1], "the container process is not the leader of its own session"
    assert tty_nr != "0" and tpgid != "-1", "the pty is not its controlling terminal"
    # ^C typed on the terminal: the line discipline sends SIGINT to the foreground group.
    os.write(master, b"sleep 30; echo AFTER-SLEEP\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    os.write(master, b"\x03")
    out = read_until(master, has_line("AFTER-SLEEP"))
    assert time.monotonic() - t0 < 5, "^C did not interrupt the sleep"
    assert b"INTR" in out
    os.write(master, b"exit 5\n")
    to_eof(master)
    assert wait_child(pid) == 5
    rt("delete", unique_id)


def test_create_terminal_with_stdin_closed_waits_for_start(rt, bundle, unique_id, console):
    # With fd 0 closed when ocirun starts, the fds ocirun opens itself take the lowest numbers.
    # None of them may be confused with the stdio that the pty replaces: the process must
    # still wait for `start`, and nothing but its own output may appear on the terminal.
    b = bundle(["sh", "-c", "echo RAN; sleep 30"], **terminal())
    argv = [rt.binary, "--root", str(rt.state_root), "create", "--console-socket", console.path,
            "--bundle", str(b), unique_id]
    r = subprocess.run(["/bin/bash", "-c", 'exec "$@" 0<&-', "bash", *argv], capture_output=True, text=True,
                       timeout=WAIT)
    assert r.returncode == 0, r.stderr
    master = console.receive()
    st = rt.state(unique_id)
    assert st["status"] == "created"
    early = read_for(master, 0.5)
    cmdline = open(f"/proc/{st['pid']}/cmdline").read().split("\0")
    assert b"RAN" not in early and "sleep" not in cmdline, (
        f"the container process ran before `start` (cmdline {cmdline}, terminal got {early!r})")
    rt("start", unique_id)
    assert b"RAN" in read_until(master, lambda b: b"RAN" in b)
    rt("delete", "--force", unique_id)


def test_create_terminal_without_console_socket(rt, bundle, unique_id):
    rt.expect_error("create", "--bundle", bundle(["sh"], **terminal()), unique_id,
                    mentions=["console-socket"])
    assert not rt.exists(unique_id)


def test_console_socket_that_does_not_exist(rt, bundle, unique_id, short_dir):
    path = os.path.join(short_dir, "nothing-here.sock")
    rt.expect_error("create", "--console-socket", path, "--bundle", bundle(["sh"], **terminal()), unique_id,
                    mentions=[path])
    assert not rt.exists(unique_id)
    assert not os.path.exists(path)


def test_console_socket_that_is_a_regular_file(rt, bundle, unique_id, short_dir):
    path = os.path.join(short_dir, "file")
    open(path, "w").close()
    rt.expect_error("create", "--console-socket", path, "--bundle", bundle(["sh"], **terminal()), unique_id,
                    mentions=[path, "socket"])
    assert not rt.exists(unique_id)


def test_console_socket_nobody_listens(rt, bundle, unique_id, short_dir):
    # A socket file whose listener has gone: connect is refused, and create must undo everything.
    path = os.path.join(short_dir, "gone.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    rt.expect_error("create", "--console-socket", path, "--bundle", bundle(["sh"], **terminal()), unique_id,
                    mentions=[path, ("refused", "console")])
    assert not rt.exists(unique_id)


def test_console_socket_without_terminal_is_unused(rt, bundle, unique_id, console):
    # runc ignores --console-socket when the process has no terminal; so does ocirun.
    rt("run", "--console-socket", console.path, "--bundle", bundle(["sh", "-c", "tty; true"]), unique_id,
       check=False)
    console.sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        console.sock.accept()


# --- exec -t --console-socket -----------------------------------------------------------------

@pytest.fixture
def running(rt, bundle, new_id):
    made = []

    def make(args=("sleep", "1000"), **overrides):
        cid = new_id()
        rt("run", "--detach", "--bundle", bundle(list(args), **overrides), cid)
        made.append(cid)
        return cid
    yield make
    for cid in made:
        rt("delete", "--force", cid, check=False)


def test_exec_tty_console_socket(rt, running, console):
    cid = running()
    p = rt.popen("exec", "-t", "--console-socket", console.path, cid, *SHELL)
    master = console.receive()
    set_winsize(master, 24, 80)  # as the shim does, from the caller's terminal
    n = pty_index(master)
    os.write(master, COMMANDS.replace(b"stat -c %t:%T /dev/console; ", b""))
    out = read_until(master, has_line("END"))
    tty, size, _tty_dev, fds = between(out)
    assert tty == f"/dev/pts/{n}"
    assert size == "24 80"
    assert fds.split() == ["0", "1", "2", "3"]
    assert p.wait(timeout=WAIT) == 3
    assert rt.state(cid)["status"] == "running"


def test_exec_process_file_with_terminal_and_console_size(rt, running, console, tmp_path):
    import json

    cid = running()
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"terminal": True, "consoleSize": {"height": 11, "width": 55}, "cwd": "/",
                             "args": ["sh", "-c", "echo BEGIN; tty; stty size; echo END; exit 4"]}))
    p = rt.popen("exec", "--process", f, "--console-socket", console.path, cid)
    master = console.receive()
    out = read_until(master, has_line("END"))
    tty, size = between(out)
    assert tty.startswith("/dev/pts/")
    assert size == "11 55"
    assert p.wait(timeout=WAIT) == 4


def test_exec_tty_detach_with_console_socket(rt, running, console, tmp_path):
    cid = running()
    pid_file = tmp_path / "pid"
    rt("exec", "-t", "-d", "--pid-file", pid_file, "--console-socket", console.path, cid, *SHELL, timeout=WAIT)
    master = console.receive()
    pid = int(pid_file.read_text())
    os.write(master, b"echo BEGIN; tty; echo END; exit 6\n")
    (tty,) = between(read_until(master, has_line("END")))
    assert tty.startswith("/dev/pts/")
    assert wait_child(pid) == 6  # reparented to us, the subreaper, once exec returned


def test_exec_tty_detach_needs_console_socket(rt, running):
    cid = running()
    rt.expect_error("exec", "-t", "-d", cid, "sh", mentions=["console-socket"])


def test_exec_console_socket_that_does_not_exist(rt, running, short_dir):
    cid = running()
    path = os.path.join(short_dir, "nope.sock")
    rt.expect_error("exec", "-t", "--console-socket", path, cid, "sh", mentions=[path])
    assert rt.state(cid)["status"] == "running"


def test_exec_console_socket_nobody_listens(rt, running, short_dir):
    cid = running()
    path = os.path.join(short_dir, "gone.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    rt.expect_error("exec", "-t", "--console-socket", path, cid, "sh", mentions=[path])
    out = rt("exec", cid, "sh", "-c", "echo /proc/[0-9]*").stdout.split()
    assert len(out) == 2, f"a process of the failed exec is left in the container: {out}"


# --- the proxy: run / exec with a terminal and no --console-socket --------------------------------

class CallerPty:
    """A pty standing for the user's terminal: ocirun gets the slave as stdio and as its
    controlling terminal; the test types into and reads from the master."""

    def __init__(self, rows=33, cols=77):
        self.master, self.slave = os.openpty()
        set_winsize(self.slave, rows, cols)
        self.mode = termios.tcgetattr(self.slave)

    def spawn(self, rt, *args) -> subprocess.Popen:
        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        p = subprocess.Popen([rt.binary, "--root", str(rt.state_root), *map(str, args)],
                             stdin=self.slave, stdout=self.slave, stderr=self.slave,
                             start_new_session=True, preexec_fn=ctty)
        rt.popens.append(p)  # killed at teardown if the test fails
        rt._note_ids(args)
        return p

    def wait_raw(self, timeout: float = WAIT) -> None:
        """Wait until the proxy has put the terminal in raw mode: what is typed from then on is
        not flushed away by that switch."""
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.slave)[3] & termios.ECHO:
            assert time.monotonic() < deadline, "the proxy never put the caller's terminal in raw mode"
            time.sleep(0.01)

    def close(self):
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def caller_pty():
    t = CallerPty()
    yield t
    t.close()


def _proxy_session(rt, caller_pty, p):
    m = caller_pty.master
    caller_pty.wait_raw()
    os.write(m, b"echo BEGIN; tty; stty size; echo END\n")
    tty, size = between(read_until(m, has_line("END")))
    assert tty.startswith("/dev/pts/")
    assert size == "33 77"  # the caller's terminal size, passed on by the proxy
    # A window-size change of the caller's terminal reaches the container (SIGWINCH, forwarded).
    set_winsize(caller_pty.slave, 40, 120)
    deadline = time.monotonic() + WAIT
    while True:
        os.write(m, b"echo BEGIN; stty size; echo END\n")
        (size,) = between(read_until(m, has_line("END")).rsplit(b"echo BEGIN", 1)[-1])
        if size == "40 120":
            break
        assert time.monotonic() < deadline, f"window size change not forwarded: still {size}"
        time.sleep(0.05)
    os.write(m, b"exit 3\n")
    assert p.wait(timeout=WAIT) == 3
    assert termios.tcgetattr(caller_pty.slave) == caller_pty.mode, "the caller's terminal mode was not restored"


def test_run_proxies_the_pty(rt, bundle, unique_id, caller_pty):
    p = caller_pty.spawn(rt, "run", "--bundle", bundle(SHELL, **terminal()), unique_id)
    _proxy_session(rt, caller_pty, p)
    assert not rt.exists(unique_id)  # a foreground run deletes its container


def test_exec_tty_proxies_the_pty(rt, running, caller_pty):
    cid = running()
    p = caller_pty.spawn(rt, "exec", "-t", cid, *SHELL)
    _proxy_session(rt, caller_pty, p)
    assert rt.state(cid)["status"] == "running"


def test_run_proxy_raw_mode_while_running(rt, bundle, unique_id, caller_pty):
    # While the proxy runs, the caller's terminal is raw (no echo, no line editing of its own):
    # only the container's pty echoes.
    p = caller_pty.spawn(rt, "run", "--bundle", bundle(SHELL, **terminal()), unique_id)
    m = caller_pty.master
    caller_pty.wait_raw()
    os.write(m, b"echo BEGIN; echo END\n")
    read_until(m, has_line("END"))
    mode = termios.tcgetattr(caller_pty.slave)
    assert not mode[3] & (termios.ECHO | termios.ICANON), "the caller's terminal is not in raw mode"
    os.write(m, b"exit 0\n")
    assert p.wait(timeout=WAIT) == 0
    assert termios.tcgetattr(caller_pty.slave) == caller_pty.mode


def test_run_proxy_keeps_typeahead(rt, bundle, unique_id, caller_pty):
    # What the user types while the container starts is input for it, as with runc (which sets
    # raw mode with TCSANOW): switching to raw mode must not flush it (tty.setraw's TCSAFLUSH does).
    p = caller_pty.spawn(rt, "run", "--bundle", bundle(SHELL, **terminal()), unique_id)
    os.write(caller_pty.master, b"echo BEGIN; echo typed-ahead; echo END; exit 2\n")
    try:
        out = read_until(caller_pty.master, has_line("END"), timeout=3)
        assert "typed-ahead" in between(out)
    finally:
        caller_pty.wait_raw()
        os.write(caller_pty.master, b"exit 2\n")
        assert p.wait(timeout=WAIT) == 2
    assert termios.tcgetattr(caller_pty.slave) == caller_pty.mode


def test_run_proxy_killed_container_exit_code_and_terminal_restored(rt, bundle, unique_id, caller_pty):
    p = caller_pty.spawn(rt, "run", "--bundle", bundle(SHELL, **terminal()), unique_id)
    caller_pty.wait_raw()
    os.write(caller_pty.master, b"echo BEGIN; echo END\n")
    read_until(caller_pty.master, has_line("END"))
    rt("kill", unique_id, "KILL")
    assert p.wait(timeout=WAIT) == 137
    assert termios.tcgetattr(caller_pty.slave) == caller_pty.mode


def test_run_proxy_forwards_signals(rt, bundle, unique_id, caller_pty):
    # A signal to the foreground `run` goes to the container process (here: its TERM trap).
    args = ["sh", "-c", "trap 'echo GOT-TERM; exit 9' TERM; " + SHELL[2]]
    p = caller_pty.spawn(rt, "run", "--bundle", bundle(args, **terminal()), unique_id)
    caller_pty.wait_raw()
    os.write(caller_pty.master, b"echo BEGIN; echo END\n")
    read_until(caller_pty.master, has_line("END"))
    p.send_signal(15)
    assert b"GOT-TERM" in read_until(caller_pty.master, lambda b: b"GOT-TERM" in b)
    assert p.wait(timeout=WAIT) == 9
    assert termios.tcgetattr(caller_pty.slave) == caller_pty.mode


@pytest.mark.parametrize("stdin", ["devnull", "closed"])
def test_run_terminal_with_stdin_not_a_tty(rt, bundle, unique_id, stdin):
    # The proxy must not hang or spin when its stdin is not a terminal, or at end of file, or closed.
    b = bundle(["sh", "-c", "echo BEGIN; tty; echo END; sleep 1.5; exit 4"], **terminal())
    argv = [rt.binary, "--root", str(rt.state_root), "run", "--bundle", str(b), unique_id]
    if stdin == "closed":
        argv = ["/bin/bash", "-c", 'exec "$@" 0<&-', "bash", *argv]
    out = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    rt.popens.append(p)

    def cpu_seconds() -> float:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    # While the container sleeps, the proxy has nothing to do: it must wait, not spin.
    time.sleep(0.5)
    if p.poll() is None:
        t0, c0 = time.monotonic(), cpu_seconds()
        time.sleep(0.5)
        spent = cpu_seconds() - c0
        assert spent < 0.25 * (time.monotonic() - t0), f"the proxy spins: {spent}s of CPU in 0.5s"
    code = p.wait(timeout=WAIT)
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    assert code == 4, f"exit {code}, output: {text}"
    assert "/dev/pts/" in text, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert not rt.exists(unique_id)


def test_run_detach_with_terminal_needs_console_socket(rt, bundle, unique_id):
    rt.expect_error("run", "--detach", "--bundle", bundle(["sh"], **terminal()), unique_id,
                    mentions=["console-socket"])
    assert not rt.exists(unique_id)
