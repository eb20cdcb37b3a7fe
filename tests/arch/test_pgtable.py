"""5.10-exact behaviour of the x86-64 page-table helpers (refmodel.arch.x86)."""

from __future__ import annotations

import pytest

from refmodel.arch.x86 import pgtable_types as T
from refmodel.arch.x86.pgtable import (
    KERNEL_PGD_BOUNDARY,
    mk_pte,
    p4d_index,
    p4d_offset,
    pfn_pte,
    pgd_alloc,
    pgd_bad,
    pgd_free,
    pgd_index,
    pgd_none,
    pgd_offset,
    pgd_populate,
    pgd_present,
    pmd_bad,
    pmd_index,
    pmd_none,
    pmd_present,
    pte_dirty,
    pte_exec,
    pte_index,
    pte_mkclean,
    pte_mkdirty,
    pte_mkold,
    pte_mkwrite,
    pte_mkyoung,
    pte_modify,
    pte_none,
    pte_pfn,
    pte_present,
    pte_write,
    pte_wrprotect,
    pte_young,
    pud_bad,
    pud_index,
    pud_none,
    read_entry,
    set_pte,
    swapper_pg_dir_entries,
)
from refmodel.arch.x86.pgtable_demo import demo_populate
from refmodel.arch.x86.pgtable_types import (
    PAGE_ALIGN,
    PGDIR_SHIFT,
    PTRS_PER_P4D,
    TASK_SIZE_MAX,
    PAGE_ALIGN_overflows,
    is_canonical_address,
    protection_map,
    vm_get_page_prot,
)
from refmodel.arch.x86.walk import walk
from refmodel.bugs import KernelBug
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.page_alloc import alloc_pages
from refmodel.mm.types import PageType
from refmodel.mm.vm_flags import VM_EXEC, VM_READ, VM_SHARED, VM_WRITE
from refmodel.trace import Tracer, lookup
from tests.pgtable_helpers import machine, new_mm, pages_in_use

BOTH = pytest.mark.parametrize("levels", [4, 5])


# --------------------------------------------------------------------------------------------
# geometry


def test_geometry_constants_match_5_10() -> None:
    assert (T.PAGE_SHIFT, T.PMD_SHIFT, T.PUD_SHIFT, T.P4D_SHIFT) == (12, 21, 30, 39)
    assert (PGDIR_SHIFT(4), PGDIR_SHIFT(5)) == (39, 48)
    assert (PTRS_PER_P4D(4), PTRS_PER_P4D(5)) == (1, 512)
    assert T.PTRS_PER_PGD == T.PTRS_PER_PUD == T.PTRS_PER_PMD == T.PTRS_PER_PTE == 512
    assert TASK_SIZE_MAX(4) == 0x7FFFFFFFF000
    assert TASK_SIZE_MAX(5) == 0x00FFFFFFFFFFF000
    assert T.DEFAULT_MAP_WINDOW == 0x7FFFFFFFF000
    assert KERNEL_PGD_BOUNDARY(4) == KERNEL_PGD_BOUNDARY(5) == 273


def test_canonical_is_bits_63_to_47_or_56_equal() -> None:
    assert is_canonical_address(0x00007FFFFFFFFFFF, 4)
    assert not is_canonical_address(0x0000800000000000, 4)
    assert is_canonical_address(0xFFFF800000000000, 4)
    assert not is_canonical_address(0xFFFF7FFFFFFFFFFF, 4)
    assert is_canonical_address(0x0000800000000000, 5)
    assert is_canonical_address(0x00FFFFFFFFFFFFFF, 5)
    assert not is_canonical_address(0x0100000000000000, 5)
    assert is_canonical_address(0xFF00000000000000, 5)


def test_page_align_wraps_to_zero_and_reports_overflow() -> None:
    assert PAGE_ALIGN(0) == 0 and PAGE_ALIGN(1) == 4096 and PAGE_ALIGN(4096) == 4096
    assert PAGE_ALIGN(0xFFFFFFFFFFFFF000) == 0xFFFFFFFFFFFFF000
    assert PAGE_ALIGN(0xFFFFFFFFFFFFF001) == 0
    assert PAGE_ALIGN_overflows(0xFFFFFFFFFFFFF001)
    assert not PAGE_ALIGN_overflows(0xFFFFFFFFFFFFF000)


@BOTH
def test_p4d_index_is_always_zero_with_4_level_paging(levels: int) -> None:
    addr = 0x00007F1234567000 if levels == 4 else 0x00FF7F1234567000
    assert p4d_index(addr, levels) == (0 if levels == 4 else (addr >> 39) & 511)
    assert pgd_index(addr, levels) == (addr >> PGDIR_SHIFT(levels)) & 511
    assert (pud_index(addr), pmd_index(addr), pte_index(addr)) == (
        (addr >> 30) & 511, (addr >> 21) & 511, (addr >> 12) & 511)


# --------------------------------------------------------------------------------------------
# PTE bits and protections


