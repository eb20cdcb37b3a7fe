"""The ``slab`` target: kmem_cache_* and kmalloc/kfree/ksize, checked against the model's SLUB.

Operations (named after 5.10; docs/conformance.md has the full description):
``kmem_cache_create(cache, size, align, flags)`` and ``kmem_cache_destroy(cache)`` → ok or an
error; ``kmem_cache_alloc(cache)`` and ``kmalloc(size)`` → ``{"addr": A | null}``;
``kmem_cache_free(cache, addr)`` and ``kfree(addr)`` → ok, or an error for a bad free;
``ksize(addr)`` → ``{"size": N}``. Caches are named by the runner (``cache0``, ``cache1``,
...). Observations: ``caches`` (each cache's geometry) and ``slabs`` (slabs per cache).

The model is :mod:`refmodel.mm.slub` (one CPU, no debug options) on a fresh node; it runs
when a request is planned, so it never follows the implementation: objects are paired by
the allocation that returned them (the implementation's address with the model's), and a
free refers to an allocation, not to an address.

* Fixed in both modes: which calls succeed and which are refused (every bad free, bad cache
  arguments, destroying a cache that still has objects, kmalloc above KMALLOC_MAX_SIZE),
  kmalloc(0)'s ZERO_SIZE_PTR semantics, and what any correct allocator guarantees: objects
  aligned (to max(align, ARCH_SLAB_MINALIGN); kmalloc to ARCH_KMALLOC_MINALIGN and a
  power-of-two size to itself), never overlapping a live object nor handed out twice,
  ksize covering the request; a consistent geometry.
* Strict mode adds 5.10's exact answers where they do not depend on where memory lives:
  the geometry calculate_sizes/calculate_order give, ksize (so the kmalloc size class,
  96 and 192 included), the slab count of every cache, ZERO_SIZE_PTR = 16, and which object
  each allocation returns, compared relative to its slab: the implementation's slab that
  corresponds to a 5.10 slab is fixed by the first object handed out from it, and every
  later object of that slab must lie at 5.10's offset from there (LIFO reuse through the
  cpu free list, ascending objects of a fresh slab, which partial slab is refilled from).
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from refmodel.bugs import KernelBug, KernelWarning
from refmodel.config import MachineConfig, MiB
from refmodel.conformance.protocol import JSON, Message, ProtocolError
from refmodel.conformance.targets.base import (
    CheckSpec,
    Failure,
    Op,
    Outcome,
    Session,
    Target,
    random_tuple_op,
    tuple_ops,
)
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.page_alloc import page_offset
from refmodel.mm.slub import (
    ARCH_KMALLOC_MINALIGN,
    ARCH_SLAB_MINALIGN,
    KMALLOC_MAX_CACHE_SIZE,
    KMALLOC_MAX_SIZE,
    PAGE_SIZE,
    SLAB_HWCACHE_ALIGN,
    SLAB_NOLEAKTRACE,
    get_order,
    kfree,
    kmalloc,
    kmalloc_index,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_init,
    kmem_state,
)
from refmodel.mm.slub_def import kmem_cache, slab_page
from refmodel.trace import Tracer

ZERO_SIZE_PTR = 16  # include/linux/slab.h: ((void *)16)
LIST_POISON1 = 0xDEAD000000000100  # include/linux/poison.h: a pointer no allocator returns
MAX_SLAB_ORDER = 10  # MAX_ORDER - 1: the largest block a slab (or kmalloc_large) can be
MODEL_MEMORY = 128 * MiB
BUDGET_PAGES = 8192
"""The runner keeps what the model's slab allocator holds (slab pages and kmalloc_large
blocks) at or below 32 MiB: an allocation that could take it further is not sent."""

GEOMETRY_FIELDS = ("object_size", "size", "align", "objects", "order")

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("cache_create_accepts_valid", "kmem_cache_create of a valid object size and "
              "alignment succeeds"),
    CheckSpec("cache_create_rejects_invalid", "kmem_cache_create is refused for an object "
              "size below 8 or above KMALLOC_MAX_SIZE (4 MiB) or an alignment that is not a "
              "power of two"),
    CheckSpec("cache_destroy_accepts_empty", "kmem_cache_destroy of a cache without live "
              "objects succeeds"),
    CheckSpec("cache_destroy_rejects_busy", "kmem_cache_destroy of a cache that still has "
              "objects is refused (5.10 keeps the cache)"),
    CheckSpec("alloc_succeeds", "kmem_cache_alloc and kmalloc up to KMALLOC_MAX_SIZE succeed "
              "(the runner never holds more than 32 MiB)"),
    CheckSpec("kmalloc_too_large_fails", "kmalloc above KMALLOC_MAX_SIZE (4 MiB) returns NULL"),
    CheckSpec("alloc_aligned", "a cache object is aligned to max(align, 8); a kmalloc object "
              "to 8, and to its size when that is a power of two"),
    CheckSpec("alloc_not_live", "an allocation never returns a live object (handed out twice "
              "before being freed)"),
    CheckSpec("alloc_no_overlap", "a new object's bytes overlap no live object (nor "
              "ZERO_SIZE_PTR)"),
    CheckSpec("kmalloc_zero_size_ptr", "kmalloc(0) returns ZERO_SIZE_PTR: not NULL, the same "
              "value every time, inside no object"),
    CheckSpec("free_accepts_live_object", "kfree / kmem_cache_free of a live object through "
              "its own cache succeeds"),
    CheckSpec("kfree_accepts_null_and_zero_size_ptr", "kfree(NULL) and kfree(ZERO_SIZE_PTR) "
              "succeed and change nothing"),
    CheckSpec("free_rejects_double_free", "freeing an object that is already free is refused"),
    CheckSpec("free_rejects_wrong_cache", "kmem_cache_free through another cache than the "
              "object's (or of a kmalloc object) is refused"),
    CheckSpec("free_rejects_interior_pointer", "freeing a pointer inside a live object is "
              "refused"),
    CheckSpec("free_rejects_wild_pointer", "freeing a pointer no allocation returned "
              "(LIST_POISON1) is refused"),
    CheckSpec("ksize_covers_object", "ksize is at least the size asked for, and those bytes "
              "overlap no other live object"),
    CheckSpec("ksize_exact", "ksize equals 5.10's: the kmalloc size class (kmalloc_index, "
              "96 and 192 included), s->size, or the kmalloc_large block", ("strict",)),
    CheckSpec("zero_size_ptr_exact", "ZERO_SIZE_PTR is 16", ("strict",)),
    CheckSpec("alloc_lifo_reuse", "the object freed last is the next one handed out (it is "
              "on the cpu slab's free list), at its offset in its slab", ("strict",)),
    CheckSpec("alloc_fresh_slab_ascending", "a fresh slab hands out its objects in ascending "
              "address order, from offset 0", ("strict",)),
    CheckSpec("alloc_object_exact", "every other allocation returns 5.10's object (which "
              "partial slab, a new slab), relative to its slab; kmalloc_large blocks are "
              "page-aligned", ("strict",)),
    CheckSpec("cache_geometry_consistent", "each live cache is listed with its object size, a "
              "stride of at least that, a power-of-two alignment of at least max(align, 8) "
              "dividing the stride, and 1 or more objects fitting in 2**order pages; "
              "destroyed caches are gone", observation="caches"),
    CheckSpec("cache_geometry_exact", "each cache's geometry is what calculate_sizes and "
              "calculate_order give with one CPU", ("strict",), "caches"),
    CheckSpec("slabs_hold_live_objects", "a cache with live objects has a slab; a destroyed "
              "cache has none", observation="slabs"),
    CheckSpec("slabs_exact", "every cache (kmalloc-* included) holds as many slabs as in "
              "5.10", ("strict",), "slabs"),
)


def ksize(kmem: kmem_state, x: int) -> int:
    """The 5.10 answer of mm/slab_common.c:ksize → __ksize for the model's caches (no red
    zone, poison, KASAN, RCU or user tracking, so slab_ksize is s->size): 0 for
    ZERO_SIZE_PTR, the compound block's size for a kmalloc_large block. The model has no
    ksize of its own; this reads its state."""
    if x == ZERO_SIZE_PTR:
        return 0
    order = kmem.large.get(x)
    if order is not None:
        return PAGE_SIZE << order
    slab = kmem.slabs[(x - page_offset(kmem.pgdat)) >> 12]
    return slab.slab_cache.size


def geometry(s: kmem_cache) -> dict[str, JSON]:
    return {"object_size": s.object_size, "size": s.size, "align": s.align,
            "objects": s.objects, "order": s.order}


class SlabModel:
    """The model's slab allocator on a fresh node (kmem_cache_init: the kmalloc caches, no
    slabs yet), with the runner's caches by name. ``apply`` runs one request written in the
    model's addresses and answers as the protocol does.

    With ``slab_nomerge`` (the default configuration) every cache is created with
    SLAB_NOLEAKTRACE, a flag 5.10 uses only to keep a cache out of merging and kmemleak: so
    each kmem_cache_create makes its own cache, as in a kernel booted with slab_nomerge.
    Without it caches merge as 5.10's find_mergeable decides."""

    def __init__(self, slab_nomerge: bool) -> None:
        self.machine = Machine(MachineConfig(memory=MODEL_MEMORY))
        self.kmem = kmem_cache_init(self.machine.pgdat)
        self.extra_flags = SLAB_NOLEAKTRACE if slab_nomerge else 0
        self.caches: dict[str, kmem_cache] = {}
        self.offset = page_offset(self.machine.pgdat)

    def apply(self, req: Message) -> dict[str, JSON]:
        op = req["op"]
        kmem = self.kmem
        name = req.get("cache")
        addr = req.get("addr")
        if op == "kmalloc":
            size = req["size"]
            assert isinstance(size, int)
            try:
                got = kmalloc(kmem, size, G.GFP_KERNEL)
            except KernelWarning:  # WARN_ON_ONCE(order >= MAX_ORDER): 5.10 returns NULL
                got = 0
            return {"addr": got or None}
        if op == "kfree":
            assert isinstance(addr, int)
            return _refusal(lambda: kfree(kmem, addr))
        if op == "ksize":
            assert isinstance(addr, int)
            try:
                return {"size": ksize(kmem, addr)}
            except KeyError:
                return {"error": "ksize: not an object (5.10: undefined)"}
        assert isinstance(name, str)
        if op == "kmem_cache_create":
            size, align, flags = req["size"], req["align"], req["flags"]
            assert isinstance(size, int) and isinstance(align, int) and isinstance(flags, int)
            s = kmem_cache_create(kmem, name, size, align, flags | self.extra_flags)
            if s is None:
                return {"error": "kmem_cache_create: NULL (bad size or alignment)"}
            self.caches[name] = s
            return {"ok": True}
        s = self.caches.get(name)
        if s is None:
            return {"error": f"no cache named {name!r}"}
        if op == "kmem_cache_alloc":
            return {"addr": kmem_cache_alloc(kmem, s, G.GFP_KERNEL) or None}
        if op == "kmem_cache_free":
            assert isinstance(addr, int)
            return _refusal(lambda: kmem_cache_free(kmem, s, addr))
        if op == "kmem_cache_destroy":
            out = _refusal(lambda: kmem_cache_destroy(kmem, s))
            if "ok" in out:
                del self.caches[name]
            return out
        raise ValueError(f"unknown slab op {op!r}")

    def geometries(self) -> dict[str, dict[str, JSON]]:
        return {name: geometry(s) for name, s in self.caches.items()}

    def slab_counts(self) -> dict[str, int]:
        """Slabs per cache, for the runner's caches and the kmalloc caches that have any."""
        out = {name: s.node.nr_slabs for name, s in self.caches.items()}
        for s in self.kmem.kmalloc_caches.values():
            if s.node.nr_slabs:
                out[s.name] = s.node.nr_slabs
        return out

    def pages_held(self) -> int:
        return len(self.kmem.slabs) + sum(1 << o for o in self.kmem.large.values())


