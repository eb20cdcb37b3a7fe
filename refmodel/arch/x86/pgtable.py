"""x86-64 page-table entries, walking helpers and table allocation (5.10).

Models arch/x86/include/asm/pgtable.h, pgtable_64.h, pgtable-invert.h, pgalloc.h,
include/linux/pgtable.h, include/asm-generic/pgalloc.h and arch/x86/mm/pgtable.c; each
function is registered under the file that defines it in 5.10.

Representation. A table is an ordinary order-0 page from the buddy allocator; its 512
entries live sparsely in ``pgdat.pgtables[table_pfn]`` (a missing index is a zero entry). A
pointer to an entry (``pgd_t *``, ``pte_t *``, ...) is the entry's *physical* address,
``(table_pfn << PAGE_SHIFT) + index * 8``; 5.10 uses the direct-map virtual address of the
same byte, which is that plus PAGE_OFFSET. Entry values are the 64-bit words 5.10 stores.
Storing into a page that is not a table is a model bug (``KernelBug``); reading one gives 0.

Out of scope: huge (PSE) entries at pud/pmd level (THP, hugetlb, 1G direct map), PTI's user
copy of the pgd (CONFIG_PAGE_TABLE_ISOLATION off, so PGD_ALLOCATION_ORDER is 0), paravirt
hooks (native), split page-table locks, 32-bit PAE's preallocated pmds.

swapper_pg_dir. pgd_ctor copies the kernel half (slots KERNEL_PGD_BOUNDARY..511) from
swapper_pg_dir. The model does not build the kernel's own tables: swapper_pg_dir's kernel
half is the fixed set of entries :func:`swapper_pg_dir_entries` returns, one per pgd slot
that a 5.10 boot fills (direct map of installed memory, the vmalloc area that
preallocate_vmalloc_pages populates, vmemmap, cpu_entry_area, espfix, the kernel image and
modules), each a _KERNPG_TABLE entry pointing at a distinct pfn inside the kernel image
(reserved memory). Walks into the kernel half therefore stop one level down.
"""

from __future__ import annotations

from types import MappingProxyType

from refmodel.arch.x86.pgtable_types import (
    _KERNPG_TABLE,
    _PAGE_ACCESSED,
    _PAGE_CHG_MASK,
    _PAGE_DIRTY,
    _PAGE_KNL_ERRATUM_MASK,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_SOFT_DIRTY,
    _PAGE_SPECIAL,
    _PAGE_TABLE,
    _PAGE_USER,
    ENTRY_SIZE,
    MASK64,
    P4D_MASK,
    P4D_SHIFT,
    P4D_SIZE,
    PAGE_MASK,
    PAGE_OFFSET,
    PAGE_SHIFT,
    PAGE_SIZE,
    PGDIR_MASK,
    PGDIR_SHIFT,
    PGDIR_SHIFT_L4,
    PGDIR_SHIFT_L5,
    PGDIR_SIZE,
    PMD_MASK,
    PMD_SHIFT,
    PMD_SIZE,
    PTE_FLAGS_MASK,
    PTE_PFN_MASK,
    PTRS_PER_P4D,
    PTRS_PER_PGD,
    PUD_MASK,
    PUD_SHIFT,
    PUD_SIZE,
    PY_OPS,
    BitOps,
    __canonical_address,
    check_pgprot,
    pgprot_t,
    pgtable_l5_enabled,
    vaddr_bits,
)
from refmodel.bugs import KernelBug
from refmodel.config import KERNEL_START_PFN
from refmodel.mm import gfp as G
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mmu_gather import mmu_gather, tlb_remove_page
from refmodel.mm.mmzone import pfn_to_page, pglist_data
from refmodel.mm.page_alloc import __free_pages as _free_pages_of_page
from refmodel.mm.page_alloc import (
    __get_free_pages,
    alloc_pages,
    free_pages,
    get_zeroed_page,
    page_offset,
    pfn_to_virt,
    virt_to_page,
)
from refmodel.mm.types import Page, PageType
from refmodel.trace import kernel

PGT_H = "arch/x86/include/asm/pgtable.h"
PGT64_H = "arch/x86/include/asm/pgtable_64.h"
INVERT_H = "arch/x86/include/asm/pgtable-invert.h"
PGALLOC_H = "arch/x86/include/asm/pgalloc.h"
GEN_PGALLOC_H = "include/asm-generic/pgalloc.h"
LINUX_PGT_H = "include/linux/pgtable.h"
LINUX_MM_H = "include/linux/mm.h"
PGTABLE_C = "arch/x86/mm/pgtable.c"

PGD_ALLOCATION_ORDER = 0  # 1 only with CONFIG_PAGE_TABLE_ISOLATION
PREALLOCATED_PMDS = 0  # non-PAE
SHARED_KERNEL_PMD = 0  # 64-bit: pgds go on pgd_list

_NO_ENTRIES: MappingProxyType[int, int] = MappingProxyType({})
_PG_table = int(PageType.PG_table)  # a plain int: page_type never becomes an IntFlag
# The flag bits the *_present tests look at, worked out once (all inside PTE_FLAGS_MASK).
_PRESENT_OR_PROTNONE = _PAGE_PRESENT | _PAGE_PROTNONE
_PMD_PRESENT_BITS = PTE_FLAGS_MASK & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE)

# --------------------------------------------------------------------------------------------
# Indices (include/linux/pgtable.h, asm/pgtable.h): shift and mask, pure


@kernel(LINUX_PGT_H)
def pgd_index(address: int, levels: int) -> int:
    """Models linux/pgtable.h:pgd_index: (address >> PGDIR_SHIFT) & (PTRS_PER_PGD - 1)."""
    return (address >> (PGDIR_SHIFT_L5 if levels == 5 else PGDIR_SHIFT_L4)) & 511


@kernel(PGT_H)
def p4d_index(address: int, levels: int) -> int:
    """Models asm/pgtable.h:p4d_index: always 0 with 4-level paging (ptrs_per_p4d == 1)."""
    return (address >> P4D_SHIFT) & (PTRS_PER_P4D(levels) - 1)


@kernel(LINUX_PGT_H)
def pud_index(address: int) -> int:
    """Models linux/pgtable.h:pud_index."""
    return (address >> PUD_SHIFT) & 511  # PTRS_PER_PUD - 1


@kernel(LINUX_PGT_H)
def pmd_index(address: int) -> int:
    """Models linux/pgtable.h:pmd_index."""
    return (address >> PMD_SHIFT) & 511  # PTRS_PER_PMD - 1


@kernel(LINUX_PGT_H)
def pte_index(address: int) -> int:
    """Models linux/pgtable.h:pte_index."""
    return (address >> PAGE_SHIFT) & 511  # PTRS_PER_PTE - 1


