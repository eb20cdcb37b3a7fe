"""The in-process Python adapter: check a Python implementation with no subprocess.

Write a class that follows the target's protocol class below (:class:`BuddyImpl`,
:class:`PageTableImpl`, :class:`VmaImpl`, :class:`MmImpl`, :class:`SlabImpl`); it is
constructed with the target's configuration as keyword arguments
(``cls(nr_pages=100, max_order=5)``), once per sequence. Refuse a call by
raising :class:`Refused` (any ``ValueError`` counts); any other exception is reported as a
crash. Observation methods are optional: leave one out and its checks are reported as not
run. Then::

    refmodel conform --target buddy --python mymodule:MyBuddy
    refmodel conform --target buddy -- python -m refmodel.conformance.adapter \\
        --target buddy mymodule:MyBuddy          # the same, over the JSON-lines protocol

``SPEC`` is ``module:Class`` or ``path/to/file.py:Class``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from refmodel.conformance.protocol import (
    JSON,
    PROTOCOL,
    VERSION,
    Message,
    decode_line,
    encode,
)
from refmodel.conformance.transport import Handler, InProcessTransport


class Refused(ValueError):
    """Raised by an implementation to refuse a call (the protocol's ``error`` answer)."""


@dataclass(frozen=True, slots=True)
class Translation:
    """A successful walk: the frame, the physical address and the access rights."""

    pfn: int
    phys: int
    writable: bool
    user: bool
    executable: bool
    pte: int | None = None  # the leaf entry, for strict mode


@dataclass(frozen=True, slots=True)
class Fault:
    """A walk that faults: ``kind`` is "not-present" or "non-canonical"."""

    kind: str


@runtime_checkable
class BuddyImpl(Protocol):
    """The ``buddy`` target. Constructed as ``cls(nr_pages=N, max_order=M)``. Optional
    observation: ``free_lists() -> Sequence[Sequence[int]]`` (per order, head to tail)."""

    def alloc_pages(self, order: int) -> int | None: ...

    def free_pages(self, pfn: int, order: int) -> None: ...


@runtime_checkable
class PageTableImpl(Protocol):
    """The ``pagetable`` target. Constructed as ``cls(paging_levels=4)``. Optional
    observations: ``entries() -> Sequence[tuple[int, int]]`` (address, pte) and
    ``tables() -> Mapping[str, int]`` (table pages per level)."""

    def map(self, address: int, pfn: int, flags: int) -> None: ...

    def unmap(self, address: int) -> None: ...

    def protect(self, address: int, flags: int) -> None: ...

    def translate(self, address: int) -> Translation | Fault: ...


@runtime_checkable
class VmaImpl(Protocol):
    """The ``vma`` target (see docs/conformance.md). Constructed as
    ``cls(paging_levels=4)``; the syscalls return what the syscalls return (an address or 0,
    or -errno). Optional observation: ``vmas_observed() -> Sequence[tuple[int, int, str]]``
    ((start, end, perms) with perms as /proc/PID/maps writes them, e.g. "rw-p")."""

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int: ...

    def munmap(self, addr: int, length: int) -> int: ...

    def mprotect(self, addr: int, length: int, prot: int) -> int: ...

    def find_vma(self, addr: int) -> tuple[int, int, str] | None: ...


@dataclass(frozen=True, slots=True)
class Signal:
    """An access that faults: e.g. ``Signal("SIGSEGV", "SEGV_ACCERR", addr)``."""

    signal: str
    si_code: str
    addr: int


@runtime_checkable
class MmImpl(Protocol):
    """The ``mm`` target. Constructed as ``cls(paging_levels=4)``. Pids are the
    implementation's own. Optional observation: ``vmas_observed() -> Mapping[int,
    Sequence[tuple[int, int, str]]]`` (per live pid)."""

    def spawn(self) -> int: ...

    def fork(self, pid: int) -> int: ...  # the child's pid, or -errno

    def exit(self, pid: int) -> None: ...

    def mmap(self, pid: int, addr: int, length: int, prot: int, flags: int) -> int: ...

    def munmap(self, pid: int, addr: int, length: int) -> int: ...

    def mprotect(self, pid: int, addr: int, length: int, prot: int) -> int: ...

    def read(self, pid: int, addr: int, length: int) -> bytes | Signal: ...

    def write(self, pid: int, addr: int, data: bytes) -> Signal | None: ...


@runtime_checkable
class SlabImpl(Protocol):
    """The ``slab`` target. Constructed as ``cls(slab_nomerge=True)``. Allocations return an
    address or None (NULL); kmalloc(0) returns the implementation's ZERO_SIZE_PTR (5.10:
    16). Refuse a bad free, a bad kmem_cache_create or destroying a cache that still has
    objects by raising :class:`Refused`. Optional observations: ``caches() ->
    Mapping[str, Mapping[str, int]]`` (per cache name: object_size, size, align, objects,
    order) and ``slabs() -> Mapping[str, int]`` (slabs per cache name)."""

    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> None: ...

    def kmem_cache_destroy(self, name: str) -> None: ...

    def kmem_cache_alloc(self, name: str) -> int | None: ...

    def kmem_cache_free(self, name: str, addr: int) -> None: ...

    def kmalloc(self, size: int) -> int | None: ...

    def kfree(self, addr: int) -> None: ...

    def ksize(self, addr: int) -> int: ...


# Per target: the request handler and the optional observation methods.
def _buddy(impl: object, m: Message) -> Message:
    b: BuddyImpl = impl  # type: ignore[assignment]
    op = m["op"]
    if op == "alloc_pages":
        order = m["order"]
        assert isinstance(order, int)
        return {"pfn": b.alloc_pages(order)}
    if op == "free_pages":
        pfn, order = m["pfn"], m["order"]
        assert isinstance(pfn, int) and isinstance(order, int)
        b.free_pages(pfn, order)
        return {"ok": True}
    if op == "observe" and m.get("what") == "free_lists":
        lists = impl.free_lists()  # type: ignore[attr-defined]
        return {"free_lists": [[int(p) for p in lst] for lst in lists]}
    raise Refused(f"unknown op {op!r}")


def _pagetable(impl: object, m: Message) -> Message:
    p: PageTableImpl = impl  # type: ignore[assignment]
    op = m["op"]
    addr = m.get("address")
    if op == "observe":
        if m.get("what") == "entries":
            return {"entries": [[int(a), int(e)] for a, e in impl.entries()]}  # type: ignore[attr-defined]
        counts: Mapping[str, int] = impl.tables()  # type: ignore[attr-defined]
        return {"tables": {str(k): int(v) for k, v in counts.items()}}
    assert isinstance(addr, int)
    if op == "translate":
        t = p.translate(addr)
        if isinstance(t, Fault):
            return {"fault": t.kind}
        out: Message = {"pfn": t.pfn, "phys": t.phys, "writable": t.writable, "user": t.user,
                        "executable": t.executable}
        if t.pte is not None:
            out["pte"] = t.pte
        return out
    flags = m.get("flags")
    if op == "map":
        pfn = m["pfn"]
        assert isinstance(pfn, int) and isinstance(flags, int)
        p.map(addr, pfn, flags)
    elif op == "unmap":
        p.unmap(addr)
    elif op == "protect":
        assert isinstance(flags, int)
        p.protect(addr, flags)
    else:
        raise Refused(f"unknown op {op!r}")
    return {"ok": True}


def _vma(impl: object, m: Message) -> Message:
    v: VmaImpl = impl  # type: ignore[assignment]
    op = m["op"]
    if op == "observe":
        return {"vmas": [[int(s), int(e), str(f)]
                         for s, e, f in impl.vmas_observed()]}  # type: ignore[attr-defined]
    args = {k: val for k, val in m.items() if k not in ("op", "id")}
    ints = {k: val for k, val in args.items() if isinstance(val, int)}
    if op == "mmap":
        return {"ret": v.mmap(ints["addr"], ints["length"], ints["prot"], ints["flags"])}
    if op == "munmap":
        return {"ret": v.munmap(ints["addr"], ints["length"])}
    if op == "mprotect":
        return {"ret": v.mprotect(ints["addr"], ints["length"], ints["prot"])}
    if op == "find_vma":
        found = v.find_vma(ints["addr"])
        return {"vma": None if found is None else [found[0], found[1], found[2]]}
    raise Refused(f"unknown op {op!r}")


def _sig(s: Signal) -> Message:
    return {"signal": s.signal, "si_code": s.si_code, "addr": s.addr}


def _mm(impl: object, m: Message) -> Message:
    p: MmImpl = impl  # type: ignore[assignment]
    op = m["op"]
    if op == "observe":
        obs = impl.vmas_observed()  # type: ignore[attr-defined]
        return {"vmas": {str(pid): [[int(s), int(e), str(f)] for s, e, f in vs]
                         for pid, vs in obs.items()}}
    if op == "spawn":
        return {"pid": p.spawn()}
    a = {k: v for k, v in m.items() if isinstance(v, int)}
    pid = a["pid"]
    if op == "fork":
        child = p.fork(pid)
        return {"ret": child} if child < 0 else {"pid": child}
    if op == "exit":
        p.exit(pid)
        return {"ok": True}
    if op == "mmap":
        return {"ret": p.mmap(pid, a["addr"], a["length"], a["prot"], a["flags"])}
    if op == "munmap":
        return {"ret": p.munmap(pid, a["addr"], a["length"])}
    if op == "mprotect":
        return {"ret": p.mprotect(pid, a["addr"], a["length"], a["prot"])}
    if op == "read":
        got = p.read(pid, a["addr"], a["length"])
        return _sig(got) if isinstance(got, Signal) else {"data": bytes(got).hex()}
    if op == "write":
        data = m["data"]
        assert isinstance(data, str)
        res = p.write(pid, a["addr"], bytes.fromhex(data))
        return {"ok": True} if res is None else _sig(res)
    raise Refused(f"unknown op {op!r}")


def _slab(impl: object, m: Message) -> Message:
    s: SlabImpl = impl  # type: ignore[assignment]
    op = m["op"]
    if op == "observe":
        if m.get("what") == "caches":
            geo: Mapping[str, Mapping[str, int]] = impl.caches()  # type: ignore[attr-defined]
            return {"caches": {str(n): {str(k): int(v) for k, v in g.items()}
                               for n, g in geo.items()}}
        counts: Mapping[str, int] = impl.slabs()  # type: ignore[attr-defined]
        return {"slabs": {str(n): int(v) for n, v in counts.items()}}
    name, addr = m.get("cache"), m.get("addr")
    if op == "kmalloc":
        size = m["size"]
        assert isinstance(size, int)
        return {"addr": s.kmalloc(size)}
    if op in ("kfree", "ksize"):
        assert isinstance(addr, int)
        if op == "ksize":
            return {"size": s.ksize(addr)}
        s.kfree(addr)
        return {"ok": True}
    if not isinstance(name, str):
        raise Refused(f"unknown op {op!r}")
    if op == "kmem_cache_alloc":
        return {"addr": s.kmem_cache_alloc(name)}
    if op == "kmem_cache_free":
        assert isinstance(addr, int)
        s.kmem_cache_free(name, addr)
    elif op == "kmem_cache_create":
        size, align, flags = m["size"], m["align"], m["flags"]
        assert isinstance(size, int) and isinstance(align, int) and isinstance(flags, int)
        s.kmem_cache_create(name, size, align, flags)
    elif op == "kmem_cache_destroy":
        s.kmem_cache_destroy(name)
    else:
        raise Refused(f"unknown op {op!r}")
    return {"ok": True}


_HANDLERS: dict[str, tuple[Callable[[object, Message], Message], dict[str, str]]] = {
    "buddy": (_buddy, {"free_lists": "free_lists"}),
    "pagetable": (_pagetable, {"entries": "entries", "tables": "tables"}),
    "vma": (_vma, {"vmas": "vmas_observed"}),
    "mm": (_mm, {"vmas": "vmas_observed"}),
    "slab": (_slab, {"caches": "caches", "slabs": "slabs"}),
}


def load_class(spec: str) -> type:
    """``module:Class`` or ``path/to/file.py:Class``; ValueError with a readable message."""
    mod_name, sep, cls_name = spec.rpartition(":")
    if not sep or not mod_name or not cls_name:
        raise ValueError(f"--python wants MODULE:CLASS or FILE.py:CLASS, got {spec!r}")
    try:
        if mod_name.endswith(".py") or "/" in mod_name:
            path = Path(mod_name)
            s = importlib.util.spec_from_file_location(path.stem, path)
            if s is None or s.loader is None:
                raise ValueError(f"cannot load {path}")
            module = importlib.util.module_from_spec(s)
            sys.modules[path.stem] = module
            s.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except (Exception, SystemExit) as e:  # whatever the module's own code raises or exits
        raise ValueError(f"cannot import {mod_name}: {type(e).__name__}: {e}") from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{mod_name} has no class {cls_name}")
    return cls


def observations_of(target: str, cls: type) -> list[str]:
    return [obs for obs, method in _HANDLERS[target][1].items() if hasattr(cls, method)]


def make_handler(target: str, cls: type, config: Mapping[str, JSON]) -> Handler:
    """A request handler over a fresh instance: refusals become ``error`` answers."""
    fn = _HANDLERS[target][0]
    impl = cls(**config)

    def handle(m: Message) -> Message:
        if m.get("op") == "reset":
            nonlocal impl
            impl = cls(**config)
            return {"id": m.get("id"), "ok": True}
        try:
            out = fn(impl, m)
        except ValueError as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        return {"id": m.get("id"), **out}

    return handle


def in_process(target: str, cls: type, config: Mapping[str, JSON]) -> InProcessTransport:
    """The transport the runner uses for ``--python``."""
    return InProcessTransport(lambda: make_handler(target, cls, config),
                              observations_of(target, cls), f"{cls.__module__}.{cls.__name__}")


def serve(target: str, cls: type, stdin: Sequence[bytes] | None = None) -> int:
    """Serve the JSON-lines protocol on stdin/stdout for ``cls`` (the subprocess form)."""
    out = sys.stdout.buffer
    handler: Handler | None = None
    for raw in stdin if stdin is not None else sys.stdin.buffer:
        if not raw.strip():
            continue
        m = decode_line(raw)
        op = m.get("op")
        if op == "quit":
            break
        if op == "hello":
            cfg = m.get("config")
            if m.get("version") != VERSION or m.get("target") != target or not isinstance(
                    cfg, dict):
                out.write(encode({"id": m.get("id"), "error": "unsupported version, target "
                                  "or config"}))
            else:
                handler = make_handler(target, cls, cfg)
                out.write(encode({"id": m.get("id"), "protocol": PROTOCOL, "version": VERSION,
                                  "target": target, "reset": True,
                                  "implementation": f"{cls.__module__}.{cls.__name__}",
                                  "observations": list[JSON](observations_of(target, cls))}))
        elif handler is None:
            out.write(encode({"id": m.get("id"), "error": "no hello yet"}))
        else:
            out.write(encode(handler(m)))
        out.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m refmodel.conformance.adapter",
                                description="serve a Python implementation over the "
                                "conformance protocol on stdin/stdout")
    p.add_argument("--target", required=True, choices=sorted(_HANDLERS))
    p.add_argument("spec", help="MODULE:CLASS or FILE.py:CLASS")
    args = p.parse_args(argv)
    try:
        cls = load_class(args.spec)
    except ValueError as e:
        print(f"adapter: {e}", file=sys.stderr)
        return 2
    return serve(args.target, cls)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: implementations import
    # Translation and Fault from refmodel.conformance.adapter, and must get the same classes.
    from refmodel.conformance import adapter as _adapter

    sys.exit(_adapter.main())
