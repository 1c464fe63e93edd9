"""cffi build script (API mode, out of line): compiles csrc/ into ocirun._trampoline."""
import os

from cffi import FFI

here = os.path.dirname(os.path.abspath(__file__))

# attrs: sysctl, personality, scheduler & co. (before trampoline, whose plan points to it);
# trampoline: the native stage of create/exec; shrink: the created init's unmapping of the
# runtime's memory (after trampoline, whose struct oci_plan it copies); sealexe: the children's
# executable swapped for a sealed memfd; bpf: the cgroup v2 device filter's syscalls.
PARTS = ("attrs", "trampoline", "shrink", "sealexe", "bpf")

ffibuilder = FFI()
for part in PARTS:
    with open(os.path.join(here, f"{part}.h")) as header:
        ffibuilder.cdef(header.read())
ffibuilder.set_source(
    "ocirun._trampoline",
    "".join(f'#include "{part}.h"\n' for part in PARTS),
    sources=[os.path.relpath(os.path.join(here, f"{part}.c")) for part in PARTS],
    include_dirs=[os.path.relpath(here)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror=implicit-function-declaration"],
    # Every symbol bound at load: once the init has unmapped the interpreter (shrink.c), a lazy
    # PLT binding would walk link maps and symbol tables that are gone.
    extra_link_args=["-Wl,-z,now"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