def KERNEL_PGD_BOUNDARY(levels: int) -> int:
    """asm/pgtable_64.h:KERNEL_PGD_BOUNDARY = pgd_index(PAGE_OFFSET): 273 in both modes."""
    return pgd_index(PAGE_OFFSET(levels), levels)


def KERNEL_PGD_PTRS(levels: int) -> int:
    return PTRS_PER_PGD - KERNEL_PGD_BOUNDARY(levels)


@kernel("arch/x86/mm/dump_pagetables.c")
def normalize_addr(u: int, levels: int) -> int:
    """Models arch/x86/mm/dump_pagetables.c:normalize_addr: sign-extend an address built
    from table indices into canonical form."""
    return __canonical_address(u, vaddr_bits(levels))


def pgtable_address(levels: int, pgd_i: int, p4d_i: int, pud_i: int, pmd_i: int, pte_i: int,
                    offset: int) -> int:
    """The canonical address whose indices are the given ones (the inverse of the *_index
    functions, as ptdump computes it). With 4-level paging ``p4d_i`` must be 0."""
    u = ((pgd_i << PGDIR_SHIFT(levels)) | (p4d_i << P4D_SHIFT) | (pud_i << PUD_SHIFT)
         | (pmd_i << PMD_SHIFT) | (pte_i << PAGE_SHIFT) | offset)
    return normalize_addr(u, levels)


def entry_ptr(table: int, index: int) -> int:
    """The address of entry ``index`` of the table at physical address ``table``."""
    return table + (index << 3)


# --------------------------------------------------------------------------------------------
# Following an entry to the table below it, and *_offset


@kernel(PGT_H)
def pgd_page_vaddr(pgd: int) -> int:
    """Models asm/pgtable.h:pgd_page_vaddr: the table a pgd entry points at (physical here)."""
    return pgd & PTE_PFN_MASK


@kernel(PGT_H)
def p4d_page_vaddr(p4d: int) -> int:
    """Models asm/pgtable.h:p4d_page_vaddr (p4d_pfn_mask: no 512G pages exist)."""
    return p4d & PTE_PFN_MASK


@kernel(PGT_H)
def pud_page_vaddr(pud: int) -> int:
    """Models asm/pgtable.h:pud_page_vaddr (1G PSE entries out of scope)."""
    return pud & PTE_PFN_MASK


@kernel(PGT_H)
def pmd_page_vaddr(pmd: int) -> int:
    """Models asm/pgtable.h:pmd_page_vaddr (2M PSE entries out of scope)."""
    return pmd & PTE_PFN_MASK


def read_entry(pgdat: pglist_data, ptr: int) -> int:
    """READ_ONCE(*ptr) for any level: the stored word, 0 if the page holds no such entry."""
    return pgdat.pgtables.get(ptr >> PAGE_SHIFT, _NO_ENTRIES).get((ptr >> 3) & 511, 0)


def write_entry(pgdat: pglist_data, ptr: int, val: int) -> None:
    """WRITE_ONCE(*ptr, val): only into a page that is in use as a page table."""
    table = pgdat.pgtables.get(ptr >> PAGE_SHIFT)
    if table is None:
        raise KernelBug("model: store to a page that is not a page table",
                        f"entry address {ptr:#x} (pfn {ptr >> PAGE_SHIFT:#x})")
    if ptr & (ENTRY_SIZE - 1):
        raise KernelBug("model: unaligned page-table store", f"entry address {ptr:#x}")
    idx = (ptr & ~PAGE_MASK) >> 3
    if val:
        table[idx] = val & MASK64
    else:
        table.pop(idx, None)


@kernel(LINUX_PGT_H)
def pgd_offset_pgd(pgd: int, address: int, levels: int) -> int:
    """Models linux/pgtable.h:pgd_offset_pgd: the pgd entry of ``address`` in the pgd at
    physical address ``pgd``."""
    return pgd + (pgd_index(address, levels) << 3)  # entry_ptr


@kernel(LINUX_PGT_H)
def pgd_offset(mm: mm_struct, address: int) -> int:
    """Models linux/pgtable.h:pgd_offset(mm, address): in mm->pgd."""
    return pgd_offset_pgd(mm.pgd << PAGE_SHIFT, address, mm.paging_levels)


@kernel(PGT_H)
def p4d_offset(pgdat: pglist_data, pgd: int, address: int) -> int:
    """Models asm/pgtable.h:p4d_offset. With 4-level paging the p4d is folded at run time:
    the p4d "entry" is the pgd entry itself."""
    if pgdat.paging_levels != 5:  # !pgtable_l5_enabled
        return pgd
    return entry_ptr(pgd_page_vaddr(read_entry(pgdat, pgd)),
                     p4d_index(address, pgdat.paging_levels))


@kernel(PGT_H)
def pud_offset(pgdat: pglist_data, p4d: int, address: int) -> int:
    """Models asm/pgtable.h:pud_offset(p4d, address)."""
    try:  # READ_ONCE(*p4d): a missing table or entry reads as 0
        p4dval = pgdat.pgtables[p4d >> PAGE_SHIFT][(p4d >> 3) & 511]
    except KeyError:
        p4dval = 0
    return p4d_page_vaddr(p4dval) + (pud_index(address) << 3)


@kernel(PGT_H)
def pmd_offset(pgdat: pglist_data, pud: int, address: int) -> int:
    """Models asm/pgtable.h:pmd_offset(pud, address)."""
    try:  # READ_ONCE(*pud): a missing table or entry reads as 0
        pudval = pgdat.pgtables[pud >> PAGE_SHIFT][(pud >> 3) & 511]
    except KeyError:
        pudval = 0
    return pud_page_vaddr(pudval) + (pmd_index(address) << 3)


@kernel(PGT_H)
def pte_offset_kernel(pgdat: pglist_data, pmd: int, address: int) -> int:
    """Models asm/pgtable.h:pte_offset_kernel(pmd, address)."""
    try:  # READ_ONCE(*pmd): a missing table or entry reads as 0
        pmdval = pgdat.pgtables[pmd >> PAGE_SHIFT][(pmd >> 3) & 511]
    except KeyError:
        pmdval = 0
    return pmd_page_vaddr(pmdval) + (pte_index(address) << 3)


@kernel(LINUX_PGT_H)
def pte_offset_map(pgdat: pglist_data, pmd: int, address: int) -> int:
    """Models linux/pgtable.h:pte_offset_map: pte_offset_kernel without HIGHPTE."""
    return pte_offset_kernel(pgdat, pmd, address)


@kernel(LINUX_PGT_H)
def ptep_get(pgdat: pglist_data, ptep: int) -> int:
    """Models linux/pgtable.h:ptep_get: READ_ONCE(*ptep)."""
    return read_entry(pgdat, ptep)


# --------------------------------------------------------------------------------------------
# *_addr_end (include/linux/pgtable.h): the next boundary, or end if that comes first


