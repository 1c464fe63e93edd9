#!/usr/bin/env python3
"""Compile spec/*.schema.json into ocirun/_schemas.py (plain Python literals).

ocirun.schema must not import json or re on the hot path of `ocirun create`, so the
JSON Schemas are turned into Python dicts here, ahead of time, and pre-resolved:
$refs become shared objects, enums become frozensets, error messages are pre-rendered,
annotation keywords are dropped, and keywords are stored in the order they are checked.

    python3 scripts/gen_schema.py           # rewrite ocirun/_schemas.py
    python3 scripts/gen_schema.py --check   # exit 1 if it is out of date
"""
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = (("CONFIG", "config"), ("STATE", "state"), ("FEATURES", "features"))
OUTPUT = os.path.join(REPO, "ocirun", "_schemas.py")

# Keywords ocirun.schema implements, in the order it evaluates them.
CHECKED = ("type", "const", "enum", "minimum", "maximum", "minLength", "pattern", "minItems", "items",
           "required", "dependentRequired", "properties", "additionalProperties", "propertyNames",
           "if", "then", "else", "anyOf")
IGNORED = {"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default"}
TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
              "object": "an object", "array": "an array", "null": "null"}


class SchemaError(Exception):
    pass


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise SchemaError(f"duplicate key in {keys}")
    return dict(pairs)


def load(name):
    with open(os.path.join(REPO, "spec", f"{name}.schema.json"), encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=_no_duplicates)


class Compiler:
    def __init__(self, doc, prefix):
        self.defs = doc.get("$defs", {})
        self.prefix = prefix
        self.done = {}      # def name -> compiled node
        self.order = []     # def names, dependencies first
        self.busy = set()

    def ref(self, ref):
        if not ref.startswith("#/$defs/") or ref[8:] not in self.defs:
            raise SchemaError(f"unsupported $ref {ref!r}")
        name = ref[8:]
        if name not in self.done:
            if name in self.busy:
                raise SchemaError(f"recursive $ref {ref!r} is not supported")
            self.busy.add(name)
            self.done[name] = self.node(self.defs[name])
            self.busy.discard(name)
            self.order.append(name)
        return self.done[name]

    def node(self, s):
        if not isinstance(s, dict):
            raise SchemaError(f"boolean or non-object schema {s!r} is not supported")
        unknown = set(s) - set(CHECKED) - IGNORED - {"$ref"}
        if unknown:
            raise SchemaError(f"unsupported keywords {sorted(unknown)}")
        if "$ref" in s:
            if set(s) - IGNORED != {"$ref"}:
                raise SchemaError("$ref next to other keywords is not supported")
            return self.ref(s["$ref"])
        out = {}
        for kw in CHECKED:
            if kw not in s:
                continue
            v = s[kw]
            if kw == "type":
                types = [v] if isinstance(v, str) else list(v)
                out["type"] = frozenset(types + (["integer"] if "number" in types else []))
                out["type_msg"] = "must be " + " or ".join(TYPE_WORDS[t] for t in types)
            elif kw == "enum":
                if not all(isinstance(e, str) for e in v) or "type" not in s:
                    raise SchemaError("enum must list strings and sit next to a type")
                out["enum"] = frozenset(v)
                out["enum_msg"] = ", ".join(v)
            elif kw == "maximum":
                out[kw] = v
                lo, hi = s.get("minimum"), v
                out["range_msg"] = f"must be between {lo} and {hi}" if lo is not None else f"must be at most {hi}"
            elif kw == "minimum":
                out[kw] = v
                if "maximum" not in s:
                    out["range_msg"] = f"must be at least {v}"
            elif kw in ("items", "propertyNames", "if", "then", "else"):
                out[kw] = self.node(v)
            elif kw == "additionalProperties":
                out[kw] = False if v is False else self.node(v)
            elif kw == "properties":
                out[kw] = {k: self.node(sub) for k, sub in v.items()}
            elif kw == "required":
                out[kw] = tuple(v)
            elif kw == "dependentRequired":
                out[kw] = tuple((k, tuple(req)) for k, req in v.items())
            elif kw == "anyOf":
                out[kw] = tuple(self.node(sub) for sub in v)
                # "at least one of a, b" reads better than whichever branch failed last.
                if all(set(sub) == {"required"} and len(sub["required"]) == 1 for sub in v):
                    out["anyOf_msg"] = "must set at least one of " + ", ".join(sub["required"][0] for sub in v)
            else:
                out[kw] = v
        return out


def _lit(obj, names, indent):
    """Python source for obj; shared compiled nodes are written as their variable name."""
    if id(obj) in names:
        return names[id(obj)]
    pad = "    " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{k!r}: {_lit(v, names, indent + 1)}," for k, v in obj.items()]
        return "{\n" + "\n".join(items) + "\n" + "    " * indent + "}"
    if isinstance(obj, frozenset):
        return "frozenset({" + ", ".join(repr(e) for e in sorted(obj)) + "})"
    if isinstance(obj, tuple):
        if not obj:
            return "()"
        if not any(isinstance(e, dict) for e in obj):
            return "(" + ", ".join(_lit(e, names, indent) for e in obj) + ("," if len(obj) == 1 else "") + ")"
        return "(\n" + "\n".join(f"{pad}{_lit(e, names, indent + 1)}," for e in obj) + "\n" + "    " * indent + ")"
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return repr(obj)
    raise SchemaError(f"cannot write {type(obj).__name__}")


def render():
    lines = [
        "# Generated by scripts/gen_schema.py from spec/config.schema.json, spec/state.schema.json",
        "# and spec/features.schema.json. Do not edit: change the JSON and rerun the script.",
        "# Pre-compiled for ocirun.schema: $refs are shared objects, enums are frozensets, messages",
        "# are pre-rendered, keywords appear in checking order.",
        "",
    ]
    for public, name in SOURCES:
        comp = Compiler(load(name), name)
        root = comp.node(load(name))
        names = {}
        for d in comp.order:
            var = f"_{name}_{d}"
            lines.append(f"{var} = {_lit(comp.done[d], names, 0)}")
            names[id(comp.done[d])] = var
        lines.append(f"{public} = {_lit(root, names, 0)}")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    text = render()
    if "--check" in argv:
        with open(OUTPUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUTPUT} is out of date; run scripts/gen_schema.py", file=sys.stderr)
                return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
