"""config.json, read once, checked once, and turned into the model the rest of ocirun uses.

Past `load()` nothing reads raw JSON: the schema (ocirun.schema, generated from spec/) rules
out wrong types and shapes, then the checks here rule out what a schema can't express.
"""

import posix

from . import kernel
from .errors import ConfigError, OciError, shown
from .jsonio import load_file
from .posixio import abspath, exists, isdir, join, realpath


class Record:
    """A small immutable record: fields given by __slots__, set once in __init__."""

    __slots__ = ()

    def __init__(self, **values):
        for name in self.__slots__:
            object.__setattr__(self, name, values.get(name))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self):
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class User(Record):
    __slots__ = ("uid", "gid", "umask", "additional_gids")


class Rlimit(Record):
    __slots__ = ("name", "resource", "soft", "hard")


class Process(Record):
    __slots__ = ("terminal", "console_size", "args", "env", "cwd", "user", "rlimits",
                 "no_new_privileges", "capabilities", "oom_score_adj")


class Mount(Record):
    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")


class Namespace(Record):
    __slots__ = ("type", "path")


class IdMapping(Record):
    __slots__ = ("container_id", "host_id", "size")


class Device(Record):
    __slots__ = ("type", "path", "major", "minor", "file_mode", "uid", "gid")


class Hook(Record):
    __slots__ = ("path", "args", "env", "timeout")


class Config(Record):
    __slots__ = ("oci_version", "bundle", "rootfs", "readonly_root", "process", "hostname",
                 "domainname", "mounts", "hooks", "annotations", "namespaces", "uid_mappings",
                 "gid_mappings", "devices", "cgroups_path", "resources", "rootfs_propagation",
                 "masked_paths", "readonly_paths", "time_offsets", "sysctl", "seccomp", "process_doc",
                 "attrs", "attrs_state", "mount_label", "net_devices")

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
NO_ID = 2**32 - 1  # (uid_t) -1: setresuid and chown leave the id as it is
MAX_HOOK_TIMEOUT = 2**31 - 1  # seconds; the init waits on a startContainer hook with a C int
HOOK_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def load(bundle: str) -> Config:
    """Read, check and convert BUNDLE/config.json."""
    bundle = abspath(bundle)
    if not isdir(bundle):
        raise OciError("bundle directory does not exist", shown(bundle))
    path = join(bundle, "config.json")
    if not exists(path):
        raise OciError("config.json not found in the bundle", shown(path))
    doc = load_file(path, regular_only=True)
    from .schema import check_config

    check_config(doc)
    return convert(doc, bundle)


def convert(doc: dict, bundle: str) -> Config:
    linux = doc.get("linux") or {}
    root = doc.get("root") or {}
    if not root.get("path"):
        raise ConfigError("is required", "root.path")
    rootfs = join(bundle, root["path"])
    if not isdir(rootfs):
        raise ConfigError(f"rootfs {shown(rootfs)} does not exist or is not a directory", "root.path")

    process = convert_process(doc.get("process"))
    namespaces = _namespaces(linux.get("namespaces") or [])
    uid_maps = [_mapping(m) for m in linux.get("uidMappings") or []]
    gid_maps = [_mapping(m) for m in linux.get("gidMappings") or []]
    user_ns = next((ns for ns in namespaces if ns.type == "user"), None)
    if user_ns and not user_ns.path and not uid_maps and not gid_maps:
        # as crun: the runtime's own ids, one each, become the container's root
        uid_maps = [_mapping({"containerID": 0, "hostID": posix.geteuid(), "size": 1})]
        gid_maps = [_mapping({"containerID": 0, "hostID": posix.getegid(), "size": 1})]
    if user_ns and not user_ns.path and not (uid_maps and gid_maps):
        raise ConfigError("a new user namespace needs both uidMappings and gidMappings", "linux.uidMappings")
    if (uid_maps or gid_maps) and not (user_ns and not user_ns.path):
        raise ConfigError("mappings are given but no new user namespace is asked for", "linux.uidMappings")

    types = {ns.type for ns in namespaces if not ns.path}
    # a joined uts namespace is the container's own too (runc sets the name there as well)
    if doc.get("hostname") and not any(ns.type == "uts" for ns in namespaces):
        raise ConfigError("setting the hostname needs a uts namespace", "hostname")
    if doc.get("domainname") and not any(ns.type == "uts" for ns in namespaces):
        raise ConfigError("setting the domainname needs a uts namespace", "domainname")
    for field in ("hostname", "domainname"):  # which would win is no one's guess (crun refuses too)
        other = (linux.get("sysctl") or {}).get(f"kernel.{field}")
        if doc.get(field) and other is not None and other != doc[field]:
            raise ConfigError(f"{other!r} is not the {field} {doc[field]!r}: give one, or the same",
                              f"linux.sysctl.kernel.{field}")
    if linux.get("timeOffsets") and "time" not in types:
        raise ConfigError("time offsets need a new time namespace", "linux.timeOffsets")

    hooks_doc = doc.get("hooks") or {}
    return Config(
        oci_version=doc["ociVersion"],
        bundle=bundle,
        rootfs=realpath(rootfs),
        readonly_root=bool(root.get("readonly")),
        process=process,
        hostname=doc.get("hostname"),
        domainname=doc.get("domainname"),
        mounts=[_mount(m, i, bundle) for i, m in enumerate(doc.get("mounts") or [])],
        hooks={phase: [_hook(h, f"hooks.{phase}[{i}]") for i, h in enumerate(hooks_doc.get(phase) or [])]
               for phase in HOOK_PHASES},
        annotations=doc.get("annotations") or {},
        namespaces=namespaces,
        uid_mappings=uid_maps,
        gid_mappings=gid_maps,
        devices=[_device(d, i) for i, d in enumerate(linux.get("devices") or [])],
        cgroups_path=linux.get("cgroupsPath") or "",
        resources=linux.get("resources") or {},
        rootfs_propagation=linux.get("rootfsPropagation") or "",
        masked_paths=linux.get("maskedPaths") or [],
        readonly_paths=linux.get("readonlyPaths") or [],
        time_offsets=linux.get("timeOffsets") or {},
        sysctl=linux.get("sysctl") or {},
        seccomp=linux.get("seccomp"),
        net_devices=_net_devices(linux.get("netDevices"), namespaces),
        process_doc=doc["process"],
        **_attrs(doc),
    )


