"""LRU lists, reclaim and swap (mm/swap.c, mm/vmscan.c, mm/swap_state.c, mm/swapfile.c):
5.10-exact results on small machines, and the seed's call-relation errata."""

from __future__ import annotations

import pytest

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.mm_types import MM_ANONPAGES, MM_SWAPENTS
from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE
from refmodel.mm.mmzone import (
    LRU_ACTIVE_ANON,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
)
from refmodel.mm.swap import lru_list_of, mark_page_accessed
from refmodel.mm.swapfile import SWAP_HAS_CACHE
from refmodel.mm.swapops import (
    is_swap_pte,
    pte_to_swp_entry,
    swp_entry,
    swp_entry_to_pte,
    swp_offset,
)
from refmodel.mm.types import PageFlags
from refmodel.mm.vmscan import (
    DEF_PRIORITY,
    scan_control,
    shrink_inactive_list,
    try_to_free_pages,
)
from refmodel.specs.reclaim import check_reclaim, nothing_swapped_when_idle
from refmodel.task import Task
from refmodel.trace import Tracer

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PG_lru = int(PageFlags.PG_lru)
PG_active = int(PageFlags.PG_active)
PG_referenced = int(PageFlags.PG_referenced)


def small(swap: int = 4 * MiB) -> Machine:
    return Machine(MachineConfig(memory=64 * MiB, swap=swap))


def pte_at(m: Machine, t: Task, addr: int) -> int:
    from refmodel.arch.x86.walk import walk

    assert t.mm is not None
    w = walk(m.pgdat, t.mm.pgd, addr)
    return w.steps[-1].value if w.steps else 0


def page_at(m: Machine, t: Task, addr: int):  # type: ignore[no-untyped-def]
    pte = pte_at(m, t, addr)
    return m.pgdat.mem_map[(pte & 0x000FFFFFFFFFF000) >> 12]


def touch(m: Machine, t: Task, n: int) -> int:
    assert t.mm is not None
    a = m.mmap(t.mm, 0, n * 4096, RW, ANON)
    assert a > 0
    for i in range(n):
        assert m.write(t, a + i * 4096, bytes([i % 250 + 1]) * 16) == 16
    return a


def reclaim_inactive_anon(m: Machine, n: int) -> int:
    sc = scan_control(nr_to_reclaim=32, gfp_mask=G.GFP_KERNEL, reclaim_idx=3,
                      priority=DEF_PRIORITY, may_writepage=1, may_unmap=1, may_swap=1)
    return shrink_inactive_list(m.pgdat, n, m.pgdat.node_lruvec, sc, LRU_INACTIVE_ANON)


def test_a_new_anonymous_page_joins_the_inactive_anon_list_head() -> None:
    m = small()
    t = m.spawn()
    a = touch(m, t, 2)
    p0, p1 = page_at(m, t, a), page_at(m, t, a + 4096)
    assert lru_list_of(m.pgdat, p0) == LRU_INACTIVE_ANON
    assert p0.flags & PG_lru and not p0.flags & PG_active
    lst = list(m.pgdat.node_lruvec.lists[LRU_INACTIVE_ANON])
    assert lst[0] == p1.pfn and lst[1] == p0.pfn  # list_add: the newest at the head
    assert not check_reclaim(m.pgdat, [t.mm] if t.mm else [])


def test_a_page_cache_page_joins_the_inactive_file_list() -> None:
    m = small()
    t = m.spawn()
    f = m.create_file("f", b"x" * 4096)
    assert t.mm is not None
    a = m.mmap(t.mm, 0, 4096, PROT_READ, MAP_SHARED, f)
    assert m.read(t, a, 1) == b"x"
    page = f.f_mapping.i_pages[0]
    assert lru_list_of(m.pgdat, page) == LRU_INACTIVE_FILE


def test_mark_page_accessed_referenced_then_active() -> None:
    m = small()
    t = m.spawn()
    a = touch(m, t, 1)
    p = page_at(m, t, a)
    mark_page_accessed(m.pgdat, p)
    assert p.flags & PG_referenced and lru_list_of(m.pgdat, p) == LRU_INACTIVE_ANON
    mark_page_accessed(m.pgdat, p)
    assert not p.flags & PG_referenced and p.flags & PG_active
    assert lru_list_of(m.pgdat, p) == LRU_ACTIVE_ANON


