"""The swap cache (mm/swap_state.c, 5.10) and the mm/swapfile.c functions that need it.

A page in the swap cache has PG_swapcache, its swp_entry_t in page->private and one page
reference held by the cache; its slot has SWAP_HAS_CACHE in swap_map. The cache itself is
the area's ``cache`` dict (swapper_spaces' xarray, offset -> page). Shadow entries
(workingset detection) are not kept (docs/scope.md).

Swap-in reads the faulting slot and, on a rotating disk, the aligned cluster around it
(swap_cluster_readahead with 5.10's adaptive window): the neighbours land in the swap cache,
unmapped, on the inactive anon list.
"""

from __future__ import annotations

from dataclasses import dataclass

from refmodel.bugs import KernelBug
from refmodel.mm import gfp as G
from refmodel.mm.filemap import find_get_page
from refmodel.mm.mempolicy import alloc_page_vma
from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_io import __swap_writepage, swap_readpage
from refmodel.mm.page_writeback import set_page_dirty
from refmodel.mm.swap import lru_add_drain, lru_cache_add, put_page, release_pages
from refmodel.mm.swap_slots import __swap_entry_free, get_swap_page, put_swap_page
from refmodel.mm.swapfile import (
    TTRS_ANYWAY,
    TTRS_FULL,
    TTRS_UNMAPPED,
    __swp_swapcount,
    mem_cgroup_swap_full,
    page_swapcount,
    page_swapped,
    swap_info_get,
    swap_info_struct,
    swap_page_trans_huge_swapped,
    swapcache_prepare,
)
from refmodel.mm.swapops import non_swap_entry, swp_entry, swp_offset, swp_type
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "mm/swap_state.c"
SF = "mm/swapfile.c"
PG_swapcache = int(PageFlags.PG_owner_priv_1)
PG_dirty = int(PageFlags.PG_dirty)
PG_writeback = int(PageFlags.PG_writeback)
PG_swapbacked = int(PageFlags.PG_swapbacked)
PG_uptodate = int(PageFlags.PG_uptodate)
PG_workingset = int(PageFlags.PG_workingset)
PG_readahead = int(PageFlags.PG_reclaim)  # PG_readahead aliases PG_reclaim
SWAP_HAS_CACHE = 0x40
page_cluster = 3  # /proc/sys/vm/page-cluster


@dataclass(slots=True)
class swap_ra_state:
    """mm/swap_state.c's readahead statics: swapin_readahead_hits (starts at 4),
    swapin_nr_pages' prev_offset and last_readahead_pages."""

    hits: int = 4
    prev_offset: int = 0
    last_readahead_pages: int = 0


def _ra(pgdat: pglist_data) -> swap_ra_state:
    st = pgdat.swap_ra
    if st is None:
        st = pgdat.swap_ra = swap_ra_state()
    assert isinstance(st, swap_ra_state)
    return st


_SWAPCACHE = PG_swapcache | PG_swapbacked
_NOT_SWAPCACHE = ~PG_swapcache


def PageSwapCache(page: Page) -> bool:
    """include/linux/page-flags.h:PageSwapCache: PG_swapcache on a swap-backed page."""
    return page.flags & _SWAPCACHE == _SWAPCACHE


@kernel(F)
def add_to_swap_cache(pgdat: pglist_data, page: Page, entry: int, gfp: int) -> int:
    """Models mm/swap_state.c:add_to_swap_cache for an order-0 page: the cache's reference,
    PG_swapcache, page->private = entry, the xarray slot. 0 (-EEXIST if the slot holds a
    page already, which the callers' swapcache_prepare rules out)."""
    cache = pgdat.swap_info[swp_type(entry)].cache  # swap_address_space(entry)
    off = swp_offset(entry)
    if off in cache:
        return -17
    page._refcount += 1  # page_ref_add(page, nr)
    page.flags |= PG_swapcache
    page.private = entry
    cache[off] = page
    return 0


