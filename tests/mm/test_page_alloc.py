"""5.10-exact behaviour of mm/page_alloc.c as modelled in refmodel.mm.page_alloc."""

from __future__ import annotations

import re

import pytest

from refmodel.bugs import BadPage, KernelBug, KernelWarning
from refmodel.config import BuddyConfig, MachineConfig, MiB
from refmodel.machine import Machine, StandaloneBuddy
from refmodel.mm import gfp as G
from refmodel.mm.mmzone import (
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    WMARK_MIN,
    ZoneType,
    get_pageblock_migratetype,
    pfn_to_page,
)
from refmodel.mm.page_alloc import (
    __alloc_pages_nodemask as alloc_pages_nodemask,
)
from refmodel.mm.page_alloc import (
    __free_pages as free_pages_of_page,
)
from refmodel.mm.page_alloc import (
    alloc_pages,
    free_pages,
    get_zeroed_page,
    page_address,
    virt_to_page,
    zone_watermark_ok,
)
from refmodel.mm.types import ST_ALLOCATED, ST_TAIL, PageFlags
from refmodel.specs.buddy import buddy_state, check_buddy, free_blocks
from refmodel.trace import Tracer, lookup


@pytest.fixture
def m256() -> Machine:
    return Machine(MachineConfig(memory=256 * MiB))


def dma32(m: Machine):  # type: ignore[no-untyped-def]
    return m.pgdat.node_zones[ZoneType.ZONE_DMA32]


def test_boot_zone_layout_and_pcp_sizes(m256: Machine) -> None:
    dma, d32 = m256.pgdat.node_zones[0], m256.pgdat.node_zones[1]
    assert (dma.zone_start_pfn, dma.spanned_pages) == (0, 4096)
    assert dma.present_pages == 4096 - 96  # the 640 KiB-1 MiB hole is not RAM
    assert dma.managed_pages == 4096 - 96 - 16 - 1  # reserve_low and the EBDA page
    assert (d32.zone_start_pfn, d32.spanned_pages) == (4096, 61440)
    assert d32.managed_pages == 61440 - 4096  # the 16 MiB kernel image at 16 MiB
    assert (d32.pageset.batch, d32.pageset.high) == (15, 90)  # zone_batchsize
    assert (dma.pageset.batch, dma.pageset.high) == (1, 0)
    assert m256.pgdat.min_free_kbytes == 1981  # int_sqrt(16 * lowmem KiB)
    assert check_buddy(m256.pgdat) == []


def test_boot_frees_in_ascending_order_to_the_list_tail(m256: Machine) -> None:
    order10 = list(dma32(m256).free_area[10].free_list[MIGRATE_MOVABLE])
    assert order10 == sorted(order10)
    assert order10[0] == 0x2000  # the first block above the kernel image
    # The DMA zone's first blocks are the odd-sized pieces above reserve_low.
    dma_blocks = sorted((p, o) for p, o, z, _ in free_blocks(m256.pgdat) if z == 0)
    assert dma_blocks[0] == (0x10, 4)


def test_first_unmovable_allocations_steal_a_whole_block_and_batch_ascending(
    m256: Machine,
) -> None:
    pfns = []
    for _ in range(15):
        page = m256.alloc_pages(G.GFP_KERNEL, 0)
        assert page is not None
        pfns.append(page.pfn)
    assert pfns == list(range(0x2000, 0x200F))  # one rmqueue_bulk of batch 15
    zone = dma32(m256)
    assert get_pageblock_migratetype(zone, 0x2000) == MIGRATE_UNMOVABLE
    assert get_pageblock_migratetype(zone, 0x2200) == MIGRATE_UNMOVABLE
    assert zone.pageset.count == 0
    assert m256.alloc_pages(G.GFP_KERNEL, 0).pfn == 0x200F  # type: ignore[union-attr]
    assert zone.pageset.count == 14  # the next batch


