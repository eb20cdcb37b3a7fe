"""The page-fault half of mm/memory.c (5.10): handle_mm_fault down to the pte.

handle_mm_fault → __handle_mm_fault (allocating missing p4d/pud/pmd tables) →
handle_pte_fault → do_anonymous_page (the zero page on a read, a zeroed page on a write) /
do_fault (do_read_fault with fault-around, do_cow_fault, do_shared_fault over the page
cache) / do_wp_page (wp_page_reuse, wp_page_shared, wp_page_copy with 5.10's page_count
rule). Registered under mm/memory.c; the module is split from refmodel.mm.memory only to
keep files readable (mm/mmap.py imports memory.py, and this half needs the page cache).

Left out (docs/scope.md): swap entries (do_swap_page), NUMA hinting faults, THP, userfaultfd,
memcg charging, the page lock, and the LRU pagevec's transient reference (5.10 may copy
instead of reusing while a freshly faulted page sits in a per-cpu pagevec; the model always
behaves as if the pagevec had been drained).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from refmodel.arch.x86.pgtable import (
    mk_pte,
    pfn_pte,
    pgd_offset,
    pmd_none,
    pmd_populate,
    pte_alloc_one,
    pte_free,
    pte_mkdirty,
    pte_mkspecial,
    pte_mkwrite,
    pte_mkyoung,
    pte_none,
    pte_offset_map,
    pte_pfn,
    pte_present,
    pte_write,
    ptep_clear_flush,
    pud_none,
    read_entry,
    set_pte,
    set_pte_at,
)
from refmodel.arch.x86.pgtable_types import (
    _PAGE_PRESENT,
    _PAGE_SOFT_DIRTY,
    PAGE_MASK,
    PAGE_SHIFT,
    PTRS_PER_PTE,
)
from refmodel.bugs import KernelBug
from refmodel.fs import address_space
from refmodel.mm import gfp as G
from refmodel.mm.filemap import (
    DIV_ROUND_UP,
    filemap_fault,
    filemap_page_mkwrite,
    mapping_gfp_mask,
)
from refmodel.mm.highmem import alloc_zeroed_user_highpage_movable, copy_user_highpage
from refmodel.mm.memory import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    dec_mm_counter,
    get_page,
    inc_mm_counter,
    is_zero_pfn,
    mm_counter_file,
    mm_inc_nr_ptes,
    my_zero_pfn,
    p4d_alloc,
    pmd_alloc,
    pte_alloc,
    pte_offset_map_lock,
    pud_alloc,
    put_page,
    vm_normal_page,
)
from refmodel.mm.mempolicy import alloc_page_vma
from refmodel.mm.mm_types import MMF_UNSTABLE, mm_struct, vm_area_struct
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_writeback import set_page_dirty
from refmodel.mm.rmap import (
    _page_set_anon_rmap,
    anon_vma_prepare,
    linear_page_index,
    page_add_file_rmap,
    page_add_new_anon_rmap,
    page_remove_rmap,
)
from refmodel.mm.shmem import shmem_fault
from refmodel.mm.swap import lru_cache_add_inactive_or_unevictable
from refmodel.mm.swap_slots import swap_free
from refmodel.mm.swap_state import (
    lookup_swap_cache,
    reuse_swap_page,
    swapin_readahead,
    try_to_free_swap,
)
from refmodel.mm.swapfile import mem_cgroup_swap_full
from refmodel.mm.swapops import non_swap_entry, pte_swp_soft_dirty, pte_to_swp_entry
from refmodel.mm.types import PAGE_MAPPING_ANON, Page, PageFlags
from refmodel.mm.vm_fault import (
    FAULT_FLAG_MKWRITE,
    FAULT_FLAG_WRITE,
    VM_FAULT_ERROR,
    VM_FAULT_LOCKED,
    VM_FAULT_MAJOR,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_RETRY,
    VM_FAULT_SIGBUS,
    VM_FAULT_WRITE,
    vm_fault,
)
from refmodel.mm.vm_flags import VM_EXEC, VM_LOCKED, VM_READ, VM_SHARED, VM_WRITE
from refmodel.trace import kernel

F = "mm/memory.c"
MM_H = "include/linux/mm.h"
PG_uptodate = int(PageFlags.PG_uptodate)
GFP_KERNEL = G.GFP_KERNEL
PG_mlocked = int(PageFlags.PG_mlocked)
_SWAPCACHE = int(PageFlags.PG_owner_priv_1 | PageFlags.PG_swapbacked)  # PageSwapCache
RMAP_EXCLUSIVE = 0x1  # include/linux/rmap.h
FAULT_AROUND_BYTES = 65536  # fault_around_bytes (debugfs-tunable; 64 KiB by default)


# --------------------------------------------------------------------------------------------
# vm_operations_struct of the model's files (mm/filemap.c generic_file_vm_ops,
# mm/shmem.c shmem_vm_ops), keyed by the name mm/mmap.py's call_mmap installs.


@dataclass(frozen=True, slots=True)
class vm_operations_struct:
    fault: Callable[[vm_fault], int] | None
    map_pages: Callable[[vm_fault, int, int], None] | None
    page_mkwrite: Callable[[vm_fault], int] | None


def _vm_ops(vma: vm_area_struct) -> vm_operations_struct | None:
    if vma.vm_ops is None:
        return None
    return _VM_OPS[vma.vm_ops]


@kernel(MM_H)
def vma_is_anonymous(vma: vm_area_struct) -> bool:
    """Models include/linux/mm.h:vma_is_anonymous: no vm_ops."""
    return vma.vm_ops is None


@kernel(MM_H)
def maybe_mkwrite(pte: int, vma: vm_area_struct) -> int:
    """Models include/linux/mm.h:maybe_mkwrite: writable only in a VM_WRITE VMA."""
    if vma.vm_flags & VM_WRITE:
        pte = pte_mkwrite(pte)
    return pte


@kernel("arch/x86/mm/pgtable.c")
def ptep_set_access_flags(pgdat: pglist_data, vma: vm_area_struct, address: int, ptep: int,
                          entry: int, dirty: int) -> bool:
    """Models arch/x86/mm/pgtable.c:ptep_set_access_flags: store the entry only when it
    changed and the fault was a write (the CPU sets the accessed bit itself)."""
    changed = read_entry(pgdat, ptep) != entry  # !pte_same
    if changed and dirty:
        set_pte(pgdat, ptep, entry)
    return changed


@kernel(F)
def __get_fault_gfp_mask(vma: vm_area_struct) -> int:
    """Models mm/memory.c:__get_fault_gfp_mask: the file mapping's mask, with FS and IO."""
    if vma.vm_file is not None:
        return mapping_gfp_mask(vma.vm_file.f_mapping) | G.__GFP_FS | G.__GFP_IO
    return GFP_KERNEL