def _net_devices(doc, namespaces) -> dict[str, str]:
    if not doc:
        return {}
    from . import netdevices

    return netdevices.convert(doc, any(ns.type == "network" for ns in namespaces))


def _attrs(doc: dict) -> dict:
    """sysctl, personality, scheduler, LSM labels and the like (ocirun/attrs.py)."""
    from . import attrs

    if not attrs.wanted(doc):
        return {"attrs": None, "attrs_state": None, "mount_label": ""}
    attrs.check_lsm(doc)
    attrs.check_intel_rdt(doc)
    label = attrs.selinux_label((doc.get("linux") or {}).get("mountLabel")) or ""
    return {"attrs": attrs.convert(doc), "attrs_state": attrs.for_state(doc), "mount_label": label}


def convert_process(p: dict | None, where: str = "process") -> Process:
    """A config.json `process` object (also `exec --process FILE`) as a Process."""
    if p is None:
        raise ConfigError("is required to create a container", where)
    if not p.get("args"):
        raise ConfigError("must name the program to run", f"{where}.args")
    if not p["args"][0]:
        raise ConfigError("must not be empty: it is the program to run", f"{where}.args[0]")
    cwd = p.get("cwd") or "/"
    if not cwd.startswith("/"):
        raise ConfigError(f"{cwd!r} is not an absolute path", f"{where}.cwd")
    u = p.get("user") or {}
    for field in ("uid", "gid"):
        if u.get(field) == NO_ID:
            raise ConfigError(f"{NO_ID} is (uid_t) -1, which the kernel takes as 'leave unchanged'",
                              f"{where}.user.{field}")
    for i, g in enumerate(u.get("additionalGids") or []):
        if g == NO_ID:
            raise ConfigError(f"{NO_ID} is (gid_t) -1, not a group", f"{where}.user.additionalGids[{i}]")
    umask = u.get("umask")
    if umask is not None and umask > 0o7777:
        raise ConfigError(f"{umask} is not a file mode creation mask (at most 0o7777, 4095)", f"{where}.user.umask")
    size = p.get("consoleSize")
    if size:
        for field in ("height", "width"):
            if size[field] > 65535:
                raise ConfigError("must be at most 65535 (a terminal size is 16 bits)",
                                  f"{where}.consoleSize.{field}")
    rlimits = []
    for i, r in enumerate(p.get("rlimits") or []):
        if r["type"] not in kernel.RLIMITS:
            raise ConfigError(f"unknown rlimit {r['type']!r}", f"{where}.rlimits[{i}].type")
        if r["soft"] > r["hard"]:
            raise ConfigError("soft limit is above the hard limit", f"{where}.rlimits[{i}]")
        rlimits.append(Rlimit(name=r["type"], resource=kernel.RLIMITS[r["type"]], soft=r["soft"], hard=r["hard"]))
    caps = p.get("capabilities")
    if caps is not None:
        for kind in CAPABILITY_SETS:  # other members are not the spec's: not read, whatever they hold
            for j, name in enumerate(caps.get(kind) or []):
                if name not in kernel.CAPABILITIES:  # the spec and runc: a warning, not an error
                    from . import log

                    log.warning(f"{where}.capabilities.{kind}[{j}]: unknown capability {name!r} ignored")
    return Process(
        terminal=bool(p.get("terminal")),
        console_size=(size["height"], size["width"]) if size else None,
        args=list(p["args"]),
        env=list(p.get("env") or []),
        cwd=cwd,
        user=User(uid=u.get("uid", 0), gid=u.get("gid", 0), umask=u.get("umask"),
                  additional_gids=list(u.get("additionalGids") or [])),
        rlimits=rlimits,
        no_new_privileges=bool(p.get("noNewPrivileges")),
        capabilities=caps,
        oom_score_adj=p.get("oomScoreAdj"),
    )


