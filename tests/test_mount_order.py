"""The order of mounts in /proc/self/mountinfo: the config's, bind mounts included.

Kernels from 6.8 list a namespace's mounts by mount id, that is in the order they were made.
ocirun copies bind sources in stage 1, before any other mount, and replaces each copy with a
fresh one when it attaches it (csrc/trampoline.c, do_mount); rbind trees must keep their
submounts through that, whatever their propagation, and the host's source must keep its own.
"""
import os
import subprocess

import pytest

from test_rootfs import mountinfo



@pytest.fixture
def shared_source(tmp_path):
    """A host directory that is a shared mount (a peer group of its own, under a private parent)
    with a tmpfs submount: what made re-copied rbind trees lose their submounts. Unmounted after."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    made = []
    try:
        for argv in (["mount", "--bind", src, src], ["mount", "--make-private", src],
                     ["mount", "--make-shared", src], ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", src / "sub"]):
            subprocess.run(argv, check=True)
            if argv[1] in ("--bind", "-t"):
                made.append(argv[-1])
        (src / "sub" / "in-sub").write_text("sub\n")
        yield src
    finally:
        for path in reversed(made):
            subprocess.run(["umount", "-l", path], check=False)


def test_mountinfo_lists_mounts_in_config_order(run_in, shared_source):
    src = str(shared_source)
    tmpfs = lambda dest: {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}  # noqa: E731
    bind = lambda dest, *opts: {"destination": dest, "type": "bind", "source": src, "options": list(opts)}  # noqa: E731
    mounts = [tmpfs("/mnt/t1"), bind("/mnt/b-shared", "bind", "shared"), bind("/mnt/rb-rshared", "rbind", "rshared"),
              tmpfs("/mnt/t2"), bind("/mnt/rb-rslave", "rbind", "rslave"), bind("/mnt/rb-rprivate", "rbind", "rprivate"),
              bind("/mnt/rb-runbindable", "rbind", "runbindable"), bind("/mnt/rb", "rbind"), tmpfs("/mnt/t3")]
    r = run_in(["sh", "-c", "cat /proc/self/mountinfo; for d in /mnt/rb*; do cat $d/sub/in-sub; done"],
               lambda cfg: cfg["mounts"].extend(mounts), root={"readonly": False})
    order = [ln.split()[4] for ln in r.stdout.splitlines() if " - " in ln]
    expected = ["/proc"]
    for m in mounts:
        expected.append(m["destination"])
        if "rbind" in m["options"]:
            expected.append(m["destination"] + "/sub")
    seen = [mp for mp in order if mp in expected]
    assert seen == expected, "mounts out of config order"
    # every rbind kept its submount, whatever its propagation
    assert r.stdout.splitlines()[-5:] == ["sub"] * 5
    table = mountinfo(r.stdout)
    assert any(o.startswith("shared:") for o in table["/mnt/rb-rshared/sub"]["optional"])
    assert "unbindable" in table["/mnt/rb-runbindable/sub"]["optional"]
    # and the host's source kept its own
    assert (shared_source / "sub" / "in-sub").read_text() == "sub\n"