# --------------------------------------------------------------------------------------------
# The entry: handle_mm_fault → __handle_mm_fault → handle_pte_fault


@kernel(F)
def handle_mm_fault(pgdat: pglist_data, vma: vm_area_struct, address: int, flags: int,
                    regs: object = None) -> int:
    """Models mm/memory.c:handle_mm_fault(vma, address, flags, regs): the VM_FAULT_* bits
    of handling one fault (event counting, memcg and the pkey check are left out)."""
    return _handle_mm_fault(pgdat, vma, address, flags)


def _handle_mm_fault(pgdat: pglist_data, vma: vm_area_struct, address: int,
                     flags: int) -> int:
    """Models mm/memory.c:__handle_mm_fault: allocate the missing p4d, pud and pmd tables
    (VM_FAULT_OOM if one cannot be), then handle_pte_fault. No THP."""
    mm = vma.vm_mm
    assert mm is not None
    # The struct vm_fault initialiser's pgoff and gfp_mask, computed first as in 5.10; the
    # struct itself is built once pud and pmd are known (nothing reads it before).
    pgoff = linear_page_index(vma, address)
    gfp_mask = __get_fault_gfp_mask(vma)
    pgd = pgd_offset(mm, address)
    p4d = p4d_alloc(pgdat, mm, pgd, address)
    if p4d is None:
        return VM_FAULT_OOM
    pud = pud_alloc(pgdat, mm, p4d, address)
    if pud is None:
        return VM_FAULT_OOM
    # 5.10 tests pud_none(*pud) && __transparent_hugepage_enabled(vma): pud_none runs even
    # without THP; the huge-pud branches never apply. (*pud and *pmd are read in line: their
    # tables exist once pud_alloc / pmd_alloc succeeded.)
    tables = pgdat.pgtables
    pud_none(tables[pud >> PAGE_SHIFT].get((pud >> 3) & 511, 0))
    pmd = pmd_alloc(pgdat, mm, pud, address)
    if pmd is None:
        return VM_FAULT_OOM
    pmd_none(tables[pmd >> PAGE_SHIFT].get((pmd >> 3) & 511, 0))  # the same for the pmd
    # vm_fault(pgdat, vma, address, flags, pgoff, gfp_mask, real_address, pmd, pud)
    return handle_pte_fault(vm_fault(pgdat, vma, address & PAGE_MASK, flags, pgoff, gfp_mask,
                                     address, pmd, pud))


