"""Where ocirun's messages go: stderr, and with `--log`, a file in text or JSON lines.

containerd and conmon show the `msg` of the last `error` line of the JSON log when a command
fails, so every failure ends with exactly one such line.
"""
import posix
import sys
import time

from .errors import OciError

_file = None
_json = False
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _file, _json, _debug
    _json = fmt == "json"
    _debug = debug
    if path:
        try:
            _file = posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OciError(f"open the log file: {e.strerror}", path) from None


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _plain(msg: str) -> str:
    """The message as one plain line: a control character in it (from an id, a path or a value
    the caller gave) is escaped, so it can neither split the line nor reach a terminal raw."""
    if msg.isprintable():
        return msg
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


def _write(level: str, msg: str) -> None:
    if _file is None:
        return
    if _json:
        from .jsonio import dumps

        line = dumps({"level": level, "msg": msg, "time": now_rfc3339()})
    else:  # quoted as logrus does, so that the message stays one line
        quoted = msg.replace("\\", "\\\\").replace('"', '\\"')  # no newline: _plain escaped them
        line = f'time="{now_rfc3339()}" level={level} msg="{quoted}"'
    try:  # a full log disk must not cost stderr the message, nor make a traceback of it
        posix.write(_file, (line + "\n").encode(errors="backslashreplace"))  # names that aren't UTF-8
    except OSError:
        pass


def _say(text: str) -> None:
    try:  # stderr closed (None), or its reader gone: the log still has the line, the exit status tells
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def error(msg: str) -> None:
    msg = _plain(msg)
    _write("error", msg)
    _say(f"ocirun: {msg}\n")


def warning(msg: str) -> None:
    msg = _plain(msg)
    _write("warning", msg)
    _say(f"ocirun: warning: {msg}\n")


def debugging() -> bool:
    return _debug


def debug(msg: str) -> None:
    if _debug:
        msg = _plain(msg)
        _write("debug", msg)
        _say(f"ocirun: debug: {msg}\n")