def _refusal(call: Callable[[], None]) -> dict[str, JSON]:
    try:
        call()
    except KernelBug as e:
        return {"error": str(e)}
    return {"ok": True}


# ------------------------------------------------------------------------------------------
# The session's bookkeeping


@dataclass(slots=True, eq=False)
class Obj:
    """One allocation: the model's object and, once answered, the implementation's."""

    kind: str  # "cache", "kmalloc" (from a kmalloc cache) or "large" (kmalloc_large)
    model: int
    size: int  # what the caller may use without ksize: the kmalloc size or object size
    align: int  # the alignment every correct allocator must give it
    cache: str | None = None  # the name it was allocated through
    mcache: kmem_cache | None = None
    impl: int | None = None


@dataclass(slots=True, frozen=True)
class SlabPos:
    """Where 5.10's object lies (strict mode): slab ``serial`` (the runner's number for a
    model slab), the byte offset in it, the slab's size, and the rule that chose it."""

    serial: int
    offset: int
    nbytes: int
    stride: int
    label: str  # "slab #2 of kmalloc-64"
    rule: str  # "lifo", "fresh" or "other"


@dataclass(slots=True)
class SlabTrack:
    label: str
    handed: int = 0  # objects handed out in ascending order from offset 0 so far
    freed: bool = False  # an object of it was freed once (no longer "fresh")


