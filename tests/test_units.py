"""Unit tests of the pure-Python pieces: protocol numbers, mount options, signals, JSON I/O."""
import os
import re

import pytest

from ocirun import kernel, mountopts, sync
from ocirun.errors import OciError
from ocirun.jsonio import dumps, loads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sync_numbers_match_the_c_header():
    with open(os.path.join(REPO, "csrc", "sync.h")) as f:
        c_enum = dict(re.findall(r"SYNC_(\w+) = (\d+),", f.read()))
    assert c_enum, "no enum found in csrc/sync.h"
    assert {name: int(v) for name, v in c_enum.items()} == {name: getattr(sync, name) for name in c_enum}


def test_op_kinds_match_the_c_header():
    from ocirun import plan

    with open(os.path.join(REPO, "csrc", "trampoline.h")) as f:
        c_enum = dict(re.findall(r"OCI_OP_(\w+) = (\d+),?", f.read()))
    assert {n: int(v) for n, v in c_enum.items()} == {n: getattr(plan, "OP_" + n) for n in c_enum}


@pytest.mark.parametrize("options,flags,prop,data", [
    (["ro", "nosuid"], kernel.MS_RDONLY | kernel.MS_NOSUID, 0, None),
    (["ro", "rw"], 0, 0, None),
    (["rbind", "rprivate"], kernel.MS_BIND | kernel.MS_REC, kernel.MS_PRIVATE | kernel.MS_REC, None),
    (["nodev", "mode=755", "size=1k"], kernel.MS_NODEV, 0, "mode=755,size=1k"),
    (["noatime", "strictatime", "nostrictatime"], kernel.MS_NOATIME, 0, None),
])
def test_mount_options(options, flags, prop, data):
    o = mountopts.parse(options)
    assert (o.flags, o.propagation, o.data) == (flags, prop, data)


def test_recursive_mount_options():
    o = mountopts.parse(["rro", "rnosuid", "rnoatime"])
    assert o.attr_set == kernel.MOUNT_ATTR_RDONLY | kernel.MOUNT_ATTR_NOSUID | kernel.MOUNT_ATTR_NOATIME
    assert o.attr_clr & kernel.MOUNT_ATTR__ATIME
    o = mountopts.parse(["rro", "rrw"])
    assert o.attr_set == 0 and o.attr_clr == kernel.MOUNT_ATTR_RDONLY


@pytest.mark.parametrize("options,idmap", [(["rbind", "idmap"], "idmap"), (["ridmap"], "ridmap"), (["bind"], "")])
def test_idmap_mount_options(options, idmap):
    o = mountopts.parse(options)
    assert (o.idmap, o.data) == (idmap, None)


@pytest.mark.parametrize("text,num", [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("term", 15), ("RTMIN+2", 36)])
def test_signal_names(text, num):
    assert kernel.parse_signal(text) == num


@pytest.mark.parametrize("text", ["FOO", "SIGFOO", "0", "65", "RTMIN+x", ""])
def test_bad_signals(text):
    with pytest.raises(ValueError):
        kernel.parse_signal(text)


def test_json_round_trip_and_errors():
    doc = {"a": [1, 2.5, None, True, False, "é\n"], "b": {}, "c": []}
    assert loads(dumps(doc), "x") == doc
    assert loads(dumps(doc, indent=2), "x") == doc
    with pytest.raises(OciError) as e:
        loads('{"a": [1,}', "cfg.json")
    assert e.value.where == "cfg.json" and "line 1" in e.value.message
    with pytest.raises(OciError):
        loads('{} x', "cfg.json")


@pytest.mark.parametrize("path", ["/", "/a/b", "/a//b/./c/", "/a/../../b", "a/b/..", "a/../..", "", ".", "..", "./a",
                                  "/proc/../proc/self", "a//b"])
def test_posixio_normpath_and_join_agree_with_os_path(path):
    """The create path's posix-only path helpers give what os.path gives (which it no longer imports)."""
    import os.path

    from ocirun import posixio

    assert posixio.normpath(path) == os.path.normpath(path)
    for first in ("/bundle", "bundle", "/bundle/", ""):
        assert posixio.join(first, path) == os.path.join(first, path)


def test_posixio_normpath_folds_a_double_leading_slash():
    """os.path keeps `//proc` (POSIX leaves two leading slashes open); mount destinations must
    not slip past the /proc checks that way."""
    from ocirun import posixio

    assert posixio.normpath("//proc/../proc/sys") == "/proc/sys"


def test_posixio_abspath_and_realpath(tmp_path, monkeypatch):
    import os

    from ocirun import posixio

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    monkeypatch.chdir(tmp_path)
    assert posixio.abspath("link/../x") == os.path.abspath("link/../x")
    assert posixio.realpath("link") == os.path.realpath("link") == str(tmp_path / "real")
    with pytest.raises(FileNotFoundError):
        posixio.realpath("missing")


def test_every_plan_fd_starts_unset():
    """A zeroed struct oci_plan would hand the children fd 0 as a fifo, a lock or a cgroup: every
    fd field of the header is in plan.FD_FIELDS, and a new Plan has each at -1."""
    from ocirun import plan
    from ocirun._trampoline import ffi

    with open(os.path.join(REPO, "csrc", "trampoline.h")) as f:
        header = f.read()
    body = header[header.index("struct oci_plan {"):]
    body = body[:body.index("\n};")]
    assert set(re.findall(r"\bint (\w+_fd);", body)) == set(plan.FD_FIELDS)
    p = plan.Plan(ffi)
    assert {name: getattr(p.c, name) for name in plan.FD_FIELDS} == {name: -1 for name in plan.FD_FIELDS}
    # and so does each operation's (a bind's detached source, an idmapped bind's user namespace)
    op_body = header[header.index("struct oci_op {"):]
    op_body = op_body[:op_body.index("\n};")]
    assert set(re.findall(r"\bint (\w+_fd);", op_body)) == set(plan.OP_FD_FIELDS)
    p.set_ops([plan.Op(plan.OP_MOUNT, "mounts[0]", "/mnt", source="/tmp", flags=kernel.MS_BIND)])
    assert {name: getattr(p.c.ops[0], name) for name in plan.OP_FD_FIELDS} == {name: -1 for name in plan.OP_FD_FIELDS}