def test_protection_map_entries_are_5_10s() -> None:
    none, ro, rx = 0x120, 0x8000000000000025, 0x25
    shared, shared_x = 0x8000000000000027, 0x27
    assert protection_map == (
        none, ro, ro, ro, rx, rx, rx, rx,  # private: never _PAGE_RW (COW)
        none, ro, shared, shared, rx, rx, shared_x, shared_x,
    )
    assert vm_get_page_prot(VM_READ | VM_WRITE) == ro
    assert vm_get_page_prot(VM_READ | VM_WRITE | VM_SHARED) == shared
    assert vm_get_page_prot(VM_WRITE | VM_SHARED) == shared  # write implies read
    assert vm_get_page_prot(VM_EXEC) == rx  # exec implies read
    assert vm_get_page_prot(0) == 0x120


def test_pte_bit_helpers() -> None:
    pte = pfn_pte(0x1234, T.PAGE_READONLY)
    assert pte == 0x8000000001234025
    assert pte_pfn(pte) == 0x1234 and pte_present(pte) and not pte_none(pte)
    assert not pte_write(pte) and pte_write(pte_mkwrite(pte))
    assert not pte_write(pte_wrprotect(pte_mkwrite(pte)))
    assert pte_dirty(pte_mkdirty(pte)) and pte_mkdirty(pte) & T._PAGE_SOFT_DIRTY
    assert not pte_dirty(pte_mkclean(pte_mkdirty(pte)))
    assert pte_young(pte) and not pte_young(pte_mkold(pte)) and pte_young(pte_mkyoung(0))
    assert not pte_exec(pte) and pte_exec(pfn_pte(1, T.PAGE_READONLY_EXEC))


def test_pte_none_ignores_the_knl_erratum_accessed_and_dirty_bits() -> None:
    assert pte_none(0) and pte_none(0x60) and not pte_none(0x1)


def test_prot_none_pte_stores_the_pfn_inverted_and_is_still_present() -> None:
    pte = pfn_pte(0x1234, T.PAGE_NONE)
    assert pte & T.PTE_FLAGS_MASK == 0x120
    assert (pte & T.PTE_PFN_MASK) >> 12 == (~0x1234) & ((1 << 40) - 1)
    assert pte_pfn(pte) == 0x1234
    assert pte_present(pte)  # PROTNONE counts as present for the kernel
    # pte_modify back to a present protection un-inverts the pfn
    assert pte_modify(pte, T.PAGE_READONLY) & T.PTE_PFN_MASK == 0x1234 << 12


def test_pfn_pte_with_a_zero_prot_reads_back_inverted_as_in_5_10() -> None:
    # pfn_pte inverts only by the prot; pte_pfn by the pte: a non-zero not-present pte.
    pte = pfn_pte(5, 0)
    assert pte == 5 << 12 and pte_pfn(pte) != 5


def test_bad_and_none_checks() -> None:
    assert not pmd_bad(0x1000 | T._PAGE_TABLE) and not pmd_bad(0x1000 | T._KERNPG_TABLE)
    assert pmd_bad(0x1000 | T._PAGE_TABLE | T._PAGE_NX)
    assert pmd_bad(0x1000 | T._PAGE_TABLE | T._PAGE_PSE)
    assert pmd_bad(0x1000 | T._PAGE_PRESENT)
    assert pmd_present(T._PAGE_PSE) and pmd_none(0x60)
    assert not pud_bad(0x1000 | T._PAGE_TABLE) and not pud_bad(0)
    assert pud_bad(0x1000 | T._PAGE_TABLE | T._PAGE_NX) and pud_none(0)
    # the folded pgd level: never none, always present, never bad
    assert not pgd_none(0, 4) and pgd_present(0, 4) and not pgd_bad(0x5, 4)
    assert pgd_none(0, 5) and not pgd_present(0, 5) and pgd_bad(0x1000 | T._PAGE_NX | 0x63, 5)
    assert not pgd_bad(0x1000 | T._PAGE_TABLE, 5)


# --------------------------------------------------------------------------------------------
# pgd_alloc / pgd_free


@BOTH
def test_pgd_alloc_allocates_exactly_one_page_and_no_lower_levels(levels: int) -> None:
    m = machine(levels)
    before = pages_in_use(m.pgdat)
    mm = mm_struct(paging_levels=levels)
    with Tracer() as t:
        pgd = pgd_alloc(m.pgdat, mm)
    assert pgd is not None and mm.pgd == pgd
    assert pages_in_use(m.pgdat) == before + 1
    assert list(m.pgdat.pgtables) == [pgd] and mm.pgtables_bytes == 0
    names = [n for r in t.roots for n in r.names()]
    for lower in ("pud_alloc", "pmd_alloc", "pte_alloc", "p4d_alloc", "pgd_init"):
        assert lower not in names  # the seed's pgd_alloc -> pud_alloc chain does not exist
    assert "pgd_ctor" in names
    assert m.pgdat.pgd_list == [pgd]
    assert not m.pgdat.mem_map[pgd].page_type & PageType.PG_table