@dataclass(slots=True, frozen=True)
class Snapshot:
    """What the observations must show after one step (taken when it is planned)."""

    caches: dict[str, dict[str, JSON]]
    slabs: dict[str, int]
    live: dict[str, int]  # live objects per live cache name (aliases share them)
    created: int  # names cache0 .. cache{created-1} have been used


@dataclass(slots=True, eq=False)
class Plan:
    """A planned request: its model twin, the model's answer, what it is."""

    request: Message
    model_req: Message
    expected: dict[str, JSON]
    kind: str
    obj: Obj | None = None
    pos: SlabPos | None = None
    discards: list[int] = field(default_factory=list)
    snapshot: Snapshot | None = None


FREE_KINDS = {"free": "free_accepts_live_object", "double_free": "free_rejects_double_free",
              "wrong_cache": "free_rejects_wrong_cache",
              "interior": "free_rejects_interior_pointer",
              "wild": "free_rejects_wild_pointer",
              "special": "kfree_accepts_null_and_zero_size_ptr"}
SYNC_OPS = frozenset({"kfree", "kmem_cache_free", "ksize", "double_free", "free_wrong_cache",
                      "free_interior", "free_wild", "kfree_special"})
RULE_CHECKS = {"lifo": "alloc_lifo_reuse", "fresh": "alloc_fresh_slab_ascending",
               "other": "alloc_object_exact", "large": "alloc_object_exact"}
RULE_WHY = {"lifo": "the object freed last, still on the cpu slab's free list (LIFO)",
            "fresh": "the next object of a fresh slab, in ascending address order",
            "other": "", "large": ""}


def kmalloc_align(size: int) -> int:
    """The alignment 5.10 guarantees a kmalloc object (include/linux/slab.h, since 5.4):
    ARCH_KMALLOC_MINALIGN, and the size itself when it is a power of two."""
    if size & (size - 1) == 0:
        return max(size, ARCH_KMALLOC_MINALIGN)
    return ARCH_KMALLOC_MINALIGN


def _hex(v: JSON) -> str:
    return hex(v) if isinstance(v, int) else repr(v)


def _args(req: Message) -> str:
    return ", ".join(f"{k}={_hex(v) if k == 'addr' else repr(v)}"
                     for k, v in req.items() if k not in ("op", "id"))