def _addr_end(addr: int, end: int, size: int, mask: int, ops: BitOps) -> int:
    boundary = (addr + size) & mask
    if ops is PY_OPS:  # plain ints (not z3's terms): the same comparison, without the calls
        return boundary if (boundary - 1) & MASK64 < (end - 1) & MASK64 else end
    return ops.ite(ops.ult((boundary - 1) & MASK64, (end - 1) & MASK64), boundary, end)


# PGDIR_SIZE and PGDIR_MASK by paging levels, worked out once.
_PGDIR_SIZE_MASK = {lv: (PGDIR_SIZE(lv), PGDIR_MASK(lv)) for lv in (4, 5)}


@kernel(LINUX_PGT_H)
def pgd_addr_end(addr: int, end: int, levels: int, ops: BitOps = PY_OPS) -> int:
    size, mask = _PGDIR_SIZE_MASK[levels]
    # _addr_end in line for plain ints (every walk of every level runs this), its unsigned
    # test (boundary - 1) < (end - 1) made without the wrap-around arithmetic: boundary
    # and end are unsigned longs, and 0 stands for 2**64 on either side.
    if ops is PY_OPS:
        boundary = (addr + size) & mask
        return boundary if boundary and (boundary < end or not end) else end
    return _addr_end(addr, end, size, mask, ops)


@kernel(LINUX_PGT_H)
def p4d_addr_end(addr: int, end: int, ops: BitOps = PY_OPS) -> int:
    if ops is PY_OPS:  # _addr_end in line, as in pgd_addr_end
        boundary = (addr + P4D_SIZE) & P4D_MASK
        return boundary if boundary and (boundary < end or not end) else end
    return _addr_end(addr, end, P4D_SIZE, P4D_MASK, ops)


@kernel(LINUX_PGT_H)
def pud_addr_end(addr: int, end: int, ops: BitOps = PY_OPS) -> int:
    if ops is PY_OPS:  # _addr_end in line, as in pgd_addr_end
        boundary = (addr + PUD_SIZE) & PUD_MASK
        return boundary if boundary and (boundary < end or not end) else end
    return _addr_end(addr, end, PUD_SIZE, PUD_MASK, ops)


@kernel(LINUX_PGT_H)
def pmd_addr_end(addr: int, end: int, ops: BitOps = PY_OPS) -> int:
    if ops is PY_OPS:  # _addr_end in line, as in pgd_addr_end
        boundary = (addr + PMD_SIZE) & PMD_MASK
        return boundary if boundary and (boundary < end or not end) else end
    return _addr_end(addr, end, PMD_SIZE, PMD_MASK, ops)


# --------------------------------------------------------------------------------------------
# Predicates on entry values (asm/pgtable.h)


def pte_flags(pte: int) -> int:
    return pte & PTE_FLAGS_MASK


@kernel(PGT_H)
def pte_none(pte: int) -> bool:
    """Models asm/pgtable.h:pte_none: zero apart from the KNL-erratum A/D bits."""
    return (pte & ~_PAGE_KNL_ERRATUM_MASK) == 0


@kernel(PGT_H)
def pte_present(pte: int) -> bool:
    """Models asm/pgtable.h:pte_present: present, or PROT_NONE (which is not)."""
    return pte & _PRESENT_OR_PROTNONE != 0


@kernel(PGT_H)
def pte_write(pte: int) -> bool:
    return bool(pte & _PAGE_RW)


@kernel(PGT_H)
def pte_dirty(pte: int) -> bool:
    return bool(pte & _PAGE_DIRTY)


@kernel(PGT_H)
def pte_young(pte: int) -> bool:
    return bool(pte & _PAGE_ACCESSED)


@kernel(PGT_H)
def pte_exec(pte: int) -> bool:
    return not pte & _PAGE_NX


@kernel(PGT_H)
def pte_special(pte: int) -> bool:
    return bool(pte & _PAGE_SPECIAL)


@kernel(PGT_H)
def pmd_none(pmd: int) -> bool:
    """Models asm/pgtable.h:pmd_none (the A/D erratum bits ignored)."""
    return (pmd & ~_PAGE_KNL_ERRATUM_MASK) == 0


@kernel(PGT_H)
def pmd_present(pmd: int) -> bool:
    """Models asm/pgtable.h:pmd_present: P, PROTNONE or PSE (a splitting THP)."""
    return pmd & _PMD_PRESENT_BITS != 0


@kernel(PGT_H)
def pmd_bad(pmd: int) -> bool:
    """Models asm/pgtable.h:pmd_bad: flags other than exactly P|RW|A|D (U ignored)."""
    return (pmd & PTE_FLAGS_MASK & ~_PAGE_USER) != _KERNPG_TABLE


@kernel(PGT_H)
def pud_none(pud: int) -> bool:
    return (pud & ~_PAGE_KNL_ERRATUM_MASK) == 0


@kernel(PGT_H)
def pud_present(pud: int) -> bool:
    return pud & _PAGE_PRESENT != 0  # (PTE_FLAGS_MASK covers _PAGE_PRESENT)


@kernel(PGT_H)
def pud_bad(pud: int) -> bool:
    """Models asm/pgtable.h:pud_bad: any flag outside P, RW, A, D, U (P is not required)."""
    return (pud & PTE_FLAGS_MASK & ~(_KERNPG_TABLE | _PAGE_USER)) != 0


@kernel(PGT_H)
def p4d_none(p4d: int) -> bool:
    return (p4d & ~_PAGE_KNL_ERRATUM_MASK) == 0


@kernel(PGT_H)
def p4d_present(p4d: int) -> bool:
    return p4d & _PAGE_PRESENT != 0  # (PTE_FLAGS_MASK covers _PAGE_PRESENT)


@kernel(PGT_H)
def p4d_bad(p4d: int) -> bool:
    """Models asm/pgtable.h:p4d_bad (no PTI configured, so NX is not ignored)."""
    return (p4d & PTE_FLAGS_MASK & ~(_KERNPG_TABLE | _PAGE_USER)) != 0


@kernel(PGT_H)
def pgd_none(pgd: int, levels: int) -> bool:
    """Models asm/pgtable.h:pgd_none: never none with 4-level paging (the folded p4d level
    is tested instead); with 5-level paging, the raw value is zero."""
    if levels != 5:  # !pgtable_l5_enabled
        return False
    return pgd == 0


@kernel(PGT_H)
def pgd_present(pgd: int, levels: int) -> bool:
    if levels != 5:  # !pgtable_l5_enabled
        return True
    return pgd & _PAGE_PRESENT != 0  # (PTE_FLAGS_MASK covers _PAGE_PRESENT)


@kernel(PGT_H)
def pgd_bad(pgd: int, levels: int) -> bool:
    """Models asm/pgtable.h:pgd_bad: never with 4-level paging; else U ignored, the rest
    must be exactly P|RW|A|D."""
    if levels != 5:  # !pgtable_l5_enabled, in line: every page-table walk asks
        return False
    return (pgd & PTE_FLAGS_MASK & ~_PAGE_USER) != _KERNPG_TABLE


