"""podman 4.3 (through conmon) with `--runtime ocirun`: what a user sees.

Each test drives the podman CLI exactly as a user would (with the session's private storage and
configuration, see conftest.py) and checks its output and exit codes, or what the container sees
from inside.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from integ_support import Pty, cgroup_dirs, wait_for

pytestmark = pytest.mark.usefixtures("podman")


# --- helpers -------------------------------------------------------------------------------

def status(pm, name) -> str:
    return pm.inspect(name, "{{.State.Status}}")


def run_d(pm, *args, name=None) -> str:
    """`podman run -d`; the container's name."""
    name = name or pm.name()
    r = pm("run", "-d", "--name", name, *args)
    assert re.fullmatch(r"[0-9a-f]{64}", r.stdout.strip()), r.stdout
    return name


LOOP = "trap 'exit 0' TERM; {pre} while :; do sleep 0.1; done"


def looping(pm, pre="", *opts, name=None) -> str:
    """A container that runs until SIGTERM (then exits 0) after running `pre`."""
    return run_d(pm, *opts, pm.image, "sh", "-c", LOOP.format(pre=pre), name=name)


def container_cgroup(pm, name, controller) -> Path:
    cid = pm.inspect(name, "{{.Id}}")
    hits = [p for p in Path(f"/sys/fs/cgroup/{controller}").glob(f"**/*{cid}*") if p.is_dir()]
    assert hits, f"no {controller} cgroup for {cid}"
    return hits[0]


# --- podman run --rm: output and exit codes ------------------------------------------------