class SlabSession(Session):
    def __init__(self, nomerge: bool, mode: str, observations: frozenset[str],
                 tally: Counter[str]) -> None:
        super().__init__(tally)
        self.nomerge = nomerge
        self.strict = mode == "strict"
        self.observations = observations
        self.model = SlabModel(nomerge)
        self.plans: dict[int, Plan] = {}
        self.current: Plan | None = None
        # planning state (the model's side, and which answers refer to what)
        self.live: list[Obj] = []  # in allocation order
        self.live_model: set[int] = set()
        self.freed: list[Obj] = []  # recently freed, for double frees
        self.names: list[str] = []  # live cache names, in creation order
        self.requested: dict[str, tuple[int, int]] = {}  # name -> (size, align) asked for
        self.created = 0
        # strict: the model's slabs, numbered as they appear
        self.serial: dict[slab_page, int] = {}
        self.tracks: dict[int, SlabTrack] = {}
        self.slabs_per_cache: Counter[str] = Counter()
        self.freed_stack: dict[kmem_cache, list[int]] = {}  # model cache -> freed objects
        # checking state (the implementation's side)
        self.starts: list[int] = []  # sorted starts of the live objects' byte ranges
        self.ranges: dict[int, tuple[int, Obj | None]] = {}  # start -> (end, object)
        self.zero_impl: int | None = None
        self.impl_slab: dict[int, tuple[int, int, str]] = {}  # serial -> (base, bytes, label)

    # ---------------------------------------------------------------------------------------
    # planning
    def needs_sync(self, op: Op) -> bool:
        return op.name in SYNC_OPS

    def informs_plan(self, request: Message) -> bool:
        # allocations bring the addresses frees need; frees take objects off the live list
        return request["op"] in ("kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free")

    def _pick(self, kinds: tuple[str, ...], i: int) -> Obj | None:
        """Object index i: 2k is the k-th latest live object, 2k+1 the k-th oldest (so frees
        come in both orders, and shrinking favours the latest)."""
        cands = [o for o in self.live if o.kind in kinds]
        if not cands:
            return None
        k = i // 2 % len(cands)
        return cands[k] if i % 2 else cands[-1 - k]

    def _name(self, c: int) -> str | None:
        return self.names[-1 - c % len(self.names)] if self.names else None

    def plan(self, op: Op) -> Message | None:
        req = self._plan(op)
        if req is not None:
            self._finish(self.plans[id(req)])
        return req

    def _plan(self, op: Op) -> Message | None:
        a = op.args
        name = op.name
        if name == "kmalloc":
            return self._plan_alloc({"op": "kmalloc", "size": a[0]}, None)
        if name == "kmem_cache_alloc" and not self.names:
            # nothing to allocate from yet: create a cache first (of a size that fills slabs)
            return self._plan(Op("kmem_cache_create", (CREATE_SIZES[a[0] % 8], 0, 0)))
        if name == "kmem_cache_create":
            size, align, hw = a
            new = f"cache{self.created}"
            self.created += 1
            req: Message = {"op": "kmem_cache_create", "cache": new, "size": size,
                            "align": align, "flags": SLAB_HWCACHE_ALIGN if hw % 2 else 0}
            p = self._run(req, dict(req), "create")
            if "ok" in p.expected:
                self.names.append(new)
                self.requested[new] = (size, align)
            return req
        if name in ("kmem_cache_alloc", "kmem_cache_destroy"):
            cname = self._name(a[0])
            if cname is None:
                return None
            if name == "kmem_cache_alloc":
                return self._plan_alloc({"op": "kmem_cache_alloc", "cache": cname}, cname)
            req = {"op": "kmem_cache_destroy", "cache": cname}
            p = self._run(req, dict(req), "destroy")
            if "ok" in p.expected:
                self.names.remove(cname)
            return req
        if name == "kfree":
            obj = self._pick(("kmalloc", "large"), a[0])
            return None if obj is None else self._plan_free(obj, None, 0, "free")
        if name == "kmem_cache_free":
            obj = self._pick(("cache",), a[0])
            if obj is None or obj.cache not in self.names:
                return None
            return self._plan_free(obj, obj.cache, 0, "free")
        if name == "ksize":
            obj = self._pick(("cache", "kmalloc", "large"), a[0])
            if obj is None:
                return None
            assert obj.impl is not None
            return self._run({"op": "ksize", "addr": obj.impl},
                             {"op": "ksize", "addr": obj.model}, "ksize", obj).request
        return self._plan_bad(name, a)

    def _plan_bad(self, name: str, a: tuple[int, ...]) -> Message | None:
        if name == "double_free":
            cands = [o for o in self.freed if o.model not in self.live_model
                     and o.impl not in self.ranges]
            if not cands:
                return None
            gone = cands[-1 - a[0] % len(cands)]
            if gone.kind == "cache" and gone.cache not in self.names:
                return None
            return self._plan_free(gone, gone.cache, 0, "double_free")
        if name == "free_wrong_cache":
            obj = self._pick(("cache", "kmalloc", "large"), a[0])
            if obj is None:
                return None
            others = [n for n in self.names if n != obj.cache]
            if not others:
                return None
            return self._plan_free(obj, others[-1 - a[1] % len(others)], 0, "wrong_cache")
        if name == "free_interior":
            obj = self._pick(("cache", "kmalloc"), a[0])
            if obj is None or (obj.kind == "cache" and obj.cache not in self.names):
                return None
            return self._plan_free(obj, obj.cache, 8 if obj.size > 8 else 4, "interior")
        if name == "free_wild":
            via = self._name(0) if a[0] % 2 else None
            if LIST_POISON1 in self.ranges:
                return None
            return self._free_request(via, LIST_POISON1, LIST_POISON1, "wild", None)
        if name == "kfree_special":
            if a[0] % 2 and self.zero_impl is not None:
                return self._free_request(None, self.zero_impl, ZERO_SIZE_PTR, "special", None)
            return self._free_request(None, 0, 0, "special", None)
        raise ValueError(f"unknown slab op {name}")

    def _run(self, req: Message, model_req: Message, kind: str,
             obj: Obj | None = None) -> Plan:
        """Run the request's model twin now and remember both."""
        p = Plan(req, model_req, self.model.apply(model_req), kind, obj)
        self.plans[id(req)] = p
        return p

    def _finish(self, p: Plan) -> None:
        """After the model ran a step: strict slab bookkeeping and the observations."""
        if self.strict:
            kmem_slabs = self.model.kmem.slabs
            gone = [(s, n) for s, n in self.serial.items() if kmem_slabs.get(s.page.pfn) is not s]
            for s, n in gone:
                del self.serial[s]
                p.discards.append(n)
                end = s.start + (PAGE_SIZE << s.order)
                stack = self.freed_stack.get(s.slab_cache, [])
                stack[:] = [x for x in stack if not s.start <= x < end]
        if self.observations:
            live: dict[str, int] = {}
            for cname in self.names:
                mc = self.model.caches[cname]
                live[cname] = sum(1 for o in self.live if o.mcache is mc)
            p.snapshot = Snapshot(self.model.geometries(), self.model.slab_counts(), live,
                                  self.created)

    def _plan_alloc(self, req: Message, cname: str | None) -> Message | None:
        m = self.model
        if cname is not None:
            mc: kmem_cache | None = m.caches[cname]
            assert mc is not None
            need = 1 << mc.order
        else:
            size = req["size"]
            assert isinstance(size, int)
            mc = None
            need = 0
            if 0 < size <= KMALLOC_MAX_CACHE_SIZE:
                need = 1 << m.kmem.kmalloc_caches[kmalloc_index(size)].order
            elif KMALLOC_MAX_CACHE_SIZE < size <= KMALLOC_MAX_SIZE:
                need = 1 << get_order(size)
        if m.pages_held() + need > BUDGET_PAGES:
            return None
        p = self._run(req, dict(req), "alloc")
        addr = p.expected["addr"]
        if isinstance(addr, int) and addr != ZERO_SIZE_PTR:
            if cname is not None:
                assert mc is not None
                size, align = self.requested[cname]
                obj = Obj("cache", addr, size, max(align, ARCH_SLAB_MINALIGN), cname, mc)
            else:
                size = req["size"]
                assert isinstance(size, int)
                kind = "large" if size > KMALLOC_MAX_CACHE_SIZE else "kmalloc"
                slab = m.kmem.slabs.get((addr - m.offset) >> 12)
                obj = Obj(kind, addr, size, kmalloc_align(size), None,
                          None if slab is None else slab.slab_cache)
            p.obj = obj
            self.live.append(obj)
            self.live_model.add(addr)
            if self.strict:
                p.pos = self._position(obj)
        return req

    def _position(self, obj: Obj) -> SlabPos | None:
        """Strict mode: which 5.10 slab holds the object, where, and by which rule."""
        if obj.kind == "large":
            return SlabPos(-1, 0, 0, 0, "", "large")
        m = self.model
        slab = m.kmem.slabs[(obj.model - m.offset) >> 12]
        s = slab.slab_cache
        n = self.serial.get(slab)
        if n is None:
            n = self.serial[slab] = len(self.tracks)
            self.slabs_per_cache[s.name] += 1
            self.tracks[n] = SlabTrack(f"slab #{self.slabs_per_cache[s.name]} of {s.name}")
        tr = self.tracks[n]
        off = obj.model - slab.start
        stack = self.freed_stack.setdefault(s, [])
        sequential = not tr.freed and off == tr.handed * s.size
        if stack and stack[-1] == obj.model:
            rule = "lifo"
            stack.pop()
        else:
            if obj.model in stack:
                stack.remove(obj.model)
            rule = "fresh" if sequential else "other"
        if sequential:
            tr.handed += 1
        return SlabPos(n, off, PAGE_SIZE << slab.order, s.size, tr.label, rule)

    def _plan_free(self, obj: Obj, via: str | None, add: int, kind: str) -> Message | None:
        assert obj.impl is not None
        return self._free_request(via, obj.impl + add, obj.model + add, kind, obj)

    def _free_request(self, via: str | None, impl: int, model: int, kind: str,
                      obj: Obj | None) -> Message:
        if via is None:
            req: Message = {"op": "kfree", "addr": impl}
            mreq: Message = {"op": "kfree", "addr": model}
        else:
            req = {"op": "kmem_cache_free", "cache": via, "addr": impl}
            mreq = {"op": "kmem_cache_free", "cache": via, "addr": model}
        p = self._run(req, mreq, kind, obj)
        if "ok" in p.expected and obj is not None and kind in ("free", "wrong_cache"):
            p.kind = "free"  # through an alias of its own cache (merging): a valid free
            self.live.remove(obj)
            self.live_model.discard(obj.model)
            self.freed.append(obj)
            del self.freed[:-16]
            if self.strict and obj.kind != "large":
                self._note_free(obj)
        return req

    def _note_free(self, obj: Obj) -> None:
        m = self.model
        slab = m.kmem.slabs.get((obj.model - m.offset) >> 12)
        if slab is None:  # discarded by this very free
            return
        n = self.serial.get(slab)
        if n is not None:
            self.tracks[n].freed = True
        self.freed_stack.setdefault(slab.slab_cache, []).append(obj.model)

    # ---------------------------------------------------------------------------------------
    # checking answers
    def check(self, request: Message, response: Message) -> Outcome:
        p = self.plans[id(request)]
        self.current = p
        try:
            if p.kind == "alloc":
                return self._check_alloc(p, response)
            if p.kind == "ksize":
                return self._check_ksize(p, response)
            return self._check_ok(p, response)
        finally:
            for n in p.discards:
                self.impl_slab.pop(n, None)

    def _check_ok(self, p: Plan, response: Message) -> Outcome:
        if "error" in response:
            if not isinstance(response["error"], str):
                raise ProtocolError(f"'error' must be a string: {response}")
            accepted = False
        elif response.get("ok") is True:
            accepted = True
        else:
            raise ProtocolError(f"a {p.request['op']} answer must be {{\"ok\": true}} or carry "
                                f"'error': {response}")
        want = "ok" in p.expected
        out = Outcome(p.expected)
        if p.kind == "create":
            name = "cache_create_accepts_valid" if want else "cache_create_rejects_invalid"
        elif p.kind == "destroy":
            name = "cache_destroy_accepts_empty" if want else "cache_destroy_rejects_busy"
        else:
            name = FREE_KINDS[p.kind]
        if accepted and want and p.kind == "free":
            assert p.obj is not None and p.obj.impl is not None
            self._remove(p.obj.impl)
        if accepted == want:
            self.ok(name)
            return out
        actual: JSON = {"ok": True} if accepted else {"error": response["error"]}
        call = f"{p.request['op']}({_args(p.request)})"
        if want:
            msg = f"{call} was refused; {self._why_ok(p)}"
        else:
            msg = f"{call} must be refused: {self._why_bad(p)}; the model raises " \
                  f"{p.expected['error']}"
        out.failures.append(Failure(name, msg, p.expected, actual))
        return out

    def _why_ok(self, p: Plan) -> str:
        if p.kind == "create":
            return "the object size and alignment are valid"
        if p.kind == "destroy":
            return "the cache has no live objects" + (
                "" if self.nomerge else " (or is an alias of a merged cache)")
        if p.kind == "special":
            return "kfree ignores NULL and ZERO_SIZE_PTR"
        if p.obj is not None and p.request["op"] == "kmem_cache_free" \
                and p.request["cache"] != p.obj.cache:
            return f"{p.request['cache']!r} and {p.obj.cache!r} are one merged cache in 5.10"
        return "it is a live object"

    def _why_bad(self, p: Plan) -> str:
        o = p.obj
        if p.kind == "create":
            r = p.request
            return f"object size {r['size']} and alignment {r['align']} (sizes run from 8 " \
                   f"to {KMALLOC_MAX_SIZE}, alignments are 0 or powers of two)"
        if p.kind == "destroy":
            return f"cache {p.request['cache']!r} still has objects"
        if p.kind == "wild":
            return "no allocation returned that pointer"
        assert o is not None and o.impl is not None
        what = f"the object at {o.impl:#x} ({self._describe(o)})"
        if p.kind == "double_free":
            return f"{what} is already free"
        if p.kind == "interior":
            return f"it points inside {what}"
        return f"{what} does not belong to cache {p.request.get('cache')!r}"

    @staticmethod
    def _describe(o: Obj) -> str:
        if o.kind == "cache":
            return f"from kmem_cache_alloc({o.cache!r})"
        return f"from kmalloc({o.size})"

    # byte ranges of the live objects, by the implementation's addresses
    def _overlapping(self, start: int, end: int) -> tuple[int, int, Obj | None] | None:
        i = bisect.bisect_right(self.starts, start) - 1
        if i >= 0:
            s = self.starts[i]
            e, o = self.ranges[s]
            if e > start:
                return s, e, o
        if i + 1 < len(self.starts) and self.starts[i + 1] < end:
            s = self.starts[i + 1]
            e, o = self.ranges[s]
            return s, e, o
        return None

    def _insert(self, start: int, end: int, obj: Obj | None) -> None:
        bisect.insort(self.starts, start)
        self.ranges[start] = (end, obj)

    def _remove(self, start: int) -> None:
        if self.ranges.pop(start, None) is not None:
            del self.starts[bisect.bisect_left(self.starts, start)]

    def _answer_addr(self, response: Message) -> int | None:
        if "error" in response:
            if not isinstance(response["error"], str):
                raise ProtocolError(f"'error' must be a string: {response}")
            return None
        if "addr" not in response:
            raise ProtocolError(f"an allocation answers {{\"addr\": address or null}} or "
                                f"carries 'error': {response}")
        addr = response["addr"]
        if addr is None:
            return None
        if not isinstance(addr, int) or isinstance(addr, bool) or not 0 <= addr < 1 << 64:
            raise ProtocolError(f"'addr' must be an unsigned 64-bit integer or null: {response}")
        return addr or None

    def _check_alloc(self, p: Plan, response: Message) -> Outcome:
        addr = self._answer_addr(response)
        req = p.request
        call = f"{req['op']}({_args(req)})"
        actual: JSON = {"addr": addr}
        out = Outcome(p.expected)
        fail = out.failures
        want = p.expected["addr"]
        if req["op"] == "kmalloc" and req["size"] == 0:
            return self._check_zero(call, addr, out)
        if want is None:
            size = req.get("size")
            too_large = isinstance(size, int) and size > KMALLOC_MAX_SIZE
            name = "kmalloc_too_large_fails" if too_large else "alloc_succeeds"
            if addr is None:
                self.ok(name)
            else:
                why = f"above KMALLOC_MAX_SIZE ({KMALLOC_MAX_SIZE})" if too_large else "here"
                fail.append(Failure(name, f"{call} returned {addr:#x}; 5.10 returns NULL "
                                    f"{why}", p.expected, actual))
            return out
        o = p.obj
        assert o is not None
        out.expected = {"addr": f"any free address aligned to {o.align}"}
        if addr is None:
            fail.append(Failure("alloc_succeeds", f"{call} failed; the model's succeeds (and "
                                "the runner keeps at most 32 MiB allocated)", out.expected,
                                actual))
            return out
        self.ok("alloc_succeeds")
        if addr % o.align:
            fail.append(Failure("alloc_aligned", f"{call} returned {addr:#x}, not aligned to "
                                f"{o.align}", out.expected, actual))
        else:
            self.ok("alloc_aligned")
        end = addr + max(o.size, 1)
        hit = self._overlapping(addr, end)
        if hit is not None and hit[0] == addr and hit[2] is not None:
            fail.append(Failure("alloc_not_live", f"{call} returned {addr:#x}, which is live "
                                f"({self._describe(hit[2])}, never freed)", out.expected,
                                actual))
        elif hit is not None:
            what = "the implementation's ZERO_SIZE_PTR" if hit[2] is None else \
                f"the live object [{hit[0]:#x}, {hit[1]:#x}) ({self._describe(hit[2])})"
            self.ok("alloc_not_live")
            fail.append(Failure("alloc_no_overlap", f"{call} returned [{addr:#x}, {end:#x}), "
                                f"which overlaps {what}", out.expected, actual))
        else:
            self.ok("alloc_not_live")
            self.ok("alloc_no_overlap")
        if fail:
            return out
        o.impl = addr
        self._insert(addr, end, o)
        if self.strict and p.pos is not None:
            self._check_position(p.pos, call, addr, out, actual)
        return out

    def _check_zero(self, call: str, addr: int | None, out: Outcome) -> Outcome:
        actual: JSON = {"addr": addr}
        name = "kmalloc_zero_size_ptr"
        if addr is None:
            out.failures.append(Failure(name, f"{call} returned NULL; 5.10 returns "
                                        "ZERO_SIZE_PTR (16): not NULL, inside no object, and "
                                        "kfree accepts it", out.expected, actual))
            return out
        if self.zero_impl is not None and addr != self.zero_impl:
            out.failures.append(Failure(name, f"{call} returned {addr:#x}, earlier "
                                        f"{self.zero_impl:#x}: ZERO_SIZE_PTR is one constant",
                                        out.expected, actual))
            return out
        if self.zero_impl is None:
            hit = self._overlapping(addr, addr + 1)
            if hit is not None and hit[2] is not None:
                out.failures.append(Failure(name, f"{call} returned {addr:#x}, inside the live "
                                            f"object at {hit[0]:#x}", out.expected, actual))
                return out
            self.zero_impl = addr
            self._insert(addr, addr + 1, None)
        self.ok(name)
        if self.strict:
            if addr == ZERO_SIZE_PTR:
                self.ok("zero_size_ptr_exact")
            else:
                out.failures.append(Failure("zero_size_ptr_exact", f"{call} returned "
                                            f"{addr:#x}; 5.10's ZERO_SIZE_PTR is 16",
                                            out.expected, actual))
        return out

    def _check_position(self, pos: SlabPos, call: str, addr: int, out: Outcome,
                        actual: JSON) -> None:
        name = RULE_CHECKS[pos.rule]
        if pos.rule == "large":
            if addr % PAGE_SIZE:
                out.failures.append(Failure(name, f"{call} returned {addr:#x}; 5.10's "
                                            "kmalloc_large blocks are whole pages",
                                            out.expected, actual))
            else:
                self.ok(name)
            return
        where = f"object {pos.offset // pos.stride} (offset {pos.offset:#x}) of {pos.label}"
        why = f" ({RULE_WHY[pos.rule]})" if RULE_WHY[pos.rule] else ""
        known = self.impl_slab.get(pos.serial)
        if known is not None:
            want = known[0] + pos.offset
            out.expected = {"addr": want}
            if addr == want:
                self.ok(name)
            else:
                out.failures.append(Failure(name, f"{call} returned {addr:#x}; 5.10 hands out "
                                            f"{where}{why}, here {want:#x}", out.expected,
                                            actual))
            return
        # 5.10 starts on a slab it had not handed out from: the implementation's
        # corresponding slab begins where this object lies, minus 5.10's offset.
        base = addr - pos.offset
        out.expected = {"addr": f"{where}{why}: a slab not used so far"}
        for b, nbytes, label in self.impl_slab.values():
            if b < base + pos.nbytes and base < b + nbytes:
                out.failures.append(Failure(
                    name, f"{call} returned {addr:#x}; 5.10 hands out {where}{why}, but the "
                    f"{pos.nbytes} bytes from {base:#x} overlap the implementation's slab at "
                    f"{b:#x}, which is {label}", out.expected, actual))
                return
        self.impl_slab[pos.serial] = (base, pos.nbytes, pos.label)
        self.ok(name)

    def _check_ksize(self, p: Plan, response: Message) -> Outcome:
        o = p.obj
        assert o is not None and o.impl is not None
        out = Outcome(p.expected)
        call = f"ksize({o.impl:#x}) of the object {self._describe(o)}"
        if "error" in response:
            out.failures.append(Failure("ksize_covers_object", f"{call} was refused",
                                        p.expected, {"error": response["error"]}))
            return out
        got = response.get("size")
        if not isinstance(got, int) or isinstance(got, bool) or got < 0:
            raise ProtocolError(f"a ksize answer needs a non-negative integer 'size': "
                                f"{response}")
        actual: JSON = {"size": got}
        if got < o.size:
            out.failures.append(Failure("ksize_covers_object", f"{call} is {got}, less than "
                                        f"the {o.size} bytes asked for", p.expected, actual))
            return out
        end = o.impl + got
        i = bisect.bisect_right(self.starts, o.impl)
        if i < len(self.starts) and self.starts[i] < end:
            s = self.starts[i]
            other = self.ranges[s][1]
            what = "the implementation's ZERO_SIZE_PTR" if other is None else \
                f"the live object at {s:#x} ({self._describe(other)})"
            out.failures.append(Failure("ksize_covers_object", f"{call} is {got}: those bytes "
                                        f"overlap {what}", p.expected, actual))
            return out
        self.ok("ksize_covers_object")
        if end > self.ranges[o.impl][0]:  # the caller may use every ksize byte
            self.ranges[o.impl] = (end, o)
        if self.strict:
            if got == p.expected["size"]:
                self.ok("ksize_exact")
            else:
                out.failures.append(Failure("ksize_exact", f"{call} is {got}; 5.10's is "
                                            f"{p.expected['size']}", p.expected, actual))
        return out

    # ---------------------------------------------------------------------------------------
    # observations
    def check_observation(self, what: str, response: Message) -> Outcome:
        snap = self.current.snapshot if self.current is not None else None
        if snap is None:
            snap = Snapshot(self.model.geometries(), self.model.slab_counts(), {}, self.created)
        if what == "caches":
            return self._check_caches(snap, response)
        return self._check_slabs(snap, response)

    def _check_caches(self, snap: Snapshot, response: Message) -> Outcome:
        raw = response.get("caches")
        entries: dict[str, dict[str, int]] = {}
        if isinstance(raw, dict):
            for key, val in raw.items():
                if not isinstance(val, dict):
                    break
                vals = {k: val.get(k) for k in GEOMETRY_FIELDS}
                ints = {k: v for k, v in vals.items() if isinstance(v, int)
                        and not isinstance(v, bool)}
                if len(ints) != len(GEOMETRY_FIELDS):
                    break
                entries[key] = ints
        if not isinstance(raw, dict) or len(entries) != len(raw):
            raise ProtocolError("'caches' must map cache names to objects of integers "
                                f"{', '.join(GEOMETRY_FIELDS)}: {str(response)[:200]}")
        out = Outcome(dict[str, JSON](snap.caches))
        actual: JSON = raw
        bad: list[str] = []
        for k in range(snap.created):
            cname = f"cache{k}"
            g = entries.get(cname)
            want = snap.caches.get(cname)
            if want is None:
                if g is not None:
                    bad.append(f"{cname} is listed, but it was destroyed (or never created)")
            elif g is None:
                bad.append(f"{cname} is not listed")
            else:
                bad += [f"{cname}: {msg}" for msg in self._geometry_problems(cname, g, want)]
        if bad:
            out.failures.append(Failure("cache_geometry_consistent", "; ".join(bad[:4]),
                                        out.expected, actual))
        else:
            self.ok("cache_geometry_consistent")
        if self.strict and not bad:
            diff = [f"{c}.{k} is {entries[c][k]}, 5.10's {w[k]}"
                    for c, w in snap.caches.items() for k in GEOMETRY_FIELDS
                    if entries[c][k] != w[k]]
            if diff:
                out.failures.append(Failure("cache_geometry_exact", "; ".join(diff[:4]),
                                            out.expected, actual))
            else:
                self.ok("cache_geometry_exact")
        return out

    def _geometry_problems(self, cname: str, g: dict[str, int],
                           want: dict[str, JSON]) -> list[str]:
        object_size, size, align, objects, order = (g[k] for k in GEOMETRY_FIELDS)
        asked = max(self.requested[cname][1], ARCH_SLAB_MINALIGN)
        out = []
        if object_size != want["object_size"]:
            out.append(f"object_size {object_size}, asked for {want['object_size']}")
        if size < object_size:
            out.append(f"size {size} is less than object_size {object_size}")
        if align < asked or align & (align - 1):
            out.append(f"align {align} is not a power of two of at least {asked}")
        elif size % align:
            out.append(f"size {size} is not a multiple of align {align}")
        if not 0 <= order <= MAX_SLAB_ORDER:
            out.append(f"order {order} is outside [0, {MAX_SLAB_ORDER}]")
        elif objects < 1 or objects * size > PAGE_SIZE << order:
            out.append(f"{objects} objects of {size} bytes do not fit in a slab of "
                       f"{1 << order} page(s)")
        return out

    def _check_slabs(self, snap: Snapshot, response: Message) -> Outcome:
        raw = response.get("slabs")
        counts: dict[str, int] = {}
        if isinstance(raw, dict):
            counts = {k: v for k, v in raw.items()
                      if isinstance(v, int) and not isinstance(v, bool) and v >= 0}
        if not isinstance(raw, dict) or len(counts) != len(raw):
            raise ProtocolError(f"'slabs' must map cache names to slab counts: "
                                f"{str(response)[:200]}")
        out = Outcome(dict[str, JSON](snap.slabs))
        actual: JSON = raw
        bad = []
        for k in range(snap.created):
            cname = f"cache{k}"
            n = counts.get(cname, 0)
            if cname not in snap.live:
                if n:
                    bad.append(f"{cname} was destroyed (or never created) but holds {n} slab(s)")
            elif snap.live[cname] and not n:
                bad.append(f"{cname} has {snap.live[cname]} live object(s) but no slab")
        if bad:
            out.failures.append(Failure("slabs_hold_live_objects", "; ".join(bad[:4]),
                                        out.expected, actual))
        else:
            self.ok("slabs_hold_live_objects")
        if self.strict and not bad:
            got = {k: v for k, v in counts.items() if v}
            want = {k: v for k, v in snap.slabs.items() if v}
            if got == want:
                self.ok("slabs_exact")
            else:
                diff = [f"{k}: {got.get(k, 0)}, 5.10 {want.get(k, 0)}"
                        for k in sorted(set(got) | set(want)) if got.get(k, 0) != want.get(k, 0)]
                out.failures.append(Failure("slabs_exact", "slabs per cache differ: "
                                            + "; ".join(diff[:4]), out.expected, actual))
        return out

    # ---------------------------------------------------------------------------------------
    def trace(self, steps: list[tuple[Message, Message]], failing: int) -> tuple[str, JSON]:
        model = SlabModel(self.nomerge)
        for req, _ in steps[:failing]:
            p = self.plans.get(id(req))
            if p is not None:
                model.apply(p.model_req)
        p = self.plans[id(steps[failing][0])]
        with Tracer() as t:
            answer = model.apply(p.model_req)
        text = t.render(show_files=False, max_depth=8)
        if "error" in answer:
            text += f"\n!! the model refuses the call: {answer['error']}"
        return text, answer


