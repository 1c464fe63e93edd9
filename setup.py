# setuptools reads everything else from pyproject.toml. cffi_modules has no pyproject key, and
# the `ocirun` command is csrc/launcher.c, compiled here: pip rewrites a `#!python` script's
# first line and drops the -I -S it needs (docs/benchmarks.md, "Start-up").
import os
import subprocess
import sys
import sysconfig

from setuptools import setup
from distutils.command.build_scripts import build_scripts  # after setuptools: its own distutils


class BuildLauncher(build_scripts):
    """The one script is a native program: built, not copied (pip installs it as it is)."""

    def run(self):
        os.makedirs(self.build_dir, exist_ok=True)
        out = os.path.join(self.build_dir, "ocirun")
        # The interpreter this is built for, when the install has no bin/python3 beside it (a
        # --user or system install); pip's isolated build env is a venv over it.
        python = getattr(sys, "_base_executable", None) or sys.executable
        cc = (sysconfig.get_config_var("CC") or "cc").split()
        version = "%d.%d" % sys.version_info[:2]
        subprocess.check_call([*cc, "-O2", "-Wall", "-Werror", f'-DPYTHON="{os.path.realpath(python)}"',
                               f'-DPYVER="{version}"', "-o", out, "csrc/launcher.c"])


setup(cffi_modules=["csrc/build.py:ffibuilder", "csrc/seccomp_build.py:ffibuilder"],
      scripts=["csrc/launcher.c"], cmdclass={"build_scripts": BuildLauncher})
