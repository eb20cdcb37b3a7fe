"""LRU lists, reclaim and swap (mm/swap.c, mm/vmscan.c, mm/swap_state.c, mm/swapfile.c):
5.10-exact results on small machines, and the seed's call-relation errata."""

from __future__ import annotations

import pytest

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm import mmap as _mmap_mod
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
from refmodel.specs.reclaim import (
    check_reclaim,
    nothing_swapped_when_idle,
    orphaned_swap_cache,
)
from refmodel.task import Task
from refmodel.trace import CallNode, Tracer

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


def test_a_write_after_swap_in_orphans_the_swap_cache_copy_until_reclaim() -> None:
    # 5.10's do_wp_page (since 5.9) copies an anonymous page whenever page_count != 1, and
    # the swap cache holds a reference: so a read fault that swaps a page in, then a write,
    # copies it, and the swap-cache copy stays behind with no user (SWAP_HAS_CACHE only),
    # even after exit, until reclaim frees it. `refmodel check --seed 96` met this and the
    # teardown check called it a leak.
    m = small()
    t = m.spawn()
    a = touch(m, t, 1)
    reclaim_inactive_anon(m, 1)
    assert reclaim_inactive_anon(m, 1) == 1
    si = m.pgdat.swap_info[0]
    assert m.read(t, a, 1) == b"\x01"  # swapped in; the page stays in the swap cache
    cached = si.cache[1]
    assert si.swap_map[1] == SWAP_HAS_CACHE and page_at(m, t, a) is cached
    assert m.write(t, a, b"new") == 3  # page_count 2: copied, not reused
    assert page_at(m, t, a) is not cached
    assert orphaned_swap_cache(m.pgdat) == [cached]
    m.exit(t)
    assert not nothing_swapped_when_idle(m.pgdat)  # an orphan is not a leak ...
    assert cached.pfn in m.pgdat.allocated
    assert try_to_free_pages(m.pgdat, 0, G.GFP_KERNEL) >= 1  # ... reclaim takes it
    assert not si.cache and cached.pfn not in m.pgdat.allocated
    assert not nothing_swapped_when_idle(m.pgdat)  # the slot went back (to the slots cache)


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

    root = _second_reclaim_trace()[0]
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


def assert_mm_h_function_lives_in_swap(name: str) -> None:
    """An include/linux/mm.h function modelled in refmodel.mm.swap (so that every module
    can call it) and re-exported, as the same object, by refmodel.mm.memory."""
    from refmodel.mm import memory, swap
    from refmodel.trace import lookup

    assert getattr(memory, name) is getattr(swap, name)
    kf = lookup(name)
    assert kf is not None and kf.file == "include/linux/mm.h"


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
    # pte_offset_map is map_pte's (5.10's map_pte maps the pte, check_pte checks it)
    assert {"p4d_offset", "pud_offset", "pmd_offset", "map_pte", "check_pte"} <= {
        c.name for c in walk.children}
    map_pte = walk.find("map_pte")
    assert map_pte is not None and map_pte.children[0].name == "pte_offset_map"
    assert "mm_find_pmd" not in root.names()


def test_put_page_is_on_the_reclaim_and_swap_in_traces() -> None:
    """5.10's try_to_unmap_one ends with put_page (the mapping's reference), and
    swap_cluster_readahead puts each readahead page with put_page: both show put_page, not
    a bare put_page_testzero, and put_page is the one include/linux/mm.h function."""

    def walk(n: CallNode) -> list[CallNode]:
        return [n, *(d for c in n.children for d in walk(c))]

    assert_mm_h_function_lives_in_swap("put_page")
    m = small()
    t = m.spawn()
    a = touch(m, t, 8)
    reclaim_inactive_anon(m, 8)
    with Tracer() as tr:
        reclaim_inactive_anon(m, 8)
    unmaps = [n for r in tr.roots for n in walk(r) if n.name == "try_to_unmap_one"]
    # put_page is the last call of the loop body; the loop then asks page_vma_mapped_walk
    # once more, which finds no further pte for an order-0 page
    assert unmaps and all([c.name for c in n.children[-2:]]
                          == ["put_page", "page_vma_mapped_walk"] for n in unmaps)
    assert all(n.children[-2].children[0].name == "put_page_testzero" for n in unmaps)
    with Tracer() as tr:
        m.read(t, a, 1)
    ra = [n for r in tr.roots for n in walk(r) if n.name == "swap_cluster_readahead"]
    assert len(ra) == 1
    puts = [c for c in ra[0].children if c.name == "put_page"]
    reads = [c for c in ra[0].children if c.name == "__read_swap_cache_async"]
    assert reads and len(puts) == len(reads)