kernel(F, "__handle_mm_fault")(_handle_mm_fault)


@kernel(F)
def handle_pte_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:handle_pte_fault: no pte → do_anonymous_page / do_fault; a
    non-present pte → do_swap_page (not modelled); a write to a read-only pte → do_wp_page;
    otherwise only the accessed/dirty bits are brought up to date."""
    pgdat = vmf.pgdat
    tables = pgdat.pgtables
    pmd = vmf.pmd
    try:  # READ_ONCE(*pmd); a missing entry (a new pte table's first fault) reads as 0
        pmdval = tables[pmd >> PAGE_SHIFT][(pmd >> 3) & 511]
    except KeyError:
        pmdval = 0
    if pmd_none(pmdval):
        vmf.pte = None
    else:
        pte = vmf.pte = pte_offset_map(pgdat, pmd, vmf.address)
        try:  # the pte table is there (the pmd points at it); its entry often is not
            entry = tables[pte >> PAGE_SHIFT].get((pte >> 3) & 511, 0)
        except KeyError:
            entry = 0
        vmf.orig_pte = entry
        if pte_none(entry):
            vmf.pte = None
    if vmf.pte is None:
        if vma_is_anonymous(vmf.vma):
            return do_anonymous_page(vmf)
        return do_fault(vmf)
    if not pte_present(entry):
        return do_swap_page(vmf)
    if not entry & _PAGE_PRESENT and vmf.vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC):
        raise KernelBug("model: do_numa_page is not modelled",
                        f"PROT_NONE pte at {vmf.address:#x} in an accessible VMA")
    if vmf.flags & FAULT_FLAG_WRITE:
        if not pte_write(entry):
            return do_wp_page(vmf)
        entry = pte_mkdirty(entry)
    entry = pte_mkyoung(entry)
    ptep_set_access_flags(pgdat, vmf.vma, vmf.address, pte, entry,  # vmf.pte, still
                          vmf.flags & FAULT_FLAG_WRITE)
    return 0


# --------------------------------------------------------------------------------------------
# Anonymous memory


@kernel("include/linux/oom.h")
def check_stable_address_space(mm: mm_struct) -> int:
    """Models include/linux/oom.h:check_stable_address_space: VM_FAULT_SIGBUS once the OOM
    reaper has unmapped part of the mm (MMF_UNSTABLE), so that a fault never maps memory
    into an address space being torn down; else 0."""
    if mm.flags & (1 << MMF_UNSTABLE):
        return VM_FAULT_SIGBUS
    return 0


@kernel(F)
def do_anonymous_page(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_anonymous_page: a read maps the shared zero page (a special,
    read-only pte: no page reference, no map count, no rss); a write maps a new zeroed page
    (writable and dirty in a VM_WRITE VMA), counted in MM_ANONPAGES. Neither once the OOM
    reaper has been at the mm (check_stable_address_space: VM_FAULT_SIGBUS)."""
    pgdat = vmf.pgdat
    vma = vmf.vma
    mm = vma.vm_mm
    assert mm is not None
    if vma.vm_flags & VM_SHARED:
        return VM_FAULT_SIGBUS
    if pte_alloc(pgdat, mm, vmf.pmd):
        return VM_FAULT_OOM
    if not vmf.flags & FAULT_FLAG_WRITE:
        entry = pte_mkspecial(pfn_pte(my_zero_pfn(vmf.address), vma.vm_page_prot))
        vmf.pte = pte_offset_map_lock(pgdat, mm, vmf.pmd, vmf.address)
        if not pte_none(read_entry(pgdat, vmf.pte)):
            return 0
        ret = check_stable_address_space(mm)
        if ret:
            return ret
        set_pte_at(pgdat, mm, vmf.address, vmf.pte, entry)
        return 0
    if anon_vma_prepare(vma):
        return VM_FAULT_OOM
    address = vmf.address
    page = alloc_zeroed_user_highpage_movable(pgdat, vma, address)
    if page is None:
        return VM_FAULT_OOM
    page.flags |= PG_uptodate  # __SetPageUptodate
    entry = mk_pte(page, vma.vm_page_prot)
    if vma.vm_flags & VM_WRITE:
        entry = pte_mkwrite(pte_mkdirty(entry))
    pte = vmf.pte = pte_offset_map_lock(pgdat, mm, vmf.pmd, address)
    # *vmf->pte: the pte table is there (pte_alloc made sure of it)
    if not pte_none(pgdat.pgtables[pte >> PAGE_SHIFT].get((pte >> 3) & 511, 0)):
        put_page(pgdat, page)
        return 0
    ret = check_stable_address_space(mm)
    if ret:
        put_page(pgdat, page)
        return ret
    inc_mm_counter(mm, MM_ANONPAGES)
    page_add_new_anon_rmap(page, vma, address, False)
    lru_cache_add_inactive_or_unevictable(pgdat, page, vma)
    set_pte_at(pgdat, mm, address, pte, entry)
    return 0


