"""CVE-2025-52565 class: the /dev/console bind mount redirected.

With `terminal: true`, runc bind-mounted the container's pty (by its /dev/pts/N path) onto
/dev/console. An attacker controlling the container's /dev (a shared volume there, or a race)
could make the path runc mounted from, or /dev/console itself, a symlink, so that a procfs file
such as /proc/sysrq-trigger got bound where the container could write it, past maskedPaths and
readonlyPaths.

ocirun takes the pty slave from the master (TIOCGPTPEER, csrc/trampoline.c: open_pty), so the
mount source is an fd and never a path; the /dev/console target is created or opened inside the
rootfs (mkpath_in_root, O_CREAT|O_EXCL|O_NOFOLLOW for a new file) and mounted on through its fd
(bind_console). A symlinked /dev/console can at most have the pty cover some file of the
container's own rootfs.

The attack here: the victim's /dev is a volume V where `console` is a symlink to a procfs file,
to a host path, to a file of the image, or a directory, or a plain file; `terminal: true` with a
--console-socket. Asserted: the container starts with /dev/console being its own pty (major 136,
minor the master's pty number) and `tty` naming it, or `create` fails cleanly; the procfs stays
masked/read-only; the host's decoy, the image's files and the host's sysctls are unchanged.
"""
import fcntl
import json
import os
import struct

import pytest

from escape_kit import (ConsoleSocket, Snapshot, default_mounts, bind, host_dir, one_error_line,
                        procfs_exposure, read_until, remove_host_dir)

TIOCGPTN = 0x80045430
PROBE = "stat -L -c 'console=%t:%T' /dev/console; echo tty=$(tty); echo END; sleep 10"
VARIANTS = ["default-dev", "symlink-proc-file", "symlink-host-path", "symlink-image-file", "regular-file",
            "directory", "missing"]


def pty_number(master: int) -> int:
    return struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]


@pytest.mark.parametrize("console", VARIANTS)
def test_dev_console_is_the_pty(rt, bundle, unique_id, console):
    vol, decoy = host_dir("dev-vol"), host_dir("decoy")
    cs = ConsoleSocket()
    master = None
    try:
        (decoy / "file").write_text("host only\n")
        proc_file = "/proc/sysrq-trigger" if os.path.exists("/proc/sysrq-trigger") else "/proc/sys/kernel/core_pattern"
        if console == "default-dev":
            mounts = default_mounts()
        else:
            mounts = [m if m["destination"] != "/dev" else bind(vol, "/dev", "rw") for m in default_mounts()]
            os.symlink("pts/ptmx", vol / "ptmx")
            os.mknod(vol / "null", 0o20666, os.makedev(1, 3))
            target = {"symlink-proc-file": proc_file, "symlink-host-path": str(decoy / "file"),
                      "symlink-image-file": "/etc/passwd"}.get(console)
            if target:
                os.symlink(target, vol / "console")
            elif console == "regular-file":
                (vol / "console").write_text("attacker's console\n")
            elif console == "directory":
                (vol / "console").mkdir()
        b = bundle(["sh", "-c", PROBE], mounts=mounts, process={"terminal": True})
        cfg = json.loads((b / "config.json").read_text())
        host = Snapshot(decoy, b / "rootfs")
        r = rt("run", "--detach", "--console-socket", cs.path, "--bundle", b, unique_id, check=False)
        if r.returncode:
            line = one_error_line(r)
            assert "console" in line or "terminal" in line, f"the error does not name the console: {line}"
            print(f"refused: {line}")
            host.assert_unchanged()
            return
        try:
            master = cs.receive()
            out = read_until(master, b"END").decode(errors="replace")
            n = pty_number(master)
            pid = rt.state(unique_id)["pid"]
            _, problems = procfs_exposure(pid, cfg["linux"]["maskedPaths"], cfg["linux"]["readonlyPaths"])
        finally:
            rt("delete", "--force", unique_id)
        assert f"console=88:{n:x}" in out, f"/dev/console is not the pty /dev/pts/{n} (136:{n}): {out!r}"
        assert f"tty=/dev/pts/{n}" in out, f"the terminal is not /dev/pts/{n}: {out!r}"
        assert not problems, "\n".join(problems)
        host.assert_unchanged()
        print(f"ran: {out!r}")
    finally:
        if master is not None:
            os.close(master)
        cs.close()
        remove_host_dir(vol)
        remove_host_dir(decoy)