@kernel(F)
def __delete_from_swap_cache(pgdat: pglist_data, page: Page, entry: int) -> None:
    """Models mm/swap_state.c:__delete_from_swap_cache: out of the xarray, private = 0,
    PG_swapcache cleared (the cache's page reference is the caller's to drop)."""
    cache = pgdat.swap_info[swp_type(entry)].cache  # swap_address_space(entry)
    if cache.get(swp_offset(entry)) is not page:
        raise KernelBug("VM_BUG_ON_PAGE(entry != page)", f"pfn {page.pfn:#x}")
    del cache[swp_offset(entry)]
    page.private = 0
    page.flags &= _NOT_SWAPCACHE


@kernel(F)
def delete_from_swap_cache(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap_state.c:delete_from_swap_cache: leave the cache, let go of the slot
    (put_swap_page), drop the cache's reference (the caller still holds one)."""
    entry = page.private
    __delete_from_swap_cache(pgdat, page, entry)
    put_swap_page(pgdat, page, entry)
    page._refcount -= 1  # page_ref_sub


@kernel(F)
def add_to_swap(pgdat: pglist_data, page: Page) -> int:
    """Models mm/swap_state.c:add_to_swap: a slot (get_swap_page), the swap cache, and the
    page dirtied so that it is written out. 1, or 0 if swap is full."""
    if not page.flags & PG_uptodate:
        raise KernelBug("VM_BUG_ON_PAGE(!PageUptodate(page))", f"pfn {page.pfn:#x}")
    entry = get_swap_page(pgdat, page, lambda si, off, fl: __try_to_reclaim_swap(
        pgdat, si, off, fl))
    if not entry:
        return 0
    if add_to_swap_cache(pgdat, page, entry, G.__GFP_HIGH | G.__GFP_NOMEMALLOC
                         | G.__GFP_NOWARN):
        put_swap_page(pgdat, page, entry)
        return 0
    set_page_dirty(page)
    return 1


@kernel(F)
def lookup_swap_cache(pgdat: pglist_data, entry: int) -> Page | None:
    """Models mm/swap_state.c:lookup_swap_cache: the cached page with a reference taken
    (find_get_page on swap_address_space(entry)); a page brought in by readahead counts a
    readahead hit the first time it is found."""
    page = find_get_page(pgdat, pgdat.swap_info[swp_type(entry)].swapper_space,
                         swp_offset(entry))
    if page is None:
        return None
    if page.flags & PG_readahead:  # TestClearPageReadahead
        page.flags &= ~PG_readahead
        _ra(pgdat).hits += 1
    return page


@kernel(F)
def __read_swap_cache_async(pgdat: pglist_data, entry: int, gfp_mask: int,
                            vma: vm_area_struct, addr: int) -> tuple[Page | None, bool]:
    """Models mm/swap_state.c:__read_swap_cache_async: the cached page (with a reference),
    or a new page claimed for the slot (swapcache_prepare), added to the swap cache and the
    LRU (PG_workingset set), not yet read. (page, allocated); (None, False) for a slot
    nobody uses or a failed allocation."""
    page = find_get_page(pgdat, pgdat.swap_info[swp_type(entry)].swapper_space,
                         swp_offset(entry))
    if page is not None:
        return page, False
    if not __swp_swapcount(pgdat, entry) and pgdat.swp_slots is not None \
            and pgdat.swp_slots.enabled:
        return None, False
    new_page = alloc_page_vma(pgdat, gfp_mask, vma, addr)
    if new_page is None:
        return None, False
    err = swapcache_prepare(pgdat, entry)
    if err:
        put_page(pgdat, new_page)
        return None, False
    new_page.flags |= PG_swapbacked  # __SetPageLocked; __SetPageSwapBacked
    if add_to_swap_cache(pgdat, new_page, entry, gfp_mask):
        put_swap_page(pgdat, new_page, entry)
        put_page(pgdat, new_page)
        return None, False
    new_page.flags |= PG_workingset  # SetPageWorkingset (no shadow: no refault check)
    lru_cache_add(pgdat, new_page)
    return new_page, True


@kernel(F)
def read_swap_cache_async(pgdat: pglist_data, entry: int, gfp_mask: int,
                          vma: vm_area_struct, addr: int) -> Page | None:
    """Models mm/swap_state.c:read_swap_cache_async: find or create, and read it."""
    page, allocated = __read_swap_cache_async(pgdat, entry, gfp_mask, vma, addr)
    if allocated:
        assert page is not None
        swap_readpage(pgdat, page)
    return page


@kernel(F)
def __swapin_nr_pages(prev_offset: int, offset: int, hits: int, max_pages: int,
                      prev_win: int) -> int:
    """Models mm/swap_state.c:__swapin_nr_pages: the readahead window: hits + 2 rounded up
    to a power of two from 4; with no hits, 1 unless the fault is next to the previous one;
    capped at max_pages, and not below half the previous window."""
    pages = hits + 2
    if pages == 2:
        if offset != prev_offset + 1 and offset != prev_offset - 1:
            pages = 1
    else:
        roundup = 4
        while roundup < pages:
            roundup <<= 1
        pages = roundup
    if pages > max_pages:
        pages = max_pages
    last_ra = prev_win // 2
    if pages < last_ra:
        pages = last_ra
    return pages


@kernel(F)
def swapin_nr_pages(pgdat: pglist_data, offset: int) -> int:
    """Models mm/swap_state.c:swapin_nr_pages: consume the readahead hits, pick the window."""
    st = _ra(pgdat)
    max_pages = 1 << page_cluster
    if max_pages <= 1:
        return 1
    hits, st.hits = st.hits, 0
    pages = __swapin_nr_pages(st.prev_offset, offset, hits, max_pages, st.last_readahead_pages)
    if not hits:
        st.prev_offset = offset
    st.last_readahead_pages = pages
    return pages


@kernel(F)
def swap_cluster_readahead(pgdat: pglist_data, entry: int, gfp_mask: int,
                           vma: vm_area_struct, addr: int) -> Page | None:
    """Models mm/swap_state.c:swap_cluster_readahead: read the window-aligned cluster of
    slots around the faulting one (skipping the header and free slots; the others are
    marked PG_readahead), then return the faulting slot's page."""
    entry_offset = swp_offset(entry)
    mask = swapin_nr_pages(pgdat, entry_offset) - 1
    if mask:
        si = pgdat.swap_info[swp_type(entry)]
        start = entry_offset & ~mask
        end = entry_offset | mask
        if not start:
            start = 1
        if end >= si.max:
            end = si.max - 1
        for offset in range(start, end + 1):
            page, allocated = __read_swap_cache_async(
                pgdat, swp_entry(swp_type(entry), offset), gfp_mask, vma, addr)
            if page is None:
                continue
            if allocated:
                swap_readpage(pgdat, page)
                if offset != entry_offset:
                    page.flags |= PG_readahead
            put_page(pgdat, page)
        lru_add_drain(pgdat)  # push any new pages onto the LRU now
    return read_swap_cache_async(pgdat, entry, gfp_mask, vma, addr)


@kernel(F)
def swapin_readahead(pgdat: pglist_data, entry: int, gfp_mask: int, vma: vm_area_struct,
                     addr: int) -> Page | None:
    """Models mm/swap_state.c:swapin_readahead: a rotating disk makes nr_rotate_swap
    non-zero, so VMA readahead is off and cluster readahead is used."""
    return swap_cluster_readahead(pgdat, entry, gfp_mask, vma, addr)


@kernel(F)
def free_swap_cache(pgdat: pglist_data, page: Page) -> None:
    """Models mm/swap_state.c:free_swap_cache: an unmapped swap-cache page no PTE still
    names loses its slot (try_to_free_swap)."""
    if PageSwapCache(page) and page._mapcount < 0:
        try_to_free_swap(pgdat, page)


@kernel(F)
def free_pages_and_swap_cache(pgdat: pglist_data, pages: list[Page]) -> None:
    """Models mm/swap_state.c:free_pages_and_swap_cache: lru_add_drain, free_swap_cache on
    each page, then release_pages."""
    lru_add_drain(pgdat)
    for page in pages:
        free_swap_cache(pgdat, page)
    release_pages(pgdat, pages)


# --------------------------------------------------------------------------------------------
# mm/swapfile.c functions that work on swap-cache pages


@kernel(SF)
def try_to_free_swap(pgdat: pglist_data, page: Page) -> int:
    """Models mm/swapfile.c:try_to_free_swap: a swap-cache page no PTE's swap entry names
    (and not under writeback) leaves the swap cache and is dirtied (its only copy is now
    in memory). 1 if it did."""
    if page.flags & _SWAPCACHE != _SWAPCACHE:  # !PageSwapCache
        return 0
    if page.flags & PG_writeback:
        return 0
    if page_swapped(pgdat, page):
        return 0
    delete_from_swap_cache(pgdat, page)
    page.flags |= PG_dirty  # SetPageDirty
    return 1


@kernel(SF)
def __try_to_reclaim_swap(pgdat: pglist_data, si: swap_info_struct, offset: int,
                          flags: int) -> int:
    """Models mm/swapfile.c:__try_to_reclaim_swap: free the slot's swap-cache page's hold
    on it when asked to anyway, when the page is unmapped (TTRS_UNMAPPED), or when swap is
    over half full (TTRS_FULL). The page lock always succeeds in the model (one CPU, and
    the only page reclaim may hold locked has no slot yet)."""
    entry = swp_entry(si.type, offset)
    page = find_get_page(pgdat, pgdat.swap_info[swp_type(entry)].swapper_space, offset)
    if page is None:
        return 0
    ret = 0
    if (flags & TTRS_ANYWAY or (flags & TTRS_UNMAPPED and page._mapcount < 0)
            or (flags & TTRS_FULL and mem_cgroup_swap_full(pgdat, page))):
        ret = try_to_free_swap(pgdat, page)
    put_page(pgdat, page)
    return ret


@kernel(SF)
def free_swap_and_cache(pgdat: pglist_data, entry: int) -> int:
    """Models mm/swapfile.c:free_swap_and_cache (zap of a swap PTE): drop the PTE's
    reference; a slot left held only by the swap cache has its page reclaimed from the
    cache if unmapped or swap is over half full. 1 (the entry was valid, or is not a swap
    entry at all: non_swap_entry)."""
    if non_swap_entry(entry):
        return 1
    si = swap_info_get(pgdat, entry)
    count = __swap_entry_free(pgdat, si, entry)
    if count == SWAP_HAS_CACHE and not swap_page_trans_huge_swapped(si, entry):
        __try_to_reclaim_swap(pgdat, si, swp_offset(entry), TTRS_UNMAPPED | TTRS_FULL)
    return 1


@kernel(SF)
def reuse_swap_page(pgdat: pglist_data, page: Page) -> bool:
    """Models mm/swapfile.c:reuse_swap_page for an order-0 page (do_swap_page's write
    fault): if this fault is the page's only user (mappings + swap PTEs == 1) it may be
    written in place, and a swap-cache page not under writeback leaves the cache (dirty)."""
    count = (page._mapcount + 1) + (page_swapcount(pgdat, page) if PageSwapCache(page) else 0)
    if count == 1 and PageSwapCache(page):
        if not page.flags & PG_writeback:
            delete_from_swap_cache(pgdat, page)
            page.flags |= PG_dirty
    return count <= 1



@kernel("mm/page_io.c")
def swap_writepage(pgdat: pglist_data, page: Page) -> int:
    """Models mm/page_io.c:swap_writepage (swap_aops.writepage): a page whose slot no PTE
    names any more just leaves the swap cache (try_to_free_swap); otherwise
    __swap_writepage. 0. (Kept here: it needs the swap cache.)"""
    if try_to_free_swap(pgdat, page):
        return 0
    return __swap_writepage(pgdat, page)
