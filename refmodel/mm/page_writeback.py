"""Dirtying pages (mm/page-writeback.c, 5.10): set_page_dirty and the a_ops it dispatches to.

Only PG_dirty is kept; dirty accounting (NR_FILE_DIRTY, bdi writeback) and writeback
itself are out of scope. Writeback happens in the model only when a file's page cache is
dropped (refmodel.mm.truncate).
"""

from __future__ import annotations

from refmodel.fs import address_space
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "mm/page-writeback.c"
PG_dirty = int(PageFlags.PG_dirty)
PG_reclaim = int(PageFlags.PG_reclaim)
# PageSwapCache: PG_swapcache (PG_owner_priv_1) counts only on a swap-backed page
_SWAPCACHE_BITS = int(PageFlags.PG_owner_priv_1 | PageFlags.PG_swapbacked)


@kernel(F)
def __set_page_dirty_nobuffers(page: Page) -> int:
    """Models mm/page-writeback.c:__set_page_dirty_nobuffers: 1 if the page became dirty."""
    if page.flags & PG_dirty:
        return 0
    page.flags |= PG_dirty
    return 1


@kernel(F)
def __set_page_dirty_no_writeback(page: Page) -> int:
    """Models mm/page-writeback.c:__set_page_dirty_no_writeback (shmem's a_ops)."""
    if page.flags & PG_dirty:
        return 0
    page.flags |= PG_dirty
    return 1


@kernel("mm/page_io.c")
def swap_set_page_dirty(page: Page) -> int:
    """Models mm/page_io.c:swap_set_page_dirty, the swap address_space's ->set_page_dirty:
    a block swap device (no SWP_FS_OPS) takes __set_page_dirty_no_writeback. (It lives here:
    mm/page_io.py is below this module.)"""
    return __set_page_dirty_no_writeback(page)


@kernel(F)
def set_page_dirty(page: Page) -> int:
    """Models mm/page-writeback.c:set_page_dirty: the page's mapping (page_mapping: the
    swap address_space for a swap-cache page, none for another anonymous page) has its
    PG_reclaim cleared and its ->set_page_dirty called (swap_set_page_dirty; shmem's
    __set_page_dirty_no_writeback; __set_page_dirty_nobuffers for the model's files); a
    page without one is TestSetPageDirty'ed."""
    mapping = page.mapping
    if page.flags & _SWAPCACHE_BITS == _SWAPCACHE_BITS:  # PageSwapCache
        page.flags &= ~PG_reclaim
        return swap_set_page_dirty(page)
    if isinstance(mapping, address_space) and not page.mapping_flags:
        page.flags &= ~PG_reclaim
        if mapping.swapbacked:
            return __set_page_dirty_no_writeback(page)
        return __set_page_dirty_nobuffers(page)
    if page.flags & PG_dirty:
        return 0
    page.flags |= PG_dirty
    return 1
