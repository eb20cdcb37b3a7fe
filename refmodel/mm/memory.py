"""Page-table level allocation and teardown (mm/memory.c, include/linux/mm.h, 5.10).

The inline helpers p4d_alloc / pud_alloc / pmd_alloc / pte_alloc of include/linux/mm.h test
the entry above and call the slow paths __p4d_alloc / __pud_alloc / __pmd_alloc /
__pte_alloc of mm/memory.c only when it is empty; those allocate the lower table, re-check
the entry (under the page-table lock in 5.10), account it in mm->pgtables_bytes and populate
the entry, or free the new table if the entry was filled meanwhile. free_pgd_range and its
per-level helpers free the tables a range no longer needs.

Issue 6 adds the pages behind the ptes: vm_normal_page, the mm counters (rss_stat), unmapping
(unmap_vmas → unmap_single_vma → unmap_page_range → zap_p4d/pud/pmd/pte_range, pages freed
through the mmu_gather) and fork's copy_page_range → copy_p4d/pud/pmd/pte_range →
copy_present_pte. The fault handlers of mm/memory.c are in refmodel.mm.memory_fault.

Locks and barriers are not modelled (one CPU). free_pgtables walks the VMA list (no hugetlb
VMAs) and unlinks each VMA from its anon_vmas and its file first, as 5.10 does; the file
half of that (unlink_file_vma, __remove_shared_vm_struct of mm/mmap.c) lives here for it,
and refmodel.mm.mmap re-exports both.
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
    pmd_none_or_trans_huge_or_clear_bad,
    pmd_offset,
    pmd_page_vaddr,
    pmd_populate,
    pte_alloc_one,
    pte_clear_not_present_full,
    pte_dirty,
    pte_free,
    pte_free_tlb,
    pte_mkclean,
    pte_mkold,
    pte_none,
    pte_offset_map,
    pte_pfn,
    pte_present,
    pte_special,
    pte_write,
    pte_wrprotect,
    pte_young,
    ptep_get_and_clear_full,
    ptep_set_wrprotect,
    pud_addr_end,
    pud_alloc_one,
    pud_clear,
    pud_free,
    pud_free_tlb,
    pud_none_or_clear_bad,
    pud_offset,
    pud_populate,
    read_entry,
    set_pte_at,
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
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PGDIR_MASK,
    PMD_MASK,
    PMD_SIZE,
    PTRS_PER_PMD,
    PTRS_PER_PTE,
    PTRS_PER_PUD,
    PUD_MASK,
)
from refmodel.bugs import KernelBug
from refmodel.config import KERNEL_START_PFN
from refmodel.errno import Errno
from refmodel.mm.mm_counters import (  # include/linux/mm.h, modelled there (rmap uses them)
    add_mm_counter as add_mm_counter,
)
from refmodel.mm.mm_counters import dec_mm_counter as dec_mm_counter
from refmodel.mm.mm_counters import get_mm_counter as get_mm_counter
from refmodel.mm.mm_counters import get_mm_rss as get_mm_rss
from refmodel.mm.mm_counters import inc_mm_counter as inc_mm_counter
from refmodel.mm.mm_counters import mm_counter as mm_counter
from refmodel.mm.mm_counters import mm_counter_file as mm_counter_file
from refmodel.mm.mm_types import MM_ANONPAGES as MM_ANONPAGES
from refmodel.mm.mm_types import MM_FILEPAGES as MM_FILEPAGES
from refmodel.mm.mm_types import MM_SHMEMPAGES as MM_SHMEMPAGES
from refmodel.mm.mm_types import MM_SWAPENTS as MM_SWAPENTS
from refmodel.mm.mm_types import NR_MM_COUNTERS as NR_MM_COUNTERS
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mmu_gather import __tlb_remove_page_size, mmu_gather, tlb_flush_mmu
from refmodel.mm.mmzone import pfn_to_page, pglist_data
from refmodel.mm.page_writeback import set_page_dirty
from refmodel.mm.rmap import page_dup_rmap, page_remove_rmap, unlink_anon_vmas
from refmodel.mm.swap import get_page as get_page  # include/linux/mm.h, modelled in swap.py
from refmodel.mm.swap import mark_page_accessed
from refmodel.mm.swap import put_page as put_page  # include/linux/mm.h, modelled in swap.py
from refmodel.mm.swap_state import free_swap_and_cache
from refmodel.mm.swapfile import swap_duplicate
from refmodel.mm.swapops import non_swap_entry, pte_to_swp_entry
from refmodel.mm.types import PAGE_MAPPING_ANON, Page, PageFlags
from refmodel.mm.vm_flags import (
    VM_HUGETLB,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_SEQ_READ,
    VM_SHARED,
)
from refmodel.trace import kernel

F = "mm/memory.c"
MM_H = "include/linux/mm.h"
LINUX_PGT_H = "include/linux/pgtable.h"
PG_swapbacked = int(PageFlags.PG_swapbacked)
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
# The inline fast paths (include/linux/mm.h). They run on every fault: read_entry is inlined.


@kernel(MM_H)
def p4d_alloc(pgdat: pglist_data, mm: mm_struct, pgd: int, address: int) -> int | None:
    """Models include/linux/mm.h:p4d_alloc: the p4d entry, or None if __p4d_alloc failed.
    With 4-level paging pgd_none is always false, so this is p4d_offset (the pgd entry)."""
    try:  # READ_ONCE(*pgd); a missing entry (rare on this path) reads as 0
        pgdval = pgdat.pgtables[pgd >> PAGE_SHIFT][(pgd >> 3) & 511]
    except KeyError:
        pgdval = 0
    if _pgd_none(pgdval, pgdat.paging_levels) and __p4d_alloc(pgdat, mm, pgd, address):
        return None
    return p4d_offset(pgdat, pgd, address)


@kernel(MM_H)
def pud_alloc(pgdat: pglist_data, mm: mm_struct, p4d: int, address: int) -> int | None:
    """Models include/linux/mm.h:pud_alloc(mm, p4d, address) (it takes the p4d entry)."""
    try:  # READ_ONCE(*p4d); a missing entry (rare on this path) reads as 0
        p4dval = pgdat.pgtables[p4d >> PAGE_SHIFT][(p4d >> 3) & 511]
    except KeyError:
        p4dval = 0
    if _p4d_none(p4dval) and __pud_alloc(pgdat, mm, p4d, address):
        return None
    return pud_offset(pgdat, p4d, address)


@kernel(MM_H)
def pmd_alloc(pgdat: pglist_data, mm: mm_struct, pud: int, address: int) -> int | None:
    """Models include/linux/mm.h:pmd_alloc(mm, pud, address)."""
    try:  # READ_ONCE(*pud); a missing entry (rare on this path) reads as 0
        pudval = pgdat.pgtables[pud >> PAGE_SHIFT][(pud >> 3) & 511]
    except KeyError:
        pudval = 0
    if _pud_none(pudval) and __pmd_alloc(pgdat, mm, pud, address):
        return None
    return pmd_offset(pgdat, pud, address)


@kernel(MM_H)
def pte_alloc(pgdat: pglist_data, mm: mm_struct, pmd: int) -> int:
    """Models the include/linux/mm.h macro pte_alloc(mm, pmd): 0 on success, non-zero (1) on
    failure. It returns no pointer and maps nothing: it only makes sure a pte table exists."""
    try:  # READ_ONCE(*pmd); a missing entry (rare on this path) reads as 0
        pmdval = pgdat.pgtables[pmd >> PAGE_SHIFT][(pmd >> 3) & 511]
    except KeyError:
        pmdval = 0
    return 1 if _pmd_none(pmdval) and __pte_alloc(pgdat, mm, pmd) else 0


@kernel(MM_H)
def pte_offset_map_lock(pgdat: pglist_data, mm: mm_struct, pmd: int, address: int) -> int:
    """Models the include/linux/mm.h macro pte_offset_map_lock: pte_offset_map (the pte
    table lock it also takes is not modelled: one CPU)."""
    return pte_offset_map(pgdat, pmd, address)


@kernel(MM_H)
def pte_alloc_map_lock(pgdat: pglist_data, mm: mm_struct, pmd: int,
                       address: int) -> int | None:
    """Models the include/linux/mm.h macro pte_alloc_map_lock: pte_alloc, then
    pte_offset_map_lock; None if the table could not be allocated."""
    if pte_alloc(pgdat, mm, pmd):
        return None
    return pte_offset_map_lock(pgdat, mm, pmd, address)


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
    # Unsigned long arithmetic, written for plain ints as every munmap comes here: the
    # unsigned tests end - 1 > ceiling - 1 and addr > end - 1 are made without wrapping
    # (0 stands for 2**64).
    addr &= PMD_MASK
    if addr < floor:
        addr = (addr + PMD_SIZE) & MASK64
        if not addr:
            return
    if ceiling:
        ceiling &= PMD_MASK
        if not ceiling:
            return
        if not end or end > ceiling:
            end = (end - PMD_SIZE) & MASK64
    if end and addr >= end:
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
def free_pgtables(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct | None,
                  floor: int, ceiling: int) -> None:
    """Models mm/memory.c:free_pgtables over the VMA list from ``vma`` (vm_next links):
    each VMA leaves rmap (unlink_anon_vmas) and its file (unlink_file_vma) first; VMAs less
    than a PMD_SIZE apart have their tables freed together, each group bounded by the next
    VMA's start (or ``ceiling``) and the same ``floor``."""
    while vma is not None:
        nxt = vma.vm_next
        addr = vma.vm_start
        unlink_anon_vmas(vma)
        unlink_file_vma(vma)
        while nxt is not None and nxt.vm_start <= vma.vm_end + PMD_SIZE:
            vma = nxt
            nxt = vma.vm_next
            unlink_anon_vmas(vma)
            unlink_file_vma(vma)
        free_pgd_range(pgdat, tlb, addr, vma.vm_end, floor,
                       nxt.vm_start if nxt is not None else ceiling)
        vma = nxt