# --------------------------------------------------------------------------------------------
# Encoding a pte (asm/pgtable.h, asm/pgtable-invert.h): pure, z3-ready


@kernel(INVERT_H)
def __pte_needs_invert(val: int, ops: BitOps = PY_OPS) -> bool:
    """Models pgtable-invert.h:__pte_needs_invert: non-zero but not present (L1TF)."""
    if ops is PY_OPS:
        return val != 0 and not val & _PAGE_PRESENT
    return ops.and_(val != 0, (val & _PAGE_PRESENT) == 0)


@kernel(INVERT_H)
def protnone_mask(val: int, ops: BitOps = PY_OPS) -> int:
    """Models pgtable-invert.h:protnone_mask: all ones when the pfn is stored inverted."""
    if ops is PY_OPS:
        return MASK64 if __pte_needs_invert(val, ops) else 0
    return ops.ite(__pte_needs_invert(val, ops), MASK64, 0)


@kernel(INVERT_H)
def flip_protnone_guard(oldval: int, val: int, mask: int, ops: BitOps = PY_OPS) -> int:
    """Models pgtable-invert.h:flip_protnone_guard: invert the pfn bits when a change of
    protection moves the entry into or out of the inverted state."""
    flipped = (val & ~mask & MASK64) | (~val & mask & MASK64)
    changed = __pte_needs_invert(oldval, ops) != __pte_needs_invert(val, ops)
    return ops.ite(changed, flipped, val)


@kernel(PGT_H)
def pfn_pte(page_nr: int, pgprot: pgprot_t, ops: BitOps = PY_OPS) -> int:
    """Models asm/pgtable.h:pfn_pte: the pfn (inverted for PROT_NONE), masked to the pfn
    field, with the checked protection bits."""
    pfn = page_nr << PAGE_SHIFT
    pfn ^= protnone_mask(pgprot, ops)
    pfn &= PTE_PFN_MASK
    return pfn | check_pgprot(pgprot, ops)


@kernel(PGT_H)
def pte_pfn(pte: int, ops: BitOps = PY_OPS) -> int:
    """Models asm/pgtable.h:pte_pfn: undo the PROT_NONE inversion, mask, shift."""
    pfn = pte ^ protnone_mask(pte, ops)
    return (pfn & PTE_PFN_MASK) >> PAGE_SHIFT


@kernel(PGT_H)
def mk_pte(page: Page, pgprot: pgprot_t) -> int:
    """Models asm/pgtable.h:mk_pte = pfn_pte(page_to_pfn(page), pgprot)."""
    return pfn_pte(page.pfn, pgprot)


@kernel(PGT_H)
def pte_modify(pte: int, newprot: pgprot_t) -> int:
    """Models asm/pgtable.h:pte_modify: keep _PAGE_CHG_MASK (pfn, A, D, ...), take the rest
    from the new protection, and fix the PROT_NONE pfn inversion."""
    oldval = pte
    val = pte & _PAGE_CHG_MASK
    val |= check_pgprot(newprot) & ~_PAGE_CHG_MASK & MASK64
    return flip_protnone_guard(oldval, val, PTE_PFN_MASK)


@kernel(PGT_H)
def pte_mkwrite(pte: int) -> int:
    return pte | _PAGE_RW


@kernel(PGT_H)
def pte_wrprotect(pte: int) -> int:
    return pte & ~_PAGE_RW


@kernel(PGT_H)
def pte_mkdirty(pte: int) -> int:
    """Models asm/pgtable.h:pte_mkdirty: sets _PAGE_DIRTY and _PAGE_SOFT_DIRTY."""
    return pte | _PAGE_DIRTY | _PAGE_SOFT_DIRTY


@kernel(PGT_H)
def pte_mkclean(pte: int) -> int:
    return pte & ~_PAGE_DIRTY


@kernel(PGT_H)
def pte_mkyoung(pte: int) -> int:
    return pte | _PAGE_ACCESSED


@kernel(PGT_H)
def pte_mkold(pte: int) -> int:
    return pte & ~_PAGE_ACCESSED


@kernel(PGT_H)
def pte_mkexec(pte: int) -> int:
    return pte & ~_PAGE_NX & MASK64


@kernel(PGT_H)
def pte_mkspecial(pte: int) -> int:
    return pte | _PAGE_SPECIAL


# --------------------------------------------------------------------------------------------
# Stores (asm/pgtable_64.h natives and their asm/pgtable.h wrappers)


@kernel(PGT64_H)
def native_set_pte(pgdat: pglist_data, ptep: int, pte: int) -> None:
    """Models asm/pgtable_64.h:native_set_pte: WRITE_ONCE(*ptep, pte) (write_entry,
    inlined)."""
    table = pgdat.pgtables.get(ptep >> PAGE_SHIFT)
    if table is None or ptep & 7:  # not a table, or not an entry (ENTRY_SIZE 8)
        write_entry(pgdat, ptep, pte)  # raises the model's KernelBug
        return
    if pte:
        table[(ptep >> 3) & 511] = pte & MASK64
    else:
        table.pop((ptep >> 3) & 511, None)


@kernel(PGT_H)
def set_pte(pgdat: pglist_data, ptep: int, pte: int) -> None:
    """asm/pgtable.h (non-paravirt): set_pte is native_set_pte."""
    native_set_pte(pgdat, ptep, pte)


@kernel(PGT_H)
def set_pte_at(pgdat: pglist_data, mm: mm_struct, addr: int, ptep: int, pte: int) -> None:
    """Models asm/pgtable.h:set_pte_at(mm, addr, ptep, pte): set_pte; this is where a user
    mapping is actually made."""
    set_pte(pgdat, ptep, pte)


@kernel(PGT64_H)
def native_pte_clear(pgdat: pglist_data, mm: mm_struct | None, addr: int, ptep: int) -> None:
    """Models asm/pgtable_64.h:native_pte_clear: native_set_pte of an empty pte (mm and addr
    unused; native_local_ptep_get_and_clear passes none)."""
    native_set_pte(pgdat, ptep, 0)


@kernel(PGT_H)
def pte_clear(pgdat: pglist_data, mm: mm_struct, addr: int, ptep: int) -> None:
    """Models asm/pgtable.h:pte_clear → native_pte_clear (stores 0)."""
    native_pte_clear(pgdat, mm, addr, ptep)


@kernel(PGT64_H)
def native_ptep_get_and_clear(pgdat: pglist_data, ptep: int) -> int:
    """Models asm/pgtable_64.h:native_ptep_get_and_clear (an xchg with 0 on SMP)."""
    table = pgdat.pgtables.get(ptep >> PAGE_SHIFT)
    if table is None or ptep & 7:  # not a table, or not an entry (ENTRY_SIZE 8)
        old = read_entry(pgdat, ptep)
        write_entry(pgdat, ptep, 0)  # raises the model's KernelBug
        return old
    return table.pop((ptep >> 3) & 511, 0)  # read_entry and write_entry(0), in line


