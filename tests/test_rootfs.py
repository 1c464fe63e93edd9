"""The container's file system as seen from inside: mounts, read-only root, masked and read-only
paths, devices, and mount destinations that must stay inside the rootfs."""
import os

import pytest

MOUNTINFO = ["cat", "/proc/self/mountinfo"]


def mountinfo(text: str) -> dict:
    """/proc/PID/mountinfo -> {mount point: {opts, fstype, source, super, optional}} (topmost wins)."""
    table = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        if not right or len(f) < 6 or not f[0].isdigit():
            continue  # not a mountinfo line (the test printed other things too)
        fstype, source, sup = (right.split() + ["", "", ""])[:3]
        table[f[4]] = {"opts": set(f[5].split(",")), "optional": f[6:], "fstype": fstype,
                       "source": source, "super": set(sup.split(","))}
    return table


def test_mount_table(run_in):
    m = mountinfo(run_in(MOUNTINFO).stdout)
    assert "ro" in m["/"]["opts"]
    assert m["/proc"]["fstype"] == "proc"
    assert m["/dev"]["fstype"] == "tmpfs" and "nosuid" in m["/dev"]["opts"]
    assert m["/dev/pts"]["fstype"] == "devpts" and {"nosuid", "noexec"} <= m["/dev/pts"]["opts"]
    assert m["/dev/shm"]["fstype"] == "tmpfs" and {"nosuid", "nodev", "noexec"} <= m["/dev/shm"]["opts"]
    assert m["/dev/mqueue"]["fstype"] == "mqueue" and {"nosuid", "nodev", "noexec"} <= m["/dev/mqueue"]["opts"]
    assert m["/sys"]["fstype"] == "sysfs" and {"ro", "nosuid", "nodev", "noexec"} <= m["/sys"]["opts"]


def test_only_configured_mounts_are_visible(run_in, bundle):
    r = run_in(MOUNTINFO)
    cfg_dests = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
    masked_ro = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                 "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                 "/proc/scsi", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
    extra = {mp for mp in mountinfo(r.stdout)
             if mp not in cfg_dests | masked_ro and not mp.startswith("/sys/fs/cgroup/")}
    assert not extra, f"mounts nobody asked for: {extra}"


def test_bind_mounts_rw_and_ro(run_in, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "from-host").write_text("hello\n")
    mounts = [
        {"destination": "/data-rw", "type": "bind", "source": str(host), "options": ["rbind", "rw"]},
        {"destination": "/data-ro", "type": "bind", "source": str(host), "options": ["rbind", "ro"]},
    ]
    script = ("cat /data-rw/from-host; echo new > /data-rw/from-container && echo rw-ok; "
              "touch /data-ro/nope 2>/dev/null || echo ro-refused; cat /proc/self/mountinfo")
    cfg_mounts = lambda cfg: cfg["mounts"].extend(mounts)  # noqa: E731
    r = run_in(["sh", "-c", script], cfg_mounts)
    assert r.stdout.splitlines()[:3] == ["hello", "rw-ok", "ro-refused"]
    assert (host / "from-container").read_text() == "new\n"
    assert not (host / "nope").exists()
    m = mountinfo(r.stdout)
    assert "rw" in m["/data-rw"]["opts"] and "ro" in m["/data-ro"]["opts"]


def test_bind_mount_of_a_file_creates_the_destination(run_in, tmp_path):
    src = tmp_path / "greeting"
    src.write_text("hi from a file\n")
    r = run_in(["cat", "/etc/more/greeting"], lambda c: c["mounts"].append(
        {"destination": "/etc/more/greeting", "type": "bind", "source": str(src), "options": ["bind", "ro"]}))
    assert r.stdout == "hi from a file\n"


def test_mount_flags_nosuid_nodev_noexec(run_in):
    mnt = {"destination": "/mnt/flags", "type": "tmpfs", "source": "tmpfs",
           "options": ["nosuid", "nodev", "noexec", "noatime", "mode=1777", "size=1m"]}
    script = ("cp /bin/busybox /mnt/flags/bb; /mnt/flags/bb true 2>/dev/null && echo exec-ran || echo exec-refused; "
              "stat -c %a /mnt/flags; cat /proc/self/mountinfo")
    r = run_in(["sh", "-c", script], lambda c: c["mounts"].append(mnt), root={"readonly": False})
    lines = r.stdout.splitlines()
    assert lines[:2] == ["exec-refused", "1777"]
    m = mountinfo(r.stdout)["/mnt/flags"]
    assert m["fstype"] == "tmpfs"
    assert {"nosuid", "nodev", "noexec", "noatime"} <= m["opts"]
    assert "size=1024k" in m["super"]