@kernel("mm/mmap.c")
def __remove_shared_vm_struct(vma: vm_area_struct) -> None:
    """Models mm/mmap.c:__remove_shared_vm_struct: out of the file's i_mmap tree."""
    if vma.vm_file is not None:
        m = vma.vm_file.f_mapping
        m.i_mmap[:] = [v for v in m.i_mmap if v is not vma]


@kernel("mm/mmap.c")
def unlink_file_vma(vma: vm_area_struct) -> None:
    """Models mm/mmap.c:unlink_file_vma (free_pgtables' per-VMA unlink): only a file VMA
    has an i_mmap tree to leave."""
    if vma.vm_file is not None:
        __remove_shared_vm_struct(vma)



# --------------------------------------------------------------------------------------------
# Pages behind ptes, and the mm counters (mm/memory.c, include/linux/mm.h, 5.10)


# empty_zero_page (arch/x86/kernel/head_64.S, in .bss..page_aligned of the kernel image):
# the model places it at a fixed pfn inside the reserved kernel image, below the pfns where
# swapper_pg_dir's lower tables sit (refmodel.arch.x86.pgtable.SWAPPER_TABLES_PFN).
ZERO_PFN = KERNEL_START_PFN + 0x400


@kernel(LINUX_PGT_H)
def my_zero_pfn(addr: int) -> int:
    """Models include/linux/pgtable.h:my_zero_pfn (no coloured zero pages on x86)."""
    return ZERO_PFN