@kernel(PGT_H)
def ptep_get_and_clear(pgdat: pglist_data, mm: mm_struct, addr: int, ptep: int) -> int:
    """Models asm/pgtable.h:ptep_get_and_clear: the old pte; the slot is left zero."""
    return native_ptep_get_and_clear(pgdat, ptep)


@kernel(PGT_H)
def native_local_ptep_get_and_clear(pgdat: pglist_data, ptep: int) -> int:
    """Models asm/pgtable.h:native_local_ptep_get_and_clear: read the pte, then
    native_pte_clear it (no xchg: nobody else can touch a dying mm's ptes)."""
    res = read_entry(pgdat, ptep)
    native_pte_clear(pgdat, None, 0, ptep)
    return res


@kernel(PGT_H)
def ptep_get_and_clear_full(pgdat: pglist_data, mm: mm_struct, addr: int, ptep: int,
                            full: bool) -> int:
    """Models asm/pgtable.h:ptep_get_and_clear_full: when the whole mm is going away
    (``full``, the mmu_gather's fullmm) native_local_ptep_get_and_clear, else
    ptep_get_and_clear. The old pte."""
    if full:
        return native_local_ptep_get_and_clear(pgdat, ptep)
    return ptep_get_and_clear(pgdat, mm, addr, ptep)


@kernel(LINUX_PGT_H)
def pte_clear_not_present_full(pgdat: pglist_data, mm: mm_struct, address: int, ptep: int,
                               full: bool) -> None:
    """Models linux/pgtable.h:pte_clear_not_present_full (x86 has no variant of its own):
    pte_clear, whatever ``full`` says."""
    pte_clear(pgdat, mm, address, ptep)


@kernel(PGT_H)
def ptep_set_wrprotect(pgdat: pglist_data, mm: mm_struct, addr: int, ptep: int) -> None:
    """Models asm/pgtable.h:ptep_set_wrprotect: clear_bit(_PAGE_BIT_RW) in place."""
    write_entry(pgdat, ptep, read_entry(pgdat, ptep) & ~_PAGE_RW)


@kernel(PGT64_H)
def native_set_pmd(pgdat: pglist_data, pmdp: int, pmd: int) -> None:
    write_entry(pgdat, pmdp, pmd)


@kernel(PGT_H)
def set_pmd(pgdat: pglist_data, pmdp: int, pmd: int) -> None:
    native_set_pmd(pgdat, pmdp, pmd)


@kernel(PGT64_H)
def native_set_pud(pgdat: pglist_data, pudp: int, pud: int) -> None:
    write_entry(pgdat, pudp, pud)


@kernel(PGT_H)
def set_pud(pgdat: pglist_data, pudp: int, pud: int) -> None:
    native_set_pud(pgdat, pudp, pud)


@kernel(PGT64_H)
def native_set_p4d(pgdat: pglist_data, p4dp: int, p4d: int) -> None:
    """Models asm/pgtable_64.h:native_set_p4d (a plain store: no PTI)."""
    write_entry(pgdat, p4dp, p4d)


@kernel(PGT_H)
def set_p4d(pgdat: pglist_data, p4dp: int, p4d: int) -> None:
    native_set_p4d(pgdat, p4dp, p4d)


@kernel(PGT64_H)
def native_set_pgd(pgdat: pglist_data, pgdp: int, pgd: int) -> None:
    write_entry(pgdat, pgdp, pgd)


@kernel(PGT_H)
def set_pgd(pgdat: pglist_data, pgdp: int, pgd: int) -> None:
    native_set_pgd(pgdat, pgdp, pgd)


@kernel(PGT_H)
def pmd_clear(pgdat: pglist_data, pmd: int) -> None:
    native_set_pmd(pgdat, pmd, 0)


@kernel(PGT_H)
def pud_clear(pgdat: pglist_data, pud: int) -> None:
    native_set_pud(pgdat, pud, 0)


@kernel(PGT_H)
def p4d_clear(pgdat: pglist_data, p4d: int) -> None:
    """Models asm/pgtable.h:p4d_clear. With 4-level paging this clears the pgd entry."""
    native_set_p4d(pgdat, p4d, 0)


@kernel(PGT_H)
def pgd_clear(pgdat: pglist_data, pgd: int) -> None:
    """Models asm/pgtable.h:pgd_clear: a no-op with 4-level paging."""
    if not pgtable_l5_enabled(pgdat.paging_levels):
        return
    native_set_pgd(pgdat, pgd, 0)


# --------------------------------------------------------------------------------------------
@kernel("mm/pgtable-generic.c")
def ptep_clear_flush(pgdat: pglist_data, vma: vm_area_struct, address: int, ptep: int) -> int:
    """Models mm/pgtable-generic.c:ptep_clear_flush (x86 has no variant of its own):
    ptep_get_and_clear, then a TLB flush (not modelled); the old value."""
    mm = vma.vm_mm
    assert mm is not None
    return ptep_get_and_clear(pgdat, mm, address, ptep)


# *_none_or_clear_bad (include/linux/pgtable.h, mm/pgtable-generic.c)


@kernel("mm/pgtable-generic.c")
def pgd_clear_bad(pgdat: pglist_data, pgd: int) -> None:
    """Models mm/pgtable-generic.c:pgd_clear_bad: report (pgd_ERROR) and clear."""
    pgd_clear(pgdat, pgd)


@kernel("mm/pgtable-generic.c")
def p4d_clear_bad(pgdat: pglist_data, p4d: int) -> None:
    p4d_clear(pgdat, p4d)


@kernel("mm/pgtable-generic.c")
def pud_clear_bad(pgdat: pglist_data, pud: int) -> None:
    pud_clear(pgdat, pud)


@kernel("mm/pgtable-generic.c")
def pmd_clear_bad(pgdat: pglist_data, pmd: int) -> None:
    pmd_clear(pgdat, pmd)


# The four *_none_or_clear_bad read their entry with read_entry in line: every page-table
# walk (zap, free, mprotect) calls them once per step.
@kernel(LINUX_PGT_H)
def pgd_none_or_clear_bad(pgdat: pglist_data, pgd: int) -> bool:
    val = pgdat.pgtables.get(pgd >> PAGE_SHIFT, _NO_ENTRIES).get((pgd >> 3) & 511, 0)
    if pgd_none(val, pgdat.paging_levels):
        return True
    if pgd_bad(val, pgdat.paging_levels):
        pgd_clear_bad(pgdat, pgd)
        return True
    return False


