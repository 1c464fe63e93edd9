# setuptools reads everything else from pyproject.toml. cffi_modules has no pyproject key, and
# bin/ocirun is a plain script rather than a generated entry point so that it can start the
# interpreter in isolated mode without the site scan (see docs/benchmarks.md).
from setuptools import setup

setup(cffi_modules=["csrc/build.py:ffibuilder", "csrc/seccomp_build.py:ffibuilder"], scripts=["bin/ocirun"])
