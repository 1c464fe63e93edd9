"""linux.seccomp without a container: compile profiles with ocirun.seccomp and run the
programs on the real kernel in forked children (no_new_privs + seccomp(2), as the container init
does), including a SCMP_ACT_NOTIFY listener answered by this process through
ocirun.seccomp_notify and libseccomp's notify API."""
import ctypes
import errno
import json
import os
import select
import signal
import socket
import struct

import pytest

from ocirun import log
from ocirun.errors import ConfigError, OciError

seccomp = pytest.importorskip("ocirun.seccomp")
if seccomp.lib is None:
    pytest.skip("ocirun._seccomp is not built (python3 csrc/seccomp_build.py)", allow_module_level=True)
from ocirun import seccomp_notify  # noqa: E402
from ocirun._seccomp import ffi, lib  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
PR_SET_NO_NEW_PRIVS = 38
AT_FDCWD = -100


def nr(name: str) -> int:
    n = lib.seccomp_syscall_resolve_name(name.encode())
    assert n >= 0, name
    return n


def raw_syscall(number: int, *args) -> int:
    """The syscall, bypassing libc wrappers: -errno on failure."""
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
    return -ctypes.get_errno() if rc == -1 else rc


# --- a runc-like default profile: an allow-list, everything else EPERM ------------------------

ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range connect copy_file_range
creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate
fanotify_mark fchdir fchmod fchmodat fchown fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_waitv futimesat getcpu getcwd getdents getdents64 getegid
getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid
getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents ioprio_get ioprio_set
io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl
msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 poll
ppoll prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget
semop semtimedop send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr
shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill
truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimes vfork
vmsplice wait4 waitid waitpid write writev arch_prctl modify_ldt
""".split()

RUNC_LIKE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": errno.EPERM,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ALLOWED, "action": "SCMP_ACT_ALLOW"},
        # Known, but the caller should fall back to clone(2): what Docker's profile does.
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        # clone(2) without any namespace flag (0x7e020000 = CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|
        # NEWUSER|NEWPID|NEWNET).
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        # personality(2): only the common personas.
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]},
        # socket(2): any family but AF_VSOCK (40).
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
    ],
}


def run_filtered(filt, body, *, nnp: bool = True) -> int:
    """Fork; the child installs `filt` and exits with body()'s return value. Returns the child's
    exit code (negative: killed by that signal)."""
    prog = ffi.from_buffer(filt.program)
    pid = os.fork()
    if pid == 0:
        code = 250
        try:
            if nnp and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(251)
            if lib.ocirun_seccomp_set_filter(prog, filt.ninsns, filt.flags) < 0:
                os._exit(252)
            code = body()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def errno_of(fn, *args) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


# --- compile: the default profile -----------------------------------------------------------

def test_runc_like_profile_compiles():
    f = seccomp.compile_filter(RUNC_LIKE)
    assert len(f.program) > 0 and len(f.program) % 8 == 0
    assert 0 < f.ninsns <= seccomp.BPF_MAXINSNS
    assert f.flags == 0 and not f.notify
    assert f.listener_path is None and f.listener_metadata is None
    # The -ENOSYS stub comes first: load the arch, and somewhere the ENOSYS return.
    insns = [struct.unpack_from("=HBBI", f.program, i) for i in range(0, len(f.program), 8)]
    assert insns[0] == (0x20, 0, 0, 4)
    assert (0x06, 0, 0, 0x00050000 | errno.ENOSYS) in insns[:40]


def test_runc_like_profile_runs(tmp_path):
    f = seccomp.compile_filter(RUNC_LIKE)
    d = str(tmp_path / "d")
    fchmodat2 = lib.seccomp_syscall_resolve_name(b"fchmodat2")
    fchmodat2 = fchmodat2 if fchmodat2 >= 0 else 452

    def body():
        # Allowed: ordinary file work.
        os.mkdir(d)
        with open(os.path.join(d, "f"), "w") as fh:
            fh.write("x")
        os.unlink(os.path.join(d, "f"))
        os.rmdir(d)
        if os.getpid() <= 0:
            return 10
        # Not in the list, older than the profile: the default errno.
        if raw_syscall(nr("unshare"), 0) != -errno.EPERM:
            return 11
        if raw_syscall(nr("acct"), 0) != -errno.EPERM:
            return 12
        # Explicitly ENOSYS.
        if raw_syscall(nr("clone3"), 0, 0) != -errno.ENOSYS:
            return 13
        # Newer than anything the profile names: ENOSYS from the stub, not EPERM.
        if raw_syscall(fchmodat2, AT_FDCWD, 0, 0o644, 0) != -errno.ENOSYS:
            return 14
        # Argument rules: personality(0xffffffff) (query) allowed, another persona not.
        if raw_syscall(nr("personality"), 0xFFFFFFFF) < 0:
            return 15
        if raw_syscall(nr("personality"), 0x0400000) != -errno.EPERM:
            return 16
        # socket: AF_VSOCK refused, AF_UNIX fine.
        if errno_of(socket.socket, 40, socket.SOCK_STREAM) != errno.EPERM:
            return 17
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
        # clone with a namespace flag refused, a plain fork fine.
        if raw_syscall(nr("clone"), 0x20000000 | signal.SIGCHLD, 0, 0, 0, 0) != -errno.EPERM:
            return 18
        child = os.fork()
        if child == 0:
            os._exit(7)
        if os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) != 7:
            return 19
        return 0

    assert run_filtered(f, body) == 0
    assert not os.path.exists(d)


def test_default_errno_ret(tmp_path):
    f = seccomp.compile_filter({**RUNC_LIKE, "defaultErrnoRet": 77})
    assert run_filtered(f, lambda: -raw_syscall(nr("acct"), 0)) == 77


# --- per-syscall actions and arguments --------------------------------------------------------

def test_errno_ret_on_one_syscall(tmp_path):
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]})
    target = str(tmp_path / "x")
    assert run_filtered(f, lambda: errno_of(os.mkdir, target)) == 42
    assert not os.path.exists(target)


def test_errno_defaults_to_eperm(tmp_path):
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]})
    assert run_filtered(f, lambda: errno_of(os.mkdir, str(tmp_path / "x"))) == errno.EPERM


def test_argument_operators(tmp_path):
    def rule(op, value, two=None, errno_ret=1):
        arg = {"index": 2, "value": value, "op": op}  # mkdirat(dirfd, path, mode)
        if two is not None:
            arg["valueTwo"] = two
        return {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret, "args": [arg]}

    cases = [  # (rule, mode -> expected errno)
        (rule("SCMP_CMP_EQ", 0o700), {0o700: 1, 0o755: 0}),
        (rule("SCMP_CMP_NE", 0o700), {0o700: 0, 0o755: 1}),
        (rule("SCMP_CMP_LT", 0o700), {0o600: 1, 0o700: 0, 0o755: 0}),
        (rule("SCMP_CMP_LE", 0o700), {0o600: 1, 0o700: 1, 0o755: 0}),
        (rule("SCMP_CMP_GT", 0o700), {0o600: 0, 0o700: 0, 0o755: 1}),
        (rule("SCMP_CMP_GE", 0o700), {0o600: 0, 0o700: 1, 0o755: 1}),
        # (mode & 0o070) == 0o050
        (rule("SCMP_CMP_MASKED_EQ", 0o070, 0o050), {0o750: 1, 0o755: 1, 0o700: 0, 0o770: 0}),
    ]
    for n, (r, expect) in enumerate(cases):
        f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [r]})
        base = str(tmp_path / f"c{n}")

        def body():
            bits = 0
            for k, mode in enumerate(sorted(expect)):
                if (_mkdir_errno(f"{base}-{k}", mode) == 1) != bool(expect[mode]):
                    bits |= 1 << k
            return bits

        assert run_filtered(f, body) == 0, (r["args"][0]["op"], expect)


def _mkdir_errno(path: str, mode: int) -> int:
    """mkdirat(AT_FDCWD, path, mode) as a raw syscall (libc's mkdir may use mkdir(2)): errno."""
    buf = ctypes.create_string_buffer(os.fsencode(path))
    rc = raw_syscall(nr("mkdirat"), AT_FDCWD, ctypes.addressof(buf), mode)
    if rc == 0:
        os.rmdir(path)
    return -rc


def test_same_index_is_or_distinct_indexes_are_and(tmp_path):
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        # mkdirat(AT_FDCWD, _, mode): refused for mode 0o700 or 0o711 ...
        {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "args": [
            {"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 0o711, "op": "SCMP_CMP_EQ"}]},
        # ... getpriority(PRIO_PROCESS, 4242) only: both arguments must match.
        {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9, "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 4242, "op": "SCMP_CMP_EQ"}]},
    ]})
    p = str(tmp_path / "d")

    def body():
        got = (_mkdir_errno(p, 0o700), _mkdir_errno(p, 0o711), _mkdir_errno(p, 0o755),
               -raw_syscall(nr("getpriority"), 0, 4242), -raw_syscall(nr("getpriority"), 1, 4242),
               raw_syscall(nr("getpriority"), 0, 0) >= 0)
        return 0 if got == (5, 5, 0, 9, errno.ESRCH, True) else 1

    assert run_filtered(f, body) == 0


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS",
                                    "SCMP_ACT_TRAP"])
