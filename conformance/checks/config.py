"""config.md: root, mounts (order, bind/rbind, every mount option of the Linux table,
propagation), process (args, env, cwd, user, umask, rlimits, capabilities, noNewPrivileges,
oomScoreAdj, consoleSize), hostname, domainname, hooks, annotations, extensibility and valid
values."""
from __future__ import annotations

import json
import os
import time

from ._harness import (CAPS, Fail, Skip, bind, cap_mask, check, hook, last_mount, mountinfo_entries,
                       ns_link, read, status_fields, tmpfs)


def _view(ctx, cfg, after: str = ""):
    """Run the container; -> (its mountinfo entries, the output of `after`)."""
    out = ctx.must_inside("cat /proc/self/mountinfo; echo @@@; " + (after or "true") + "; true", cfg)
    mi, _, rest = out.partition("@@@")
    return mountinfo_entries(mi), rest.strip()


def _mount_at(ctx, entries, mnt):
    e = last_mount(entries, mnt)
    if e is None:
        raise Fail(f"nothing is mounted at {mnt} in the container")
    return e


# --- Root --------------------------------------------------------------------------------------

@check("config.md#root-path-absolute", "MUST", "an absolute root.path is used as the root filesystem")
def root_path_absolute(ctx):
    cfg = ctx.config()
    b = ctx.bundle(cfg)
    (b / "rootfs" / "marker-abs").write_text("abs\n")
    cfg["root"]["path"] = str(b / "rootfs")
    cfg["process"]["args"] = ["cat", "/marker-abs"]
    ctx.write_config(b, cfg)
    res = ctx.run(b)
    ctx.expect(res.ok and res.out.strip() == "abs", f"container did not see its absolute root: {res.brief()}")


@check("config.md#root-path-missing", "MUST", "a root.path that is not a directory is an error")
def root_path_missing(ctx):
    cfg = ctx.config()
    b = ctx.bundle(cfg)
    cfg["root"]["path"] = "no-such-rootfs"
    ctx.write_config(b, cfg)
    cid, res = ctx.create(b)
    ctx.expect(not res.ok, "create succeeded with a missing root directory")
    ctx.expect(ctx.state(cid) is None, "a container exists after the failed create")


@check("config.md#root-readonly", "MUST", "root.readonly true: the root filesystem is read-only inside")
def root_readonly(ctx):
    cfg = ctx.config(readonly=True)
    entries, rest = _view(ctx, cfg, "touch /newfile 2>&1 && echo WROTE")
    root = _mount_at(ctx, entries, "/")
    ctx.expect("ro" in root["opts"], f"/ is mounted {root['opts']}")
    ctx.expect("WROTE" not in rest, "a file could be created in /")


@check("config.md#root-readwrite", "MUST", "root.readonly false: the root filesystem is writable inside")
def root_readwrite(ctx):
    out = ctx.must_inside("touch /newfile && echo WROTE", ctx.config(readonly=False))
    ctx.expect("WROTE" in out, f"cannot write / with readonly false: {out!r}")


# --- Mounts: order, destinations, bind ---------------------------------------------------------

@check("config.md#mounts-order", "MUST", "mounts are made in the listed order (the later of two mounts on one path is on top)")
def mounts_order(ctx):
    first, second = ctx.hostdir("first"), ctx.hostdir("second")
    (first / "first").write_text("1")
    (second / "second").write_text("2")
    cfg = ctx.config()
    cfg["mounts"] += [bind(first, "/m"), bind(second, "/m")]
    entries, rest = _view(ctx, cfg, "ls /m")
    at = [e for e in entries if e["mnt"] == "/m"]
    ctx.expect(len(at) == 2, f"{len(at)} mounts at /m, expected 2")
    ctx.expect(rest == "second", f"/m shows {rest!r}: the first mount listed is on top")


@check("config.md#mounts-order-nested", "MUST", "a mount listed after its parent is made inside it")
def mounts_order_nested(ctx):
    cfg = ctx.config()
    cfg["mounts"] += [tmpfs("/m"), tmpfs("/m/inner", "size=1m")]
    entries, _ = _view(ctx, cfg)
    outer, inner = _mount_at(ctx, entries, "/m"), _mount_at(ctx, entries, "/m/inner")
    ctx.expect(inner["parent"] == outer["id"], "/m/inner is not mounted on top of the /m mount")


@check("config.md#mounts-relative-destination", "MUST", "a relative destination is taken relative to /")
def mounts_relative_destination(ctx):
    cfg = ctx.config()
    cfg["mounts"].append(tmpfs("reldest", "size=1m"))
    entries, _ = _view(ctx, cfg)
    ctx.expect(last_mount(entries, "/reldest") is not None,
               f"no mount at /reldest: {[e['mnt'] for e in entries]}")


@check("config.md#mounts-bind", "MUST", "a bind mount shows the host directory (both ways)")
def mounts_bind(ctx):
    src = ctx.hostdir("src")
    (src / "from-host").write_text("host\n")
    cfg = ctx.config()
    cfg["mounts"].append(bind(src, "/m"))
    out = ctx.must_inside("cat /m/from-host; echo ctr > /m/from-ctr", cfg)
    ctx.expect(out.strip() == "host", f"read {out!r} from the bind mount")
    ctx.expect(read(src / "from-ctr", "").strip() == "ctr", "a write in the container did not reach the host dir")


@check("config.md#mounts-bind-file", "MUST", "a bind mount of a single file")
def mounts_bind_file(ctx):
    src = ctx.hostdir("src") / "f.conf"
    src.write_text("file-content\n")
    cfg = ctx.config()
    cfg["mounts"].append(bind(src, "/etc/f.conf"))
    out = ctx.must_inside("cat /etc/f.conf", cfg)
    ctx.expect(out.strip() == "file-content", f"read {out!r}")