# --------------------------------------------------------------------------------------------
# Call relations as 5.10 has them on the reclaim, swap-in and swap-free paths


def _all(tr: Tracer, name: str) -> list[CallNode]:
    out: list[CallNode] = []

    def walk(n: CallNode) -> None:
        if n.name == name:
            out.append(n)
        for c in n.children:
            walk(c)

    for r in tr.roots:
        walk(r)
    return out


def _second_pass_traced(n: int) -> tuple[Machine, Task, Tracer]:
    """n pages touched, one reclaim pass (they were referenced), the second one traced."""
    m = small()
    t = m.spawn()
    touch(m, t, n)
    reclaim_inactive_anon(m, n)
    with Tracer() as tr:
        reclaim_inactive_anon(m, n)
    return m, t, tr


def _kids(n: CallNode) -> list[str]:
    """The names of n's children, leaving out the swp_type/swp_offset accessors (what
    swap_address_space(entry) and the like evaluate)."""
    return [c.name for c in n.children if c.name not in ("swp_type", "swp_offset")]


def test_isolate_lru_pages_updates_the_sizes_through_update_lru_sizes() -> None:
    """5.10's isolate_lru_pages counts what each zone gave and ends with update_lru_sizes,
    which calls update_lru_size once per zone."""
    m = small()
    t = m.spawn()
    touch(m, t, 8)
    before = sum(m.pgdat.node_lruvec.lru_zone_size[LRU_INACTIVE_ANON])
    with Tracer() as tr:
        reclaim_inactive_anon(m, 8)
    iso = _all(tr, "isolate_lru_pages")[0]
    assert _kids(iso)[-1] == "update_lru_sizes" and "update_lru_size" not in _kids(iso)
    assert _kids(iso.children[-1]) == ["update_lru_size"]  # one zone (ZONE_NORMAL)
    assert iso.children[-1].children[0].args == {}  # no shown args; the count is -8
    assert sum(m.pgdat.node_lruvec.lru_zone_size[LRU_INACTIVE_ANON]) <= before


def test_move_pages_to_lru_uses_update_lru_size_and_del_page_from_lru_list() -> None:
    """5.10's move_pages_to_lru: update_lru_size plus a list move (not
    add_page_to_lru_list); a page whose last reference that was leaves through
    del_page_from_lru_list and is freed by free_unref_page_list."""
    from refmodel.mm.page_alloc import alloc_pages, free_unref_page_list
    from refmodel.mm.vmscan import move_pages_to_lru

    m = small()
    page = alloc_pages(m.pgdat, G.GFP_KERNEL, 0)  # one reference: the "isolation" one
    assert page is not None
    lv = m.pgdat.node_lruvec
    sizes = [list(z) for z in lv.lru_zone_size]
    with Tracer() as tr:
        moved, to_free = move_pages_to_lru(m.pgdat, lv, [page])
        free_unref_page_list(m.pgdat, to_free)
    assert (moved, to_free) == (0, [page])
    mv = tr.roots[0]
    assert "add_page_to_lru_list" not in mv.names()
    assert [n for n in _kids(mv) if n in ("update_lru_size", "put_page_testzero",
                                         "del_page_from_lru_list")] == [
        "update_lru_size", "put_page_testzero", "del_page_from_lru_list"]
    assert [list(z) for z in lv.lru_zone_size] == sizes and lru_list_of(m.pgdat, page) is None
    assert _kids(tr.roots[1]) == ["free_unref_page_prepare", "free_unref_page_commit"]