def test_killing_actions(action):
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": action}]})
    assert run_filtered(f, lambda: os.getppid() and 0) == -signal.SIGSYS


def test_log_allows():
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_LOG"}]})
    assert run_filtered(f, lambda: 0 if os.getppid() == os.getppid() > 0 else 1) == 0


def test_trace_without_a_tracer_is_enosys():
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_TRACE", "errnoRet": 3}]})
    assert run_filtered(f, lambda: -raw_syscall(nr("getppid"))) == errno.ENOSYS


def test_kill_default_with_allow_list():
    # With a killing default, newer syscalls still get ENOSYS, older unlisted ones kill.
    f = seccomp.compile_filter({**RUNC_LIKE, "defaultAction": "SCMP_ACT_KILL_PROCESS",
                                "defaultErrnoRet": None})
    assert run_filtered(f, lambda: -raw_syscall(452, AT_FDCWD, 0, 0, 0)) == errno.ENOSYS
    assert run_filtered(f, lambda: raw_syscall(nr("acct"), 0) and 0) == -signal.SIGSYS


def test_no_stub_when_permissive_or_enosys_default():
    # libseccomp's program has the same length whatever the default action; the stub adds to it.
    rules = [{"names": ALLOWED, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]

    def ninsns(action, ret=None):
        return seccomp.compile_filter({**RUNC_LIKE, "defaultAction": action, "defaultErrnoRet": ret,
                                       "syscalls": rules}).ninsns

    raw = ninsns("SCMP_ACT_ALLOW")
    assert ninsns("SCMP_ACT_LOG") == raw
    assert ninsns("SCMP_ACT_ERRNO", errno.ENOSYS) == raw
    assert ninsns("SCMP_ACT_ERRNO") > raw
    assert ninsns("SCMP_ACT_KILL_PROCESS") > raw
    assert ninsns("SCMP_ACT_TRAP") > raw


def test_enosys_cutoff_is_per_profile():
    # A profile naming only a few old syscalls: everything above the highest it names gets
    # ENOSYS, an unnamed one below that the default errno.
    names = ["read", "write", "exit_group", "rt_sigreturn", "getppid"]
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ERRNO",
                                "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]})
    top = max(nr(n) for n in names)
    below = next(n for n in ("open", "close", "getpid", "dup") if nr(n) < top and n not in names)

    def body():
        # Nothing but raw syscalls and exit_group here: Python itself is mostly refused.
        a = raw_syscall(top + 1)
        b = raw_syscall(nr(below), 9999)
        os._exit(0 if (a, b) == (-errno.ENOSYS, -errno.EPERM) else 1)

    assert run_filtered(f, body) == 0


# --- flags ------------------------------------------------------------------------------------

def test_flags():
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "flags": [
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]})
    assert f.flags == lib.SECCOMP_FILTER_FLAG_TSYNC | lib.SECCOMP_FILTER_FLAG_LOG | lib.SECCOMP_FILTER_FLAG_SPEC_ALLOW
    assert run_filtered(f, lambda: -raw_syscall(nr("acct"), 0)) == errno.EPERM