@check("config.md#mounts-bind-relative-source", "MUST", "a relative bind source is taken relative to the bundle")
def mounts_bind_relative_source(ctx):
    cfg = ctx.config(["cat", "/m/inbundle"])
    cfg["mounts"].append(bind("relsrc", "/m"))
    b = ctx.bundle(cfg)
    (b / "relsrc").mkdir()
    (b / "relsrc" / "inbundle").write_text("bundle-relative\n")
    res = ctx.run(b)
    ctx.expect(res.ok and res.out.strip() == "bundle-relative", f"container: {res.brief()}")


def _host_submount(ctx, opts: str = "") -> "os.PathLike":
    src = ctx.hostdir("src")
    sub = src / "sub"
    sub.mkdir()
    ctx.mount("-t", "tmpfs", "-o", "size=1m" + ("," + opts if opts else ""), "tmpfs", sub)
    if "ro" not in opts.split(","):
        (sub / "in-submount").write_text("sub\n")
    return src


@check("config.md#mounts-option-rbind", "MUST", "rbind brings the source's submounts along")
def mounts_rbind(ctx):
    src = _host_submount(ctx)
    cfg = ctx.config()
    cfg["mounts"].append(bind(src, "/m", "rbind"))
    out = ctx.must_inside("cat /m/sub/in-submount 2>&1", cfg)
    ctx.expect(out.strip() == "sub", f"the submount is not there: {out!r}")


@check("config.md#mounts-option-bind", "MUST", "bind (not rbind) does not bring submounts along")
def mounts_bind_nonrecursive(ctx):
    src = _host_submount(ctx)
    cfg = ctx.config()
    cfg["mounts"].append(bind(src, "/m", "bind"))
    out = ctx.must_inside("ls -A /m/sub", cfg)
    ctx.expect(out.strip() == "", f"the submount came along with a plain bind: {out!r}")


@check("config.md#mounts-option-ro-bind", "MUST", "ro on a bind mount makes it read-only")
def mounts_ro_bind(ctx):
    src = ctx.hostdir("src")
    cfg = ctx.config()
    cfg["mounts"].append(bind(src, "/m", "bind", "ro"))
    entries, rest = _view(ctx, cfg, "touch /m/x 2>/dev/null && echo WROTE")
    ctx.expect("ro" in _mount_at(ctx, entries, "/m")["opts"], "the bind mount is not ro")
    ctx.expect("WROTE" not in rest and not (src / "x").exists(), "wrote through a ro bind mount")


