"""linux.netDevices: host interfaces moved into the container's network namespace at create,
and back, with their host names, at delete.

What moves with an interface is what the spec asks to keep: its permanent addresses of global
scope (the kernel drops every address when a device changes namespace); then it is set up.
Routes are not carried: the spec doesn't ask for them, and runc doesn't either.

Both network namespaces, the container's and the runtime's, are pinned by bind mounts in the
state directory (as `ip netns add` does). The interfaces then go back where they came from
whoever deletes the container and from wherever, even after the init has died: without the
pin, a dying namespace destroys virtual interfaces (veth) and hands physical ones to the host's
first namespace, not to the one they came from.

pyroute2 is imported only here, and only for a config with netDevices (about 110 ms).
"""
import posix

from . import kernel
from .errors import ConfigError, OciError
from .posixio import join

PIN = "netns"  # in the state directory: the container's network namespace
HOME_PIN = "netns-runtime"  # and the one the interfaces came from
IFNAMSIZ = 16
MNT_DETACH = 2
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


def convert(doc: dict | None, has_netns: bool) -> dict[str, str]:
    """{host name: name in the container}, checked as the kernel's dev_valid_name would."""
    if not doc:
        return {}
    if not has_netns:
        raise ConfigError("moving interfaces needs a network namespace (linux.namespaces)", "linux.netDevices")
    out: dict[str, str] = {}
    for host_name, dev in doc.items():
        name = (dev or {}).get("name") or host_name
        for field, value in ((f"linux.netDevices.{host_name}", host_name),
                             (f"linux.netDevices.{host_name}.name", name)):
            if not _valid_name(value):
                raise ConfigError(f"{value!r} is not a valid interface name", field)
        if name in out.values():
            raise ConfigError(f"{name!r} is the name of another interface in the container",
                              f"linux.netDevices.{host_name}.name")
        out[host_name] = name
    return out


def _valid_name(name: str) -> bool:
    return (0 < len(name.encode()) < IFNAMSIZ and name not in (".", "..")
            and not any(ch in "/:" or ch.isspace() for ch in name))


def move_in(devices: dict[str, str], pid: int, state_dir: str, moved: dict[str, str]) -> None:
    """Pin the init's network namespace and ours, then move each interface there, renamed;
    `moved` gets each one that made it, for a failed create to bring back."""
    pin = join(state_dir, PIN)
    _pin("/proc/self/ns/net", join(state_dir, HOME_PIN))
    _pin(f"/proc/{pid}/ns/net", pin)
    from pyroute2 import IPRoute

    with IPRoute() as host, _route_in(pin) as inside:
        fd = posix.open(pin, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            for host_name, name in devices.items():
                where = f"linux.netDevices.{host_name}"
                idx = host.link_lookup(ifname=host_name)
                if not idx:
                    raise ConfigError(f"no interface {host_name!r} in the runtime's network namespace", where)
                _move(host, idx[0], fd, inside, name, where)
                moved[host_name] = name
        finally:
            posix.close(fd)


def move_out(record: dict, state_dir: str) -> list[str]:
    """Bring the interfaces back into the namespace they came from under their host names, then
    unpin. Returns a warning for each interface that is gone (a veth whose peer was deleted)."""
    pin, home = join(state_dir, PIN), join(state_dir, HOME_PIN)
    devices = record.get("net_devices") or {}
    warnings: list[str] = []
    if devices and _pinned(pin, state_dir) and _pinned(home, state_dir):
        with _route_in(pin) as inside, _route_in(home) as host:
            fd = posix.open(home, posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                for host_name, name in devices.items():
                    idx = inside.link_lookup(ifname=name)
                    if not idx:
                        warnings.append(f"linux.netDevices.{host_name}: {name!r} is gone from the container")
                        continue
                    _move(inside, idx[0], fd, host, host_name, f"linux.netDevices.{host_name}")
            finally:
                posix.close(fd)
    unpin(state_dir)
    return warnings


def _route_in(netns_path: str):
    """An IPRoute whose netlink socket is made in the network namespace at netns_path: this
    thread enters it for the socket() call and comes back (a socket stays in the namespace it
    was made in). pyroute2's own netns= forks a helper for each socket, which on a loaded
    machine missed its 2 s answer and retried for up to 10 s."""
    import socket

    from pyroute2 import IPRoute

    setns = kernel.libc().setns
    own = posix.open("/proc/thread-self/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        target = posix.open(netns_path, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            if setns(target, kernel.CLONE_NEWNET) != 0:
                raise OciError("enter the pinned network namespace", netns_path)
        finally:
            posix.close(target)
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        finally:
            if setns(own, kernel.CLONE_NEWNET) != 0:
                raise OciError("return to the runtime's network namespace", "/proc/thread-self/ns/net")
    finally:
        posix.close(own)
    return IPRoute(fileno=sock.detach())


def _move(src, idx: int, dst_fd: int, dst, name: str, where: str) -> None:
    """Move link idx from src's namespace to dst's (dst_fd) as `name`, with its permanent
    global addresses, and set it up there."""
    from pyroute2.netlink.exceptions import NetlinkError

    addrs = []
    for a in src.get_addr(index=idx):
        flags = a.get_attr("IFA_FLAGS") or a["flags"]
        if a["scope"] == RT_SCOPE_UNIVERSE and flags & IFA_F_PERMANENT:
            addrs.append((a.get_attr("IFA_ADDRESS"), a["prefixlen"]))
    try:
        src.link("set", index=idx, net_ns_fd=dst_fd, ifname=name)
        new = dst.link_lookup(ifname=name)[0]
        for address, prefixlen in addrs:
            dst.addr("add", index=new, address=address, prefixlen=prefixlen)
        dst.link("set", index=new, state="up")
    except NetlinkError as e:
        raise OciError(f"move to {name!r}: {posix.strerror(e.code)}", where) from None


def _pin(ns: str, pin: str) -> None:
    import ctypes

    posix.close(posix.open(pin, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o600))
    if kernel.libc().mount(ns.encode(), pin.encode(), None, 4096, None) != 0:  # MS_BIND
        err = ctypes.get_errno()
        posix.unlink(pin)
        raise OciError(f"pin the network namespace: {posix.strerror(err)}", pin)


def _pinned(pin: str, state_dir: str) -> bool:
    try:
        return posix.stat(pin).st_dev != posix.stat(state_dir).st_dev
    except OSError:
        return False


def unpin(state_dir: str) -> None:
    """Undo the pins; nothing to do where there are none."""
    for pin in (join(state_dir, PIN), join(state_dir, HOME_PIN)):
        if _pinned(pin, state_dir):
            kernel.libc().umount2(pin.encode(), MNT_DETACH)
        try:
            posix.unlink(pin)
        except FileNotFoundError:
            pass