def test_pcp_reuses_the_last_freed_page_first(m256: Machine) -> None:
    a = m256.alloc_pages(G.GFP_KERNEL, 0)
    b = m256.alloc_pages(G.GFP_KERNEL, 0)
    assert a and b
    m256.free_pages(a.pfn, 0)
    m256.free_pages(b.pfn, 0)
    assert m256.alloc_pages(G.GFP_KERNEL, 0).pfn == b.pfn  # type: ignore[union-attr]
    assert m256.alloc_pages(G.GFP_KERNEL, 0).pfn == a.pfn  # type: ignore[union-attr]


def test_pcp_high_drains_a_batch_from_the_tail(m256: Machine) -> None:
    zone = dma32(m256)
    pages = [m256.alloc_pages(G.GFP_KERNEL, 0) for _ in range(120)]
    for p in pages:
        assert p is not None
        m256.free_pages(p.pfn, 0)
        assert zone.pageset.count < zone.pageset.high
    assert check_buddy(m256.pgdat) == []


def test_split_then_free_merges_back_to_the_original_block() -> None:
    b = StandaloneBuddy(BuddyConfig(1024))
    before = buddy_state(b.pgdat)
    assert b.alloc(0) == 0
    # expand() left one free block at every order 0..9: the upper halves 1, 2, 4, ... 512
    blocks = sorted((o, p) for p, o, _, _ in free_blocks(b.pgdat))
    assert blocks == [(o, 1 << o) for o in range(10)]
    b.free(0, 0)
    assert [(p, o) for p, o, _, _ in free_blocks(b.pgdat)] == [(0, 10)]
    assert buddy_state(b.pgdat) == before


def test_free_places_block_at_tail_when_next_order_buddy_is_free() -> None:
    b = StandaloneBuddy(BuddyConfig(64))
    got = [b.alloc(0) for _ in range(4)]
    assert got == [0, 1, 2, 3]
    b.free(2, 0)
    b.free(3, 0)  # merges with 2 into order 1; its order-1 buddy (0) is not free: head
    b.free(1, 0)  # order-0 buddy 0 is allocated; next-order buddy {2,3} is free: tail
    zone = b.pgdat.node_zones[ZoneType.ZONE_NORMAL]
    assert list(zone.free_area[1].free_list[MIGRATE_MOVABLE]) == [2]
    b.free(0, 0)
    assert [(p, o) for p, o, _, _ in free_blocks(b.pgdat)] == [(0, 6)]


def test_watermark_refuses_kernel_allocations_but_atomic_goes_below_min() -> None:
    m = Machine(MachineConfig(memory=64 * MiB, pcp=False))
    # no OOM killer: with no task to kill 5.10 would panic; here GFP_KERNEL just fails
    m.pgdat.hooks.out_of_memory = None
    n = 0
    while m.alloc_pages(G.GFP_KERNEL, 0) is not None:
        n += 1
    assert n > 1000
    zone = dma32(m)
    # GFP_KERNEL stops once NR_FREE_PAGES is at the min watermark (slow path ALLOC_WMARK_MIN)
    assert zone.nr_free_pages <= zone._watermark[WMARK_MIN] + 1
    assert not zone_watermark_ok(zone, 0, zone._watermark[WMARK_MIN], ZoneType.ZONE_NORMAL, 0)
    # GFP_ATOMIC: ALLOC_HIGH halves min and ALLOC_HARDER takes a further quarter off
    atomic = m.alloc_pages(G.GFP_ATOMIC, 0)
    assert atomic is not None
    assert m.pgdat.alloc_failures >= 1
    assert check_buddy(m.pgdat) == []


def test_dma_allocation_comes_from_zone_dma(m256: Machine) -> None:
    page = m256.alloc_pages(G.GFP_DMA, 0)
    assert page is not None and page.zone_idx == ZoneType.ZONE_DMA