@kernel(LINUX_PGT_H)
def is_zero_pfn(pfn: int) -> bool:
    return pfn == ZERO_PFN


@kernel(MM_H)
def is_cow_mapping(flags: int) -> bool:
    """Models include/linux/mm.h:is_cow_mapping: private and may be written."""
    return (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


@kernel(F)
def vm_normal_page(pgdat: pglist_data, vma: vm_area_struct, addr: int, pte: int) -> Page | None:
    """Models mm/memory.c:vm_normal_page (CONFIG_ARCH_HAS_PTE_SPECIAL): the struct page
    behind a present pte, or None for a special pte (the zero page, VM_PFNMAP)."""
    pfn = pte_pfn(pte)  # (undoes the PROT_NONE pfn inversion)
    if pte_special(pte):
        if vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP):
            return None
        if is_zero_pfn(pfn):
            return None
        raise KernelBug("print_bad_pte", f"special pte {pte:#x} at {addr:#x} in {vma}")
    page = pgdat.mem_map.get(pfn)
    if page is None:
        page = pfn_to_page(pgdat, pfn)
    return page


@kernel(F)
def add_mm_rss_vec(mm: mm_struct, rss: list[int]) -> None:
    """Models mm/memory.c:add_mm_rss_vec: add_mm_counter for each counter that moved
    (sync_mm_rss is left out: the model keeps no per-task rss cache)."""
    for i in range(NR_MM_COUNTERS):
        if rss[i]:
            add_mm_counter(mm, i, rss[i])


