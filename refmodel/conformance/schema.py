"""JSON Schemas (draft 2020-12) of every message of the conformance protocol, version 1.

``refmodel conform schema [--target T]`` prints them; docs/conformance.md shows them with
worked examples. :func:`validate` is a small validator for the subset of JSON Schema these
schemas use (type, const, enum, properties, required, additionalProperties (false or a
schema), items, minimum, maximum, oneOf, anyOf), so the kit's tests check real traffic
against the documented schemas without a dependency.
"""

from __future__ import annotations

from refmodel.conformance.protocol import JSON, PROTOCOL, VERSION

Schema = dict[str, JSON]

_ID: Schema = {"type": "integer", "minimum": 0}
_U64: Schema = {"type": "integer", "minimum": 0, "maximum": (1 << 64) - 1}


def _obj(props: dict[str, JSON], required: list[str], extra: bool = False) -> Schema:
    return {"type": "object", "properties": props, "required": list[JSON](required),
            "additionalProperties": extra}


def _req(op: str, props: dict[str, JSON] | None = None) -> Schema:
    p: dict[str, JSON] = {"id": _ID, "op": {"const": op}, **(props or {})}
    return _obj(p, list(p))


ERROR: Schema = _obj({"id": _ID, "error": {"type": "string"}}, ["id", "error"])
OK: Schema = _obj({"id": _ID, "ok": {"const": True}}, ["id", "ok"])

COMMON: dict[str, Schema] = {
    "hello request": _obj({
        "id": {"const": 0}, "op": {"const": "hello"}, "protocol": {"const": PROTOCOL},
        "version": {"const": VERSION}, "target": {"type": "string"},
        "mode": {"enum": ["strict", "invariant"]}, "config": {"type": "object"}},
        ["id", "op", "protocol", "version", "target", "mode", "config"]),
    "hello answer": {"oneOf": [_obj({
        "id": {"const": 0}, "protocol": {"const": PROTOCOL}, "version": {"const": VERSION},
        "target": {"type": "string"},
        "observations": {"type": "array", "items": {"type": "string"}},
        "reset": {"type": "boolean"}, "implementation": {"type": "string"}},
        ["id", "protocol", "version", "target"]), ERROR]},
    "reset request": _req("reset"),
    "reset answer": OK,
    "observe request": _req("observe", {"what": {"type": "string"}}),
    "quit request": _obj({"op": {"const": "quit"}}, ["op"]),
    "error answer (any request)": ERROR,
}