def test_gfp_zero_zeroes_and_plain_allocation_keeps_old_bytes(m256: Machine) -> None:
    pgdat = m256.pgdat
    page = m256.alloc_pages(G.GFP_KERNEL, 1)
    assert page is not None
    pgdat.page_data[page.pfn] = bytearray(b"\x55" * 4096)
    m256.free_pages(page.pfn, 1)
    again = m256.alloc_pages(G.GFP_KERNEL, 1)
    assert again is page and pgdat.page_data[page.pfn][0] == 0x55  # no init_on_alloc
    m256.free_pages(page.pfn, 1)
    zeroed = m256.alloc_pages(G.GFP_KERNEL | G.__GFP_ZERO, 1)
    assert zeroed is page and page.pfn not in pgdat.page_data


def test_get_zeroed_page_and_free_pages_by_address(m256: Machine) -> None:
    pgdat = m256.pgdat
    addr = get_zeroed_page(pgdat, G.GFP_KERNEL)
    assert addr == 0xFFFF888000000000 + (virt_to_page(pgdat, addr).pfn << 12)
    page = virt_to_page(pgdat, addr)
    assert page_address(pgdat, page) == addr and page._refcount == 1
    free_pages(pgdat, addr, 0)
    assert page._refcount == 0
    free_pages(pgdat, 0, 0)  # a NULL address is ignored, as in 5.10


def test_refcount_above_one_frees_only_the_upper_halves(m256: Machine) -> None:
    pgdat = m256.pgdat
    page = m256.alloc_pages(G.GFP_KERNEL, 2)
    assert page is not None
    page._refcount += 1  # a second holder (get_page)
    free_pages_of_page(pgdat, page, 2)
    assert page._refcount == 1 and pgdat.allocated[page.pfn] == 0
    assert page.pfn + 1 not in pgdat.allocated
    assert check_buddy(pgdat) == []
    free_pages_of_page(pgdat, page, 0)
    assert check_buddy(pgdat) == []


def test_order_at_or_above_max_order_warns_unless_nowarn(m256: Machine) -> None:
    before = buddy_state(m256.pgdat)
    with pytest.raises(KernelWarning, match="WARN_ON_ONCE"):
        m256.alloc_pages(G.GFP_KERNEL, 11)
    assert m256.alloc_pages(G.GFP_KERNEL | G.__GFP_NOWARN, 11) is None
    assert buddy_state(m256.pgdat) == before


@pytest.mark.parametrize(
    ("setup", "check"),
    [
        ("double", "page_ref_count(page) == 0"),
        ("wrong_order", "order mismatch"),
        ("misaligned", "pfn & ((1 << order) - 1)"),
        ("reserved", "bad_page"),
        ("inside_free_block", "page_ref_count(page) == 0"),
        ("too_big_order", "order >= MAX_ORDER"),
        ("overlapping", "bad_page"),
    ],
)
def test_bad_free_is_rejected_and_changes_nothing(m256: Machine, setup: str, check: str) -> None:
    pgdat = m256.pgdat
    a = m256.alloc_pages(G.GFP_KERNEL, 2)
    b = m256.alloc_pages(G.GFP_KERNEL, 0)
    assert a and b
    pfn, order = {
        "double": (b.pfn, 0),
        "wrong_order": (a.pfn, 1),
        "misaligned": (a.pfn + 2, 2),
        "reserved": (0x5, 0),
        "inside_free_block": (0x2400 + 3, 0),
        "too_big_order": (0, 11),
        "overlapping": (a.pfn, 3),
    }[setup]
    if setup == "double":
        m256.free_pages(b.pfn, 0)
    before = buddy_state(pgdat)
    with pytest.raises(KernelBug, match=check.replace("(", r"\(").replace(")", r"\)")):
        m256.free_pages(pfn, order)
    assert buddy_state(pgdat) == before
    assert check_buddy(pgdat) == []


