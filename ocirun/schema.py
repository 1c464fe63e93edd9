"""Validate config.json, state and features documents against the OCI runtime-spec schemas.

The schemas live in spec/*.schema.json; scripts/gen_schema.py compiles them into
ocirun/_schemas.py so that this module, which `ocirun create` loads, needs neither json
nor re. It implements just the JSON Schema keywords those files use, and stops at the
first violation with a ConfigError whose `where` is a path like `mounts[2].destination`.

Deliberate differences from JSON Schema: an "integer" must be a JSON integer; 1.0 is
refused, as Go's encoding/json (and so runc) refuses it for integer fields. A string (and a
member name) must not contain a NUL character or a lone surrogate: it would reach a system
call cut short, or not at all.
"""
from ocirun import _schemas
from ocirun.errors import ConfigError

__all__ = ["check_config", "check_state", "check_features"]


def check_config(doc) -> None:
    """Raise ConfigError unless doc is a valid runtime-spec 1.x config.json for Linux."""
    _validate(_schemas.CONFIG, doc)


def check_state(doc) -> None:
    """Raise ConfigError unless doc is a valid container state (runtime.md)."""
    _validate(_schemas.STATE, doc)


def check_features(doc) -> None:
    """Raise ConfigError unless doc is a valid features structure (features.md)."""
    _validate(_schemas.FEATURES, doc)


class _Fail(Exception):
    """A violation; `path` collects the segments innermost first while the stack unwinds."""

    def __init__(self, msg, path=None):
        self.msg = msg
        self.path = path if path is not None else []


def _validate(schema, doc):
    try:
        _check(schema, doc)
    except _Fail as e:
        raise ConfigError(e.msg, _where(e.path)) from None


# Python class -> JSON type name; bool is not an integer here, unlike isinstance().
_TYPE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
         type(None): "null"}


def _check(s, x):
    t = s.get("type")
    if t is not None and _TYPE.get(x.__class__) not in t:
        raise _Fail(s["type_msg"])
    cls = x.__class__

    if "const" in s and x != s["const"]:
        raise _Fail("must be " + _show(s["const"]))
    e = s.get("enum")
    if e is not None and x not in e:
        raise _Fail(f"{_show(x)} is not one of {s['enum_msg']}")
    if "range_msg" in s and (cls is int or cls is float):
        lo, hi = s.get("minimum"), s.get("maximum")
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            raise _Fail(s["range_msg"])

    if cls is str:
        if "\x00" in x or not x.isascii() and not _unicode(x):
            raise _Fail(_BAD_STRING if "\x00" not in x else _NUL)
        n = s.get("minLength")
        if n is not None and len(x) < n:
            raise _Fail("must not be empty" if n == 1 else f"must be at least {n} characters")
        p = s.get("pattern")
        if p is not None:
            _match(p, x)

    elif cls is list:
        n = s.get("minItems")
        if n is not None and len(x) < n:
            raise _Fail("must not be empty" if n == 1 else f"must have at least {n} items")
        sub = s.get("items")
        if sub is not None:
            for i, v in enumerate(x):
                try:
                    _check(sub, v)
                except _Fail as f:
                    f.path.append(i)
                    raise

    elif cls is dict:
        req = s.get("required")
        if req is not None:
            for k in req:
                if k not in x:
                    raise _Fail("is required", [k])
        dep = s.get("dependentRequired")
        if dep is not None:
            for k, needs in dep:
                if k in x:
                    for n in needs:
                        if n not in x:
                            raise _Fail(f"is required when {k} is set", [n])
        props = s.get("properties")
        extra = s.get("additionalProperties")
        if props is not None or extra is not None:
            _check_members(props or {}, extra, x)
        names = s.get("propertyNames")
        if names is not None:
            for k in x:
                try:
                    _check(names, k)
                except _Fail as f:
                    raise _Fail(f"property name {_show(k)}: {f.msg}") from None

    cond = s.get("if")
    if cond is not None:
        try:
            _check(cond, x)
            branch = s.get("then")
        except _Fail:
            branch = s.get("else")
        if branch is not None:
            _check(branch, x)

    alts = s.get("anyOf")
    if alts is not None:
        _any_of(s, alts, x)


def _check_members(props, extra, x):
    for k, v in x.items():
        if "\x00" in k or not k.isascii() and not _unicode(k):
            raise _Fail("property name: " + (_BAD_STRING if "\x00" not in k else _NUL), [k])
        sub = props.get(k)
        if sub is None:
            if extra is None:
                continue  # unknown properties are allowed
            if extra is False:
                raise _Fail("is not allowed", [k])
            sub = extra
        try:
            _check(sub, v)
        except _Fail as f:
            f.path.append(k)
            raise


