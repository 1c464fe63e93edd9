"""linux.seccomp: the profile compiled, in the ocirun process, into one classic-BPF program.

The container init is a C trampoline that runs no Python and links no libseccomp: all it does
is hand `Filter.program` to seccomp(2) with `Filter.flags` as the last step before execve (see
the integration notes in the docstring of `Filter`). So everything libseccomp would do at
`seccomp_load` time is done here instead: we build the filter with libseccomp, export the BPF,
prepend our own -ENOSYS stub (below), and compute the seccomp(2) flags ourselves.

Only imported when config.json has linux.seccomp.

What the profile's fields become (config-linux.md, "Seccomp"):
  defaultAction / defaultErrnoRet   the filter's default action; errnoRet only with ERRNO/TRACE
  architectures                     added to the filter next to the native one, before any rule
  flags                             SECCOMP_FILTER_FLAG_* bits of the seccomp(2) call
  syscalls[].names/action/errnoRet  one rule per name; names libseccomp does not know are skipped
                                    with a debug line (like runc); a rule whose action is the
                                    default action is left out (libseccomp refuses it)
  syscalls[].args                   comparisons on distinct argument indexes are ANDed in one
                                    rule; several comparisons on the same index become one rule
                                    each, i.e. ORed (what runc does, and what libseccomp allows)
  SCMP_ACT_NOTIFY                   adds SECCOMP_FILTER_FLAG_NEW_LISTENER; the listener fd goes
                                    to listenerPath (ocirun/seccomp_notify.py)

-ENOSYS for syscalls newer than the profile: libc falls back from a new syscall to an old one
(clone3 -> clone, faccessat2 -> faccessat, statx -> fstatat, ...) only when the new one fails
with ENOSYS. A profile's default action (EPERM, say) would stop that fallback for every syscall
the profile's author did not know about. Like runc, we take "the profile knows a syscall" to
mean "its number is at most the highest syscall number the profile names on that
architecture", and we *prepend a check on the syscall number* to libseccomp's program: per
architecture in the filter, a syscall numbered above that cutoff returns -ENOSYS before the
profile's rules are looked at. (The other approach, explicit ENOSYS rules for a hard-coded list
of newer syscalls, needs the list kept up to date with every kernel and misses syscalls that
libseccomp does not know yet; the number check covers both, at 4-6 instructions per
architecture.) Since every named syscall is at or below the cutoff, no rule of the profile is
shadowed. Details:
  - only when the default action refuses (KILL*, TRAP, ERRNO, TRACE): with ALLOW or LOG the
    kernel's own ENOSYS already gets through; and not when the default is ERRNO(ENOSYS);
  - x32 shares AUDIT_ARCH_X86_64 with x86_64 and marks its syscalls with bit 30, so that
    architecture compares against two cutoffs, chosen by that bit;
  - 32-bit ARM keeps private syscalls at 0x0f0000 and up (cacheflush, set_tls, ...): they are
    left out of the cutoff and never get -ENOSYS from the stub;
  - s390/s390x multiplex syscall numbers above 255 through syscall 0, which the kernel leaves
    in place for a number it does not know: 0 always gets -ENOSYS there;
  - an architecture of which the profile names no syscall gets no check.
"""
import os
import struct

from . import log
from .errors import ConfigError, OciError

try:
    from ._seccomp import ffi, lib
except ImportError as e:  # built without libseccomp
    ffi = lib = None
    _import_error = str(e)

W = "linux.seccomp"

# The architectures config-linux.md lists (libseccomp 2.6); which ones work depends on the
# libseccomp ocirun was built against.
SPEC_ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)
ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")

# The syscall the init makes, after installing the filter, to hand the notify listener fd to
# ocirun (sendmsg over the sync socket). Notifying it would deadlock: the agent only gets the
# listener after that call returns. runc refuses NOTIFY for its own hand-over syscall the same
# way; keep this in step with csrc/trampoline.c.
HANDOFF_SYSCALLS = ("sendmsg",)

EPERM = 1
ENOSYS = 38
MAX_ERRNO = 4095
BPF_MAXINSNS = 4096
U64 = (1 << 64) - 1

# Kernel ABI: audit arch values and classic-BPF opcodes.
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_ARM = 0x40000028
AUDIT_ARCH_S390 = 0x16
AUDIT_ARCH_S390X = 0x80000016
X32_SYSCALL_BIT = 0x40000000
ARM_PRIVATE_BASE = 0x0F0000
_LD_W_ABS = 0x20      # BPF_LD | BPF_W | BPF_ABS
_LD_IMM = 0x00        # BPF_LD | BPF_W | BPF_IMM
_JA = 0x05            # BPF_JMP | BPF_JA
_JEQ = 0x15           # BPF_JMP | BPF_JEQ | BPF_K
_JGT = 0x25           # BPF_JMP | BPF_JGT | BPF_K
_JGE = 0x35           # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45          # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06           # BPF_RET | BPF_K
_INSN = struct.Struct("=HBBI")   # struct sock_filter, native byte order
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4