@kernel(LINUX_PGT_H)
def p4d_none_or_clear_bad(pgdat: pglist_data, p4d: int) -> bool:
    val = pgdat.pgtables.get(p4d >> PAGE_SHIFT, _NO_ENTRIES).get((p4d >> 3) & 511, 0)
    if p4d_none(val):
        return True
    if p4d_bad(val):
        p4d_clear_bad(pgdat, p4d)
        return True
    return False


@kernel(LINUX_PGT_H)
def pud_none_or_clear_bad(pgdat: pglist_data, pud: int) -> bool:
    val = pgdat.pgtables.get(pud >> PAGE_SHIFT, _NO_ENTRIES).get((pud >> 3) & 511, 0)
    if pud_none(val):
        return True
    if pud_bad(val):
        pud_clear_bad(pgdat, pud)
        return True
    return False


def _pmd_none_or_bad_cleared(pgdat: pglist_data, pmd: int) -> bool:
    """The pmd_none, then pmd_bad → pmd_clear_bad test that pmd_none_or_clear_bad and its
    two THP-aware variants share once no pmd can be huge (not a kernel function: its
    calls show under whichever variant called it)."""
    val = pgdat.pgtables.get(pmd >> PAGE_SHIFT, _NO_ENTRIES).get((pmd >> 3) & 511, 0)
    if pmd_none(val):
        return True
    if pmd_bad(val):
        pmd_clear_bad(pgdat, pmd)
        return True
    return False


@kernel(LINUX_PGT_H)
def pmd_none_or_clear_bad(pgdat: pglist_data, pmd: int) -> bool:
    return _pmd_none_or_bad_cleared(pgdat, pmd)


@kernel(LINUX_PGT_H)
def pmd_none_or_trans_huge_or_clear_bad(pgdat: pglist_data, pmd: int) -> bool:
    """Models linux/pgtable.h:pmd_none_or_trans_huge_or_clear_bad (the zap walk's test): as
    pmd_none_or_clear_bad, since without THP no pmd is trans-huge (pmd_trans_huge is 0 and
    the THP-migration !pmd_present test is compiled out)."""
    return _pmd_none_or_bad_cleared(pgdat, pmd)


# --------------------------------------------------------------------------------------------
# Table pages: constructors, allocation, population, freeing


def _table_start(pgdat: pglist_data, pfn: int) -> None:
    """Model bookkeeping: the (zeroed) page at ``pfn`` now holds page-table entries."""
    if pfn in pgdat.pgtables:
        raise KernelBug("model: page already in use as a page table", f"pfn {pfn:#x}")
    pgdat.pgtables[pfn] = {}


def _table_end(pgdat: pglist_data, pfn: int) -> None:
    """Model bookkeeping: the page at ``pfn`` is about to be freed; its entries go."""
    if pgdat.pgtables.pop(pfn, None) is None:
        raise KernelBug("model: freeing a page-table page that is not one", f"pfn {pfn:#x}")


def _nr_pagetable_add(pgdat: pglist_data, page: Page, delta: int) -> None:
    pgdat.nr_pagetable[page.zone_idx] = pgdat.nr_pagetable.get(page.zone_idx, 0) + delta


@kernel(LINUX_MM_H)
def pgtable_pte_page_ctor(pgdat: pglist_data, page: Page) -> bool:
    """Models include/linux/mm.h:pgtable_pte_page_ctor: ptlock_init (never fails without
    ALLOC_SPLIT_PTLOCKS), __SetPageTable, NR_PAGETABLE++."""
    page.page_type |= _PG_table
    _nr_pagetable_add(pgdat, page, 1)
    _table_start(pgdat, page.pfn)
    return True


@kernel(LINUX_MM_H)
def pgtable_pte_page_dtor(pgdat: pglist_data, page: Page) -> None:
    """Models include/linux/mm.h:pgtable_pte_page_dtor: __ClearPageTable, NR_PAGETABLE--."""
    page.page_type &= ~_PG_table
    _nr_pagetable_add(pgdat, page, -1)
    _table_end(pgdat, page.pfn)


@kernel(LINUX_MM_H)
def pgtable_pmd_page_ctor(pgdat: pglist_data, page: Page) -> bool:
    """Models include/linux/mm.h:pgtable_pmd_page_ctor (split pmd ptlocks on x86-64)."""
    page.page_type |= _PG_table
    _nr_pagetable_add(pgdat, page, 1)
    _table_start(pgdat, page.pfn)
    return True


@kernel(LINUX_MM_H)
def pgtable_pmd_page_dtor(pgdat: pglist_data, page: Page) -> None:
    page.page_type &= ~_PG_table
    _nr_pagetable_add(pgdat, page, -1)
    _table_end(pgdat, page.pfn)


def __pa(pgdat: pglist_data, kaddr: int) -> int:
    """asm/page.h:__pa for direct-map addresses."""
    return kaddr - page_offset(pgdat)


@kernel(GEN_PGALLOC_H)
def __pte_alloc_one(pgdat: pglist_data, mm: mm_struct, gfp: int) -> Page | None:
    """Models asm-generic/pgalloc.h:__pte_alloc_one: alloc_page + pgtable_pte_page_ctor."""
    pte = alloc_pages(pgdat, gfp, 0)
    if pte is None:
        return None
    if not pgtable_pte_page_ctor(pgdat, pte):
        _free_pages_of_page(pgdat, pte, 0)
        return None
    return pte


@kernel(PGTABLE_C)
def pte_alloc_one(pgdat: pglist_data, mm: mm_struct) -> Page | None:
    """Models arch/x86/mm/pgtable.c:pte_alloc_one: __pte_alloc_one(mm, __userpte_alloc_gfp),
    which is GFP_PGTABLE_USER (zeroed, accounted)."""
    return __pte_alloc_one(pgdat, mm, G.GFP_PGTABLE_USER)


@kernel(GEN_PGALLOC_H)
def pte_free(pgdat: pglist_data, mm: mm_struct, pte_page: Page) -> None:
    """Models asm-generic/pgalloc.h:pte_free: dtor, then __free_page."""
    pgtable_pte_page_dtor(pgdat, pte_page)
    _free_pages_of_page(pgdat, pte_page, 0)


@kernel(PGALLOC_H)
def pmd_alloc_one(pgdat: pglist_data, mm: mm_struct, addr: int) -> int | None:
    """Models asm/pgalloc.h:pmd_alloc_one: alloc_pages(GFP_KERNEL_ACCOUNT|__GFP_ZERO) and the
    pmd ctor. Returns the new table's (physical) address, or None."""
    page = alloc_pages(pgdat, G.GFP_KERNEL_ACCOUNT | G.__GFP_ZERO, 0)
    if page is None:
        return None
    if not pgtable_pmd_page_ctor(pgdat, page):
        _free_pages_of_page(pgdat, page, 0)
        return None
    return page.pfn << PAGE_SHIFT