@pytest.mark.parametrize("field, value, reason", [
    ("_refcount", 1, "nonzero _refcount"),
    ("_mapcount", 0, "nonzero mapcount"),
    ("flags", int(PageFlags.PG_locked), "PAGE_FLAGS_CHECK_AT_FREE"),
    ("state", ST_ALLOCATED, "overlapping free"),
])
def test_free_of_a_block_with_a_dirty_tail_is_a_bad_page(
        m256: Machine, field: str, value: object, reason: str) -> None:
    # free_pages_prepare checks every tail page (free_pages_check), not only the head.
    pgdat = m256.pgdat
    a = m256.alloc_pages(G.GFP_KERNEL, 3)
    assert a
    tail = pfn_to_page(pgdat, a.pfn + 5)
    setattr(tail, field, value)
    before = buddy_state(pgdat)
    with pytest.raises(BadPage, match=f"tail pfn {a.pfn + 5:#x} .*{reason}"):
        free_pages_of_page(pgdat, a, 3)
    assert buddy_state(pgdat) == before
    setattr(tail, field, {"_refcount": 0, "_mapcount": -1, "flags": 0, "state": ST_TAIL}[field])
    free_pages_of_page(pgdat, a, 3)  # clean again: the free goes through
    assert check_buddy(pgdat) == []


def test_standalone_rejects_pfn_outside_zone() -> None:
    b = StandaloneBuddy(BuddyConfig(100))
    before = buddy_state(b.pgdat)
    with pytest.raises(KernelBug, match="bad_range"):
        b.free(100, 0)
    with pytest.raises(KernelBug, match="bad_range"):
        b.free(96, 3)  # the block would run past the zone's end
    assert buddy_state(b.pgdat) == before


def test_standalone_fails_only_when_no_block_that_big_exists() -> None:
    b = StandaloneBuddy(BuddyConfig(24))  # blocks 0/order 3 ... free: [0,16) [16,24)
    assert b.alloc(4) == 0
    assert b.alloc(4) is None  # 8 pages free, but no order-4 block
    assert b.alloc(3) == 16
    assert b.alloc(0) is None


@pytest.mark.parametrize("max_order", [12, 17, 20])
def test_standalone_max_order_above_11_boots_splits_and_merges(max_order: int) -> None:
    # BuddyConfig allows max_order up to 20 (the conformance kit up to 16): the free lists
    # must have one list per order, boot must release blocks that big (as 5.10 built with
    # that MAX_ORDER would), and the watermark check must see them. Above 11 this used to
    # raise IndexError on boot.
    top = max_order - 1
    b = StandaloneBuddy(BuddyConfig(3 << top, max_order=max_order))
    zone = b.pgdat.node_zones[2]
    assert len(zone.free_area) == max_order
    assert [list(zone.free_area[top].free_list[MIGRATE_MOVABLE])] == [[0, 1 << top, 2 << top]]
    before = buddy_state(b.pgdat)
    assert b.alloc(top) == 0
    assert b.alloc(0) == 1 << top  # split the next top-order block all the way down
    assert zone.free_area[top - 1].nr_free == 1
    b.free(1 << top, 0)
    b.free(0, top)
    assert check_buddy(b.pgdat) == []
    assert buddy_state(b.pgdat) == before


@pytest.mark.parametrize(("make", "fragment"), [
    # accepted before, then hours of boot and hundreds of GB (a config-extremes audit)
    (lambda: MachineConfig(memory=8 << 40), "beyond 4 TiB"),
    (lambda: BuddyConfig(1 << 32, max_order=1), "more than 2**20 free blocks"),
    (lambda: BuddyConfig((1 << 30) + 1, max_order=10), "more than 2**20 free blocks"),
    # accepted before, then negative watermarks
    (lambda: MachineConfig(min_free_kbytes=-5), "min_free_kbytes must not be negative"),
])
def test_configs_the_model_cannot_serve_are_refused_up_front(make, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=re.escape(fragment)):
        make()


def test_the_largest_configs_still_accepted_boot() -> None:
    assert StandaloneBuddy(BuddyConfig(1 << 20, max_order=1)).pgdat.node_zones[2].free_area[
        0].nr_free == 1 << 20
    assert MachineConfig(memory=4 << 40).nr_pages == 1 << 30  # accepted (not booted here)