@check("config.md#mounts-option-remount", "MUST", "remount changes the flags of the mount already at the destination")
def mounts_remount(ctx):
    cfg = ctx.config()
    cfg["mounts"] += [tmpfs("/m", "size=1m"), {"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                                                "options": ["remount", "ro"]}]
    entries, rest = _view(ctx, cfg, "touch /m/x 2>/dev/null && echo WROTE")
    at = [e for e in entries if e["mnt"] == "/m"]
    ctx.expect(len(at) == 1, f"{len(at)} mounts at /m: remount mounted anew")
    ctx.expect("ro" in at[0]["opts"] and "WROTE" not in rest, f"/m is not read-only after remount: {at[0]['opts']}")


# --- Mounts: the option table ---------------------------------------------------------------------
# (option, options given to a tmpfs at /m, what to look for, level); where = opts (per-mount
# flags of mountinfo) or super (per-superblock options); present True/False.

FLAG_OPTIONS = [
    ("ro", ["ro"], "opts", "ro", True, "MUST"),
    ("rw", ["ro", "rw"], "opts", "rw", True, "MUST"),
    ("nosuid", ["nosuid"], "opts", "nosuid", True, "MUST"),
    ("suid", ["nosuid", "suid"], "opts", "nosuid", False, "MUST"),
    ("nodev", ["nodev"], "opts", "nodev", True, "MUST"),
    ("dev", ["nodev", "dev"], "opts", "nodev", False, "MUST"),
    ("noexec", ["noexec"], "opts", "noexec", True, "MUST"),
    ("exec", ["noexec", "exec"], "opts", "noexec", False, "MUST"),
    ("noatime", ["noatime"], "opts", "noatime", True, "MUST"),
    ("atime", ["noatime", "atime"], "opts", "noatime", False, "MUST"),
    ("nodiratime", ["nodiratime"], "opts", "nodiratime", True, "MUST"),
    ("diratime", ["nodiratime", "diratime"], "opts", "nodiratime", False, "MUST"),
    ("relatime", ["relatime"], "opts", "relatime", True, "MUST"),
    ("norelatime", ["relatime", "norelatime"], None, None, None, "MUST"),
    ("strictatime", ["strictatime"], "opts", "relatime", False, "MUST"),
    ("nostrictatime", ["strictatime", "nostrictatime"], "opts", "relatime", True, "MUST"),
    ("sync", ["sync"], "super", "sync", True, "MUST"),
    ("async", ["sync", "async"], "super", "sync", False, "MUST"),
    ("dirsync", ["dirsync"], "super", "dirsync", True, "MUST"),
    ("lazytime", ["lazytime"], "super", "lazytime", True, "MUST"),
    ("nolazytime", ["lazytime", "nolazytime"], "super", "lazytime", False, "MUST"),
    ("iversion", ["iversion"], None, None, None, "MUST"),
    ("noiversion", ["noiversion"], None, None, None, "MUST"),
    ("loud", ["loud"], None, None, None, "MUST"),
    ("silent", ["silent"], None, None, None, "MUST"),
    ("defaults", ["defaults"], "opts", "rw", True, "MUST"),
    ("nosymfollow", ["nosymfollow"], "opts", "nosymfollow", True, "SHOULD"),
    ("symfollow", ["nosymfollow", "symfollow"], "opts", "nosymfollow", False, "SHOULD"),
]


def _flag_check(option, given, where, flag, present):
    def fn(ctx):
        cfg = ctx.config()
        cfg["mounts"].append(tmpfs("/m", "size=1m", *given))
        entries, _ = _view(ctx, cfg)
        e = _mount_at(ctx, entries, "/m")
        if where is None:
            return f"accepted; mounted {','.join(e['opts'])} {','.join(e['super'])}"
        have = flag in e[where]
        ctx.expect(have == present, f"options {given}: /m has {where} {e[where]}, "
                                    f"expected {flag} {'present' if present else 'absent'}")
    return fn


for _opt, _given, _where, _flag, _present, _level in FLAG_OPTIONS:
    _text = (f"option {_opt} ({' then '.join(_given)} on a tmpfs) is accepted" if _where is None else
             f"option {_opt}: a tmpfs given {_given} has {_flag} {'set' if _present else 'cleared'}")
    check(f"config.md#mounts-option-{_opt}", _level, _text)(_flag_check(_opt, _given, _where, _flag, _present))


# Recursive (AT_RECURSIVE) options: an rbind of a host dir whose submount has the opposite flag.
RECURSIVE_OPTIONS = [
    ("rro", "", "opts", "ro", True),
    ("rrw", "ro", "opts", "ro", False),
    ("rnosuid", "", "opts", "nosuid", True),
    ("rsuid", "nosuid", "opts", "nosuid", False),
    ("rnodev", "", "opts", "nodev", True),
    ("rdev", "nodev", "opts", "nodev", False),
    ("rnoexec", "", "opts", "noexec", True),
    ("rexec", "noexec", "opts", "noexec", False),
    ("rnoatime", "", "opts", "noatime", True),
    ("ratime", "noatime", "opts", "noatime", False),
    ("rnodiratime", "", "opts", "nodiratime", True),
    ("rdiratime", "nodiratime", "opts", "nodiratime", False),
    ("rrelatime", "noatime", "opts", "relatime", True),
    ("rnorelatime", "", None, None, None),
    ("rstrictatime", "", "opts", "relatime", False),
    ("rnostrictatime", "strictatime", "opts", "relatime", True),
    ("rnosymfollow", "", "opts", "nosymfollow", True),
    ("rsymfollow", "nosymfollow", "opts", "nosymfollow", False),
]


def _recursive_check(option, host_opts, where, flag, present):
    def fn(ctx):
        src = _host_submount(ctx, host_opts)
        cfg = ctx.config()
        cfg["mounts"].append(bind(src, "/m", "rbind", option))
        entries, _ = _view(ctx, cfg)
        top, sub = _mount_at(ctx, entries, "/m"), _mount_at(ctx, entries, "/m/sub")
        if where is None:
            return f"accepted; submount {','.join(sub['opts'])}"
        for name, e in (("/m", top), ("/m/sub", sub)):
            have = flag in e[where]
            ctx.expect(have == present, f"rbind + {option}: {name} has {e[where]}, expected {flag} "
                                        f"{'present' if present else 'absent'}")
    return fn


for _opt, _host, _where, _flag, _present in RECURSIVE_OPTIONS:
    _text = (f"recursive option {_opt} on an rbind is accepted" if _where is None else
             f"recursive option {_opt}: the rbind and its submount{' (' + _host + ' on the host)' if _host else ''} "
             f"have {_flag} {'set' if _present else 'cleared'}")
    check(f"config.md#mounts-option-{_opt}", "SHOULD", _text)(_recursive_check(_opt, _host, _where, _flag, _present))


PROPAGATION = [
    ("shared", False), ("rshared", True), ("slave", False), ("rslave", True),
    ("private", False), ("rprivate", True), ("unbindable", False), ("runbindable", True),
]


def _propagation_ok(kind: str, optional: list[str]) -> bool:
    has = lambda p: any(o.startswith(p) for o in optional)  # noqa: E731
    if kind == "shared":
        return has("shared:")
    if kind == "slave":  # a slave of its source's peer group, or private where the source had none
        return not has("shared:")
    if kind == "private":
        return not has("shared:") and not has("master:") and "unbindable" not in optional
    return "unbindable" in optional


def _propagation_check(option, recursive):
    def fn(ctx):
        src = _host_submount(ctx) if recursive else ctx.hostdir("src")
        # Make the source a shared mount on the host so that slave/private differ visibly.
        ctx.mount("--rbind", src, src)
        if not ctx.sh_ok("mount", "--make-rshared", src):
            raise Skip("cannot make a shared mount on this host")
        cfg = ctx.config()
        cfg["mounts"].append(bind(src, "/m", "rbind" if recursive else "bind", option))
        entries, _ = _view(ctx, cfg)
        kind = option.lstrip("r") if option.startswith("r") and option[1:] in ("shared", "slave", "private", "unbindable") else option
        targets = ["/m", "/m/sub"] if recursive else ["/m"]
        for t in targets:
            e = _mount_at(ctx, entries, t)
            ctx.expect(_propagation_ok(kind, e["optional"]),
                       f"{option}: {t} has propagation fields {e['optional'] or ['(none: private)']}")
    return fn


for _opt, _rec in PROPAGATION:
    check(f"config.md#mounts-option-{_opt}", "MUST",
          f"option {_opt}: the bind mount{' and its submounts' if _rec else ''} get {_opt.lstrip('r') if _rec else _opt} propagation")(
        _propagation_check(_opt, _rec))


@check("config.md#mounts-fs-options", "SHOULD", "unknown options are passed to the filesystem as data (tmpfs size, mode, uid)")
def mounts_fs_options(ctx):
    cfg = ctx.config()
    cfg["mounts"].append(tmpfs("/m", "nosuid", "size=2m", "mode=711", "uid=1000"))
    entries, rest = _view(ctx, cfg, "stat -c '%a %u' /m")
    e = _mount_at(ctx, entries, "/m")
    ctx.expect("size=2048k" in e["super"] and "mode=711" in e["super"] and "uid=1000" in e["super"],
               f"tmpfs data not applied: {e['super']}")
    ctx.expect(rest == "711 1000", f"/m is {rest!r}, expected '711 1000'")
    ctx.expect("nosuid" in e["opts"], "the flag option given with them was lost")


@check("config.md#mounts-idmap", "SHOULD", "idmap with uidMappings/gidMappings shows the source's ids mapped")
def mounts_idmap(ctx):
    src = ctx.hostdir("src")
    f = src / "owned"
    f.write_text("x\n")
    os.chown(f, 1000, 1000)
    cfg = ctx.config()
    m = bind(src, "/m", "bind", "idmap")
    m["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    m["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg["mounts"].append(m)
    out = ctx.must_inside("stat -c '%u:%g' /m/owned", cfg)
    ctx.expect(out.strip() == "0:0", f"a file owned by 1000:1000 shows as {out.strip()}, expected 0:0 through the idmap")


@check("config.md#mounts-idmap-no-mapping", "MUST", "idmap without mappings and without a user namespace is an error")
def mounts_idmap_no_mapping(ctx):
    src = ctx.hostdir("src")
    cfg = ctx.config()
    cfg["mounts"].append(bind(src, "/m", "bind", "idmap"))
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create succeeded with an idmap mount and no mapping to use")


# --- Process ------------------------------------------------------------------------------------

@check("config.md#process-args", "MUST", "the program gets process.args exactly (spaces, empty and glob args)")
def process_args(ctx):
    args = ["sh", "-c", 'for a in "$0" "$@"; do echo "[$a]"; done', "zero", "a b", "", "*", "$HOME"]
    res = ctx.run(ctx.config(args))
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    want = "[zero]\n[a b]\n[]\n[*]\n[$HOME]"
    ctx.expect(res.out.strip() == want, f"args seen {res.out.strip()!r}, expected {want!r}")


@check("config.md#process-args-path", "MUST", "args[0] is looked up in the PATH of process.env (execvp)")
def process_args_path(ctx):
    cfg = ctx.config(["env"])
    cfg["process"]["env"] = ["PATH=/usr/bin", "ONLY=this"]
    res = ctx.run(cfg)
    ctx.expect(res.ok and "ONLY=this" in res.out, f"`env` via PATH=/usr/bin: {res.brief()}")


@check("config.md#process-cwd", "MUST", "the program starts in process.cwd")
def process_cwd(ctx):
    cfg = ctx.config(["pwd"])
    cfg["process"]["cwd"] = "/etc"
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == "/etc", f"pwd: {res.brief()}")


@check("config.md#process-cwd-absolute", "MUST", "a relative process.cwd is an invalid value: error")
def process_cwd_relative(ctx):
    cfg = ctx.config(["pwd"])
    cfg["process"]["cwd"] = "etc"
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted a relative cwd")


@check("config.md#process-env", "MUST", "the environment is process.env (the caller's is not passed on)")
def process_env(ctx):
    cfg = ctx.config(["env"])
    cfg["process"]["env"] = ["PATH=/bin:/usr/bin", "A=1", "B=with space", "C=x=y", "EMPTY="]
    # The runtime's own environment carries a canary that must not reach the container.
    os.environ["OCIRUN_CONFORMANCE_CANARY"] = "leaked"
    try:
        res = ctx.run(cfg)
    finally:
        os.environ.pop("OCIRUN_CONFORMANCE_CANARY", None)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    env = res.out.splitlines()
    missing = [e for e in cfg["process"]["env"] if e not in env]
    ctx.expect(not missing, f"missing from the environment: {missing} (got {env})")
    extra = [e for e in env if e not in cfg["process"]["env"] and not e.startswith("HOME=")]
    ctx.expect(not extra, f"variables not in process.env: {extra}")
    if any(e.startswith("HOME=") for e in env):
        return "HOME added (as runc does)"


@check("config.md#process-user", "MUST", "the program runs as process.user uid and gid (real, effective, saved, fs)")
def process_user(ctx):
    cfg = ctx.config(["cat", "/proc/self/status"])
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    res = ctx.run(cfg)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    st = status_fields(res.out)
    ctx.expect(st.get("Uid", "").split() == ["1000"] * 4, f"Uid: {st.get('Uid')}")
    ctx.expect(st.get("Gid", "").split() == ["1000"] * 4, f"Gid: {st.get('Gid')}")


@check("config.md#process-additional-gids", "MUST", "process.user.additionalGids are the supplementary groups")
def process_additional_gids(ctx):
    cfg = ctx.config(["cat", "/proc/self/status"])
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 2000, 65534]}
    res = ctx.run(cfg)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    groups = set(status_fields(res.out).get("Groups", "").split())
    ctx.expect({"5", "2000", "65534"} <= groups, f"Groups: {sorted(groups)}")
    ctx.expect(groups <= {"5", "2000", "65534", "1000"}, f"unexpected groups: {sorted(groups)}")


