"""linux.netDevices (issue 15): a host interface moves into the container's network namespace,
renamed where asked, with its addresses, and comes back to the namespace it came from, under its
own name, at delete, even after the init has died; a create that can't move one moves back the
others and leaves nothing.

The interfaces are veth pairs in a network namespace each test makes (this kernel has no dummy
module), never the host's own; ocirun runs there through `nsenter --net=` (`ip netns exec`
would remount /sys). The leak guard checks that the namespace pins are unmounted.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ocitest_conftest import MARK, Runtime

ADDR4, ADDR6, PEER4 = "10.99.0.1/24", "fd00:99::1/64", "10.99.0.2"
_made = 0


def _ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns():
    """A network namespace holding vt0 (with ADDR4 and ADDR6, up) and its peer vt1 (PEER4)."""
    global _made
    _made += 1
    name = f"{MARK}-nd{_made}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        _ip(name, "link", "add", "vt0", "type", "veth", "peer", "name", "vt1")
        _ip(name, "addr", "add", ADDR4, "dev", "vt0")
        _ip(name, "-6", "addr", "add", ADDR6, "dev", "vt0", "nodad")
        _ip(name, "addr", "add", f"{PEER4}/24", "dev", "vt1")
        for dev in ("vt0", "vt1", "lo"):
            _ip(name, "link", "set", dev, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture
def rt_in(rt, netns, tmp_path):
    """The runtime under test, called from inside `netns` (same state root as rt)."""
    wrapper = tmp_path / "in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec nsenter --net=/run/netns/{netns} {rt.binary} "$@"\n')
    wrapper.chmod(0o755)
    (tmp_path / "ns").mkdir()
    return Runtime(str(wrapper), rt.state_root, tmp_path / "ns")


def _devices(devs, *, ping=False):
    def patch(cfg):
        cfg["linux"]["netDevices"] = devs
        if ping:  # busybox ping opens a raw socket
            for caps in cfg["process"]["capabilities"].values():
                caps.append("CAP_NET_RAW")
    return patch


def _vt0_home(ns: str) -> str:
    """vt0 is back in `ns`, up, with both addresses; returns `ip addr` of it."""
    shown = _ip(ns, "addr", "show", "dev", "vt0")
    assert ADDR4 in shown and ADDR6 in shown and "UP" in shown, shown
    assert "eth7" not in _ip(ns, "link")
    return shown


def test_interface_moves_in_renamed_with_its_address_and_back(rt, rt_in, bundle, new_id, netns):
    assert json.loads(rt("features").stdout)["linux"]["netDevices"] == {"enabled": True}
    script = f"ip addr show; ip link show vt0 && echo VT0-SEEN; ping -c 1 -W 5 {PEER4} >/dev/null && echo PING-OK"
    b = bundle(["sh", "-c", script], _devices({"vt0": {"name": "eth7"}}, ping=True))
    out = rt_in("run", "--bundle", b, new_id()).stdout
    assert "eth7" in out and f"inet {ADDR4}" in out and f"inet6 {ADDR6}" in out, out
    assert "VT0-SEEN" not in out
    assert "PING-OK" in out, "the moved interface carries no traffic"
    eth7 = next(line for line in out.splitlines() if ": eth7" in line)
    assert ",UP" in eth7 or "<UP" in eth7, eth7
    _vt0_home(netns)


def test_without_a_name_it_keeps_its_own(rt_in, bundle, new_id, netns):
    b = bundle(["ip", "addr", "show", "vt0"], _devices({"vt0": {}}))
    assert f"inet {ADDR4}" in rt_in("run", "--bundle", b, new_id()).stdout
    _vt0_home(netns)


def test_back_home_after_the_init_died_and_from_another_namespace(rt, rt_in, bundle, unique_id, netns):
    b = bundle(["sleep", "1000"], _devices({"vt0": {"name": "eth7"}}))
    rt_in("run", "--detach", "--bundle", b, unique_id)
    assert "vt0" not in _ip(netns, "link")
    os.kill(rt.state(unique_id)["pid"], 9)
    rt.wait_status(unique_id, "stopped")
    rt("delete", unique_id)  # from the test's own network namespace, not the interface's
    _vt0_home(netns)
    assert not Path(rt.state_root, unique_id).exists()


def test_a_missing_interface_fails_and_the_others_go_back(rt_in, bundle, new_id, netns):
    b = bundle(["true"], _devices({"vt0": {"name": "eth7"}, "nope0": {}}))
    rt_in.expect_error("run", "--bundle", b, new_id(), mentions=["linux.netDevices.nope0", "no interface"])
    _vt0_home(netns)


@pytest.mark.parametrize("devs, field", [
    ({"vt0": {"name": "a/b"}}, "linux.netDevices.vt0.name"),
    ({"vt0": {"name": "x" * 16}}, "linux.netDevices.vt0.name"),
    ({"bad name": {}}, "linux.netDevices.bad name"),
    ({"vt0": {"name": "eth0"}, "vt1": {"name": "eth0"}}, "linux.netDevices.vt1.name"),
])
def test_bad_names_are_refused(rt_in, bundle, new_id, netns, devs, field):
    b = bundle(["true"], _devices(devs))
    rt_in.expect_error("run", "--bundle", b, new_id(), mentions=[field])
    _vt0_home(netns)


def test_no_network_namespace_is_refused(rt_in, bundle, new_id, netns):
    def patch(cfg):
        cfg["linux"]["netDevices"] = {"vt0": {}}
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]

    rt_in.expect_error("run", "--bundle", bundle(["true"], patch), new_id(),
                       mentions=["linux.netDevices", "network namespace"])
    _vt0_home(netns)


def test_the_pins_are_gone_with_the_container(rt, rt_in, bundle, unique_id, netns):
    b = bundle(["sleep", "1000"], _devices({"vt0": {"name": "eth7"}}))
    rt_in("run", "--detach", "--bundle", b, unique_id)
    pins = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if unique_id in line]
    assert len(pins) == 2, pins  # the container's network namespace and the runtime's
    rt("delete", "--force", unique_id)
    _vt0_home(netns)