def test_bad_page_is_a_kernelbug_subclass() -> None:
    assert issubclass(BadPage, KernelBug)


# Call chains: where the seed's 函数跳转关系 are wrong (docs/errata.md rows 19-27).


def _trace(fn) -> Tracer:  # type: ignore[no-untyped-def]
    with Tracer() as t:
        fn()
    return t


def test_alloc_chain_is_alloc_pages_current_nodemask_freelist_rmqueue(m256: Machine) -> None:
    t = _trace(lambda: m256.alloc_pages(G.GFP_KERNEL, 0))
    root = t.roots[0]
    assert root.path_to("rmqueue") == [
        "alloc_pages", "alloc_pages_current", "__alloc_pages_nodemask",
        "get_page_from_freelist", "rmqueue"]
    gpff = root.find("get_page_from_freelist")
    assert gpff is not None
    assert [c.name for c in gpff.children] == ["zone_watermark_fast", "rmqueue", "prep_new_page"]
    rmq = root.find("rmqueue")
    assert rmq is not None and "prep_new_page" not in rmq.names()


def test_rmqueue_never_calls_free_one_page(m256: Machine) -> None:
    for order in (0, 3):
        t = _trace(lambda o=order: m256.alloc_pages(G.GFP_KERNEL, o))
        rmq = t.roots[0].find("rmqueue")
        assert rmq is not None and "__free_one_page" not in rmq.names()


def test_free_chain_goes_through_free_the_page(m256: Machine) -> None:
    p0 = m256.alloc_pages(G.GFP_KERNEL, 0)
    p3 = m256.alloc_pages(G.GFP_KERNEL, 3)
    assert p0 and p3
    a0, a3 = page_address(m256.pgdat, p0), page_address(m256.pgdat, p3)
    t0 = _trace(lambda: free_pages(m256.pgdat, a0, 0))
    assert t0.roots[0].path_to("free_unref_page_commit") == [
        "free_pages", "__free_pages", "free_the_page", "free_unref_page",
        "free_unref_page_commit"]
    assert "put_page_testzero" in t0.roots[0].names()
    assert "__free_pages_ok" not in t0.roots[0].names()
    t3 = _trace(lambda: free_pages(m256.pgdat, a3, 3))
    assert t3.roots[0].path_to("__free_one_page") == [
        "free_pages", "__free_pages", "free_the_page", "__free_pages_ok", "free_one_page",
        "__free_one_page"]


def test_each_merge_step_calls_find_buddy_pfn_and_page_is_buddy() -> None:
    # 5.10's __free_one_page loop: __find_buddy_pfn, then page_is_buddy, per order, until a
    # buddy is not free; then buddy_merge_likely. The seed's version never merges (erratum).
    b = StandaloneBuddy(BuddyConfig(1024))
    assert b.alloc(0) == 0  # expand left one free block at each order 0..9
    b.alloc(0)  # takes pfn 1: the free of pfn 0 below stops merging at order 0
    t = _trace(lambda: b.free(0, 0))
    fop = t.roots[0].find("__free_one_page")
    assert fop is not None
    assert [c.name for c in fop.children] == ["__find_buddy_pfn", "page_is_buddy",
                                              "buddy_merge_likely"]
    assert fop.children[1].result == "False"
    t = _trace(lambda: b.free(1, 0))  # now merges 0+1, then with 2, 4, ... 512: order 10
    fop = t.roots[0].find("__free_one_page")
    assert fop is not None
    steps = [c for c in fop.children if c.name == "page_is_buddy"]
    assert [c.result for c in steps] == ["True"] * 10
    assert [c.name for c in fop.children] == (["__find_buddy_pfn", "page_is_buddy"] * 10
                                              + ["buddy_merge_likely"])
    assert [(p, o) for p, o, _, _ in free_blocks(b.pgdat)] == [(0, 10)]