def test_recently_accessed_page_survives_a_reclaim_pass_the_others_go_to_swap() -> None:
    m = small()
    t = m.spawn()
    n = 16
    a = touch(m, t, n)
    assert reclaim_inactive_anon(m, n) == 0  # every pte young: kept, PG_referenced set
    assert m.read(t, a, 1) == b"\x01"  # page 0 used again
    reclaimed = reclaim_inactive_anon(m, n)
    assert reclaimed == n - 1
    p0 = page_at(m, t, a)
    assert lru_list_of(m.pgdat, p0) == LRU_ACTIVE_ANON  # referenced twice: activated
    assert t.mm is not None
    assert t.mm.rss_stat[MM_ANONPAGES] == 1 and t.mm.rss_stat[MM_SWAPENTS] == n - 1
    for i in range(1, n):
        assert is_swap_pte(pte_at(m, t, a + i * 4096))
    assert not check_reclaim(m.pgdat, [t.mm])
    for i in range(n):  # every byte comes back from swap
        assert m.read(t, a + i * 4096, 16) == bytes([i % 250 + 1]) * 16
    assert not check_reclaim(m.pgdat, [t.mm])


def test_first_swapped_pages_get_slots_1_2_3_in_reclaim_order() -> None:
    m = small()
    t = m.spawn()
    a = touch(m, t, 4)
    reclaim_inactive_anon(m, 4)  # clears the young bits
    assert reclaim_inactive_anon(m, 4) == 4
    # the tail of the inactive list (the oldest page, page 0) goes first
    ptes = [pte_at(m, t, a + i * 4096) for i in range(4)]
    assert [swp_offset(pte_to_swp_entry(p)) for p in ptes] == [1, 2, 3, 4]
    assert swp_entry_to_pte(swp_entry(0, 1)) == 0x07FFFFFFFFFFFC00
    # the written pte was soft-dirty: the swap pte keeps it in _PAGE_SWP_SOFT_DIRTY (bit 1)
    assert ptes[0] == 0x07FFFFFFFFFFFC02
    si = m.pgdat.swap_info[0]
    assert si.swap_map[1:5] == [1, 1, 1, 1]
    # The slots cache's first refill got only slots 1-2: finding the first free cluster
    # used up 255 of scan_swap_map_slots' LATENCY_LIMIT (256) steps, and the batch stops
    # when the counter runs out. The second refill got a full 64 (3-66); the unused ones
    # are reserved (SWAP_HAS_CACHE).
    assert si.swap_map[5:67] == [SWAP_HAS_CACHE] * 62 and si.swap_map[67] == 0
    slots = m.pgdat.swp_slots
    assert slots is not None and (slots.cur, slots.nr) == (2, 62)


def test_swap_in_reads_the_aligned_cluster_into_the_swap_cache() -> None:
    m = small()
    t = m.spawn()
    a = touch(m, t, 12)
    reclaim_inactive_anon(m, 12)
    assert reclaim_inactive_anon(m, 12) == 12
    si = m.pgdat.swap_info[0]
    assert not si.cache
    assert m.read(t, a + 3 * 4096, 1) == b"\x04"  # slot 4: window 8 (hits start at 4)
    assert sorted(si.cache) == [1, 2, 3, 4, 5, 6, 7]  # slots 1-7 (0 is the header)
    assert page_at(m, t, a + 3 * 4096).pfn == si.cache[4].pfn
    assert not check_reclaim(m.pgdat, [t.mm] if t.mm else [])


def test_fork_of_swapped_memory_shares_the_slot_and_exit_frees_it() -> None:
    m = small()
    t = m.spawn()
    a = touch(m, t, 8)
    reclaim_inactive_anon(m, 8)
    assert reclaim_inactive_anon(m, 8) == 8
    c = m.fork(t)
    assert isinstance(c, Task) and c.mm is not None and t.mm is not None
    si = m.pgdat.swap_info[0]
    assert si.swap_map[1] == 2 and c.mm.rss_stat[MM_SWAPENTS] == 8
    assert m.read(c, a, 16) == b"\x01" * 16
    assert m.write(c, a, b"child") == 5  # a private copy for the child
    assert m.read(t, a, 16) == b"\x01" * 16
    assert not check_reclaim(m.pgdat, [t.mm, c.mm])
    m.exit(c)
    m.exit(t)
    assert not nothing_swapped_when_idle(m.pgdat)
    assert not check_reclaim(m.pgdat, [])


