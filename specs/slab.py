"""SLUB invariants (mm/slub.c): objects, free lists, slab lists and counts agree."""

from __future__ import annotations

from collections.abc import Callable

from refmodel.mm.page_alloc import page_offset
from refmodel.mm.slub import get_freepointer, kmem_state
from refmodel.mm.slub_def import kmem_cache, slab_page
from refmodel.mm.types import PageFlags
from refmodel.specs import Violation

_PG_slab = int(PageFlags.PG_slab)


def _chain(kmem: kmem_state, s: kmem_cache, head: int, limit: int) -> list[int] | None:
    """The objects of a free list, or None if it has a cycle (longer than ``limit``)."""
    out: list[int] = []
    seen: set[int] = set()
    while head:
        if head in seen or len(out) > limit:
            return None
        seen.add(head)
        out.append(head)
        head = get_freepointer(kmem, s, head)
    return out


def _slabs(kmem: kmem_state) -> list[slab_page]:
    seen: dict[int, slab_page] = {}
    for slab in kmem.slabs.values():
        seen[id(slab)] = slab
    return list(seen.values())


def freelists_are_sound(kmem: kmem_state) -> list[Violation]:
    """Free lists have no cycles and hold only free objects of their own slab; each slab's
    inuse equals its objects minus its free list (and, for the cpu slab, minus the per-cpu
    free list too)."""
    v = []
    for slab in _slabs(kmem):
        s = slab.slab_cache
        chain = _chain(kmem, s, slab.freelist, slab.objects)
        cpu = s.cpu_slab.page is slab
        cpu_chain = _chain(kmem, s, s.cpu_slab.freelist, slab.objects) if cpu else []
        name = f"slab at {slab.start:#x} of {s.name}"
        if chain is None or cpu_chain is None:
            v.append(Violation("freelist_no_cycle", f"{name}: its free list has a cycle"))
            continue
        for obj in chain + cpu_chain:
            if not slab.start <= obj < slab.start + slab.objects * s.size or (
                    obj - slab.start) % s.size:
                v.append(Violation("freelist_holds_own_objects",
                                   f"{name}: free list entry {obj:#x} is not one of its objects"))
            elif obj in kmem.live:
                v.append(Violation("object_never_handed_out_twice",
                                   f"{name}: {obj:#x} is both allocated and on a free list"))
        if slab.inuse != slab.objects - len(chain):
            v.append(Violation("inuse_matches_freelist",
                               f"{name}: inuse {slab.inuse}, free list {len(chain)}, "
                               f"objects {slab.objects}"))
        end = slab.start + slab.objects * s.size
        live_here = sum(1 for x in kmem.live if slab.start <= x < end)
        if live_here != slab.objects - len(chain) - len(cpu_chain):
            v.append(Violation("inuse_matches_freelist",
                               f"{name}: {live_here} live objects, {len(chain)} + "
                               f"{len(cpu_chain)} free, {slab.objects} in all"))
    return v


def live_objects_inside_their_cache(kmem: kmem_state) -> list[Violation]:
    """Every object handed out lies in a slab page of its own cache, on an object boundary
    aligned to the cache's alignment."""
    v = []
    off = page_offset(kmem.pgdat)
    for x, s in kmem.live.items():
        slab = kmem.slabs.get((x - off) >> 12)
        if slab is None or slab.slab_cache is not s:
            v.append(Violation("object_in_own_slab", f"{x:#x} is not in a slab of {s.name}"))
            continue
        if (x - slab.start) % s.size or x % s.align:
            v.append(Violation("object_aligned", f"{x:#x} is not an aligned {s.name} object"))
    return v


def slab_lists_agree(kmem: kmem_state) -> list[Violation]:
    """Every slab page has PG_slab and one cache; node partial slabs are unfrozen and
    partially free; per-cpu partial slabs and the cpu slab are frozen; the counts match."""
    v = []
    per_cache: dict[int, int] = {}
    for pfn, slab in kmem.slabs.items():
        if pfn == slab.page.pfn and not slab.page.flags & _PG_slab:
            v.append(Violation("slab_page_flag", f"slab page {pfn:#x} lacks PG_slab"))
    for slab in _slabs(kmem):
        per_cache[id(slab.slab_cache)] = per_cache.get(id(slab.slab_cache), 0) + 1
    for s in kmem.slab_caches:
        n = s.node
        if n.nr_partial != len(n.partial):
            v.append(Violation("nr_partial", f"{s.name}: nr_partial {n.nr_partial}, list "
                               f"{len(n.partial)}"))
        for slab in n.partial.values():
            if slab.frozen or not slab.freelist or slab.slab_cache is not s:
                v.append(Violation("node_partial_slabs",
                                   f"{s.name}: partial slab {slab.start:#x} frozen={slab.frozen}"
                                   f" freelist={slab.freelist:#x}"))
        p = s.cpu_slab.partial
        count = 0
        while p is not None and count <= len(kmem.slabs):
            if not p.frozen or p.on_node_partial:
                v.append(Violation("cpu_partial_slabs", f"{s.name}: cpu partial slab "
                                   f"{p.start:#x} is not frozen or also on the node list"))
            p = p.next
            count += 1
        if s.cpu_slab.page is not None and not s.cpu_slab.page.frozen:
            v.append(Violation("cpu_slab_frozen", f"{s.name}: the cpu slab is not frozen"))
        if n.nr_slabs != per_cache.get(id(s), 0):
            v.append(Violation("nr_slabs", f"{s.name}: nr_slabs {n.nr_slabs}, slabs "
                               f"{per_cache.get(id(s), 0)}"))
    return v


SLAB_INVARIANTS: tuple[Callable[[kmem_state], list[Violation]], ...] = (
    freelists_are_sound,
    live_objects_inside_their_cache,
    slab_lists_agree,
)


def check_slab(kmem: kmem_state) -> list[Violation]:
    out: list[Violation] = []
    for inv in SLAB_INVARIANTS:
        out.extend(inv(kmem))
    return out


def slab_state(kmem: kmem_state) -> tuple[object, ...]:
    """Everything observable about the slab allocator, for "a refused call changed nothing"."""
    caches = []
    for s in kmem.slab_caches:
        c = s.cpu_slab
        caches.append((s.name, c.freelist, None if c.page is None else c.page.start,
                       tuple(s.node.partial), s.node.nr_slabs))
    slabs = tuple(sorted((sl.start, sl.freelist, sl.inuse, sl.frozen) for sl in _slabs(kmem)))
    return tuple(caches), slabs, tuple(sorted(kmem.live)), tuple(sorted(kmem.large.items()))
