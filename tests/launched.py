"""What an installed `ocirun` command runs: shared by the import budget test and the benches.

The native launcher (csrc/launcher.c) starts PREFIX/bin/python3 -I -S on the package's
__main__.py; a `#!` Python script (an older install) names its interpreter on its first line.
"""
import os
import shutil
from pathlib import Path


def command_of(runtime_bin: str) -> tuple[str, str] | None:
    """(interpreter, script) the command runs with -I -S; None for anything that is not
    ocirun's launcher or a Python script (runc, crun)."""
    with open(runtime_bin, "rb") as f:
        head = f.readline()
    if head.startswith(b"\x7fELF"):
        prefix = Path(os.path.realpath(runtime_bin)).parent.parent
        mains = sorted(prefix.glob("lib/python*/*-packages/ocirun/__main__.py"))
        if (prefix / "bin/python3").exists() and mains:
            return str(prefix / "bin/python3"), str(mains[0])
        return None
    line = head.decode(errors="replace").strip()
    if not line.startswith("#!") or "python" not in line:
        return None
    words = line[2:].split()
    if os.path.basename(words[0]) == "env":
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[1:]
        if words:
            words[0] = shutil.which(words[0]) or words[0]
    return (words[0], runtime_bin) if words else None
