"""Property-based fuzzing (hypothesis) of config.json and of the command line.

The property, for every input: ocirun either succeeds (exit 0), or exits non-zero printing one
error line `ocirun: ...` on stderr (`ocirun: warning: ...` lines may come before it; with
--debug, `ocirun: debug: ...` lines too). Never a traceback, never "internal error", never a
call that takes more than CALL_TIMEOUT seconds, and nothing left behind: after every example
the state root is empty and no new host mount, cgroup directory or process of ours remains
(the checks of tests/conftest.py's leak guard, made per example). A `create` error must name
the field (a JSON path such as `mounts[2].destination`) or the file.

Lanes:
  config  a valid busybox bundle whose config.json is mutated: a field at a random JSON path
          replaced by a random JSON value (wrong types, 2**64, negatives, 100k strings, 1000
          levels of nesting), required fields deleted, unknown fields added, fields the schema
          knows set to schema-shaped edge values, duplicate namespaces and mounts, bad seccomp
          profiles, bad id maps, hooks with relative or missing paths; or a config.json that is
          not UTF-8, not JSON, or not a regular file. Then `create` + `start` + `state` +
          `delete --force`, or a foreground `run`.
  cli     random argv: command names, known and unknown flags, flags without their value, ids
          with '/', '..', control characters, newlines, 1,000 characters, non-ASCII and bytes
          that are not UTF-8 (a NUL can't be passed through exec: the in-process lane checks
          the parser and the id check with it).

CI runs a bounded number of examples with a fixed seed, printed with the counts (pytest -rP
shows them; OCIRUN_FUZZ_SEED, OCIRUN_FUZZ_CONFIG_EXAMPLES and OCIRUN_FUZZ_CLI_EXAMPLES override
them): about a minute on two idle cores. tests/fuzz_long.py runs the same lanes for longer.

What may run on the host is kept harmless: hook paths, process.args, root.path, the cgroup
path, namespace paths, mount sources and sysctl names come from fixed pools (wrong types are
free: the schema refuses them before anything runs), so a random string never becomes a
program, a host directory or a host cgroup.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, note, seed, settings
from hypothesis import strategies as st

import ocitest_conftest as harness  # tests/conftest.py (tests/fuzz_long.py imports it first)
import busybox_bundle

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from ocirun import _schemas  # noqa: E402
from ocirun import cli as _cli  # noqa: E402

SEED = int(os.environ.get("OCIRUN_FUZZ_SEED", "20240611"))
CONFIG_EXAMPLES = int(os.environ.get("OCIRUN_FUZZ_CONFIG_EXAMPLES", "400"))
CLI_EXAMPLES = int(os.environ.get("OCIRUN_FUZZ_CLI_EXAMPLES", "500"))
INPROCESS_EXAMPLES = 300
CALL_TIMEOUT = 10
MARK = harness.MARK
NAME = "@NAME@"  # replaced by the bundle's (marked) name when config.json is written


# ============================================================================ JSON values

class Raw:
    """JSON text put verbatim into the document (deep nesting, 1e999, NaN, duplicate keys)."""

    def __init__(self, text: str, label: str | None = None):
        self.text, self.label = text, label

    def __repr__(self):
        return f"Raw({self.label or self.text!r})"


def _deep(kind: str, depth: int) -> Raw:
    if kind == "[":
        text = "[" * depth + "]" * depth
    elif kind == "{":
        text = '{"a":' * depth + "1" + "}" * depth
    else:
        text = '[{"a":' * (depth // 2) + "[]" + "}]" * (depth // 2)
    return Raw(text, f"{kind} nested {depth} deep")


def _long(char: str, n: int) -> str:
    return char * n


SPECIAL_INTS = [0, 1, -1, 7, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -2**31, -2**31 - 1,
                2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64 - 1, 2**64,
                10**30, -10**30]
SPECIAL_FLOATS = [0.5, -0.0, 1.0, 1e300, Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"),
                  Raw("-Infinity"), Raw("1E2"), Raw("-0"), Raw("1.0e-400"), Raw("1" + "0" * 5000)]
SPECIAL_STRINGS = ["", " ", "/", ".", "..", "../..", "/../../..", "relative/path", "a\nb", "a\x00b",
                   "\x00", "\x01", "\x7f", "\ud800", "a\udfffb", "ü", "😀", "\u202e", "%s%n%x", "${HOME}",
                   "-", "--help", "CAP_SYS_ADMIN", "SCMP_ACT_ALLOW", "RLIMIT_NOFILE", "null", "true",
                   "/" + "a" * 255, "/" + "a" * 256, "/" + "a/" * 2100, "x" * 4097]
ints = st.one_of(st.sampled_from(SPECIAL_INTS), st.integers(-2**70, 2**70), st.integers(-3, 70000))
floats = st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats(allow_nan=False, allow_infinity=False))
strings = st.one_of(
    st.sampled_from(SPECIAL_STRINGS),
    st.text(max_size=12),
    st.builds(_long, st.sampled_from(["x", "/", "é", "\x01", "ab/"]), st.sampled_from([255, 4096, 100_000])),
)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, strings)
keys = st.one_of(st.sampled_from(["", "a", "type", "path", "\x00", "ü", "x" * 1000]), st.text(max_size=8))
junk = st.recursive(scalars, lambda ch: st.lists(ch, max_size=3) | st.dictionaries(keys, ch, max_size=3),
                    max_leaves=6)
deep = st.builds(_deep, st.sampled_from(["[", "{", "mix"]),
                 st.sampled_from([50, 400, 900, 998, 999, 1000, 1001, 3000, 100_000]))
not_a_string = st.one_of(st.none(), st.booleans(), ints, st.lists(ints, max_size=2),
                         st.dictionaries(keys, ints, max_size=2))


def _pool(values, *extra):
    """Mostly one of `values`; now and then a value of the wrong type."""
    return st.one_of(st.sampled_from(values), st.sampled_from(values), st.sampled_from(values), not_a_string, *extra)


# ---------------------------------------------------------------- pools for what runs on the host

ARGV = [["true"], ["/bin/true"], ["false"], [""], ["/no/such/program"], ["no-such-program"], ["/bin"],
        ["/etc/passwd"], ["./true"], ["true", "x" * 100_000], ["ü"], ["true\x00x"], ["/bin/true"] + ["a"] * 3000,
        [], ["\ud800"], ["true", "\ud800"], ["/"], ["/bin/true/"], ["x" * 5000], ["true", ""], ["/bin/../bin/true"],
        ["/proc/self/exe"], ["/dev/null"]]
ARG_ITEMS = ["true", "", "false", "/bin/true", "\x00", "\ud800", "x" * 100_000, "ü", "-h"]
ROOT_PATHS = ["rootfs", "", "missing", "rootfs/", "./rootfs", "rootfs/../rootfs", "rootfs/bin/busybox",
              "rootfs/etc/passwd", "/no/such/rootfs", "r" * 5000, "rootfs\x00x", "\ud800", "rootfs\n",
              "rootfs/bin/sh", "config.json", "."]
CGROUP_PATHS = [NAME, "/" + NAME, NAME + "/sub", NAME + "/../" + NAME + "x", "", NAME + "x" * 300,
                NAME + "/" + "/".join(["d"] * 40), "a:b:" + NAME, NAME + ":x:y", NAME + "\n", NAME + "\x00x",
                NAME + "/.", "./" + NAME, NAME + "//x", "/" + NAME + "/", NAME + "/\ud800", NAME + "/ü",
                NAME + "/cgroup.procs", NAME + "/memory.limit_in_bytes/x"]
HOOK_PATHS = ["/bin/true", "/bin/false", "relative/hook", "/no/such/hook", "", "/", "/tmp", "hooks/../x",
              "/" + "h" * 5000, "/bin/true\x00x", "/etc/passwd", "/bin/true/", "\ud800", "/dev/null",
              "/proc/self/exe/x"]
HOOK_ARGS = [[], ["true"], [""], ["x" * 100_000], ["\ud800"], ["a\x00b"], ["true"] * 1000]
NS_PATHS = ["/proc/self/ns/net", "/proc/self/ns/pid", "/proc/self/ns/uts", "/proc/self/ns/user",
            "/proc/self/ns/mnt", "/proc/1/ns/ipc", "/no/such/ns", "relative/ns", "", "/dev/null", "/proc/self/ns",
            "/", "/proc/self/ns/net\x00", "/proc/self/ns/cgroup", "/proc/self/ns/time", "\ud800"]
SOURCES = ["tmpfs", "proc", "", "rootfs", "rootfs/tmp", "missing", "/no/such", "/tmp", "/dev/null", "../",
           "none", "x" * 5000, "rootfs/etc/passwd", "rootfs\x00", "\ud800", "mqueue", "cgroup", "/dev/shm"]
DESTS = ["/mnt", "/tmp", "/", "", "relative", "/proc", "/proc/self", "/proc/cpuinfo", "/proc/sys", "/sys",
         "/sys/fs/cgroup", "/dev", "/dev/null", "/dev/pts", "/../../../tmp", "/mnt/../../x", "/etc/passwd",
         "/bin/busybox", "/" + "d" * 300, "/a" * 3000, "/mnt\x00x", "/mnt\n", "/\ud800", "//mnt", "/mnt/",
         "/dev/../proc", "/proc/../mnt", "/bin/true/x", "/tmp/ü"]
FSTYPES = ["tmpfs", "bind", "proc", "sysfs", "none", "", "cgroup", "cgroup2", "devpts", "mqueue",
           "nosuchfs", "overlay", "ext4", "ramfs", "tmpfs\x00"]
MOUNT_OPTIONS = ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "remount", "private", "rshared",
                 "shared", "unbindable", "runbindable", "rslave", "rro", "rrw", "rnoatime", "idmap", "ridmap",
                 "tmpcopyup", "size=1k", "size=-1", "mode=0", "mode=99999", "uid=-1", "x" * 5000, "",
                 "nosuchoption", "strictatime", "nosymfollow", "rnosymfollow", "mode=755,size=1k", "a\x00b",
                 "\ud800", "defaults", "async", "newinstance", "ptmxmode=0666", "gid=5"]
DEV_PATHS = ["/dev/fz", "/dev/null", "/dev", "/", "", "relative", "/dev/../../x", "/dev/pts/0", "/mnt/fz",
             "/dev/" + "x" * 300, "/dev/fz\x00", "/dev/\ud800", "/proc/fz", "/bin/busybox"]
SYSCTL_KEYS = ["fs.nosuch", "kernel.no\nsuch", "net.\x1b[31m", "kernel.nosuch", "", ".", "../../etc", "net/../../x",
               "a" * 300, "net.ipv4.nosuch",
               "kernel.msgmax/../nosuch", "\x00", "\ud800"]
UNIFIED_KEYS = ["memory.nosuch", "../nosuch", "a/b", "", ".", "cgroup.procs", "x" * 300, "\x00", "pids.max"]
LISTENER_PATHS = ["", "relative.sock", "/no/such.sock", "/dev/null", "/tmp", "/" + "s" * 200, "\x00", "\ud800"]
SYSCALL_NAMES = ["getpid", "read", "write", "execve", "exit_group", "nosuchsyscall", "", "clone3", "socket",
                 "x" * 1000, "getpid\x00", "SCMP", "sendmsg", "mount", "\ud800", "open"]
SECCOMP_ACTIONS = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                   "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
                   "SCMP_ACT_BOGUS", "", "allow"]

PATTERN_EXAMPLES = {
    "^/": ["/", "/mnt", "/no/such", "/a" * 2100, "/\x00", "/ü"],
    "^[0-9]+[KMGTPE]B$": ["2MB", "64KB", "1GB", "3MB", "0KB", "99999999999999999999KB", "2mB", "1PB"],
    "^[rwm]*$": ["", "r", "rwm", "mmm", "x", "rwmrwm"],
    "^MB:": ["MB:0=100", "MB:", "MB:x", "MB:0=-1;1=99999999999"],
}
OCI_VERSIONS = ["1.0.0", "1.0.2-dev", "1.3.0", "2.0.0", "1.0.0-rc1", "0.1", "1.99999999999999999999.0",
                "1.0.0+build", "1.4.0", "1.0", ""]


def _path_pool(path: tuple):
    """The strategy for a field whose value reaches the host (a program, a directory, a cgroup),
    or None for a field that may take anything. `path` has "*" for any array index or map key."""
    p = tuple("*" if isinstance(s, int) else s for s in path)
    if p == ("process", "args"):
        return _pool(ARGV)
    if p[:2] == ("process", "args"):
        return _pool(ARG_ITEMS)
    if p == ("root", "path"):
        return _pool(ROOT_PATHS)
    if p == ("linux", "cgroupsPath"):
        return _pool(CGROUP_PATHS)
    if p[:1] == ("hooks",) and len(p) >= 4:
        if p[3] == "path":
            return _pool(HOOK_PATHS)
        if p[3] == "args":
            return _pool(HOOK_ARGS) if len(p) == 4 else _pool(ARG_ITEMS)
    if p[:1] == ("hooks",) and len(p) in (2, 3):
        return hook_lists if len(p) == 2 else hooks_
    if p[:2] == ("linux", "namespaces") and p[-1:] == ("path",):
        return _pool(NS_PATHS)
    if p[:1] == ("mounts",) and len(p) == 3:
        return {"source": _pool(SOURCES), "destination": _pool(DESTS), "type": _pool(FSTYPES),
                "options": st.one_of(mount_options, not_a_string)}.get(p[2])
    if p[:2] == ("linux", "devices") and p[-1:] == ("path",):
        return _pool(DEV_PATHS)
    if p == ("linux", "sysctl"):
        return st.one_of(st.dictionaries(st.sampled_from(SYSCTL_KEYS), strings, max_size=2), not_a_string)
    if p == ("linux", "resources", "unified"):
        return st.one_of(st.dictionaries(st.sampled_from(UNIFIED_KEYS), strings, max_size=2), not_a_string)
    if p[:2] == ("linux", "seccomp") and p[-1:] == ("listenerPath",):
        return _pool(LISTENER_PATHS)
    if p[:2] == ("linux", "seccomp") and p[-2:] == ("names", "*"):
        return _pool(SYSCALL_NAMES)
    if p[:2] == ("linux", "seccomp") and p[-1:] in (("defaultAction",), ("action",)):
        return _pool(SECCOMP_ACTIONS)
    if p == ("ociVersion",):
        return _pool(OCI_VERSIONS, strings)
    if p[:1] == ("process",) and p[-1:] == ("cwd",):
        return _pool(["/", "/tmp", "relative", "", "/no/such", "/etc/passwd", "/../..", "/" + "c" * 300,
                      "/\x00", "/bin/true/x"])
    return None


mount_options = st.lists(st.sampled_from(MOUNT_OPTIONS), max_size=5)


def _hook(path, args, env, timeout):
    h = {"path": path}
    for k, v in (("args", args), ("env", env), ("timeout", timeout)):
        if v is not None:
            h[k] = v
    return h


hooks_ = st.one_of(
    st.builds(_hook, _pool(HOOK_PATHS), st.one_of(st.none(), _pool(HOOK_ARGS)),
              st.one_of(st.none(), st.sampled_from([[], ["A=b"], ["PATH=/x"], ["=\x00"], ["x" * 100_000], [""]])),
              st.one_of(st.none(), ints)),
    # a hook that outlives its timeout, one that takes a second, one that fails
    st.just({"path": "/bin/busybox", "args": ["busybox", "sleep", "2"], "timeout": 1}),
    st.just({"path": "/bin/busybox", "args": ["busybox", "sleep", "1"]}),
    st.just({"path": "/bin/busybox", "args": ["busybox", "false"]}),
    not_a_string,
)
hook_lists = st.one_of(st.lists(hooks_, max_size=2), not_a_string)
HOOK_PHASES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
               "bogusPhase"]


# ============================================================================ from the schema

def _int_in(lo, hi):
    edges = [v for v in SPECIAL_INTS if (lo is None or v >= lo) and (hi is None or v <= hi)]
    edges += [v for v in (lo, hi) if v is not None]
    edges += [lo - 1] if lo is not None else []
    edges += [hi + 1] if hi is not None else []
    inner = st.integers(lo if lo is not None else -2**70, hi if hi is not None else 2**70)
    return st.one_of(st.sampled_from(sorted(set(edges))), inner)


_memo: dict = {}


def from_schema(s: dict, path: tuple):
    """Values shaped by one compiled schema node (ocirun/_schemas.py): mostly valid, at the
    edges of what is valid, sometimes just past them. Path segments: a key, or "*"."""
    key = (id(s), path)
    if key not in _memo:
        _memo[key] = st.deferred(lambda: _from_schema(s, path))
    return _memo[key]


def _from_schema(s: dict, path: tuple):
    pooled = _path_pool(path)
    if pooled is not None:
        return pooled
    alts = []
    for sub in s.get("anyOf", ()):
        alts.append(from_schema(sub, path))
    if "enum" in s:
        alts.append(st.sampled_from(sorted(s["enum"])))
    if "const" in s:
        alts.append(st.just(s["const"]))
    for t in sorted(s.get("type", ())):
        if t == "integer":
            alts.append(_int_in(s.get("minimum"), s.get("maximum")))
        elif t == "number":
            alts.append(floats)
        elif t == "string":
            pattern = s.get("pattern")
            if pattern in PATTERN_EXAMPLES:
                alts.append(st.sampled_from(PATTERN_EXAMPLES[pattern]))
            elif pattern is not None:
                alts.append(st.sampled_from(OCI_VERSIONS))
            elif "enum" not in s:
                alts.append(strings)
        elif t == "boolean":
            alts.append(st.booleans())
        elif t == "null":
            alts.append(st.none())
        elif t == "array":
            alts.append(st.lists(from_schema(s.get("items") or {}, path + ("*",)), max_size=3))
        elif t == "object":
            alts.append(_object(s, path))
    if not alts:
        alts.append(junk)
    return st.one_of(alts)


@st.composite
def _object(draw, s, path):
    props = s.get("properties") or {}
    required = list(s.get("required", ()))
    optional = sorted(set(props) - set(required))
    chosen = required + (draw(st.lists(st.sampled_from(optional), max_size=3, unique=True)) if optional else [])
    if required and draw(st.integers(0, 9)) == 0:
        chosen.remove(draw(st.sampled_from(required)))  # a required member left out
    out = {}
    for k in chosen:
        out[k] = draw(from_schema(props.get(k) or {}, path + (k,)))
    extra = s.get("additionalProperties")
    if isinstance(extra, dict) and draw(st.booleans()):
        out[draw(keys)] = draw(from_schema(extra, path + ("*",)))
    return out


def _schema_paths(s: dict, path=(), out=None, depth=0) -> dict:
    """Every path the config schema describes -> its node ("*" for array items and map values)."""
    out = {} if out is None else out
    if depth > 7:
        return out
    if path and path not in out:
        out[path] = s
    for k, sub in (s.get("properties") or {}).items():
        _schema_paths(sub, path + (k,), out, depth + 1)
    if isinstance(s.get("items"), dict):
        _schema_paths(s["items"], path + ("*",), out, depth + 1)
    if isinstance(s.get("additionalProperties"), dict):
        _schema_paths(s["additionalProperties"], path + ("*",), out, depth + 1)
    for sub in s.get("anyOf", ()):
        _schema_paths(sub, path, out, depth + 1)
    return out


SCHEMA_PATHS = sorted(_schema_paths(_schemas.CONFIG).items(), key=lambda kv: kv[0])


# ============================================================================ config cases

def base_config() -> dict:
    cfg = busybox_bundle.default_config(["true"])
    cfg["linux"]["cgroupsPath"] = NAME
    return cfg


def _all_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _all_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _all_paths(v, path + (i,))


BASE = base_config()
BASE_PATHS = [p for p in _all_paths(BASE) if p]
def _get(node, path):
    for seg in path:
        node = node[seg]
    return node


OBJECT_PATHS = [p for p in _all_paths(BASE) if isinstance(_get(BASE, p), dict)]


class Mutation:
    """One change to the base config: ("set", path, value), ("delete", path) or ("append", path, item).
    An int segment past the end of a list appends; -1 is the last item."""

    def __init__(self, op, path, value=None):
        self.op, self.path, self.value = op, tuple(path), value

    def __repr__(self):
        v = repr(self.value)
        if len(v) > 200:
            v = v[:120] + f"...<{len(v)} chars>"
        return f"{self.op}({'.'.join(map(str, self.path)) or '<root>'}" + (f", {v})" if self.op != "delete" else ")")

    def apply(self, cfg):
        if not self.path:
            return copy.deepcopy(self.value) if self.op == "set" else cfg
        parent = cfg
        for seg, nxt in zip(self.path, self.path[1:]):
            child = _child(parent, seg)
            if not isinstance(child, (dict, list)) or isinstance(child, list) != isinstance(nxt, int):
                if self.op == "delete":
                    return cfg
                child = [] if isinstance(nxt, int) else {}
                parent = _put(parent, seg, child)
            else:
                parent = child
        last = self.path[-1]
        if self.op == "delete":
            if isinstance(parent, dict):
                parent.pop(last, None)
            elif isinstance(parent, list) and isinstance(last, int) and parent and last < len(parent):
                del parent[last]
        elif self.op == "append":
            target = _child(parent, last)
            if not isinstance(target, list):
                target = _put(parent, last, [])
            target.append(copy.deepcopy(self.value))
        else:
            _put(parent, last, copy.deepcopy(self.value))
        return cfg


def _child(parent, seg):
    if isinstance(parent, dict) and not isinstance(seg, int):
        return parent.get(seg)
    if isinstance(parent, list) and isinstance(seg, int) and -len(parent) <= seg < len(parent):
        return parent[seg]
    return None


def _put(parent, seg, value):
    """parent[seg] = value (appending for a list index past the end); returns the stored value."""
    if isinstance(parent, dict):
        parent[seg if not isinstance(seg, int) else str(seg)] = value
    elif isinstance(parent, list):
        if isinstance(seg, int) and parent and -len(parent) <= seg < len(parent):
            parent[seg] = value
        else:
            parent.append(value)
    return value


class ConfigCase:
    """What one example writes as config.json, and how it runs it ("create" or "run")."""

    def __init__(self, mode, mutations=(), raw=None, special=None):
        self.mode, self.mutations, self.raw, self.special = mode, list(mutations), raw, special

    def __repr__(self):
        if self.special:
            what = f"special={self.special!r}"
        elif self.raw is not None:
            what = f"raw={self.raw[:200]!r}" + (f"...<{len(self.raw)} bytes>" if len(self.raw) > 200 else "")
        else:
            what = f"mutations={self.mutations!r}"
        return f"ConfigCase({self.mode}, {what})"

    def render(self, name: str) -> bytes:
        if self.raw is not None:
            return self.raw
        cfg = base_config()
        for m in self.mutations:
            cfg = m.apply(cfg)
        return render_json(cfg, name)


def render_json(cfg, name: str) -> bytes:
    raws: list[Raw] = []

    def default(o):
        if isinstance(o, Raw):
            raws.append(o)
            return f"\x00RAW{len(raws) - 1}\x00"
        raise TypeError(type(o).__name__)

    text = json.dumps(cfg, indent=1, default=default, ensure_ascii=True, allow_nan=True)
    for i, r in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), r.text, 1)
    return text.replace(NAME, name).encode()


def _value_like(old):
    """A value of the same JSON type as `old` (at the edges), or of another type."""
    if isinstance(old, bool):
        return st.one_of(st.booleans(), junk)
    if isinstance(old, int):
        return st.one_of(ints, junk)
    if isinstance(old, str):
        return st.one_of(strings, junk)
    if isinstance(old, list):
        items = [st.sampled_from(old)] if old else []
        return st.one_of(st.lists(st.one_of(*items, junk), max_size=4), st.just([]), junk)
    return junk


@st.composite
def _replace(draw):
    path = draw(st.sampled_from(BASE_PATHS))
    pooled = _path_pool(path)
    if pooled is not None:
        return Mutation("set", path, draw(pooled))
    return Mutation("set", path, draw(_value_like(_get(BASE, path))))


@st.composite
def _schema_set(draw):
    path, node = draw(st.sampled_from(SCHEMA_PATHS))
    value = draw(from_schema(node, path))
    concrete = []
    for seg in path:
        if seg == "*":
            # array item or map key: which one decides the shape; both read the same in a path
            concrete.append(draw(st.one_of(st.sampled_from([0, -1, 1000]), st.sampled_from(["a", "", "x" * 300]))))
        else:
            concrete.append(seg)
    return Mutation("set", concrete, value)


@st.composite
def _add_unknown(draw):
    path = draw(st.sampled_from(OBJECT_PATHS))
    return Mutation("set", path + (draw(keys),), draw(st.one_of(junk, junk, junk, deep)))


@st.composite
def _deep_at(draw):
    path = draw(st.one_of(st.sampled_from(BASE_PATHS), st.sampled_from([p for p, _ in SCHEMA_PATHS])))
    path = tuple(0 if s == "*" else s for s in path)
    return Mutation("set", path, draw(deep))


@st.composite
def _long_string_at(draw):
    strs = [p for p in BASE_PATHS if isinstance(_get(BASE, p), str) and _path_pool(p) is None]
    path = draw(st.sampled_from(strs))
    return Mutation("set", path, draw(st.builds(_long, st.sampled_from(["x", "/", "é", "\x01"]),
                                                st.sampled_from([100_000, 1_000_000]))))


@st.composite
def _dup_namespace(draw):
    ns = {"type": draw(st.one_of(st.sampled_from(["pid", "network", "ipc", "uts", "mount", "user", "cgroup",
                                                  "time", "net", "bogus", ""]), not_a_string))}
    if draw(st.booleans()):
        ns["path"] = draw(_pool(NS_PATHS))
    return Mutation("append", ("linux", "namespaces"), ns)


@st.composite
def _dup_mount(draw):
    if draw(st.booleans()):
        m = copy.deepcopy(draw(st.sampled_from(BASE["mounts"])))
        if draw(st.booleans()):
            m["options"] = draw(mount_options)
    else:
        m = {"destination": draw(_pool(DESTS))}
        for field, strat in (("type", _pool(FSTYPES)), ("source", _pool(SOURCES)),
                             ("options", st.one_of(mount_options, not_a_string))):
            if draw(st.booleans()):
                m[field] = draw(strat)
        if draw(st.integers(0, 4)) == 0:
            maps = draw(idmaps)
            m["uidMappings"], m["gidMappings"] = maps, maps
    return Mutation("append", ("mounts",), m)


_idmap = st.fixed_dictionaries({"containerID": _int_in(0, 2**32 - 1), "hostID": _int_in(0, 2**32 - 1),
                                "size": _int_in(0, 2**32 - 1)})
idmaps = st.one_of(
    st.lists(_idmap, max_size=3),
    st.just([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    st.just([{"containerID": 0, "hostID": 100000, "size": 65536}, {"containerID": 100, "hostID": 0, "size": 1}]),
    st.just([{"containerID": 0, "hostID": 0, "size": 4294967295}]),
    st.just([{"containerID": 0, "hostID": 100000, "size": 1}] * 400),
    st.just([{"containerID": 0, "hostID": 100000, "size": 0}]),
    st.lists(st.fixed_dictionaries({"containerID": ints, "hostID": ints, "size": ints}), max_size=2),
    junk,
)


@st.composite
def _idmaps(draw):
    uid, gid = draw(idmaps), draw(st.one_of(idmaps, st.none()))
    muts = [Mutation("append", ("linux", "namespaces"), {"type": "user"})] if draw(st.integers(0, 4)) else []
    muts.append(Mutation("set", ("linux", "uidMappings"), uid))
    if gid is not None:
        muts.append(Mutation("set", ("linux", "gidMappings"), gid))
    return muts


_sec_arg = st.fixed_dictionaries(
    {"index": st.one_of(st.integers(0, 7), ints), "value": st.one_of(st.integers(0, 2**64 - 1), ints),
     "op": st.sampled_from(["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                            "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_BOGUS", ""])},
    optional={"valueTwo": st.one_of(st.integers(0, 2**64 - 1), ints)})
_sec_rule = st.fixed_dictionaries(
    {"names": st.one_of(st.lists(st.sampled_from(SYSCALL_NAMES), max_size=3), not_a_string),
     "action": _pool(SECCOMP_ACTIONS)},
    optional={"errnoRet": _int_in(0, 2**32 - 1), "args": st.one_of(st.lists(_sec_arg, max_size=3), not_a_string),
              "comment": strings})
seccomp_profiles = st.fixed_dictionaries(
    {"defaultAction": _pool(SECCOMP_ACTIONS)},
    optional={
        "defaultErrnoRet": _int_in(0, 2**32 - 1),
        "architectures": st.lists(st.sampled_from(["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",
                                                   "SCMP_ARCH_AARCH64", "SCMP_ARCH_S390X", "SCMP_ARCH_PPC",
                                                   "SCMP_ARCH_BOGUS", ""]), max_size=3),
        "flags": st.lists(st.sampled_from(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                           "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                           "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "BOGUS"]), max_size=2),
        "listenerPath": _pool(LISTENER_PATHS),
        "listenerMetadata": strings,
        "syscalls": st.one_of(st.lists(_sec_rule, max_size=4),
                              st.just([{"names": [f"nosuch{i}" for i in range(5000)], "action": "SCMP_ACT_ERRNO"}]),
                              st.just([{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": i % 6, "value": i, "op": "SCMP_CMP_EQ"}
                                                 for i in range(400)]}]),
                              not_a_string),
    })


@st.composite
def _seccomp(draw):
    return Mutation("set", ("linux", "seccomp"), draw(st.one_of(seccomp_profiles, seccomp_profiles, seccomp_profiles,
                                                               not_a_string)))


@st.composite
def _hooks(draw):
    return Mutation("set", ("hooks", draw(st.sampled_from(HOOK_PHASES))), draw(hook_lists))


@st.composite
def _delete(draw):
    return Mutation("delete", draw(st.sampled_from(BASE_PATHS)))


mutations = st.one_of(_replace(), _replace(), _delete(), _add_unknown(), _schema_set(), _schema_set(),
                      _schema_set(), _dup_namespace(), _dup_mount(), _seccomp(), _hooks(), _deep_at(),
                      _long_string_at(), _idmaps())


def _flatten(items):
    out = []
    for m in items:
        out += m if isinstance(m, list) else [m]
    return out


def _valid_bytes() -> bytes:
    return render_json(base_config(), "x")


@st.composite
def _raw_case(draw):
    valid = _valid_bytes()
    kind = draw(st.sampled_from(["fixed", "truncated", "bad byte", "encoding", "padding"]))
    if kind == "fixed":
        data = draw(st.sampled_from([
            b"", b"   \n", b"null", b"[]", b"0", b'"config"', b"{", b"}", b"{}", b'{"ociVersion": "1.0.2"}',
            b"\x00", b"\xff\xfe", b'{"a": 1} {"b": 2}', b'{"a": 1,}', b"{'a': 1}", b"// comment\n{}",
            b'{"ociVersion": "1.0.2-dev", "ociVersion": 5}', b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 5000 + b"1" + b"}" * 5000, b"NaN", b"1e999", b'"\\ud800"', b'{"\\u0000": 1}',
            b'{"process": {"args": ["true"]}, "root": {"path": "rootfs"}, "ociVersion": "1.0.2-dev"}',
        ]))
    elif kind == "truncated":
        data = valid[:draw(st.integers(0, len(valid) - 1))]
    elif kind == "bad byte":
        at = draw(st.integers(0, len(valid)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80",
                                    b"\x80", b"\xe2\x82", b"\x00", b"\xef\xbb\xbf"]))
        data = valid[:at] + bad + valid[at:]
    elif kind == "encoding":
        text = valid.decode()
        data = draw(st.sampled_from([b"\xef\xbb\xbf" + valid, text.encode("utf-16"), text.encode("utf-32"),
                                     text.replace("ocirun", "ocirün").encode("latin-1")]))
    else:
        data = b" " * draw(st.sampled_from([4096, 5_000_000])) + valid + b"\n" * draw(st.integers(0, 3))
    return ConfigCase(draw(st.sampled_from(["create", "run"])), raw=data)


SPECIALS = ["fifo", "directory", "dev-zero", "dev-null", "dangling-symlink", "symlink-loop", "missing",
            "no-bundle", "bundle-is-a-file", "no-rootfs", "rootfs-is-a-file", "symlink-to-valid", "unreadable"]


@st.composite
def _mutated_case(draw):
    # one change, mostly: every change more is another chance of a refusal that stops the rest
    one = st.lists(mutations, min_size=1, max_size=1)
    muts = _flatten(draw(st.one_of(one, one, st.lists(mutations, min_size=2, max_size=3))))
    return ConfigCase(draw(st.sampled_from(["create", "create", "run"])), muts)


config_cases = st.one_of(
    _mutated_case(), _mutated_case(), _mutated_case(), _mutated_case(), _mutated_case(), _mutated_case(),
    _raw_case(),
    st.builds(lambda mode, special: ConfigCase(mode, special=special), st.sampled_from(["create", "run"]),
              st.sampled_from(SPECIALS)),
)


# ============================================================================ command lines

_ARGV_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # what exec can carry


def _ids():
    m = MARK
    return st.one_of(
        st.builds(lambda n: f"{m}-f{n}", st.integers(0, 9)),
        st.sampled_from([
            "", ".", "..", "/", f"{m}/x", f"../{m}", f"{m}/../{m}", f"/{m}", f"{m}\x01", f"{m}\n", f"{m}\nx",
            f"{m} x", f"{m}\t", "x" * 1000, m + "a" * 1000, m + "ü", "ü", "-", "--", "-f", "--force", "😀",
            f"{m}.", f"{m}..", f"{m}\udcff", "\udcff\udcfe", f"{m}\x7f", f"{m}\x1b[31m", f"{m}+_.-", f"{m}%s",
            f"{m}$(id)", f"{m}*", f"{m}\u202e", f"{m}-" + "é" * 300, "0", "-1", f"{m}/",
        ]),
        st.builds(lambda t: m + t, st.text(_ARGV_CHARS, max_size=8)),
    )


ids = _ids()


def _flag_value(dest: str):
    """Values for a flag: relative paths (the example runs in a scratch cwd) and edge cases."""
    paths = ["", ".", "nosuch", "nosuch/dir", "file.txt", "dir", "/no/such/place", "-", "x" * 5000,
             "@VALID@", "\udcff", "ü"]
    numbers = ["0", "1", "3", "-1", "x", "", "99999999999999999999", "1e3", " 1", "٣", "²", "1.5", "0x10",
               "9223372036854775808", "-9223372036854775809", "1k", "1g", "max", "true"]
    pools = {
        "bundle": paths, "pid_file": ["pid", "dir", "nosuch/pid", "", "/no/such/pid", "x" * 5000, "\udcff"],
        "console_socket": ["nosuch.sock", "file.txt", "dir", "", "/dev/null", "x" * 200],
        "preserve_fds": numbers, "log": ["log.txt", "dir", "nosuch/log", "", "\udcff", "/dev/full"],
        "log_format": ["text", "json", "", "xml", "JSON", "\udcff"],
        "rootless": ["true", "false", "auto", "", "maybe"], "criu": ["criu", ""],
        "process_file": ["file.txt", "nosuch.json", "dir", "", "-", "bad.json", "/dev/null"],
        "format": ["table", "json", "", "xml"], "interval": ["1s", "0", "-1s", "", "1x", "5", "1e999", "nan", "1.5ms"],
        "resources": ["file.txt", "nosuch.json", "-", "", "dir", "bad.json", "res.json"],
        "cwd": ["/", "relative", ""], "user": ["0", "0:0", "x", "-1", "99999999999", "1:2:3", ""],
        "env": ["A=b", "", "=", "A"], "caps": ["CAP_CHOWN", "BOGUS", ""], "additional_gids": ["1", "x", "-1", ""],
        "apparmor": ["x"], "process_label": ["x"],
    }
    vals = pools.get(dest, numbers)
    return st.one_of(st.sampled_from(vals), st.text(_ARGV_CHARS, max_size=6), ids)


def _flag_tokens(table: dict):
    """One flag of `table` (or an unknown one), with its value or without it."""
    names = sorted(table)
    known = st.sampled_from(names) if names else st.nothing()

    @st.composite
    def one(draw):
        if names and draw(st.integers(0, 4)):
            name = draw(known)
            dest, takes = table[name]
            if takes:
                v = draw(_flag_value(dest))
                form = draw(st.sampled_from(["sep", "sep", "eq", "missing"]))
                return [name, v] if form == "sep" else [f"{name}={v}"] if form == "eq" else [name]
            form = draw(st.sampled_from(["bare", "bare", "true", "false", "bad"]))
            return [name] if form == "bare" else [f"{name}={'maybe' if form == 'bad' else form}"]
        return [draw(st.sampled_from(["--bogus", "-x", "--", "-", "--=", "---", "--bundle", "-b", "--force",
                                      "-d", "--detach=", "--all=1", "--help", "--version", "--debug",
                                      "--a\nb", "-\x1b[31m", "--ü", "--\udcff", "-" + "x" * 1000]))]
    return one()


GLOBAL_NO_ROOT = {k: v for k, v in _cli.GLOBAL_FLAGS.items() if k != "--root"}
COMMAND_NAMES = sorted(_cli.COMMANDS)


@st.composite
def argvs(draw):
    argv = []
    for tokens in draw(st.lists(_flag_tokens(GLOBAL_NO_ROOT), max_size=2)):
        argv += tokens
    if draw(st.integers(0, 9)):
        command = draw(st.one_of(st.sampled_from(COMMAND_NAMES),
                                 st.sampled_from(["", "bogus", "CREATE", "-", "--", "run\x01", "ü", "checkpoint",
                                                  "restore", "\udcff"])))
        argv.append(command)
        table = _cli.COMMANDS.get(command, ({},))[0]
        rest = []
        for tokens in draw(st.lists(_flag_tokens(table), max_size=3)):
            rest += tokens
        positional = draw(st.lists(st.one_of(ids, ids, st.sampled_from(["KILL", "9", "SIGRTMIN+99", "0", "ps",
                                                                         "-ef", "true", "²"])),
                                   max_size=3))
        # flags and positionals in any order: the parser takes both
        order = draw(st.permutations(list(range(len(rest) + len(positional)))))
        items = rest + positional
        argv += [items[i] for i in order] if draw(st.booleans()) else items
    if draw(st.integers(0, 19)) == 0:
        argv.append("--root")  # a global flag without its value, at the very end
    return argv


# ============================================================================ the harness

class Failure(AssertionError):
    pass


class Result:
    def __init__(self, args, rc, out, err, timed_out, seconds):
        self.args, self.rc, self.out, self.err = args, rc, out, err
        self.timed_out, self.seconds = timed_out, seconds

    def __repr__(self):
        return (f"ocirun {_show_args(self.args)} -> rc {self.rc}{' (TIMED OUT)' if self.timed_out else ''} "
                f"in {self.seconds:.2f}s\nstderr: {self.err[:3000]!r}\nstdout: {self.out[:500]!r}")


def _show_args(args) -> str:
    def one(a: str) -> str:
        short = a if len(a) <= 60 else a[:40] + f"...<{len(a)} chars>"
        return short if short and short.isprintable() and " " not in short else repr(short)
    return " ".join(one(a) for a in map(str, args))


class Lane:
    """Runs examples against one runtime binary with one state root; checks the property and
    that each example leaves nothing behind. With collect=True failures are recorded in
    `failures` (signature -> first example) instead of raised."""

    def __init__(self, binary: str, state_root: Path, bundles: Path, collect: bool = False):
        self.binary, self.state_root, self.bundles = binary, Path(state_root), Path(bundles)
        self.collect = collect
        self.failures: dict[str, str] = {}
        self.stats: dict[str, int] = {}
        self.refusals: dict[str, int] = {}  # error line, without ids, paths and numbers -> count
        self.me = os.getpid()
        self._valid = None

    # ---- calls
    def call(self, args, cwd=None, timeout=CALL_TIMEOUT, stdin=None) -> Result:
        self.reap()
        argv = [self.binary, "--root", str(self.state_root), *args]
        with tempfile.TemporaryFile(dir=self.bundles) as out, tempfile.TemporaryFile(dir=self.bundles) as err:
            t0 = time.monotonic()
            timed_out = False
            try:
                p = subprocess.run(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=out,
                                   stderr=err, cwd=cwd or self.bundles, timeout=timeout)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                timed_out, rc = True, None
            seconds = time.monotonic() - t0
            out.seek(0)
            err.seek(0)
            o = out.read(200_000).decode(errors="backslashreplace")
            e = err.read(200_000).decode(errors="backslashreplace")
        return Result(args, rc, o, e, timed_out, seconds)

    def reap(self) -> None:
        """Container inits are reparented to us (a subreaper), as to a shim: reap them."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    # ---- the property
    def fail(self, kind: str, detail: str, context: str) -> None:
        sig = kind + ": " + _signature(detail)
        self.stats["failures"] = self.stats.get("failures", 0) + 1
        if self.collect:
            self.failures.setdefault(sig, f"{kind}\n{context}\n{detail}")
            return
        raise Failure(f"{kind}\n{context}\n{detail}")

    def expect(self, r: Result, context: str, *, container_status_ok=False, debug=False, must_succeed=False,
               names_field=False) -> None:
        """The property for one call (each kind of breach raised from its own line, so that
        hypothesis reports them as distinct bugs)."""
        if r.timed_out:
            self.fail("hang", repr(r), context)
            return
        if "Traceback" in r.err or "Traceback" in r.out:
            self.fail("traceback", repr(r), context)
            return
        if "internal error" in r.err:
            self.fail("internal error", repr(r), context)
            return
        if r.rc == 0:
            return
        if must_succeed:
            self.fail("failed", repr(r), context)
            return
        if r.rc < 0:
            self.fail("killed by a signal", repr(r), context)
            return
        skip = ("ocirun: warning: ", "ocirun: debug: ") if debug else ("ocirun: warning: ",)
        lines = [ln for ln in r.err.split("\n") if ln.strip() and not ln.startswith(skip)]
        if not lines and container_status_ok:
            return  # `run`: the container's own exit status
        if len(lines) != 1 or not lines[0].startswith("ocirun: "):
            self.fail("not one error line", repr(r), context)
            return
        refusal = _signature("stderr: " + lines[0])[:70]
        self.refusals[refusal] = self.refusals.get(refusal, 0) + 1
        if any(c in _LINE_BREAKING for c in lines[0]):
            self.fail("control character in the error line", repr(r), context)
            return
        if names_field and not _names_field_or_file(lines[0]):
            self.fail("error names no field or file", repr(r), context)

    # ---- leaks
    def snapshot(self):
        return (set(harness._mounts()), harness._cgroup_dirs(),
                {(pid, p["start"]) for pid, p in harness._procs().items()})

    def leaks(self, snap, mine) -> list[str]:
        mounts0, cgroups0, procs0 = snap

        def found_now():
            self.reap()
            found = []
            for key, line in harness._mounts().items():
                if key not in mounts0 and harness._ours(line, *mine):
                    found.append(f"host mount: {line}")
            for d in sorted(harness._cgroup_dirs() - cgroups0):
                if harness._ours(d, *mine):
                    found.append(f"cgroup: {d}")
            procs = harness._procs()
            for pid in harness._descendants(procs, self.me):
                if (pid, procs[pid]["start"]) not in procs0:
                    found.append(f"process: {harness._describe(pid)}")
            try:
                left = os.listdir(self.state_root)
            except FileNotFoundError:
                left = []
            found += [f"state root entry: {self.state_root / n}" for n in left]
            return found

        return harness.settled(found_now)

    def clean_up_after_leak(self, snap) -> None:
        procs = harness._procs()
        for pid in harness._descendants(procs, self.me):
            if (pid, procs[pid]["start"]) not in snap[2]:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        time.sleep(0.05)
        self.reap()
        for n in os.listdir(self.state_root):
            self.call(["delete", "--force", n], timeout=15)
        for n in os.listdir(self.state_root):  # what delete could not remove
            shutil.rmtree(self.state_root / n, ignore_errors=True)

    # ---- bundles
    def new_bundle(self, config: bytes | None = None) -> tuple[Path, str]:
        name = harness._next("fb")
        path = busybox_bundle.make_bundle(self.bundles / name, config=busybox_bundle.default_config(["true"]))
        if config is not None:
            (path / "config.json").write_bytes(config)
        return path, name

    def remove_bundle(self, path: Path) -> None:
        harness._rmtree_unless_mounted(path)

    def _prepare_special(self, case: ConfigCase, path: Path, name: str) -> Path:
        cfg_path = path / "config.json"
        valid = render_json(base_config(), name)
        s = case.special
        if s in ("fifo", "directory", "dev-zero", "dev-null", "dangling-symlink", "symlink-loop", "missing",
                 "symlink-to-valid", "unreadable"):
            cfg_path.unlink()
        if s == "fifo":
            os.mkfifo(cfg_path)
        elif s == "directory":
            cfg_path.mkdir()
        elif s == "dev-zero":
            cfg_path.symlink_to("/dev/zero")
        elif s == "dev-null":
            cfg_path.symlink_to("/dev/null")
        elif s == "dangling-symlink":
            cfg_path.symlink_to(path / "nosuch.json")
        elif s == "symlink-loop":
            cfg_path.symlink_to(cfg_path)
        elif s == "symlink-to-valid":
            (path / "real.json").write_bytes(valid)
            cfg_path.symlink_to("real.json")
        elif s == "unreadable":
            cfg_path.write_bytes(valid)
            cfg_path.chmod(0)
        elif s == "no-bundle":
            return path / "nosuch"
        elif s == "bundle-is-a-file":
            return path / "rootfs" / "etc" / "passwd"
        elif s == "no-rootfs":
            shutil.rmtree(path / "rootfs")
            cfg_path.write_bytes(valid)
        elif s == "rootfs-is-a-file":
            shutil.rmtree(path / "rootfs")
            (path / "rootfs").write_text("x")
            cfg_path.write_bytes(valid)
        return path

    # ---- one config example
    def check_config(self, case: ConfigCase) -> None:
        self.stats["config examples"] = self.stats.get("config examples", 0) + 1
        path, name = self.new_bundle()
        cid = harness._next("fc")
        try:
            if case.special:
                where = self._prepare_special(case, path, name)
            else:
                (path / "config.json").write_bytes(case.render(name))
                where = path
            snap = self.snapshot()
            context = f"{case!r}\nbundle {path}, id {cid}"
            if case.mode == "run":
                r = self.call(["run", "--bundle", str(where), cid])
                self._count("run", r)
                self.expect(r, context, container_status_ok=True, names_field=True)
            else:
                r = self.call(["create", "--bundle", str(where), cid])
                self._count("create", r)
                self.expect(r, context, names_field=True)
                if r.rc == 0:
                    self.expect(self.call(["start", cid]), context)
                    self.expect(self.call(["state", cid]), context, must_succeed=True)
                    self.expect(self.call(["delete", "--force", cid]), context, must_succeed=True)
            d = self.call(["delete", "--force", cid])
            self.expect(d, context, must_succeed=True)
            left = self.leaks(snap, (self.state_root, path))
            if left:
                self.clean_up_after_leak(snap)
                self.fail("leak", "\n".join(left), context)
        finally:
            self.remove_bundle(path)

    def _count(self, what, r):
        k = f"{what} {'ok' if r.rc == 0 else 'refused'}"
        self.stats[k] = self.stats.get(k, 0) + 1

    # ---- one command line
    def valid_bundle(self) -> Path:
        if self._valid is None:
            self._valid, _ = self.new_bundle()
        return self._valid

    def check_cli(self, argv: list[str]) -> None:
        self.stats["cli examples"] = self.stats.get("cli examples", 0) + 1
        cwd = Path(tempfile.mkdtemp(prefix=f"{MARK}-cwd-", dir=self.bundles))
        try:
            (cwd / "dir").mkdir()
            (cwd / "file.txt").write_text("not json\n")
            (cwd / "bad.json").write_text('{"args": 5}')
            (cwd / "res.json").write_text('{"pids": {"limit": 100}}')
            args = [a.replace("@VALID@", str(self.valid_bundle())) for a in argv]
            snap = self.snapshot()
            context = f"argv {_show_args(args)!s}\nrepr {args!r}"
            r = self.call(args, cwd=cwd)
            self._count("cli", r)
            self.expect(r, context, debug="--debug" in args or any(a.startswith("--debug=") for a in args))
            for a in args:  # whatever it may have created
                if a.startswith(MARK):
                    self.expect(self.call(["delete", "--force", a], cwd=cwd), context + "\n(the clean-up delete)")
            left = self.leaks(snap, (self.state_root, cwd))
            if left:
                self.clean_up_after_leak(snap)
                self.fail("leak", "\n".join(left), context)
        finally:
            shutil.rmtree(cwd, ignore_errors=True)

    def close(self) -> None:
        if self._valid is not None:
            self.remove_bundle(self._valid)
            self._valid = None