def test_wait_killable_recv_needs_notify(monkeypatch, capsys):
    monkeypatch.setattr(log, "_debug", True)
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                                "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                                "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]})
    assert f.flags == 0
    assert "WAIT_KILLABLE_RECV ignored" in capsys.readouterr().err
    g = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                                "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
                                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]})
    assert g.notify
    assert g.flags == (lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
                       | lib.SECCOMP_FILTER_FLAG_TSYNC | lib.SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
    assert lib.ocirun_seccomp_flags_supported(g.flags) == 0


def test_unknown_syscall_is_skipped_with_a_debug_line(monkeypatch, capsys):
    monkeypatch.setattr(log, "_debug", True)
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_syscall_ever", "acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3}]})
    err = capsys.readouterr().err
    assert "no_such_syscall_ever" in err and "linux.seccomp.syscalls[0].names[0]" in err
    assert run_filtered(f, lambda: -raw_syscall(nr("acct"), 0)) == 3


def test_rule_same_as_default_is_left_out():
    f = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ALLOWED, "action": "SCMP_ACT_ALLOW"},
        {"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})
    assert run_filtered(f, lambda: -raw_syscall(nr("acct"), 0)) == errno.EPERM


# --- what bad input gets --------------------------------------------------------------------

def _err(profile) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        seccomp.compile_filter(profile)
    return e.value


ALLOW = {"defaultAction": "SCMP_ACT_ALLOW"}


@pytest.mark.parametrize("profile,where,words", [
    ({"defaultAction": "SCMP_ACT_SOMETIMES"}, "linux.seccomp.defaultAction", "unknown seccomp action"),
    ({}, "linux.seccomp.defaultAction", "unknown seccomp action"),
    ({**ALLOW, "defaultErrnoRet": 5}, "linux.seccomp.defaultErrnoRet", "takes no errno"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}, "linux.seccomp.defaultErrnoRet", "0 to 4095"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "linux.seccomp.defaultAction", "default action"),
    ({**ALLOW, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}, "linux.seccomp.architectures[1]",
     "unknown seccomp architecture"),
    ({**ALLOW, "architectures": ["x86_64"]}, "linux.seccomp.architectures[0]", "unknown seccomp architecture"),
    ({**ALLOW, "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FAST"]}, "linux.seccomp.flags[1]",
     "unknown seccomp flag"),
    ({**ALLOW, "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_DENY"}]}, "linux.seccomp.syscalls[0].action",
     "unknown seccomp action"),
    ({**ALLOW, "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}, "linux.seccomp.syscalls[0].names",
     "non-empty"),
    ({**ALLOW, "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"},
                            {"names": ["acct"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]},
     "linux.seccomp.syscalls[1].errnoRet", "takes no errno"),
    ({**ALLOW, "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_GT"}]}]},
     "linux.seccomp.syscalls[0].args[1]", "compares one value"),
    ({**ALLOW, "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]}]},
     "linux.seccomp.syscalls[0].args[0].op", "unknown seccomp operator"),
    ({**ALLOW, "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index", "0 to 5"),
    ({**ALLOW, "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].value", "64-bit"),
    ({**ALLOW, "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0]", "needs `value`"),
    ({**ALLOW, "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath", "listenerPath is not set"),
    ({**ALLOW, "listenerPath": "/x", "syscalls": [{"names": ["getppid", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].names[1]", "sendmsg"),
    ({**ALLOW, "listenerMetadata": "m"}, "linux.seccomp.listenerMetadata", "without listenerPath"),
])
def test_bad_profiles(profile, where, words):
    e = _err(profile)
    assert e.where == where, str(e)
    assert words in e.message, str(e)
    assert str(e).startswith(f"config.json: {where}: ")


def test_listener_path_ignored_without_notify():
    f = seccomp.compile_filter({**ALLOW, "listenerPath": "/x", "listenerMetadata": "m",
                                "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]})
    assert not f.notify and f.flags == 0
    assert (f.listener_path, f.listener_metadata) == ("/x", "m")


def test_every_spec_architecture_is_known_or_reported():
    for name in seccomp.SPEC_ARCHES:
        try:
            seccomp.compile_filter({**ALLOW, "architectures": [name]})
        except ConfigError as e:
            assert e.where == "linux.seccomp.architectures[0]"
            assert "not supported by libseccomp" in e.message or "byte order" in e.message


def test_features():
    feat = seccomp.features()
    assert feat["enabled"]
    assert "SCMP_ACT_NOTIFY" in feat["actions"] and "SCMP_CMP_MASKED_EQ" in feat["operators"]
    assert "SCMP_ARCH_X86_64" in feat["archs"] or "SCMP_ARCH_AARCH64" in feat["archs"]
    assert set(feat["supportedFlags"]) <= set(feat["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_TSYNC" in feat["supportedFlags"]


# --- SCMP_ACT_NOTIFY --------------------------------------------------------------------------

def _receive(fd: int, req, timeout: float = 10.0) -> None:
    p = select.poll()
    p.register(fd, select.POLLIN)
    assert p.poll(int(timeout * 1000)), "no seccomp notification within the timeout"
    assert lib.seccomp_notify_receive(fd, req) == 0


def test_notify_end_to_end(tmp_path):
    """The child (as the container init) installs a NOTIFY filter and hands its listener fd to
    the parent (as ocirun) over a socketpair; the parent forwards it with send_listener() to an
    agent socket; the agent (this test) answers the child's getppid() twice."""
    agent_path = str(tmp_path / "agent.sock")
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(agent_path)
    agent.listen(1)
    f = seccomp.compile_filter({**ALLOW, "listenerPath": agent_path, "listenerMetadata": "hello agent",
                                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]})
    assert f.notify and f.flags & lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
    assert f.listener_path == agent_path and f.listener_metadata == "hello agent"

    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    prog = ffi.from_buffer(f.program)
    pid = os.fork()
    if pid == 0:
        code = 250
        try:
            parent_end.close()
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(251)
            listener = lib.ocirun_seccomp_set_filter(prog, f.ninsns, f.flags)
            if listener <= 0:
                os._exit(252)
            socket.send_fds(child_end, [b"L"], [listener])
            os.close(listener)
            first = os.getppid()                         # answered with a value
            second = raw_syscall(nr("getppid"))          # answered with an error
            code = 0 if (first, second) == (4242, -errno.EACCES) else 1
        finally:
            os._exit(code)
    child_end.close()
    req = ffi.NULL
    try:
        _, fds, _, _ = socket.recv_fds(parent_end, 16, 1)
        assert len(fds) == 1
        state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": pid,
                 "bundle": str(tmp_path), "annotations": {"a": "b"}}
        seccomp_notify.send_listener(f.listener_path, f.listener_metadata, state, fds[0])
        os.close(fds[0])

        conn, _ = agent.accept()
        with conn:
            data, afds, _, _ = socket.recv_fds(conn, 65536, 4)
            while True:
                more = conn.recv(65536)
                if not more:
                    break
                data += more
        assert len(afds) == 1
        doc = json.loads(data)
        assert doc == {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": pid, "metadata": "hello agent",
                       "state": state}
        fd = afds[doc["fds"].index("seccompFd")]

        reqp = ffi.new("struct seccomp_notif **")
        respp = ffi.new("struct seccomp_notif_resp **")
        assert lib.seccomp_notify_alloc(reqp, respp) == 0
        req, resp = reqp[0], respp[0]
        for answer in ({"val": 4242, "error": 0}, {"val": 0, "error": -errno.EACCES}):
            ffi.memmove(req, b"\0" * ffi.sizeof("struct seccomp_notif"), ffi.sizeof("struct seccomp_notif"))
            _receive(fd, req)
            assert req.pid == pid
            assert req.data.nr == nr("getppid")
            assert lib.seccomp_notify_id_valid(fd, req.id) == 0
            resp.id = req.id
            resp.val = answer["val"]
            resp.error = answer["error"]
            resp.flags = 0
            assert lib.seccomp_notify_respond(fd, resp) == 0
        os.close(fd)
    finally:
        if req != ffi.NULL:
            lib.seccomp_notify_free(req, resp)
        _, status = os.waitpid(pid, 0)
        parent_end.close()
        agent.close()
    assert os.waitstatus_to_exitcode(status) == 0


def test_send_listener_long_path_and_fd(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "agent.sock")
    assert len(path) > 108
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dfd = os.open(str(deep), os.O_PATH)
    try:
        agent.bind(f"/proc/self/fd/{dfd}/agent.sock")
    finally:
        os.close(dfd)
    agent.listen(1)
    r, w = os.pipe()
    try:
        seccomp_notify.send_listener(path, None, {"ociVersion": "1.0.2", "id": "x", "status": "creating",
                                                  "pid": 123, "bundle": "/b"}, r)
        conn, _ = agent.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        doc = json.loads(data)
        assert "metadata" not in doc and doc["pid"] == 123 and doc["fds"] == ["seccompFd"]
        assert doc["state"]["ociVersion"] == "1.0.2"
        assert os.fstat(fds[0]).st_ino == os.fstat(r).st_ino
        os.close(fds[0])
    finally:
        os.close(r)
        os.close(w)
        agent.close()


def test_send_listener_errors_name_the_field(tmp_path):
    with pytest.raises(OciError) as e:
        seccomp_notify.send_listener(str(tmp_path / "nobody-listens"), "m", {"pid": 1}, 0)
    assert e.value.where == "linux.seccomp.listenerPath"
    assert "nobody-listens" in str(e.value)


# --- the -ENOSYS stub on every architecture, through a classic-BPF interpreter -------------------

def run_bpf(program: bytes, arch: int, number: int, args=(0,) * 6) -> int:
    """Evaluate a seccomp program on one struct seccomp_data (little-endian host layout):
    the SECCOMP_RET_* value. Covers the instructions libseccomp and our stub use."""
    data = struct.pack("=iIQ6Q", number, arch, 0, *args)
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:    # LD
            mode = code & 0xE0
            a = struct.unpack_from("=I", data, k)[0] if mode == 0x20 else mem[k] if mode == 0x60 else k
        elif cls == 0x01:  # LDX
            x = mem[k] if code & 0xE0 == 0x60 else k
        elif cls == 0x02:  # ST
            mem[k] = a
        elif cls == 0x03:  # STX
            mem[k] = x
        elif cls == 0x04:  # ALU
            v = x if code & 0x08 else k
            op = code & 0xF0
            a = {0x00: a + v, 0x10: a - v, 0x20: a * v, 0x50: a & v, 0x40: a | v, 0xA0: a ^ v,
                 0x60: a << v, 0x70: a >> v}[op] & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            if op == 0x00:
                pc += k
                continue
            v = x if code & 0x08 else k
            cond = {0x10: a == v, 0x20: a > v, 0x30: a >= v, 0x40: bool(a & v)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # RET
            return a if code & 0x18 == 0x10 else k
        elif cls == 0x07:  # MISC
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
        else:
            raise AssertionError(f"instruction {code:#x}")


def test_stub_per_architecture():
    f = seccomp.compile_filter({**RUNC_LIKE, "architectures": [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]})
    EPERM_RET, ENOSYS_RET, ALLOW_RET = 0x50000 | errno.EPERM, 0x50000 | errno.ENOSYS, 0x7FFF0000

    def tok(name):
        return lib.seccomp_arch_resolve_name(name.encode())

    def on(arch, name):
        return lib.seccomp_syscall_resolve_name_arch(tok(arch), name.encode())

    AUDIT = {"x86_64": 0xC000003E, "x86": 0x40000003, "x32": 0xC000003E, "aarch64": 0xC00000B7,
             "arm": 0x40000028}
    for arch in AUDIT:
        top = max(on(arch, n) for n in ALLOWED + ["clone3", "clone", "personality", "socket"]
                  if on(arch, n) >= 0 and not (arch == "arm" and on(arch, n) >= 0xF0000))
        assert run_bpf(f.program, AUDIT[arch], on(arch, "read")) == ALLOW_RET, arch
        assert run_bpf(f.program, AUDIT[arch], on(arch, "acct")) == EPERM_RET, arch
        assert run_bpf(f.program, AUDIT[arch], on(arch, "clone3")) == ENOSYS_RET, arch
        assert run_bpf(f.program, AUDIT[arch], top) != ENOSYS_RET, arch
        assert run_bpf(f.program, AUDIT[arch], top + 1) == ENOSYS_RET, arch
        assert run_bpf(f.program, AUDIT[arch], top + 100) == ENOSYS_RET, arch
    # ARM's private syscalls (0x0f0000 up) keep the profile's answer.
    assert run_bpf(f.program, AUDIT["arm"], on("arm", "breakpoint")) == EPERM_RET
    # x86_64 numbers with the x32 bit are judged by the x32 cutoff, and the other way round.
    assert run_bpf(f.program, 0xC000003E, 0x40000000 | 300) != ENOSYS_RET
    assert run_bpf(f.program, 0xC000003E, 0x40000000 | 600) == ENOSYS_RET
    # An architecture not in the filter: libseccomp's bad-arch action (kill).
    assert run_bpf(f.program, 0x80000016, 1) == 0
    # The argument rules still work behind the stub.
    assert run_bpf(f.program, AUDIT["x86_64"], on("x86_64", "socket"), (40, 1, 0, 0, 0, 0)) == EPERM_RET
    assert run_bpf(f.program, AUDIT["x86_64"], on("x86_64", "socket"), (1, 1, 0, 0, 0, 0)) == ALLOW_RET


def test_stub_without_x32_leaves_x32_to_libseccomp():
    f = seccomp.compile_filter({**RUNC_LIKE, "architectures": ["SCMP_ARCH_X86_64"]})
    # No x32 in the filter: an x32 syscall never gets ENOSYS from the stub.
    assert run_bpf(f.program, 0xC000003E, 0x40000000 | 900) != 0x50000 | errno.ENOSYS
    assert run_bpf(f.program, 0xC000003E, 900) == 0x50000 | errno.ENOSYS


def test_masked_eq_without_value_two_means_zero():
    # Go's encoders drop a zero valueTwo; runc and libseccomp read it as 0.
    rule = {"names": ["acct"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]}
    explicit = dict(rule, args=[dict(rule["args"][0], valueTwo=0)])
    allow = {"defaultAction": "SCMP_ACT_ALLOW"}
    assert (seccomp.compile_filter({**allow, "syscalls": [rule]}).program
            == seccomp.compile_filter({**allow, "syscalls": [explicit]}).program)