_PFN: Schema = {"type": "integer", "minimum": 0}
TARGETS: dict[str, dict[str, Schema]] = {
    "buddy": {
        "config": _obj({"nr_pages": {"type": "integer", "minimum": 1},
                        "max_order": {"type": "integer", "minimum": 1}},
                       ["nr_pages", "max_order"]),
        "alloc_pages request": _req("alloc_pages", {"order": {"type": "integer"}}),
        "alloc_pages answer": {"oneOf": [
            _obj({"id": _ID, "pfn": {"type": ["integer", "null"]}}, ["id", "pfn"]), ERROR]},
        "free_pages request": _req("free_pages", {"pfn": {"type": "integer"},
                                                  "order": {"type": "integer"}}),
        "free_pages answer": {"oneOf": [OK, ERROR]},
        "observe free_lists answer": _obj({"id": _ID, "free_lists": {
            "type": "array", "items": {"type": "array", "items": _PFN}}}, ["id", "free_lists"]),
    },
    "pagetable": {
        "config": _obj({"paging_levels": {"enum": [4, 5]}}, ["paging_levels"]),
        "map request": _req("map", {"address": _U64, "pfn": {"type": "integer"},
                                    "flags": _U64}),
        "unmap request": _req("unmap", {"address": _U64}),
        "protect request": _req("protect", {"address": _U64, "flags": _U64}),
        "map/unmap/protect answer": {"oneOf": [OK, ERROR]},
        "translate request": _req("translate", {"address": _U64}),
        "translate answer": {"oneOf": [
            _obj({"id": _ID, "pfn": _PFN, "phys": _PFN, "writable": {"type": "boolean"},
                  "user": {"type": "boolean"}, "executable": {"type": "boolean"},
                  "pte": _U64}, ["id", "pfn", "phys", "writable", "user", "executable"]),
            _obj({"id": _ID, "fault": {"enum": ["not-present", "non-canonical"]}},
                 ["id", "fault"]),
            ERROR]},
        "observe entries answer": _obj({"id": _ID, "entries": {
            "type": "array", "items": {"type": "array", "items": _U64}}}, ["id", "entries"]),
        "observe tables answer": _obj({"id": _ID, "tables": {
            "type": "object", "properties": {k: {"type": "integer", "minimum": 0} for k in
                                             ("pgd", "p4d", "pud", "pmd", "pte")},
            "additionalProperties": False}}, ["id", "tables"]),
    },
    "vma": {
        "config": _obj({"paging_levels": {"enum": [4, 5]}}, ["paging_levels"]),
        "mmap request": _req("mmap", {"addr": _U64, "length": _U64, "prot": _U64,
                                      "flags": _U64}),
        "munmap request": _req("munmap", {"addr": _U64, "length": _U64}),
        "mprotect request": _req("mprotect", {"addr": _U64, "length": _U64, "prot": _U64}),
        "mmap/munmap/mprotect answer": _obj({"id": _ID, "ret": {"type": "integer"}},
                                            ["id", "ret"]),
        "find_vma request": _req("find_vma", {"addr": _U64}),
        "find_vma answer": _obj({"id": _ID, "vma": {"oneOf": [
            {"type": "null"}, {"type": "array", "items": {"type": ["integer", "string"]}}]}},
            ["id", "vma"]),
        "observe vmas answer": _obj({"id": _ID, "vmas": {"type": "array", "items": {
            "type": "array", "items": {"type": ["integer", "string"]}}}}, ["id", "vmas"]),
    },
    "mm": {
        "config": _obj({"paging_levels": {"enum": [4, 5]}}, ["paging_levels"]),
        "spawn request": _req("spawn"),
        "spawn/fork answer": {"oneOf": [
            _obj({"id": _ID, "pid": {"type": "integer"}}, ["id", "pid"]),
            _obj({"id": _ID, "ret": {"type": "integer"}}, ["id", "ret"])]},
        "fork request": _req("fork", {"pid": {"type": "integer"}}),
        "exit request": _req("exit", {"pid": {"type": "integer"}}),
        "exit answer": OK,
        "mmap request": _req("mmap", {"pid": {"type": "integer"}, "addr": _U64,
                                      "length": _U64, "prot": _U64, "flags": _U64}),
        "munmap request": _req("munmap", {"pid": {"type": "integer"}, "addr": _U64,
                                          "length": _U64}),
        "mprotect request": _req("mprotect", {"pid": {"type": "integer"}, "addr": _U64,
                                              "length": _U64, "prot": _U64}),
        "mmap/munmap/mprotect answer": _obj({"id": _ID, "ret": {"type": "integer"}},
                                            ["id", "ret"]),
        "read request": _req("read", {"pid": {"type": "integer"}, "addr": _U64,
                                      "length": {"type": "integer", "minimum": 0}}),
        "write request": _req("write", {"pid": {"type": "integer"}, "addr": _U64,
                                        "data": {"type": "string"}}),
        "read/write answer": {"oneOf": [
            _obj({"id": _ID, "data": {"type": "string"}}, ["id", "data"]), OK,
            _obj({"id": _ID, "signal": {"type": "string"}, "si_code": {"type": "string"},
                  "addr": _U64}, ["id", "signal", "si_code", "addr"])]},
        "observe vmas answer": _obj({"id": _ID, "vmas": {"type": "object"}}, ["id", "vmas"]),
    },
    "slab": {
        "config": _obj({"slab_nomerge": {"type": "boolean"}}, ["slab_nomerge"]),
        "kmem_cache_create request": _req("kmem_cache_create", {
            "cache": {"type": "string"}, "size": _U64, "align": _U64, "flags": _U64}),
        "kmem_cache_destroy request": _req("kmem_cache_destroy", {"cache": {"type": "string"}}),
        "kmem_cache_alloc request": _req("kmem_cache_alloc", {"cache": {"type": "string"}}),
        "kmem_cache_free request": _req("kmem_cache_free", {"cache": {"type": "string"},
                                                            "addr": _U64}),
        "kmalloc request": _req("kmalloc", {"size": _U64}),
        "kfree request": _req("kfree", {"addr": _U64}),
        "ksize request": _req("ksize", {"addr": _U64}),
        "kmem_cache_alloc/kmalloc answer": {"oneOf": [
            _obj({"id": _ID, "addr": {"type": ["integer", "null"], "minimum": 0,
                                      "maximum": (1 << 64) - 1}}, ["id", "addr"]), ERROR]},
        "kmem_cache_create/kmem_cache_destroy/kmem_cache_free/kfree answer": {
            "oneOf": [OK, ERROR]},
        "ksize answer": {"oneOf": [
            _obj({"id": _ID, "size": {"type": "integer", "minimum": 0}}, ["id", "size"]),
            ERROR]},
        "observe caches answer": _obj({"id": _ID, "caches": {
            "type": "object", "additionalProperties": _obj(
                {k: {"type": "integer", "minimum": 0}
                 for k in ("object_size", "size", "align", "objects", "order")},
                ["object_size", "size", "align", "objects", "order"])}}, ["id", "caches"]),
        "observe slabs answer": _obj({"id": _ID, "slabs": {
            "type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}},
            ["id", "slabs"]),
    },
}


def schemas(target: str | None = None) -> dict[str, JSON]:
    """The schemas as one JSON document: the common messages and each target's."""
    chosen = {t: s for t, s in TARGETS.items() if target is None or t == target}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "protocol": PROTOCOL, "version": VERSION,
            "common": dict[str, JSON](COMMON),
            "targets": {t: dict[str, JSON](s) for t, s in chosen.items()}}


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),)}


