"""5.10-exact behaviour of page-table allocation and teardown (refmodel.mm.memory)."""

from __future__ import annotations

import pytest

from refmodel.arch.x86.pgtable import (
    __pte_alloc_one,
    p4d_offset,
    pfn_pte,
    pgd_free,
    pgd_offset,
    pmd_none_or_trans_huge_or_clear_bad,
    pmd_offset,
    pte_clear,
    pte_clear_not_present_full,
    pte_free,
    ptep_get_and_clear_full,
    pud_offset,
    read_entry,
    set_pte_at,
    write_entry,
)
from refmodel.arch.x86.pgtable_demo import populate_pte
from refmodel.arch.x86.pgtable_types import (
    _PAGE_PSE,
    PMD_SIZE,
    PUD_SIZE,
    TASK_SIZE_MAX,
    vm_get_page_prot,
)
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.memory import __pte_alloc as pte_alloc_slow
from refmodel.mm.memory import (
    add_mm_rss_vec,
    free_pgd_range,
    free_pgtables,
    pte_alloc,
    pte_alloc_map_lock,
    pte_offset_map_lock,
)
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mmu_gather import tlb_finish_mmu, tlb_gather_mmu
from refmodel.mm.types import PageType
from refmodel.mm.vm_flags import VM_READ, VM_WRITE
from refmodel.specs.buddy import check_buddy
from refmodel.specs.pagetable import check_pagetables, user_table_tree
from refmodel.trace import Tracer, lookup
from tests.pgtable_helpers import machine, new_mm, pages_in_use

BOTH = pytest.mark.parametrize("levels", [4, 5])
ADDR = 0x7FFFF7FFE000


@BOTH
def test_first_mapping_allocates_each_lower_level_once_and_counts_pte_pmd_pud(
        levels: int) -> None:
    m = machine(levels)
    mm = new_mm(m.pgdat)
    before = pages_in_use(m.pgdat)
    assert populate_pte(m.pgdat, mm, ADDR) is not None
    # 4-level: pud, pmd, pte; 5-level: also a p4d, which pgtables_bytes does not count
    assert pages_in_use(m.pgdat) == before + (levels - 1)
    assert mm.pgtables_bytes == 3 * 4096
    tree = user_table_tree(m.pgdat, mm)
    levels_seen = sorted(tree.tables.values())
    assert levels_seen == sorted(["pgd", "pud", "pmd", "pte"] + (["p4d"] if levels == 5 else []))
    for pfn, level in tree.tables.items():
        assert bool(m.pgdat.mem_map[pfn].page_type & PageType.PG_table) == (level in ("pmd", "pte"))
    assert sum(m.pgdat.nr_pagetable.values()) == 2
    assert check_pagetables(m.pgdat, [mm]) == [] and check_buddy(m.pgdat) == []


@BOTH
def test_lower_levels_appear_lazily_only_where_needed(levels: int) -> None:
    m = machine(levels)
    mm = new_mm(m.pgdat)
    populate_pte(m.pgdat, mm, ADDR)
    n = pages_in_use(m.pgdat)
    populate_pte(m.pgdat, mm, ADDR - 0x1000)  # same pte table
    assert pages_in_use(m.pgdat) == n
    populate_pte(m.pgdat, mm, ADDR - PMD_SIZE)  # same pmd table, new pte table
    assert pages_in_use(m.pgdat) == n + 1 and mm.pgtables_bytes == 4 * 4096
    populate_pte(m.pgdat, mm, ADDR - PUD_SIZE)  # same pud, new pmd + pte
    assert pages_in_use(m.pgdat) == n + 3 and mm.pgtables_bytes == 6 * 4096