def _namespaces(items: list) -> list[Namespace]:
    seen = set()
    out = []
    for i, ns in enumerate(items):
        t = ns["type"]
        if t not in kernel.NAMESPACES:
            raise ConfigError(f"unknown namespace type {t!r}", f"linux.namespaces[{i}].type")
        if t in seen:
            raise ConfigError(f"namespace {t!r} is listed twice", f"linux.namespaces[{i}].type")
        seen.add(t)
        path = ns.get("path") or None
        if path and not exists(path):
            raise ConfigError(f"namespace path {shown(path)} does not exist", f"linux.namespaces[{i}].path")
        out.append(Namespace(type=t, path=path))
    return out


def _mapping(m: dict) -> IdMapping:
    return IdMapping(container_id=m["containerID"], host_id=m["hostID"], size=m["size"])


def _mount(m: dict, i: int, bundle: str) -> Mount:
    dest = m["destination"]
    if not dest.startswith("/"):
        raise ConfigError(f"{dest!r} is not an absolute path", f"mounts[{i}].destination")
    options = list(m.get("options") or [])
    mtype = m.get("type") or ""
    if not mtype.isprintable() or "/" in mtype:
        raise ConfigError(f"{mtype!r} is not a file system type", f"mounts[{i}].type")
    source = m.get("source")
    if mtype == "bind" or "bind" in options or "rbind" in options:
        if not source:
            raise ConfigError("a bind mount needs a source", f"mounts[{i}].source")
        source = join(bundle, source)
        if not exists(source):
            raise ConfigError(f"bind source {shown(source)} does not exist", f"mounts[{i}].source")
        mtype = "bind"
    uid_maps = [_mapping(x) for x in m.get("uidMappings") or []]
    gid_maps = [_mapping(x) for x in m.get("gidMappings") or []]
    if bool(uid_maps) != bool(gid_maps):
        raise ConfigError("an idmapped mount needs both uidMappings and gidMappings",
                          f"mounts[{i}].{'gidMappings' if uid_maps else 'uidMappings'}")
    return Mount(destination=dest, type=mtype, source=source, options=options, uid_mappings=uid_maps,
                 gid_mappings=gid_maps)


def _device(d: dict, i: int) -> Device:
    if not d["path"].startswith("/"):
        raise ConfigError(f"{d['path']!r} is not an absolute path", f"linux.devices[{i}].path")
    if d["type"] != "p" and ("major" not in d or "minor" not in d):
        raise ConfigError("a character or block device needs major and minor", f"linux.devices[{i}]")
    # the kernel's dev_t: 12 bits of major, 20 of minor; a larger number would name another device
    for field, top in (("major", 4095), ("minor", 1048575)):
        if not 0 <= d.get(field, 0) <= top:
            raise ConfigError(f"{d[field]} is not a device number: must be between 0 and {top}",
                              f"linux.devices[{i}].{field}")
    for field in ("uid", "gid"):
        if d.get(field, 0) > 2**31 - 1:
            raise ConfigError(f"{d[field]} is above 2147483647: not supported for a device's owner",
                              f"linux.devices[{i}].{field}")
    from .posixio import normpath

    # "/mnt/" is /mnt, as runc cleans it
    return Device(type=d["type"], path=normpath(d["path"]), major=d.get("major", 0), minor=d.get("minor", 0),
                  file_mode=d.get("fileMode", 0o666), uid=d.get("uid", -1), gid=d.get("gid", -1))


def _hook(h: dict, where: str) -> Hook:
    if h.get("timeout") is not None and h["timeout"] > MAX_HOOK_TIMEOUT:
        raise ConfigError(f"must be at most {MAX_HOOK_TIMEOUT} seconds", f"{where}.timeout")
    # no env: the runtime's own (None), as runc and crun; an empty list is an empty one
    env = h.get("env")
    return Hook(path=h["path"], args=list(h.get("args") or []), env=None if env is None else list(env),
                timeout=h.get("timeout"))
