# setuptools reads everything else from pyproject.toml; cffi_modules has no pyproject key.
from setuptools import setup

setup(cffi_modules=["csrc/build.py:ffibuilder"])