@check("config.md#process-umask", "MUST", "process.user.umask is the program's umask")
def process_umask(ctx):
    cfg = ctx.config()
    cfg["process"]["user"]["umask"] = 0o027
    out = ctx.must_inside("umask; touch /tmp/f; stat -c %a /tmp/f", cfg).split()
    ctx.expect(out == ["0027", "640"], f"umask / new file mode {out}, expected ['0027', '640']")


def _limits(text: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in text.splitlines()[1:]:
        parts = line[26:].split()
        if len(parts) >= 2:
            out[line[:26].strip()] = (parts[0], parts[1])
    return out


@check("config.md#process-rlimits", "MUST", "every rlimit's soft and hard values are the program's (getrlimit)")
def process_rlimits(ctx):
    cfg = ctx.config(["cat", "/proc/self/limits"])
    cfg["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
        {"type": "RLIMIT_NPROC", "soft": 1111, "hard": 2222},
        {"type": "RLIMIT_MSGQUEUE", "soft": 8192, "hard": 16384},
    ]
    res = ctx.run(cfg)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    lim = _limits(res.out)
    want = {"Max open files": ("123", "456"), "Max core file size": ("0", "4096"),
            "Max processes": ("1111", "2222"), "Max msgqueue size": ("8192", "16384")}
    bad = {k: lim.get(k) for k, v in want.items() if lim.get(k) != v}
    ctx.expect(not bad, f"limits differ: {bad} (expected {want})")


@check("config.md#process-rlimits-invalid-type", "MUST", "an rlimit type the kernel does not know is an error")
def process_rlimits_invalid(ctx):
    cfg = ctx.config()
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NO_SUCH_THING", "soft": 1, "hard": 1}]
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted an unknown rlimit type")


@check("config.md#process-rlimits-duplicate", "MUST", "two rlimits of the same type are an error")
def process_rlimits_duplicate(ctx):
    cfg = ctx.config()
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
                                 {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}]
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted duplicate RLIMIT_NOFILE entries")