def test_direct_reclaim_under_pressure_swaps_and_everything_reads_back() -> None:
    m = Machine(MachineConfig(memory=48 * MiB, swap=32 * MiB))
    t = m.spawn()
    n = 9000  # more than RAM
    a = touch(m, t, n)
    assert t.mm is not None and t.mm.rss_stat[MM_SWAPENTS] > 0
    assert not check_reclaim(m.pgdat, [t.mm])
    for i in range(0, n, 97):
        assert m.read(t, a + i * 4096, 16) == bytes([i % 250 + 1]) * 16


def test_try_to_free_pages_chain_and_errata_36_37() -> None:
    """Errata 36/37: the seed has try_to_free_pages calling shrink_zones and shrink_zones
    calling shrink_inactive_list; 5.10 goes through do_try_to_free_pages, and shrink_node →
    shrink_node_memcgs → shrink_lruvec → shrink_list in between."""
    m = small()
    t = m.spawn()
    touch(m, t, 200)
    with Tracer() as tr:
        try_to_free_pages(m.pgdat, 0, G.GFP_KERNEL)
    root = tr.roots[0]
    assert root.path_to("shrink_zones") == ["try_to_free_pages", "do_try_to_free_pages",
                                            "shrink_zones"]
    assert root.path_to("shrink_inactive_list") == [
        "try_to_free_pages", "do_try_to_free_pages", "shrink_zones", "shrink_node",
        "shrink_node_memcgs", "shrink_lruvec", "shrink_list", "shrink_inactive_list"]


def test_swap_out_chain_errata_39() -> None:
    """Erratum 39: swap-out is not one function of mm/vmscan.c: shrink_page_list calls
    add_to_swap (mm/swap_state.c) → get_swap_page (mm/swap_slots.c) → get_swap_pages
    (mm/swapfile.c), try_to_unmap (mm/rmap.c) and pageout → swap_writepage (mm/page_io.c)."""
    from refmodel.trace import lookup

    m = small()
    t = m.spawn()
    touch(m, t, 8)
    reclaim_inactive_anon(m, 8)
    with Tracer() as tr:
        reclaim_inactive_anon(m, 8)
    root = tr.roots[0]
    assert root.path_to("get_swap_pages") == [
        "shrink_inactive_list", "shrink_page_list", "add_to_swap", "get_swap_page",
        "refill_swap_slots_cache", "get_swap_pages"]
    assert root.path_to("swap_writepage") == ["shrink_inactive_list", "shrink_page_list",
                                              "pageout", "swap_writepage"]
    assert root.path_to("try_to_unmap") is not None
    files = {n: kf.file for n in ("add_to_swap", "get_swap_page", "get_swap_pages",
                                  "swap_writepage", "try_to_unmap")
             if (kf := lookup(n)) is not None}
    assert files == {"add_to_swap": "mm/swap_state.c", "get_swap_page": "mm/swap_slots.c",
                     "get_swap_pages": "mm/swapfile.c", "swap_writepage": "mm/page_io.c",
                     "try_to_unmap": "mm/rmap.c"}


def test_kswapd_runs_after_the_operation_that_woke_it() -> None:
    m = Machine(MachineConfig(memory=48 * MiB, swap=32 * MiB))
    t = m.spawn()
    touch(m, t, 6000)
    assert not m.pgdat.kswapd_woken  # it ran at the end of the write and slept again
    from refmodel.mm.vmscan import pgdat_balanced

    assert pgdat_balanced(m.pgdat, 0, 3) or m.pgdat.kswapd_failures >= 16


def test_swap_size_is_validated() -> None:
    with pytest.raises(ValueError):
        MachineConfig(swap=4096)
    with pytest.raises(ValueError):
        MachineConfig(swap=5000)