def test_gfp_migratetype_has_no_highmem_type() -> None:
    assert G.gfp_migratetype(G.GFP_HIGHUSER) == MIGRATE_UNMOVABLE
    assert G.gfp_migratetype(G.GFP_HIGHUSER_MOVABLE) == MIGRATE_MOVABLE
    assert G.gfp_migratetype(G.GFP_KERNEL | G.__GFP_RECLAIMABLE) == 2
    assert G.gfp_zone(G.GFP_HIGHUSER_MOVABLE) == ZoneType.ZONE_MOVABLE
    assert G.gfp_zone(G.GFP_KERNEL) == ZoneType.ZONE_NORMAL
    with pytest.raises(KernelBug, match="GFP_ZONE_BAD"):
        G.gfp_zone(G.__GFP_DMA | G.__GFP_DMA32)


def test_seed_name_alloc_pages_is_an_alias_of_nodemask(m256: Machine) -> None:
    kf = lookup("__alloc_pages")
    assert kf is not None and kf.name == "__alloc_pages_nodemask"
    assert kf.file == "mm/page_alloc.c"
    assert alloc_pages_nodemask(m256.pgdat, G.GFP_KERNEL, 0) is not None
    assert alloc_pages(m256.pgdat, G.GFP_KERNEL, 0) is not None


def test_overlapping_reservations_are_merged_as_memblock_merges_them() -> None:
    m = Machine(MachineConfig(memory=64 * MiB, extra_reserved=((0x8, 0x20), (0x1800, 0x2400))))
    assert m.pgdat.reserved_ranges[:2] == ((0x0, 0x20), (0x9F, 0x100))
    assert check_buddy(m.pgdat) == []
    b = StandaloneBuddy(BuddyConfig(64, reserved=((0, 8), (4, 12))))
    assert b.pgdat.reserved_ranges == ((0, 12),)
    assert check_buddy(b.pgdat) == []


def test_tail_checks_refuse_a_mapping_and_clear_harmless_flags(m256: Machine) -> None:
    # free_pages_check of a tail: a non-NULL mapping is a bad page; flags outside
    # PAGE_FLAGS_CHECK_AT_FREE (PG_dirty, PG_referenced) are not, and free_pages_prepare
    # clears them (flags &= ~PAGE_FLAGS_CHECK_AT_PREP), so the free block is clean.
    pgdat = m256.pgdat
    a = m256.alloc_pages(G.GFP_KERNEL, 2)
    assert a
    tail = pfn_to_page(pgdat, a.pfn + 3)
    tail.mapping = object()
    before = buddy_state(pgdat)
    with pytest.raises(BadPage, match=f"tail pfn {a.pfn + 3:#x} .*non-NULL mapping"):
        free_pages_of_page(pgdat, a, 2)
    assert buddy_state(pgdat) == before
    tail.mapping = None
    tail.flags = int(PageFlags.PG_dirty | PageFlags.PG_referenced)
    free_pages_of_page(pgdat, a, 2)
    assert tail.flags == 0
    assert check_buddy(pgdat) == []


def test_a_refused_tail_check_clears_nothing(m256: Machine) -> None:
    pgdat = m256.pgdat
    a = m256.alloc_pages(G.GFP_KERNEL, 2)
    assert a
    harmless = pfn_to_page(pgdat, a.pfn + 1)
    harmless.flags = int(PageFlags.PG_dirty)
    pfn_to_page(pgdat, a.pfn + 3)._refcount = 1
    with pytest.raises(BadPage, match="nonzero _refcount"):
        free_pages_of_page(pgdat, a, 2)
    assert harmless.flags == int(PageFlags.PG_dirty)  # the rejected free changed nothing


def test_every_allocation_asks_gfp_zone_and_gfp_migratetype(m256: Machine) -> None:
    # 5.10's prepare_alloc_pages calls both on every allocation; the model's cache of the
    # rest of the alloc_context must not hide them from the trace.
    for _ in range(2):
        t = _trace(lambda: m256.alloc_pages(G.GFP_KERNEL, 0))
        pap = t.roots[0].find("prepare_alloc_pages")
        assert pap is not None
        assert [c.name for c in pap.children] == ["gfp_zone", "gfp_migratetype"]