def _caps_seen(ctx, cfg) -> dict[str, int]:
    cfg["process"]["args"] = ["cat", "/proc/self/status"]
    res = ctx.run(cfg)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    st = status_fields(res.out)
    last = int(read("/proc/sys/kernel/cap_last_cap", "40"))
    full = (1 << (last + 1)) - 1
    return {k: int(st.get(k, "0"), 16) & full for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def _names(mask: int) -> list[str]:
    return [c for i, c in enumerate(CAPS) if mask >> i & 1]


@check("config.md#process-capabilities-bounding", "MUST", "the bounding set is capabilities.bounding")
def caps_bounding(ctx):
    cfg = ctx.config()
    want = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"]
    cfg["process"]["capabilities"] = {"bounding": want, "effective": want, "permitted": want}
    seen = _caps_seen(ctx, cfg)
    ctx.expect(seen["CapBnd"] == cap_mask(want), f"bounding {_names(seen['CapBnd'])}, expected {want}")


@check("config.md#process-capabilities-effective-permitted", "MUST", "as root, the effective and permitted sets are the configured ones")
def caps_eff_prm(ctx):
    cfg = ctx.config()
    want = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SYS_CHROOT"]
    cfg["process"]["capabilities"] = {"bounding": want, "effective": want, "permitted": want}
    seen = _caps_seen(ctx, cfg)
    ctx.expect(seen["CapPrm"] == cap_mask(want), f"permitted {_names(seen['CapPrm'])}, expected {want}")
    ctx.expect(seen["CapEff"] == cap_mask(want), f"effective {_names(seen['CapEff'])}, expected {want}")


@check("config.md#process-capabilities-inheritable", "MUST", "the inheritable set is capabilities.inheritable")
def caps_inheritable(ctx):
    cfg = ctx.config()
    allc = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    want = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    cfg["process"]["capabilities"] = {"bounding": allc, "effective": allc, "permitted": allc, "inheritable": want}
    seen = _caps_seen(ctx, cfg)
    ctx.expect(seen["CapInh"] == cap_mask(want), f"inheritable {_names(seen['CapInh'])}, expected {want}")


@check("config.md#process-capabilities-ambient", "MUST", "a non-root program keeps capabilities.ambient (ambient, permitted, effective)")
def caps_ambient(ctx):
    cfg = ctx.config()
    want = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    allc = want + ["CAP_CHOWN"]
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    cfg["process"]["capabilities"] = {"bounding": allc, "effective": allc, "permitted": allc,
                                      "inheritable": want, "ambient": want}
    seen = _caps_seen(ctx, cfg)
    for k in ("CapAmb", "CapPrm", "CapEff"):
        ctx.expect(seen[k] == cap_mask(want), f"{k} {_names(seen[k])}, expected {want}")


@check("config.md#process-capabilities-unknown", "SHOULD NOT", "an unknown capability is a warning, not a failure")
def caps_unknown(ctx):
    cfg = ctx.config(["true"])
    for k in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][k].append("CAP_NO_SUCH_CAPABILITY")
    res = ctx.run(cfg)
    ctx.expect(res.ok, f"the runtime failed on an unknown capability: {res.brief()}")
    if "CAP_NO_SUCH_CAPABILITY" not in res.err:
        return "no warning naming the capability on stderr"


@check("config.md#process-no-new-privileges", "MUST", "noNewPrivileges true sets no_new_privs")
def process_nnp(ctx):
    cfg = ctx.config(["cat", "/proc/self/status"])
    cfg["process"]["noNewPrivileges"] = True
    res = ctx.run(cfg)
    ctx.expect(res.ok and status_fields(res.out).get("NoNewPrivs") == "1", f"NoNewPrivs not 1: {res.brief()}")


@check("config.md#process-no-new-privileges-false", "MUST", "noNewPrivileges false leaves no_new_privs unset")
def process_nnp_false(ctx):
    cfg = ctx.config(["cat", "/proc/self/status"])
    cfg["process"]["noNewPrivileges"] = False
    res = ctx.run(cfg)
    ctx.expect(res.ok and status_fields(res.out).get("NoNewPrivs") == "0", f"NoNewPrivs not 0: {res.brief()}")


@check("config.md#process-oom-score-adj", "MUST", "oomScoreAdj is written to the program's oom_score_adj")
def process_oom(ctx):
    cfg = ctx.config(["cat", "/proc/self/oom_score_adj"])
    cfg["process"]["oomScoreAdj"] = 345
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == "345", f"oom_score_adj: {res.brief()}")


