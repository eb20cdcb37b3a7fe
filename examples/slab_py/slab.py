"""A slab allocator in plain Python, checked by ``refmodel conform --target slab``.

What a teaching kernel's kmalloc has: caches of fixed-size objects carved out of slabs
(blocks of 2**order pages from a small buddy page allocator), the kmalloc size classes of
Linux (8 bytes to 8 KiB, with the 96- and 192-byte classes), whole page blocks for bigger
requests, ZERO_SIZE_PTR for kmalloc(0), and frees that check a pointer before trusting it
(double frees, the wrong cache, pointers into the middle of an object, pointers it never
returned). The cache geometry follows 5.10's calculate_sizes and calculate_order with one
CPU; which object it hands out does not try to (each slab keeps a LIFO stack of its free
objects, a cache refills from its newest slab with a free object, and an empty slab other
than the newest goes back to the page allocator at once), so it conforms in invariant mode,
and strict mode shows where 5.10 differs (the cpu slab, the per-cpu and node partial lists,
min_partial).

    refmodel conform --target slab --python examples/slab_py/slab.py:SlabAllocator
    refmodel conform --target slab --config slab_nomerge=false \\
        --python examples/slab_py/slab.py:SlabAllocator
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from refmodel.conformance.adapter import Refused

PAGE = 4096
MAX_ORDER = 11  # blocks of 2**0 .. 2**10 pages
BASE = 0x4000_0000_0000  # where the simulated memory starts (any aligned address would do)
MEMORY_BLOCKS = 64  # 64 blocks of 4 MiB: 256 MiB
ZERO_SIZE_PTR = 16
KMALLOC_MIN_ALIGN = 8
KMALLOC_MAX_CACHE_SIZE = 8192
KMALLOC_MAX_SIZE = PAGE << (MAX_ORDER - 1)  # 4 MiB
SLAB_HWCACHE_ALIGN = 0x2000
CACHE_LINE = 64


def get_order(size: int) -> int:
    """The smallest order whose block holds size bytes."""
    return max(0, ((size - 1) // PAGE).bit_length())


def kmalloc_index(size: int) -> int:
    """Linux's size classes: 2**index bytes, plus index 1 = 96 and index 2 = 192 bytes."""
    if size <= 8:
        return 3
    if 64 < size <= 96:
        return 1
    if 128 < size <= 192:
        return 2
    return (size - 1).bit_length()


def kmalloc_size(index: int) -> int:
    return {1: 96, 2: 192}.get(index, 1 << index)


def slab_order(size: int, min_objects: int, max_order: int, fract_leftover: int) -> int:
    """The smallest order holding min_objects whose leftover is at most 1/fract_leftover."""
    order = get_order(min_objects * size)
    while order <= max_order:
        slab_size = PAGE << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