# ------------------------------------------------------------------------------------------
# Generation

# Sizes that fill a slab within a few objects come first: Hypothesis draws index 0 most.
SIZES = (8192, 1, 7, 8, 9, 16, 17, 24, 32, 33, 48, 64, 65, 72, 96, 97, 100, 128, 129, 160,
         192, 193, 200, 255, 256, 257, 500, 512, 513, 0, 1000, 1024, 1025, 2000, 2048, 2049,
         3000, 4096, 4097, 6000, 8193, 10000, 16384, 16385, 65536, KMALLOC_MAX_SIZE,
         KMALLOC_MAX_SIZE + 1, 1 << 40)
CREATE_SIZES = (10000, 4096, 40000, 2048, 3000, 5000, 8192, 1500, 1024, 700, 640, 500, 300,
                256, 200, 192, 128, 100, 96, 72, 64, 40, 24, 8, 1 << 20, 0, 4, 7,
                KMALLOC_MAX_SIZE + 1)
ALIGNS = (0, 0, 0, 0, 8, 16, 32, 64, 128, 4096, 1, 2, 4, 24, 3)

# (kind, x, rnd, i, y): x picks a size or a cache, rnd a random size, i an object (see
# SlabSession._pick), y a selector or an alignment. Everything shrinks towards kmalloc(8192)
# and the latest object or cache; the runner's shrinker then lowers the ops' own arguments.
BOUNDS = (100, 64, 8192, 16, 16)


