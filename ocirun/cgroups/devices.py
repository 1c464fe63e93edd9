"""Device access rules: `linux.resources.devices` for cgroup v1 files and as a cgroup v2 eBPF program.

The rule list a container gets is the config's rules with the devices every container needs
(/dev/null, /dev/zero, ..., ptys) and the config's `linux.devices` allowed right after the config's
last whole-class (`type a`) rule: a config that starts by denying everything still gets the
defaults, and a specific rule of the config (say, deny c 1:3) still wins over them. The start
state is "deny everything".

v1: the rules are replayed the way the kernel's devices controller treats them (an `a` rule resets
the default and drops the exceptions; any other rule adds to or takes access bits from the exception
of exactly that type:major:minor). `v1_rules` orders them so that devices.list shows the config's
entries in the listed order; `v1_writes` goes from what devices.list shows to that target with
the fewest writes, so an update never opens a window where a running container loses its devices.

v2 has no devices files: access is decided by a BPF_PROG_TYPE_CGROUP_DEVICE program. `program()`
assembles it: for each access bit asked for (mknod, read, write), the last rule that names the device
and that bit decides; a bit no rule names is denied.
"""
from ..errors import ConfigError

WILD = -1
_ACCESS_ORDER = "rwm"

# (type, major, minor, access): what runc and crun let every container use.
DEFAULT_ALLOWED = (
    ("c", WILD, WILD, "m"), ("b", WILD, WILD, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"),
    ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"), ("c", 136, WILD, "rwm"), ("c", 10, 200, "rwm"),
)


class Rule:
    """One normalized rule: type 'a', 'c' or 'b'; major/minor an int or WILD; access a subset of 'rwm'."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow, type_, major, minor, access):
        self.allow, self.type, self.major, self.minor, self.access = allow, type_, major, minor, access

    def __repr__(self):
        return f"{'allow' if self.allow else 'deny'} {self.text()}"

    def __eq__(self, other):
        return isinstance(other, Rule) and self.key() == other.key() and (self.allow, self.access) == (
            other.allow, other.access)

    def key(self):
        return (self.type, self.major, self.minor)

    def text(self) -> str:
        """The line for devices.allow / devices.deny."""
        if self.type == "a":
            return "a *:* rwm"
        return f"{self.type} {_num(self.major)}:{_num(self.minor)} {self.access}"


def _num(n: int) -> str:
    return "*" if n == WILD else str(n)


def _norm_access(access: str) -> str:
    return "".join(c for c in _ACCESS_ORDER if c in access)


def parse_rules(rules, where: str = "linux.resources.devices") -> list[Rule]:
    """Check and normalize the config's rules (ConfigError naming the rule's field)."""
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise ConfigError("must be a list of device rules", where)
    out = []
    for i, r in enumerate(rules):
        w = f"{where}[{i}]"
        if not isinstance(r, dict):
            raise ConfigError("a device rule must be an object", w)
        allow = r.get("allow")
        if not isinstance(allow, bool):
            raise ConfigError("is required and must be true or false", f"{w}.allow")
        type_ = r.get("type") or "a"
        if type_ not in ("a", "c", "b"):
            raise ConfigError(f"device type {type_!r} is not one of a (all), c (char), b (block)", f"{w}.type")
        access = r.get("access")
        if access is None or access == "":
            access = "rwm"
        if not isinstance(access, str) or any(c not in _ACCESS_ORDER for c in access):
            raise ConfigError(f"access {access!r} must be made of r, w and m", f"{w}.access")
        major = _number(r.get("major"), f"{w}.major")
        minor = _number(r.get("minor"), f"{w}.minor")
        if type_ == "a":
            major = minor = WILD
            access = "rwm"
        out.append(Rule(allow, type_, major, minor, _norm_access(access)))
    return out


def _number(v, where: str) -> int:
    if v is None:
        return WILD
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError("must be an integer", where)
    if v == -1:
        return WILD
    if not 0 <= v < 1 << 31:
        raise ConfigError(f"{v} is not a device number (0 or more, or -1 for any)", where)
    return v


def device_allows(devices) -> list[dict]:
    """`linux.devices` (config Device records or dicts) as allow rules, ready to store as JSON."""
    out = []
    for d in devices or ():
        get = d.get if isinstance(d, dict) else (lambda k, _d=d: getattr(_d, k, None))
        t = get("type")
        if t == "u":
            t = "c"
        if t not in ("c", "b") or get("major") is None or get("minor") is None:
            continue  # fifos have no device number to allow
        out.append({"allow": True, "type": t, "major": get("major"), "minor": get("minor"), "access": "rwm"})
    return out


def _defaults_and_cut(config_rules: list[Rule], extra_allows) -> tuple[list[Rule], int]:
    """The default allows (and the config's own devices), and where the config's last `a` rule ends."""
    defaults = [Rule(True, t, ma, mi, acc) for t, ma, mi, acc in DEFAULT_ALLOWED] + list(extra_allows)
    cut = 0
    for i, r in enumerate(config_rules):
        if r.type == "a":
            cut = i + 1
    return defaults, cut


def effective_rules(config_rules: list[Rule], extra_allows: list[Rule] = ()) -> list[Rule]:
    """The config's rules with the defaults (and the config's own devices) put after its last `a` rule."""
    defaults, cut = _defaults_and_cut(config_rules, extra_allows)
    return config_rules[:cut] + defaults + config_rules[cut:]


# --- cgroup v1 -----------------------------------------------------------------------------

def v1_rules(config_rules: list[Rule], extra_allows: list[Rule] = ()) -> list[Rule]:
    """The same target as effective_rules, ordered so that devices.list shows the config's
    entries in the listed order (the spec's MUST, and what runtime-tools reads): the defaults
    go last, less every bit a config rule after its last `a` rule denies for that very device.
    v1 exceptions are per exact type:major:minor, so the result is the same (v2's program
    matches wildcards, and keeps effective_rules' order)."""
    defaults, cut = _defaults_and_cut(config_rules, extra_allows)
    denied: dict = {}
    for r in config_rules[cut:]:
        if not r.allow:
            denied[r.key()] = denied.get(r.key(), "") + r.access
    tail = []
    for d in defaults:
        left = "".join(c for c in d.access if c not in denied.get(d.key(), ""))
        if left:
            tail.append(Rule(True, d.type, d.major, d.minor, left))
    return config_rules + tail


def emulate_v1(rules: list[Rule], default_allow: bool = False):
    """What the v1 devices controller holds after these rules: (default_allow, {key: access})."""
    exc: dict = {}
    for r in rules:
        if r.type == "a":
            default_allow, exc = r.allow, {}
        elif r.allow == default_allow:  # a rule that agrees with the default takes bits off the exception
            if r.key() in exc:
                left = "".join(c for c in exc[r.key()] if c not in r.access)
                if left:
                    exc[r.key()] = left
                else:
                    del exc[r.key()]
        else:
            exc[r.key()] = _norm_access(exc.get(r.key(), "") + r.access)
    return default_allow, exc


def parse_list(text: str):
    """devices.list as (default_allow, {key: access}); under default allow the denials aren't shown."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if any(p[0] == "a" for p in lines):
        return True, None
    exc = {}
    for t, nums, access in lines:
        ma, mi = nums.split(":")
        exc[(t, WILD if ma == "*" else int(ma), WILD if mi == "*" else int(mi))] = _norm_access(access)
    return False, exc


def v1_writes(rules: list[Rule], current_list: str, keep_order: bool = False) -> list[tuple[str, str]]:
    """(file, line) writes that take a v1 devices cgroup from `current_list` to the rules' target.

    The kernel lists exceptions in the order they were first made. With `keep_order` (a new
    cgroup) the fewest writes are taken only when they give the rules' order; else the list
    starts again from "deny all". An update of a running container never does that: it would
    open a window in which the container has no devices."""
    want_allow, want = emulate_v1(rules)
    have_allow, have = parse_list(current_list)
    writes = []
    if want_allow:
        writes.append(("devices.allow", "a *:* rwm"))
        writes += [("devices.deny", _line(k, acc)) for k, acc in want.items()]
        return writes
    if not have_allow and have is not None and keep_order:
        kept = [k for k in have if k in want]
        if kept != list(want)[:len(kept)]:
            have_allow = True  # the order can't be mended in place
    if have_allow or have is None:
        writes.append(("devices.deny", "a *:* rwm"))
        have = {}
    # Grant first, then take away: nothing still wanted is ever missing in between.
    for k, acc in want.items():
        add = "".join(c for c in acc if c not in have.get(k, ""))
        if add:
            writes.append(("devices.allow", _line(k, add)))
    for k, acc in have.items():
        drop = "".join(c for c in acc if c not in want.get(k, ""))
        if drop:
            writes.append(("devices.deny", _line(k, drop)))
    return writes


def _line(key, access: str) -> str:
    t, ma, mi = key
    return f"{t} {_num(ma)}:{_num(mi)} {access}"


# --- cgroup v2: the eBPF program -------------------------------------------------------------

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: access_type is
# (access << 16) | type, with type BPF_DEVCG_DEV_BLOCK 1 / CHAR 2 and access MKNOD 1 / READ 2 / WRITE 4.
DEV_TYPE = {"b": 1, "c": 2}
ACC_BIT = {"m": 1, "r": 2, "w": 4}

# Opcodes (linux/bpf_common.h, linux/bpf.h).
LDX_MEM_W = 0x61    # BPF_LDX | BPF_MEM | BPF_W
MOV64_REG = 0xbf    # BPF_ALU64 | BPF_MOV | BPF_X
MOV64_IMM = 0xb7    # BPF_ALU64 | BPF_MOV | BPF_K
AND64_IMM = 0x57    # BPF_ALU64 | BPF_AND | BPF_K
RSH64_IMM = 0x77    # BPF_ALU64 | BPF_RSH | BPF_K
JA = 0x05           # BPF_JMP | BPF_JA
JEQ_IMM = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
JNE_IMM = 0x55      # BPF_JMP | BPF_JNE | BPF_K
JSET_IMM = 0x45     # BPF_JMP | BPF_JSET | BPF_K
EXIT = 0x95         # BPF_JMP | BPF_EXIT

R0, R1, R2, R3, R4, R5 = range(6)
_TYPE, _ACCESS, _MAJOR, _MINOR = R2, R3, R4, R5


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> tuple:
    return (code, dst, src, off, imm)


def encode(insns: list[tuple]) -> bytes:
    """struct bpf_insn, 8 bytes each: u8 code, u8 dst:4|src:4 (dst in the low nibble), s16 off, s32 imm."""
    out = bytearray()
    for code, dst, src, off, imm in insns:
        out += bytes((code, (src << 4) | dst))
        out += (off & 0xffff).to_bytes(2, "little")
        out += (imm & 0xffffffff).to_bytes(4, "little")
    return bytes(out)


def program(rules: list[Rule]) -> list[tuple]:
    """The device program for these rules, as a list of (code, dst, src, off, imm)."""
    code: list = []  # entries: an insn tuple, or ("jump", opcode, dst, imm, label), or ("label", name)
    code += [
        insn(LDX_MEM_W, _TYPE, R1, 0),
        insn(MOV64_REG, _ACCESS, _TYPE),
        insn(RSH64_IMM, _ACCESS, imm=16),
        insn(AND64_IMM, _TYPE, imm=0xffff),
        insn(LDX_MEM_W, _MAJOR, R1, 4),
        insn(LDX_MEM_W, _MINOR, R1, 8),
    ]
    n = 0
    for letter in "mrw":
        bit = ACC_BIT[letter]
        done = f"bit_{letter}_ok"
        code.append(insn(JSET_IMM, _ACCESS, imm=bit, off=1))   # asked for: check the rules
        code.append(("jump", JA, 0, 0, done))                    # not asked for: next bit
        decided = False
        for r in reversed(rules):
            if letter not in r.access:
                continue
            n += 1
            skip = f"rule_{n}_skip"
            tests = []
            if r.type != "a":
                tests.append(("jump", JNE_IMM, _TYPE, DEV_TYPE[r.type], skip))
                if r.major != WILD:
                    tests.append(("jump", JNE_IMM, _MAJOR, r.major, skip))
                if r.minor != WILD:
                    tests.append(("jump", JNE_IMM, _MINOR, r.minor, skip))
            code += tests
            if r.allow:
                code.append(("jump", JA, 0, 0, done))
            else:
                code += [insn(MOV64_IMM, R0, imm=0), insn(EXIT)]
            if not tests:  # matches every device: the rules before it can't decide this bit
                if r.allow:
                    code.pop()  # falling through reaches `done`; a jump to the next insn is noise
                decided = True
                break
            code.append(("label", skip))
        if not decided:
            code += [insn(MOV64_IMM, R0, imm=0), insn(EXIT)]  # no rule names this bit: deny
        code.append(("label", done))
    code += [insn(MOV64_IMM, R0, imm=1), insn(EXIT)]
    return _resolve(code)


def _resolve(code: list) -> list[tuple]:
    labels, pc = {}, 0
    for item in code:
        if item[0] == "label":
            labels[item[1]] = pc
        else:
            pc += 1
    out = []
    for item in code:
        if item[0] == "label":
            continue
        if item[0] == "jump":
            _, op, dst, imm, label = item
            out.append(insn(op, dst, 0, labels[label] - len(out) - 1, imm))
        else:
            out.append(item)
    return out