def test_freed_pages_are_prepared_then_committed_by_free_unref_page_list() -> None:
    """5.10's free_unref_page_list runs free_unref_page_prepare over the whole list, then
    free_unref_page_commit over it; shrink_page_list frees its reclaimed pages so."""
    _, _, tr = _second_pass_traced(8)
    spl = _all(tr, "shrink_page_list")[0]
    ful = spl.children[-1]
    assert ful.name == "free_unref_page_list" and ful.file == "mm/page_alloc.c"
    assert _kids(ful) == ["free_unref_page_prepare"] * 8 + ["free_unref_page_commit"] * 8
    assert _kids(ful.children[0]) == ["free_pcp_prepare", "set_pcppage_migratetype"]
    assert _kids(ful.children[0].children[0]) == ["free_pages_prepare"]


def test_last_put_page_goes_through_put_single_page_to_free_unref_page() -> None:
    """5.10: __put_page → __put_single_page → __page_cache_release, free_unref_page (not
    free_the_page)."""
    m = small()
    from refmodel.mm.page_alloc import alloc_pages
    from refmodel.mm.swap import put_page

    page = alloc_pages(m.pgdat, G.GFP_KERNEL, 0)
    assert page is not None
    with Tracer() as tr:
        put_page(m.pgdat, page)
    assert tr.roots[0].path_to("free_unref_page") == [
        "put_page", "__put_page", "__put_single_page", "free_unref_page"]
    single = tr.roots[0].find("__put_single_page")
    assert single is not None
    assert _kids(single) == ["__page_cache_release", "free_unref_page"]
    assert "free_the_page" not in tr.roots[0].names()


def test_end_page_writeback_holds_a_reference_while_it_clears_writeback() -> None:
    """5.10.13's end_page_writeback wraps the PG_writeback clear in get_page/put_page."""
    _, _, tr = _second_pass_traced(4)
    epw = _all(tr, "end_page_writeback")
    assert len(epw) == 4
    assert all(_kids(n) == ["get_page", "put_page"] for n in epw)
    assert all(_kids(n.children[1]) == ["put_page_testzero"] for n in epw)  # not the last


def test_activated_swap_cache_page_asks_mem_cgroup_swap_full() -> None:
    """5.10's shrink_page_list, activating a swap-cache page, asks mem_cgroup_swap_full
    (without memcg: vm_swap_full) whether to let go of its slot."""
    m = small()
    t = m.spawn()
    a = touch(m, t, 8)
    reclaim_inactive_anon(m, 8)
    assert reclaim_inactive_anon(m, 8) == 8
    assert m.read(t, a, 1) == b"\x01"  # swapped in: in the swap cache, mapped, young
    page = page_at(m, t, a)
    page.flags |= PG_referenced  # and referenced: PAGEREF_ACTIVATE
    if page.flags & PG_active:
        pytest.skip("the swapped-in page is not on the inactive list")
    with Tracer() as tr:
        reclaim_inactive_anon(m, 16)
    spl = _all(tr, "shrink_page_list")[0]
    full = [c for c in spl.children if c.name == "mem_cgroup_swap_full"]
    assert full and all(_kids(c) == ["vm_swap_full"] for c in full)
    assert "vm_swap_full" not in _kids(spl)


def test_kswapd_checks_twice_before_sleeping_and_a_woken_kswapd_is_not_rewoken() -> None:
    """5.10: kswapd_try_to_sleep calls prepare_kswapd_sleep before its short nap and again
    after it (nothing wakes it early in the model); wakeup_kswapd records the request but
    returns before pgdat_balanced while kswapd is awake (!waitqueue_active)."""
    from refmodel.mm.vmscan import kswapd, wakeup_kswapd

    m = small()
    pgdat = m.pgdat
    zone = next(z for z in pgdat.node_zones if z.managed_pages)
    pgdat.kswapd_woken = True  # woken already, not yet run
    with Tracer() as tr:
        wakeup_kswapd(pgdat, zone, G.GFP_KERNEL, 1, 2)
    assert tr.roots[0].children == [] and pgdat.kswapd_order == 1
    with Tracer() as tr:
        runs = kswapd(pgdat)
    assert runs == 1 and not pgdat.kswapd_woken
    root = tr.roots[0]
    assert _kids(root) == ["balance_pgdat", "kswapd_try_to_sleep"]
    assert _kids(root.children[1]) == ["prepare_kswapd_sleep", "prepare_kswapd_sleep"]
    with Tracer() as tr:
        wakeup_kswapd(pgdat, zone, G.GFP_KERNEL, 0, 2)  # asleep again: balanced, no wake
    assert _kids(tr.roots[0])[:1] == ["pgdat_balanced"] and not pgdat.kswapd_woken


