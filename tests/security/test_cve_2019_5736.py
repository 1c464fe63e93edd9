"""CVE-2019-5736 class: a container must never get a writable handle to a host binary through
/proc/PID/exe of a process the runtime owns.

While `create` or `exec` sets a process up, that process is a copy of the runtime (a host
binary: the Python interpreter running ocirun) inside the container's pid namespace. A
container process that opens its /proc/PID/exe, or makes the runtime execute
`/proc/self/exe` (a `#!/proc/self/exe` script, as in the original exploit), and later reopens
the handle for writing, overwrites the host's binary. The attacker here is a small static C
program run inside the container: it scans /proc in a tight loop and, for every process it
sees, tries to open /proc/PID/exe for writing, for reading and as O_PATH, and to reopen any
handle it got for writing through /proc/self/fd. It never writes a byte (append mode, nothing
written), so even a failing run of this test cannot damage the host.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from ocitest_conftest import MARK

ATTACKER_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 1: /proc/PID/cmdline names ocirun (a copy of the runtime), 0: it doesn't, -1: unreadable */
static int runtime_copy(int pid)
{
    char p[64], buf[4096];
    snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = ' ';
    buf[n] = 0;
    return strstr(buf, "ocirun") != NULL;
}

#define SEEN_MAX 4096
static struct { int pid; unsigned long dev, ino; int how; } seen[SEEN_MAX];
static int nseen;

static int first_time(int pid, unsigned long dev, unsigned long ino, int how)
{
    for (int i = 0; i < nseen; i++)
        if (seen[i].pid == pid && seen[i].dev == dev && seen[i].ino == ino && seen[i].how == how)
            return 0;
    if (nseen < SEEN_MAX)
        seen[nseen].pid = pid, seen[nseen].dev = dev, seen[nseen].ino = ino, seen[nseen++].how = how;
    return 1;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 10;
    const char *stop = argc > 2 ? argv[2] : "/dev/shm/stop";
    static const struct { int flags; const char *how; } tries[] = {
        {O_WRONLY | O_APPEND, "write"}, {O_RDWR | O_APPEND, "readwrite"}, {O_RDONLY, "read"}, {O_PATH, "path"}};
    struct timespec t0, t;
    long loops = 0, sightings = 0;
    int runtime_pids[SEEN_MAX], nruntime = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("READY\n");
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > secs || access(stop, F_OK) == 0)
            break;
        loops++;
        DIR *d = opendir("/proc");
        if (!d)
            return 1;
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid())
                continue;
            int was_runtime = runtime_copy(pid);
            char exe[64];
            snprintf(exe, sizeof exe, "/proc/%d/exe", pid);
            int err[4];
            for (int i = 0; i < 4; i++) {
                int fd = open(exe, tries[i].flags | O_CLOEXEC);
                err[i] = fd < 0 ? errno : 0;
                if (fd < 0)
                    continue;
                struct stat st;
                fstat(fd, &st);
                if (first_time(pid, st.st_dev, st.st_ino, i))
                    printf("HANDLE pid=%d how=%s dev=%lu ino=%lu\n", pid, tries[i].how,
                           (unsigned long)st.st_dev, (unsigned long)st.st_ino);
                if (i < 2)
                    printf("WRITABLE pid=%d how=%s dev=%lu ino=%lu\n", pid, tries[i].how,
                           (unsigned long)st.st_dev, (unsigned long)st.st_ino);
                /* the exploit's second step: reopen the handle for writing */
                char self[64];
                snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
                int w = open(self, O_WRONLY | O_APPEND | O_CLOEXEC);
                if (w >= 0) {
                    printf("WRITABLE pid=%d how=reopen-%s dev=%lu ino=%lu\n", pid, tries[i].how,
                           (unsigned long)st.st_dev, (unsigned long)st.st_ino);
                    close(w);
                }
                close(fd);
            }
            char link[512];
            int rl = readlink(exe, link, sizeof link) < 0 ? errno : 0;
            /* still a copy of the runtime after the attempts: it was one all along */
            if (was_runtime == 1 && runtime_copy(pid) == 1) {
                sightings++;
                int known = 0;
                for (int i = 0; i < nruntime; i++)
                    known |= runtime_pids[i] == pid;
                if (!known && nruntime < SEEN_MAX)
                    runtime_pids[nruntime++] = pid;
                if (!known || err[0] != EACCES || err[1] != EACCES || err[2] != EACCES || err[3] != EACCES || rl != EACCES)
                    printf("RUNTIME pid=%d write=%d readwrite=%d read=%d path=%d readlink=%d\n",
                           pid, err[0], err[1], err[2], err[3], rl);
            }
        }
        closedir(d);
    }
    printf("DONE loops=%ld sightings=%ld\n", loops, sightings);
    return 0;
}
"""