@kernel(PGALLOC_H)
def pmd_free(pgdat: pglist_data, mm: mm_struct, pmd: int) -> None:
    """Models asm/pgalloc.h:pmd_free: BUG if unaligned, pmd dtor, free_page."""
    if pmd & (PAGE_SIZE - 1):
        raise KernelBug("BUG_ON((unsigned long)pmd & (PAGE_SIZE-1))", f"pmd {pmd:#x}")
    pgtable_pmd_page_dtor(pgdat, pfn_to_page(pgdat, pmd >> PAGE_SHIFT))
    free_pages(pgdat, pfn_to_virt(pgdat, pmd >> PAGE_SHIFT), 0)


def _zeroed_table(pgdat: pglist_data, gfp: int) -> int | None:
    va = get_zeroed_page(pgdat, gfp)
    if not va:
        return None
    phys = __pa(pgdat, va)
    _table_start(pgdat, phys >> PAGE_SHIFT)
    return phys


@kernel(PGALLOC_H)
def pud_alloc_one(pgdat: pglist_data, mm: mm_struct, addr: int) -> int | None:
    """Models asm/pgalloc.h:pud_alloc_one: get_zeroed_page(GFP_KERNEL_ACCOUNT) (no ctor, no
    PageTable). Returns the table's physical address, or None."""
    return _zeroed_table(pgdat, G.GFP_KERNEL_ACCOUNT)


@kernel(PGALLOC_H)
def pud_free(pgdat: pglist_data, mm: mm_struct, pud: int) -> None:
    """Models asm/pgalloc.h:pud_free: BUG if unaligned, free_page."""
    if pud & (PAGE_SIZE - 1):
        raise KernelBug("BUG_ON((unsigned long)pud & (PAGE_SIZE-1))", f"pud {pud:#x}")
    _table_end(pgdat, pud >> PAGE_SHIFT)
    free_pages(pgdat, pfn_to_virt(pgdat, pud >> PAGE_SHIFT), 0)


@kernel(PGALLOC_H)
def p4d_alloc_one(pgdat: pglist_data, mm: mm_struct, addr: int) -> int | None:
    """Models asm/pgalloc.h:p4d_alloc_one: get_zeroed_page(GFP_KERNEL_ACCOUNT)."""
    return _zeroed_table(pgdat, G.GFP_KERNEL_ACCOUNT)


@kernel(PGALLOC_H)
def p4d_free(pgdat: pglist_data, mm: mm_struct, p4d: int) -> None:
    """Models asm/pgalloc.h:p4d_free: nothing with 4-level paging."""
    if not pgtable_l5_enabled(pgdat.paging_levels):
        return
    if p4d & (PAGE_SIZE - 1):
        raise KernelBug("BUG_ON((unsigned long)p4d & (PAGE_SIZE-1))", f"p4d {p4d:#x}")
    _table_end(pgdat, p4d >> PAGE_SHIFT)
    free_pages(pgdat, pfn_to_virt(pgdat, p4d >> PAGE_SHIFT), 0)


@kernel(PGALLOC_H)
def pmd_populate(pgdat: pglist_data, mm: mm_struct, pmd: int, pte: Page) -> None:
    """Models asm/pgalloc.h:pmd_populate: the pte page's pfn with _PAGE_TABLE."""
    set_pmd(pgdat, pmd, (pte.pfn << PAGE_SHIFT) | _PAGE_TABLE)


@kernel(PGALLOC_H)
def pud_populate(pgdat: pglist_data, mm: mm_struct, pud: int, pmd: int) -> None:
    """Models asm/pgalloc.h:pud_populate: __pa(pmd) | _PAGE_TABLE."""
    set_pud(pgdat, pud, pmd | _PAGE_TABLE)


@kernel(PGALLOC_H)
def p4d_populate(pgdat: pglist_data, mm: mm_struct, p4d: int, pud: int) -> None:
    """Models asm/pgalloc.h:p4d_populate: __pa(pud) | _PAGE_TABLE (with 4-level paging the
    p4d entry is the pgd entry)."""
    set_p4d(pgdat, p4d, pud | _PAGE_TABLE)


@kernel(PGALLOC_H)
def pgd_populate(pgdat: pglist_data, mm: mm_struct, pgd: int, p4d: int) -> None:
    """Models asm/pgalloc.h:pgd_populate: nothing with 4-level paging."""
    if not pgtable_l5_enabled(pgdat.paging_levels):
        return
    set_pgd(pgdat, pgd, p4d | _PAGE_TABLE)


# Freeing through an mmu_gather (arch/x86/mm/pgtable.c, asm/pgalloc.h)


@kernel(PGTABLE_C)
def ___pte_free_tlb(pgdat: pglist_data, tlb: mmu_gather, pte: Page) -> None:
    """Models arch/x86/mm/pgtable.c:___pte_free_tlb: dtor, then tlb_remove_page (native
    paravirt_tlb_remove_table)."""
    pgtable_pte_page_dtor(pgdat, pte)
    tlb_remove_page(pgdat, tlb, pte)


@kernel(PGTABLE_C)
def ___pmd_free_tlb(pgdat: pglist_data, tlb: mmu_gather, pmd: int) -> None:
    page = pfn_to_page(pgdat, pmd >> PAGE_SHIFT)
    pgtable_pmd_page_dtor(pgdat, page)
    tlb_remove_page(pgdat, tlb, page)


@kernel(PGTABLE_C)
def ___pud_free_tlb(pgdat: pglist_data, tlb: mmu_gather, pud: int) -> None:
    _table_end(pgdat, pud >> PAGE_SHIFT)
    tlb_remove_page(pgdat, tlb, pfn_to_page(pgdat, pud >> PAGE_SHIFT))


@kernel(PGTABLE_C)
def ___p4d_free_tlb(pgdat: pglist_data, tlb: mmu_gather, p4d: int) -> None:
    _table_end(pgdat, p4d >> PAGE_SHIFT)
    tlb_remove_page(pgdat, tlb, pfn_to_page(pgdat, p4d >> PAGE_SHIFT))


@kernel(PGALLOC_H)
def __p4d_free_tlb(pgdat: pglist_data, tlb: mmu_gather, p4d: int, address: int) -> None:
    """Models asm/pgalloc.h:__p4d_free_tlb: only with 5-level paging."""
    if pgtable_l5_enabled(pgdat.paging_levels):
        ___p4d_free_tlb(pgdat, tlb, p4d)


@kernel("include/asm-generic/tlb.h")
def pte_free_tlb(pgdat: pglist_data, tlb: mmu_gather, ptep: Page, address: int) -> None:
    """Models asm-generic/tlb.h:pte_free_tlb (range tracking left out)."""
    tlb.freed_tables = True
    ___pte_free_tlb(pgdat, tlb, ptep)