def test_gfp_zero_clears_every_page_through_kernel_init_free_pages(m256: Machine) -> None:
    from refmodel.mm import highmem, page_alloc

    p = m256.alloc_pages(G.GFP_KERNEL, 2)
    assert p
    for i in range(4):
        m256.pgdat.page_data[p.pfn + i] = bytearray(b"x" * 4096)
    free_pages_of_page(m256.pgdat, p, 2)
    t = _trace(lambda: m256.alloc_pages(G.GFP_KERNEL | G.__GFP_ZERO, 2))
    q = m256.pgdat.mem_map.get(p.pfn)
    assert q is not None and q.state is ST_ALLOCATED  # the same block came back
    prep = t.roots[0].find("prep_new_page")
    assert prep is not None and [c.name for c in prep.children] == ["kernel_init_free_pages"]
    assert [c.name for c in prep.children[0].children] == ["clear_highpage"] * 4
    assert all(p.pfn + i not in m256.pgdat.page_data for i in range(4))
    assert highmem.clear_highpage is page_alloc.clear_highpage


def _exhausted() -> Machine:
    """A 64 MiB machine, no per-cpu lists, no OOM killer, with GFP_KERNEL refused."""
    m = Machine(MachineConfig(memory=64 * MiB, pcp=False))
    m.pgdat.hooks.out_of_memory = None
    while m.alloc_pages(G.GFP_KERNEL, 0) is not None:
        pass
    return m


def test_should_reclaim_retry_asks_zone_reclaimable_pages() -> None:
    from refmodel.mm import page_alloc, vmscan

    assert vmscan.zone_reclaimable_pages is page_alloc.zone_reclaimable_pages
    kf = lookup("zone_reclaimable_pages")
    assert kf is not None and kf.file == "mm/vmscan.c"
    m = Machine(MachineConfig(memory=64 * MiB, pcp=False))
    m.pgdat.hooks.out_of_memory = None
    with Tracer() as t:
        while m.alloc_pages(G.GFP_KERNEL, 0) is not None:
            pass
    retry = [r.find("should_reclaim_retry") for r in t.roots]
    hit = [n for n in retry if n is not None]
    assert hit and "zone_reclaimable_pages" in hit[0].names()


def test_slowpath_asks_the_compaction_gate_for_unmovable_high_orders() -> None:
    # 5.10 evaluates can_direct_reclaim && (costly || (order > 0 && !MOVABLE)) &&
    # !gfp_pfmemalloc_allowed() before its first direct compaction; compaction is out of
    # scope, the gate's calls are not.
    m = _exhausted()
    with Tracer() as t:
        assert m.alloc_pages(G.GFP_KERNEL, 1) is None
    slow = t.roots[0].find("__alloc_pages_slowpath")
    assert slow is not None
    names = [c.name for c in slow.children]
    assert "gfp_pfmemalloc_allowed" in names
    gate = slow.children[names.index("gfp_pfmemalloc_allowed")]
    assert [c.name for c in gate.children] == ["__gfp_pfmemalloc_flags"]
    assert names.index("gfp_pfmemalloc_allowed") < names.index("__alloc_pages_direct_reclaim")
    with Tracer() as t:
        assert m.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 1) is None  # movable, not costly
    slow = t.roots[0].find("__alloc_pages_slowpath")
    assert slow is not None and "gfp_pfmemalloc_allowed" not in [c.name for c in slow.children]


