"""The page cache (mm/filemap.c, 5.10), minimally: look-up, insertion, and filemap_fault.

A file's cache is its ``f_mapping.i_pages`` (index -> page). A cached page holds one
reference for the cache, has page->mapping = the address_space and page->index = its file
offset in pages. Reading a page in (->readpage) copies the file's bytes (``file.data``, the
model's disk) and zero-fills past EOF. Left out (docs/scope.md): readahead (each fault reads
the one page, as with VM_RAND_READ), page locking and waiters, the LRU, writeback beyond
the model's write-back-on-eviction, shadow entries, huge pages.
"""

from __future__ import annotations

from refmodel.fs import address_space, file
from refmodel.mm import gfp as G
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_alloc import alloc_pages
from refmodel.mm.page_writeback import set_page_dirty
from refmodel.mm.swap import get_page, lru_cache_add, mark_page_accessed, put_page
from refmodel.mm.types import Page, PageFlags
from refmodel.mm.vm_fault import (
    FAULT_FLAG_TRIED,
    VM_FAULT_LOCKED,
    VM_FAULT_MAJOR,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    vm_fault,
)
from refmodel.trace import kernel

F = "mm/filemap.c"
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PG_uptodate = int(PageFlags.PG_uptodate)
PG_dirty = int(PageFlags.PG_dirty)
PG_referenced = int(PageFlags.PG_referenced)
FGP_ACCESSED = 0x01
FGP_LOCK = 0x02
FGP_CREAT = 0x04
FGP_WRITE = 0x08
FGP_NOFS = 0x10
FGP_NOWAIT = 0x20
FGP_FOR_MMAP = 0x40


def DIV_ROUND_UP(n: int, d: int) -> int:
    return (n + d - 1) // d


@kernel("include/linux/pagemap.h")
def mapping_gfp_mask(mapping: address_space) -> int:
    """Models include/linux/pagemap.h:mapping_gfp_mask: GFP_HIGHUSER_MOVABLE, as
    inode_init_always sets it for regular files and shmem alike."""
    return G.GFP_HIGHUSER_MOVABLE


def _get_page_speculative(page: Page) -> None:
    """include/linux/pagemap.h:page_cache_get_speculative (inline): a lookup's reference."""
    page._refcount += 1


@kernel(F)
def __page_cache_alloc(pgdat: pglist_data, gfp: int) -> Page | None:
    """Models mm/filemap.c:__page_cache_alloc (CONFIG_NUMA; no cpuset page spreading)."""
    return alloc_pages(pgdat, gfp, 0)


@kernel(F)
def __add_to_page_cache_locked(page: Page, mapping: address_space, offset: int,
                               gfp_mask: int) -> int:
    """Models mm/filemap.c:__add_to_page_cache_locked: the cache's reference (get_page),
    page->mapping and page->index, the xarray slot. 0, or -EEXIST if the slot is taken."""
    if offset in mapping.i_pages:
        return -17  # -EEXIST
    get_page(page)
    page.mapping = mapping
    page.index = offset
    mapping.i_pages[offset] = page
    mapping.nrpages += 1
    return 0


@kernel(F)
def add_to_page_cache_lru(pgdat: pglist_data, page: Page, mapping: address_space, offset: int,
                          gfp_mask: int) -> int:
    """Models mm/filemap.c:add_to_page_cache_lru: lock the page, insert it, put it on the
    LRU (page locking and workingset shadows are not modelled)."""
    ret = __add_to_page_cache_locked(page, mapping, offset, gfp_mask)
    if ret == 0:
        lru_cache_add(pgdat, page)
    return ret


@kernel(F)
def pagecache_get_page(pgdat: pglist_data, mapping: address_space, index: int,
                       fgp_flags: int, gfp_mask: int) -> Page | None:
    """Models mm/filemap.c:pagecache_get_page: the cached page with a reference taken, or
    with FGP_CREAT a new one (allocated with ``gfp_mask``, added to the cache; the caller
    keeps the allocation's reference). None if absent (or the allocation failed)."""
    page = mapping.i_pages.get(index)  # find_get_entry
    if page is not None:
        _get_page_speculative(page)  # find_get_entry
        if fgp_flags & FGP_ACCESSED:
            mark_page_accessed(pgdat, page)
        return page
    if not fgp_flags & FGP_CREAT:
        return None
    if fgp_flags & FGP_NOFS:
        gfp_mask &= ~G.__GFP_FS
    page = __page_cache_alloc(pgdat, gfp_mask)
    if page is None:
        return None
    if fgp_flags & FGP_ACCESSED:
        page.flags |= PG_referenced
    err = add_to_page_cache_lru(pgdat, page, mapping, index, gfp_mask)
    if err:
        put_page(pgdat, page)
        return None
    return page


@kernel("include/linux/pagemap.h")
def find_get_page(pgdat: pglist_data, mapping: address_space, offset: int) -> Page | None:
    """Models include/linux/pagemap.h:find_get_page = pagecache_get_page(.., 0, 0)."""
    return pagecache_get_page(pgdat, mapping, offset, 0, 0)


@kernel(F)
def generic_file_readpage(pgdat: pglist_data, f: file, page: Page) -> int:
    """The a_ops->readpage of the model's files (a block filesystem's mpage_readpage in
    5.10): the page's bytes from the file, zeros past EOF; PG_uptodate. Returns 0."""
    start = page.index << PAGE_SHIFT
    chunk = bytes(f.data[start:min(start + PAGE_SIZE, f.size)])
    if chunk.strip(b"\0"):
        buf = bytearray(PAGE_SIZE)
        buf[:len(chunk)] = chunk
        pgdat.page_data[page.pfn] = buf
    else:
        pgdat.page_data.pop(page.pfn, None)
    page.flags |= PG_uptodate
    return 0


