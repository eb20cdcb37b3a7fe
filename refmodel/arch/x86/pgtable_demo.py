"""Populating one user mapping down to set_pte_at, for ``refmodel trace`` and for tests.

Not a kernel function: :func:`populate_pte` is the page-table half of what 5.10's
__handle_mm_fault and do_anonymous_page do for a write fault on a fresh anonymous page
(p4d_alloc, pud_alloc, pmd_alloc in __handle_mm_fault; pte_alloc, then pte_offset_map in
do_anonymous_page), and :func:`demo_populate` adds the page, mk_pte and set_pte_at. The real
fault path (VMAs, the zero page, rmap, the LRU) comes with the fault handler.
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable import (
    mk_pte,
    pgd_alloc,
    pgd_offset,
    pte_mkdirty,
    pte_mkwrite,
    pte_offset_map,
    set_pte_at,
)
from refmodel.arch.x86.pgtable_types import vm_get_page_prot
from refmodel.mm import gfp as G
from refmodel.mm.memory import p4d_alloc, pmd_alloc, pte_alloc, pud_alloc
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_alloc import alloc_pages
from refmodel.mm.vm_flags import VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE

DEMO_ADDRESS = 0x7FFFF7FFE000  # the page just below 5.10's default mmap_base


def populate_pte(pgdat: pglist_data, mm: mm_struct, address: int) -> int | None:
    """Make sure every table down to the pte of ``address`` exists; the pte's address, or
    None when a table allocation failed (where 5.10's fault path returns VM_FAULT_OOM)."""
    pgd = pgd_offset(mm, address)
    p4d = p4d_alloc(pgdat, mm, pgd, address)
    if p4d is None:
        return None
    pud = pud_alloc(pgdat, mm, p4d, address)
    if pud is None:
        return None
    pmd = pmd_alloc(pgdat, mm, pud, address)
    if pmd is None:
        return None
    if pte_alloc(pgdat, mm, pmd):
        return None
    return pte_offset_map(pgdat, pmd, address)


def demo_populate(pgdat: pglist_data, levels: int, address: int = DEMO_ADDRESS) -> mm_struct:
    """A new mm (pgd_alloc), then one writable anonymous page mapped at ``address`` as a
    write fault would map it. Returns the mm; raises MemoryError if memory ran out."""
    if levels != pgdat.paging_levels:
        raise ValueError(f"the machine was booted with {pgdat.paging_levels}-level paging")
    mm = mm_struct(paging_levels=levels)
    if pgd_alloc(pgdat, mm) is None:
        raise MemoryError("pgd_alloc failed")
    ptep = populate_pte(pgdat, mm, address)
    if ptep is None:
        raise MemoryError("page-table allocation failed")
    page = alloc_pages(pgdat, G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO, 0)
    if page is None:
        raise MemoryError("no page to map")
    vm_flags = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE
    entry = mk_pte(page, vm_get_page_prot(vm_flags))
    entry = pte_mkwrite(pte_mkdirty(entry))  # do_anonymous_page, VM_WRITE
    set_pte_at(pgdat, mm, address, ptep, entry)
    return mm
