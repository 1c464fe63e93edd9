"""`ocirun features`: what this build supports on this host (features.md), found out, not assumed."""
import os

from . import __version__, attrs, cgroups, kernel, mountopts, rootless
from .config import HOOK_PHASES


def features() -> dict:
    found = cgroups.hierarchies()
    versions = {h.version for h in found}
    v1_controllers = set().union(*(h.controllers for h in found if h.version == 1))
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": list(HOOK_PHASES),
        "mountOptions": sorted({*mountopts.FLAGS, *mountopts.PROPAGATION, *mountopts.RECURSIVE, *mountopts.IDMAP}),
        "linux": {
            "namespaces": [t for t, (_, name) in kernel.NAMESPACES.items() if os.path.exists(f"/proc/self/ns/{name}")],
            "capabilities": list(kernel.CAPABILITIES[: kernel.last_cap() + 1]),
            "cgroup": {
                "v1": 1 in versions,
                "v2": 2 in versions,
                "systemd": True,
                "systemdUser": False,
                "rdma": "rdma" in v1_controllers or _v2_has("rdma", found),
            },
            "seccomp": _seccomp(),
            "apparmor": {"enabled": attrs.apparmor_enabled()},
            "selinux": {"enabled": attrs.selinux_enabled()},
            "intelRdt": {"enabled": _resctrl_mounted()},
            "mountExtensions": {"idmap": {"enabled": True}},  # MOUNT_ATTR_IDMAP: kernel 5.12
            "netDevices": {"enabled": _importable("pyroute2")},  # ocirun/netdevices.py
        },
        "annotations": {
            "io.github.ocirun.version": __version__,
            # rootless.py: own-id maps always; wider ones only through Debian's uidmap helpers
            "io.github.ocirun.rootless.enabled": "true",
            "io.github.ocirun.rootless.idmapHelpers": str(all(map(rootless.helper_path, rootless.HELPERS.values()))).lower(),
            "io.github.ocirun.checkpoint.enabled": "false",  # no CRIU support yet
        },
    }


def _v2_has(controller: str, found) -> bool:
    for h in found:
        if h.version == 2:
            try:
                with open(f"{h.mountpoint}/cgroup.controllers") as f:
                    return controller in f.read().split()
            except OSError:
                return False
    return False


def _seccomp() -> dict:
    try:
        from .seccomp import features as seccomp_features
    except ImportError:  # built without libseccomp
        return {"enabled": False}
    return seccomp_features()


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _resctrl_mounted() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" - resctrl " in line for line in f)
