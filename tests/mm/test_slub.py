"""5.10-exact behaviour of SLUB (mm/slub.c) with one CPU, and its state machine."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from refmodel.bugs import KernelBug
from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.page_alloc import page_offset, virt_to_page
from refmodel.mm.slub import (
    get_freepointer,
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
from refmodel.mm.types import PageFlags
from refmodel.specs.buddy import buddy_state, check_buddy
from refmodel.specs.slab import check_slab, slab_state
from refmodel.trace import Tracer

# /proc/slabinfo of a one-CPU 5.10 kernel: objects per slab and pages per slab.
KMALLOC_GEOMETRY = {
    "kmalloc-8": (512, 1), "kmalloc-16": (256, 1), "kmalloc-32": (128, 1),
    "kmalloc-64": (64, 1), "kmalloc-96": (42, 1), "kmalloc-128": (32, 1),
    "kmalloc-192": (21, 1), "kmalloc-256": (16, 1), "kmalloc-512": (8, 1),
    "kmalloc-1k": (8, 2), "kmalloc-2k": (8, 4), "kmalloc-4k": (8, 8), "kmalloc-8k": (4, 8),
}


@pytest.fixture
def kmem() -> kmem_state:
    return kmem_cache_init(Machine(MachineConfig(memory=128 * MiB)).pgdat)


def test_kmalloc_caches_have_5_10_objects_per_slab_and_order(kmem: kmem_state) -> None:
    got = {s.name: (s.objects, 1 << s.order) for s in kmem.kmalloc_caches.values()}
    assert got == KMALLOC_GEOMETRY
    k96 = kmem.kmalloc_caches[1]
    assert (k96.min_partial, k96.cpu_partial, k96.offset) == (5, 30, 48)  # mid-object pointer
    assert kmem.kmalloc_caches[13].cpu_partial == 2


@pytest.mark.parametrize(("size", "index"), [(1, 3), (8, 3), (9, 4), (64, 6), (65, 1), (96, 1),
                                             (97, 7), (129, 2), (192, 2), (193, 8), (8192, 13)])
def test_kmalloc_index_has_the_96_and_192_byte_classes(size: int, index: int) -> None:
    assert kmalloc_index(size) == index


def test_first_objects_of_a_new_cache_come_in_ascending_order(kmem: kmem_state) -> None:
    s = kmem_cache_create(kmem, "test_obj", 200)
    assert s is not None and s.size == 200 and s.objects == 20
    objs = [kmem_cache_alloc(kmem, s, G.GFP_KERNEL) for _ in range(s.objects)]
    assert objs == [objs[0] + i * 200 for i in range(s.objects)]
    page = virt_to_page(kmem.pgdat, objs[0])
    assert page.flags & PageFlags.PG_slab
    nxt = kmem_cache_alloc(kmem, s, G.GFP_KERNEL)
    assert virt_to_page(kmem.pgdat, nxt) is not page  # the slab was full: a new one
    assert check_slab(kmem) == []


def test_a_freed_object_is_the_next_one_handed_out(kmem: kmem_state) -> None:
    a = kmalloc(kmem, 64, G.GFP_KERNEL)
    b = kmalloc(kmem, 64, G.GFP_KERNEL)
    kfree(kmem, a)
    assert kmalloc(kmem, 64, G.GFP_KERNEL) == a
    kfree(kmem, b)
    kfree(kmem, a)
    assert kmalloc(kmem, 60, G.GFP_KERNEL) == a
    assert kmalloc(kmem, 33, G.GFP_KERNEL) == b


def test_free_pointer_is_stored_in_the_free_objects_bytes(kmem: kmem_state) -> None:
    a = kmalloc(kmem, 128, G.GFP_KERNEL)
    b = kmalloc(kmem, 128, G.GFP_KERNEL)
    kfree(kmem, b)
    kfree(kmem, a)
    s = kmem.kmalloc_caches[7]
    phys = a + s.offset - page_offset(kmem.pgdat)
    word = int.from_bytes(kmem.pgdat.page_data[phys >> 12][phys & 0xFFF:(phys & 0xFFF) + 8],
                          "little")
    assert word == b == get_freepointer(kmem, s, a)


def test_kzalloc_zeroes_the_reused_object(kmem: kmem_state) -> None:
    a = kmalloc(kmem, 32, G.GFP_KERNEL)
    kfree(kmem, a)
    b = kmalloc(kmem, 32, G.GFP_KERNEL | G.__GFP_ZERO)
    assert b == a
    phys = a - page_offset(kmem.pgdat)
    assert bytes(kmem.pgdat.page_data[phys >> 12][phys & 0xFFF:(phys & 0xFFF) + 32]) == bytes(32)


def test_kmalloc_above_8k_takes_compound_pages(kmem: kmem_state) -> None:
    x = kmalloc(kmem, 8193, G.GFP_KERNEL)
    page = virt_to_page(kmem.pgdat, x)
    assert page.flags & PageFlags.PG_head and kmem.pgdat.allocated[page.pfn] == 2
    kfree(kmem, x)
    assert page.pfn not in kmem.pgdat.allocated


def test_kfree_of_a_pointer_into_a_large_block_frees_the_whole_block(kmem: kmem_state) -> None:
    # 5.10's kfree takes virt_to_head_page(x): a pointer anywhere in a kmalloc_large block
    # frees the compound page from its head, with its order.
    free_before = sum(z.nr_free_pages for z in kmem.pgdat.node_zones)
    x = kmalloc(kmem, 5 * 4096, G.GFP_KERNEL)  # order 3
    head = virt_to_page(kmem.pgdat, x)
    assert kmem.pgdat.allocated[head.pfn] == 3
    kfree(kmem, x + 6 * 4096 + 100)
    assert head.pfn not in kmem.pgdat.allocated and x not in kmem.large
    assert sum(z.nr_free_pages for z in kmem.pgdat.node_zones) == free_before
    assert check_buddy(kmem.pgdat) == []
    with pytest.raises(KernelBug, match="PageCompound"):
        kfree(kmem, x)  # the block is gone: a second free is a bug


def test_a_stale_pointer_into_a_new_large_block_frees_that_block(kmem: kmem_state) -> None:
    # The dev profile's counterexample: four order-2 blocks freed, then an order-3 block over
    # them. A stale pointer to the second old block lies inside the new one, so kfree frees
    # the new block (5.10 cannot tell a stale pointer from an interior one); its own
    # pointer is then a double free.
    old = [kmalloc(kmem, 8193, G.GFP_KERNEL) for _ in range(4)]
    for x in old:
        kfree(kmem, x)
    y = kmalloc(kmem, 16385, G.GFP_KERNEL)
    inside = [x for x in old if y < x < y + 8 * 4096]
    assert inside, "the order-3 block should cover an old order-2 block"
    kfree(kmem, inside[0])
    assert y not in kmem.large and check_buddy(kmem.pgdat) == []
    with pytest.raises(KernelBug, match="PageCompound"):
        kfree(kmem, y)


def test_zero_size_kmalloc_returns_zero_size_ptr(kmem: kmem_state) -> None:
    assert kmalloc(kmem, 0, G.GFP_KERNEL) == 16
    kfree(kmem, 16)
    kfree(kmem, 0)


def test_caches_of_the_same_size_merge_but_not_with_kmalloc(kmem: kmem_state) -> None:
    a = kmem_cache_create(kmem, "a", 100)
    b = kmem_cache_create(kmem, "b", 100)
    c = kmem_cache_create(kmem, "c", 100, ctor=True)
    assert a is b and a is not None and a.refcount == 2 and c is not a
    assert a is not kmem.kmalloc_caches[7]


@pytest.mark.parametrize("kind", ["double", "wrong_cache", "not_kmalloced", "inside_object"])
def test_bad_free_raises_the_named_check_and_changes_nothing(kmem: kmem_state,
                                                             kind: str) -> None:
    s = kmem_cache_create(kmem, "objs", 200)
    t = kmem_cache_create(kmem, "other", 300)
    assert s is not None and t is not None
    x = kmem_cache_alloc(kmem, s, G.GFP_KERNEL)
    y = kmalloc(kmem, 64, G.GFP_KERNEL)
    kmem_cache_alloc(kmem, s, G.GFP_KERNEL)
    if kind == "double":
        kfree(kmem, y)
    before, buddy_before = slab_state(kmem), buddy_state(kmem.pgdat)
    with pytest.raises(KernelBug) as exc:
        if kind == "double":
            kfree(kmem, y)
        elif kind == "wrong_cache":
            kmem_cache_free(kmem, t, x)
        elif kind == "not_kmalloced":
            kfree(kmem, page_offset(kmem.pgdat) + 0x2400000)
        else:
            kfree(kmem, x + 8)
    check = {"double": "double free", "wrong_cache": "Wrong slab cache",
             "not_kmalloced": "PageCompound", "inside_object": "check_valid_pointer"}[kind]
    assert check in str(exc.value)
    assert slab_state(kmem) == before and buddy_state(kmem.pgdat) == buddy_before


def test_destroying_a_cache_with_objects_keeps_it(kmem: kmem_state) -> None:
    s = kmem_cache_create(kmem, "busy", 64, flags=0x00040000 * 0)
    assert s is not None
    x = kmem_cache_alloc(kmem, s, G.GFP_KERNEL)
    with pytest.raises(KernelBug, match="still has objects"):
        kmem_cache_destroy(kmem, s)
    kmem_cache_free(kmem, s, x)
    free_before = sum(z.nr_free_pages for z in kmem.pgdat.node_zones)
    kmem_cache_destroy(kmem, s)
    assert s not in kmem.slab_caches
    assert sum(z.nr_free_pages for z in kmem.pgdat.node_zones) >= free_before
    assert check_slab(kmem) == [] and check_buddy(kmem.pgdat) == []


def test_empty_slabs_are_discarded_only_beyond_min_partial(kmem: kmem_state) -> None:
    s = kmem_cache_create(kmem, "disc", 1024)
    assert s is not None and s.min_partial == 5 and s.objects == 8
    objs = [kmem_cache_alloc(kmem, s, G.GFP_KERNEL) for _ in range(8 * 12)]
    for x in objs:
        kmem_cache_free(kmem, s, x)
    assert check_slab(kmem) == []
    assert s.node.nr_slabs <= 12 and s.node.nr_partial >= s.min_partial


GFP_ZERO = G.__GFP_ZERO  # names with __ are mangled inside class bodies


class SlabMachine(RuleBasedStateMachine):
    """kmalloc/kfree of every size class and beyond, caches, bad frees; slab and buddy
    invariants after every step."""

    @initialize()
    def boot(self) -> None:
        self.kmem = kmem_cache_init(Machine(MachineConfig(memory=64 * MiB)).pgdat)
        self.live: list[int] = []
        self.freed: list[int] = []
        self.cache = kmem_cache_create(self.kmem, "sm", 72)
        self.cache_objs: list[int] = []

    @invariant()
    def slab_and_buddy_invariants_hold(self) -> None:
        if not hasattr(self, "kmem"):
            return
        v = check_slab(self.kmem) + check_buddy(self.kmem.pgdat)
        assert not v, "\n".join(map(str, v))

    @rule(size=st.one_of(st.integers(1, 8192), st.integers(8193, 40000)), n=st.integers(1, 30),
          zero=st.booleans())
    def kmalloc_some(self, size: int, n: int, zero: bool) -> None:
        for _ in range(n):
            x = kmalloc(self.kmem, size, G.GFP_KERNEL | (GFP_ZERO if zero else 0))
            if x:
                assert x not in self.live
                self.live.append(x)

    @rule(data=st.data())
    def kfree_some(self, data: st.DataObject) -> None:
        if self.live:
            k = data.draw(st.integers(1, len(self.live)))
            for _ in range(k):
                x = self.live.pop(data.draw(st.integers(0, len(self.live) - 1)))
                kfree(self.kmem, x)
                self.freed.append(x)

    @rule(n=st.integers(1, 40))
    def cache_alloc(self, n: int) -> None:
        assert self.cache is not None
        for _ in range(n):
            x = kmem_cache_alloc(self.kmem, self.cache, G.GFP_KERNEL)
            if x:
                self.cache_objs.append(x)

    @rule(data=st.data())
    def cache_free(self, data: st.DataObject) -> None:
        assert self.cache is not None
        if self.cache_objs:
            x = self.cache_objs.pop(data.draw(st.integers(0, len(self.cache_objs) - 1)))
            kmem_cache_free(self.kmem, self.cache, x)

    @rule(data=st.data())
    def bad_free_is_refused(self, data: st.DataObject) -> None:
        stale = [x for x in self.freed if x not in self.live and x not in self.cache_objs]
        if not stale:
            return
        x = data.draw(st.sampled_from(stale))
        holder = [a for a, order in self.kmem.large.items() if a <= x < a + (4096 << order)]
        if holder:
            # The stale pointer now lies inside a live kmalloc_large block: 5.10's kfree
            # frees that block from its head page (virt_to_head_page), a use after free it
            # cannot see, and so does the model.
            kfree(self.kmem, x)
            assert holder[0] not in self.kmem.large
            self.live.remove(holder[0])
            self.freed.append(holder[0])
            return
        before = slab_state(self.kmem)
        with pytest.raises(KernelBug):
            kfree(self.kmem, x)
        assert slab_state(self.kmem) == before


TestSlabMachine = SlabMachine.TestCase


def test_kmem_cache_alloc_and_free_chains_are_slab_alloc_and_slab_free(kmem: kmem_state) -> None:
    s = kmem_cache_create(kmem, "chain", 256)
    assert s is not None
    with Tracer() as t:
        x = kmem_cache_alloc(kmem, s, G.GFP_KERNEL)
        kmem_cache_free(kmem, s, x)
    alloc, free = t.roots
    assert alloc.path_to("alloc_pages") == [
        "kmem_cache_alloc", "slab_alloc", "slab_alloc_node", "__slab_alloc", "___slab_alloc",
        "new_slab_objects", "new_slab", "allocate_slab", "alloc_slab_page", "alloc_pages"]
    assert free.path_to("do_slab_free") == ["kmem_cache_free", "slab_free", "do_slab_free"]


def test_kmalloc_slab_uses_size_index_not_kmalloc_index(kmem: kmem_state) -> None:
    # 5.10's kmalloc_slab: size_index[] up to 192 bytes, fls(size - 1) above; kmalloc_index
    # serves only sizes known at compile time. Same caches, another call relation.
    from refmodel.mm.slub import kmalloc_slab

    for size in range(1, 8193):
        s = kmalloc_slab(kmem, size, G.GFP_KERNEL)
        assert s is kmem.kmalloc_caches[kmalloc_index(size)], size
    assert kmalloc_slab(kmem, 0, 0) is None and kmalloc_slab(kmem, 8193, 0) is None
    with Tracer() as t:
        x = kmalloc(kmem, 100, G.GFP_KERNEL)
    ks = t.roots[0].find("kmalloc_slab")
    assert ks is not None and [c.name for c in ks.children] == ["kmalloc_type"]
    assert "kmalloc_index" not in t.roots[0].names()
    with Tracer() as t:
        assert kmalloc(kmem, 0, G.GFP_KERNEL) == 16  # via __kmalloc and kmalloc_slab
    assert t.roots[0].path_to("kmalloc_slab") == ["kmalloc", "__kmalloc", "kmalloc_slab"]
    kfree(kmem, x)


def test_slab_free_runs_the_freelist_hook_first(kmem: kmem_state) -> None:
    x = kmalloc(kmem, 64, G.GFP_KERNEL)
    with Tracer() as t:
        kfree(kmem, x)
    sf = t.roots[0].find("slab_free")
    assert sf is not None
    assert [c.name for c in sf.children] == ["slab_free_freelist_hook", "do_slab_free"]
    assert [c.name for c in sf.children[0].children] == ["get_freepointer", "set_freepointer"]


def test_kmem_cache_destroy_removes_every_empty_partial_before_discarding(
        kmem: kmem_state) -> None:
    # 5.10's free_partial takes every empty slab off the node's partial list first (onto a
    # local list, last first), then discards them.
    s = kmem_cache_create(kmem, "gone", 1024)
    assert s is not None
    objs = [kmem_cache_alloc(kmem, s, G.GFP_KERNEL) for _ in range(8 * 12)]
    for x in objs:
        kmem_cache_free(kmem, s, x)
    with Tracer() as t:
        kmem_cache_destroy(kmem, s)
    calls = [c for c in t.roots[0].children if c.name in ("remove_partial", "discard_slab")]
    names = [c.name for c in calls]
    k = names.count("remove_partial")
    assert k >= 1 and names == ["remove_partial"] * k + ["discard_slab"] * k
    assert s not in kmem.slab_caches
    assert check_slab(kmem) == [] and check_buddy(kmem.pgdat) == []


def test_kfree_finds_the_page_with_virt_to_head_page(kmem: kmem_state) -> None:
    x = kmalloc(kmem, 64, G.GFP_KERNEL)
    with Tracer() as t:
        kfree(kmem, x)
    assert t.roots[0].path_to("virt_to_page") == ["kfree", "virt_to_head_page", "virt_to_page"]
    y = kmalloc(kmem, 5 * 4096, G.GFP_KERNEL)  # kmalloc_large: an order-3 compound page
    with Tracer() as t:
        kfree(kmem, y + 3 * 4096)  # a tail page's address: its compound head is freed
    assert t.roots[0].children[0].name == "virt_to_head_page"
    assert y not in kmem.large and check_buddy(kmem.pgdat) == []
    with pytest.raises(KernelBug, match="virt_addr_valid"):
        kfree(kmem, 0xDEAD000000000100)  # not a direct-map address at all


def test_get_partial_falls_back_to_get_any_partial(kmem: kmem_state) -> None:
    # CONFIG_NUMA: with no partial slab on the local node 5.10 asks get_any_partial, which
    # works out gfp_zone first; one node has no other partial lists to offer.
    s = kmem_cache_create(kmem, "fresh", 128)
    assert s is not None
    with Tracer() as t:
        kmem_cache_alloc(kmem, s, G.GFP_KERNEL)
    gp = t.roots[0].find("get_partial")
    assert gp is not None
    assert [c.name for c in gp.children] == ["get_partial_node", "get_any_partial"]
    assert [c.name for c in gp.children[1].children] == ["gfp_zone"]


@pytest.mark.parametrize("flags, prefix, zone", [
    (G.GFP_KERNEL, "kmalloc-", None),
    (G.GFP_KERNEL | G.__GFP_RECLAIMABLE, "kmalloc-rcl-", None),
    (G.GFP_KERNEL | G.__GFP_DMA, "dma-kmalloc-", 0),
])
def test_kmalloc_type_picks_the_cache_set(kmem: kmem_state, flags: int, prefix: str,
                                          zone: int | None) -> None:
    # include/linux/slab.h:kmalloc_type: __GFP_DMA → dma-kmalloc-* (SLAB_CACHE_DMA, pages
    # from ZONE_DMA), __GFP_RECLAIMABLE → kmalloc-rcl-* (SLAB_RECLAIM_ACCOUNT).
    from refmodel.mm.slub import kmalloc_slab

    s = kmalloc_slab(kmem, 100, flags)
    assert s is not None and s.name == prefix + "128"
    x = kmalloc(kmem, 100, flags)
    assert x and kmem.live[x] is s
    page = virt_to_page(kmem.pgdat, x)
    if zone is not None:
        assert page.zone_idx == zone
    else:
        assert page.zone_idx != 0
    kfree(kmem, x)
    assert check_slab(kmem) == [] and check_buddy(kmem.pgdat) == []


def test_power_of_two_kmalloc_caches_are_aligned_to_their_size(kmem: kmem_state) -> None:
    assert kmem.kmalloc_caches[7].align == 128 and kmem.kmalloc_caches[1].align == 8
    assert len(kmem.kmalloc_rcl_caches) == len(kmem.kmalloc_dma_caches) == 13