@check("config.md#process-oom-score-adj-unset", "MUST NOT", "without oomScoreAdj the caller's oom_score_adj is left as it is")
def process_oom_unset(ctx):
    cfg = ctx.config(["cat", "/proc/self/oom_score_adj"])
    cfg["process"].pop("oomScoreAdj", None)
    res = ctx.run(cfg, prefix=["sh", "-c", 'echo 123 > /proc/self/oom_score_adj && exec "$@"', "sh"])
    ctx.expect(res.ok and res.out.strip() == "123", f"oom_score_adj {res.out.strip()!r}, the runtime ran with 123: {res.brief()}")


@check("config.md#process-console-size-ignored", "MUST", "consoleSize is ignored when terminal is false")
def process_console_size(ctx):
    cfg = ctx.config(["echo", "ok"])
    cfg["process"]["consoleSize"] = {"height": 10, "width": 20}
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == "ok", f"container failed: {res.brief()}")


# --- Hostname, domainname --------------------------------------------------------------------------

@check("config.md#hostname", "MUST", "hostname is the container's hostname (new UTS namespace)")
def hostname(ctx):
    cfg = ctx.config(["hostname"])
    cfg["hostname"] = "conf-host.example"
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == "conf-host.example", f"hostname: {res.brief()}")


@check("config.md#domainname", "MUST", "domainname is the container's NIS domain name (new UTS namespace)")
def domainname(ctx):
    cfg = ctx.config(["cat", "/proc/sys/kernel/domainname"])
    cfg["domainname"] = "conf-domain.example"
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == "conf-domain.example", f"domainname: {res.brief()}")


# --- Hooks ----------------------------------------------------------------------------------------
HOOK_KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def _hooked(ctx, script_for, *, args=("sleep", "300")) -> tuple[dict, "os.PathLike"]:
    """A config with one hook of every kind running script_for(kind, out) where out is the host
    dir (for startContainer, the same dir bind-mounted at /out)."""
    out = ctx.hostdir("out")
    cfg = ctx.config(list(args))
    cfg["mounts"].append(bind(out, "/out"))
    cfg["hooks"] = {k: [hook(script_for(k, "/out" if k == "startContainer" else str(out)))] for k in HOOK_KINDS}
    return cfg, out


def _full_lifecycle(ctx, cfg):
    cid = ctx.must_create(cfg)
    ctx.must_start(cid)
    ctx.kill(cid, "KILL")
    ctx.wait_status(cid, "stopped", 10)
    res = ctx.delete(cid)
    if not res.ok:
        raise Fail(f"delete failed: {res.brief()}")
    return cid


@check("config.md#hooks-order", "MUST", "hooks of each kind run in the lifecycle's order, each in its operation")
def hooks_order(ctx):
    cfg, out = _hooked(ctx, lambda k, d: f"echo {k} >> {d}/order")
    order = out / "order"
    cid = ctx.must_create(cfg)
    after_create = read(order, "").split()
    ctx.must_start(cid)
    after_start = read(order, "").split()
    ctx.kill(cid, "KILL")
    ctx.wait_status(cid, "stopped", 10)
    ctx.delete(cid)
    final = read(order, "").split()
    ctx.expect(after_create == HOOK_KINDS[:3], f"after create: {after_create}, expected {HOOK_KINDS[:3]}")
    ctx.expect(after_start == HOOK_KINDS[:5], f"after start: {after_start}, expected {HOOK_KINDS[:5]}")
    ctx.expect(final == HOOK_KINDS, f"after delete: {final}, expected {HOOK_KINDS}")


