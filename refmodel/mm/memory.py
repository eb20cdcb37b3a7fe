"""Page-table level allocation and teardown (mm/memory.c, include/linux/mm.h, 5.10).

The inline helpers p4d_alloc / pud_alloc / pmd_alloc / pte_alloc of include/linux/mm.h test
the entry above and call the slow paths __p4d_alloc / __pud_alloc / __pmd_alloc /
__pte_alloc of mm/memory.c only when it is empty; those allocate the lower table, re-check
the entry (under the page-table lock in 5.10), account it in mm->pgtables_bytes and populate
the entry, or free the new table if the entry was filled meanwhile. free_pgd_range and its
per-level helpers free the tables a range no longer needs.

Locks and barriers are not modelled (one CPU). VMAs come with mmap, so free_pgtables takes
the VMA list as sorted (vm_start, vm_end) ranges (no hugetlb VMAs; unlink_anon_vmas and
unlink_file_vma have nothing to do yet).
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable import (
    p4d_addr_end,
    p4d_alloc_one,
    p4d_free,
    p4d_free_tlb,
    p4d_none_or_clear_bad,
    p4d_offset,
    p4d_populate,
    pgd_addr_end,
    pgd_clear,
    pgd_none_or_clear_bad,
    pgd_offset,
    pgd_populate,
    pmd_addr_end,
    pmd_alloc_one,
    pmd_clear,
    pmd_free,
    pmd_free_tlb,
    pmd_none_or_clear_bad,
    pmd_offset,
    pmd_page_vaddr,
    pmd_populate,
    pte_alloc_one,
    pte_free,
    pte_free_tlb,
    pte_offset_map,
    pud_addr_end,
    pud_alloc_one,
    pud_clear,
    pud_free,
    pud_free_tlb,
    pud_none_or_clear_bad,
    pud_offset,
    pud_populate,
    read_entry,
)
from refmodel.arch.x86.pgtable import (
    p4d_clear as _p4d_clear,
)
from refmodel.arch.x86.pgtable import (
    p4d_none as _p4d_none,
)
from refmodel.arch.x86.pgtable import (
    p4d_present as _p4d_present,
)
from refmodel.arch.x86.pgtable import (
    pgd_none as _pgd_none,
)
from refmodel.arch.x86.pgtable import (
    pgd_present as _pgd_present,
)
from refmodel.arch.x86.pgtable import (
    pmd_none as _pmd_none,
)
from refmodel.arch.x86.pgtable import (
    pud_none as _pud_none,
)
from refmodel.arch.x86.pgtable import (
    pud_present as _pud_present,
)
from refmodel.arch.x86.pgtable_types import (
    ENTRY_SIZE,
    MASK64,
    P4D_MASK,
    PAGE_SHIFT,
    PGDIR_MASK,
    PMD_MASK,
    PMD_SIZE,
    PTRS_PER_PMD,
    PTRS_PER_PTE,
    PTRS_PER_PUD,
    PUD_MASK,
)
from refmodel.errno import Errno
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmu_gather import mmu_gather
from refmodel.mm.mmzone import pfn_to_page, pglist_data
from refmodel.trace import kernel

F = "mm/memory.c"
MM_H = "include/linux/mm.h"
ENOMEM = int(Errno.ENOMEM)


def _u(x: int) -> int:
    """The value as a C unsigned long."""
    return x & MASK64


# --------------------------------------------------------------------------------------------
# mm->pgtables_bytes (include/linux/mm.h). PTE, PMD and PUD pages are counted; P4D and PGD
# pages never are. mm_pmd_folded / mm_pud_folded are false on x86-64.


@kernel(MM_H)
def mm_pgtables_bytes_init(mm: mm_struct) -> None:
    mm.pgtables_bytes = 0


@kernel(MM_H)
def mm_pgtables_bytes(mm: mm_struct) -> int:
    return mm.pgtables_bytes


@kernel(MM_H)
def mm_inc_nr_ptes(mm: mm_struct) -> None:
    mm.pgtables_bytes += PTRS_PER_PTE * ENTRY_SIZE


@kernel(MM_H)
def mm_dec_nr_ptes(mm: mm_struct) -> None:
    mm.pgtables_bytes -= PTRS_PER_PTE * ENTRY_SIZE


@kernel(MM_H)
def mm_inc_nr_pmds(mm: mm_struct) -> None:
    mm.pgtables_bytes += PTRS_PER_PMD * ENTRY_SIZE


@kernel(MM_H)
def mm_dec_nr_pmds(mm: mm_struct) -> None:
    mm.pgtables_bytes -= PTRS_PER_PMD * ENTRY_SIZE


@kernel(MM_H)
def mm_inc_nr_puds(mm: mm_struct) -> None:
    mm.pgtables_bytes += PTRS_PER_PUD * ENTRY_SIZE


@kernel(MM_H)
def mm_dec_nr_puds(mm: mm_struct) -> None:
    mm.pgtables_bytes -= PTRS_PER_PUD * ENTRY_SIZE


# --------------------------------------------------------------------------------------------
# The slow paths (mm/memory.c). Each returns 0 or -ENOMEM.


@kernel(F)
def __p4d_alloc(pgdat: pglist_data, mm: mm_struct, pgd: int, address: int) -> int:
    """Models mm/memory.c:__p4d_alloc: a new p4d table unless the pgd entry is present by
    now; no pgtables_bytes accounting. Only reached with 5-level paging."""
    new = p4d_alloc_one(pgdat, mm, address)
    if new is None:
        return -ENOMEM
    if _pgd_present(read_entry(pgdat, pgd), pgdat.paging_levels):
        p4d_free(pgdat, mm, new)
    else:
        pgd_populate(pgdat, mm, pgd, new)
    return 0


@kernel(F)
def __pud_alloc(pgdat: pglist_data, mm: mm_struct, p4d: int, address: int) -> int:
    """Models mm/memory.c:__pud_alloc: a new pud table, counted, unless p4d is present."""
    new = pud_alloc_one(pgdat, mm, address)
    if new is None:
        return -ENOMEM
    if not _p4d_present(read_entry(pgdat, p4d)):
        mm_inc_nr_puds(mm)
        p4d_populate(pgdat, mm, p4d, new)
    else:
        pud_free(pgdat, mm, new)
    return 0


@kernel(F)
def __pmd_alloc(pgdat: pglist_data, mm: mm_struct, pud: int, address: int) -> int:
    """Models mm/memory.c:__pmd_alloc: a new pmd table, counted, unless pud is present."""
    new = pmd_alloc_one(pgdat, mm, address)
    if new is None:
        return -ENOMEM
    if not _pud_present(read_entry(pgdat, pud)):
        mm_inc_nr_pmds(mm)
        pud_populate(pgdat, mm, pud, new)
    else:
        pmd_free(pgdat, mm, new)
    return 0


@kernel(F)
def __pte_alloc(pgdat: pglist_data, mm: mm_struct, pmd: int) -> int:
    """Models mm/memory.c:__pte_alloc: a new pte table, counted and populated if the pmd is
    still none (5.10 tests pmd_none here, not !pmd_present), else freed again."""
    new = pte_alloc_one(pgdat, mm)
    if new is None:
        return -ENOMEM
    if _pmd_none(read_entry(pgdat, pmd)):
        mm_inc_nr_ptes(mm)
        pmd_populate(pgdat, mm, pmd, new)
    else:
        pte_free(pgdat, mm, new)
    return 0


# --------------------------------------------------------------------------------------------
# The inline fast paths (include/linux/mm.h)


@kernel(MM_H)
def p4d_alloc(pgdat: pglist_data, mm: mm_struct, pgd: int, address: int) -> int | None:
    """Models include/linux/mm.h:p4d_alloc: the p4d entry, or None if __p4d_alloc failed.
    With 4-level paging pgd_none is always false, so this is p4d_offset (the pgd entry)."""
    if _pgd_none(read_entry(pgdat, pgd), pgdat.paging_levels) and __p4d_alloc(
            pgdat, mm, pgd, address):
        return None
    return p4d_offset(pgdat, pgd, address)


@kernel(MM_H)
def pud_alloc(pgdat: pglist_data, mm: mm_struct, p4d: int, address: int) -> int | None:
    """Models include/linux/mm.h:pud_alloc(mm, p4d, address) (it takes the p4d entry)."""
    if _p4d_none(read_entry(pgdat, p4d)) and __pud_alloc(pgdat, mm, p4d, address):
        return None
    return pud_offset(pgdat, p4d, address)


@kernel(MM_H)
def pmd_alloc(pgdat: pglist_data, mm: mm_struct, pud: int, address: int) -> int | None:
    """Models include/linux/mm.h:pmd_alloc(mm, pud, address)."""
    if _pud_none(read_entry(pgdat, pud)) and __pmd_alloc(pgdat, mm, pud, address):
        return None
    return pmd_offset(pgdat, pud, address)


@kernel(MM_H)
def pte_alloc(pgdat: pglist_data, mm: mm_struct, pmd: int) -> int:
    """Models the include/linux/mm.h macro pte_alloc(mm, pmd): 0 on success, non-zero (1) on
    failure. It returns no pointer and maps nothing: it only makes sure a pte table exists."""
    return int(_pmd_none(read_entry(pgdat, pmd)) and __pte_alloc(pgdat, mm, pmd) != 0)


@kernel(MM_H)
def pte_alloc_map(pgdat: pglist_data, mm: mm_struct, pmd: int, address: int) -> int | None:
    """Models the include/linux/mm.h macro pte_alloc_map: the pte entry, or None."""
    if pte_alloc(pgdat, mm, pmd):
        return None
    return pte_offset_map(pgdat, pmd, address)


# --------------------------------------------------------------------------------------------
# Teardown (mm/memory.c). addr/floor 0 mean the bottom, end/ceiling 0 the top (2**64).


@kernel(F)
def free_pte_range(pgdat: pglist_data, tlb: mmu_gather, pmd: int, addr: int) -> None:
    """Models mm/memory.c:free_pte_range: clear the pmd, free the pte page through the
    gather, uncount it. Whatever ptes it still holds are not looked at."""
    token = pfn_to_page(pgdat, pmd_page_vaddr(read_entry(pgdat, pmd)) >> PAGE_SHIFT)
    pmd_clear(pgdat, pmd)
    pte_free_tlb(pgdat, tlb, token, addr)
    mm_dec_nr_ptes(tlb.mm)


def _keeps_table(start: int, end: int, floor: int, ceiling: int, mask: int) -> bool:
    """The common test after each level's loop: the table is kept unless its whole span
    lies inside [floor, ceiling)."""
    start &= mask
    if start < floor:
        return True
    if ceiling:
        ceiling &= mask
        if not ceiling:
            return True
    return _u(end - 1) > _u(ceiling - 1)


@kernel(F)
def free_pmd_range(pgdat: pglist_data, tlb: mmu_gather, pud: int, addr: int, end: int,
                   floor: int, ceiling: int) -> None:
    """Models mm/memory.c:free_pmd_range."""
    start = addr
    pmd = pmd_offset(pgdat, pud, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        if not pmd_none_or_clear_bad(pgdat, pmd):
            free_pte_range(pgdat, tlb, pmd, addr)
        pmd += ENTRY_SIZE
        addr = next_
        if addr == end:
            break
    if _keeps_table(start, end, floor, ceiling, PUD_MASK):
        return
    pmd = pmd_offset(pgdat, pud, start & PUD_MASK)
    pud_clear(pgdat, pud)
    pmd_free_tlb(pgdat, tlb, pmd, start)
    mm_dec_nr_pmds(tlb.mm)


@kernel(F)
def free_pud_range(pgdat: pglist_data, tlb: mmu_gather, p4d: int, addr: int, end: int,
                   floor: int, ceiling: int) -> None:
    """Models mm/memory.c:free_pud_range."""
    start = addr
    pud = pud_offset(pgdat, p4d, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        if not pud_none_or_clear_bad(pgdat, pud):
            free_pmd_range(pgdat, tlb, pud, addr, next_, floor, ceiling)
        pud += ENTRY_SIZE
        addr = next_
        if addr == end:
            break
    if _keeps_table(start, end, floor, ceiling, P4D_MASK):
        return
    pud = pud_offset(pgdat, p4d, start & P4D_MASK)
    _p4d_clear(pgdat, p4d)
    pud_free_tlb(pgdat, tlb, pud, start)
    mm_dec_nr_puds(tlb.mm)


@kernel(F)
def free_p4d_range(pgdat: pglist_data, tlb: mmu_gather, pgd: int, addr: int, end: int,
                   floor: int, ceiling: int) -> None:
    """Models mm/memory.c:free_p4d_range. With 4-level paging its one "p4d entry" is the
    pgd entry, the pgd_clear is a no-op and p4d_free_tlb frees nothing."""
    start = addr
    p4d = p4d_offset(pgdat, pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        if not p4d_none_or_clear_bad(pgdat, p4d):
            free_pud_range(pgdat, tlb, p4d, addr, next_, floor, ceiling)
        p4d += ENTRY_SIZE
        addr = next_
        if addr == end:
            break
    if _keeps_table(start, end, floor, ceiling, PGDIR_MASK(pgdat.paging_levels)):
        return
    p4d = p4d_offset(pgdat, pgd, start & PGDIR_MASK(pgdat.paging_levels))
    pgd_clear(pgdat, pgd)
    p4d_free_tlb(pgdat, tlb, p4d, start)


@kernel(F)
def free_pgd_range(pgdat: pglist_data, tlb: mmu_gather, addr: int, end: int, floor: int,
                   ceiling: int) -> None:
    """Models mm/memory.c:free_pgd_range: trim [addr, end) to whole pmds inside
    [floor, ceiling), then free every pte table in it and every higher table whose span the
    range covers."""
    addr &= PMD_MASK
    if addr < floor:
        addr = _u(addr + PMD_SIZE)
        if not addr:
            return
    if ceiling:
        ceiling &= PMD_MASK
        if not ceiling:
            return
    if _u(end - 1) > _u(ceiling - 1):
        end = _u(end - PMD_SIZE)
    if addr > _u(end - 1):
        return
    levels = pgdat.paging_levels
    pgd = pgd_offset(tlb.mm, addr)
    while True:
        next_ = pgd_addr_end(addr, end, levels)
        if not pgd_none_or_clear_bad(pgdat, pgd):
            free_p4d_range(pgdat, tlb, pgd, addr, next_, floor, ceiling)
        pgd += ENTRY_SIZE
        addr = next_
        if addr == end:
            break


@kernel(F)
def free_pgtables(pgdat: pglist_data, tlb: mmu_gather, vmas: list[tuple[int, int]],
                  floor: int, ceiling: int) -> None:
    """Models mm/memory.c:free_pgtables over a VMA list given as sorted (vm_start, vm_end):
    VMAs less than a PMD_SIZE apart are freed together, each group bounded by the next
    group's start (or ``ceiling``) and the same ``floor``."""
    i = 0
    while i < len(vmas):
        addr, vm_end = vmas[i]
        j = i
        while j + 1 < len(vmas) and vmas[j + 1][0] <= vm_end + PMD_SIZE:
            j += 1
            vm_end = vmas[j][1]
        nxt = vmas[j + 1][0] if j + 1 < len(vmas) else ceiling
        free_pgd_range(pgdat, tlb, addr, vm_end, floor, nxt)
        i = j + 1

