"""The LRU entry points of mm/swap.c (5.10): adding pages, aging them, releasing them.

5.10 batches LRU insertions and activations in per-cpu pagevecs (lru_pvecs: lru_add,
activate_page, ...) of PAGEVEC_SIZE pages that each hold a page reference until drained. The
model collapses them: every pagevec is drained at once, so a page joins its list the moment
lru_cache_add is called, no transient pagevec reference exists, and lru_add_drain has
nothing left to do (docs/scope.md). Which list a page joins, and in what order pages reach
the lists, is 5.10's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refmodel.bugs import KernelBug
from refmodel.mm.mm_inline import (
    add_page_to_lru_list,
    del_page_from_lru_list,
    page_lru,
    page_lru_base_type,
    page_off_lru,
)
from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.mmzone import (
    LRU_ACTIVE,
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
    lruvec,
    pglist_data,
)
from refmodel.mm.page_alloc import (
    FPI_NONE,
    __free_pages_ok,
    free_unref_page,
    free_unref_page_list,
    put_page_testzero,
)
from refmodel.mm.types import Page, PageFlags
from refmodel.mm.vm_flags import VM_LOCKED, VM_SPECIAL
from refmodel.trace import kernel

F = "mm/swap.c"
PG_referenced = int(PageFlags.PG_referenced)
PG_lru = int(PageFlags.PG_lru)
PG_active = int(PageFlags.PG_active)
PG_unevictable = int(PageFlags.PG_unevictable)
PG_mlocked = int(PageFlags.PG_mlocked)
_NOT_UNEVICTABLE = ~PG_unevictable
_LOCKED_OR_SPECIAL = VM_LOCKED | VM_SPECIAL
PAGEVEC_SIZE = 15  # include/linux/pagevec.h: the batch 5.10 would drain at


def mem_cgroup_page_lruvec(pgdat: pglist_data) -> lruvec:
    """The page's lruvec: without memcg, the node's own (pgdat->__lruvec)."""
    return pgdat.node_lruvec


@kernel("mm/internal.h")
def page_evictable(page: Page) -> bool:
    """Models mm/internal.h:page_evictable: not in an unevictable mapping (none in the
    model: no ramfs, no SHM_LOCK) and not mlocked."""
    return not page.flags & PG_mlocked


@kernel(F)
def __pagevec_lru_add_fn(page: Page, lv: lruvec) -> None:
    """Models mm/swap.c:__pagevec_lru_add_fn: PG_lru, then the list page_lru() names, or
    the unevictable list (PG_active cleared, PG_unevictable set) for an unevictable page."""
    flags = page.flags
    if flags & PG_lru:
        raise KernelBug("VM_BUG_ON_PAGE(PageLRU(page))", f"pfn {page.pfn:#x} already on an LRU")
    page.flags = (flags & _NOT_UNEVICTABLE) | PG_lru  # TestClearPageUnevictable, SetPageLRU
    if page_evictable(page):
        lru = page_lru(page)
    else:
        lru = LRU_UNEVICTABLE
        page.flags &= ~PG_active
        page.flags |= PG_unevictable
    add_page_to_lru_list(page, lv, lru)


@kernel(F)
def lru_cache_add(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap.c:lru_cache_add: queue the page on the lru_add pagevec. The model's
    pagevec drains at once (__pagevec_lru_add)."""
    flags = page.flags
    if flags & PG_active and flags & PG_unevictable:
        raise KernelBug("VM_BUG_ON_PAGE(PageActive(page) && PageUnevictable(page))",
                        f"pfn {page.pfn:#x}")
    if flags & PG_lru:
        raise KernelBug("VM_BUG_ON_PAGE(PageLRU(page))", f"pfn {page.pfn:#x}")
    __pagevec_lru_add_fn(page, pgdat.node_lruvec)  # mem_cgroup_page_lruvec: no memcg


