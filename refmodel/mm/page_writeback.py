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


@kernel(F)
def set_page_dirty(page: Page) -> int:
    """Models mm/page-writeback.c:set_page_dirty: the mapping's ->set_page_dirty, or (no
    mapping) TestSetPageDirty. Anonymous pages are dirtied directly."""
    mapping = page.mapping
    if isinstance(mapping, address_space) and not page.mapping_flags:
        if mapping.swapbacked:
            return __set_page_dirty_no_writeback(page)
        return __set_page_dirty_nobuffers(page)
    if page.flags & PG_dirty:
        return 0
    page.flags |= PG_dirty
    return 1
