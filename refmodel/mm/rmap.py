"""The anon_vma links VMA merging and splitting maintain (mm/rmap.c, 5.10), minimally.

What decides merges: which anon_vma a VMA points to and how many entries its anon_vma_chain
has; and the page side of rmap: _mapcount, page->mapping/index of anonymous pages. The
interval trees, anon_vma locking and the reverse walk itself come with reclaim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Generic, TypeVar

from refmodel.arch.x86.pgtable import (
    p4d_offset,
    p4d_present,
    pgd_offset,
    pgd_present,
    pmd_offset,
    pmd_present,
    pte_dirty,
    pte_mkclean,
    pte_offset_map,
    pte_pfn,
    pte_present,
    pte_write,
    pte_wrprotect,
    ptep_clear_flush,
    pud_offset,
    pud_present,
    read_entry,
    set_pte_at,
    write_entry,
)
from refmodel.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_SOFT_DIRTY,
)
from refmodel.bugs import KernelBug
from refmodel.fs import address_space
from refmodel.mm.mm_counters import (
    dec_mm_counter,
    inc_mm_counter,
    mm_counter_file,
    update_hiwater_rss,
)
from refmodel.mm.mm_inline import del_page_from_lru_list, page_lru
from refmodel.mm.mm_types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    anon_vma,
    vm_area_struct,
)
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_writeback import set_page_dirty
from refmodel.mm.swap import get_page, lru_cache_add, put_page
from refmodel.mm.swapfile import swap_duplicate
from refmodel.mm.swapops import (
    is_swap_pte,
    pte_swp_mksoft_dirty,
    pte_to_swp_entry,
    swp_entry_to_pte,
)
from refmodel.mm.types import PAGE_MAPPING_ANON, Page, PageFlags
from refmodel.mm.vm_flags import VM_ACCESS_FLAGS, VM_LOCKED, VM_SEQ_READ, VM_SHARED, VM_SOFTDIRTY
from refmodel.trace import kernel

F = "mm/rmap.c"
PG_mlocked = int(PageFlags.PG_mlocked)
PG_lru = int(PageFlags.PG_lru)
PG_swapcache = int(PageFlags.PG_owner_priv_1)
PG_swapbacked_ = int(PageFlags.PG_swapbacked)
PAGE_SHIFT = 12
PG_swapbacked = int(PageFlags.PG_swapbacked)
_NOT_ACCESSED = ~_PAGE_ACCESSED  # worked out once: page_referenced_one clears it per page
T = TypeVar("T")


@kernel(F)
def anon_vma_clone(dst: vm_area_struct, src: vm_area_struct) -> int:
    """Models mm/rmap.c:anon_vma_clone: link dst to every anon_vma src is linked to.
    Returns 0 (the allocation of chain entries cannot fail in the model)."""
    for av in src.anon_vma_chain:
        if not any(x is av for x in dst.anon_vma_chain):
            dst.anon_vma_chain.append(av)
            av.rb_root.append(dst)  # anon_vma_chain_link
    return 0


@kernel(F)
def unlink_anon_vmas(vma: vm_area_struct) -> None:
    """Models mm/rmap.c:unlink_anon_vmas: drop every chain entry of vma (out of each
    anon_vma's interval tree too)."""
    for av in vma.anon_vma_chain:
        av.rb_root[:] = [v for v in av.rb_root if v is not vma]
    vma.anon_vma_chain.clear()
    vma.anon_vma = None


@kernel(F)
def anon_vma_merge(vma: vm_area_struct, next: vm_area_struct) -> None:
    """Models include/linux/rmap.h:anon_vma_merge: next is merged into vma, which must
    already share its anon_vma."""
    if vma.anon_vma is not next.anon_vma:
        raise KernelBug("VM_BUG_ON_VMA(vma->anon_vma != next->anon_vma)",
                        f"{vma} merging {next}")
    unlink_anon_vmas(next)


# --------------------------------------------------------------------------------------------
# anon_vma creation (mm/rmap.c): what the fault and fork paths add. The anon_vma_chain
# entries are the anon_vmas themselves (see anon_vma_clone); the interval trees are left out.


@kernel(F)
def anon_vma_alloc() -> anon_vma:
    """Models mm/rmap.c:anon_vma_alloc: refcount 1, degree 1, its own root."""
    av = anon_vma()
    av.root = av
    return av


def anon_vma_compatible(a: vm_area_struct, b: vm_area_struct) -> bool:
    """mm/mmap.c:anon_vma_compatible: b follows a directly, same file and policy, flags
    equal but for the access bits and VM_SOFTDIRTY, contiguous pgoff."""
    return (a.vm_end == b.vm_start and a.vm_file is b.vm_file
            and not (a.vm_flags ^ b.vm_flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY)
            and b.vm_pgoff == a.vm_pgoff + ((b.vm_start - a.vm_start) >> PAGE_SHIFT))


def reusable_anon_vma(old: vm_area_struct, a: vm_area_struct,
                      b: vm_area_struct) -> anon_vma | None:
    """mm/mmap.c:reusable_anon_vma: old's anon_vma if a and b are compatible and old is
    linked to that one anon_vma only (list_is_singular)."""
    if anon_vma_compatible(a, b):
        av = old.anon_vma
        if av is not None and len(old.anon_vma_chain) == 1:
            return av
    return None


@kernel("mm/mmap.c")
def find_mergeable_anon_vma(vma: vm_area_struct) -> anon_vma | None:
    """Models mm/mmap.c:find_mergeable_anon_vma: borrow the next VMA's anon_vma, else the
    previous one's, when a later mprotect could merge them. (It lives in mm/mmap.c; the
    model keeps it beside its only caller, since mm/mmap.py imports this module.)"""
    if vma.vm_next is not None:
        av = reusable_anon_vma(vma.vm_next, vma, vma.vm_next)
        if av is not None:
            return av
    if vma.vm_prev is not None:
        return reusable_anon_vma(vma.vm_prev, vma.vm_prev, vma)
    return None


def _anon_vma_prepare(vma: vm_area_struct) -> int:
    """Models mm/rmap.c:__anon_vma_prepare: reuse a neighbour's anon_vma or allocate one,
    and link the VMA to it. 0 (allocation never fails in the model)."""
    av = find_mergeable_anon_vma(vma)
    allocated = None
    if av is None:
        av = anon_vma_alloc()
        allocated = av
    if vma.anon_vma is None:  # re-checked under page_table_lock in 5.10
        vma.anon_vma = av
        vma.anon_vma_chain.append(av)  # anon_vma_chain_link
        av.rb_root.append(vma)
        av.degree += 1
        allocated = None
    del allocated  # put_anon_vma of an unused allocation
    return 0


kernel(F, "__anon_vma_prepare")(_anon_vma_prepare)


@kernel("include/linux/rmap.h")
def anon_vma_prepare(vma: vm_area_struct) -> int:
    """Models include/linux/rmap.h:anon_vma_prepare: nothing to do if the VMA has one."""
    if vma.anon_vma is not None:
        return 0
    return _anon_vma_prepare(vma)


@kernel(F)
def anon_vma_fork(vma: vm_area_struct, pvma: vm_area_struct) -> int:
    """Models mm/rmap.c:anon_vma_fork: the child VMA is linked to every anon_vma of the
    parent's VMA (anon_vma_clone) and gets its own anon_vma, child of the parent's (same
    root). 5.10's reuse of an anon_vma with degree < 2 inside anon_vma_clone is left out:
    it only matters for anon_vmas whose owners have all exited."""
    if pvma.anon_vma is None:
        return 0
    vma.anon_vma = None
    anon_vma_clone(vma, pvma)
    av = anon_vma_alloc()
    pav = pvma.anon_vma
    av.root = pav.root
    av.parent = pav
    if pav.root is not None:
        pav.root.refcount += 1  # get_anon_vma(anon_vma->root)
    vma.anon_vma = av
    vma.anon_vma_chain.append(av)
    av.rb_root.append(vma)
    pav.degree += 1
    return 0


# --------------------------------------------------------------------------------------------
# Page map counts (mm/rmap.c, include/linux/rmap.h)


@kernel("include/linux/pagemap.h")
def linear_page_index(vma: vm_area_struct, address: int) -> int:
    """Models include/linux/pagemap.h:linear_page_index: the page's offset in the VMA's
    object, in pages."""
    return ((address - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff


def _page_set_anon_rmap(page: Page, vma: vm_area_struct, address: int, exclusive: int) -> None:
    """Models mm/rmap.c:__page_set_anon_rmap: page->mapping = the anon_vma (its root unless
    exclusive) tagged PAGE_MAPPING_ANON, page->index = linear_page_index."""
    av = vma.anon_vma
    if av is None:
        raise KernelBug("BUG_ON(!anon_vma)", f"{vma} has no anon_vma")
    if page.mapping_flags & PAGE_MAPPING_ANON:
        return
    if not exclusive:
        av = av.root or av
    page.mapping = av
    page.mapping_flags = PAGE_MAPPING_ANON
    page.index = linear_page_index(vma, address)


kernel(F, "__page_set_anon_rmap")(_page_set_anon_rmap)


@kernel(F)
def page_add_new_anon_rmap(page: Page, vma: vm_area_struct, address: int,
                           compound: bool = False) -> None:
    """Models mm/rmap.c:page_add_new_anon_rmap for an order-0 page: PG_swapbacked,
    _mapcount 0 (mapped once), and the anon_vma as page->mapping (NR_ANON_MAPPED, a node
    statistic, is not kept)."""
    if vma.vm_start > address or address >= vma.vm_end:
        raise KernelBug("VM_BUG_ON_VMA(address < vma->vm_start || address >= vma->vm_end)",
                        f"{address:#x} outside {vma}")
    page.flags |= PG_swapbacked
    page._mapcount = 0
    _page_set_anon_rmap(page, vma, address, 1)


@kernel(F)
def page_add_file_rmap(page: Page, compound: bool = False) -> None:
    """Models mm/rmap.c:page_add_file_rmap for an order-0 page: one more mapping."""
    page._mapcount += 1


@kernel("include/linux/rmap.h")
def page_dup_rmap(page: Page, compound: bool = False) -> None:
    """Models include/linux/rmap.h:page_dup_rmap (fork): atomic_inc(&page->_mapcount)."""
    page._mapcount += 1


@kernel(F)
def page_remove_rmap(pgdat: pglist_data, page: Page, compound: bool = False) -> None:
    """Models mm/rmap.c:page_remove_rmap for an order-0 page (anon or file): one mapping
    fewer; when the last one goes an mlocked page is munlocked (clear_page_mlock). An
    anonymous page keeps its page->mapping until it is freed, as in 5.10."""
    if page._mapcount < 0:
        raise KernelBug("print_bad_pte: page_mapcount(page) < 0",
                        f"pfn {page.pfn:#x} unmapped more often than mapped")
    page._mapcount -= 1
    if page._mapcount < 0 and page.flags & PG_mlocked:
        clear_page_mlock(pgdat, page)


# --------------------------------------------------------------------------------------------
# The reverse walk (mm/rmap.c, mm/page_vma_mapped.c): from a page to every pte that maps it.


@dataclass(slots=True)
class rmap_walk_control(Generic[T]):
    """struct rmap_walk_control: rmap_one(page, vma, address, arg) is called for every VMA
    that may map the page (False stops the walk); done, if set, is asked after each VMA
    whether to stop."""

    rmap_one: Callable[[Page, vm_area_struct, int, T], bool]
    arg: T
    done: Callable[[Page], bool] | None = None


@kernel("mm/internal.h")
def vma_address(page: Page, vma: vm_area_struct) -> int:
    """Models mm/internal.h:vma_address for an order-0 page: where page->index falls in
    the VMA (callers only pass VMAs whose pgoff range contains it)."""
    return vma.vm_start + ((page.index - vma.vm_pgoff) << PAGE_SHIFT)


def _is_device_private_entry(entry: int) -> bool:
    """include/linux/swapops.h:is_device_private_entry: no device memory in the model."""
    return False


@kernel("mm/page_vma_mapped.c")
def map_pte(pgdat: pglist_data, pmd: int, address: int) -> int | None:
    """Models mm/page_vma_mapped.c:map_pte (neither PVMW_SYNC nor PVMW_MIGRATION): the pte
    pointer (pte_offset_map), or None if the pte is a swap entry (only a device-private
    one would do) or not present."""
    ptep = pte_offset_map(pgdat, pmd, address)
    try:
        pte = pgdat.pgtables[ptep >> PAGE_SHIFT][(ptep >> 3) & 511]
    except KeyError:  # an entry never written reads as pte_none
        pte = 0
    if is_swap_pte(pte):
        if not _is_device_private_entry(pte_to_swp_entry(pte)):
            return None
    elif not pte_present(pte):
        return None
    return ptep


@kernel("mm/page_vma_mapped.c")
def check_pte(pgdat: pglist_data, page: Page, ptep: int) -> bool:
    """Models mm/page_vma_mapped.c:check_pte without PVMW_MIGRATION: a present pte mapping
    this page (pfn_is_match for an order-0 page: the same pfn)."""
    pte = pgdat.pgtables[ptep >> PAGE_SHIFT][(ptep >> 3) & 511]  # map_pte read it
    if is_swap_pte(pte):
        pte_to_swp_entry(pte)  # is_device_private_entry: never, in the model
        return False
    if not pte_present(pte):
        return False
    return pte_pfn(pte) == page.pfn


@kernel("mm/page_vma_mapped.c")
def page_vma_mapped_walk(pgdat: pglist_data, page: Page, vma: vm_area_struct,
                         address: int, pte: int | None = None) -> int | None:
    """Models mm/page_vma_mapped.c:page_vma_mapped_walk for an order-0 page: the pte
    pointer at address if it is present and maps this page; else None. It walks the
    levels itself, as 5.10's does (pgd_offset ... pmd_offset, then map_pte/check_pte; no
    THP): mm_find_pmd is not on this path. ``pte`` is pvmw->pte from the previous call:
    the callers loop on the walk, and for an order-0 page there is no next pte, so that
    call finds nothing (not_found)."""
    if pte is not None:
        return None  # next_pte: "seek to next pte only makes sense for THP"
    mm = vma.vm_mm
    assert mm is not None
    # Each level's entry is read in line (read_entry): a missing table or entry is a
    # KeyError, read as 0.
    tables = pgdat.pgtables
    pgd = pgd_offset(mm, address)
    try:
        val = tables[pgd >> PAGE_SHIFT][(pgd >> 3) & 511]
    except KeyError:
        val = 0
    if not pgd_present(val, mm.paging_levels):
        return None
    p4d = p4d_offset(pgdat, pgd, address)
    if p4d != pgd:  # folded (4-level): the p4d entry is the pgd entry just read
        try:
            val = tables[p4d >> PAGE_SHIFT][(p4d >> 3) & 511]
        except KeyError:
            val = 0
    if not p4d_present(val):
        return None
    pud = pud_offset(pgdat, p4d, address)
    try:
        val = tables[pud >> PAGE_SHIFT][(pud >> 3) & 511]
    except KeyError:
        val = 0
    if not pud_present(val):
        return None
    pmd = pmd_offset(pgdat, pud, address)
    try:
        val = tables[pmd >> PAGE_SHIFT][(pmd >> 3) & 511]
    except KeyError:
        val = 0
    if not pmd_present(val):
        return None
    ptep = map_pte(pgdat, pmd, address)
    if ptep is None or not check_pte(pgdat, page, ptep):
        return None
    return ptep


_by_pgoff = attrgetter("vm_pgoff")


def _walk_vmas(page: Page, tree: list[vm_area_struct], rwc: rmap_walk_control[T]) -> None:
    """The interval-tree walk both rmap walks share: the VMAs covering page->index
    (vma_start_pgoff <= pgoff <= vma_last_pgoff), in vm_pgoff order, until rmap_one or done
    says stop."""
    hits = [v for v in tree if v.vm_pgoff <= page.index
            < v.vm_pgoff + ((v.vm_end - v.vm_start) >> PAGE_SHIFT)]
    if len(hits) > 1:
        hits.sort(key=_by_pgoff)  # stable, as the interval tree's in-order walk
    rmap_one = rwc.rmap_one
    arg = rwc.arg
    done = rwc.done
    for vma in hits:
        if not rmap_one(page, vma, vma_address(page, vma), arg):
            break
        if done is not None and done(page):
            break


@kernel(F)
def rmap_walk_anon(page: Page, rwc: rmap_walk_control[T]) -> None:
    """Models mm/rmap.c:rmap_walk_anon: every VMA in the page's anon_vma tree whose range
    covers page->index, in pgoff order."""
    av = page.mapping
    if not isinstance(av, anon_vma):
        return
    tree = av.rb_root
    if len(tree) != 1:
        _walk_vmas(page, tree, rwc)
        return
    # The usual tree, one VMA, walked in line. rwc.done is not asked: it only decides
    # whether to go on to another VMA, and there is none.
    vma = tree[0]
    if vma.vm_pgoff <= page.index < vma.vm_pgoff + ((vma.vm_end - vma.vm_start) >> PAGE_SHIFT):
        rwc.rmap_one(page, vma, vma_address(page, vma), rwc.arg)


@kernel(F)
def rmap_walk_file(page: Page, rwc: rmap_walk_control[T]) -> None:
    """Models mm/rmap.c:rmap_walk_file: every VMA of the file's i_mmap tree covering
    page->index, in pgoff order."""
    mapping = page.mapping
    if not isinstance(mapping, address_space):
        return
    _walk_vmas(page, mapping.i_mmap, rwc)


@kernel(F)
def rmap_walk(page: Page, rwc: rmap_walk_control[T]) -> None:
    """Models mm/rmap.c:rmap_walk (no KSM)."""
    if page.mapping_flags & PAGE_MAPPING_ANON:
        rmap_walk_anon(page, rwc)
    else:
        rmap_walk_file(page, rwc)


@dataclass(slots=True)
class page_referenced_arg:
    mapcount: int
    referenced: int = 0
    vm_flags: int = 0


@kernel(F)
def page_referenced_one(page: Page, vma: vm_area_struct, address: int,
                        pra: page_referenced_arg) -> bool:
    """Models mm/rmap.c:page_referenced_one: a VM_LOCKED mapping stops the walk and reports
    VM_LOCKED; a young pte is a reference (its accessed bit cleared:
    ptep_clear_flush_young_notify), except through a VM_SEQ_READ mapping."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    pgdat = mm.pgdat
    referenced = 0
    ptep = page_vma_mapped_walk(pgdat, page, vma, address)
    if ptep is not None:
        if vma.vm_flags & VM_LOCKED:
            pra.vm_flags |= VM_LOCKED
            return False
        # ptep_test_and_clear_young: the table exists (the walk just found the pte)
        table = pgdat.pgtables[ptep >> PAGE_SHIFT]
        idx = (ptep >> 3) & 511
        pte = table[idx]
        if pte & _PAGE_ACCESSED:
            table[idx] = pte & _NOT_ACCESSED
            if not vma.vm_flags & VM_SEQ_READ:
                referenced += 1
        pra.mapcount -= 1
        page_vma_mapped_walk(pgdat, page, vma, address, ptep)  # the loop's next call: none
    if referenced:
        pra.referenced += 1
        pra.vm_flags |= vma.vm_flags
    return pra.mapcount != 0


@kernel(F)
def page_referenced(page: Page, is_locked: int = 1) -> tuple[int, int]:
    """Models mm/rmap.c:page_referenced (global reclaim, no memcg): how many mappings saw
    the page accessed since the last look (clearing the accessed bits), and the union of
    their vm_flags. (0, 0) for an unmapped page."""
    pra = page_referenced_arg(page._mapcount + 1)
    if not pra.mapcount or page.mapping is None:
        return 0, 0
    rmap_walk(page, rmap_walk_control(page_referenced_one, pra))
    return pra.referenced, pra.vm_flags


# try_to_unmap's flags (include/linux/rmap.h)
TTU_MIGRATION = 0x1
TTU_MUNLOCK = 0x2
TTU_SPLIT_HUGE_PMD = 0x4
TTU_IGNORE_MLOCK = 0x8
TTU_IGNORE_HWPOISON = 0x20
TTU_BATCH_FLUSH = 0x40
TTU_RMAP_LOCKED = 0x80
TTU_SPLIT_FREEZE = 0x100



# --------------------------------------------------------------------------------------------
# mlock (mm/mlock.c), as far as reclaim and unmapping meet it


@kernel("mm/vmscan.c")
def isolate_lru_page(pgdat: pglist_data, page: Page) -> int:
    """Models mm/vmscan.c:isolate_lru_page: take a page off its LRU with a reference
    (PG_active / PG_unevictable kept). 0, or -EBUSY if it is not on one."""
    if not page.flags & PG_lru:
        return -16
    lru = page_lru(page)
    get_page(page)
    page.flags &= ~PG_lru
    del_page_from_lru_list(page, pgdat.node_lruvec, lru)
    return 0


@kernel("mm/vmscan.c")
def putback_lru_page(pgdat: pglist_data, page: Page) -> None:
    """Models mm/vmscan.c:putback_lru_page: lru_cache_add, then drop the isolation
    reference."""
    lru_cache_add(pgdat, page)
    put_page(pgdat, page)


@kernel("mm/mlock.c")
def clear_page_mlock(pgdat: pglist_data, page: Page) -> None:
    """Models mm/mlock.c:clear_page_mlock: the last mapping of an mlocked page went; it
    becomes evictable (moved off the unevictable list if it is on an LRU)."""
    if not page.flags & PG_mlocked:
        return
    page.flags &= ~PG_mlocked
    if not isolate_lru_page(pgdat, page):
        putback_lru_page(pgdat, page)


@kernel("mm/mlock.c")
def mlock_vma_page(pgdat: pglist_data, page: Page) -> None:
    """Models mm/mlock.c:mlock_vma_page: PG_mlocked, and off to the unevictable list if
    the page is on an LRU (reclaim's isolated page goes there when put back)."""
    if page.flags & PG_mlocked:
        return
    page.flags |= PG_mlocked
    if not isolate_lru_page(pgdat, page):
        putback_lru_page(pgdat, page)


# --------------------------------------------------------------------------------------------
# try_to_unmap (reclaim) and page_mkclean (writeback)


@kernel(F)
def try_to_unmap_one(page: Page, vma: vm_area_struct, address: int, flags: int) -> bool:
    """Models mm/rmap.c:try_to_unmap_one for an order-0 page: in a VM_LOCKED VMA the page
    is mlocked and the unmap fails; else the pte is cleared (its dirty bit passed to the
    page), and an anonymous page's pte becomes the swap entry of its swap-cache slot (one
    more swap_map reference; MM_ANONPAGES -1, MM_SWAPENTS +1; soft-dirty carried over),
    a file page's just goes (its rss counter -1). The mapping and its page reference go.
    Returns whether to continue the walk (False on failure)."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    pgdat = mm.pgdat
    ptep = page_vma_mapped_walk(pgdat, page, vma, address)
    if ptep is None:
        return True
    if not flags & TTU_IGNORE_MLOCK and vma.vm_flags & VM_LOCKED:
        mlock_vma_page(pgdat, page)
        return False
    # subpage (page - page_to_pfn(page) + pte_pfn(*pte)) is page itself at order 0; the
    # cache flush (a no-op on x86) is handed pte_pfn(*pte) too
    pte = read_entry(pgdat, ptep)
    pte_pfn(pte)
    pte_pfn(pte)
    pteval = ptep_clear_flush(pgdat, vma, address, ptep)  # one CPU: no deferred flush
    if pte_dirty(pteval):
        set_page_dirty(page)
    update_hiwater_rss(mm)
    if page.mapping_flags & PAGE_MAPPING_ANON:
        entry = page.private
        both = page.flags & (PG_swapbacked_ | PG_swapcache)
        if both and both != PG_swapbacked_ | PG_swapcache:  # one set without the other
            # WARN_ON_ONCE(1): 5.10 leaves the pte cleared; the model puts it back (no
            # MADV_FREE here, so this cannot happen)
            write_entry(pgdat, ptep, pteval)
            return False
        if swap_duplicate(pgdat, entry) < 0:
            set_pte_at(pgdat, mm, address, ptep, pteval)
            return False
        dec_mm_counter(mm, MM_ANONPAGES)
        inc_mm_counter(mm, MM_SWAPENTS)
        swp_pte = swp_entry_to_pte(entry)
        if pteval & _PAGE_SOFT_DIRTY:  # pte_soft_dirty
            swp_pte = pte_swp_mksoft_dirty(swp_pte)
        set_pte_at(pgdat, mm, address, ptep, swp_pte)
    else:
        dec_mm_counter(mm, mm_counter_file(page))
    page_remove_rmap(pgdat, page, False)
    put_page(pgdat, page)
    page_vma_mapped_walk(pgdat, page, vma, address, ptep)  # the loop's next call: none
    return True


@kernel(F)
def try_to_unmap(page: Page, flags: int) -> bool:
    """Models mm/rmap.c:try_to_unmap: unmap the page from every pte (rmap_walk, stopping
    once it is mapped nowhere); True if no mapping is left."""
    rmap_walk(page, rmap_walk_control(try_to_unmap_one, flags, page_mapcount_is_zero))
    return page._mapcount < 0


def page_mapcount_is_zero(page: Page) -> bool:
    """mm/rmap.c:page_mapcount_is_zero (order 0): try_to_unmap's walk stops once true."""
    return page._mapcount < 0


@kernel(F)
def page_mkclean_one(page: Page, vma: vm_area_struct, address: int, cleaned: list[int]) -> bool:
    """Models mm/rmap.c:page_mkclean_one: a dirty or writable pte of a shared mapping is
    made clean and read-only (the next write faults and dirties the page again)."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    pgdat = mm.pgdat
    ptep = page_vma_mapped_walk(pgdat, page, vma, address)
    if ptep is None:
        return True
    pte = read_entry(pgdat, ptep)
    if pte_dirty(pte) or pte_write(pte):
        pte_pfn(pte)  # flush_cache_page's argument (the flush is a no-op on x86)
        entry = ptep_clear_flush(pgdat, vma, address, ptep)
        entry = pte_mkclean(pte_wrprotect(entry))
        set_pte_at(pgdat, mm, address, ptep, entry)
        cleaned[0] += 1
    page_vma_mapped_walk(pgdat, page, vma, address, ptep)  # the loop's next call: none
    return True


@kernel(F)
def page_mkclean(page: Page) -> int:
    """Models mm/rmap.c:page_mkclean: clean and write-protect every shared mapping of a
    page-cache page (VM_SHARED VMAs only: invalid_mkclean_vma); how many ptes changed."""
    if page._mapcount < 0 or not isinstance(page.mapping, address_space):
        return 0
    cleaned = [0]
    rwc = rmap_walk_control(
        lambda p, v, a, arg: (not v.vm_flags & VM_SHARED) or page_mkclean_one(p, v, a, arg),
        cleaned)
    rmap_walk(page, rwc)
    return cleaned[0]