@kernel(F)
def lru_cache_add_inactive_or_unevictable(pgdat: pglist_data, page: Page,
                                          vma: vm_area_struct) -> None:
    """Models mm/swap.c:lru_cache_add_inactive_or_unevictable: a page faulted into a
    VM_LOCKED VMA is mlocked (PG_mlocked: it will go to the unevictable list); every other
    new page goes to the inactive list of its type (5.9+: new anonymous pages start
    inactive)."""
    if page.flags & PG_lru:
        raise KernelBug("VM_BUG_ON_PAGE(PageLRU(page))", f"pfn {page.pfn:#x}")
    if vma.vm_flags & _LOCKED_OR_SPECIAL == VM_LOCKED:
        page.flags |= PG_mlocked  # TestSetPageMlocked (NR_MLOCK is not kept)
    lru_cache_add(pgdat, page)


@kernel(F)
def __activate_page(page: Page, lv: lruvec) -> None:
    """Models mm/swap.c:__activate_page: an evictable inactive page on an LRU moves to the
    head of the active list of its type."""
    if page.flags & PG_lru and not page.flags & (PG_active | PG_unevictable):
        lru = page_lru_base_type(page)
        del_page_from_lru_list(page, lv, lru)
        page.flags |= PG_active
        add_page_to_lru_list(page, lv, lru + LRU_ACTIVE)