class Filter:
    """A compiled linux.seccomp.

    program            struct sock_filter[] (8 bytes an instruction, native byte order): the
                       `filter` of the struct sock_fprog; `len` is `ninsns` (<= 4096)
    flags              SECCOMP_FILTER_FLAG_* for seccomp(SECCOMP_SET_MODE_FILTER, flags, &fprog)
    notify             some rule uses SCMP_ACT_NOTIFY: flags has NEW_LISTENER, seccomp(2) returns
                       the listener fd, which the init hands to ocirun for send_listener()
    listener_path      linux.seccomp.listenerPath (None when not set)
    listener_metadata  linux.seccomp.listenerMetadata (None when not set)

    The init installs it with the seccomp(2) syscall (flags can be non-zero, so not
    prctl(PR_SET_SECCOMP)). That needs no_new_privs or CAP_SYS_ADMIN in the init's user
    namespace: with process.noNewPrivileges, as late as possible before execve; without it,
    before the capabilities are dropped (and the profile must then allow what follows).
    """

    __slots__ = ("program", "flags", "notify", "listener_path", "listener_metadata")

    def __init__(self, program: bytes, flags: int, notify: bool, listener_path, listener_metadata):
        self.program = program
        self.flags = flags
        self.notify = notify
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata

    @property
    def ninsns(self) -> int:
        return len(self.program) // _INSN.size

    def __repr__(self) -> str:
        return (f"Filter(ninsns={self.ninsns}, flags={self.flags:#x}, notify={self.notify}, "
                f"listener_path={self.listener_path!r})")


def _need_lib() -> None:
    if lib is None:
        raise OciError(f"seccomp is not available: ocirun was built without libseccomp ({_import_error})",
                       W)


def libseccomp_version() -> str:
    _need_lib()
    v = lib.seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}"


def _is_uint(v, top: int) -> bool:
    return type(v) is int and 0 <= v <= top


def _action(name, ret, where_action: str, where_ret: str) -> int:
    """SCMP_ACT_* name (and errnoRet) -> the 32-bit action value."""
    if not isinstance(name, str) or name not in ACTIONS:
        raise ConfigError(f"unknown seccomp action {name!r} (known: {', '.join(ACTIONS)})", where_action)
    if name == "SCMP_ACT_ERRNO":
        if ret is None:
            ret = EPERM
        elif not _is_uint(ret, MAX_ERRNO):
            raise ConfigError(f"errno return code must be an integer from 0 to {MAX_ERRNO}, not {ret!r}",
                              where_ret)
        value = lib.OCIRUN_ACT_ERRNO | ret
    elif name == "SCMP_ACT_TRACE":
        if ret is None:
            ret = EPERM
        elif not _is_uint(ret, 0xFFFF):
            raise ConfigError(f"trace return code must be an integer from 0 to 65535, not {ret!r}",
                              where_ret)
        value = lib.OCIRUN_ACT_TRACE | ret
    else:
        if ret is not None:
            raise ConfigError(f"{name} takes no errno return code (only SCMP_ACT_ERRNO and "
                              "SCMP_ACT_TRACE do)", where_ret)
        value = getattr(lib, name)
    return value


def _check_action_available(name: str, value: int, where: str, seen: set) -> None:
    base = value & 0xFFFF0000
    if base in seen:
        return
    seen.add(base)
    rc = lib.ocirun_seccomp_action_available(base)
    if rc == -95:  # EOPNOTSUPP: the kernel does not know this action
        raise ConfigError(f"{name} is not supported by this kernel", where)


def _arch_token(name, where: str) -> int:
    if not isinstance(name, str):
        raise ConfigError(f"architecture must be a string, not {name!r}", where)
    token = 0
    if name.startswith("SCMP_ARCH_") and name != "SCMP_ARCH_NATIVE":
        token = lib.seccomp_arch_resolve_name(name[10:].lower().encode())
    if token == 0:
        if name in SPEC_ARCHES:
            raise ConfigError(f"architecture {name} is not supported by libseccomp "
                              f"{libseccomp_version()}", where)
        raise ConfigError(f"unknown seccomp architecture {name!r}", where)
    return token