def _decode(t: tuple[int, ...]) -> Op:
    kind, x, rnd, i, y = t
    c = x % 8
    if kind < 18:
        if y < 10:
            return Op("kmalloc", (SIZES[x % len(SIZES)],))
        if y < 12:
            return Op("kmalloc", (1 + rnd,))
        if y == 12:
            return Op("kmalloc", (KMALLOC_MAX_CACHE_SIZE + 1 + rnd * 7,))
        if y == 13:
            return Op("kmalloc", (0,))
        return Op("kmalloc", ((KMALLOC_MAX_SIZE + 1, 1 << 40)[rnd % 2],))
    if kind < 30:
        return Op("kfree", (i,))
    if kind < 36:
        size = CREATE_SIZES[x % len(CREATE_SIZES)] if y < 12 else 8 + rnd % 4089
        return Op("kmem_cache_create", (size, ALIGNS[i % len(ALIGNS)], rnd & 1))
    if kind < 54:
        return Op("kmem_cache_alloc", (c,))
    if kind < 66:
        return Op("kmem_cache_free", (i,))
    if kind < 71:
        return Op("kmem_cache_destroy", (c,))
    if kind < 75:
        return Op("ksize", (i,))
    if kind < 82:
        return Op("double_free", (i,))
    if kind < 87:
        return Op("free_wrong_cache", (i, c))
    if kind < 91:
        return Op("free_interior", (i,))
    if kind < 94:
        return Op("free_wild", (c,))
    return Op("kfree_special", (c,))