# --------------------------------------------------------------------------------------------
# Unmapping pages (mm/memory.c: unmap_vmas → unmap_single_vma → unmap_page_range →
# zap_p4d_range → zap_pud_range → zap_pmd_range → zap_pte_range)


@kernel(F)
def zap_pte_range(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct, pmd: int,
                  addr: int, end: int) -> int:
    """Models mm/memory.c:zap_pte_range: clear every present pte of [addr, end)
    (ptep_get_and_clear_full); a dirty file pte dirties its page (and forces a flush of the
    gathered pages after this table, as 5.10 does); the rss counters drop, the map count
    drops, the page goes to the mmu_gather (freed at the flush). A full gather stops the
    loop: flush, then go on. A swap pte drops its slot reference (free_swap_and_cache) and
    is cleared (pte_clear_not_present_full). Returns the address reached (end)."""
    mm = tlb.mm
    fullmm = tlb.fullmm
    while True:  # again:
        force_flush = False
        rss = [0, 0, 0, 0]
        pte = pte_offset_map_lock(pgdat, mm, pmd, addr)
        entries = pgdat.pgtables[pte >> PAGE_SHIFT]  # the table *pte reads (in line)
        while True:
            ptent = entries.get((pte >> 3) & 511, 0)
            if not pte_none(ptent):
                if pte_present(ptent):
                    page = vm_normal_page(pgdat, vma, addr, ptent)
                    ptent = ptep_get_and_clear_full(pgdat, mm, addr, pte, fullmm)
                    # (tlb_remove_tlb_entry: no TLB in the model)
                    if page is not None:
                        if not page.mapping_flags & PAGE_MAPPING_ANON:
                            if pte_dirty(ptent):
                                force_flush = True
                                set_page_dirty(page)
                            if pte_young(ptent) and not vma.vm_flags & VM_SEQ_READ:
                                mark_page_accessed(pgdat, page)
                        rss[mm_counter(page)] -= 1
                        page_remove_rmap(pgdat, page, False)
                        if __tlb_remove_page_size(pgdat, tlb, page, PAGE_SIZE):
                            force_flush = True
                            addr += PAGE_SIZE
                            break
                else:
                    # a swap pte: the slot loses this reference (and its cache page, if
                    # nothing else needs it)
                    entry = pte_to_swp_entry(ptent)
                    if non_swap_entry(entry):
                        raise KernelBug("print_bad_pte", f"non-swap entry {ptent:#x}")
                    rss[MM_SWAPENTS] -= 1
                    free_swap_and_cache(pgdat, entry)
                    pte_clear_not_present_full(pgdat, mm, addr, pte, fullmm)
            pte += ENTRY_SIZE
            addr += PAGE_SIZE
            if addr == end:
                break
        add_mm_rss_vec(mm, rss)
        if force_flush:
            tlb_flush_mmu(pgdat, tlb)
        if addr == end:
            return addr


