"""JSON in and out without `import json`.

`json` pulls in `re` and `enum` (about 3 ms here), on the path of every command. The C scanner
and string encoder of `_json` that `json` itself uses are all ocirun needs.
"""
import _json

from .errors import OciError


class _Context:
    # What _json.make_scanner reads off a JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name):
        raise ValueError(f"invalid constant {name}")


_scan = _json.make_scanner(_Context())
_WS = " \t\n\r"


def loads(text: str, what: str):
    """Parse one JSON document; `what` names the file for the error message."""
    i = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, i)
    except (StopIteration, ValueError, SystemError):
        # Only on this error path: json's decoder words the message with line and column
        # (the bare scanner can't raise its own error until json.decoder is imported).
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise OciError(f"invalid JSON: {e}", what) from None
        raise OciError("invalid JSON", what) from None
    if text[end:].strip(_WS):
        raise OciError(f"invalid JSON: extra data at offset {end}", what)
    return value


def load_file(path: str):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise OciError(e.strerror.lower(), path) from None
    try:
        return loads(data.decode(), path)
    except UnicodeDecodeError:
        raise OciError("not UTF-8", path) from None


_str = _json.encode_basestring_ascii


def dumps(value, indent: int | None = None, _level: int = 0) -> str:
    """Serialise dicts, lists, strings, numbers, booleans and None; `indent` pretty-prints."""
    if isinstance(value, str):
        return _str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if indent is None:
        sep, nl, pad, inner = ",", "", "", ""
    else:
        sep, nl = ",", "\n"
        pad, inner = " " * (indent * _level), " " * (indent * (_level + 1))
    colon = ":" if indent is None else ": "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{_str(str(k))}{colon}{dumps(v, indent, _level + 1)}" for k, v in value.items()]
        return "{" + nl + (sep + nl).join(items) + nl + pad + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [inner + dumps(v, indent, _level + 1) for v in value]
        return "[" + nl + (sep + nl).join(items) + nl + pad + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")