def _is(v: JSON, t: str) -> bool:
    if t in ("integer", "number") and isinstance(v, bool):
        return False
    return isinstance(v, _TYPES[t])


def validate(v: JSON, schema: JSON, path: str = "$") -> list[str]:
    """Where ``v`` breaks ``schema``: a list of messages, empty if it is valid."""
    if not isinstance(schema, dict):
        return []
    errs: list[str] = []
    t = schema.get("type")
    if isinstance(t, str) and not _is(v, t):
        return [f"{path}: {v!r} is not of type {t}"]
    if isinstance(t, list) and not any(isinstance(x, str) and _is(v, x) for x in t):
        return [f"{path}: {v!r} is not of type {t}"]
    if "const" in schema and (v != schema["const"] or type(v) is not type(schema["const"])):
        errs.append(f"{path}: {v!r} is not {schema['const']!r}")
    enum = schema.get("enum")
    if isinstance(enum, list) and v not in enum:
        errs.append(f"{path}: {v!r} is not one of {enum!r}")
    if isinstance(v, int) and not isinstance(v, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if isinstance(lo, int) and v < lo:
            errs.append(f"{path}: {v} < {lo}")
        if isinstance(hi, int) and v > hi:
            errs.append(f"{path}: {v} > {hi}")
    if isinstance(v, dict):
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        req = schema.get("required")
        for k in req if isinstance(req, list) else []:
            if isinstance(k, str) and k not in v:
                errs.append(f"{path}: missing {k!r}")
        extra = schema.get("additionalProperties")
        for k, sub in v.items():
            if k in props:
                errs += validate(sub, props[k], f"{path}.{k}")
            elif extra is False:
                errs.append(f"{path}: unexpected {k!r}")
            elif isinstance(extra, dict):
                errs += validate(sub, extra, f"{path}.{k}")
    if isinstance(v, list) and "items" in schema:
        for i, sub in enumerate(v):
            errs += validate(sub, schema["items"], f"{path}[{i}]")
    one = schema.get("oneOf")
    if isinstance(one, list):
        ok = sum(1 for s in one if not validate(v, s, path))
        if ok != 1:
            errs.append(f"{path}: matches {ok} of the oneOf alternatives, not exactly 1")
    anyof = schema.get("anyOf")
    if isinstance(anyof, list) and not any(not validate(v, s, path) for s in anyof):
        errs.append(f"{path}: matches none of the anyOf alternatives")
    return errs


def schema_for(target: str, message: dict[str, JSON], answer: bool) -> Schema | None:
    """The schema a request (or its answer) must satisfy, by its op."""
    op = message.get("op")
    common = {"hello": "hello", "reset": "reset", "observe": "observe", "quit": "quit"}
    if isinstance(op, str) and op in common:
        if answer and op == "observe":
            return None  # depends on "what": see schema_for_observation
        return COMMON[f"{common[op]} {'answer' if answer else 'request'}"]
    t = TARGETS.get(target, {})
    if not isinstance(op, str):
        return None
    for key, s in t.items():
        ops, _, kind = key.rpartition(" ")
        if kind == ("answer" if answer else "request") and op in ops.split("/"):
            return s
    return None


def schema_for_observation(target: str, what: str) -> Schema | None:
    return TARGETS.get(target, {}).get(f"observe {what} answer")
