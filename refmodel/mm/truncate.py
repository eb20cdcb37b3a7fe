"""Dropping a file's page cache (mm/truncate.c, 5.10).

Only whole-page truncation of pages nobody maps is modelled (the model evicts a file's
cache when its last reference goes, after every VMA that mapped it is gone); partial pages,
unmap_mapping_range of mapped pages, and exceptional entries are out of scope. Pages go in
pagevec batches, as in 5.10, so the last reference of each goes in release_pages.
"""

from __future__ import annotations

from refmodel.bugs import KernelBug
from refmodel.fs import address_space
from refmodel.mm.filemap import (
    delete_from_page_cache,
    delete_from_page_cache_batch,
    find_get_entries,
)
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.swap import PAGEVEC_SIZE, pagevec, pagevec_release
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "mm/truncate.c"
PG_dirty = int(PageFlags.PG_dirty)
PG_uptodate = int(PageFlags.PG_uptodate)
PG_referenced = int(PageFlags.PG_referenced)
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
ULONG_MAX = (1 << 64) - 1  # (pgoff_t)-1: "to the end of the file"


@kernel("mm/swap.c")
def pagevec_lookup_entries(pvec: pagevec, mapping: address_space, start: int,
                           nr_entries: int, indices: list[int]) -> int:
    """Models mm/swap.c:pagevec_lookup_entries: find_get_entries into the pagevec. (It
    lives here: mm/swap.py is below the page cache in the model's import order.)"""
    pvec.pages = find_get_entries(mapping, start, nr_entries, indices)
    return len(pvec.pages)


@kernel(F)
def truncate_cleanup_page(mapping: address_space, page: Page) -> None:
    """Models mm/truncate.c:truncate_cleanup_page for a page nobody maps and without
    buffers: cancel_dirty_page (its accounting is not kept) and ClearPageMappedToDisk."""
    if page._mapcount >= 0:
        raise KernelBug("model: truncating a mapped page is not modelled",
                        f"index {page.index}, pfn {page.pfn:#x} is still mapped")
    page.flags &= ~PG_dirty  # cancel_dirty_page


@kernel(F)
def truncate_inode_page(pgdat: pglist_data, mapping: address_space, page: Page) -> int:
    """Models mm/truncate.c:truncate_inode_page: truncate_cleanup_page, then
    delete_from_page_cache. -EIO if the page left the mapping meanwhile, else 0."""
    if page.mapping is not mapping:
        return -5
    truncate_cleanup_page(mapping, page)
    delete_from_page_cache(pgdat, page)
    return 0


@kernel(F)
def truncate_inode_pages_range(pgdat: pglist_data, mapping: address_space, lstart: int,
                               lend: int) -> None:
    """Models mm/truncate.c:truncate_inode_pages_range for whole pages: batches of up to
    PAGEVEC_SIZE pages from ``lstart`` (bytes) on, each looked up with a reference
    (pagevec_lookup_entries), cleaned (truncate_cleanup_page), taken out of the cache
    together (delete_from_page_cache_batch) and released together (pagevec_release →
    release_pages: the last references go there, so each batch is freed through
    free_unref_page_list, last index first). The second pass finds nothing left. Page
    locks and writeback are not modelled: every page is taken."""
    if mapping.nrpages == 0:
        return
    start = (lstart + PAGE_SIZE - 1) >> PAGE_SHIFT
    end = ULONG_MAX if lend == -1 else (lend + 1) >> PAGE_SHIFT
    pvec = pagevec()
    index = start
    while index < end:
        indices: list[int] = []
        if not pagevec_lookup_entries(pvec, mapping, index, min(end - index, PAGEVEC_SIZE),
                                      indices):
            break
        locked: list[Page] = []
        for page, idx in zip(pvec.pages, indices, strict=True):
            index = idx
            if index >= end:
                break
            if page.mapping is not mapping:
                continue
            locked.append(page)
        for page in locked:
            truncate_cleanup_page(mapping, page)
        delete_from_page_cache_batch(pgdat, mapping, locked)
        pagevec_release(pgdat, pvec)  # (truncate_exceptional_pvec_entries: none)
        index += 1
    if start >= end:
        return
    # the second pass: whatever the first one could not lock (nothing, in the model)
    indices = []
    if pagevec_lookup_entries(pvec, mapping, start, min(end - start, PAGEVEC_SIZE),
                              indices):
        raise KernelBug("model: truncate_inode_pages_range left pages behind",
                        f"indices {indices}")


@kernel(F)
def truncate_inode_pages(pgdat: pglist_data, mapping: address_space, lstart: int) -> None:
    """Models mm/truncate.c:truncate_inode_pages = truncate_inode_pages_range(.., -1)."""
    truncate_inode_pages_range(pgdat, mapping, lstart, -1)


@kernel(F)
def truncate_inode_pages_final(pgdat: pglist_data, mapping: address_space) -> None:
    """Models mm/truncate.c:truncate_inode_pages_final (the inode is being evicted)."""
    truncate_inode_pages(pgdat, mapping, 0)