@check("config.md#hooks-listed-order", "MUST", "hooks of one kind run in the listed order")
def hooks_listed_order(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(["true"])
    cfg["hooks"] = {"createRuntime": [hook(f"echo {i} >> {out}/order") for i in range(1, 5)],
                    "poststop": [hook(f"echo s{i} >> {out}/order") for i in range(1, 3)]}
    _full_lifecycle(ctx, cfg)
    got = read(out / "order", "").split()
    ctx.expect(got == ["1", "2", "3", "4", "s1", "s2"], f"hooks ran as {got}")


@check("config.md#hooks-state-stdin", "MUST", "every hook gets the container's state JSON on stdin")
def hooks_state_stdin(ctx):
    cfg, out = _hooked(ctx, lambda k, d: f"cat > {d}/state-{k}.json")
    cfg["annotations"] = {"com.example.hook": "yes"}
    cid = ctx.must_create(cfg)
    b = ctx.must_state(cid)["bundle"]
    pid = ctx.must_state(cid)["pid"]
    ctx.must_start(cid)
    ctx.kill(cid, "KILL")
    ctx.wait_status(cid, "stopped", 10)
    ctx.delete(cid)
    problems = []
    for k in HOOK_KINDS:
        text = read(out / f"state-{k}.json")
        if not text:
            problems.append(f"{k}: no state on stdin")
            continue
        try:
            st = json.loads(text)
        except ValueError:
            problems.append(f"{k}: stdin is not JSON: {text[:80]!r}")
            continue
        if st.get("id") != cid or st.get("bundle") != b or not isinstance(st.get("ociVersion"), str):
            problems.append(f"{k}: state {st}")
        if k in ("prestart", "createRuntime", "poststart") and st.get("pid") != pid:
            problems.append(f"{k}: pid {st.get('pid')}, the container's is {pid}")
        if st.get("annotations") != {"com.example.hook": "yes"}:
            problems.append(f"{k}: annotations {st.get('annotations')}")
    ctx.expect(not problems, "; ".join(problems))


NS_KINDS = ("mnt", "uts", "ipc", "net", "pid")


def _ns_probe(k: str, d: str) -> str:
    return (f"for n in {' '.join(NS_KINDS)}; do echo $n=$(readlink /proc/self/ns/$n); done > {d}/ns-{k}; "
            f"hostname >> {d}/ns-{k}")


def _hook_ns(ctx, kind: str, expect: str):
    cfg, out = _hooked(ctx, _ns_probe)
    cfg["hostname"] = "hook-ns-ctr"
    cid = ctx.must_create(cfg)
    pid = ctx.must_state(cid)["pid"]
    ctr = {n: ns_link(pid, n) for n in NS_KINDS}
    # the container's pid namespace is the one its init lives in (pid_for_children of the runtime
    # differs); compare the init's own namespaces
    ctx.must_start(cid)
    ctx.kill(cid, "KILL")
    ctx.wait_status(cid, "stopped", 10)
    ctx.delete(cid)
    text = read(out / f"ns-{kind}")
    if not text:
        raise Fail(f"the {kind} hook did not run (or could not write its probe)")
    lines = text.split()
    seen = dict(line.split("=", 1) for line in lines if "=" in line)
    host = {n: ns_link("self", n) for n in NS_KINDS}
    want = host if expect == "runtime" else ctr
    bad = [f"{n}: {seen.get(n)} (runtime {host[n]}, container {ctr[n]})" for n in NS_KINDS if seen.get(n) != want[n]]
    ctx.expect(not bad, f"{kind} hook not in the {expect} namespaces: " + "; ".join(bad))


for _k, _where in (("prestart", "runtime"), ("createRuntime", "runtime"), ("createContainer", "container"),
                   ("startContainer", "container"), ("poststart", "runtime"), ("poststop", "runtime")):
    check(f"config.md#hooks-{_k}-namespace", "MUST", f"{_k} hooks run in the {_where} namespaces")(
        (lambda k, w: lambda ctx: _hook_ns(ctx, k, w))(_k, _where))


@check("config.md#hooks-createContainer-path", "MUST", "a createContainer hook's path resolves in the runtime namespace")
def hooks_create_container_path(ctx):
    out = ctx.hostdir("out")
    script = ctx.tmp / "host-only-hook"
    script.write_text(f"#!/bin/sh\necho ran > {out}/ran\n")
    os.chmod(script, 0o755)
    cfg = ctx.config(["true"])
    cfg["hooks"] = {"createContainer": [{"path": str(script), "args": ["host-only-hook"]}]}
    cid, res = ctx.create(cfg)
    ctx.expect(res.ok, f"create failed with a hook that exists only on the host: {res.brief()}")
    ctx.expect((out / "ran").exists(), "the createContainer hook did not run")


@check("config.md#hooks-startContainer-path", "MUST", "a startContainer hook's path resolves in the container namespace")
def hooks_start_container_path(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(["true"])
    cfg["mounts"].append(bind(out, "/out"))
    cfg["hooks"] = {"startContainer": [{"path": "/ctr-only/hook", "args": ["hook"]}]}
    b = ctx.bundle(cfg)
    (b / "rootfs" / "ctr-only").mkdir()
    (b / "rootfs" / "ctr-only" / "hook").write_text("#!/bin/sh\necho ran > /out/ran\n")
    os.chmod(b / "rootfs" / "ctr-only" / "hook", 0o755)
    cid = ctx.must_create(b)
    res = ctx.start(cid)
    ctx.wait_status(cid, "stopped", 10)
    ctx.expect(res.ok and (out / "ran").exists(), f"the startContainer hook at a container-only path did not run: {res.brief()}")


@check("config.md#hooks-create-before-pivot", "MUST", "prestart/createRuntime/createContainer hooks run before pivot_root")
def hooks_before_pivot(ctx):
    out = ctx.hostdir("out")
    marker = ctx.tmp / "host-marker"
    marker.write_text("x")

    def root_of_init(k):
        return (f"pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); "
                f"readlink /proc/$pid/root > {out}/root-{k}")

    cfg = ctx.config(["true"])
    cfg["hooks"] = {"prestart": [hook(root_of_init("prestart"))],
                    "createRuntime": [hook(root_of_init("createRuntime"))],
                    "createContainer": [hook(f"test -e {marker} && echo host-root > {out}/cc")]}
    ctx.must_create(cfg)
    problems = []
    for k in ("prestart", "createRuntime"):
        r = read(out / f"root-{k}", "").strip()
        if r != "/":
            problems.append(f"{k}: the init's root is {r!r} (pivoted already)")
    if read(out / "cc", "").strip() != "host-root":
        problems.append("createContainer: the host's root is not visible (pivoted already)")
    ctx.expect(not problems, "; ".join(problems))


@check("config.md#hooks-startContainer-before-program", "MUST", "startContainer hooks run before the program")
def hooks_start_container_before(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(script="test -e /out/hooked && echo yes > /out/seen || echo no > /out/seen")
    cfg["mounts"].append(bind(out, "/out"))
    cfg["hooks"] = {"startContainer": [hook("sleep 0.3; echo x > /out/hooked")]}
    cid = ctx.must_create(cfg)
    ctx.must_start(cid)
    ctx.wait_status(cid, "stopped", 10)
    ctx.expect(read(out / "seen", "").strip() == "yes", f"the program ran before the startContainer hook finished: {read(out / 'seen')!r}")


@check("config.md#hooks-poststart-timing", "MUST", "poststart hooks run after the program is executed, before start returns")
def hooks_poststart_timing(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(["sleep", "300"])
    cfg["hooks"] = {"poststart": [hook(f"pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); sleep 0.3; "
                                       f"tr '\\0' ' ' < /proc/$pid/cmdline > {out}/cmd")]}
    cid = ctx.must_create(cfg)
    ctx.expect(not (out / "cmd").exists(), "the poststart hook ran during create")
    ctx.must_start(cid)
    ctx.expect((out / "cmd").exists(), "start returned before the poststart hook finished")
    ctx.expect(read(out / "cmd", "").strip() == "sleep 300",
               f"when poststart ran, the container process was {read(out / 'cmd', '').strip()!r}, not the program")


@check("config.md#hooks-poststop-timing", "MUST", "poststop hooks run after the container is deleted, before delete returns")
def hooks_poststop_timing(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(["true"])
    cfg["hooks"] = {"poststop": [hook(f"sleep 0.3; echo done > {out}/poststop")]}
    cid = ctx.must_create(cfg)
    pid = ctx.must_state(cid)["pid"]
    ctx.must_start(cid)
    ctx.wait_status(cid, "stopped", 10)
    ctx.expect(not (out / "poststop").exists(), "poststop ran before delete")
    res = ctx.delete(cid)
    ctx.expect(res.ok, f"delete failed: {res.brief()}")
    ctx.expect((out / "poststop").exists(), "delete returned before the poststop hook finished")


@check("config.md#hooks-args-env", "MUST", "a hook runs with exactly its args and env")
def hooks_args_env(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(["true"])
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f'echo "$0|$1" > {out}/args; env > {out}/env',
                                                                 "zero", "one"],
                                       "env": ["HOOKVAR=hook value", "PATH=/usr/bin:/bin"]}]}
    os.environ["OCIRUN_CONFORMANCE_CANARY"] = "leaked"
    try:
        ctx.must_create(cfg)
    finally:
        os.environ.pop("OCIRUN_CONFORMANCE_CANARY", None)
    ctx.expect(read(out / "args", "").strip() == "zero|one", f"hook args: {read(out / 'args')!r}")
    env = read(out / "env", "").splitlines()
    ctx.expect("HOOKVAR=hook value" in env, f"hook env lacks HOOKVAR: {env}")
    ctx.expect(not any(e.startswith("OCIRUN_CONFORMANCE_CANARY") for e in env), f"the runtime's environment leaked into the hook: {env}")


@check("config.md#hooks-timeout", "MUST", "a hook running past its timeout is aborted and fails the operation")
def hooks_timeout(ctx):
    cfg = ctx.config(["true"])
    cfg["hooks"] = {"createRuntime": [hook("exec sleep 30", timeout=1)]}
    t0 = time.monotonic()
    cid, res = ctx.create(cfg, timeout=40)
    took = time.monotonic() - t0
    ctx.expect(not res.ok, f"create succeeded although the hook timed out ({took:.1f}s)")
    ctx.expect(took < 15, f"create took {took:.1f}s: the 1 s timeout was not applied")


# --- Annotations, extensibility, valid values ---------------------------------------------------------

@check("config.md#annotations-unknown-keys", "MUST", "unknown annotation keys are ignored like unknown properties")
def annotations_unknown(ctx):
    cfg = ctx.config(["true"])
    cfg["annotations"] = {"org.opencontainers.future.thing": "x", "io.example/strange key": "",
                          "com.example.n": "1"}
    res = ctx.run(cfg)
    ctx.expect(res.ok, f"unknown annotations made the container fail: {res.brief()}")


@check("config.md#extensibility-unknown-properties", "MUST", "unknown properties are ignored, not errors")
def extensibility(ctx):
    cfg = ctx.config(["echo", "ok"])
    cfg["com.example.unknownTopLevel"] = {"a": 1}
    cfg["process"]["com.example.unknown"] = [1, 2]
    cfg["linux"]["com.example.unknown"] = "x"
    cfg["root"]["com.example.unknown"] = True
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == "ok", f"unknown properties made the container fail: {res.brief()}")


@check("config.md#valid-values", "MUST", "invalid values are errors (a negative uid)")
def valid_values(ctx):
    cfg = ctx.config(["true"])
    cfg["process"]["user"]["uid"] = -5
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted uid -5")


@check("config.md#oci-version-semver", "MUST", "an ociVersion that is not SemVer is an invalid value: error")
def oci_version_semver(ctx):
    cfg = ctx.config(["true"])
    cfg["ociVersion"] = "not a version"
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted ociVersion 'not a version'")


@check("config.md#process-args-required", "MUST", "process.args needs at least one entry: empty args is an error")
def process_args_required(ctx):
    cfg = ctx.config(["true"])
    cfg["process"]["args"] = []
    cid, res = ctx.create(cfg)
    if res.ok:
        res = ctx.start(cid)
    ctx.expect(not res.ok, "empty process.args was accepted (create and start)")


@check("config.md#hooks-path-absolute", "MUST", "a relative hook path is an error")
def hooks_path_absolute(ctx):
    cfg = ctx.config(["true"])
    cfg["hooks"] = {"createRuntime": [{"path": "bin/sh", "args": ["sh", "-c", "true"]}]}
    cid, res = ctx.create(cfg, cwd="/")
    ctx.expect(not res.ok, "create accepted hook path 'bin/sh'")


@check("config.md#hooks-timeout-positive", "MUST", "a hook timeout of 0 is an error (it must be greater than zero)")
def hooks_timeout_positive(ctx):
    cfg = ctx.config(["true"])
    # The hook takes a second, so that a runtime that treats 0 as "no timeout" is told apart
    # from one that refuses the value (or aborts the hook at once): both of these error.
    cfg["hooks"] = {"createRuntime": [hook("exec sleep 1", timeout=0)]}
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted a hook timeout of 0")


@check("config.md#mounts-mappings-paired", "MUST", "a mount's uidMappings without gidMappings is an error")
def mounts_mappings_paired(ctx):
    src = ctx.hostdir("src")
    cfg = ctx.config(["true"])
    m = bind(src, "/m", "bind", "idmap")
    m["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg["mounts"].append(m)
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted uidMappings without gidMappings")
