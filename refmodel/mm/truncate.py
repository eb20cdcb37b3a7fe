"""Dropping a file's page cache (mm/truncate.c, 5.10).

Only whole-cache truncation of pages nobody maps is modelled (the model evicts a file's
cache when its last reference goes, after every VMA that mapped it is gone); partial pages,
unmap_mapping_range of mapped pages, and exceptional entries are out of scope.
"""

from __future__ import annotations

from refmodel.bugs import KernelBug
from refmodel.fs import address_space
from refmodel.mm.filemap import delete_from_page_cache
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.types import PageFlags
from refmodel.trace import kernel

F = "mm/truncate.c"
PG_dirty = int(PageFlags.PG_dirty)
PG_uptodate = int(PageFlags.PG_uptodate)
PG_referenced = int(PageFlags.PG_referenced)


@kernel(F)
def truncate_inode_pages_range(pgdat: pglist_data, mapping: address_space, lstart: int,
                               lend: int) -> None:
    """Models mm/truncate.c:truncate_inode_pages_range for whole pages: each page from
    ``lstart`` (bytes) on loses its dirty state (cancel_dirty_page) and leaves the cache
    (delete_from_page_cache), in index order."""
    start = (lstart + 4095) >> 12
    for index in sorted(i for i in mapping.i_pages if i >= start and (lend < 0
                                                                        or i <= lend >> 12)):
        page = mapping.i_pages[index]
        if page._mapcount >= 0:
            raise KernelBug("model: truncating a mapped page is not modelled",
                            f"index {index}, pfn {page.pfn:#x} is still mapped")
        page.flags &= ~PG_dirty  # truncate_cleanup_page → cancel_dirty_page
        delete_from_page_cache(pgdat, page)


@kernel(F)
def truncate_inode_pages(pgdat: pglist_data, mapping: address_space, lstart: int) -> None:
    """Models mm/truncate.c:truncate_inode_pages = truncate_inode_pages_range(.., -1)."""
    truncate_inode_pages_range(pgdat, mapping, lstart, -1)


@kernel(F)
def truncate_inode_pages_final(pgdat: pglist_data, mapping: address_space) -> None:
    """Models mm/truncate.c:truncate_inode_pages_final (the inode is being evicted)."""
    truncate_inode_pages(pgdat, mapping, 0)
