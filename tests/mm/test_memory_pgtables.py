"""5.10-exact behaviour of page-table allocation and teardown (refmodel.mm.memory)."""

from __future__ import annotations

import pytest

from refmodel.arch.x86.pgtable import (
    __pte_alloc_one,
    p4d_offset,
    pgd_free,
    pgd_offset,
    pmd_offset,
    pte_clear,
    pud_offset,
    read_entry,
)
from refmodel.arch.x86.pgtable_demo import populate_pte
from refmodel.arch.x86.pgtable_types import PMD_SIZE, PUD_SIZE, TASK_SIZE_MAX
from refmodel.mm import gfp as G
from refmodel.mm.memory import __pte_alloc as pte_alloc_slow
from refmodel.mm.memory import free_pgd_range, free_pgtables, pte_alloc
from refmodel.mm.mmu_gather import tlb_finish_mmu, tlb_gather_mmu
from refmodel.mm.types import PageType
from refmodel.specs.buddy import check_buddy
from refmodel.specs.pagetable import check_pagetables, user_table_tree
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
    free_pgtables(m.pgdat, tlb, [(a, a + 0x1000), (b, b + 0x1000)], 0, 0)
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