@BOTH
def test_pte_alloc_returns_zero_and_maps_nothing(levels: int) -> None:
    m = machine(levels)
    mm = new_mm(m.pgdat)
    ptep = populate_pte(m.pgdat, mm, ADDR)
    assert ptep is not None and read_entry(m.pgdat, ptep) == 0  # only the table exists
    pmd = pmd_offset(m.pgdat, pud_offset(m.pgdat, p4d_offset(m.pgdat, pgd_offset(mm, ADDR),
                                                             ADDR), ADDR), ADDR)
    n = pages_in_use(m.pgdat)
    assert pte_alloc(m.pgdat, mm, pmd) == 0 and pages_in_use(m.pgdat) == n


def test_pte_alloc_slow_path_frees_its_table_when_the_pmd_is_already_populated() -> None:
    m = machine(4)
    mm = new_mm(m.pgdat)
    populate_pte(m.pgdat, mm, ADDR)
    pmd = pmd_offset(m.pgdat, pud_offset(m.pgdat, pgd_offset(mm, ADDR), ADDR), ADDR)
    n, b = pages_in_use(m.pgdat), mm.pgtables_bytes
    assert pte_alloc_slow(m.pgdat, mm, pmd) == 0
    assert pages_in_use(m.pgdat) == n and mm.pgtables_bytes == b
    assert check_pagetables(m.pgdat, [mm]) == []


def test_pte_alloc_one_failure_reports_enomem() -> None:
    m = machine(4)
    # no OOM killer: with nobody to kill 5.10 would panic; here the allocation just fails
    m.pgdat.hooks.out_of_memory = None
    mm = new_mm(m.pgdat)
    populate_pte(m.pgdat, mm, ADDR)
    # exhaust memory with GFP_ATOMIC-free allocations until the allocator says no
    while __pte_alloc_one(m.pgdat, mm, G.GFP_NOWAIT) is not None:
        pass
    pmd = pmd_offset(m.pgdat, pud_offset(m.pgdat, pgd_offset(mm, ADDR - PMD_SIZE),
                                         ADDR - PMD_SIZE), ADDR - PMD_SIZE)
    # GFP_PGTABLE_USER may dip lower than GFP_NOWAIT; keep going until it fails too
    while __pte_alloc_one(m.pgdat, mm, G.GFP_PGTABLE_USER) is not None:
        pass
    assert pte_alloc(m.pgdat, mm, pmd) == 1
    assert pte_alloc_slow(m.pgdat, mm, pmd) == -12


@BOTH
def test_free_pgd_range_over_the_user_half_frees_every_lower_table(levels: int) -> None:
    m = machine(levels)
    start = dict(m.pgdat.allocated)
    mm = new_mm(m.pgdat)
    for a in (0, ADDR, TASK_SIZE_MAX(levels) - 0x1000, 1 << 39, (1 << 39) - 0x1000):
        populate_pte(m.pgdat, mm, a)
    tlb = tlb_gather_mmu(m.pgdat, mm, 0, (1 << 64) - 1)
    free_pgd_range(m.pgdat, tlb, 0, TASK_SIZE_MAX(levels) + 0x1000, 0, 0)
    tlb_finish_mmu(m.pgdat, tlb, 0, (1 << 64) - 1)
    assert mm.pgtables_bytes == 0 and list(m.pgdat.pgtables) == [mm.pgd]
    assert check_pagetables(m.pgdat, [mm]) == []
    pgd_free(m.pgdat, mm, mm.pgd)
    assert m.pgdat.allocated == start and check_buddy(m.pgdat) == []
    assert sum(m.pgdat.nr_pagetable.values()) == 0


@BOTH
def test_free_pgd_range_keeps_a_table_still_used_below_the_ceiling(levels: int) -> None:
    m = machine(levels)
    mm = new_mm(m.pgdat)
    for a in (ADDR, ADDR - 0x1000):
        populate_pte(m.pgdat, mm, a)
    n = pages_in_use(m.pgdat)
    tlb = tlb_gather_mmu(m.pgdat, mm, ADDR - 0x1000, ADDR)
    free_pgd_range(m.pgdat, tlb, ADDR - 0x1000, ADDR, 0, ADDR)  # the next "vma" is at ADDR
    tlb_finish_mmu(m.pgdat, tlb, ADDR - 0x1000, ADDR)
    assert pages_in_use(m.pgdat) == n and check_pagetables(m.pgdat, [mm]) == []