# --------------------------------------------------------------------------------------------
# File-backed (and shmem) memory: do_fault


def _do_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:__do_fault: preallocate a pte table if the pmd is empty (before
    the page lock, as 5.10 does), then ->fault."""
    vma = vmf.vma
    mm = vma.vm_mm
    assert mm is not None
    if pmd_none(read_entry(vmf.pgdat, vmf.pmd)) and vmf.prealloc_pte is None:
        vmf.prealloc_pte = pte_alloc_one(vmf.pgdat, mm)
        if vmf.prealloc_pte is None:
            return VM_FAULT_OOM
    ops = _vm_ops(vma)
    assert ops is not None and ops.fault is not None
    return ops.fault(vmf)


kernel(F, "__do_fault")(_do_fault)


@kernel(F)
def pte_alloc_one_map(vmf: vm_fault) -> int:
    """Models mm/memory.c:pte_alloc_one_map: install the preallocated pte table (or
    allocate one) under an empty pmd, then point vmf->pte at the entry."""
    pgdat = vmf.pgdat
    mm = vmf.vma.vm_mm
    assert mm is not None
    if pmd_none(read_entry(pgdat, vmf.pmd)):
        if vmf.prealloc_pte is not None:
            # (5.10 tests pmd_none again under the pmd lock: still none on one CPU)
            if pmd_none(read_entry(pgdat, vmf.pmd)):
                mm_inc_nr_ptes(mm)
                pmd_populate(pgdat, mm, vmf.pmd, vmf.prealloc_pte)
                vmf.prealloc_pte = None
        elif pte_alloc(pgdat, mm, vmf.pmd):
            return VM_FAULT_OOM
    vmf.pte = pte_offset_map_lock(pgdat, mm, vmf.pmd, vmf.address)
    return 0


@kernel(F)
def alloc_set_pte(vmf: vm_fault, page: Page) -> int:
    """Models mm/memory.c:alloc_set_pte: map ``page`` at vmf->address: a COW copy (write
    fault, private VMA) as a new anonymous page, else as a file page; writable and dirty
    on a write in a VM_WRITE VMA. VM_FAULT_NOPAGE if a pte appeared meanwhile."""
    pgdat = vmf.pgdat
    vma = vmf.vma
    mm = vma.vm_mm
    assert mm is not None
    write = vmf.flags & FAULT_FLAG_WRITE
    # pmd_none(*vmf->pmd) && PageTransCompound(page): no compound page is ever mapped here
    pmd_none(read_entry(pgdat, vmf.pmd))
    if vmf.pte is None:
        ret = pte_alloc_one_map(vmf)
        if ret:
            return ret
    assert vmf.pte is not None
    if not pte_none(read_entry(pgdat, vmf.pte)):
        return VM_FAULT_NOPAGE
    entry = mk_pte(page, vma.vm_page_prot)
    if write:
        entry = maybe_mkwrite(pte_mkdirty(entry), vma)
    if write and not vma.vm_flags & VM_SHARED:
        inc_mm_counter(mm, MM_ANONPAGES)
        page_add_new_anon_rmap(page, vma, vmf.address, False)
        lru_cache_add_inactive_or_unevictable(pgdat, page, vma)
    else:
        inc_mm_counter(mm, mm_counter_file(page))
        page_add_file_rmap(page, False)
    set_pte_at(pgdat, mm, vmf.address, vmf.pte, entry)
    return 0


@kernel(F)
def finish_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:finish_fault: map the COW copy (private write) or the cache
    page; in a private mapping not once the OOM reaper has been at the mm."""
    if vmf.flags & FAULT_FLAG_WRITE and not vmf.vma.vm_flags & VM_SHARED:
        page = vmf.cow_page
    else:
        page = vmf.page
    assert page is not None
    if not vmf.vma.vm_flags & VM_SHARED:
        mm = vmf.vma.vm_mm
        assert mm is not None
        ret = check_stable_address_space(mm)
        if ret:
            return ret
    return alloc_set_pte(vmf, page)