def test_run_rm_output_and_exit_codes(podman):
    r = podman("run", "--rm", podman.image, "echo", "hello from ocirun")
    assert r.stdout == "hello from ocirun\n"

    r = podman("run", "--rm", podman.image, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr

    r = podman("run", "--rm", podman.image, "sh", "-c", "exit 255", check=False)
    assert r.returncode == 255, r.stderr

    r = podman("run", "--rm", "-i", podman.image, "cat", input="line one\nline two\n")
    assert r.stdout == "line one\nline two\n"

    # No container left behind by --rm.
    assert podman("ps", "--all", "--quiet").stdout.strip() == ""


def test_run_missing_command_is_127(podman):
    r = podman("run", "--rm", podman.image, "/no/such/program", check=False)
    assert r.returncode == 127, f"exit {r.returncode}: {r.stderr}"
    assert re.search(r"no such file or directory|not found", r.stderr, re.I), r.stderr


def test_run_not_executable_is_126(podman):
    r = podman("run", "--rm", podman.image, "/etc/passwd", check=False)
    assert r.returncode == 126, f"exit {r.returncode}: {r.stderr}"
    assert re.search(r"permission denied", r.stderr, re.I), r.stderr


# --- -d, ps, logs, stop, rm ---------------------------------------------------------------

def test_detached_ps_logs_stop_rm(podman):
    name = looping(podman, "echo started; echo to-stderr >&2;")
    assert status(podman, name) == "running"
    ps = podman("ps", "--filter", f"name={name}", "--format", "{{.Names}} {{.Status}}").stdout
    assert re.search(rf"^{name} Up ", ps, re.M), ps

    wait_for(lambda: "started" in podman("logs", name).stdout, what="the container's output in logs")
    logs = podman("logs", name)
    assert logs.stdout == "started\n"
    assert logs.stderr == "to-stderr\n"

    t0 = time.monotonic()
    podman("stop", "--time", "10", name)
    assert time.monotonic() - t0 < 8, "stop waited for the timeout: SIGTERM not delivered?"
    assert status(podman, name) == "exited"
    assert podman.inspect(name, "{{.State.ExitCode}}") == "0"
    assert name not in podman("ps", "--format", "{{.Names}}").stdout
    ps = podman("ps", "--all", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
    assert ps.startswith("Exited (0)"), ps

    podman("rm", name)
    assert podman("ps", "--all", "--quiet").stdout.strip() == ""
    r = podman("inspect", name, check=False)
    assert r.returncode != 0 and "no such object" in r.stderr.lower(), r.stderr


def test_stop_escalates_to_kill(podman):
    # sleep as pid 1 has no SIGTERM handler, so the kernel ignores SIGTERM: podman kills it.
    name = run_d(podman, podman.image, "sleep", "1000")
    t0 = time.monotonic()
    podman("stop", "--time", "1", name)
    assert time.monotonic() - t0 < 15
    assert status(podman, name) == "exited"
    assert podman.inspect(name, "{{.State.ExitCode}}") == "137"


# --- exec ----------------------------------------------------------------------------------

def test_exec(podman):
    name = looping(podman, "", "--hostname", "exec-host")
    assert podman("exec", name, "hostname").stdout == "exec-host\n"
    r = podman("exec", name, "sh", "-c", "echo out; echo err >&2; exit 5", check=False)
    assert (r.returncode, r.stdout) == (5, "out\n"), r.stderr
    assert "err" in r.stderr
    r = podman("exec", "-i", name, "cat", input="piped in\n")
    assert r.stdout == "piped in\n"
    r = podman("exec", "-e", "X=from-exec", "-w", "/tmp", "--user", "1000:1000", name,
               "sh", "-c", 'echo "$X $(pwd) $(id -u):$(id -g)"')
    assert r.stdout == "from-exec /tmp 1000:1000\n"
    # The exec'd process is in the container: same pid namespace (sees pid 1, the sh loop).
    r = podman("exec", name, "cat", "/proc/1/cmdline")
    assert "trap" in r.stdout.replace("\0", " ")
    r = podman("exec", name, "/no/such/program", check=False)
    assert r.returncode == 127, f"exit {r.returncode}: {r.stderr}"
    # Still running after all that.
    assert status(podman, name) == "running"


def test_exec_tty(podman):
    name = looping(podman)
    r = podman("exec", "-t", name, "sh", "-c", "tty; stty size; echo done")
    out = r.stdout.replace("\r\n", "\n")
    assert re.match(r"/dev/pts/\d+\n", out), out
    assert out.endswith("done\n")
    # Without -t: no terminal.
    r = podman("exec", name, "tty", check=False)
    assert r.stdout.strip() == "not a tty" and r.returncode == 1


def test_exec_it_real_terminal(podman):
    name = looping(podman)
    t = Pty(podman.argv("exec", "-it", name, "sh"), podman.env, rows=40, cols=120)
    try:
        t.send("stty size; tty; echo $((6*7))\n")
        t.expect(r"40 120")
        t.expect(r"/dev/pts/\d+")
        t.expect(r"42")
        t.send("exit 9\n")
        assert t.wait() == 9
    finally:
        t.kill()


# --- -it with a real terminal --------------------------------------------------------------

def test_run_it_real_terminal(podman):
    t = Pty(podman.argv("run", "-it", "--rm", podman.image, "sh"), podman.env, rows=33, cols=101)
    try:
        t.send("stty size; tty; echo $((6*7)); test -t 0 && echo stdin-is-tty\n")
        t.expect(r"33 101")
        t.expect(r"/dev/(pts/\d+|console)")
        t.expect(r"42")
        t.expect(r"stdin-is-tty")
        # ^C reaches the shell through the terminal (not podman): the loop stops, the shell stays.
        t.send("sleep 30; echo after-sleep\n")
        time.sleep(0.5)
        t.send("\x03")
        t.send("echo alive\n")
        t.expect(r"alive")
        t.send("exit 7\n")
        assert t.wait() == 7
    finally:
        t.kill()


# --- --user --------------------------------------------------------------------------------

def test_user(podman):
    r = podman("run", "--rm", "--user", "1000:1000", podman.image, "id")
    if r.stdout == "" and r.stderr == "":
        # Seen once in ~20 runs (CI, 2026-12-04): exit 0 and no output at all, podman 4.3's attach
        # losing a fast container's stdout; the container's own failure would say something.
        r = podman("run", "--rm", "--user", "1000:1000", podman.image, "id")
    assert r.stdout.startswith("uid=1000(user) gid=1000(user)"), r.stdout
    r = podman("run", "--rm", "--user", "nobody", podman.image, "id", "-u")
    assert r.stdout == "65534\n"
    r = podman("run", "--rm", "--user", "1000", "--group-add", "5", podman.image, "id", "-G")
    assert "5" in r.stdout.split(), r.stdout
    r = podman("run", "--rm", "--user", "1000:1000", podman.image, "sh", "-c", "touch /root/x", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr


# --- -v bind mounts ------------------------------------------------------------------------

def test_volume_rw_and_ro(podman, tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    (d / "from-host").write_text("host data\n")
    r = podman("run", "--rm", "-v", f"{d}:/data", podman.image,
               "sh", "-c", "cat /data/from-host; echo container data > /data/from-container")
    assert r.stdout == "host data\n"
    assert (d / "from-container").read_text() == "container data\n"

    r = podman("run", "--rm", "-v", f"{d}:/data:ro", podman.image,
               "sh", "-c", "cat /data/from-host; touch /data/nope", check=False)
    assert r.stdout == "host data\n"
    assert r.returncode == 1 and "Read-only file system" in r.stderr, r.stderr
    assert not (d / "nope").exists()


# --- --read-only ---------------------------------------------------------------------------

def test_read_only(podman):
    r = podman("run", "--rm", "--read-only", podman.image, "sh", "-c",
               "touch /x 2>&1; echo rc=$?; touch /tmp/ok && echo tmp-writable; grep ' / ' /proc/mounts")
    assert "Read-only file system" in r.stdout and "rc=1" in r.stdout, r.stdout
    assert "tmp-writable" in r.stdout
    root_line = [ln for ln in r.stdout.splitlines() if " / " in ln][-1]
    assert " ro," in root_line or " ro " in root_line, root_line


# --- resources seen inside -----------------------------------------------------------------

def _cgroup_file(host, controller, v1_file, v2_file):
    if not host.cgroup2_only and controller in host.v1:
        return f"/sys/fs/cgroup/{controller}/{v1_file}"
    return f"/sys/fs/cgroup/{v2_file}"


def test_memory_limit(podman, host):
    f = _cgroup_file(host, "memory", "memory.limit_in_bytes", "memory.max")
    r = podman("run", "--rm", "--memory", "64m", podman.image, "cat", f)
    assert r.stdout.strip() == str(64 * 1024 * 1024)


def test_pids_limit(podman, host):
    f = _cgroup_file(host, "pids", "pids.max", "pids.max")
    r = podman("run", "--rm", "--pids-limit", "50", podman.image, "cat", f)
    assert r.stdout.strip() == "50"
    # And it holds: the 51st process can't be made (the shell and 49 sleeps fit, then fork fails).
    r = podman("run", "--rm", "--pids-limit", "10", podman.image, "sh", "-c",
               "for i in $(seq 20); do sleep 5 & done 2>&1; wait", check=False, timeout=60)
    assert re.search(r"can't fork|Resource temporarily unavailable|fork", r.stdout + r.stderr, re.I), \
        r.stdout + r.stderr


def test_cpus(podman, host):
    if not host.cgroup2_only and "cpu" in host.v1:
        r = podman("run", "--rm", "--cpus", "1.5", podman.image, "cat",
                   "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        assert r.stdout.split() == ["150000", "100000"]
    else:
        r = podman("run", "--rm", "--cpus", "1.5", podman.image, "cat", "/sys/fs/cgroup/cpu.max")
        assert r.stdout.split() == ["150000", "100000"]


# --- capabilities --------------------------------------------------------------------------

def caps(out: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", out, re.M)}


CAP_CHOWN, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_ADMIN = 0, 10, 13, 21


def test_cap_drop_all_and_add(podman):
    c = caps(podman("run", "--rm", "--cap-drop", "ALL", podman.image, "cat", "/proc/self/status").stdout)
    assert c["CapEff"] == c["CapPrm"] == c["CapBnd"] == 0, c
    r = podman("run", "--rm", "--cap-drop", "ALL", podman.image, "chown", "1000", "/tmp", check=False)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr

    c = caps(podman("run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--cap-add", "CHOWN",
                    podman.image, "cat", "/proc/self/status").stdout)
    want = (1 << CAP_NET_BIND_SERVICE) | (1 << CAP_CHOWN)
    assert c["CapEff"] == c["CapBnd"] == want, c
    podman("run", "--rm", "--cap-drop", "ALL", "--cap-add", "CHOWN", podman.image, "chown", "1000", "/tmp")

    # The default set has CHOWN but not SYS_ADMIN; --cap-add SYS_ADMIN adds it.
    c = caps(podman("run", "--rm", podman.image, "cat", "/proc/self/status").stdout)
    assert c["CapEff"] & (1 << CAP_CHOWN) and not c["CapEff"] & (1 << CAP_SYS_ADMIN), c
    c = caps(podman("run", "--rm", "--cap-add", "SYS_ADMIN", podman.image, "cat", "/proc/self/status").stdout)
    assert c["CapEff"] & (1 << CAP_SYS_ADMIN), c


# --- seccomp -------------------------------------------------------------------------------

def test_seccomp_default_profile(podman):
    # podman applies its default profile (/usr/share/containers/seccomp.json) by default, as it
    # does when asked for it by name; unconfined turns it off.
    r = podman("run", "--rm", podman.image, "grep", "Seccomp", "/proc/self/status")
    assert "Seccomp:\t2" in r.stdout and "Seccomp_filters:\t1" in r.stdout, r.stdout
    r = podman("run", "--rm", "--security-opt", "seccomp=/usr/share/containers/seccomp.json", podman.image,
               "grep", "Seccomp:", "/proc/self/status")
    assert "Seccomp:\t2" in r.stdout
    r = podman("run", "--rm", "--security-opt", "seccomp=unconfined", podman.image,
               "grep", "Seccomp:", "/proc/self/status")
    assert "Seccomp:\t0" in r.stdout, r.stdout


def test_seccomp_custom_profile(podman, tmp_path):
    # A profile of the user's own: mkdir fails with the errno it names, the rest is allowed.
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }))
    r = podman("run", "--rm", "--security-opt", f"seccomp={profile}", podman.image,
               "sh", "-c", "mkdir /tmp/d 2>&1; echo rc=$?; touch /tmp/f && echo touch-ok")
    assert "Operation not permitted" in r.stdout and "rc=1" in r.stdout, r.stdout
    assert "touch-ok" in r.stdout
    r = podman("run", "--rm", podman.image, "sh", "-c", "mkdir /tmp/d && echo mkdir-ok")
    assert r.stdout == "mkdir-ok\n"


# --- networks ------------------------------------------------------------------------------

def test_network_none(podman):
    r = podman("run", "--rm", "--network", "none", podman.image, "ls", "/sys/class/net")
    assert r.stdout.split() == ["lo"]


def test_default_network(podman):
    # podman's default bridge network (CNI here): an address, a route, and two containers talk.
    server = run_d(podman, podman.image, "sh", "-c", "echo pong | nc -l -p 8080")
    ip = podman.inspect(server, "{{.NetworkSettings.IPAddress}}")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip), ip
    r = podman("run", "--rm", podman.image, "sh", "-c", "ip -4 -o addr show eth0; ip route")
    assert re.search(r"eth0\s+inet \d+\.\d+\.\d+\.\d+/", r.stdout), r.stdout
    assert "default via" in r.stdout
    r = podman("run", "--rm", podman.image, "sh", "-c",
               f"for i in 1 2 3 4 5 6 7 8 9 10; do nc -w 2 {ip} 8080 </dev/null && exit 0; sleep 0.3; done; exit 1",
               timeout=60)
    assert r.stdout.strip() == "pong"


def test_hostname(podman):
    r = podman("run", "--rm", "--hostname", "ocirun-host", podman.image, "sh", "-c",
               "hostname; echo $(cat /etc/hostname); uname -n; grep -c ocirun-host /etc/hosts")
    assert r.stdout.split() == ["ocirun-host", "ocirun-host", "ocirun-host", "1"], r.stdout


def test_env(podman):
    r = podman("run", "--rm", "-e", "FOO=bar baz", "-e", "EMPTY=", podman.image,
               "sh", "-c", 'echo "[$FOO][$EMPTY][${EMPTY+set}]"; echo "$PATH"')
    lines = r.stdout.splitlines()
    assert lines[0] == "[bar baz][][set]"
    assert lines[1] == "/usr/sbin:/usr/bin:/sbin:/bin"
    # Only what podman and the image set: nothing of the caller's environment.
    r = podman("run", "--rm", podman.image, "env")
    names = {ln.split("=", 1)[0] for ln in r.stdout.splitlines()}
    assert "CONTAINERS_CONF" not in names and "PATH" in names and "HOSTNAME" in names, names


def test_workdir(podman):
    assert podman("run", "--rm", "-w", "/tmp", podman.image, "pwd").stdout == "/tmp\n"
    r = podman("run", "--rm", "-w", "/tmp", "--user", "1000", podman.image, "sh", "-c", "pwd; touch x && echo ok")
    assert r.stdout == "/tmp\nok\n"
    # podman 4.3 checks a workdir that is not the image's itself (with any runtime).
    r = podman("run", "--rm", "-w", "/no/such/dir", podman.image, "pwd", check=False)
    assert r.returncode == 126 and "does not exist" in r.stderr, r.stderr


def test_init(podman, host):
    if not host.catatonit:
        pytest.skip("no catatonit/tini installed for podman --init (scripts/setup-integration installs catatonit)")
    r = podman("run", "--rm", "--init", podman.image, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    first, second = r.stdout.splitlines()[:2]
    assert "podman-init" in first or "catatonit" in first, first
    assert second != "1", "the command is not pid 1 under --init"
    # The init forwards signals: a SIGTERM to the container ends the command.
    name = run_d(podman, "--init", podman.image, "sh", "-c", LOOP.format(pre=""))
    t0 = time.monotonic()
    podman("stop", "--time", "10", name)
    assert time.monotonic() - t0 < 8
    assert podman.inspect(name, "{{.State.ExitCode}}") in ("0", "143")


# --- pause / unpause, kill -s, restart, rm -f ----------------------------------------------

def test_pause_unpause(podman, tmp_path, host):
    d = tmp_path / "counter"
    d.mkdir()
    name = run_d(podman, "-v", f"{d}:/out", podman.image, "sh", "-c",
                 "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo $i > /out/n; sleep 0.05; done")
    n = d / "n"
    wait_for(lambda: n.exists() and n.read_text().strip(), what="the counter")

    podman("pause", name)
    assert status(podman, name) == "paused"
    if "freezer" in host.v1:
        assert (container_cgroup(podman, name, "freezer") / "freezer.state").read_text().strip() == "FROZEN"
    time.sleep(0.2)
    a = n.read_text()
    time.sleep(0.6)
    assert n.read_text() == a, "the counter advanced while paused"
    ps = podman("ps", "--all", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
    assert "paused" in ps.lower(), ps

    podman("unpause", name)
    assert status(podman, name) == "running"
    wait_for(lambda: n.read_text() not in ("", a), timeout=5, what="the counter to advance after unpause")
    podman("stop", name)
    assert podman.inspect(name, "{{.State.ExitCode}}") == "0"


def test_kill_signal(podman):
    name = looping(podman, "trap 'echo got-usr1' USR1; echo ready;")
    wait_for(lambda: "ready" in podman("logs", name).stdout, what="ready")
    podman("kill", "--signal", "USR1", name)
    wait_for(lambda: "got-usr1" in podman("logs", name).stdout, what="the USR1 trap's output")
    assert status(podman, name) == "running"
    podman("kill", "-s", "KILL", name)
    wait_for(lambda: status(podman, name) == "exited", what="the container to exit")
    assert podman.inspect(name, "{{.State.ExitCode}}") == "137"


def test_restart(podman):
    name = looping(podman, "echo started;")
    wait_for(lambda: "started" in podman("logs", name).stdout, what="first start")
    pid1 = podman.inspect(name, "{{.State.Pid}}")
    podman("restart", "--time", "10", name)
    assert status(podman, name) == "running"
    wait_for(lambda: podman("logs", name).stdout == "started\nstarted\n", what="second start in the logs")
    assert podman.inspect(name, "{{.State.Pid}}") != pid1
    # A stopped container restarts too.
    podman("stop", name)
    podman("restart", name)
    assert status(podman, name) == "running"
    wait_for(lambda: podman("logs", name).stdout.count("started") == 3, what="third start")


def test_rm_force_running(podman):
    name = looping(podman, "", "--stop-timeout", "5")
    cid = podman.inspect(name, "{{.Id}}")
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    t0 = time.monotonic()
    podman("rm", "--force", name)
    assert time.monotonic() - t0 < 10
    assert podman("ps", "--all", "--quiet").stdout.strip() == ""
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or
             Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z",
             what="the container's process to be gone")
    wait_for(lambda: not cgroup_dirs([cid]), what="the container's cgroups to be removed")


# --- failures as the user sees them --------------------------------------------------------

def test_failed_create_reports_one_error(podman):
    # A container whose create fails (here: a hard rlimit above ours; no CAP_SYS_RESOURCE) shows
    # the runtime's error naming the limit, and nothing else: podman's cleanup, `delete --force`
    # of a container the runtime never made, succeeds quietly as with runc.
    hard = int(open("/proc/self/limits").read().split("Max open files")[1].split()[1])
    r = podman("run", "--rm", "--ulimit", f"nofile={hard + 1}:{hard + 1}", podman.image, "true", check=False)
    assert r.returncode == 126, r.stderr
    assert "RLIMIT_NOFILE" in r.stderr or "rlimit" in r.stderr.lower(), r.stderr
    assert "does not exist" not in r.stderr and "Removing container" not in r.stderr, r.stderr
    assert podman("ps", "--all", "--quiet").stdout.strip() == ""