class SlabTarget(Target):
    name = "slab"
    description = "the slab allocator: kmem_cache_create/alloc/free/destroy, kmalloc, kfree, " \
                  "ksize (SLUB, one CPU)"
    observations = ("caches", "slabs")
    checks = CHECKS
    refs_in_strict_vectors = True

    def default_config(self) -> dict[str, JSON]:
        return {"slab_nomerge": True}

    def validate_config(self, config: dict[str, JSON]) -> dict[str, JSON]:
        full = {**self.default_config(), **config}
        unknown = set(full) - {"slab_nomerge"}
        if unknown:
            raise ValueError(f"unknown slab config key(s): {', '.join(sorted(unknown))}")
        if not isinstance(full["slab_nomerge"], bool):
            raise ValueError(f"config slab_nomerge must be true or false, got "
                             f"{full['slab_nomerge']!r}")
        return full

    def ops(self, config: dict[str, JSON]) -> st.SearchStrategy[Op]:
        return tuple_ops(BOUNDS, _decode)

    def random_op(self, config: dict[str, JSON], rng: random.Random) -> Op:
        return random_tuple_op(BOUNDS, _decode, rng)

    def vector_refs(self, requests: list[Message],
                    responses: list[Message]) -> list[dict[str, JSON] | None]:
        """A freed or measured address as "the address answered at step k, plus d": the
        latest allocation that answered exactly it, else the latest whose object holds it;
        literal when there is none (NULL, LIST_POISON1)."""
        extents: dict[str, int] = {}
        allocs: list[tuple[int, int, int]] = []  # (step, address, bytes)
        out: list[dict[str, JSON] | None] = []
        for i, req in enumerate(requests):
            addr = req.get("addr")
            ref: dict[str, JSON] | None = None
            if isinstance(addr, int) and addr:
                exact = [k for k, a, _ in allocs if a == addr]
                inside = [(k, a) for k, a, n in allocs if a <= addr < a + n]
                if exact:
                    ref = {"addr": {"ref": exact[-1], "add": 0}}
                elif inside:
                    k, a = inside[-1]
                    ref = {"addr": {"ref": k, "add": addr - a}}
            out.append(ref)
            op = req["op"]
            got = responses[i].get("addr")
            if op == "kmem_cache_create" and isinstance(req.get("cache"), str):
                size = req.get("size")
                extents[str(req["cache"])] = size if isinstance(size, int) else 8
            elif op in ("kmalloc", "kmem_cache_alloc") and isinstance(got, int):
                size = req.get("size") if op == "kmalloc" else extents.get(
                    str(req.get("cache")), 8)
                allocs.append((i, got, max(size if isinstance(size, int) else 8, 8)))
        return out

    def session(self, config: dict[str, JSON], mode: str, observations: frozenset[str],
                tally: Counter[str]) -> Session:
        return SlabSession(bool(config["slab_nomerge"]), mode, observations, tally)