@BOTH
def test_virt_to_page_is_pgd_list_adds_and_dels_not_pgd_allocs(levels: int) -> None:
    """5.10's pgd_alloc keeps the pgd's address; pgd_list_add and pgd_list_del take its
    struct page with virt_to_page."""
    m = machine(levels)
    mm = mm_struct(paging_levels=levels)
    with Tracer() as t:
        pgd = pgd_alloc(m.pgdat, mm)
    root = t.roots[0]
    assert pgd is not None and "virt_to_page" not in [c.name for c in root.children]
    assert root.path_to("virt_to_page") == ["pgd_alloc", "pgd_ctor", "pgd_list_add",
                                            "virt_to_page"]
    with Tracer() as t:
        pgd_free(m.pgdat, mm, pgd)
    assert t.roots[0].path_to("virt_to_page") == ["pgd_free", "pgd_dtor", "pgd_list_del",
                                                  "virt_to_page"]
    assert m.pgdat.pgd_list == []


@BOTH
def test_pgd_ctor_copies_the_kernel_half_from_swapper_pg_dir_only(levels: int) -> None:
    m = machine(levels)
    mm = new_mm(m.pgdat)
    table = m.pgdat.pgtables[mm.pgd]
    swapper = swapper_pg_dir_entries(levels, m.pgdat.node_spanned_pages)
    assert table == {i: v for i, v in swapper.items() if i >= 273}
    assert all(i >= 273 for i in table) and 273 in table and 511 in table


@BOTH
def test_pgd_free_gives_the_page_back(levels: int) -> None:
    m = machine(levels)
    before = dict(m.pgdat.allocated)
    mm = new_mm(m.pgdat)
    pgd_free(m.pgdat, mm, mm.pgd)
    assert m.pgdat.allocated == before and not m.pgdat.pgtables and not m.pgdat.pgd_list


def test_p4d_is_folded_into_the_pgd_with_4_level_paging() -> None:
    m = machine(4)
    mm = new_mm(m.pgdat)
    pgd = pgd_offset(mm, 0x7F0000000000)
    assert p4d_offset(m.pgdat, pgd, 0x7F0000000000) == pgd
    pgd_populate(m.pgdat, mm, pgd, 0x5000)  # a no-op when p4d is folded
    assert read_entry(m.pgdat, pgd) == 0


# --------------------------------------------------------------------------------------------
# stores and the walker


def test_storing_into_a_page_that_is_not_a_table_is_a_model_bug() -> None:
    m = machine(4)
    page = alloc_pages(m.pgdat, 0, 0)
    assert page is not None
    with pytest.raises(KernelBug):
        set_pte(m.pgdat, page.pfn << 12, mk_pte(page, T.PAGE_READONLY))


@BOTH
def test_walk_reports_every_level_and_where_it_stops(levels: int) -> None:
    m = machine(levels)
    mm = demo_populate(m.pgdat, levels)
    w = walk(m.pgdat, mm.pgd, 0x7FFFF7FFE010)
    assert w.stop == "mapped" and len(w.steps) == levels and w.writable and w.user
    assert w.phys is not None and w.phys & 0xFFF == 0x010 and not w.executable
    miss = walk(m.pgdat, mm.pgd, 0x1000)
    # 5-level: 0x1000 shares pgd[0] with the mapping, so the walk stops one level lower
    top = ("pgd", 1) if levels == 4 else ("p4d", 2)
    assert miss.stop == "not-present" and (miss.stop_level, len(miss.steps)) == top
    near = walk(m.pgdat, mm.pgd, 0x7FFFF7FFC000)
    assert near.stop == "not-present" and near.stop_level == "pte"
    bad = walk(m.pgdat, mm.pgd, 1 << 60)
    assert bad.stop == "non-canonical" and not bad.steps
    kern = walk(m.pgdat, mm.pgd, 0xFFFFFFFF81000000)
    assert kern.steps[0].value != 0 and kern.stop == "not-present"
    assert "mapped" in w.render()


# --------------------------------------------------------------------------------------------
# where 5.10 defines things (errata rows 29-34)


def test_set_pte_is_native_set_pte_in_pgtable_64_h_not_pgtable_c() -> None:
    kf = lookup("native_set_pte")
    assert kf is not None and kf.file == "arch/x86/include/asm/pgtable_64.h"
    set_pte_at = lookup("set_pte_at")
    assert set_pte_at is not None and set_pte_at.file == "arch/x86/include/asm/pgtable.h"


def test_level_allocators_are_mm_h_inlines_over_mm_memory_c() -> None:
    for name in ("p4d_alloc", "pud_alloc", "pmd_alloc", "pte_alloc"):
        kf = lookup(name)
        assert kf is not None and kf.file == "include/linux/mm.h"
    for name in ("__p4d_alloc", "__pud_alloc", "__pmd_alloc", "__pte_alloc"):
        kf = lookup(name)
        assert kf is not None and kf.file == "mm/memory.c"
    pte_alloc_one = lookup("pte_alloc_one")
    assert pte_alloc_one is not None and pte_alloc_one.file == "arch/x86/mm/pgtable.c"
    assert lookup("pgd_init") is None
    ctor = lookup("pgd_ctor")
    assert ctor is not None and ctor.file == "arch/x86/mm/pgtable.c"