# What splits a line or rewrites a terminal: C0 controls but the tab, DEL, C1 controls, U+2028/9.
_LINE_BREAKING = set(map(chr, [*range(0, 9), *range(10, 32), *range(0x7f, 0xa0), 0x2028, 0x2029]))

FIELDS = ("config.json", "process", "root", "mounts", "linux", "hooks", "hostname", "domainname",
          "annotations", "ociVersion", "bundle", "rootfs")


def _names_field_or_file(line: str) -> bool:
    return any(f in line for f in FIELDS)


def _signature(detail: str) -> str:
    """A failure's kind, without ids, paths and numbers: to tell distinct bugs apart."""
    m = re.search(r"stderr: (.*)", detail)
    text = m.group(1) if m else detail.splitlines()[0]
    text = re.sub(r"ocitest-[0-9a-f]{6}[^:]*", "ID", text)
    text = re.sub(r"/[^\s:'\"]*", "PATH", text)
    text = re.sub(r"\d+", "N", text)
    return text[:160]


# ============================================================================ the lanes

def _settings(examples: int, **over):
    kw = dict(max_examples=examples, deadline=None, database=None, print_blob=True,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                     HealthCheck.large_base_example])
    kw.update(over)
    return settings(**kw)


def config_lane(lane: Lane, examples: int, seed_value: int, **over) -> None:
    @seed(seed_value)
    @_settings(examples, **over)
    @given(case=config_cases)
    def check(case):
        note(repr(case))
        lane.check_config(case)

    check()