def test_swap_in_finds_the_cache_with_find_get_page_and_drains_after_readahead() -> None:
    """5.10: lookup_swap_cache and __read_swap_cache_async look the swap cache up with
    find_get_page; __read_swap_cache_async asks __swp_swapcount (→ swap_swapcount →
    swap_count), not __swap_count; swap_cluster_readahead calls lru_add_drain after its
    loop, before read_swap_cache_async."""
    m = small()
    t = m.spawn()
    a = touch(m, t, 12)
    reclaim_inactive_anon(m, 12)
    assert reclaim_inactive_anon(m, 12) == 12
    with Tracer() as tr:
        assert m.read(t, a + 3 * 4096, 1) == b"\x04"
    lsc = _all(tr, "lookup_swap_cache")[0]
    fgp = lsc.find("find_get_page")
    assert _kids(lsc) == ["find_get_page"] and fgp is not None
    assert _kids(fgp) == ["pagecache_get_page"]
    rsca = _all(tr, "__read_swap_cache_async")
    assert all(_kids(n)[0] == "find_get_page" for n in rsca)
    assert "__swap_count" not in tr.roots[0].names()
    counted = [n for n in rsca if "__swp_swapcount" in _kids(n)]
    assert counted
    assert counted[0].path_to("swap_count") == [
        "__read_swap_cache_async", "__swp_swapcount", "swap_swapcount", "swap_count"]
    ra = _all(tr, "swap_cluster_readahead")[0]
    assert _kids(ra)[-2:] == ["lru_add_drain", "read_swap_cache_async"]
    # the cached page comes back with a reference, as before: mapped once, cache once
    page = page_at(m, t, a + 3 * 4096)
    assert page._refcount == 2


def test_zapping_swap_entries_frees_them_as_5_10_does() -> None:
    """5.10's free_swap_and_cache asks non_swap_entry first, and asks
    swap_page_trans_huge_swapped (→ swap_count) before __try_to_reclaim_swap, which
    builds the entry (swp_entry) and looks the page up with find_get_page; exit's
    free_pages_and_swap_cache starts with lru_add_drain."""
    m = small()
    t = m.spawn()
    a = touch(m, t, 12)
    reclaim_inactive_anon(m, 12)
    assert reclaim_inactive_anon(m, 12) == 12
    assert m.read(t, a + 3 * 4096, 1) == b"\x04"  # slots 1-7 now in the swap cache
    with Tracer() as tr:
        m.exit(t)
    fsc = _all(tr, "free_swap_and_cache")
    assert fsc and all(_kids(n)[0] == "non_swap_entry" for n in fsc)
    reclaimed = [n for n in fsc if "__try_to_reclaim_swap" in _kids(n)]
    assert reclaimed
    for n in reclaimed:
        k = _kids(n)
        assert k.index("swap_page_trans_huge_swapped") < k.index("__try_to_reclaim_swap")
        trs = next(c for c in n.children if c.name == "__try_to_reclaim_swap")
        assert _kids(trs)[:2] == ["swp_entry", "find_get_page"]
    assert _kids(_all(tr, "swap_page_trans_huge_swapped")[0]) == ["swap_count"]
    fpsc = _all(tr, "free_pages_and_swap_cache")
    assert fpsc and all(_kids(n)[0] == "lru_add_drain" for n in fpsc)
    assert not nothing_swapped_when_idle(m.pgdat)
    assert not check_reclaim(m.pgdat, [])


