"""cffi build script (API mode, out of line): compiles csrc/ into runtime._trampoline."""
import os

from cffi import FFI

here = os.path.dirname(os.path.abspath(__file__))

# attrs: sysctl, personality, scheduler & co. (before trampoline, whose plan points to it);
# trampoline: the native stage of create/exec; bpf: the cgroup v2 device filter's syscalls.
PARTS = ("attrs", "trampoline", "bpf")

ffibuilder = FFI()
for part in PARTS:
    with open(os.path.join(here, f"{part}.h")) as header:
        ffibuilder.cdef(header.read())
ffibuilder.set_source(
    "runtime._trampoline",
    "".join(f'#include "{part}.h"\n' for part in PARTS),
    sources=[os.path.relpath(os.path.join(here, f"{part}.c")) for part in PARTS],
    include_dirs=[os.path.relpath(here)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror=implicit-function-declaration"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
