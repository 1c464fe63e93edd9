"""ocirun: an OCI runtime, as a command (ocirun.cli) and as a library (docs/api.md):

    import ocirun
    rt = ocirun.Runtime(root="/run/ocirun")
    c = rt.run("demo", "/path/to/bundle")
    code = c.wait()
    c.delete()

The names below load on first use: the CLI's hot path imports this package and must stay small.
"""
__version__ = "0.1.0"

_LAZY = {"Runtime": "api", "Container": "api", "State": "api", "Process": "api",
         "Error": "errors", "ConfigError": "errors", "NotFound": "errors", "AlreadyExists": "errors",
         "WrongState": "errors", "check": "api"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        value = getattr(module, "OciError" if name == "Error" else name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
