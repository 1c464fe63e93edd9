"""process.apparmorProfile on a host with AppArmor on (the guest boots with it, in both its
boots): the profile is entered at the container's execve and at an exec'd process's, seen from
inside in /proc/self/attr/current and in what the profile denies; a profile that isn't loaded
is one line naming the field, and nothing is left."""
import subprocess

import pytest
from ocitest_conftest import MARK

PROFILE = f"{MARK}-no-tmp-writes"
POLICY = f"""
abi <abi/3.0>,
profile {PROFILE} flags=(attach_disconnected,mediate_deleted) {{
  file,
  capability,
  network,
  signal,
  mount,
  umount,
  pivot_root,
  unix,
  deny /tmp/** w,
}}
"""


def _enabled() -> bool:
    try:
        return open("/sys/module/apparmor/parameters/enabled").read().strip() == "Y"
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _enabled(), reason="AppArmor is off on this host")


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    path = tmp_path_factory.mktemp("apparmor") / "profile"
    path.write_text(POLICY)
    subprocess.run(["apparmor_parser", "-r", str(path)], check=True, capture_output=True)
    yield PROFILE
    subprocess.run(["apparmor_parser", "-R", str(path)], check=True, capture_output=True)


def test_profile_is_entered_at_execve(run_in, profile):
    r = run_in(["sh", "-c", "cat /proc/self/attr/current; echo x > /tmp/f && echo wrote || echo denied"],
               process={"apparmorProfile": profile})
    assert r.stdout.split("\n")[:2] == [f"{profile} (enforce)", "denied"]


def test_exec_takes_the_containers_profile_or_its_own(rt, bundle, unique_id, profile):
    b = bundle(["sleep", "1000"], process={"apparmorProfile": profile})
    rt("run", "--detach", "--bundle", b, unique_id)
    try:
        assert rt("exec", unique_id, "cat", "/proc/self/attr/current").stdout.strip() == f"{profile} (enforce)"
        own = rt("exec", "--apparmor", "unconfined", unique_id, "cat", "/proc/self/attr/current")
        assert own.stdout.strip() == "unconfined"
        # the init itself, seen from the host
        pid = rt.state(unique_id)["pid"]
        assert open(f"/proc/{pid}/attr/current").read().strip() == f"{profile} (enforce)"
    finally:
        rt("delete", "--force", unique_id)


def test_unconfined_and_none(run_in):
    for asked in ({"apparmorProfile": "unconfined"}, {}):
        r = run_in(["cat", "/proc/self/attr/current"], process=asked)
        assert r.stdout.strip() == "unconfined"


def test_profile_not_loaded_is_refused(rt, bundle, unique_id):
    b = bundle(["true"], process={"apparmorProfile": f"{MARK}-not-loaded"})
    rt.expect_error("run", "--bundle", b, unique_id, mentions=["process.apparmorProfile", "not loaded"])


def test_exec_profile_not_loaded_is_refused(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"]), unique_id)
    try:
        rt.expect_error("exec", "--apparmor", f"{MARK}-not-loaded", unique_id, "true",
                        mentions=["process.apparmorProfile", "not loaded"])
        assert rt("ps", unique_id).stdout.count("\n") == 2  # header and the init: no exec'd process left
    finally:
        rt("delete", "--force", unique_id)