def test_free_pgtables_groups_ranges_closer_than_a_pmd() -> None:
    m = machine(4)
    mm = new_mm(m.pgdat)
    a, b = 0x400000, 0x400000 + PMD_SIZE  # two pte tables, one pmd table
    for x in (a, b):
        populate_pte(m.pgdat, mm, x)
    tlb = tlb_gather_mmu(m.pgdat, mm, 0, (1 << 64) - 1)
    vb = vm_area_struct(vm_start=b, vm_end=b + 0x1000)
    va = vm_area_struct(vm_start=a, vm_end=a + 0x1000, vm_next=vb)
    free_pgtables(m.pgdat, tlb, va, 0, 0)
    tlb_finish_mmu(m.pgdat, tlb, 0, (1 << 64) - 1)
    assert mm.pgtables_bytes == 0 and list(m.pgdat.pgtables) == [mm.pgd]


def test_gathered_tables_reach_the_per_cpu_list_in_gather_order_at_the_head() -> None:
    m = machine(4)
    mm = new_mm(m.pgdat)
    populate_pte(m.pgdat, mm, ADDR)
    tree = user_table_tree(m.pgdat, mm)
    by_level = {lv: pfn for pfn, lv in tree.tables.items()}
    tlb = tlb_gather_mmu(m.pgdat, mm, 0, (1 << 64) - 1)
    free_pgd_range(m.pgdat, tlb, 0, 1 << 47, 0, 0)
    gathered = [p.pfn for p in tlb.batches[0].pages]
    assert gathered == [by_level["pte"], by_level["pmd"], by_level["pud"]]
    tlb_finish_mmu(m.pgdat, tlb, 0, (1 << 64) - 1)
    # release_pages list_adds (reversing), then frees in list order: pud, pmd, pte; the
    # per-cpu list head is the last one freed, the pte table.
    zone = m.pgdat.node_zones[m.pgdat.mem_map[by_level["pte"]].zone_idx]
    heads = [lst[0].pfn for lst in zone.pageset.lists if lst]
    assert by_level["pte"] in heads


@BOTH
def test_pte_clear_then_teardown_leaves_nothing(levels: int) -> None:
    m = machine(levels)
    mm = new_mm(m.pgdat)
    ptep = populate_pte(m.pgdat, mm, ADDR)
    assert ptep is not None
    pte_clear(m.pgdat, mm, ADDR, ptep)
    assert read_entry(m.pgdat, ptep) == 0


# --------------------------------------------------------------------------------------------
# The pte stores and pte-pointer helpers the fault, fork and zap paths call (5.10 frames)


def _mapped_pte(levels: int = 4) -> tuple[Machine, mm_struct, int, int]:
    """A machine, an mm, and the address of a pte holding a present (made-up) entry."""
    m = machine(levels)
    mm = new_mm(m.pgdat)
    ptep = populate_pte(m.pgdat, mm, ADDR)
    assert ptep is not None
    entry = pfn_pte(0x1234, vm_get_page_prot(VM_READ | VM_WRITE))
    set_pte_at(m.pgdat, mm, ADDR, ptep, entry)
    return m, mm, ptep, entry


@pytest.mark.parametrize("full", [False, True])
def test_ptep_get_and_clear_full_takes_the_local_path_only_for_a_full_mm(full: bool) -> None:
    m, mm, ptep, entry = _mapped_pte()
    with Tracer() as tr:
        old = ptep_get_and_clear_full(m.pgdat, mm, ADDR, ptep, full)
    assert old == entry and read_entry(m.pgdat, ptep) == 0
    # x86: a dying mm needs no atomic xchg, so 5.10 reads and clears with plain stores
    expected = (["ptep_get_and_clear_full", "native_local_ptep_get_and_clear",
                 "native_pte_clear", "native_set_pte"] if full else
                ["ptep_get_and_clear_full", "ptep_get_and_clear", "native_ptep_get_and_clear"])
    assert tr.roots[0].names() == expected