def test_tmpcopyup_starts_the_tmpfs_with_what_the_destination_held(run_in):
    # podman --read-only sends tmpfs mounts with tmpcopyup for /tmp, /run and /var/tmp.
    mnt = {"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
           "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]}
    r = run_in(["sh", "-c", "head -1 /etc/passwd; stat -c '%a %u' /etc/passwd; touch /etc/new && echo writable; "
                            "cat /proc/self/mountinfo"], lambda c: c["mounts"].append(mnt))
    lines = r.stdout.splitlines()
    assert lines[:3] == ["root:x:0:0:root:/root:/bin/sh", "644 0", "writable"]
    assert mountinfo(r.stdout)["/etc"]["fstype"] == "tmpfs"


def test_mounts_apply_in_config_order(run_in):
    mounts = [{"destination": "/mnt/outer", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
              {"destination": "/mnt/outer/inner", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]}]
    r = run_in(["sh", "-c", "stat -c %a /mnt/outer /mnt/outer/inner"], lambda c: c["mounts"].extend(mounts))
    assert r.stdout.split() == ["755", "700"]


def test_readonly_root(run_in):
    r = run_in(["sh", "-c", "touch /x 2>/dev/null && echo wrote || echo refused; "
                "touch /tmp/x 2>/dev/null && echo wrote || echo refused; echo ok > /dev/shm/x && echo shm-ok"])
    assert r.stdout.split() == ["refused", "refused", "shm-ok"]


def test_writable_root(run_in, bundle, rt, unique_id):
    b = bundle(["touch", "/made-inside"], root={"readonly": False})
    rt("run", "--bundle", b, unique_id)
    assert (b / "rootfs/made-inside").exists()


def test_absolute_root_path(rt, bundle, unique_id):
    b = bundle(["echo", "absolute"])
    cfg_path = b / "config.json"
    import json
    cfg = json.loads(cfg_path.read_text())
    cfg["root"]["path"] = str(b / "rootfs")
    cfg_path.write_text(json.dumps(cfg))
    assert rt("run", "--bundle", b, unique_id).stdout == "absolute\n"


def test_relative_root_path_other_name(rt, bundle, unique_id):
    b = bundle(["echo", "renamed"], root={"path": "other-root"})
    (b / "rootfs").rename(b / "other-root")
    assert rt("run", "--bundle", b, unique_id).stdout == "renamed\n"


def test_masked_paths_are_unreadable(run_in, bundle, rt, unique_id):
    b = bundle(["sh", "-c", "for p in /proc/keys /proc/timer_list /proc/kcore /etc/secret; do "
                "echo \"$p:$(cat $p 2>/dev/null | head -c 100)\"; done; "
                "for d in /sys/firmware /etc/secretdir; do echo \"$d:$(ls -A $d 2>/dev/null)\"; done"],
               linux={"maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware",
                                      "/etc/secret", "/etc/secretdir"]})
    (b / "rootfs/etc/secret").write_text("classified\n")
    (b / "rootfs/etc/secretdir").mkdir()
    (b / "rootfs/etc/secretdir/inside").write_text("classified\n")
    out = rt("run", "--bundle", b, unique_id).stdout.splitlines()
    assert out == ["/proc/keys:", "/proc/timer_list:", "/proc/kcore:", "/etc/secret:",
                   "/sys/firmware:", "/etc/secretdir:"]
    # ...and they were worth masking: the host has something there
    assert open("/proc/keys").read() and os.listdir("/sys/firmware")


def test_readonly_paths(run_in, tmp_path):
    host = tmp_path / "data"
    host.mkdir()
    r = run_in(["sh", "-c", "touch /data/x 2>/dev/null && echo data-wrote || echo data-refused; "
                "touch /tmp/x 2>/dev/null && echo tmp-wrote || echo tmp-refused; "
                "touch /y && echo root-wrote; cat /proc/self/mountinfo"],
               lambda c: c["mounts"].append({"destination": "/data", "type": "bind", "source": str(host),
                                             "options": ["rbind", "rw"]}),
               root={"readonly": False}, linux={"readonlyPaths": ["/proc/sys", "/data", "/tmp"]})
    assert r.stdout.splitlines()[:3] == ["data-refused", "tmp-refused", "root-wrote"]
    m = mountinfo(r.stdout)
    assert "ro" in m["/proc/sys"]["opts"] and "ro" in m["/data"]["opts"] and "ro" in m["/tmp"]["opts"]
    assert not (host / "x").exists()


