#!/usr/bin/env python3
"""Make an OCI bundle whose rootfs is Debian's static busybox.

    scripts/busybox_bundle.py DIR [-- ARGS...]    prints the bundle path (DIR, absolute)

    from busybox_bundle import make_bundle, default_config
    make_bundle("/tmp/b", ["echo", "hi"])          -> Path("/tmp/b")

The bundle is DIR/config.json (the shape `runc spec` writes, with `terminal: false`
and `process.args` = ARGS, default `["sh"]`) and DIR/rootfs/: /bin/busybox, one
symlink per applet at the path `busybox --list-full` gives, /etc/passwd and
/etc/group (root, and an unprivileged `user` 1000:1000), and empty proc, sys, dev,
tmp, root.

The rootfs is built once into a cache directory keyed by the busybox binary
($OCIRUN_BUNDLE_CACHE, else ~/.cache/ocirun) and then replicated per bundle from
a manifest in a few milliseconds: directories are made, busybox and the applet
symlinks are hard-linked from the cache (made afresh on another file system),
and the small /etc files are copied so that a container writing them cannot
change the cache. Stdlib only; no runtime is called.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The default config is ocirun's own (`ocirun spec`), read from this checkout's sources.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ocirun import default_spec as _default_spec  # noqa: E402

BUSYBOX = os.environ.get("OCIRUN_BUSYBOX", "/bin/busybox")
LAYOUT_VERSION = 1

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/tmp:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
"""
EMPTY_DIRS = {"proc": 0o555, "sys": 0o555, "dev": 0o755, "tmp": 0o1777, "etc": 0o755, "root": 0o700}


def default_config(args: list[str] | None = None) -> dict:
    """`ocirun spec`'s config.json (the shape `runc spec` writes), terminal false, with these args."""
    return _default_spec.default_config(args=args, terminal=False)


def _cache_base() -> Path:
    if os.environ.get("OCIRUN_BUNDLE_CACHE"):
        return Path(os.environ["OCIRUN_BUNDLE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "ocirun"


def _applet_paths(busybox: str) -> list[str]:
    """Relative paths of the applet links, e.g. 'bin/sh', 'usr/bin/env'."""
    for flag, full in (("--list-full", True), ("--list", False)):
        try:
            out = subprocess.run([busybox, flag], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        names = [n.strip().lstrip("/") for n in out.splitlines() if n.strip()]
        return [n if full else f"bin/{n}" for n in names]
    raise RuntimeError(f"{busybox}: cannot list its applets (install busybox-static)")


def _build_cache(busybox: str, dest: Path) -> None:
    """Build the template rootfs and its manifest in a temp dir, then rename it to dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
    try:
        root = tmp / "rootfs"
        manifest: list[list] = []  # [kind, relpath, extra]; kind is dir | file | copy | link

        def mkdir(rel: str, mode: int = 0o755) -> None:
            p = root / rel
            if not p.is_dir():
                p.mkdir(parents=True)
                os.chmod(p, mode)
                manifest.append(["dir", rel, mode])

        root.mkdir()
        for d, mode in EMPTY_DIRS.items():
            mkdir(d, mode)
        mkdir("bin")
        shutil.copy2(busybox, root / "bin/busybox")
        os.chmod(root / "bin/busybox", 0o755)
        manifest.append(["file", "bin/busybox", 0o755])
        for rel, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            (root / rel).write_text(text)
            os.chmod(root / rel, 0o644)
            manifest.append(["copy", rel, 0o644])
        for rel in _applet_paths(busybox):
            if rel == "bin/busybox" or (root / rel).exists() or (root / rel).is_symlink():
                continue
            parent = os.path.dirname(rel)
            parts = parent.split("/")
            for i in range(1, len(parts) + 1):
                mkdir("/".join(parts[:i]))
            os.symlink("/bin/busybox", root / rel)
            manifest.append(["link", rel, "/bin/busybox"])
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        try:
            os.rename(tmp, dest)
        except OSError as e:  # another process won the race: use theirs
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _cache_dir(busybox: str = BUSYBOX) -> Path:
    st = os.stat(busybox)
    key = f"v{LAYOUT_VERSION}-{st.st_size}-{st.st_mtime_ns}-{st.st_ino}"
    dest = _cache_base() / f"busybox-rootfs-{key}"
    if not (dest / "manifest.json").is_file():
        _build_cache(busybox, dest)
    return dest


def _looks_like_ours(rootfs: Path) -> bool:
    return (rootfs / "bin/busybox").is_file() and (rootfs / "etc/passwd").is_file()


def make_rootfs(rootfs: str | os.PathLike, busybox: str = BUSYBOX) -> Path:
    """Populate `rootfs` (created; replaced if it is an earlier busybox rootfs)."""
    rootfs = Path(rootfs).absolute()
    if rootfs.exists() or rootfs.is_symlink():
        if rootfs.is_dir() and not rootfs.is_symlink() and (_looks_like_ours(rootfs) or not any(rootfs.iterdir())):
            shutil.rmtree(rootfs)
        else:
            raise FileExistsError(f"{rootfs}: exists and is not a busybox rootfs; not replacing it")
    cache = _cache_dir(busybox)
    src = cache / "rootfs"
    manifest = json.loads((cache / "manifest.json").read_text())
    rootfs.mkdir(parents=True)
    can_link = True  # hard links from the cache: on ext4 linking a symlink is ~50x faster than making one

    def link(rel: str) -> bool:
        nonlocal can_link
        if can_link:
            try:
                os.link(src / rel, rootfs / rel, follow_symlinks=False)
                return True
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                can_link = False  # another file system: make them instead
        return False

    for kind, rel, extra in manifest:
        dst = rootfs / rel
        if kind == "dir":
            dst.mkdir()
            os.chmod(dst, extra)  # mkdir's mode is filtered by the umask
        elif kind == "link":
            if not link(rel):
                os.symlink(extra, dst)
        elif kind == "file":
            if not link(rel):
                shutil.copy2(src / rel, dst)
        else:  # copy
            shutil.copyfile(src / rel, dst)
            os.chmod(dst, extra)
    os.chmod(rootfs, 0o755)
    return rootfs


def make_bundle(dir: str | os.PathLike, args: list[str] | None = None, config: dict | None = None) -> Path:
    """Create (or refresh) an OCI bundle at `dir`; return its absolute path.

    `config` replaces the default config (default_config(args)) when given.
    """
    bundle = Path(dir).absolute()
    bundle.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(config) if config is not None else default_config(args)
    root_path = (cfg.get("root") or {}).get("path") if isinstance(cfg.get("root"), dict) else None
    make_rootfs(bundle / (root_path if isinstance(root_path, str) and root_path else "rootfs"))  # absolute stays absolute
    tmp = bundle / ".config.json.tmp"
    tmp.write_text(json.dumps(cfg, indent="\t") + "\n")
    os.replace(tmp, bundle / "config.json")
    return bundle


def main(argv: list[str]) -> int:
    usage = f"usage: {os.path.basename(argv[0])} DIR [-- ARGS...]"
    rest = argv[1:]
    if not rest or rest[0] in ("-h", "--help"):
        print(usage + "\n\n" + (__doc__ or "").split("\n\n")[1], file=sys.stderr if not rest else sys.stdout)
        return 2 if not rest else 0
    target, rest = rest[0], rest[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif rest:
        print(f"{usage}\nerror: put the container's command after --", file=sys.stderr)
        return 2
    try:
        path = make_bundle(target, rest or None)
    except (OSError, RuntimeError) as e:
        print(f"busybox_bundle: error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
