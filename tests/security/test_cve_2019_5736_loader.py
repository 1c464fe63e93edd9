"""CVE-2019-5736 class, through the container's own ELF loader: a container must never run code
that sees the host's interpreter as its /proc/self/exe.

A container's init, and the process `ocirun exec` starts, is a raw clone of the ocirun Python
process until its final execve. If that execve is of `/proc/self/exe` (process.args[0], the
program given to `exec`, or the interpreter of a `#!/proc/self/exe` script), the kernel executes
the HOST's interpreter binary (python3.11) inside the container. Python is dynamically linked, so
the kernel then maps its ELF interpreter (PT_INTERP, /lib64/ld-linux-x86-64.so.2) by path from
the *container's* root. An image that ships its own "loader" there gets its code run before a
single instruction of python, in a process whose /proc/self/exe is the host binary: it can keep
an O_PATH handle to it and reopen it for writing later (runc's original exploit overwrote the
host runc this way).

tests/security/test_cve_2019_5736.py misses this: its busybox rootfs has no loader, so the
execve fails with ENOENT and the host interpreter never gets to run. Here the rootfs gets one: a
tiny static PIE (no libc, raw system calls) that opens /proc/self/exe as O_PATH, prints
`LOADER dev=D ino=I`, tries to reopen the handle O_WRONLY|O_APPEND through /proc/self/fd and
prints `WRITABLE` or `NOTWRITABLE errno=E`, and exits 0. It never writes a byte (append mode,
nothing written, closed at once; never O_TRUNC), so even a failing run cannot damage the host.

Accepted outcomes: the execve of /proc/self/exe fails (the loader never runs), or the loader runs
but its /proc/self/exe is not a host binary (e.g. a sealed memfd copy of the runtime). Refused:
a LOADER line naming a host binary's (dev, inode).
"""
import os
import re
import shutil
import struct
import subprocess

import pytest

LOADER_C = r"""
/* A stand-in ELF interpreter: no libc, raw system calls, its own _start. */
typedef unsigned long u64;

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long r;
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}
#define SYS_write 1
#define SYS_close 3
#define SYS_fstat 5
#define SYS_exit_group 231
#define SYS_openat 257
#define AT_FDCWD (-100)
#define O_WRONLY 01
#define O_APPEND 02000
#define O_CLOEXEC 02000000
#define O_PATH 010000000

struct kstat {              /* x86_64 struct stat */
    u64 st_dev, st_ino, st_nlink;
    unsigned int st_mode, st_uid, st_gid, pad0;
    u64 st_rdev;
    long st_size, st_blksize, st_blocks;
    u64 times[6];
    long unused[3];
};

static char buf[256];
static int len;

static void puts_(const char *s) { while (*s) buf[len++] = *s++; }
static void putu(u64 v)
{
    char t[24];
    int n = 0;
    do t[n++] = '0' + v % 10; while (v /= 10);
    while (n) buf[len++] = t[--n];
}
static void flush(void) { sys6(SYS_write, 1, (long)buf, len, 0, 0, 0); len = 0; }

void __attribute__((noreturn, used)) loader_main(void)
{
    long fd = sys6(SYS_openat, AT_FDCWD, (long)"/proc/self/exe", O_PATH | O_CLOEXEC, 0, 0, 0);
    if (fd < 0) {
        puts_("LOADER noexe errno="); putu(-fd); puts_("\n");
    } else {
        struct kstat st;
        long r = sys6(SYS_fstat, fd, (long)&st, 0, 0, 0, 0);
        if (r < 0) {
            puts_("LOADER nostat errno="); putu(-r); puts_("\n");
        } else {
            puts_("LOADER dev="); putu(st.st_dev); puts_(" ino="); putu(st.st_ino); puts_("\n");
        }
        flush();
        /* The exploit's second step: reopen the handle for writing. Append mode, nothing
           written, closed at once: never O_TRUNC, never a byte. */
        char path[32];
        const char *p = "/proc/self/fd/";
        int n = 0, d = 0;
        while (p[n]) { path[n] = p[n]; n++; }
        char t[12];
        long v = fd;
        do t[d++] = '0' + v % 10; while (v /= 10);
        while (d) path[n++] = t[--d];
        path[n] = 0;
        long w = sys6(SYS_openat, AT_FDCWD, (long)path, O_WRONLY | O_APPEND | O_CLOEXEC, 0, 0, 0);
        if (w >= 0) {
            puts_("WRITABLE\n");
            sys6(SYS_close, w, 0, 0, 0, 0, 0);
        } else {
            puts_("NOTWRITABLE errno="); putu(-w); puts_("\n");
        }
        sys6(SYS_close, fd, 0, 0, 0, 0, 0);
    }
    flush();
    sys6(SYS_exit_group, 0, 0, 0, 0, 0, 0);
    for (;;) ;
}

__asm__(".globl _start\n_start:\n  xor %ebp, %ebp\n  and $-16, %rsp\n  call loader_main\n  hlt\n");
"""