def calculate_order(size: int) -> int:
    """mm/slub.c's choice with one CPU: aim for 8 objects, waste at most 1/16, 1/8, 1/4 of
    the slab, then fewer objects, then anything up to order 3, then anything at all."""
    min_objects = min(8, (PAGE << 3) // size)
    while min_objects > 1:
        fraction = 16
        while fraction >= 4:
            order = slab_order(size, min_objects, 3, fraction)
            if order <= 3:
                return order
            fraction //= 2
        min_objects -= 1
    order = slab_order(size, 1, 3, 1)
    return order if order <= 3 else slab_order(size, 1, MAX_ORDER - 1, 1)


def round_up(n: int, align: int) -> int:
    return (n + align - 1) & ~(align - 1)


class Pages:
    """A small buddy allocator over [BASE, BASE + 256 MiB): naturally aligned blocks."""

    def __init__(self) -> None:
        top = PAGE << (MAX_ORDER - 1)
        self.free: list[set[int]] = [set() for _ in range(MAX_ORDER)]
        self.free[-1] = {BASE + i * top for i in range(MEMORY_BLOCKS)}

    def alloc(self, order: int) -> int | None:
        for o in range(order, MAX_ORDER):
            if self.free[o]:
                addr = min(self.free[o])
                self.free[o].remove(addr)
                while o > order:  # split, keeping the lower half
                    o -= 1
                    self.free[o].add(addr + (PAGE << o))
                return addr
        return None

    def release(self, addr: int, order: int) -> None:
        while order < MAX_ORDER - 1:
            buddy = BASE + ((addr - BASE) ^ (PAGE << order))
            if buddy not in self.free[order]:
                break
            self.free[order].remove(buddy)
            addr = min(addr, buddy)
            order += 1
        self.free[order].add(addr)


@dataclass(eq=False)
class Slab:
    base: int
    cache: Cache
    free: list[int]  # free objects; the next one handed out is the last


@dataclass(eq=False)
class Cache:
    name: str
    object_size: int
    size: int  # the stride between objects
    align: int
    order: int
    objects: int  # per slab
    kmalloc: bool = False
    refcount: int = 1
    slabs: list[Slab] = field(default_factory=list)
    live: set[int] = field(default_factory=set)


def new_cache(name: str, object_size: int, align: int, flags: int) -> Cache:
    """calculate_alignment and calculate_sizes without debugging: the free pointer sits
    inside the object, so the stride is the object size rounded up to the alignment."""
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = CACHE_LINE
        while object_size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = round_up(max(align, 8), 8)
    size = round_up(round_up(object_size, 8), align)
    order = calculate_order(size)
    return Cache(name, object_size, size, align, order, (PAGE << order) // size)


class SlabAllocator:
    CHECK_DOUBLE_FREE = True  # the broken variant in slab_double_free.py turns this off

    def __init__(self, slab_nomerge: bool = True) -> None:
        self.merge = not slab_nomerge
        self.pages = Pages()
        self.by_name: dict[str, Cache] = {}
        self.page_slab: dict[int, Slab] = {}  # every page of every slab
        self.large: dict[int, int] = {}  # kmalloc blocks above 8 KiB -> order
        self.kmalloc_caches: dict[int, Cache] = {}
        for index in (3, 4, 5, 6, 1, 7, 2, 8, 9, 10, 11, 12, 13):
            size = kmalloc_size(index)
            name = f"kmalloc-{size // 1024}k" if size >= 1024 else f"kmalloc-{size}"
            cache = new_cache(name, size, KMALLOC_MIN_ALIGN, 0)
            cache.kmalloc = True
            self.kmalloc_caches[index] = cache

    # -- caches ----------------------------------------------------------------------------
    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> None:
        if not 8 <= size <= KMALLOC_MAX_SIZE or align < 0 or align & (align - 1):
            raise Refused(f"kmem_cache_create({name}): bad size {size} or alignment {align}")
        cache = new_cache(name, size, align, flags)
        if self.merge:  # 5.10's find_mergeable: the newest cache of the same stride
            for other in reversed(list(self.by_name.values())):
                if other.size == cache.size:
                    other.refcount += 1
                    other.object_size = max(other.object_size, size)
                    cache = other
                    break
        self.by_name[name] = cache

    def kmem_cache_destroy(self, name: str) -> None:
        cache = self._cache(name)
        if cache.refcount > 1:  # an alias of a merged cache: drop the name only
            cache.refcount -= 1
        elif cache.live:
            raise Refused(f"kmem_cache_destroy({name}): the cache still has objects")
        else:
            for slab in list(cache.slabs):
                self._free_slab(slab)
        del self.by_name[name]

    def kmem_cache_alloc(self, name: str) -> int | None:
        return self._alloc(self._cache(name))

    def kmem_cache_free(self, name: str, addr: int) -> None:
        cache = self._cache(name)
        slab = self._slab_of(addr)
        if slab.cache is not cache:
            raise Refused(f"{addr:#x} belongs to {slab.cache.name}, not {name}")
        self._free(slab, addr)

    def _cache(self, name: str) -> Cache:
        cache = self.by_name.get(name)
        if cache is None:
            raise Refused(f"no cache {name!r}")
        return cache

    # -- kmalloc ---------------------------------------------------------------------------
    def kmalloc(self, size: int) -> int | None:
        if size == 0:
            return ZERO_SIZE_PTR
        if size > KMALLOC_MAX_SIZE:
            return None
        if size > KMALLOC_MAX_CACHE_SIZE:
            order = get_order(size)
            addr = self.pages.alloc(order)
            if addr is not None:
                self.large[addr] = order
            return addr
        return self._alloc(self.kmalloc_caches[self.kmalloc_index(size)])

    def kmalloc_index(self, size: int) -> int:
        return kmalloc_index(size)

    def kfree(self, addr: int) -> None:
        if addr in (0, ZERO_SIZE_PTR):
            return
        order = self.large.pop(addr, None)
        if order is not None:
            self.pages.release(addr, order)
            return
        self._free(self._slab_of(addr), addr)

    def ksize(self, addr: int) -> int:
        if addr == ZERO_SIZE_PTR:
            return 0
        if addr in self.large:
            return PAGE << self.large[addr]
        slab = self._slab_of(addr)
        if addr not in slab.cache.live:
            raise Refused(f"{addr:#x} is not a live object")
        return slab.cache.size

    # -- slabs -----------------------------------------------------------------------------
    def _alloc(self, cache: Cache) -> int | None:
        slab = next((s for s in cache.slabs if s.free), None)
        if slab is None:
            base = self.pages.alloc(cache.order)
            if base is None:
                return None
            free = [base + i * cache.size for i in reversed(range(cache.objects))]
            slab = Slab(base, cache, free)
            cache.slabs.insert(0, slab)
            for i in range(1 << cache.order):
                self.page_slab[base + i * PAGE] = slab
        addr = slab.free.pop()
        cache.live.add(addr)
        return addr

    def _slab_of(self, addr: int) -> Slab:
        slab = self.page_slab.get(addr & ~(PAGE - 1))
        if slab is None:
            raise Refused(f"{addr:#x} was not returned by this allocator")
        return slab

    def _free(self, slab: Slab, addr: int) -> None:
        cache = slab.cache
        offset = addr - slab.base
        if offset % cache.size or offset // cache.size >= cache.objects:
            raise Refused(f"{addr:#x} is not the start of a {cache.name} object")
        if addr not in cache.live:
            if self.CHECK_DOUBLE_FREE:
                raise Refused(f"double free of {addr:#x} in {cache.name}")
        else:
            cache.live.remove(addr)
        slab.free.append(addr)
        if len(slab.free) == cache.objects and slab is not cache.slabs[0]:
            self._free_slab(slab)  # empty: back to the page allocator, unless the newest

    def _free_slab(self, slab: Slab) -> None:
        cache = slab.cache
        cache.slabs.remove(slab)
        for i in range(1 << cache.order):
            del self.page_slab[slab.base + i * PAGE]
        self.pages.release(slab.base, cache.order)

    # -- observations ----------------------------------------------------------------------
    def caches(self) -> Mapping[str, Mapping[str, int]]:
        return {name: {"object_size": c.object_size, "size": c.size, "align": c.align,
                       "objects": c.objects, "order": c.order}
                for name, c in self.by_name.items()}

    def slabs(self) -> Mapping[str, int]:
        out = {name: len(c.slabs) for name, c in self.by_name.items()}
        for c in self.kmalloc_caches.values():
            if c.slabs:
                out[c.name] = len(c.slabs)
        return out