def _arch_name(token: int) -> str:
    for name in SPEC_ARCHES:
        if lib.seccomp_arch_resolve_name(name[10:].lower().encode()) == token:
            return name
    return hex(token)


def _flags(names, where: str) -> int:
    if names is None:
        return 0
    if not isinstance(names, list):
        raise ConfigError("must be an array of strings", where)
    flags = 0
    for i, name in enumerate(names):
        here = f"{where}[{i}]"
        if not isinstance(name, str) or name not in FLAGS:
            raise ConfigError(f"unknown seccomp flag {name!r} (known: {', '.join(FLAGS)})", here)
        bit = getattr(lib, name)
        probe = bit
        if name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
            probe |= lib.SECCOMP_FILTER_FLAG_NEW_LISTENER  # only valid with a listener
        if lib.ocirun_seccomp_flags_supported(probe) == -22:  # EINVAL: unknown to this kernel
            raise ConfigError(f"{name} is not supported by this kernel", here)
        flags |= bit
    return flags


def _comparisons(args, where: str) -> list:
    """syscalls[i].args -> [(index, op, datum_a, datum_b, where), ...], checked."""
    if args is None:
        return []
    if not isinstance(args, list):
        raise ConfigError("must be an array", where)
    out = []
    for j, arg in enumerate(args):
        here = f"{where}[{j}]"
        if not isinstance(arg, dict):
            raise ConfigError("must be an object", here)
        op = arg.get("op")
        if not isinstance(op, str) or op not in OPERATORS:
            raise ConfigError(f"unknown seccomp operator {op!r} (known: {', '.join(OPERATORS)})", f"{here}.op")
        index = arg.get("index")
        if not _is_uint(index, 5):
            raise ConfigError(f"argument index must be an integer from 0 to 5, not {index!r}", f"{here}.index")
        if "value" not in arg:
            raise ConfigError(f"{op} needs `value`", here)
        value = arg["value"]
        if not _is_uint(value, U64):
            raise ConfigError(f"must be an unsigned 64-bit integer, not {value!r}", f"{here}.value")
        two = arg.get("valueTwo")
        if two is not None and not _is_uint(two, U64):
            raise ConfigError(f"must be an unsigned 64-bit integer, not {two!r}", f"{here}.valueTwo")
        if op == "SCMP_CMP_MASKED_EQ":
            # (argument & value) == valueTwo; valueTwo is optional and defaults to 0, as Go's
            # encoders leave a zero out (runtime-tools' and runc's profiles rely on it).
            pass
        elif two:
            # One operand. Profiles in the wild (Docker's) carry "valueTwo": 0 on these, so only a
            # value that would change the meaning is refused.
            raise ConfigError(f"{op} compares one value; valueTwo ({two}) is only for "
                              "SCMP_CMP_MASKED_EQ", here)
        out.append((index, getattr(lib, op), value, two or 0, here))
    return out


def _rule_sets(cmps: list) -> list:
    """The comparisons of one syscalls[] entry as the argument arrays of its rules."""
    indexes = [c[0] for c in cmps]
    if len(set(indexes)) == len(indexes):
        return [cmps]  # one rule, all comparisons ANDed
    return [[c] for c in cmps]  # same index more than once: one rule each (ORed)


def _add_rule(ctx, action: int, nr: int, cmps: list, name: str, where: str) -> None:
    arr = ffi.new("struct scmp_arg_cmp[]", len(cmps) or 1)
    for k, (index, op, a, b, _) in enumerate(cmps):
        arr[k].arg = index
        arr[k].op = op
        arr[k].datum_a = a
        arr[k].datum_b = b
    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr if cmps else ffi.NULL)
    if rc < 0:
        raise ConfigError(f"libseccomp refused the rule for syscall {name}: {os.strerror(-rc)}", where)


# --- the -ENOSYS stub -------------------------------------------------------------------------

def _cutoffs(tokens: list, names: list) -> dict:
    """audit arch -> {"plain": highest nr, "x32": highest nr} of the syscalls named, per mode."""
    out = {}
    for token in tokens:
        x32 = token == lib.seccomp_arch_resolve_name(b"x32")
        audit = AUDIT_ARCH_X86_64 if x32 else token
        top = -1
        for name in names:
            nr = lib.seccomp_syscall_resolve_name_arch(token, name)
            if nr < 0:  # not a syscall of this architecture (a pseudo number), or unknown
                continue
            if audit == AUDIT_ARCH_ARM and nr >= ARM_PRIVATE_BASE:
                continue
            top = max(top, nr)
        if top >= 0:
            out.setdefault(audit, {})["x32" if x32 else "plain"] = top
    return out


