"""CVE-2022-29162 class: inheritable capabilities handed to the container's processes.

`runc spec` wrote the default capabilities into process.capabilities.inheritable as well, and
runc set the inheritable set of every container process from it. Inheritable capabilities
survive execve: a non-root user in the container executing a program with file-inheritable
capabilities (setcap cap_x+ei) gained them (new permitted = inheritable & file inheritable),
and ambient capabilities could be raised from them. runc 1.1.2 dropped inheritable from the
default spec and stopped granting it implicitly (an atypical set is the caller's explicit choice).

ocirun's default spec (ocirun/default_spec.py) has no inheritable set; the trampoline
(csrc/trampoline.c: set_credentials) always sets all of the process's sets with capset(2),
inheritable = exactly the config's (empty here, whatever the caller had), clears the ambient
set, and raises an ambient capability only when it is also inheritable (as runc does; none here).

The attack here: the ocirun caller itself has a full inheritable set (it would leak through if
ocirun kept it); the image has a program with every capability in its file-inheritable set and
the effective bit (and an empty file-permitted set: it may only keep what it inherits). It is
run as the init and through `exec`, as root and as an unprivileged user, with noNewPrivileges on
and off. Asserted: CapInh and CapAmb are 0 for every process, an unprivileged user's program
gains nothing (CapPrm, CapEff 0) and really can't bind port 80 (CAP_NET_BIND_SERVICE, one of the
defaults).
"""
import ctypes
import json
import os
import struct
import time

import pytest

from escape_kit import install_kit

VFS_CAP_REVISION_2, VFS_CAP_FLAGS_EFFECTIVE = 0x02000000, 0x000001


def parse(out: str) -> dict:
    d = {}
    for ln in out.splitlines():
        if ":" in ln:
            k, v = ln.split(":", 1)
            d[k.strip()] = v.strip()
        elif ln.startswith("BIND80 "):
            d["BIND80"] = ln.split(" ", 1)[1]
    return d


def give_file_inheritable_caps(path) -> None:
    """setcap all+ei (file permitted empty): the program keeps only what it inherits."""
    data = struct.pack("<IIIII", VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, 0, 0xFFFFFFFF, 0, 0xFFFFFFFF)
    try:
        os.setxattr(path, "security.capability", data)
    except OSError as e:
        pytest.skip(f"cannot set file capabilities on {path}: {e.strerror}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@pytest.fixture
def caller_with_inheritable_caps():
    """The test process (and so the ocirun it calls) gets its permitted set as inheritable."""
    libc = ctypes.CDLL(None, use_errno=True)
    hdr, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        pytest.skip("capget failed")
    saved = [d.inheritable for d in data]
    for d in data:
        d.inheritable = d.permitted
    if libc.capset(ctypes.byref(hdr), data) != 0:
        pytest.skip(f"capset failed: {os.strerror(ctypes.get_errno())}")
    try:
        yield
    finally:
        for d, s in zip(data, saved):
            d.inheritable = s
        libc.capset(ctypes.byref(hdr), data)


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "newPrivileges"])
def test_no_inheritable_caps_for_init_and_exec(rt, bundle, unique_id, caller_with_inheritable_caps, nnp):
    b = bundle(["sh", "-c", "/kit caps; exec sleep 1000"],
               process={"noNewPrivileges": nnp, "user": {"uid": 1000, "gid": 1000}})
    cfg = json.loads((b / "config.json").read_text())
    assert "inheritable" not in cfg["process"]["capabilities"], "the default spec asks for inheritable caps"
    install_kit(b / "rootfs")
    give_file_inheritable_caps(b / "rootfs/kit")
    with open("/proc/self/status") as f:
        assert "CapInh:\t0000000000000000" not in f.read(), "the caller's inheritable set is not set up"
    rt("run", "--detach", "--bundle", b, unique_id)
    try:
        deadline = time.monotonic() + 10
        while "BIND80" not in rt.out(unique_id) and time.monotonic() < deadline:
            time.sleep(0.01)
        runs = {"init as uid 1000": parse(rt.out(unique_id))}
        for who, user in (("exec as uid 1000", ["--user", "1000:1000"]), ("exec as root", ["--user", "0:0"])):
            runs[who] = parse(rt("exec", *user, unique_id, "/kit", "caps").stdout)
        pid = rt.state(unique_id)["pid"]
        with open(f"/proc/{pid}/status") as f:
            runs["init's sh (host view)"] = parse(f.read())
    finally:
        rt("delete", "--force", unique_id)
    bad = []
    for who, caps in runs.items():
        if caps.get("CapInh") != "0000000000000000" or caps.get("CapAmb") != "0000000000000000":
            bad.append(f"{who}: CapInh {caps.get('CapInh')} CapAmb {caps.get('CapAmb')}")
        if "1000" in who and (caps.get("CapPrm") != "0000000000000000" or caps.get("CapEff") != "0000000000000000"):
            bad.append(f"{who}: a program with file-inheritable caps gained CapPrm {caps.get('CapPrm')} "
                       f"CapEff {caps.get('CapEff')}")
        if "1000" in who and "(host view)" not in who and caps.get("BIND80") != "Permission denied":
            bad.append(f"{who}: binding port 80 as an unprivileged user: {caps.get('BIND80')}")
    assert not bad, "\n".join(bad) + f"\n{runs}"