# A dynamically linked program of the container's own whose PT_INTERP is the loader: the control
# case, to show the kernel does run the installed loader inside the container.
OWN_PROGRAM_C = r"""
void _start(void) { for (;;) ; }  /* never reached: the loader exits first */
"""

PT_INTERP = 3


def pt_interp(path: str) -> str | None:
    """The PT_INTERP path of an ELF64 little-endian file (None: statically linked)."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path}: not an ELF64 LE file"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    with open(path, "rb") as f:
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack("<IIQQQQ", f.read(40))
            if p_type == PT_INTERP:
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b"\0").decode()
    return None


def host_interpreter(runtime_bin: str) -> str:
    """The host binary a copy of the runtime is: the interpreter of the ocirun script."""
    with open(runtime_bin, "rb") as f:
        head = f.readline()
    if head.startswith(b"#!"):
        return os.path.realpath(head[2:].split()[0].decode())
    return os.path.realpath(runtime_bin)


def host_binaries(runtime_bin: str) -> dict[tuple[int, int], str]:
    """(dev, inode) -> path of every host binary a runtime copy may be: the ocirun script's
    interpreter, .venv/bin/python's target, the python running these tests."""
    paths = {host_interpreter(runtime_bin), os.path.realpath(os.sys.executable)}
    venv_py = os.path.join(os.path.dirname(runtime_bin), "python")
    if os.path.exists(venv_py):
        paths.add(os.path.realpath(venv_py))
    found = {}
    for p in paths:
        st = os.stat(p)
        found[(st.st_dev, st.st_ino)] = p
    return found


@pytest.fixture(scope="session")
def loader_kit(tmp_path_factory, runtime_bin):
    """(loader, own_program, interp path): built once per session."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler to build the fake loader")
    interp = pt_interp(host_interpreter(runtime_bin))
    if not interp:
        pytest.skip("the runtime's interpreter is statically linked: no loader is looked up")
    d = tmp_path_factory.mktemp("loader")
    (d / "loader.c").write_text(LOADER_C)
    (d / "own.c").write_text(OWN_PROGRAM_C)
    # A static PIE: the kernel maps an ET_DYN interpreter anywhere, clear of python's fixed
    # 0x400000 (an ET_EXEC loader would collide with it). No relocations are needed.
    # -fno-tree-loop-distribute-patterns: no memcpy/memset calls, there is no libc to link.
    r = subprocess.run([cc, "-nostdlib", "-static-pie", "-fPIE", "-O2", "-fno-stack-protector",
                        "-ffreestanding", "-fno-tree-loop-distribute-patterns",
                        "-o", str(d / "loader"), str(d / "loader.c")], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot build the fake loader: {r.stderr.strip()[-300:]}")
    assert pt_interp(str(d / "loader")) is None
    r = subprocess.run([cc, "-nostdlib", "-fPIE", "-pie", "-O2", f"-Wl,--dynamic-linker={interp}",
                        "-o", str(d / "own"), str(d / "own.c")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert pt_interp(str(d / "own")) == interp
    return d / "loader", d / "own", interp


def loader_bundle(bundle, loader_kit, args):
    """A busybox bundle whose rootfs has the fake loader at the interpreter's PT_INTERP path."""
    loader, own, interp = loader_kit
    b = bundle(args)
    dest = b / "rootfs" / interp.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(loader, dest)
    os.chmod(dest, 0o755)
    shutil.copy(own, b / "rootfs/own")
    os.chmod(b / "rootfs/own", 0o755)
    # The original exploit's script: the runtime made to execute itself through a shebang.
    (b / "rootfs/evil.sh").write_text("#!/proc/self/exe\nexit\n")
    os.chmod(b / "rootfs/evil.sh", 0o755)
    return b