def _enosys_stub(cutoffs: dict, first_insn) -> list:
    """The check prepended to libseccomp's program, as (code, jt, jf, k) with jt/jf either
    relative offsets or the labels "enosys" / "filter"."""
    code = [(_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH)]
    for audit, cut in cutoffs.items():
        section = [(_LD_W_ABS, 0, 0, SECCOMP_DATA_NR)]
        if audit in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
            section.append((_JEQ, "enosys", 0, 0))

        def check(top):
            if top is None:
                return [(_JA, 0, 0, "filter")]
            if audit == AUDIT_ARCH_ARM:
                return [(_JGT, 0, "filter", top), (_JGE, "filter", "enosys", ARM_PRIVATE_BASE)]
            return [(_JGT, "enosys", "filter", top)]

        if audit == AUDIT_ARCH_X86_64:
            plain, x32 = check(cut.get("plain")), check(cut.get("x32"))
            section.append((_JSET, len(plain), 0, X32_SYSCALL_BIT))
            section += plain + x32
        else:
            section += check(cut.get("plain"))
        code.append((_JEQ, 0, len(section), audit))
        code += section
    code.append((_JA, 0, 0, "filter"))
    enosys = len(code)
    code.append((_RET, 0, 0, SECCOMP_RET_ERRNO | ENOSYS))
    filter_at = len(code)
    # libseccomp's program starts by loading the arch; if it ever did not, give it the A it
    # would have had (0) rather than what the stub left there.
    if first_insn is None or first_insn[0] & 0x07 != 0x00:  # BPF_CLASS != BPF_LD
        code.append((_LD_IMM, 0, 0, 0))

    def rel(target, at):
        if target == "enosys":
            target = enosys - at - 1
        elif target == "filter":
            target = filter_at - at - 1
        if not 0 <= target <= 255:
            raise OciError(f"internal error: seccomp stub jump of {target}", W)
        return target

    out = []
    for at, (op, jt, jf, k) in enumerate(code):
        if op == _JA:
            out.append((op, 0, 0, filter_at - at - 1))
        else:
            out.append((op, rel(jt, at), rel(jf, at), k))
    return out


# --- compile ----------------------------------------------------------------------------------