@kernel(F)
def filemap_fault(vmf: vm_fault) -> int:
    """Models mm/filemap.c:filemap_fault: a page at or past EOF → VM_FAULT_SIGBUS; else
    the cached page (find_get_page), or a new one read in (VM_FAULT_MAJOR). vmf->page holds
    a reference for the caller. Readahead is left out."""
    pgdat = vmf.pgdat
    f = vmf.vma.vm_file
    assert f is not None
    mapping = f.f_mapping
    offset = vmf.pgoff
    ret = 0
    max_off = DIV_ROUND_UP(f.size, PAGE_SIZE)
    if offset >= max_off:
        return VM_FAULT_SIGBUS
    page = find_get_page(pgdat, mapping, offset)
    if page is not None and not vmf.flags & FAULT_FLAG_TRIED:
        pass  # do_async_mmap_readahead: readahead is not modelled
    elif page is None:
        ret = VM_FAULT_MAJOR  # count_vm_event(PGMAJFAULT); do_sync_mmap_readahead
    while True:  # retry_find:
        if page is None:
            page = pagecache_get_page(pgdat, mapping, offset, FGP_CREAT | FGP_FOR_MMAP,
                                      vmf.gfp_mask)
            if page is None:
                return VM_FAULT_OOM
        if page.flags & PG_uptodate:
            break
        # page_not_uptodate: read it in, drop the reference, find it again
        generic_file_readpage(pgdat, f, page)
        put_page(pgdat, page)
        page = None
    max_off = DIV_ROUND_UP(f.size, PAGE_SIZE)
    if offset >= max_off:
        put_page(pgdat, page)
        return VM_FAULT_SIGBUS
    vmf.page = page
    return ret | VM_FAULT_LOCKED


@kernel(F)
def filemap_page_mkwrite(vmf: vm_fault) -> int:
    """Models mm/filemap.c:filemap_page_mkwrite: the page is dirtied (set_page_dirty) and
    returned locked (file_update_time and sb freeze protection are left out)."""
    page = vmf.page
    assert page is not None
    set_page_dirty(page)
    return VM_FAULT_LOCKED


@kernel(F)
def page_cache_delete(mapping: address_space, page: Page) -> None:
    """Models mm/filemap.c:page_cache_delete: out of the xarray, page->mapping = NULL."""
    del mapping.i_pages[page.index]
    page.mapping = None
    mapping.nrpages -= 1


@kernel(F)
def delete_from_page_cache(pgdat: pglist_data, page: Page) -> None:
    """Models mm/filemap.c:delete_from_page_cache: __delete_from_page_cache, then drop the
    cache's reference (page_cache_free_page)."""
    mapping = page.mapping
    assert isinstance(mapping, address_space)
    page_cache_delete(mapping, page)
    put_page(pgdat, page)


@kernel(F)
def find_get_entries(mapping: address_space, start: int, nr_entries: int,
                     indices: list[int]) -> list[Page]:
    """Models mm/filemap.c:find_get_entries: up to nr_entries cached pages from index
    ``start`` on, in index order, each with a reference taken for the caller
    (page_cache_get_speculative); their indices are appended to ``indices``. The model's
    caches hold no value entries."""
    found = sorted(i for i in mapping.i_pages if i >= start)[:nr_entries]
    pages = []
    for index in found:
        page = mapping.i_pages[index]
        _get_page_speculative(page)
        pages.append(page)
        indices.append(index)
    return pages


@kernel(F)
def delete_from_page_cache_batch(pgdat: pglist_data, mapping: address_space,
                                 pages: list[Page]) -> None:
    """Models mm/filemap.c:delete_from_page_cache_batch: every page of the batch leaves the
    xarray (page_cache_delete_batch, here page_cache_delete each), then each drops the
    cache's reference (page_cache_free_page → put_page)."""
    for page in pages:
        page_cache_delete(mapping, page)
    for page in pages:
        put_page(pgdat, page)


@kernel(F)
def filemap_write_and_wait(pgdat: pglist_data, f: file) -> int:
    """Models mm/filemap.c:filemap_write_and_wait (→ ->writepages): every dirty cached
    page's bytes below EOF go to the file's data, and the page is clean again. 0."""
    for index in sorted(f.f_mapping.i_pages):
        page = f.f_mapping.i_pages[index]
        if not page.flags & PG_dirty:
            continue
        write_page_to_file(pgdat, f, page)
        # clear_page_dirty_for_io, in line: the registered one (in mm/vmscan.py) needs
        # rmap's page_mkclean, and both sit above this module; eviction runs once no VMA
        # maps the file, so page_mkclean would find nothing. Writeback completes at once.
        page.flags &= ~PG_dirty
    return 0


def write_page_to_file(pgdat: pglist_data, f: file, page: Page) -> None:
    """The model's ->writepage of a regular file: the page's bytes below EOF go to the
    file's data (the "disk"), synchronously."""
    start = page.index << PAGE_SHIFT
    n = min(PAGE_SIZE, f.size - start)
    if n > 0:
        data = pgdat.page_data.get(page.pfn)
        if len(f.data) < start + n:
            f.data.extend(bytes(start + n - len(f.data)))
        f.data[start:start + n] = data[:n] if data is not None else bytes(n)