@kernel(F)
def activate_page(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap.c:activate_page (SMP: through the activate_page pagevec, drained at
    once in the model)."""
    if page.flags & PG_lru and not page.flags & (PG_active | PG_unevictable):
        __activate_page(page, mem_cgroup_page_lruvec(pgdat))


@kernel(F)
def __lru_cache_activate_page(page: Page) -> None:
    """Models mm/swap.c:__lru_cache_activate_page: mark a page still sitting in the lru_add
    pagevec active. Pagevecs are always drained in the model, so no page is ever there."""


@kernel(F)
def mark_page_accessed(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap.c:mark_page_accessed: the first access sets PG_referenced; a second
    one on an inactive evictable page activates it and clears PG_referenced
    (inactive,unreferenced → inactive,referenced → active,unreferenced)."""
    if not page.flags & PG_referenced:
        page.flags |= PG_referenced
    elif page.flags & PG_unevictable:
        pass
    elif not page.flags & PG_active:
        if page.flags & PG_lru:
            activate_page(pgdat, page)
        else:
            __lru_cache_activate_page(page)
        page.flags &= ~PG_referenced


@kernel(F)
def lru_add_drain(pgdat: pglist_data) -> None:
    """Models mm/swap.c:lru_add_drain: drain this CPU's pagevecs. The model's are always
    empty (see the module docstring)."""


@kernel(F)
def lru_note_cost(lv: lruvec, file: bool, nr_pages: int) -> None:
    """Models mm/swap.c:lru_note_cost: add the cost of reclaiming (or refaulting)
    nr_pages of one type, and halve both costs once they exceed a quarter of the pages on
    the evictable lists (a decaying average)."""
    if file:
        lv.file_cost += nr_pages
    else:
        lv.anon_cost += nr_pages
    sizes = lv.lru_zone_size
    lrusize = (sum(sizes[LRU_INACTIVE_ANON]) + sum(sizes[LRU_ACTIVE_ANON])
               + sum(sizes[LRU_INACTIVE_FILE]) + sum(sizes[LRU_ACTIVE_FILE]))
    if lv.file_cost + lv.anon_cost > lrusize // 4:
        lv.file_cost //= 2
        lv.anon_cost //= 2


@kernel(F)
def __page_cache_release(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap.c:__page_cache_release: a page freed while on an LRU leaves it."""
    if page.flags & PG_lru:
        page.flags &= ~PG_lru
        del_page_from_lru_list(page, mem_cgroup_page_lruvec(pgdat), page_off_lru(page))


@kernel(F)
def __put_single_page(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap.c:__put_single_page: off the LRU (__page_cache_release), then
    free_unref_page. With the model's per-cpu lists switched off (MachineConfig(pcp=False))
    the page goes to the buddy allocator instead, as free_the_page would send it."""
    __page_cache_release(pgdat, page)
    if pgdat.pcp_enabled:
        free_unref_page(pgdat, page)
    else:
        __free_pages_ok(pgdat, page, 0, FPI_NONE)


@kernel(F)
def __put_page(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap.c:__put_page for an order-0 page whose last reference went (no
    compound or ZONE_DEVICE pages in the model): __put_single_page."""
    __put_single_page(pgdat, page)


@kernel("include/linux/mm.h")
def get_page(page: Page) -> None:
    """Models include/linux/mm.h:get_page: one more reference (the page must hold one).
    It lives here, beside put_page, so that every module the fault and reclaim paths build
    on can call it; refmodel.mm.memory re-exports it."""
    if page._refcount <= 0:
        raise KernelBug("VM_BUG_ON_PAGE(page_ref_zero_or_close_to_overflow(page))",
                        f"pfn {page.pfn:#x}")
    page._refcount += 1


@kernel("include/linux/mm.h")
def put_page(pgdat: pglist_data, page: Page) -> None:
    """Models include/linux/mm.h:put_page: drop a reference; the last one frees the page
    (__put_page → __put_single_page → free_unref_page for an order-0 page). It lives here,
    beside __put_page, so that every module the fault path builds on can call it;
    refmodel.mm.memory re-exports it with the other include/linux/mm.h functions."""
    if put_page_testzero(page):
        __put_page(pgdat, page)


@kernel(F)
def release_pages(pgdat: pglist_data, pages: list[Page]) -> None:
    """Models mm/swap.c:release_pages: drop a reference each; a page whose last reference
    went leaves its LRU and is list_add'ed to the free list (so each call frees in reverse
    order), which free_unref_page_list frees to the per-cpu lists in list order."""
    pages_to_free: list[Page] = []
    lv = mem_cgroup_page_lruvec(pgdat)
    for page in pages:
        if not put_page_testzero(page):
            continue
        if page.flags & PG_lru:
            page.flags &= ~PG_lru
            del_page_from_lru_list(page, lv, page_off_lru(page))
        pages_to_free.insert(0, page)
    free_unref_page_list(pgdat, pages_to_free)


@dataclass(slots=True)
class pagevec:
    """include/linux/pagevec.h:struct pagevec: up to PAGEVEC_SIZE pages, each holding a
    reference until pagevec_release, and whether this CPU's LRU pagevecs were drained for
    it yet (percpu_pvec_drained)."""

    pages: list[Page] = field(default_factory=list)
    percpu_pvec_drained: bool = False


@kernel(F)
def pagevec_remove_exceptionals(pvec: pagevec) -> None:
    """Models mm/swap.c:pagevec_remove_exceptionals: drop the value (swap, shadow) entries
    from a lookup's result. The model's page caches hold pages only, so none is there."""


@kernel(F)
def __pagevec_release(pgdat: pglist_data, pvec: pagevec) -> None:
    """Models mm/swap.c:__pagevec_release (pagevec_release, include/linux/pagevec.h, calls
    it for a non-empty pagevec): drain the LRU pagevecs once per pagevec, then drop every
    page's reference together (release_pages), and empty the pagevec."""
    if not pvec.percpu_pvec_drained:
        lru_add_drain(pgdat)
        pvec.percpu_pvec_drained = True
    release_pages(pgdat, pvec.pages)
    pvec.pages = []


def pagevec_release(pgdat: pglist_data, pvec: pagevec) -> None:
    """include/linux/pagevec.h:pagevec_release (inline: only __pagevec_release is a
    call)."""
    if pvec.pages:
        __pagevec_release(pgdat, pvec)


def lru_list_of(pgdat: pglist_data, page: Page) -> int | None:
    """Model helper: which LRU list holds the page (None if none)."""
    for lru, lst in enumerate(pgdat.node_lruvec.lists):
        if page.pfn in lst:
            return lru
    return None