@kernel("include/asm-generic/tlb.h")
def pmd_free_tlb(pgdat: pglist_data, tlb: mmu_gather, pmdp: int, address: int) -> None:
    tlb.freed_tables = True
    ___pmd_free_tlb(pgdat, tlb, pmdp)


@kernel("include/asm-generic/tlb.h")
def pud_free_tlb(pgdat: pglist_data, tlb: mmu_gather, pudp: int, address: int) -> None:
    tlb.freed_tables = True
    ___pud_free_tlb(pgdat, tlb, pudp)


@kernel("include/asm-generic/tlb.h")
def p4d_free_tlb(pgdat: pglist_data, tlb: mmu_gather, p4dp: int, address: int) -> None:
    tlb.freed_tables = True
    __p4d_free_tlb(pgdat, tlb, p4dp, address)


# --------------------------------------------------------------------------------------------
# pgd_alloc / pgd_free (arch/x86/mm/pgtable.c)

# Kernel regions whose pgd slots a 5.10 boot fills, by paging mode (asm/pgtable_64_types.h):
# (start, size); the direct map's size is the installed memory.
_KERNEL_REGIONS = {
    4: ((0xFFFFC90000000000, 32 << 40),  # vmalloc (preallocate_vmalloc_pages)
        (0xFFFFEA0000000000, 1 << 39),  # vmemmap (one slot)
        (0xFFFFFE0000000000, 1 << 39),  # cpu_entry_area
        (0xFFFFFF0000000000, 1 << 39),  # espfix
        (0xFFFFFFFF80000000, 1 << 31)),  # kernel image, modules, fixmap
    5: ((0xFFA0000000000000, 12800 << 40),
        (0xFFD4000000000000, 1 << 48),
        (0xFFFFFE0000000000, 1 << 39),
        (0xFFFFFF0000000000, 1 << 39),
        (0xFFFFFFFF80000000, 1 << 31)),
}
SWAPPER_TABLES_PFN = KERNEL_START_PFN + 0x800  # model: where swapper's lower tables sit


def swapper_pg_dir_entries(levels: int, nr_pages: int) -> dict[int, int]:
    """The kernel half of swapper_pg_dir as the model fixes it: pgd index -> entry. Each
    filled slot points (with _KERNPG_TABLE) at its own pfn inside the kernel image."""
    slots: set[int] = set()
    regions = ((PAGE_OFFSET(levels), max(nr_pages, 1) << PAGE_SHIFT), *_KERNEL_REGIONS[levels])
    shift = PGDIR_SHIFT(levels)  # pgd_index, inlined so pgd_ctor's trace stays readable
    for start, size in regions:
        last = (start + size - 1) & MASK64
        slots.update(range((start >> shift) & 511, ((last >> shift) & 511) + 1))
    return {i: ((SWAPPER_TABLES_PFN + n) << PAGE_SHIFT) | _KERNPG_TABLE
            for n, i in enumerate(sorted(slots))}


@kernel(PGTABLE_C)
def pgd_list_add(pgdat: pglist_data, pgd: int) -> None:
    """Models arch/x86/mm/pgtable.c:pgd_list_add: the pgd's struct page (virt_to_page)
    list_add'ed at the head of pgd_list (the model keeps pfns there)."""
    page = virt_to_page(pgdat, pfn_to_virt(pgdat, pgd))
    pgdat.pgd_list.insert(0, page.pfn)


@kernel(PGTABLE_C)
def pgd_list_del(pgdat: pglist_data, pgd: int) -> None:
    """Models arch/x86/mm/pgtable.c:pgd_list_del: the pgd's struct page (virt_to_page)
    leaves pgd_list."""
    page = virt_to_page(pgdat, pfn_to_virt(pgdat, pgd))
    pgdat.pgd_list.remove(page.pfn)


@kernel(PGTABLE_C)
def pgd_ctor(pgdat: pglist_data, mm: mm_struct, pgd: int) -> None:
    """Models arch/x86/mm/pgtable.c:pgd_ctor: clone_pgd_range copies KERNEL_PGD_PTRS entries
    from swapper_pg_dir + KERNEL_PGD_BOUNDARY; user slots stay zero. Since
    SHARED_KERNEL_PMD is 0, the pgd also goes on pgd_list (pgd_set_mm + pgd_list_add)."""
    levels = mm.paging_levels
    boundary = KERNEL_PGD_BOUNDARY(levels)
    table = pgdat.pgtables[pgd]
    for idx, val in swapper_pg_dir_entries(levels, pgdat.node_spanned_pages).items():
        if idx >= boundary:
            table[idx] = val
    if not SHARED_KERNEL_PMD:
        pgd_list_add(pgdat, pgd)


@kernel(PGTABLE_C)
def pgd_dtor(pgdat: pglist_data, pgd: int) -> None:
    """Models arch/x86/mm/pgtable.c:pgd_dtor: off pgd_list (under pgd_lock)."""
    if SHARED_KERNEL_PMD:
        return
    pgd_list_del(pgdat, pgd)


@kernel(PGTABLE_C)
def _pgd_alloc(pgdat: pglist_data) -> int:
    """Models arch/x86/mm/pgtable.c:_pgd_alloc: __get_free_pages(GFP_PGTABLE_USER,
    PGD_ALLOCATION_ORDER); the kernel address, or 0."""
    return __get_free_pages(pgdat, G.GFP_PGTABLE_USER, PGD_ALLOCATION_ORDER)


@kernel(PGTABLE_C)
def _pgd_free(pgdat: pglist_data, pgd: int) -> None:
    free_pages(pgdat, pfn_to_virt(pgdat, pgd), PGD_ALLOCATION_ORDER)


@kernel(PGTABLE_C)
def pgd_alloc(pgdat: pglist_data, mm: mm_struct) -> int | None:
    """Models arch/x86/mm/pgtable.c:pgd_alloc (64-bit, no PAE, no PTI): one zeroed page,
    mm->pgd set, no pmds preallocated (PREALLOCATED_PMDS is 0), pgd_ctor copies the kernel
    half. No p4d, pud, pmd or pte table is allocated: those come lazily (p4d_alloc ...).
    Returns the pgd's pfn (the model's mm->pgd), or None."""
    va = _pgd_alloc(pgdat)
    if not va:
        return None
    pgd = __pa(pgdat, va) >> PAGE_SHIFT  # the model's mm->pgd is the pfn, not the address
    _table_start(pgdat, pgd)
    mm.pgd = pgd
    pgd_ctor(pgdat, mm, pgd)
    return pgd


@kernel(PGTABLE_C)
def pgd_free(pgdat: pglist_data, mm: mm_struct, pgd: int) -> None:
    """Models arch/x86/mm/pgtable.c:pgd_free: pgd_mop_up_pmds (nothing on 64-bit), pgd_dtor,
    then free the page(s)."""
    pgd_dtor(pgdat, pgd)
    _table_end(pgdat, pgd)
    _pgd_free(pgdat, pgd)