def compile_filter(seccomp: dict) -> Filter:
    """linux.seccomp -> Filter; ConfigError naming the field for anything wrong."""
    _need_lib()
    if not isinstance(seccomp, dict):
        raise ConfigError("must be an object", W)
    seen_actions: set = set()
    default_name = seccomp.get("defaultAction")
    default = _action(default_name, seccomp.get("defaultErrnoRet"), f"{W}.defaultAction",
                      f"{W}.defaultErrnoRet")
    if default_name == "SCMP_ACT_NOTIFY":
        raise ConfigError("SCMP_ACT_NOTIFY cannot be the default action: the container's init "
                          "would wait on the agent before it could hand it the listener", f"{W}.defaultAction")
    _check_action_available(default_name, default, f"{W}.defaultAction", seen_actions)
    flags = _flags(seccomp.get("flags"), f"{W}.flags")

    listener_path = seccomp.get("listenerPath") or None
    listener_metadata = seccomp.get("listenerMetadata") or None
    if listener_path is not None and not isinstance(listener_path, str):
        raise ConfigError("must be a string", f"{W}.listenerPath")
    if listener_metadata is not None:
        if not isinstance(listener_metadata, str):
            raise ConfigError("must be a string", f"{W}.listenerMetadata")
        if listener_path is None:
            raise ConfigError("listenerMetadata must not be set without listenerPath", f"{W}.listenerMetadata")

    arches = seccomp.get("architectures") or []
    if not isinstance(arches, list):
        raise ConfigError("must be an array of strings", f"{W}.architectures")
    tokens = {lib.seccomp_arch_native(): W}  # arch token -> the field that asks for it
    for i, name in enumerate(arches):
        here = f"{W}.architectures[{i}]"
        tokens.setdefault(_arch_token(name, here), here)

    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise ConfigError("must be an array", f"{W}.syscalls")

    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise ConfigError(f"libseccomp refused the default action {default_name}", f"{W}.defaultAction")
    try:
        # Load-time attributes are irrelevant to an exported program (we pass our own flags to
        # seccomp(2)); no_new_privs is the init's business (process.noNewPrivileges).
        lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_NNP, 0)
        # Architectures before rules: libseccomp only puts a rule in the architectures the
        # filter has when the rule is added.
        for token, here in tokens.items():
            rc = lib.seccomp_arch_add(ctx, token)
            if rc == -17:  # EEXIST: the native one is there from seccomp_init
                continue
            if rc == -33:  # EDOM
                raise ConfigError("this architecture's byte order differs from the native one's "
                                  f"({_arch_name(lib.seccomp_arch_native())}); one filter cannot hold both", here)
            if rc < 0:
                raise ConfigError(f"libseccomp refused the architecture: {os.strerror(-rc)}", here)

        named = {}   # every name libseccomp knows, for the -ENOSYS cutoffs (a dict: ordered, unique)
        notify = False
        for i, entry in enumerate(syscalls):
            here = f"{W}.syscalls[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError("must be an object", here)
            names = entry.get("names")
            if not isinstance(names, list) or not names:
                raise ConfigError("must be a non-empty array of syscall names", f"{here}.names")
            act_name = entry.get("action")
            action = _action(act_name, entry.get("errnoRet"), f"{here}.action", f"{here}.errnoRet")
            _check_action_available(act_name, action, f"{here}.action", seen_actions)
            cmps = _comparisons(entry.get("args"), f"{here}.args")
            rule_sets = _rule_sets(cmps)
            for k, name in enumerate(names):
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"syscall name must be a non-empty string, not {name!r}", f"{here}.names[{k}]")
                bname = name.encode()
                nr = lib.seccomp_syscall_resolve_name(bname)
                if nr == lib.__NR_SCMP_ERROR:
                    log.debug(f"seccomp: skipping unknown syscall {name!r} ({here}.names[{k}]): "
                              f"not known to libseccomp {libseccomp_version()}")
                    continue
                named[bname] = None
                if act_name == "SCMP_ACT_NOTIFY":
                    if name in HANDOFF_SYSCALLS:
                        raise ConfigError(f"SCMP_ACT_NOTIFY cannot be used for {name}: the container's "
                                          "init uses it to hand the listener fd over", f"{here}.names[{k}]")
                    notify = True
                if action == default:
                    continue  # the default does it; libseccomp refuses such a rule
                for rule in rule_sets:
                    _add_rule(ctx, action, nr, rule, name, here)

        buf = ffi.new("void **")
        size = ffi.new("size_t *")
        rc = lib.ocirun_export_bpf(ctx, buf, size)
        if rc < 0:
            raise OciError(f"libseccomp could not export the filter: {os.strerror(-rc)}", W)
        try:
            program = ffi.buffer(buf[0], size[0])[:]
        finally:
            lib.free(buf[0])
    finally:
        lib.seccomp_release(ctx)

    if not program:
        raise OciError("libseccomp exported an empty filter", W)
    permissive = default_name in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
    if not permissive and default != lib.OCIRUN_ACT_ERRNO | ENOSYS:
        cut = _cutoffs(list(tokens), list(named))
        if cut:
            stub = _enosys_stub(cut, _INSN.unpack_from(program, 0))
            program = b"".join(_INSN.pack(*insn) for insn in stub) + program
    n = len(program) // _INSN.size
    if n > BPF_MAXINSNS:
        raise ConfigError(f"the compiled filter has {n} instructions, more than the kernel's limit "
                          f"of {BPF_MAXINSNS}", f"{W}.syscalls")

    if notify:
        if listener_path is None:
            raise ConfigError("SCMP_ACT_NOTIFY is used but listenerPath is not set", f"{W}.listenerPath")
        flags |= lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
        if flags & lib.SECCOMP_FILTER_FLAG_TSYNC:
            # The kernel refuses TSYNC with a listener unless a failed sync reports ESRCH
            # (there would be no fd to return the thread id in).
            flags |= lib.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    elif flags & lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV:
        # Only meaningful for (and only accepted with) a notify listener.
        log.debug("seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no rule uses SCMP_ACT_NOTIFY")
        flags &= ~lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    if flags and lib.ocirun_seccomp_flags_supported(flags) == -22:
        raise ConfigError(f"this kernel refuses the seccomp flag combination {flags:#x}", f"{W}.flags")
    return Filter(program, flags, notify, listener_path, listener_metadata)


def features() -> dict:
    """The `seccomp` object of `ocirun features` (runtime-spec features.md)."""
    if lib is None:
        return {"enabled": False}
    archs = [a for a in SPEC_ARCHES if lib.seccomp_arch_resolve_name(a[10:].lower().encode())]
    supported = []
    for name in FLAGS:
        probe = getattr(lib, name)
        if name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
            probe |= lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
        if lib.ocirun_seccomp_flags_supported(probe) == 0:
            supported.append(name)
    return {"enabled": True, "actions": list(ACTIONS), "operators": list(OPERATORS),
            "archs": archs, "knownFlags": list(FLAGS), "supportedFlags": supported}