LOADER_RE = re.compile(r"^LOADER dev=(\d+) ino=(\d+)$", re.M)


def check_host_unreachable(r, hosts: dict, what: str) -> None:
    """Either the execve failed (non-zero, the loader never ran) or the loader saw a file that
    is not a host binary. Never a host binary's identity; never a writable host binary."""
    out = r.stdout + r.stderr
    seen = [(int(d), int(i)) for d, i in LOADER_RE.findall(r.stdout)]
    for key in seen:
        assert key not in hosts, (
            f"{what}: the container's loader ran with /proc/self/exe = the host binary "
            f"{hosts[key]} (dev {key[0]}, inode {key[1]}) and got a handle to it "
            f"(exit {r.returncode}):\n{out.strip()}")
    if seen:
        return  # the loader ran on something of the container's own (e.g. a sealed memfd)
    assert "LOADER" not in r.stdout, f"{what}: the loader reports an odd result:\n{out}"
    assert r.returncode != 0, (f"{what}: succeeded, yet the loader never ran: what was "
                               f"executed?\n{out}")


def test_loader_runs_for_the_containers_own_program(rt, bundle, new_id, loader_kit):
    """Control: a program of the container's own that names the loader gets it run, with its
    own /proc/self/exe. Proves the cases below would see the attack if it were possible."""
    b = loader_bundle(bundle, loader_kit, ["/own"])
    r = rt("run", "--bundle", b, new_id(), check=False)
    st = os.stat(b / "rootfs/own")
    assert r.returncode == 0, r.stderr
    assert f"LOADER dev={st.st_dev} ino={st.st_ino}" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("args,what", [
    # (a) the init's final execve is of the runtime itself
    (["/proc/self/exe"], "run /proc/self/exe"),
    # (c) a script of the image whose first line is `#!/proc/self/exe` (the original exploit's
    # route): the kernel resolves the shebang in the runtime copy
    (["/evil.sh"], "run #!/proc/self/exe script"),
])
def test_run_proc_self_exe(rt, bundle, unique_id, loader_kit, runtime_bin, args, what):
    hosts = host_binaries(runtime_bin)
    b = loader_bundle(bundle, loader_kit, args)
    r = rt("run", "--bundle", b, unique_id, check=False)
    if rt.exists(unique_id):
        rt("delete", "--force", unique_id)
    check_host_unreachable(r, hosts, what)


def test_exec_proc_self_exe(rt, bundle, unique_id, loader_kit, runtime_bin):
    """(b) `ocirun exec ID /proc/self/exe` in a running container."""
    hosts = host_binaries(runtime_bin)
    b = loader_bundle(bundle, loader_kit, ["sleep", "30"])
    rt("run", "--detach", "--bundle", b, unique_id)
    try:
        r = rt("exec", unique_id, "/proc/self/exe", check=False)
        assert rt.state(unique_id)["status"] == "running", "the container died during the exec"
    finally:
        rt("delete", "--force", unique_id)
    check_host_unreachable(r, hosts, "exec /proc/self/exe")
