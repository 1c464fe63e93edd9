"""The conformance checks, one module per spec file; importing a module registers its checks."""
import importlib

MODULES = ["runtime", "runtime_linux", "config", "config_linux"]


def load_all() -> None:
    for m in MODULES:
        importlib.import_module(f"{__name__}.{m}")