def test_swap_counts_are_read_with_swap_count_and_soft_dirty_is_asked() -> None:
    """5.10: page_swapcount and __swap_duplicate read the map with swap_count (a
    mm/swapfile.c inline); pte_to_swp_entry asks pte_swp_soft_dirty."""
    from refmodel.mm.swapfile import page_swapcount, swap_duplicate
    from refmodel.trace import lookup

    kf = lookup("swap_count")
    assert kf is not None and kf.file == "mm/swapfile.c"
    m = small()
    t = m.spawn()
    touch(m, t, 4)
    reclaim_inactive_anon(m, 4)
    assert reclaim_inactive_anon(m, 4) == 4
    entry = swp_entry(0, 1)
    with Tracer() as tr:
        assert swap_duplicate(m.pgdat, entry) == 0
        pte_to_swp_entry(swp_entry_to_pte(entry))
    assert tr.roots[0].path_to("swap_count") == [
        "swap_duplicate", "__swap_duplicate", "swap_count"]
    assert tr.roots[-1].name == "pte_to_swp_entry"
    assert _kids(tr.roots[-1])[0] == "pte_swp_soft_dirty"
    m.pgdat.swap_info[0].swap_map[1] -= 1  # give the reference back
    cached = next(iter(m.pgdat.swap_info[0].cache.values()), None)
    if cached is not None:
        with Tracer() as tr:
            page_swapcount(m.pgdat, cached)
        assert _kids(tr.roots[0]) == ["swap_count"]


def test_isolate_lru_page_takes_its_reference_with_get_page() -> None:
    """5.10's isolate_lru_page calls get_page; get_page (include/linux/mm.h) is modelled
    in refmodel.mm.swap and re-exported by refmodel.mm.memory."""
    from refmodel.mm.rmap import isolate_lru_page, putback_lru_page

    assert_mm_h_function_lives_in_swap("get_page")
    m = small()
    t = m.spawn()
    a = touch(m, t, 1)
    page = page_at(m, t, a)
    with Tracer() as tr:
        assert isolate_lru_page(m.pgdat, page) == 0
    assert _kids(tr.roots[0]) == ["page_lru", "get_page", "del_page_from_lru_list"]
    putback_lru_page(m.pgdat, page)
    assert not check_reclaim(m.pgdat, [t.mm] if t.mm else [])


def test_rmap_walkers_call_the_walk_again_after_a_hit() -> None:
    """5.10's page_referenced_one and try_to_unmap_one loop on page_vma_mapped_walk: after
    the hit it is called once more and finds nothing (an order-0 page has one pte); its
    map_pte and check_pte ask is_swap_pte and pte_present."""
    m = small()
    t = m.spawn()
    touch(m, t, 2)
    with Tracer() as tr:
        reclaim_inactive_anon(m, 2)
    for name in ("page_referenced_one", "try_to_unmap_one"):
        for n in _all(tr, name):
            walks = [c for c in n.children if c.name == "page_vma_mapped_walk"]
            assert len(walks) == 2 and walks[0].result != "None"
            assert walks[1].result == "None" and walks[1].children == []
    walk = _all(tr, "page_vma_mapped_walk")[0]
    mp = walk.find("map_pte")
    cp = walk.find("check_pte")
    assert mp is not None and cp is not None
    assert _kids(mp) == ["pte_offset_map", "is_swap_pte", "pte_present"]
    assert _kids(cp) == ["is_swap_pte", "pte_present", "pte_pfn"]


def test_wakeup_flusher_threads_is_filed_under_fs_writeback() -> None:
    from refmodel.trace import lookup

    kf = lookup("wakeup_flusher_threads")
    assert kf is not None and kf.file == "fs/fs-writeback.c"