def cli_lane(lane: Lane, examples: int, seed_value: int, **over) -> None:
    @seed(seed_value)
    @_settings(examples, **over)
    @given(argv=argvs())
    def check(argv):
        lane.check_cli(argv)

    check()


def inprocess_lane(examples: int, seed_value: int, **over) -> None:
    """What exec can't carry (a NUL byte): the parser and the id check, in this process."""
    from ocirun.errors import OciError
    from ocirun.state import check_id

    @seed(seed_value)
    @_settings(examples, **over)
    @given(argv=argvs(), nul=st.sampled_from(["\x00", "a\x00", f"{MARK}\x00x", "\x00/..", "--bundle=\x00"]),
           at=st.integers(0, 10))
    def check(argv, nul, at):
        argv = list(argv)
        argv.insert(min(at, len(argv)), nul)
        try:
            g, rest = _cli.parse_flags(argv, _cli.GLOBAL_FLAGS, stop_at_positional=True)
            if rest and rest[0] in _cli.COMMANDS:
                table = _cli.COMMANDS[rest[0]][0]
                _cli.parse_flags(rest[1:], table, stop_at_positional=rest[0] in ("exec", "ps"))
        except OciError:
            pass  # a usage error: what it says is the subprocess lane's to check
        for a in argv:
            if "\x00" in a or "/" in a:
                with pytest.raises(OciError):
                    check_id(a)

    check()


def _skip_unless_ocirun(runtime_bin):
    if "ocirun" not in Path(runtime_bin).name:
        pytest.skip("the fuzz lanes hold ocirun to its own error format")


@pytest.fixture
def lane(rt, _ctx, runtime_bin):
    _skip_unless_ocirun(runtime_bin)
    lane = Lane(runtime_bin, _ctx.state_root, _ctx.bundles)
    yield lane
    lane.close()


def _run_lane(name: str, run, lane: Lane, examples: int) -> None:
    t0 = time.monotonic()
    print(f"fuzz {name} lane: seed {SEED}, {examples} examples")
    try:
        run(lane, examples, SEED)
    finally:
        print(f"fuzz {name} lane: seed {SEED}: {lane.stats} in {time.monotonic() - t0:.1f}s")


def test_fuzz_config(lane):
    _run_lane("config", config_lane, lane, CONFIG_EXAMPLES)


def test_fuzz_cli(lane):
    _run_lane("cli", cli_lane, lane, CLI_EXAMPLES)


def test_fuzz_cli_nul_in_process():
    print(f"fuzz in-process lane: seed {SEED}, {INPROCESS_EXAMPLES} examples")
    inprocess_lane(INPROCESS_EXAMPLES, SEED)