@kernel(F)
def zap_pmd_range(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct, pud: int,
                  addr: int, end: int) -> int:
    """Models mm/memory.c:zap_pmd_range (no THP)."""
    pmd = pmd_offset(pgdat, pud, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        if not pmd_none_or_trans_huge_or_clear_bad(pgdat, pmd):
            next_ = zap_pte_range(pgdat, tlb, vma, pmd, addr, next_)
        pmd += ENTRY_SIZE
        addr = next_
        if addr == end:
            return addr


@kernel(F)
def zap_pud_range(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct, p4d: int,
                  addr: int, end: int) -> int:
    """Models mm/memory.c:zap_pud_range."""
    pud = pud_offset(pgdat, p4d, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        if not pud_none_or_clear_bad(pgdat, pud):
            next_ = zap_pmd_range(pgdat, tlb, vma, pud, addr, next_)
        pud += ENTRY_SIZE
        addr = next_
        if addr == end:
            return addr


@kernel(F)
def zap_p4d_range(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct, pgd: int,
                  addr: int, end: int) -> int:
    """Models mm/memory.c:zap_p4d_range."""
    p4d = p4d_offset(pgdat, pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        if not p4d_none_or_clear_bad(pgdat, p4d):
            next_ = zap_pud_range(pgdat, tlb, vma, p4d, addr, next_)
        p4d += ENTRY_SIZE
        addr = next_
        if addr == end:
            return addr


@kernel(F)
def unmap_page_range(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct, addr: int,
                     end: int) -> None:
    """Models mm/memory.c:unmap_page_range (tlb_start_vma / tlb_end_vma do nothing the
    model observes)."""
    pgd = pgd_offset(tlb.mm, addr)
    levels = pgdat.paging_levels
    while True:
        next_ = pgd_addr_end(addr, end, levels)
        if not pgd_none_or_clear_bad(pgdat, pgd):
            next_ = zap_p4d_range(pgdat, tlb, vma, pgd, addr, next_)
        pgd += ENTRY_SIZE
        addr = next_
        if addr == end:
            return


@kernel(F)
def unmap_single_vma(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct,
                     start_addr: int, end_addr: int) -> None:
    """Models mm/memory.c:unmap_single_vma: the part of [start_addr, end_addr) inside vma
    (no hugetlb, no uprobes, no PFN tracking)."""
    # (max and min of two written as comparisons: no builtin call per VMA unmapped)
    vm_start = vma.vm_start
    vm_end = vma.vm_end
    start = vm_start if vm_start > start_addr else start_addr
    if start >= vm_end:
        return
    end = vm_end if vm_end < end_addr else end_addr
    if end <= vm_start:
        return
    if start != end:
        unmap_page_range(pgdat, tlb, vma, start, end)


@kernel(F)
def unmap_vmas(pgdat: pglist_data, tlb: mmu_gather, vma: vm_area_struct | None,
               start_addr: int, end_addr: int) -> None:
    """Models mm/memory.c:unmap_vmas: unmap every VMA of the vm_next chain from ``vma``
    that starts below end_addr."""
    while vma is not None and vma.vm_start < end_addr:
        unmap_single_vma(pgdat, tlb, vma, start_addr, end_addr)
        vma = vma.vm_next


# --------------------------------------------------------------------------------------------
# fork: copy_page_range (mm/memory.c) → copy_p4d_range → copy_pud_range → copy_pmd_range →
# copy_pte_range → copy_present_pte


@kernel(F)
def copy_present_page(dst_vma: vm_area_struct, src_vma: vm_area_struct, addr: int,
                      page: Page) -> int:
    """Models mm/memory.c:copy_present_page: 1 ("share it") unless a COW page may be pinned
    for DMA; nothing pins pages in the model (no GUP), so always 1."""
    if not is_cow_mapping(src_vma.vm_flags):
        return 1
    return 1  # src_mm->has_pinned is never set: no page may be pinned


@kernel(F)
def copy_present_pte(pgdat: pglist_data, dst_vma: vm_area_struct, src_vma: vm_area_struct,
                     dst_pte: int, src_pte: int, addr: int, rss: list[int]) -> int:
    """Models mm/memory.c:copy_present_pte (5.10): share the page (one more reference and
    mapping, counted in the child's rss); a writable pte of a COW mapping is write-protected
    in both parent and child; a shared mapping's child pte is clean; the child's pte is old.
    Returns 0."""
    vm_flags = src_vma.vm_flags
    pte = read_entry(pgdat, src_pte)
    page = vm_normal_page(pgdat, src_vma, addr, pte)
    if page is not None:
        retval = copy_present_page(dst_vma, src_vma, addr, page)
        if retval <= 0:
            return retval
        get_page(page)
        page_dup_rmap(page, False)
        rss[mm_counter(page)] += 1
    if is_cow_mapping(vm_flags) and pte_write(pte):
        src_mm = src_vma.vm_mm
        assert src_mm is not None
        ptep_set_wrprotect(pgdat, src_mm, addr, src_pte)
        pte = pte_wrprotect(pte)
    if vm_flags & VM_SHARED:
        pte = pte_mkclean(pte)
    pte = pte_mkold(pte)
    dst_mm = dst_vma.vm_mm
    assert dst_mm is not None
    set_pte_at(pgdat, dst_mm, addr, dst_pte, pte)
    return 0


@kernel(F)
def copy_nonpresent_pte(pgdat: pglist_data, dst_vma: vm_area_struct, src_vma: vm_area_struct,
                        dst_pte: int, pte: int, addr: int, rss: list[int]) -> int:
    """Models mm/memory.c:copy_nonpresent_pte for a swap pte: the child's pte names the
    same slot (swap_duplicate: one more swap_map reference), counted in MM_SWAPENTS.
    (Migration and device entries do not arise in the model.) 0."""
    entry = pte_to_swp_entry(pte)
    if non_swap_entry(entry):
        raise KernelBug("model: non-swap entries are not modelled", f"pte {pte:#x}")
    if swap_duplicate(pgdat, entry) < 0:
        raise KernelBug("copy_nonpresent_pte: swap_duplicate failed", f"pte {pte:#x}")
    rss[MM_SWAPENTS] += 1
    dst_mm = dst_vma.vm_mm
    assert dst_mm is not None
    set_pte_at(pgdat, dst_mm, addr, dst_pte, pte)
    return 0


@kernel(F)
def copy_pte_range(pgdat: pglist_data, dst_vma: vm_area_struct, src_vma: vm_area_struct,
                   dst_pmd: int, src_pmd: int, addr: int, end: int) -> int:
    """Models mm/memory.c:copy_pte_range: allocate the child's pte table, copy every
    present pte, add the rss. 0 or -ENOMEM."""
    dst_mm = dst_vma.vm_mm
    assert dst_mm is not None
    dst_pte = pte_alloc_map_lock(pgdat, dst_mm, dst_pmd, addr)
    if dst_pte is None:
        return -ENOMEM
    src_pte = pte_offset_map(pgdat, src_pmd, addr)
    src_entries = pgdat.pgtables[src_pte >> PAGE_SHIFT]
    rss = [0, 0, 0, 0]
    idx = (src_pte & ~PAGE_MASK) >> 3
    while True:
        pte = src_entries.get(idx, 0)  # *src_pte
        if not pte_none(pte):
            if not pte_present(pte):
                copy_nonpresent_pte(pgdat, dst_vma, src_vma, dst_pte, pte, addr, rss)
            else:
                copy_present_pte(pgdat, dst_vma, src_vma, dst_pte, src_pte, addr, rss)
        dst_pte += ENTRY_SIZE
        src_pte += ENTRY_SIZE
        idx += 1
        addr += PAGE_SIZE
        if addr == end:
            break
    add_mm_rss_vec(dst_mm, rss)
    return 0


@kernel(F)
def copy_pmd_range(pgdat: pglist_data, dst_vma: vm_area_struct, src_vma: vm_area_struct,
                   dst_pud: int, src_pud: int, addr: int, end: int) -> int:
    """Models mm/memory.c:copy_pmd_range (no THP)."""
    dst_mm = dst_vma.vm_mm
    assert dst_mm is not None
    dst_pmd = pmd_alloc(pgdat, dst_mm, dst_pud, addr)
    if dst_pmd is None:
        return -ENOMEM
    src_pmd = pmd_offset(pgdat, src_pud, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        if not pmd_none_or_clear_bad(pgdat, src_pmd):
            if copy_pte_range(pgdat, dst_vma, src_vma, dst_pmd, src_pmd, addr, next_):
                return -ENOMEM
        dst_pmd += ENTRY_SIZE
        src_pmd += ENTRY_SIZE
        addr = next_
        if addr == end:
            return 0


@kernel(F)
def copy_pud_range(pgdat: pglist_data, dst_vma: vm_area_struct, src_vma: vm_area_struct,
                   dst_p4d: int, src_p4d: int, addr: int, end: int) -> int:
    """Models mm/memory.c:copy_pud_range."""
    dst_mm = dst_vma.vm_mm
    assert dst_mm is not None
    dst_pud = pud_alloc(pgdat, dst_mm, dst_p4d, addr)
    if dst_pud is None:
        return -ENOMEM
    src_pud = pud_offset(pgdat, src_p4d, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        if not pud_none_or_clear_bad(pgdat, src_pud):
            if copy_pmd_range(pgdat, dst_vma, src_vma, dst_pud, src_pud, addr, next_):
                return -ENOMEM
        dst_pud += ENTRY_SIZE
        src_pud += ENTRY_SIZE
        addr = next_
        if addr == end:
            return 0


@kernel(F)
def copy_p4d_range(pgdat: pglist_data, dst_vma: vm_area_struct, src_vma: vm_area_struct,
                   dst_pgd: int, src_pgd: int, addr: int, end: int) -> int:
    """Models mm/memory.c:copy_p4d_range."""
    dst_mm = dst_vma.vm_mm
    assert dst_mm is not None
    dst_p4d = p4d_alloc(pgdat, dst_mm, dst_pgd, addr)
    if dst_p4d is None:
        return -ENOMEM
    src_p4d = p4d_offset(pgdat, src_pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        if not p4d_none_or_clear_bad(pgdat, src_p4d):
            if copy_pud_range(pgdat, dst_vma, src_vma, dst_p4d, src_p4d, addr, next_):
                return -ENOMEM
        dst_p4d += ENTRY_SIZE
        src_p4d += ENTRY_SIZE
        addr = next_
        if addr == end:
            return 0


@kernel(F)
def copy_page_range(pgdat: pglist_data, dst_vma: vm_area_struct,
                    src_vma: vm_area_struct) -> int:
    """Models mm/memory.c:copy_page_range(dst_vma, src_vma) (5.10): a VMA without an
    anon_vma (and not hugetlb/PFNMAP/MIXEDMAP) is skipped, since faults refill it; else
    every present pte is copied. 0 or -ENOMEM."""
    if (not src_vma.vm_flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP)
            and src_vma.anon_vma is None):
        return 0
    # is_cow: in 5.10 only the mmu notifier range and write_protect_seq (not modelled) use it
    is_cow_mapping(src_vma.vm_flags)
    addr = src_vma.vm_start
    end = src_vma.vm_end
    dst_mm, src_mm = dst_vma.vm_mm, src_vma.vm_mm
    assert dst_mm is not None and src_mm is not None
    dst_pgd = pgd_offset(dst_mm, addr)
    src_pgd = pgd_offset(src_mm, addr)
    levels = pgdat.paging_levels
    while True:
        next_ = pgd_addr_end(addr, end, levels)
        if not pgd_none_or_clear_bad(pgdat, src_pgd):
            if copy_p4d_range(pgdat, dst_vma, src_vma, dst_pgd, src_pgd, addr, next_):
                return -ENOMEM
        dst_pgd += ENTRY_SIZE
        src_pgd += ENTRY_SIZE
        addr = next_
        if addr == end:
            return 0