def test_move_pages_to_lru_frees_in_5_10_list_order() -> None:
    # 5.10 list_add()s each page whose last reference went onto pages_to_free, so the
    # caller's free_unref_page_list frees them last-found first: the per-cpu list, and so
    # the next allocations, see that order.
    from refmodel.mm.rmap import isolate_lru_page
    from refmodel.mm.vmscan import move_pages_to_lru

    m = small()
    t = m.spawn()
    a = touch(m, t, 3)
    pages = [page_at(m, t, a + i * 4096) for i in range(3)]
    for p in pages:
        assert isolate_lru_page(m.pgdat, p) == 0
    assert t.mm is not None and m.munmap(t.mm, a, 3 * 4096) == 0  # only isolation refs left
    moved, to_free = move_pages_to_lru(m.pgdat, m.pgdat.node_lruvec, pages)
    assert moved == 0 and to_free == pages[::-1]


def test_try_to_unmap_one_uses_the_registered_pte_and_counter_helpers() -> None:
    # 5.10 (one CPU): ptep_clear_flush, pte_dirty, update_hiwater_rss, then for an anon
    # page dec_mm_counter(MM_ANONPAGES), inc_mm_counter(MM_SWAPENTS), set_pte_at of the swap
    # pte, then page_remove_rmap and put_page.
    unmaps = [n for r in _second_reclaim_trace() for n in _walk(r)
              if n.name == "try_to_unmap_one"]
    assert unmaps
    names = [c.name for c in unmaps[0].children]
    order = ["ptep_clear_flush", "pte_dirty", "update_hiwater_rss", "dec_mm_counter",
             "inc_mm_counter", "set_pte_at", "page_remove_rmap", "put_page"]
    assert [n for n in names if n in order] == order
    assert "ptep_get_and_clear" not in names  # it runs inside ptep_clear_flush


def _walk(n: CallNode) -> list[CallNode]:
    return [n, *(d for c in n.children for d in _walk(c))]


def _second_reclaim_trace() -> list[CallNode]:
    """The trace of a second shrink of 8 inactive anon pages (the first set them up)."""
    m = small()
    t = m.spawn()
    touch(m, t, 8)
    reclaim_inactive_anon(m, 8)
    with Tracer() as tr:
        reclaim_inactive_anon(m, 8)
    return tr.roots


def test_do_swap_page_re_takes_its_pte_with_pte_offset_map_lock() -> None:
    # 5.10: pte_unmap_same is a no-op on x86-64; before mapping the page do_swap_page
    # re-takes the pte (pte_offset_map_lock → pte_offset_map) and compares it.
    m = small()
    t = m.spawn()
    a = touch(m, t, 8)
    reclaim_inactive_anon(m, 8)
    assert reclaim_inactive_anon(m, 8) == 8
    with Tracer() as tr:
        assert m.read(t, a, 1) == b"\x01"
    dsp = [n for r in tr.roots for n in _walk(r) if n.name == "do_swap_page"]
    assert len(dsp) == 1
    names = [c.name for c in dsp[0].children]
    assert names.count("pte_offset_map_lock") == 1
    assert names.index("swapin_readahead") < names.index("pte_offset_map_lock")
    assert names.index("pte_offset_map_lock") < names.index("set_pte_at")


# --------------------------------------------------------------------------------------------
# Dropping a page cache (mm/truncate.c, mm/shmem.c): pagevec batches, freed in release_pages


def _nodes(node: CallNode, name: str) -> list[CallNode]:
    out = [node] if node.name == name else []
    for c in node.children:
        out += _nodes(c, name)
    return out


def _freed_pfns_per_release(roots: list[CallNode]) -> list[list[int]]:
    out = []
    for root in roots:
        for rel in _nodes(root, "release_pages"):
            out.append([int(n.args["pfn"], 0) for n in _nodes(rel, "free_unref_page_commit")])
    return out