DEVICES = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7", "/dev/random": "1:8",
           "/dev/urandom": "1:9", "/dev/tty": "5:0"}


def test_default_devices(run_in):
    script = ("for d in " + " ".join(DEVICES) + "; do "
              "echo \"$d $(stat -c '%F' $d) $((0x$(stat -c %t $d))):$((0x$(stat -c %T $d)))\"; done; "
              "echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | od -An -tx1; "
              "echo x 2>/dev/null > /dev/full || echo full-refused")
    r = run_in(["sh", "-c", script])
    lines = r.stdout.splitlines()
    for (path, numbers), line in zip(DEVICES.items(), lines):
        assert line == f"{path} character special file {numbers}"
    assert lines[len(DEVICES):] == ["null-ok", " 00 00 00 00", "full-refused"]


def test_dev_symlinks(run_in):
    r = run_in(["sh", "-c", "for l in ptmx fd stdin stdout stderr; do echo \"$l $(readlink /dev/$l)\"; done"])
    assert r.stdout.splitlines() == ["ptmx pts/ptmx", "fd /proc/self/fd", "stdin /proc/self/fd/0",
                                     "stdout /proc/self/fd/1", "stderr /proc/self/fd/2"]


def test_linux_devices(run_in):
    devices = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 1000, "gid": 5},
               {"path": "/dev/sub/myfifo", "type": "p", "fileMode": 0o600}]
    r = run_in(["sh", "-c", "stat -c '%n %F %a %u %g' /dev/mynull /dev/sub/myfifo; "
                "echo \"$((0x$(stat -c %t /dev/mynull))):$((0x$(stat -c %T /dev/mynull)))\"; "
                "echo x > /dev/mynull && echo write-ok"],
               linux={"devices": devices})
    assert r.stdout.splitlines() == ["/dev/mynull character special file 666 1000 5",
                                     "/dev/sub/myfifo fifo 600 0 0", "1:3", "write-ok"]


@pytest.mark.parametrize("dangling", [False, True], ids=["target-in-rootfs", "dangling"])
@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_mount_destination_symlink_stays_inside_rootfs(rt, bundle, unique_id, tmp_path, kind, dangling):
    """/escape -> (a path that exists on the host); a mount at /escape/sub must resolve the link
    in the rootfs's scope and never create or mount anything on the host."""
    outside = tmp_path / "outside"
    outside.mkdir()
    b = bundle(MOUNTINFO,
               lambda c: c["mounts"].append({"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"}),
               root={"readonly": False})
    target = str(outside) if kind == "absolute" else "../" * 30 + str(outside).lstrip("/")
    os.symlink(target, b / "rootfs/escape")
    inside = str(outside) + "/sub"  # the link's target taken as a path inside the rootfs
    if not dangling:
        (b / "rootfs" / str(outside).lstrip("/")).mkdir(parents=True)
    r = rt("run", "--bundle", b, unique_id, check=False)
    assert not (outside / "sub").exists(), "a mount destination followed a symlink out of the rootfs"
    if dangling and r.returncode != 0:
        # Refusing to create directories through a dangling link is fine (runc creates them):
        # one clear error naming the mount.
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and ("/escape/sub" in lines[0] or "mounts[" in lines[0]), r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert inside in mountinfo(r.stdout)
    assert (b / "rootfs" / inside.lstrip("/")).is_dir()


def test_proc_shows_only_the_container(run_in):
    pids = [p for p in run_in(["ls", "/proc"]).stdout.split() if p.isdigit()]
    assert pids == ["1"]


def test_rootfs_propagation_private(run_in):
    m = mountinfo(run_in(MOUNTINFO, linux={"rootfsPropagation": "private"}).stdout)
    assert not any(o.startswith("shared:") for o in m["/"]["optional"])


def test_no_pivot(rt, bundle, unique_id):
    b = bundle(["sh", "-c", "ls /; cat /etc/passwd | head -1"])
    r = rt("run", "--no-pivot", "--bundle", b, unique_id)
    assert "bin" in r.stdout.split() and "root:x:0:0:root:/root:/bin/sh" in r.stdout
