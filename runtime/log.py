"""Where ocirun's messages go: stderr, and with `--log`, a file in text or JSON lines.

containerd and conmon show the `msg` of the last `error` line of the JSON log when a command
fails, so every failure ends with exactly one such line.
"""
import posix
import sys
import time

_file = None
_json = False
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _file, _json, _debug
    _json = fmt == "json"
    _debug = debug
    if path:
        _file = posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _write(level: str, msg: str) -> None:
    if _file is None:
        return
    if _json:
        from .jsonio import dumps

        line = dumps({"level": level, "msg": msg, "time": now_rfc3339()})
    else:
        line = f'time="{now_rfc3339()}" level={level} msg="{msg}"'
    posix.write(_file, (line + "\n").encode())


def error(msg: str) -> None:
    _write("error", msg)
    sys.stderr.write(f"ocirun: {msg}\n")
    sys.stderr.flush()


def warning(msg: str) -> None:
    _write("warning", msg)
    sys.stderr.write(f"ocirun: warning: {msg}\n")


def debugging() -> bool:
    return _debug


def debug(msg: str) -> None:
    if _debug:
        _write("debug", msg)
        sys.stderr.write(f"ocirun: debug: {msg}\n")
