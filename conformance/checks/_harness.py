"""What every conformance check uses: the registry, the per-check context that drives a runtime
binary against busybox bundles in a private temp dir, and helpers to look at containers.

A check is a function `fn(ctx)` registered with `@check(ID, LEVEL, TEXT)`, where ID names the
requirement (`spec-file.md#short-name`), LEVEL is MUST, SHOULD or MUST NOT, and TEXT says in a
line what is checked. It passes by returning (optionally a note), fails by raising `Fail` (or
through `ctx.expect`), and skips by raising `Skip` where this host cannot do what it needs.
Any other exception fails the check with the exception as the reason.

Everything a check makes is its own: bundles and the `--root` state directory live in the
check's temp dir, container ids and cgroup paths carry the session marker, and `ctx.cleanup()`
force-deletes every container the check created, removes its cgroups, unmounts what it mounted
and removes the temp dir.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import busybox_bundle  # noqa: E402
import proc_group  # noqa: E402  (conformance/, on the path of suite.py)

SESSION = "%06x" % (int.from_bytes(os.urandom(3), "big"))
MARK = f"ocirun-conf-{SESSION}"
CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_TIMEOUT = 20

# --- registry ------------------------------------------------------------------------------


@dataclass
class Check:
    id: str
    level: str
    text: str
    fn: object
    module: str = ""

    @property
    def spec_file(self) -> str:
        return self.id.split("#", 1)[0]


REGISTRY: list[Check] = []


def check(id: str, level: str, text: str):
    def deco(fn):
        if any(c.id == id for c in REGISTRY):
            raise ValueError(f"duplicate check id {id}")
        REGISTRY.append(Check(id, level, text, fn, fn.__module__))
        return fn
    return deco


class Fail(Exception):
    pass


class Skip(Exception):
    pass


# --- child processes and reaping ------------------------------------------------------------
#
# The suite is a child subreaper (as a containerd shim or conmon is): a container init that
# outlives `create` is reparented to us. Nobody else here reaps orphans (pid 1 does not), so a
# reaper thread reaps every zombie child that is not one of our own subprocess.Popen children.
# _spawn_lock is held while a Popen is made and registered, and while the reaper decides, so
# that it never steals the exit status of a child that subprocess is about to wait for.

_spawn_lock = threading.Lock()
_tracked: set[int] = set()
_reaper_started = False


def _zombie_children() -> list[int]:
    me = str(os.getpid())
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        if len(rest) > 1 and rest[0] in ("Z", "X") and rest[1] == me:
            out.append(int(name))
    return out


def reap_orphans() -> None:
    with _spawn_lock:
        for pid in _zombie_children():
            if pid in _tracked:
                continue
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _reaper() -> None:
    while True:
        try:
            # Block until some child is a zombie, without reaping it.
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            time.sleep(0.05)
            continue
        except InterruptedError:
            continue
        reap_orphans()
        time.sleep(0.01)  # a tracked zombie stays until subprocess waits for it: don't spin


def become_subreaper() -> None:
    global _reaper_started
    if _reaper_started:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    threading.Thread(target=_reaper, name="reaper", daemon=True).start()
    _reaper_started = True


@dataclass
class Result:
    argv: list
    rc: int
    out: str
    err: str
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def brief(self) -> str:
        err = " ".join(self.err.split())[-300:]
        out = " ".join(self.out.split())[-200:]
        t = " (timed out)" if self.timed_out else ""
        return f"`{' '.join(map(str, self.argv))}` rc={self.rc}{t} stdout={out!r} stderr={err!r}"


def spawn(argv, *, cwd=None, stdin=None, stdout=None, stderr=None, pass_fds=(), env=None,
          timeout=DEFAULT_TIMEOUT, input_bytes=None) -> tuple[int, bool, float]:
    """Run argv to completion (own process group; killed on timeout). -> (rc, timed_out, secs)"""
    t0 = time.monotonic()
    with _spawn_lock:
        p = subprocess.Popen(argv, cwd=cwd, stdin=stdin if input_bytes is None else subprocess.PIPE,
                             stdout=stdout, stderr=stderr, pass_fds=pass_fds, env=env,
                             start_new_session=True, close_fds=True)
        _tracked.add(p.pid)
    try:
        timed_out = proc_group.finish(p, timeout, input_bytes)[1]
    finally:
        with _spawn_lock:
            _tracked.discard(p.pid)
    return p.returncode, timed_out, time.monotonic() - t0


# --- host views ------------------------------------------------------------------------------

def read(path, default: str | None = None) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def ns_link(pid, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def cgroup_mounts() -> dict[str, str]:
    """controller (or 'name=x', or '' for v2) -> mount point, from our mountinfo."""
    out: dict[str, str] = {}
    for line in (read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if not rparts:
            continue
        if rparts[0] == "cgroup2":
            out.setdefault("", parts[4])
        elif rparts[0] == "cgroup":
            for opt in rparts[2].split(","):
                if opt in ("rw", "ro") or opt.startswith("relatime") or opt in ("nosuid", "nodev", "noexec"):
                    continue
                out.setdefault(opt, parts[4])
    return out


def cgroup_v2_only() -> bool:
    return read(f"{CGROUP_ROOT}/cgroup.controllers") is not None


def cgroup_dir_of(pid, controller: str) -> str | None:
    """Host directory of `pid`'s cgroup for `controller` ('' = the v2 hierarchy)."""
    mounts = cgroup_mounts()
    text = read(f"/proc/{pid}/cgroup")
    if text is None:
        return None
    for line in text.splitlines():
        hid, ctrls, path = line.split(":", 2)
        names = ctrls.split(",") if ctrls else [""]
        if controller in names:
            base = mounts.get(controller)
            if base is None and controller == "" and cgroup_v2_only():
                base = CGROUP_ROOT
            if base is None:
                return None
            return os.path.join(base, path.lstrip("/"))
    if cgroup_v2_only():  # v2: every controller lives in the one hierarchy
        for line in text.splitlines():
            if line.startswith("0::"):
                return os.path.join(CGROUP_ROOT, line[3:].lstrip("/"))
    return None