def _any_of(s, alts, x):
    fails = []
    for sub in alts:
        try:
            _check(sub, x)
            return
        except _Fail as f:
            fails.append(f)
    msg = s.get("anyOf_msg")
    if msg is not None:
        raise _Fail(msg)
    # Otherwise the branch that got deepest is most likely the one that was meant.
    raise max(reversed(fails), key=lambda f: len(f.path))


# Strings end up as C strings (paths, arguments, names): a NUL would cut one short without a word,
# and a lone surrogate (JSON allows "\ud800") has no UTF-8 form. Both are refused wherever the
# schema types a value as a string, and in member names.
_NUL = "must not contain a NUL character"
_BAD_STRING = "is not valid Unicode: it has a lone surrogate (\\ud800 to \\udfff)"


def _unicode(x):
    try:
        x.encode()
    except UnicodeEncodeError:
        return False
    return True


def _abs_path(x):
    return x[:1] == "/"


def _page_size(x):
    return len(x) > 2 and x[-1] == "B" and x[-2] in "KMGTPE" and not x[:-2].strip("0123456789")


def _rwm(x):
    return not x.strip("rwm")


def _mb_schema(x):
    return x[:3] == "MB:"


_DIGITS = "0123456789"
_IDENT = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"


def _number(n):
    return n != "" and not n.strip(_DIGITS) and (n == "0" or n[0] != "0")


def _idents(s):
    return all(part and not part.strip(_IDENT) for part in s.split("."))


def _oci_version(x):
    """SemVer 2.0.0 with major 1 and not below 1.0.0 (so no 1.0.0 pre-release)."""
    core, plus, build = x.partition("+")
    if plus and not _idents(build):
        return False
    core, dash, pre = core.partition("-")
    if dash and not _idents(pre):
        return False
    parts = core.split(".")
    if len(parts) != 3 or parts[0] != "1" or not (_number(parts[1]) and _number(parts[2])):
        return False
    return not (dash and parts[1] == "0" and parts[2] == "0")


_OCI_VERSION = ("^1\\.(?:0\\.0|(?:0\\.[1-9][0-9]*|[1-9][0-9]*\\.(?:0|[1-9][0-9]*))"
                "(?:-[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?)(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$")

# Plain-Python equivalents of the patterns the schemas use, so checking never imports re
# (about 9 ms). tests/test_schema.py checks each against re on sample strings.
PATTERNS = {
    _OCI_VERSION: (_oci_version, "{} is not a supported version: need 1.0.0 or a later 1.x version"),
    "^/": (_abs_path, "{} is not an absolute path"),
    "^[0-9]+[KMGTPE]B$": (_page_size, "{} is not a page size like 2MB or 64KB"),
    "^[rwm]*$": (_rwm, "{} is not a combination of r, w and m"),
    "^MB:": (_mb_schema, '{} does not start with "MB:"'),
}


def _match(p, x):
    known = PATTERNS.get(p)
    if known is None:
        import re  # only for a pattern added to a schema without a fast equivalent

        known = PATTERNS[p] = (re.compile(p).search, "{} does not match pattern " + p)
    fn, msg = known
    if not fn(x):
        raise _Fail(msg.format(_show(x)))


_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def _escape(c):
    n = ord(c)
    return f"\\u{n:04x}" if n < 0x10000 else f"\\u{0xd800 + ((n - 0x10000) >> 10):04x}\\u{0xdc00 + (n & 0x3ff):04x}"


def _show(x):
    """A value as it would appear in JSON, shortened for an error message: control and other
    unprintable characters (a newline, an escape sequence, a lone surrogate) are written as JSON
    escapes, so that the message stays one plain line."""
    if x.__class__ is str:
        if len(x) > 80:
            x = x[:77] + "..."
        x = x.translate(_ESCAPES)
        if not x.isprintable():
            x = "".join(c if c.isprintable() else _escape(c) for c in x)
        return '"' + x + '"'
    if x is True or x is False or x is None:
        return {True: "true", False: "false", None: "null"}[x]
    if x.__class__ is dict:
        return "an object"
    if x.__class__ is list:
        return "an array"
    return str(x)


def _where(path):
    out = ""
    for seg in reversed(path):
        if seg.__class__ is int:
            out += f"[{seg}]"
        elif str(seg).isidentifier():
            out += f".{seg}" if out else str(seg)
        else:
            out += "[" + _show(str(seg)) + "]"
    return out or None