def test_file_eviction_frees_pagevec_batches_in_release_pages_last_index_first() -> None:
    """5.10's truncate_inode_pages_range looks pages up 15 at a time (each with a
    reference), takes them out of the cache together (delete_from_page_cache_batch) and
    drops the last references in pagevec_release → release_pages, whose free list is
    built with list_add: each batch reaches free_unref_page_list last index first."""
    m = Machine(MachineConfig(memory=64 * MiB))
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("data", bytes(17 * 4096))
    a = m.mmap(t.mm, 0, 17 * 4096, PROT_READ, MAP_PRIVATE, f)
    for i in range(17):
        m.read(t, a + i * 4096, 1)
    pfns = [f.f_mapping.i_pages[i].pfn for i in range(17)]
    assert m.munmap(t.mm, a, 17 * 4096) == 0
    with Tracer() as tr:
        m.release_file(f)
    assert f.f_mapping.nrpages == 0
    assert _freed_pfns_per_release(tr.roots) == [pfns[14::-1], pfns[:14:-1]]
    truncs = [n for r in tr.roots for n in _nodes(r, "truncate_inode_pages_range")]
    assert len(truncs) == 1
    trunc = truncs[0]
    # two batches, a lookup that ends the first pass, and the second pass's empty lookup
    assert [c.name for c in trunc.children].count("pagevec_lookup_entries") == 4
    # the cache's reference goes in the batch delete; no page is freed there
    assert trunc.find("delete_from_page_cache_batch") is not None
    for d in _nodes(trunc, "delete_from_page_cache_batch"):
        assert d.find("free_unref_page") is None and d.find("free_unref_page_commit") is None


def test_shmem_eviction_frees_pagevec_batches_in_release_pages_last_index_first() -> None:
    """shmem_undo_range: find_get_entries 15 at a time, truncate_inode_page each, then
    pagevec_release: the last references go in release_pages, last index first."""
    m = Machine(MachineConfig(memory=64 * MiB))
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    assert all(m.write(t, a + i * 4096, b"s") == 1 for i in range(16))
    vma = _mmap_mod.find_vma(t.mm, a)
    assert vma is not None and vma.vm_file is not None
    mapping = vma.vm_file.f_mapping
    pfns = [mapping.i_pages[i].pfn for i in range(16)]
    with Tracer() as tr:
        assert m.munmap(t.mm, a, 16 * 4096) == 0
    undo = tr.roots[0].find("shmem_undo_range")
    assert undo is not None and mapping.nrpages == 0
    assert [c.name for c in undo.children] == [
        "find_get_entries", *["truncate_inode_page"] * 15, "pagevec_remove_exceptionals",
        "__pagevec_release", "find_get_entries", "truncate_inode_page",
        "pagevec_remove_exceptionals", "__pagevec_release", "find_get_entries",
        "find_get_entries"]
    assert _freed_pfns_per_release([undo]) == [pfns[14::-1], pfns[15:]]
    # only the first release drains the LRU pagevecs (percpu_pvec_drained)
    assert [len(_nodes(r, "lru_add_drain")) for r in _nodes(undo, "__pagevec_release")] == [1, 0]


def test_set_page_dirty_of_a_swap_cache_page_goes_through_swap_set_page_dirty() -> None:
    """page_mapping of a swap-cache page is the swap address_space, whose a_ops
    ->set_page_dirty is swap_set_page_dirty (mm/page_io.c) → __set_page_dirty_no_writeback;
    set_page_dirty clears PG_reclaim first for any page with a mapping."""
    from refmodel.mm.page_writeback import set_page_dirty
    from refmodel.mm.types import Page

    page = Page(0x1234, 0)
    page.mapping_flags = 1  # PAGE_MAPPING_ANON
    page.flags |= int(PageFlags.PG_swapbacked | PageFlags.PG_owner_priv_1 | PageFlags.PG_reclaim)
    with Tracer() as tr:
        assert set_page_dirty(page) == 1
    assert page.flags & PageFlags.PG_dirty and not page.flags & PageFlags.PG_reclaim
    assert tr.roots[0].path_to("__set_page_dirty_no_writeback") == [
        "set_page_dirty", "swap_set_page_dirty", "__set_page_dirty_no_writeback"]
    # an anonymous page outside the swap cache has no mapping: TestSetPageDirty only
    anon = Page(0x1235, 0)
    anon.mapping_flags = 1
    anon.flags |= int(PageFlags.PG_swapbacked | PageFlags.PG_reclaim)
    with Tracer() as tr:
        assert set_page_dirty(anon) == 1
    assert tr.roots[0].children == [] and anon.flags & PageFlags.PG_reclaim
