"""`ocirun check` and `ocirun.check()`: every problem of a config.json, not only the first.

`create` stops at the first violation (ocirun/schema.py, with no json or re on its path). A
report of all of them is jsonschema's job: it reads spec/config.schema.json (installed as
PREFIX/share/ocirun/spec by pyproject.toml; a checkout's own spec/) and gives every error with
its place. Where the schema finds nothing, the checks `create` makes beyond it follow: the
stricter schema rules of schema.py (an integer written 1.0, NUL in a string) and the
semantic ones of config.py (a rootfs that exists, mappings with a user namespace, ...), each of
which stops at its first problem.
"""
from __future__ import annotations

import json
import os
from typing import Any

from .errors import ConfigError, OciError


def schema_file(name: str = "config") -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.path.join(os.path.dirname(here), "spec"),  # a checkout
              os.path.join(here, "..", "..", "..", "..", "share", "ocirun", "spec")):  # PREFIX/lib/pythonX.Y/site-packages
        path = os.path.normpath(os.path.join(d, f"{name}.schema.json"))
        if os.path.exists(path):
            return path
    raise OciError(f"{name}.schema.json not found beside the package (a broken install)")


def _where(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def problems(doc: Any, bundle: str | None = None) -> list[tuple[str, str]]:
    """(JSON path, message) for each problem of config.json `doc`; with `bundle`, the checks
    that need the bundle too (the rootfs, bind sources, namespace paths)."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        raise OciError("a full report needs the Python package jsonschema (pip install jsonschema)") from None
    with open(schema_file()) as f:
        validator = Draft202012Validator(json.load(f))
    found = sorted(((_where(e.absolute_path), e.message) for e in validator.iter_errors(doc)),
                   key=lambda p: p[0])
    if found:
        return found
    from . import config, schema

    try:
        schema.check_config(doc)
        if bundle is not None:
            config.convert(doc, bundle)
    except ConfigError as e:
        return [(e.where or "", e.message)]
    return []


def check_bundle(bundle: str) -> list[str]:
    """`ocirun check --bundle B`: one line per problem of B/config.json."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise OciError((e.strerror or str(e)).lower(), path) from None
    except ValueError as e:
        raise OciError(f"not JSON: {e}", path) from None
    return [f"{path}: {where}: {message}" if where else f"{path}: {message}"
            for where, message in problems(doc, os.path.abspath(bundle))]
