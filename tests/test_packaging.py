"""A plain `pip install .` into a fresh venv gives the same command as scripts/setup: the native
launcher (csrc/launcher.c) that starts Python with -I -S, the package importable as `ocirun`
with its bytecode, and a container that really runs. No step after the install."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipvenv") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(d)], check=True)
    r = subprocess.run([str(d / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(REPO)],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"pip install . failed:\n{r.stderr[-3000:]}")
    os.chmod(d.parent, 0o755)
    return d


def test_the_command_is_the_launcher(venv):
    with open(venv / "bin/ocirun", "rb") as f:
        assert f.read(4) == b"\x7fELF", "bin/ocirun is not the native launcher (a #! script loses -I -S)"
    r = subprocess.run([str(venv / "bin/ocirun"), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ocirun version "), r


def test_it_runs_python_isolated_without_site(venv, bundle, unique_id, tmp_path):
    """Through a symlink too, as /usr/local/bin/ocirun is: the venv's interpreter, with -I -S,
    seen on a live foreground `run`."""
    link = tmp_path / "ocirun"
    link.symlink_to(venv / "bin/ocirun")
    p = subprocess.Popen([str(link), "--root", str(tmp_path / "root"), "run", "--bundle",
                          str(bundle(["sleep", "30"])), unique_id], stdout=subprocess.DEVNULL)
    try:
        argv = []
        for _ in range(1000):
            argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
            if (tmp_path / "root" / unique_id / "state.json").exists():
                break
            time.sleep(0.005)
        assert argv[0] == str(venv / "bin/python3").encode() and argv[1] == b"-IS", argv
        assert argv[2].endswith(b"site-packages/ocirun/__main__.py"), argv
    finally:  # the container's end ends the run, which deletes it
        subprocess.run([str(link), "--root", str(tmp_path / "root"), "kill", unique_id, "KILL"])
        p.wait(timeout=30)


def test_bytecode_is_installed(venv):
    pkg = next(venv.glob("lib/python*/site-packages/ocirun"))
    missing = [f.name for f in pkg.glob("*.py") if f.name != "__main__.py"
               and not list((pkg / "__pycache__").glob(f"{f.stem}.cpython-*.pyc"))]
    assert not missing, f"no bytecode for {missing}: every start would compile them"


def test_a_container_runs(venv, bundle, unique_id, tmp_path):
    """The pip-installed command runs a real container (the test's busybox bundle)."""
    r = subprocess.run([str(venv / "bin/ocirun"), "--root", str(tmp_path / "root"), "run", "--bundle",
                        str(bundle(["sh", "-c", "echo inside; cat /proc/self/cgroup | head -1"])), unique_id],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("inside\n"), r


def test_import_ocirun(venv):
    r = subprocess.run([str(venv / "bin/python"), "-c", "import ocirun, ocirun.cli; print(ocirun.__version__)"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip(), r


def test_check_finds_the_installed_schema(venv, bundle):
    """`ocirun check` reads spec/config.schema.json from PREFIX/share/ocirun/spec."""
    assert (venv / "share/ocirun/spec/config.schema.json").exists()
    r = subprocess.run([str(venv / "bin/ocirun"), "check", "--bundle", str(bundle(["true"]))],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "", r