def test_swap_count_invariants_catch_each_planted_corruption() -> None:
    """specs.reclaim.swap_counts_consistent (whose all-is-well answer is decided by whole
    lists) still names each kind of corruption."""
    from refmodel.specs.reclaim import swap_counts_consistent

    def fresh() -> tuple[Machine, list]:  # type: ignore[type-arg]
        m = small()
        t = m.spawn()
        touch(m, t, 8)
        reclaim_inactive_anon(m, 8)
        assert reclaim_inactive_anon(m, 8) == 8
        assert t.mm is not None
        mms = [t.mm]
        assert swap_counts_consistent(m.pgdat, mms) == []
        return m, mms

    def names(m: Machine, mms: list) -> set[str]:  # type: ignore[type-arg]
        return {v.invariant for v in swap_counts_consistent(m.pgdat, mms)}

    m, mms = fresh()
    m.pgdat.swap_info[0].swap_map[3] += 1  # a count no pte accounts for
    assert names(m, mms) == {"swap_map_count"}
    m, mms = fresh()
    m.pgdat.swap_info[0].swap_map[0] = 0  # the header slot
    assert "swap_header" in names(m, mms)
    m, mms = fresh()
    m.pgdat.nr_swap_pages += 1
    assert names(m, mms) == {"nr_swap_pages"}
    m, mms = fresh()
    si = m.pgdat.swap_info[0]
    slots = m.pgdat.swp_slots
    assert slots is not None
    held = swp_offset(slots.slots[slots.cur])  # a reserved slot also put in the swap cache
    si.cache[held] = next(p for p in m.pgdat.mem_map.values()
                          if p._refcount and not p.page_type)
    assert "swap_slot_state" in names(m, mms)


def test_page_vma_mapped_walk_walks_the_levels_itself() -> None:
    """5.10's page_vma_mapped_walk (mm/page_vma_mapped.c) reads pgd_offset, p4d_offset,
    pud_offset and pmd_offset itself; mm_find_pmd (mm/rmap.c, for KSM and THP) is not on
    the reclaim path."""
    m = small()
    t = m.spawn()
    touch(m, t, 8)
    with Tracer() as tr:
        reclaim_inactive_anon(m, 8)
    root = tr.roots[0]
    walk = root.find("page_vma_mapped_walk")
    assert walk is not None
    assert [c.name for c in walk.children][:1] == ["pgd_offset"]
    assert {"p4d_offset", "pud_offset", "pmd_offset", "pte_offset_map"} <= {
        c.name for c in walk.children}
    assert "mm_find_pmd" not in root.names()


def test_put_page_is_on_the_reclaim_and_swap_in_traces() -> None:
    """5.10's try_to_unmap_one ends with put_page (the mapping's reference), and
    swap_cluster_readahead puts each readahead page with put_page: both show put_page, not
    a bare put_page_testzero, and put_page is the one include/linux/mm.h function."""
    from refmodel.mm import memory, swap
    from refmodel.trace import CallNode, lookup

    def walk(n: CallNode) -> list[CallNode]:
        return [n, *(d for c in n.children for d in walk(c))]

    assert memory.put_page is swap.put_page
    kf = lookup("put_page")
    assert kf is not None and kf.file == "include/linux/mm.h"
    m = small()
    t = m.spawn()
    a = touch(m, t, 8)
    reclaim_inactive_anon(m, 8)
    with Tracer() as tr:
        reclaim_inactive_anon(m, 8)
    unmaps = [n for r in tr.roots for n in walk(r) if n.name == "try_to_unmap_one"]
    assert unmaps and all(n.children[-1].name == "put_page" for n in unmaps)
    assert all(n.children[-1].children[0].name == "put_page_testzero" for n in unmaps)
    with Tracer() as tr:
        m.read(t, a, 1)
    ra = [n for r in tr.roots for n in walk(r) if n.name == "swap_cluster_readahead"]
    assert len(ra) == 1
    puts = [c for c in ra[0].children if c.name == "put_page"]
    reads = [c for c in ra[0].children if c.name == "__read_swap_cache_async"]
    assert reads and len(puts) == len(reads)