@pytest.fixture(scope="session")
def attacker_bin(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the attacker")
    d = tmp_path_factory.mktemp("attacker")
    (d / "attacker.c").write_text(ATTACKER_C)
    r = subprocess.run([cc, "-static", "-O2", "-o", str(d / "attacker"), str(d / "attacker.c")],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot build a static attacker (static libc missing?): {r.stderr.strip()[-300:]}")
    return d / "attacker"


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def host_binaries(runtime_bin: str) -> list[str]:
    """The host binaries a copy of the runtime runs: the interpreter of the ocirun script (and
    the python running these tests)."""
    found = {os.path.realpath(os.sys.executable)}
    with open(runtime_bin, "rb") as f:
        head = f.readline()
    if head.startswith(b"#!"):
        found.add(os.path.realpath(head[2:].split()[0].decode()))
    else:
        found.add(os.path.realpath(runtime_bin))
    return sorted(found)


def file_id(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class Report:
    def __init__(self, text: str):
        self.text = text
        self.handles = [dict(kv.split("=") for kv in ln.split()[1:]) for ln in text.splitlines()
                        if ln.startswith("HANDLE ")]
        self.writable = [ln for ln in text.splitlines() if ln.startswith("WRITABLE ")]
        self.runtime = [dict(kv.split("=") for kv in ln.split()[1:]) for ln in text.splitlines()
                        if ln.startswith("RUNTIME ")]
        m = re.search(r"DONE loops=(\d+) sightings=(\d+)", text)
        self.done = bool(m)
        self.loops, self.sightings = (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def check(self, allowed: set[tuple[int, int]], hosts: list[str]) -> None:
        """No writable handle ever; every handle the container got is to one of its own files;
        every runtime copy it saw refused all access to its exe (EACCES: not dumpable)."""
        assert not self.writable, "a writable handle was obtained:\n" + "\n".join(self.writable)
        host_ids = {file_id(h): h for h in hosts}
        for h in self.handles:
            key = (int(h["dev"]), int(h["ino"]))
            assert key in allowed, (f"the container opened a file that is not its own through "
                                    f"/proc/{h['pid']}/exe ({h['how']}): "
                                    f"{host_ids.get(key, 'a host file')} (dev {key[0]}, inode {key[1]})")
        for r in self.runtime:
            assert all(r[k] == "13" for k in ("write", "readwrite", "read", "path", "readlink")), (
                f"a runtime copy is not protected (errno per attempt, 13 = EACCES): {r}")


def attacker_bundle(bundle, attacker_bin, seconds=20, **overrides):
    b = bundle(["/attacker", str(seconds), "/dev/shm/stop"], **overrides)
    shutil.copy(attacker_bin, b / "rootfs/attacker")
    # The original exploit: make the runtime execute /proc/self/exe, i.e. itself, in the container.
    (b / "rootfs/bin/evil").write_text("#!/proc/self/exe\nimport time\ntime.sleep(2)\n")
    os.chmod(b / "rootfs/bin/evil", 0o755)
    return b


def own_files(b) -> set[tuple[int, int]]:
    return {file_id(b / "rootfs/bin/busybox"), file_id(b / "rootfs/attacker")}


def wait_report(rt, cid, done, timeout=10) -> Report:
    deadline = time.monotonic() + timeout
    while True:
        rep = Report(rt.out(cid))
        if done(rep):
            return rep
        assert time.monotonic() < deadline, f"the attacker did not report in time:\n{rep.text[-2000:]}"
        time.sleep(0.02)


def stop_attacker(rt, cid) -> Report:
    rt("exec", cid, "touch", "/dev/shm/stop")
    rep = wait_report(rt, cid, lambda r: r.done)
    rt.wait_status(cid, "stopped")
    rt("delete", cid)
    return rep


def test_exec_setup_window(rt, bundle, unique_id, attacker_bin, runtime_bin):
    """Many execs while the attacker watches: the copies of the runtime it catches between clone
    and execve are not dumpable, and nothing it opens is a host binary."""
    hosts = host_binaries(runtime_bin)
    before = {h: sha256(h) for h in hosts}
    b = attacker_bundle(bundle, attacker_bin)
    rt("run", "--detach", "--bundle", b, unique_id)
    wait_report(rt, unique_id, lambda r: "READY" in r.text)
    for i in range(100):
        rt("exec", unique_id, "true")
        if i >= 20 and len(Report(rt.out(unique_id)).runtime) >= 5:
            break
    # The runtime made to execute itself inside the container, as in the original exploit:
    # through a `#!/proc/self/exe` script, and directly.
    evil = [rt("exec", unique_id, "/bin/evil", check=False) for _ in range(3)]
    evil += [rt("exec", unique_id, "/proc/self/exe", "-c", "import time; time.sleep(2)", check=False)
             for _ in range(3)]
    rep = stop_attacker(rt, unique_id)
    rep.check(own_files(b), hosts)
    assert rep.sightings > 0, ("the attacker never saw a runtime copy in 20+ execs: the test "
                               f"proves nothing\n{rep.text[-2000:]}")
    for r in evil:
        assert "Python" not in r.stdout + r.stderr, "the host's interpreter ran inside the container"
    assert {h: sha256(h) for h in hosts} == before, "a host binary changed"


def test_create_window_in_a_shared_pid_namespace(rt, bundle, new_id, attacker_bin, runtime_bin):
    """A created container waits for `start` as a copy of the runtime. Another container's process
    in the same pid namespace (a pod) sees it for as long as it waits: deterministic."""
    hosts = host_binaries(runtime_bin)
    before = {h: sha256(h) for h in hosts}
    a, victim = new_id(), new_id()
    b = attacker_bundle(bundle, attacker_bin)
    rt("run", "--detach", "--bundle", b, a)
    wait_report(rt, a, lambda r: "READY" in r.text)
    a_pid = rt.state(a)["pid"]

    def join_pid_ns(cfg):
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{a_pid}/ns/pid"
    rt("create", "--bundle", bundle(["true"], join_pid_ns), victim)
    v_pid = rt.state(victim)["pid"]
    nspid = open(f"/proc/{v_pid}/status").read().split("NSpid:")[1].split("\n")[0].split()[-1]
    assert "ocirun" in open(f"/proc/{v_pid}/cmdline").read(), "the created init is not a runtime copy"
    # Let the attacker try it for a while (each try is logged once per pid, first sight).
    rep = wait_report(rt, a, lambda r: any(x["pid"] == nspid for x in r.runtime))
    time.sleep(0.3)
    rt("delete", "--force", victim)
    rep = stop_attacker(rt, a)
    seen = [x for x in rep.runtime if x["pid"] == nspid]
    assert seen, rep.text[-2000:]
    rep.check(own_files(b), hosts)
    assert {h: sha256(h) for h in hosts} == before, "a host binary changed"


def test_exec_setup_window_with_cap_sys_ptrace(rt, bundle, unique_id, attacker_bin, runtime_bin):
    """An attacker holding CAP_SYS_PTRACE passes the non-dumpable check, so it can open the exe
    of the runtime copies it catches: they must offer it no host binary. An exec'd process is
    sealed from birth (csrc/sealexe.c, done in stage 1 before the clone into the container's pid
    namespace): its exe is an empty sealed memfd."""
    hosts = host_binaries(runtime_bin)
    host_ids = {file_id(h): h for h in hosts}
    before = {h: sha256(h) for h in hosts}

    def with_ptrace(cfg):
        for kind in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][kind].append("CAP_SYS_PTRACE")
    b = attacker_bundle(bundle, attacker_bin)
    cfg = json.loads((b / "config.json").read_text())
    with_ptrace(cfg)
    (b / "config.json").write_text(json.dumps(cfg))
    rt("run", "--detach", "--bundle", b, unique_id)
    wait_report(rt, unique_id, lambda r: "READY" in r.text)
    for i in range(100):
        rt("exec", unique_id, "true")
        if i >= 20 and any(r["path"] == "0" for r in Report(rt.out(unique_id)).runtime):
            break
    rep = stop_attacker(rt, unique_id)
    opened = [r for r in rep.runtime if r["path"] == "0"]
    assert opened, ("the attacker never opened a runtime copy's exe: CAP_SYS_PTRACE did not take, "
                    f"the test proves nothing\n{rep.text[-2000:]}")
    for line in [f"HANDLE {' '.join(f'{k}={v}' for k, v in h.items())}" for h in rep.handles] + rep.writable:
        f = dict(kv.split("=") for kv in line.split()[1:])
        key = (int(f["dev"]), int(f["ino"]))
        assert key not in host_ids, f"a handle to the host's {host_ids[key]}: {line}"
    assert {h: sha256(h) for h in hosts} == before, "a host binary changed"