def test_nofail_takes_the_reserves_before_it_would_loop_forever() -> None:
    # 5.10 helps __GFP_NOFAIL with the reserves: __alloc_pages_may_oom's
    # __alloc_pages_cpuset_fallback with ALLOC_NO_WATERMARKS, and nopage's with ALLOC_HARDER;
    # only when they fail too would it loop forever, which the model reports. Without
    # direct reclaim it fails like any request.
    m = _exhausted()
    with Tracer() as t:
        p = m.alloc_pages(G.GFP_KERNEL | G.__GFP_NOFAIL, 0)
    assert p is not None
    slow = t.roots[0].find("__alloc_pages_slowpath")
    assert slow is not None and slow.path_to("__alloc_pages_cpuset_fallback") == [
        "__alloc_pages_slowpath", "__alloc_pages_may_oom", "__alloc_pages_cpuset_fallback"]
    with pytest.raises(KernelBug, match="__GFP_NOFAIL"):
        while True:
            m.alloc_pages(G.GFP_KERNEL | G.__GFP_NOFAIL, 0)
    assert m.alloc_pages(G.__GFP_KSWAPD_RECLAIM | G.__GFP_NOFAIL, 0) is None  # cannot sleep
    assert check_buddy(m.pgdat) == []


def test_nofail_keeps_5_10_early_exits_before_the_oom_killer() -> None:
    # __alloc_pages_may_oom's exits (a lowmem zone limit, RETRY_MAYFAIL, THISNODE, a costly
    # order) apply to __GFP_NOFAIL too: no OOM kill for a GFP_DMA request; nopage's
    # ALLOC_HARDER fallback still helps it.
    m = _exhausted()
    calls: list[int] = []

    def oom(gfp_mask: int, order: int) -> bool:
        calls.append(order)
        return False

    m.pgdat.hooks.out_of_memory = oom
    with Tracer() as t:
        try:
            m.alloc_pages(G.GFP_KERNEL | G.__GFP_DMA | G.__GFP_NOFAIL, 0)
        except KernelBug:
            pass  # the DMA zone's reserves are gone too: 5.10 would loop here
    assert calls == []
    slow = t.roots[0].find("__alloc_pages_slowpath")
    assert slow is not None and "__alloc_pages_cpuset_fallback" in slow.names()
    assert m.alloc_pages(G.GFP_KERNEL | G.__GFP_NOFAIL, 0) is not None  # the reserves
    assert calls == [0]  # a request the OOM killer can help does reach it


def test_a_free_refused_for_its_head_leaves_the_tails_alone(m256: Machine) -> None:
    pgdat = m256.pgdat
    a = m256.alloc_pages(G.GFP_KERNEL, 1)
    assert a
    tail = pfn_to_page(pgdat, a.pfn + 1)
    tail.flags = int(PageFlags.PG_referenced)
    a._mapcount = 0
    with pytest.raises(BadPage, match="nonzero mapcount"):
        free_pages_of_page(pgdat, a, 1)
    assert tail.flags == int(PageFlags.PG_referenced)


def test_zeroing_a_block_does_not_grow_the_sparse_mem_map(m256: Machine) -> None:
    before = len(m256.pgdat.mem_map)
    p = m256.alloc_pages(G.GFP_KERNEL | G.__GFP_ZERO, 8)
    assert p is not None
    free_pages_of_page(m256.pgdat, p, 8)
    assert len(m256.pgdat.mem_map) <= before + 8  # split heads at most, not 255 tails


def test_a_refused_page_list_changes_nothing(m256: Machine) -> None:
    # free_unref_page_list checks every page before it prepares any: a bad page in the
    # middle leaves the pages before it allocated, as they were.
    from refmodel.mm.page_alloc import free_unref_page_list

    pgdat = m256.pgdat
    pages = [m256.alloc_pages(G.GFP_KERNEL, 0) for _ in range(3)]
    assert all(pages)
    live = [p for p in pages if p is not None]
    for p in live:
        p._refcount = 0  # their last references are gone, as release_pages leaves them
    live[1]._mapcount = 0
    before = buddy_state(pgdat)
    with pytest.raises(BadPage, match="nonzero mapcount"):
        free_unref_page_list(pgdat, live)
    assert buddy_state(pgdat) == before and live[0].pfn in pgdat.allocated
