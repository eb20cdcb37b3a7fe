"""The incremental checker (refmodel.specs.incremental) against the full check.

It must agree with System.violations after every step of long walks (and need the full
check only rarely there, or it is not incremental), and it must catch every kind of
corruption planted behind the model's back: struct page fields, page-table entries, every
container it keeps a shadow of, and the per-mm counters.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from refmodel.mm.memory import ZERO_PFN
from refmodel.mm.mm_types import MM_ANONPAGES
from refmodel.mm.mman import MAP_SHARED, PROT_READ, PROT_WRITE
from refmodel.mm.swapops import pte_to_swp_entry, swp_offset
from refmodel.mm.types import Page, PageFlags, PageState
from refmodel.specs.system import PRESSURE, PRESSURE_NO_SWAP, System, random_steps

WALKS = [
    ("normal", System, 400, 0, 6),
    ("pressure", lambda: System(PRESSURE), 250, 3, 4),
    ("stress", lambda: System(PRESSURE), 120, 20, 2),
    ("no_swap", lambda: System(PRESSURE_NO_SWAP), 120, 20, 0),
]


@pytest.mark.parametrize("name,make,steps,stress,seed", WALKS, ids=[w[0] for w in WALKS])
def test_agrees_with_the_full_check_after_every_step(
        name: str, make: Callable[[], System], steps: int, stress: int, seed: int) -> None:
    s = make()
    rng = random.Random(seed)
    for _ in range(steps):
        random_steps(s, rng, 1, check=False, stress_weight=stress)
        assert s.checker is not None
        fast = s.checker.violations()
        full = s.violations()
        assert fast == full == [], (fast, full)
    assert s.checker is not None
    # Only the first check is a full one: every other step was checked by its changes.
    assert s.checker.full_checks == 1, s.checker.full_checks
    s.teardown()


def _state(swapped: bool) -> System:
    """A machine after a checked walk: the normal machine (files, fork-shared pages), or
    the pressure machine with anonymous memory swapped out."""
    if swapped:
        s = System(PRESSURE)
        random_steps(s, random.Random(4), 150, check=True, stress_weight=3)
    else:
        s = System()
        random_steps(s, random.Random(6), 120, check=True)
    assert s.checker is not None and s.checker.violations() == []
    return s


def _mapped_anon(s: System, shared: bool = False) -> int:
    assert s.checker is not None
    for pfn, users in sorted(s.checker.users.items()):
        page = s.m.pgdat.mem_map.get(pfn)
        if page is not None and page.mapping_flags & 1 and (len(users) >= 2) == shared:
            return pfn
    raise AssertionError("no such page in the walk's state")


def _pte_slot(s: System, pfn: int) -> tuple[dict[int, int], int]:
    """The table and index of one pte mapping pfn."""
    assert s.checker is not None
    (key, addr), _ = next(iter(s.checker.users[pfn].items()))
    for t, (k, d, base) in s.checker.reach.items():
        if k == key and d == 3 and base <= addr < base + (1 << 21):
            return s.m.pgdat.pgtables[t], (addr - base) >> 12
    raise AssertionError("no pte table")


def _swap_pte(s: System) -> tuple[dict[int, int], int]:
    for table in s.m.pgdat.pgtables.values():
        for idx, pte in table.items():
            if pte and not pte & 0x101 and pte & ~0x60 and idx < 512:
                return table, idx
    raise AssertionError("no swap pte")


def _lru_page(s: System) -> int:
    return next(iter(s.m.pgdat.node_lruvec.lists[0]))


def _free_block(s: System) -> tuple[dict[int, object], int]:
    for zone in s.m.pgdat.node_zones:
        for area in zone.free_area:
            for fl in area.free_list:
                if fl:
                    return fl, next(iter(fl))  # type: ignore[return-value]
    raise AssertionError("no free block")


def _bump(obj: object, name: str, by: int = 1) -> None:
    setattr(obj, name, getattr(obj, name) + by)


def _plant_refcount(s: System) -> None:
    _bump(s.m.pgdat.mem_map[_mapped_anon(s)], "_refcount")


def _plant_mapcount(s: System) -> None:
    _bump(s.m.pgdat.mem_map[_mapped_anon(s)], "_mapcount")


def _plant_shared_writable(s: System) -> None:
    table, idx = _pte_slot(s, _mapped_anon(s, shared=True))
    table[idx] |= 0x2  # _PAGE_RW


def _plant_pte_to_free_page(s: System) -> None:
    table, idx = _pte_slot(s, _mapped_anon(s))
    _, free = _free_block(s)
    table[idx] = (table[idx] & ~0x000FFFFFFFFFF000) | (free << 12)


def _plant_page_flag_lru(s: System) -> None:
    pfn = next(p for p in sorted(s.m.pgdat.pgtables) if p in s.m.pgdat.allocated)
    s.m.pgdat.mem_map[pfn].flags |= int(PageFlags.PG_lru)


def _plant_page_pfn(s: System) -> None:
    _bump(s.m.pgdat.mem_map[_mapped_anon(s)], "pfn")


def _plant_allocated_drop(s: System) -> None:
    del s.m.pgdat.allocated[_mapped_anon(s)]


def _plant_allocated_extra(s: System) -> None:
    _, free = _free_block(s)
    s.m.pgdat.allocated[free] = 0


def _plant_free_list_drop(s: System) -> None:
    fl, pfn = _free_block(s)
    del fl[pfn]


def _plant_free_block_index(s: System) -> None:
    _, pfn = _free_block(s)
    _bump(s.m.pgdat.mem_map[pfn], "index")


def _plant_pcp_allocated_page(s: System) -> None:
    zone = s.m.pgdat.node_zones[1]
    zone.pageset.lists[0].append(s.m.pgdat.mem_map[_mapped_anon(s)])
    zone.pageset.count += 1


def _plant_nr_free(s: System) -> None:
    _bump(s.m.pgdat.node_zones[1].free_area[0], "nr_free")


def _plant_lru_drop(s: System) -> None:
    del s.m.pgdat.node_lruvec.lists[0][_lru_page(s)]


def _plant_lru_move(s: System) -> None:
    lists = s.m.pgdat.node_lruvec.lists
    pfn = _lru_page(s)
    lists[1][pfn] = lists[0].pop(pfn)


def _plant_lru_size(s: System) -> None:
    s.m.pgdat.node_lruvec.lru_zone_size[0][1] += 1


def _plant_page_cache_drop(s: System) -> None:
    f = next(f for f in s.files if f.f_mapping.i_pages)
    f.f_mapping.i_pages.popitem()


def _plant_swap_map(s: System) -> None:
    table, idx = _swap_pte(s)
    off = swp_offset(pte_to_swp_entry(table[idx]))
    s.m.pgdat.swap_info[0].swap_map[off] += 1


def _plant_swap_pte_slot(s: System) -> None:
    table, idx = _swap_pte(s)
    table[idx] += 1 << 9  # the next slot (the offset sits above bit 9, inverted)


def _plant_swap_cache(s: System) -> None:
    table, idx = _swap_pte(s)
    off = swp_offset(pte_to_swp_entry(table[idx]))
    si = s.m.pgdat.swap_info[0]
    si.cache[off] = s.m.pgdat.mem_map[_mapped_anon(s)]


def _plant_slots_cache(s: System) -> None:
    table, idx = _swap_pte(s)
    sc = s.m.pgdat.swp_slots
    assert sc is not None
    sc.slots_ret.append(pte_to_swp_entry(table[idx]))


def _plant_nr_swap_pages(s: System) -> None:
    s.m.pgdat.nr_swap_pages += 1


def _first_mm(s: System):  # type: ignore[no-untyped-def]
    t = s._task(0)
    assert t is not None and t.mm is not None
    return t.mm


def _plant_rss(s: System) -> None:
    _first_mm(s).rss_stat[MM_ANONPAGES] += 1


def _plant_pgtables_bytes(s: System) -> None:
    _first_mm(s).pgtables_bytes += 4096


def _plant_nr_pagetable(s: System) -> None:
    nr = s.m.pgdat.nr_pagetable
    nr[next(iter(nr))] += 1


def _plant_pgd_list(s: System) -> None:
    s.m.pgdat.pgd_list.append(0x7777)


def _plant_table_leak(s: System) -> None:
    _, free = _free_block(s)
    s.m.pgdat.pgtables[free] = {}


def _plant_kernel_half(s: System) -> None:
    pgd = s.m.pgdat.pgtables[_first_mm(s).pgd]
    pgd[300] = pgd.get(300, 0) ^ 0x1000


def _plant_zero_page_written(s: System) -> None:
    s.m.pgdat.page_data[ZERO_PFN] = bytearray(4096)


def _plant_vma_end(s: System) -> None:
    vma = _first_mm(s).mmap
    assert vma is not None
    vma.vm_end += 4096


def _plant_vma_index_gap(s: System) -> None:
    mm = max((t.mm for t in s._tasks() if t.mm is not None), key=lambda mm: mm.map_count)
    mm.mm_rb._gaps[0][-1] += 4096


def _plant_total_vm(s: System) -> None:
    _first_mm(s).total_vm += 1


def _plant_anon_vma_tree(s: System) -> None:
    vma = next(v for t in s._tasks() if t.mm is not None for v in System._vmas(t.mm)
               if v.anon_vma is not None)
    assert vma.anon_vma is not None
    vma.anon_vma.rb_root.remove(vma)


def _plant_i_mmap(s: System) -> None:
    vma = next(v for t in s._tasks() if t.mm is not None for v in System._vmas(t.mm)
               if v.vm_file is not None)
    assert vma.vm_file is not None
    vma.vm_file.f_mapping.i_mmap.remove(vma)


# Found by review: state read by the full check outside every shadowed container.
def _plant_reserved_range(s: System) -> None:
    pfn = _mapped_anon(s)
    s.m.pgdat.reserved_ranges = (*s.m.pgdat.reserved_ranges, (pfn, pfn + 1))


def _plant_mem_map_replaced(s: System) -> None:
    old = s.m.pgdat.mem_map[_mapped_anon(s)]
    s.m.pgdat.mem_map[old.pfn] = Page(old.pfn, old.zone_idx)


def _plant_zone_span(s: System) -> None:
    zone = next(z for z in s.m.pgdat.node_zones
                if any(fl for a in z.free_area for fl in a.free_list))
    zone.spanned_pages -= 1


def _plant_max_order(s: System) -> None:
    s.m.pgdat.max_order -= 1


def _plant_swap_area_size(s: System) -> None:
    s.m.pgdat.swap_info[0].max -= 1


def _plant_file_shmem(s: System) -> None:
    t = s._task(0)
    assert t is not None and t.mm is not None and s.files
    assert s.m.mmap(t.mm, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, s.files[0], 0) > 0
    assert s.checker is not None and s.checker.violations() == []
    s.files[0].shmem = not s.files[0].shmem


def _plant_swap_cache_foreign_page(s: System) -> None:
    si = s.m.pgdat.swap_info[0]
    rng = random.Random(9)
    while not si.cache:  # walk on (checked) until a page sits in the swap cache
        random_steps(s, rng, 1, check=True, stress_weight=3)
    off, page = next(iter(si.cache.items()))
    twin = Page(page.pfn, page.zone_idx)  # another struct page for the same pfn...
    for name in ("flags", "page_type", "_refcount", "_mapcount", "private", "index",
                 "mapping", "mapping_flags"):
        setattr(twin, name, getattr(page, name))
    twin.state = PageState.BUDDY  # ... that is free
    si.cache[off] = twin


def _plant_paging_levels(s: System) -> None:
    _first_mm(s).paging_levels = 5


PLANTS: list[tuple[Callable[[System], None], bool]] = [
    (_plant_refcount, False), (_plant_mapcount, False), (_plant_shared_writable, False),
    (_plant_pte_to_free_page, False), (_plant_page_flag_lru, False), (_plant_page_pfn, False),
    (_plant_allocated_drop, False), (_plant_allocated_extra, False),
    (_plant_free_list_drop, False), (_plant_free_block_index, False),
    (_plant_pcp_allocated_page, False), (_plant_nr_free, False), (_plant_lru_drop, False),
    (_plant_lru_move, False), (_plant_lru_size, False), (_plant_page_cache_drop, False),
    (_plant_swap_map, True), (_plant_swap_pte_slot, True), (_plant_swap_cache, True),
    (_plant_slots_cache, True), (_plant_nr_swap_pages, True), (_plant_rss, False),
    (_plant_pgtables_bytes, False), (_plant_nr_pagetable, False), (_plant_pgd_list, False),
    (_plant_table_leak, False), (_plant_kernel_half, False), (_plant_zero_page_written, False),
    (_plant_vma_end, False), (_plant_vma_index_gap, False), (_plant_total_vm, False),
    (_plant_anon_vma_tree, False), (_plant_i_mmap, False), (_plant_reserved_range, False),
    (_plant_mem_map_replaced, False), (_plant_zone_span, False), (_plant_max_order, False),
    (_plant_swap_area_size, True), (_plant_file_shmem, False),
    (_plant_swap_cache_foreign_page, True), (_plant_paging_levels, False),
]


@pytest.mark.parametrize("plant,swapped", PLANTS, ids=[p.__name__[7:] for p, _ in PLANTS])
def test_a_planted_corruption_is_caught(plant: Callable[[System], None],
                                        swapped: bool) -> None:
    s = _state(swapped)
    assert s.checker is not None
    before = s.checker.full_checks
    plant(s)
    full = s.violations()
    assert full, "the planted corruption is not one the full check sees"
    # Caught: the fast path gave up and the full check worded the violations.
    assert s.checker.violations() == full
    assert s.checker.full_checks == before + 1
    # Until the machine is clean again every check is a full one.
    assert s.checker.violations() == full