def test_pte_clear_not_present_full_is_pte_clear_on_x86() -> None:
    m, mm, ptep, _ = _mapped_pte()
    with Tracer() as tr:
        pte_clear_not_present_full(m.pgdat, mm, ADDR, ptep, True)
    assert read_entry(m.pgdat, ptep) == 0
    assert tr.roots[0].names() == ["pte_clear_not_present_full", "pte_clear",
                                   "native_pte_clear", "native_set_pte"]
    kf = lookup("pte_clear_not_present_full")
    assert kf is not None and kf.file == "include/linux/pgtable.h"


def test_pte_offset_map_lock_is_pte_offset_map_and_pte_alloc_map_lock_allocates_first() -> None:
    m = machine(4)
    mm = new_mm(m.pgdat)
    ptep = populate_pte(m.pgdat, mm, ADDR)  # tables down to the pmd, and the pte table
    assert ptep is not None
    pmd = pmd_offset(m.pgdat, pud_offset(m.pgdat, p4d_offset(m.pgdat, pgd_offset(mm, ADDR),
                                                             ADDR), ADDR), ADDR)
    with Tracer() as tr:
        assert pte_offset_map_lock(m.pgdat, mm, pmd, ADDR) == ptep
    assert tr.roots[0].names()[:3] == ["pte_offset_map_lock", "pte_offset_map",
                                       "pte_offset_kernel"]
    with Tracer() as tr:
        assert pte_alloc_map_lock(m.pgdat, mm, pmd, ADDR + 0x1000) == ptep + 8
    assert [c.name for c in tr.roots[0].children] == ["pte_alloc", "pte_offset_map_lock"]


def test_pmd_none_or_trans_huge_or_clear_bad_tests_none_then_bad() -> None:
    m = machine(4)
    mm = new_mm(m.pgdat)
    ptep = populate_pte(m.pgdat, mm, ADDR)
    assert ptep is not None
    pmd = pmd_offset(m.pgdat, pud_offset(m.pgdat, p4d_offset(m.pgdat, pgd_offset(mm, ADDR),
                                                             ADDR), ADDR), ADDR)
    with Tracer() as tr:
        assert pmd_none_or_trans_huge_or_clear_bad(m.pgdat, pmd) is False
        assert pmd_none_or_trans_huge_or_clear_bad(m.pgdat, pmd + 8) is True  # none
    assert [r.names() for r in tr.roots] == [
        ["pmd_none_or_trans_huge_or_clear_bad", "pmd_none", "pmd_bad"],
        ["pmd_none_or_trans_huge_or_clear_bad", "pmd_none"]]
    good = read_entry(m.pgdat, pmd)
    write_entry(m.pgdat, pmd, good | _PAGE_PSE)  # bad: a huge pmd where none can be
    with Tracer() as tr:
        assert pmd_none_or_trans_huge_or_clear_bad(m.pgdat, pmd) is True
    assert read_entry(m.pgdat, pmd) == 0  # pmd_clear_bad cleared it
    assert tr.roots[0].find("pmd_clear_bad") is not None
    kf = lookup("pmd_none_or_trans_huge_or_clear_bad")
    assert kf is not None and kf.file == "include/linux/pgtable.h"
    # (the pte table the bad pmd pointed at is leaked, as in 5.10: give it back by hand)
    pte_free(m.pgdat, mm, m.pgdat.mem_map[good >> 12])


def test_add_mm_rss_vec_calls_add_mm_counter_for_each_counter_that_moved() -> None:
    mm = mm_struct(paging_levels=4)
    mm.rss_stat = [3, 2, 0, 1]
    with Tracer() as tr:
        add_mm_rss_vec(mm, [0, -2, 0, 4])
    assert mm.rss_stat == [3, 0, 0, 5]
    assert [c.name for c in tr.roots[0].children] == ["add_mm_counter", "add_mm_counter"]
