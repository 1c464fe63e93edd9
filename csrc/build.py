"""cffi build script (API mode, out of line): compiles csrc/ into runtime._trampoline."""
import os

from cffi import FFI

here = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
with open(os.path.join(here, "trampoline.h")) as header:
    ffibuilder.cdef(header.read())
ffibuilder.set_source(
    "runtime._trampoline",
    '#include "trampoline.h"',
    sources=[os.path.relpath(os.path.join(here, "trampoline.c"))],
    include_dirs=[os.path.relpath(here)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror=implicit-function-declaration"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