def mountinfo_entries(text: str) -> list[dict]:
    """Parse mountinfo text into dicts: id, parent, mnt (mount point), opts (per-mount), optional
    (fields such as shared:N), fstype, source, super (per-superblock options)."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        p = left.split()
        r = right.split()
        if len(p) < 6 or len(r) < 3:
            continue
        out.append({"id": p[0], "parent": p[1], "mnt": _unoctal(p[4]), "root": _unoctal(p[3]),
                    "opts": p[5].split(","), "optional": p[6:], "fstype": r[0],
                    "source": r[1], "super": r[2].split(",")})
    return out


def _unoctal(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def last_mount(entries: list[dict], mnt: str) -> dict | None:
    """The topmost (last listed) mount at mount point `mnt`."""
    hit = None
    for e in entries:
        if e["mnt"] == mnt:
            hit = e
    return hit


CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]


def cap_mask(names) -> int:
    m = 0
    for n in names:
        m |= 1 << CAPS.index(n)
    return m


def status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


# --- the per-check context ------------------------------------------------------------------

class Ctx:
    """One check's world: a runtime binary, a temp dir, a private `--root`, the containers,
    cgroups and host mounts it made (all undone by cleanup())."""

    def __init__(self, runtime: str, check_id: str, index: int, base_tmp: str, verbose: bool = False):
        self.runtime = runtime
        self.check_id = check_id
        self.verbose = verbose
        safe = re.sub(r"[^A-Za-z0-9]+", "-", check_id).strip("-")[:60]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{index:03d}-{safe}-", dir=base_tmp))
        os.chmod(self.tmp, 0o755)
        self.root = self.tmp / "state"
        self.root.mkdir(mode=0o700)
        self.index = index
        self._n = 0
        self.ids: list[str] = []
        self.cgroup_paths: set[str] = set()
        self.host_mounts: list[str] = []
        self.log: list[str] = []

    # names

    def new_id(self, tag: str = "c") -> str:
        self._n += 1
        cid = f"{MARK}-{self.index}-{tag}{self._n}"
        return cid

    def new_cgroup_path(self) -> str:
        self._n += 1
        p = f"/{MARK}-{self.index}-cg{self._n}"
        self.cgroup_paths.add(p)
        return p

    # bundles

    def config(self, args=None, *, script: str | None = None, readonly: bool = False) -> dict:
        """The default config (as `runc spec`, terminal false) with its own cgroupsPath, the
        root filesystem writable unless readonly, and args (or `sh -c script`)."""
        if script is not None:
            args = ["sh", "-c", script]
        cfg = busybox_bundle.default_config(args or ["true"])
        cfg["root"]["readonly"] = readonly
        cfg["linux"]["cgroupsPath"] = self.new_cgroup_path()
        return cfg

    def bundle(self, cfg: dict, name: str | None = None) -> Path:
        self._n += 1
        path = self.tmp / (name or f"bundle{self._n}")
        cp = cfg.get("linux", {}).get("cgroupsPath")
        if isinstance(cp, str) and cp.startswith("/"):
            self.cgroup_paths.add(cp)
        return busybox_bundle.make_bundle(path, config=cfg)

    def write_config(self, bundle: Path, cfg: dict) -> None:
        (bundle / "config.json").write_text(json.dumps(cfg, indent="\t") + "\n")

    def hostdir(self, name: str) -> Path:
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o777)
        return d

    # the runtime

    def rt(self, *args, timeout=DEFAULT_TIMEOUT, input: bytes | None = None, stdin=None,
           pass_fds=(), prefix=(), cwd=None, root: bool = True, tag: str = "rt") -> Result:
        """Run the runtime (behind `prefix`, a command that execs it, if given); its stdout and
        stderr (and those of a container it starts) go to files."""
        self._n += 1
        argv = [self.runtime] + (["--root", str(self.root)] if root else []) + [str(a) for a in args]
        outp = self.tmp / f".{tag}{self._n}.out"
        errp = self.tmp / f".{tag}{self._n}.err"
        # O_APPEND: a container that reopens /proc/self/fd/1 (>> /dev/stdout) adds, not overwrites.
        with open(outp, "ab") as o, open(errp, "ab") as e:
            if stdin is None and input is None:
                stdin = subprocess.DEVNULL
            rc, to, secs = spawn(list(prefix) + argv, cwd=cwd or str(self.tmp), stdin=stdin, stdout=o,
                                 stderr=e, pass_fds=pass_fds, timeout=timeout, input_bytes=input)
        shown = [a.replace(str(self.tmp), "<tmp>") for a in argv[3 if root else 1:]]
        res = Result(shown, rc, outp.read_text(errors="replace"), errp.read_text(errors="replace"), secs, to)
        self.log.append(res.brief())
        return res

    def create(self, cfg_or_bundle, cid: str | None = None, *, extra=(), **kw) -> tuple[str, Result]:
        bundle = cfg_or_bundle if isinstance(cfg_or_bundle, Path) else self.bundle(cfg_or_bundle)
        cid = cid or self.new_id()
        if cid not in self.ids:
            self.ids.append(cid)
        res = self.rt("create", "--bundle", bundle, *extra, cid, tag="create", **kw)
        return cid, res

    def must_create(self, cfg_or_bundle, cid: str | None = None, **kw) -> str:
        cid, res = self.create(cfg_or_bundle, cid, **kw)
        if not res.ok:
            raise Fail(f"create failed: {res.brief()}")
        return cid

    def start(self, cid: str, **kw) -> Result:
        return self.rt("start", cid, tag="start", **kw)

    def must_start(self, cid: str, **kw) -> Result:
        res = self.start(cid, **kw)
        if not res.ok:
            raise Fail(f"start failed: {res.brief()}")
        return res

    def state(self, cid: str) -> dict | None:
        res = self.rt("state", cid, tag="state")
        if not res.ok:
            return None
        try:
            return json.loads(res.out)
        except ValueError:
            raise Fail(f"state output is not JSON: {res.out[:200]!r}")

    def must_state(self, cid: str) -> dict:
        st = self.state(cid)
        if st is None:
            raise Fail(f"state {cid} failed: {self.log[-1]}")
        return st

    def kill(self, cid: str, sig: str = "KILL", **kw) -> Result:
        return self.rt("kill", cid, sig, tag="kill", **kw)

    def delete(self, cid: str, force: bool = False, **kw) -> Result:
        return self.rt("delete", *(["--force"] if force else []), cid, tag="delete", **kw)

    def wait_status(self, cid: str, want: str, timeout: float = 10) -> dict | None:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.state(cid)
            if st is not None and st.get("status") == want:
                return st
            time.sleep(0.05)
        return st

    def run(self, cfg_or_bundle, *, timeout=DEFAULT_TIMEOUT, **kw) -> Result:
        """Foreground `run` of a fresh container: the container's output is the result's."""
        bundle = cfg_or_bundle if isinstance(cfg_or_bundle, Path) else self.bundle(cfg_or_bundle)
        cid = self.new_id("r")
        self.ids.append(cid)
        return self.rt("run", "--bundle", bundle, cid, timeout=timeout, tag="run", **kw)

    def inside(self, script: str, cfg: dict | None = None, *, patch=None, **kw) -> Result:
        """`sh -c script` in a fresh container (cfg or the default one, patched by patch(cfg))."""
        if cfg is None:
            cfg = self.config()
        cfg["process"]["args"] = ["sh", "-c", script]
        if patch:
            patch(cfg)
        return self.run(cfg, **kw)

    def must_inside(self, script: str, cfg: dict | None = None, **kw) -> str:
        res = self.inside(script, cfg, **kw)
        if not res.ok:
            raise Fail(f"container failed: {res.brief()}")
        return res.out

    # host-side helpers

    def mount(self, *args) -> None:
        """mount(8) on the host, remembered for cleanup (the target is the last argument)."""
        rc, to, _ = spawn(["mount", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if rc != 0:
            raise Skip(f"cannot mount {args} on this host")
        self.host_mounts.append(str(args[-1]))

    def sh_ok(self, *argv) -> bool:
        """Run a host command (through spawn, so that the reaper leaves it alone); -> success."""
        rc, to, _ = spawn([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return rc == 0 and not to

    def expect(self, cond, msg: str) -> None:
        if not cond:
            raise Fail(msg)

    # cleanup

    def cleanup(self) -> list[str]:
        problems = []
        for cid in reversed(self.ids):
            st = self.state(cid)
            if st is None:
                continue
            self.delete(cid, force=True)
            if self.state(cid) is not None:
                # A container refused by delete --force: kill its init ourselves, then retry.
                pid = st.get("pid")
                if isinstance(pid, int) and pid > 0:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.1)
                self.delete(cid, force=True)
                if self.state(cid) is not None:
                    problems.append(f"container {cid} could not be deleted")
        reap_orphans()
        for p in sorted(self.cgroup_paths):
            for d in _cgroup_dirs_for(p):
                if not _rmdir_cgroup(d):
                    problems.append(f"cgroup {d} left behind")
        for m in reversed(self.host_mounts):
            spawn(["umount", "-l", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Mounts a runtime left under our temp dir (it should not): detach them before rm -rf.
        for line in reversed((read("/proc/self/mountinfo") or "").splitlines()):
            mp = _unoctal(line.split()[4])
            if mp.startswith(str(self.tmp) + "/"):
                problems.append(f"mount {mp} left behind")
                spawn(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


def _cgroup_dirs_for(path: str) -> list[str]:
    out = []
    bases = set(cgroup_mounts().values())
    if cgroup_v2_only():
        bases.add(CGROUP_ROOT)
    for base in bases:
        d = os.path.join(base, path.lstrip("/"))
        if os.path.isdir(d):
            out.append(d)
    return out


def _rmdir_cgroup(d: str) -> bool:
    """Remove a cgroup dir and its sub-cgroups (deepest first), killing stragglers."""
    for _ in range(50):
        try:
            for sub, dirs, _files in os.walk(d, topdown=False):
                os.rmdir(sub)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                return False
            for sub, _dirs, _files in os.walk(d):
                for pid in (read(os.path.join(sub, "cgroup.procs"), "") or "").split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
            reap_orphans()
            time.sleep(0.05)
    return False


# --- small shared helpers for checks ------------------------------------------------------------

def hook(script: str, timeout: int | None = None, path: str = "/bin/sh") -> dict:
    """A hook entry running `sh -c script` (the state arrives on its stdin)."""
    h = {"path": path, "args": ["sh", "-c", script]}
    if timeout is not None:
        h["timeout"] = timeout
    return h


def bind(src, dst: str, *opts: str) -> dict:
    return {"destination": dst, "type": "bind", "source": str(src), "options": ["bind", *opts] if not
            any(o in ("bind", "rbind") for o in opts) else list(opts)}


def tmpfs(dst: str, *opts: str) -> dict:
    return {"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": list(opts)}


def remove_mount(cfg: dict, dst: str) -> None:
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != dst]


def set_namespaces(cfg: dict, *types: str) -> None:
    cfg["linux"]["namespaces"] = [{"type": t} for t in types]


def add_namespace(cfg: dict, ns: dict) -> None:
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != ns["type"]] + [ns]


def user_ns(cfg: dict, host_uid: int = 100000, size: int = 65536) -> None:
    """A user namespace mapping 0..size-1 to host_uid.. (uids and gids). The rootfs is not
    chowned (its files are hard links into the shared bundle cache): the mapped root reads and
    runs it through the world-readable modes busybox_bundle gives it."""
    add_namespace(cfg, {"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host_uid, "size": size}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host_uid, "size": size}]
    # sysfs and cgroup mounts need the network/cgroup namespace owned by the user namespace;
    # bind /sys instead and leave the cgroup tree out, as `runc spec --rootless` does.
    remove_mount(cfg, "/sys/fs/cgroup")
    for m in cfg["mounts"]:
        if m["destination"] == "/sys":
            m.update({"type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        if m["type"] == "devpts":
            m["options"] = [o for o in m["options"] if o != "gid=5"]


def unique_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
