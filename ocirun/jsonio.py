"""JSON in and out without `import json`.

`json` pulls in `re` and `enum` (about 3 ms here), on the path of every command. The C scanner
and string encoder of `_json` that `json` itself uses are all ocirun needs.
"""
import _json
from .errors import OciError, shown

TYPE_CHECKING = False  # typing costs ~10 ms to import: only mypy reads the block below
if TYPE_CHECKING:
    from typing import Any


def _finite_float(text):
    value = float(text)
    if value - value != 0.0:  # inf: 1e999 parses, but no JSON writer (ours included) can write it back
        raise ValueError(f"number {text[:40]} is out of range")
    return value


class _Context:
    # What _json.make_scanner reads off a JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_finite_float)
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name):
        raise ValueError(f"invalid constant {name}")


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # a duck-typed JSONDecoder
_WS = " \t\n\r"


def loads(text: str, what: str):
    """Parse one JSON document; `what` names the file for the error message."""
    i = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, i)
    except RecursionError:
        raise OciError("invalid JSON: nested too deeply", what) from None
    except (StopIteration, ValueError, SystemError) as e:
        if "integer string conversion" in str(e):  # int() refuses more than sys.get_int_max_str_digits()
            raise OciError("invalid JSON: a number has too many digits", what) from None
        if "out of range" in str(e):
            raise OciError(f"invalid JSON: {e}", what) from None
        # Only on this error path: json's decoder words the message with line and column
        # (the bare scanner can't raise its own error until json.decoder is imported).
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as decode_error:
            raise OciError(f"invalid JSON: {decode_error}", what) from None
        except (ValueError, RecursionError):
            pass
        detail = str(e) if isinstance(e, ValueError) and str(e).startswith("invalid constant") else ""
        raise OciError(f"invalid JSON: {detail}" if detail else "invalid JSON", what) from None
    if text[end:].strip(_WS):
        raise OciError(f"invalid JSON: extra data at offset {end}", what)
    return value


def load_file(path: str, regular_only: bool = False):
    """Read and parse a JSON file. With `regular_only` anything but a regular file (a fifo that
    would block the open, /dev/zero that never ends) is refused before it is read."""
    try:
        if regular_only:
            import posix

            fd = posix.open(path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
            if posix.fstat(fd).st_mode & 0o170000 != 0o100000:
                posix.close(fd)
                raise OciError("not a regular file", path)
            f = open(fd, "rb")
        else:
            f = open(path, "rb")
        with f:
            data = f.read()
    except OciError as e:
        raise OciError(e.message, shown(path)) from None
    except OSError as e:
        raise OciError((e.strerror or str(e)).lower(), shown(path)) from None
    try:
        return loads(data.decode(), shown(path))
    except UnicodeDecodeError:
        raise OciError("not UTF-8", shown(path)) from None


_str = _json.encode_basestring_ascii


def dumps(value, indent: int | None = None) -> str:
    """Serialise dicts, lists, strings, numbers, booleans and None; `indent` pretty-prints.

    Iterative, not recursive: whatever `loads` accepted (up to the C scanner's nesting limit)
    can be written back, however deep, without a RecursionError."""
    out: list[str] = []
    colon = ":" if indent is None else ": "
    stack: list[list] = []  # [iterator, is a dict, level, first item still to come]
    level = 0
    while True:
        if isinstance(value, str):
            out.append(_str(value))
        elif value is None:
            out.append("null")
        elif value is True:
            out.append("true")
        elif value is False:
            out.append("false")
        elif isinstance(value, (int, float)):
            out.append(repr(value))
        elif isinstance(value, dict):
            if value:
                out.append("{")
                stack.append([iter(value.items()), True, level, True])
                level += 1
            else:
                out.append("{}")
        elif isinstance(value, (list, tuple)):
            if value:
                out.append("[")
                stack.append([iter(value), False, level, True])
                level += 1
            else:
                out.append("[]")
        else:
            raise TypeError(f"cannot serialise {type(value).__name__}")
        # on to the next value: the next item of the innermost open container, else close it
        while stack:
            frame = stack[-1]
            item: "Any" = next(frame[0], _END)
            if item is _END:
                stack.pop()
                level = frame[2]
                if indent is not None:
                    out.append("\n" + " " * (indent * level))
                out.append("}" if frame[1] else "]")
                continue
            if frame[3]:
                frame[3] = False
            else:
                out.append(",")
            if indent is not None:
                out.append("\n" + " " * (indent * level))
            if frame[1]:
                k, value = item
                out.append(_str(str(k)) + colon)
            else:
                value = item
            break
        else:
            return "".join(out)


_END = object()
