"""The anon_vma links VMA merging and splitting maintain (mm/rmap.c, 5.10), minimally.

What decides merges: which anon_vma a VMA points to and how many entries its anon_vma_chain
has; and the page side of rmap: _mapcount, page->mapping/index of anonymous pages. The
interval trees, anon_vma locking and the reverse walk itself come with reclaim.
"""

from __future__ import annotations

from refmodel.bugs import KernelBug
from refmodel.mm.mm_types import anon_vma, vm_area_struct
from refmodel.mm.types import PAGE_MAPPING_ANON, Page, PageFlags
from refmodel.mm.vm_flags import VM_ACCESS_FLAGS, VM_SOFTDIRTY
from refmodel.trace import kernel

F = "mm/rmap.c"
PAGE_SHIFT = 12
PG_swapbacked = int(PageFlags.PG_swapbacked)


@kernel(F)
def anon_vma_clone(dst: vm_area_struct, src: vm_area_struct) -> int:
    """Models mm/rmap.c:anon_vma_clone: link dst to every anon_vma src is linked to.
    Returns 0 (the allocation of chain entries cannot fail in the model)."""
    for av in src.anon_vma_chain:
        if not any(x is av for x in dst.anon_vma_chain):
            dst.anon_vma_chain.append(av)
    return 0


@kernel(F)
def unlink_anon_vmas(vma: vm_area_struct) -> None:
    """Models mm/rmap.c:unlink_anon_vmas: drop every chain entry of vma."""
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
def page_remove_rmap(page: Page, compound: bool = False) -> None:
    """Models mm/rmap.c:page_remove_rmap for an order-0 page (anon or file): one mapping
    fewer. An anonymous page keeps its page->mapping until it is freed, as in 5.10."""
    if page._mapcount < 0:
        raise KernelBug("print_bad_pte: page_mapcount(page) < 0",
                        f"pfn {page.pfn:#x} unmapped more often than mapped")
    page._mapcount -= 1
