"""Idmapped bind mounts (issue 15): `mounts[].uidMappings`/`gidMappings` and the options
`idmap`/`ridmap`, seen from inside the container.

The kernel's rule (mount_setattr(2), MOUNT_ATTR_IDMAP): an id on disk is read as an id inside the
mapping's user namespace (`containerID`) and shown as the matching `hostID`; a file made through
the mount lands on disk with the id mapped back. So with `0 100000 65536`:
- a container without a user namespace sees disk uid 0 as 100000, and its uid 100000 writes 0;
- a container whose own user namespace maps 0 to 100000 sees disk uid 0 as 0, and its root writes
  0 (the Kubernetes user-namespaced pod: the volume keeps the host's ids on disk).
"""
import json
import os
import subprocess

import pytest

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
USERNS = {
    "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")],
    "uidMappings": MAP, "gidMappings": MAP,
}


@pytest.fixture
def volume(tmp_path):
    """A directory with `by-root` (0:0 on disk) and `by-100000` (100000:100000)."""
    v = tmp_path / "vol"
    v.mkdir()
    for name, owner in (("by-root", 0), ("by-100000", 100000)):
        (v / name).write_text(name)
        os.chown(v / name, owner, owner)
    return v


def _mount(source, options=("bind",), maps=MAP, destination="/tmp/vol"):
    m = {"destination": destination, "type": "bind", "source": str(source), "options": list(options)}
    if maps is not None:
        m["uidMappings"] = m["gidMappings"] = maps
    return m


def _with_mounts(*mounts):
    def patch(cfg):
        cfg["mounts"] += list(mounts)
    return patch


def _owners(out: str) -> dict:
    """`stat -c '%n %u:%g'` lines -> {basename: "uid:gid"}."""
    return {os.path.basename(n): ids for n, ids in (line.split() for line in out.splitlines())}


STAT = "stat -c '%n %u:%g' /tmp/vol/by-root /tmp/vol/by-100000"


def test_mount_mappings_without_a_user_namespace(run_in, volume):
    """Disk 0 shows as 100000, disk 100000 is outside the mapping (the overflow id), and a file
    made by uid 100000 lands on disk as 0."""
    r = run_in(["sh", "-c", f"{STAT}; touch /tmp/vol/made && stat -c '%n %u:%g' /tmp/vol/made"],
               _with_mounts(_mount(volume)), process={"user": {"uid": 100000, "gid": 100000}})
    assert _owners(r.stdout) == {"by-root": "100000:100000", "by-100000": "65534:65534", "made": "100000:100000"}
    st = os.stat(volume / "made")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_uid_0_outside_the_mapping_cannot_write(run_in, volume):
    """The caller's own id must map through the mount: root of a container without a user
    namespace is not in `0 100000 65536` seen from the host side, so the kernel refuses."""
    r = run_in(["sh", "-c", "touch /tmp/vol/made"], _with_mounts(_mount(volume)), check=False)
    assert r.returncode != 0 and "Value too large" in r.stderr, r.stderr
    assert not (volume / "made").exists()


def test_mount_mappings_in_a_user_namespaced_container(run_in, volume):
    """The pod case: the container's root (host 100000) sees the volume with its disk ids and
    writes files owned by 0 on disk."""
    r = run_in(["sh", "-c", f"{STAT}; touch /tmp/vol/made && stat -c '%n %u:%g' /tmp/vol/made"],
               _with_mounts(_mount(volume)), linux=USERNS)
    assert _owners(r.stdout) == {"by-root": "0:0", "by-100000": "65534:65534", "made": "0:0"}
    st = os.stat(volume / "made")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_idmap_option_takes_the_containers_mappings(run_in, volume):
    """`idmap` with no mappings of its own uses the container's user namespace's, as runc does."""
    r = run_in(["sh", "-c", STAT], _with_mounts(_mount(volume, ("bind", "idmap"), maps=None)), linux=USERNS)
    assert _owners(r.stdout) == {"by-root": "0:0", "by-100000": "65534:65534"}


def test_without_idmap_the_user_namespace_sees_overflow_ids(run_in, volume):
    """The control for the two tests above: the same bind, not idmapped, shows disk 0 as the
    overflow id inside the user namespace."""
    r = run_in(["sh", "-c", STAT], _with_mounts(_mount(volume, maps=None)), linux=USERNS)
    assert _owners(r.stdout) == {"by-root": "65534:65534", "by-100000": "0:0"}


@pytest.fixture
def nested(tmp_path, volume):
    """volume/sub with another directory bound on it (private), holding `deep` owned by 0."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "deep").write_text("deep")
    sub = volume / "sub"
    sub.mkdir()
    subprocess.run(["mount", "--bind", "--make-private", str(other), str(sub)], check=True)
    try:
        yield volume
    finally:
        subprocess.run(["umount", str(sub)], check=True)


@pytest.mark.parametrize("option,deep", [("ridmap", "100000:100000"), ("idmap", "0:0")])
def test_ridmap_maps_every_mount_of_the_tree(run_in, nested, option, deep):
    """With rbind, `ridmap` idmaps the submount too; `idmap` only the top of the tree."""
    r = run_in(["sh", "-c", "stat -c '%n %u:%g' /tmp/vol/by-root /tmp/vol/sub/deep"],
               _with_mounts(_mount(nested, ("rbind", option))))
    assert _owners(r.stdout) == {"by-root": "100000:100000", "deep": deep}


def test_features_says_idmap_is_enabled(rt):
    f = json.loads(rt("features").stdout)
    assert f["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"idmap", "ridmap"} <= set(f["mountOptions"])


# --- bad input: one line naming the field, nothing left (the leak guard) ----------------------

def _last_mount(cfg_bundle):
    return f"mounts[{len(json.loads((cfg_bundle / 'config.json').read_text())['mounts']) - 1}]"


@pytest.mark.parametrize("mount,field,words", [
    ({"destination": "/tmp/vol", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
     "options", "only bind mounts"),
    (_mount("/tmp", ("bind", "idmap"), maps=None), "options", "needs uidMappings"),
    (_mount("/tmp", maps=[{"containerID": 0, "hostID": 100000, "size": 10},
                          {"containerID": 5, "hostID": 200000, "size": 10}]), "uidMappings", "uid_map"),
    (dict(_mount("/tmp"), gidMappings=[]), "gidMappings", "both uidMappings and gidMappings"),
    (_mount("/proc/sys", ("rbind", "ridmap")), "", "idmapped mount"),
])
def test_bad_idmapped_mounts_are_refused(rt, bundle, unique_id, mount, field, words):
    b = bundle(["true"], _with_mounts(mount))
    where = _last_mount(b) + (f".{field}" if field else "")
    line = rt.expect_error("create", "--bundle", b, unique_id, mentions=[where, words])
    assert line
    r = rt("state", unique_id, check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr
