"""Terminals: hand the pty master to the caller's --console-socket, or proxy it ourselves.

The container's pty comes from its own devpts (the trampoline opens it); ocirun only ever holds
the master. With --console-socket the master goes to that unix socket in one SCM_RIGHTS
message, as runc does. Without one (`run` or `exec` in the foreground) ocirun copies bytes
between its own stdio and the master, in raw mode, forwarding window-size changes.
"""
import os

from .errors import OciError


def hand_over(master: int, socket_path: str | None, keep) -> None:
    if socket_path:
        try:
            send_to_socket(socket_path, master)
        finally:
            os.close(master)
    else:
        keep(master)


def send_to_socket(path: str, fd: int) -> None:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg([b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, "little"))])
    except OSError as e:
        raise OciError(f"console socket: {e.strerror}", path) from None
    finally:
        s.close()


def check_socket(path: str) -> None:
    """Fail before any setup when --console-socket names nothing that listens."""
    import stat

    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OciError("console socket: not a unix socket", path)
    except FileNotFoundError:
        raise OciError("console socket: no such file", path) from None


class Proxy:
    """Copies between our stdio and a pty master until the process ends or either side closes."""

    def __init__(self, master: int):
        self.master = master
        self.saved = None

    def __enter__(self):
        import termios
        import tty

        if os.isatty(0):
            self.saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
            self.resize()
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
        os.close(self.master)

    def resize(self, *args) -> None:
        import fcntl
        import termios

        if os.isatty(0):
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def pump(self, pid: int) -> int:
        """Run until the process exits; returns its wait status."""
        import _signal

        from .forward import Forwarding

        _signal.signal(28, self.resize)  # SIGWINCH: our terminal's size goes to the pty
        with Forwarding(pid, keep=(28,)):
            return self._pump(pid)

    def _pump(self, pid: int) -> int:
        import select

        stdin_open = True
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self._drain()
                return status
            watch = [self.master] + ([0] if stdin_open else [])
            try:
                ready, _, _ = select.select(watch, [], [], 0.1)
            except InterruptedError:
                continue
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(self.master, data)
                else:
                    stdin_open = False
            if self.master in ready and not self._copy_out():
                _, status = os.waitpid(pid, 0)
                return status

    def _copy_out(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        if not data:
            return False
        os.write(1, data)
        return True

    def _drain(self) -> None:
        import select

        while select.select([self.master], [], [], 0)[0] and self._copy_out():
            pass