@kernel(F)
def do_fault_around(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_fault_around: map the already-cached pages of the
    fault_around_bytes-aligned window (inside the VMA and the pte table) around the fault
    with ->map_pages; VM_FAULT_NOPAGE if that mapped the faulting page too."""
    pgdat = vmf.pgdat
    vma = vmf.vma
    mm = vma.vm_mm
    assert mm is not None
    address = vmf.address
    start_pgoff = vmf.pgoff
    nr_pages = FAULT_AROUND_BYTES >> PAGE_SHIFT
    mask = ~(nr_pages * 4096 - 1) & PAGE_MASK
    ret = 0
    vmf.address = max(address & mask, vma.vm_start)
    off = ((address - vmf.address) >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)
    start_pgoff -= off
    end_pgoff = (start_pgoff - ((vmf.address >> PAGE_SHIFT) & (PTRS_PER_PTE - 1))
                 + PTRS_PER_PTE - 1)
    end_pgoff = min(end_pgoff, ((vma.vm_end - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff - 1,
                    start_pgoff + nr_pages - 1)
    if pmd_none(read_entry(pgdat, vmf.pmd)):
        vmf.prealloc_pte = pte_alloc_one(pgdat, mm)
        if vmf.prealloc_pte is None:
            vmf.address = address
            vmf.pte = None
            return 0
    ops = _vm_ops(vma)
    assert ops is not None and ops.map_pages is not None
    ops.map_pages(vmf, start_pgoff, end_pgoff)
    if vmf.pte is not None:
        ptep = vmf.pte - (((vmf.address >> PAGE_SHIFT) - (address >> PAGE_SHIFT)) << 3)
        if not pte_none(read_entry(pgdat, ptep)):
            ret = VM_FAULT_NOPAGE
    vmf.address = address
    vmf.pte = None
    return ret


@kernel("mm/filemap.c")
def filemap_map_pages(vmf: vm_fault, start_pgoff: int, end_pgoff: int) -> None:
    """Models mm/filemap.c:filemap_map_pages (kept here beside alloc_set_pte, which it
    calls): map every uptodate cached page of [start_pgoff, end_pgoff] below EOF whose pte
    is empty, each with its own reference. Pages are never locked or under readahead in
    the model."""
    f = vmf.vma.vm_file
    assert f is not None
    mapping: address_space = f.f_mapping
    last_pgoff = start_pgoff
    max_idx = DIV_ROUND_UP(f.size, 4096)
    for index in sorted(i for i in mapping.i_pages if start_pgoff <= i <= end_pgoff):
        page = mapping.i_pages[index]
        get_page(page)  # page_cache_get_speculative
        if not page.flags & PG_uptodate or index >= max_idx:
            put_page(vmf.pgdat, page)
            continue
        vmf.address += (index - last_pgoff) << PAGE_SHIFT
        if vmf.pte is not None:
            vmf.pte += (index - last_pgoff) << 3
        last_pgoff = index
        if alloc_set_pte(vmf, page):
            put_page(vmf.pgdat, page)


@kernel(F)
def do_read_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_read_fault: fault-around first (it may map the page itself),
    then ->fault and finish_fault; the pte keeps ->fault's page reference."""
    ops = _vm_ops(vmf.vma)
    assert ops is not None
    if ops.map_pages is not None and FAULT_AROUND_BYTES >> PAGE_SHIFT > 1:
        ret = do_fault_around(vmf)
        if ret:
            return ret
    ret = _do_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        return ret
    ret |= finish_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        assert vmf.page is not None
        put_page(vmf.pgdat, vmf.page)
    return ret


@kernel(F)
def do_cow_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_cow_fault: a write to a private file page not yet mapped: a
    new anonymous page (alloc_page_vma) gets a copy of the cache page and is mapped
    writable; the cache page's reference is dropped."""
    pgdat = vmf.pgdat
    vma = vmf.vma
    if anon_vma_prepare(vma):
        return VM_FAULT_OOM
    vmf.cow_page = alloc_page_vma(pgdat, G.GFP_HIGHUSER_MOVABLE, vma, vmf.address)
    if vmf.cow_page is None:
        return VM_FAULT_OOM
    ret = _do_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        put_page(pgdat, vmf.cow_page)
        return ret
    assert vmf.page is not None
    copy_user_highpage(pgdat, vmf.cow_page, vmf.page, vmf.address, vma)
    vmf.cow_page.flags |= PG_uptodate
    ret |= finish_fault(vmf)
    put_page(pgdat, vmf.page)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        put_page(pgdat, vmf.cow_page)
    return ret


@kernel(F)
def do_page_mkwrite(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_page_mkwrite: ->page_mkwrite with FAULT_FLAG_MKWRITE."""
    old_flags = vmf.flags
    vmf.flags = FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE
    ops = _vm_ops(vmf.vma)
    assert ops is not None and ops.page_mkwrite is not None
    ret = ops.page_mkwrite(vmf)
    vmf.flags = old_flags
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
        return ret
    return ret | VM_FAULT_LOCKED


@kernel(F)
def fault_dirty_shared_page(vmf: vm_fault) -> int:
    """Models mm/memory.c:fault_dirty_shared_page: set_page_dirty (dirty throttling and
    file_update_time are left out). 0."""
    assert vmf.page is not None
    set_page_dirty(vmf.page)
    return 0


@kernel(F)
def do_shared_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_shared_fault: a write to a shared file page not yet mapped:
    ->fault, ->page_mkwrite if the file has one, map it writable and dirty, dirty the
    page."""
    ret = _do_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        return ret
    assert vmf.page is not None
    ops = _vm_ops(vmf.vma)
    if ops is not None and ops.page_mkwrite is not None:
        tmp = do_page_mkwrite(vmf)
        if not tmp or tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            put_page(vmf.pgdat, vmf.page)
            return tmp
    ret |= finish_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        put_page(vmf.pgdat, vmf.page)
        return ret
    ret |= fault_dirty_shared_page(vmf)
    return ret


@kernel(F)
def do_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_fault: no ->fault is VM_FAULT_SIGBUS; a read → do_read_fault,
    a private write → do_cow_fault, a shared write → do_shared_fault. An unused
    preallocated pte table is freed."""
    vma = vmf.vma
    ops = _vm_ops(vma)
    if ops is None or ops.fault is None:
        ret = VM_FAULT_SIGBUS
    elif not vmf.flags & FAULT_FLAG_WRITE:
        ret = do_read_fault(vmf)
    elif not vma.vm_flags & VM_SHARED:
        ret = do_cow_fault(vmf)
    else:
        ret = do_shared_fault(vmf)
    if vmf.prealloc_pte is not None:
        assert vma.vm_mm is not None
        pte_free(vmf.pgdat, vma.vm_mm, vmf.prealloc_pte)
        vmf.prealloc_pte = None
    return ret


# --------------------------------------------------------------------------------------------
# Swap-in: do_swap_page


@kernel("mm/rmap.c")
def do_page_add_anon_rmap(pgdat: pglist_data, page: Page, vma: vm_area_struct, address: int,
                          flags: int) -> None:
    """Models mm/rmap.c:do_page_add_anon_rmap for an order-0 page: one more mapping; the
    first one sets page->mapping to the VMA's anon_vma (RMAP_EXCLUSIVE) or its root."""
    page._mapcount += 1
    if page._mapcount == 0:
        _page_set_anon_rmap(page, vma, address, flags & RMAP_EXCLUSIVE)


@kernel(F)
def do_swap_page(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_swap_page: find the slot's page in the swap cache or read it
    in (swapin_readahead: VM_FAULT_MAJOR), map it in place of the swap pte (MM_SWAPENTS -1,
    MM_ANONPAGES +1, soft-dirty carried over), writable at once if a write fault finds this
    the page's only user (reuse_swap_page), drop the pte's slot reference (swap_free), and
    let go of the slot when swap is over half full or the VMA is locked. A write fault that
    could not reuse the page goes on to do_wp_page. The swap device answers at once, so the
    page lock never makes the fault retry."""
    pgdat = vmf.pgdat
    vma = vmf.vma
    mm = vma.vm_mm
    assert mm is not None
    # pte_unmap_same: on x86-64 (a pte is one word) it compares nothing and says "same"
    entry = pte_to_swp_entry(vmf.orig_pte)
    if non_swap_entry(entry):
        raise KernelBug("model: non-swap entries are not modelled", f"{vmf.orig_pte:#x}")
    ret = 0
    page = lookup_swap_cache(pgdat, entry)
    swapcache = page
    if page is None:
        page = swapin_readahead(pgdat, entry, G.GFP_HIGHUSER_MOVABLE, vma, vmf.address)
        swapcache = page
        if page is None:
            # back out if the pte changed meanwhile: re-take it (pte_offset_map_lock)
            ptep = vmf.pte = pte_offset_map_lock(pgdat, mm, vmf.pmd, vmf.address)
            if read_entry(pgdat, ptep) == vmf.orig_pte:  # pte_same
                return VM_FAULT_OOM
            return 0
        ret = VM_FAULT_MAJOR
    if page.flags & _SWAPCACHE != _SWAPCACHE or page.private != entry:  # !PageSwapCache
        put_page(pgdat, page)  # out_page: someone freed the swap cache meanwhile
        return ret
    ptep = vmf.pte = pte_offset_map_lock(pgdat, mm, vmf.pmd, vmf.address)
    if read_entry(pgdat, ptep) != vmf.orig_pte:  # !pte_same: out_nomap
        put_page(pgdat, page)
        return ret
    if not page.flags & PG_uptodate:
        put_page(pgdat, page)
        return VM_FAULT_SIGBUS
    inc_mm_counter(mm, MM_ANONPAGES)
    dec_mm_counter(mm, MM_SWAPENTS)
    pte = mk_pte(page, vma.vm_page_prot)
    exclusive = 0
    if vmf.flags & FAULT_FLAG_WRITE and reuse_swap_page(pgdat, page):
        pte = maybe_mkwrite(pte_mkdirty(pte), vma)
        vmf.flags &= ~FAULT_FLAG_WRITE
        ret |= VM_FAULT_WRITE
        exclusive = RMAP_EXCLUSIVE
    if pte_swp_soft_dirty(vmf.orig_pte):
        pte |= _PAGE_SOFT_DIRTY  # pte_mksoft_dirty
    set_pte_at(pgdat, mm, vmf.address, ptep, pte)
    vmf.orig_pte = pte
    assert swapcache is page
    do_page_add_anon_rmap(pgdat, page, vma, vmf.address, exclusive)
    swap_free(pgdat, entry)
    if (mem_cgroup_swap_full(pgdat, page) or vma.vm_flags & VM_LOCKED
            or page.flags & PG_mlocked):
        try_to_free_swap(pgdat, page)
    if vmf.flags & FAULT_FLAG_WRITE:
        ret |= do_wp_page(vmf)
        if ret & VM_FAULT_ERROR:
            ret &= VM_FAULT_ERROR
    return ret


# --------------------------------------------------------------------------------------------
# Write-protect faults: do_wp_page


@kernel(F)
def wp_page_reuse(vmf: vm_fault) -> None:
    """Models mm/memory.c:wp_page_reuse: the same page, now young, dirty and (in a VM_WRITE
    VMA) writable."""
    assert vmf.pte is not None
    entry = pte_mkyoung(vmf.orig_pte)
    entry = maybe_mkwrite(pte_mkdirty(entry), vmf.vma)
    ptep_set_access_flags(vmf.pgdat, vmf.vma, vmf.address, vmf.pte, entry, 1)


@kernel(F)
def cow_user_page(pgdat: pglist_data, dst: Page, src: Page, vmf: vm_fault) -> bool:
    """Models mm/memory.c:cow_user_page with a struct page to copy from."""
    copy_user_highpage(pgdat, dst, src, vmf.address, vmf.vma)
    return True


@kernel(F)
def wp_page_copy(vmf: vm_fault) -> int:
    """Models mm/memory.c:wp_page_copy: a new anonymous page (zeroed if the old pte mapped
    the zero page, else a copy of the old page) replaces the old pte, writable and dirty;
    the old page loses its mapping and both references (the pte's and do_wp_page's)."""
    pgdat = vmf.pgdat
    vma = vmf.vma
    mm = vma.vm_mm
    assert mm is not None and vmf.pte is not None
    old_page = vmf.page
    if anon_vma_prepare(vma):
        if old_page is not None:
            put_page(pgdat, old_page)
        return VM_FAULT_OOM
    if is_zero_pfn(pte_pfn(vmf.orig_pte)):
        new_page = alloc_zeroed_user_highpage_movable(pgdat, vma, vmf.address)
        if new_page is None:
            if old_page is not None:
                put_page(pgdat, old_page)
            return VM_FAULT_OOM
    else:
        new_page = alloc_page_vma(pgdat, G.GFP_HIGHUSER_MOVABLE, vma, vmf.address)
        if new_page is None:
            if old_page is not None:
                put_page(pgdat, old_page)
            return VM_FAULT_OOM
        assert old_page is not None
        cow_user_page(pgdat, new_page, old_page, vmf)
    new_page.flags |= PG_uptodate
    vmf.pte = pte_offset_map_lock(pgdat, mm, vmf.pmd, vmf.address)  # re-check the pte
    if read_entry(pgdat, vmf.pte) != vmf.orig_pte:  # !pte_same
        # the pte changed while the new page was allocated (reclaim may have swapped the
        # old page out): give up; the access faults again
        put_page(pgdat, new_page)
        if old_page is not None:
            put_page(pgdat, old_page)
        return 0
    if old_page is not None:
        if not old_page.mapping_flags & PAGE_MAPPING_ANON:
            dec_mm_counter(mm, mm_counter_file(old_page))
            inc_mm_counter(mm, MM_ANONPAGES)
    else:
        inc_mm_counter(mm, MM_ANONPAGES)
    entry = mk_pte(new_page, vma.vm_page_prot)
    entry = maybe_mkwrite(pte_mkdirty(entry), vma)
    ptep_clear_flush(pgdat, vma, vmf.address, vmf.pte)
    page_add_new_anon_rmap(new_page, vma, vmf.address, False)
    lru_cache_add_inactive_or_unevictable(pgdat, new_page, vma)
    set_pte_at(pgdat, mm, vmf.address, vmf.pte, entry)
    if old_page is not None:
        page_remove_rmap(pgdat, old_page, False)
        put_page(pgdat, old_page)  # the reference the old pte held
        put_page(pgdat, old_page)  # do_wp_page's get_page
    return VM_FAULT_WRITE


@kernel(F)
def finish_mkwrite_fault(vmf: vm_fault) -> int:
    """Models mm/memory.c:finish_mkwrite_fault: the pte unchanged → wp_page_reuse."""
    mm = vmf.vma.vm_mm
    assert mm is not None
    vmf.pte = pte_offset_map_lock(vmf.pgdat, mm, vmf.pmd, vmf.address)
    if read_entry(vmf.pgdat, vmf.pte) != vmf.orig_pte:  # !pte_same
        return VM_FAULT_NOPAGE
    wp_page_reuse(vmf)
    return 0


@kernel(F)
def wp_page_shared(vmf: vm_fault) -> int:
    """Models mm/memory.c:wp_page_shared: a write to a shared writable file page: tell the
    file (->page_mkwrite) if it wants to know, reuse the page, dirty it."""
    page = vmf.page
    assert page is not None
    ret = VM_FAULT_WRITE
    get_page(page)
    ops = _vm_ops(vmf.vma)
    if ops is not None and ops.page_mkwrite is not None:
        tmp = do_page_mkwrite(vmf)
        if not tmp or tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            put_page(vmf.pgdat, page)
            return tmp
        tmp = finish_mkwrite_fault(vmf)
        if tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            put_page(vmf.pgdat, page)
            return tmp
    else:
        wp_page_reuse(vmf)
    ret |= fault_dirty_shared_page(vmf)
    put_page(vmf.pgdat, page)
    return ret


@kernel(F)
def do_wp_page(vmf: vm_fault) -> int:
    """Models mm/memory.c:do_wp_page (5.10): a write to a present read-only pte. The zero
    page is copied; an anonymous page is reused only if page_count == 1 (and, under the
    page lock, page_mapcount == 1) — 5.9's rule, which copies whenever anyone else holds a
    reference; a shared writable file page → wp_page_shared; anything else is copied."""
    vma = vmf.vma
    vmf.page = vm_normal_page(vmf.pgdat, vma, vmf.address, vmf.orig_pte)
    if vmf.page is None:
        if vma.vm_flags & (VM_WRITE | VM_SHARED) == (VM_WRITE | VM_SHARED):
            raise KernelBug("model: wp_pfn_shared is not modelled", "no VM_PFNMAP mappings")
        return wp_page_copy(vmf)
    page = vmf.page
    if page.mapping_flags & PAGE_MAPPING_ANON:
        if page._refcount == 1 and page._mapcount == 0:  # page_count / page_mapcount == 1
            wp_page_reuse(vmf)
            return VM_FAULT_WRITE
    elif vma.vm_flags & (VM_WRITE | VM_SHARED) == (VM_WRITE | VM_SHARED):
        return wp_page_shared(vmf)
    get_page(page)
    return wp_page_copy(vmf)


_VM_OPS: dict[str, vm_operations_struct] = {
    "generic_file_vm_ops": vm_operations_struct(filemap_fault, filemap_map_pages,
                                                filemap_page_mkwrite),
    "shmem_vm_ops": vm_operations_struct(shmem_fault, filemap_map_pages, None),
}
