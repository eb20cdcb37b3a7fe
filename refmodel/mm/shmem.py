"""Shared anonymous memory and tmpfs pages (mm/shmem.c, 5.10), as far as faults need them.

A shared anonymous mapping is backed by its own shmem file ("dev/zero", created by
shmem_zero_setup in mm/mmap.py); its pages live in that file's page cache with
PG_swapbacked (so they count as MM_SHMEMPAGES), are zero-filled when first faulted, and go
when the file's last reference goes (shmem_evict_inode). Left out: swap, huge pages,
fallocate, the shmem block accounting (shmem_acct_block, used_blocks), and partial
truncation.
"""

from __future__ import annotations

from functools import partial

from refmodel.bugs import KernelBug
from refmodel.fs import address_space, file
from refmodel.mm.filemap import DIV_ROUND_UP, find_get_entries, mapping_gfp_mask
from refmodel.mm.highmem import clear_highpage
from refmodel.mm.mempolicy import alloc_page_vma
from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.mman import vm_unacct_memory
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.swap import (
    PAGEVEC_SIZE,
    lru_cache_add,
    pagevec,
    pagevec_release,
    pagevec_remove_exceptionals,
)
from refmodel.mm.truncate import truncate_inode_page
from refmodel.mm.types import Page, PageFlags
from refmodel.mm.vm_fault import VM_FAULT_LOCKED, VM_FAULT_OOM, VM_FAULT_SIGBUS, vm_fault
from refmodel.trace import kernel

F = "mm/shmem.c"
PAGE_SIZE = 4096
PG_swapbacked = int(PageFlags.PG_swapbacked)
PG_uptodate = int(PageFlags.PG_uptodate)
SGP_READ, SGP_CACHE, SGP_NOHUGE, SGP_HUGE, SGP_WRITE, SGP_FALLOC = range(6)
EINVAL = -22
ENOMEM = -12
ULONG_MAX = (1 << 64) - 1  # (pgoff_t)-1: "to the end of the file"


@kernel(F)
def shmem_alloc_page(pgdat: pglist_data, gfp: int, index: int) -> Page | None:
    """Models mm/shmem.c:shmem_alloc_page: alloc_page_vma on a pseudo-VMA carrying the
    shmem policy (the default here)."""
    pvma = vm_area_struct(vm_pgoff=index)  # shmem_pseudo_vma_init
    return alloc_page_vma(pgdat, gfp, pvma, 0)


@kernel(F)
def shmem_add_to_page_cache(page: Page, mapping: address_space, index: int) -> int:
    """Models mm/shmem.c:shmem_add_to_page_cache: the cache's reference, mapping, index,
    the xarray slot (NR_FILE_PAGES / NR_SHMEM node statistics are not kept)."""
    page._refcount += 1  # page_ref_add(page, nr)
    page.mapping = mapping
    page.index = index
    mapping.i_pages[index] = page
    mapping.nrpages += 1
    return 0


@kernel(F)
def shmem_getpage_gfp(pgdat: pglist_data, f: file, index: int, sgp: int,
                      gfp: int) -> tuple[int, Page | None]:
    """Models mm/shmem.c:shmem_getpage_gfp for pages that are cached or new (no swap):
    (0, the page with a reference for the caller) or (-errno, None). A page at or past
    i_size is -EINVAL for SGP_CACHE and below."""
    mapping = f.f_mapping
    if sgp <= SGP_CACHE and index << 12 >= f.size:
        return EINVAL, None
    page = mapping.i_pages.get(index)  # find_lock_entry
    if page is not None:
        page._refcount += 1
        return 0, page
    page = shmem_alloc_page(pgdat, gfp, index)  # shmem_alloc_and_acct_page
    if page is None:
        return ENOMEM, None
    page.flags |= PG_swapbacked  # __SetPageSwapBacked
    shmem_add_to_page_cache(page, mapping, index)
    lru_cache_add(pgdat, page)
    if mapping.evict is None:  # a shmem file not made by shmem_zero_setup
        shmem_file_setup_evict(pgdat, f)
    if sgp != SGP_WRITE and not page.flags & PG_uptodate:
        clear_highpage(pgdat, page)
        page.flags |= PG_uptodate
    return 0, page


@kernel(F)
def shmem_fault(vmf: vm_fault) -> int:
    """Models mm/shmem.c:shmem_fault: the page at vmf->pgoff, allocated and zeroed on first
    use; vmf->page holds a reference. -EINVAL (past EOF) is VM_FAULT_SIGBUS (vmf_error)."""
    f = vmf.vma.vm_file
    assert f is not None
    gfp = mapping_gfp_mask(f.f_mapping)
    err, page = shmem_getpage_gfp(vmf.pgdat, f, vmf.pgoff, SGP_CACHE, gfp)
    if err:
        return VM_FAULT_OOM if err == ENOMEM else VM_FAULT_SIGBUS
    vmf.page = page
    return VM_FAULT_LOCKED


@kernel(F)
def shmem_undo_range(pgdat: pglist_data, mapping: address_space, lstart: int,
                     lend: int) -> None:
    """Models mm/shmem.c:shmem_undo_range for whole pages nobody maps (no swap entries, no
    unfalloc): batches of up to PAGEVEC_SIZE pages looked up with a reference
    (find_get_entries), each page leaving the cache (truncate_inode_page), then
    pagevec_release (→ release_pages, where the last references go: each batch is freed
    through free_unref_page_list, last index first). The second pass finds nothing."""
    start = DIV_ROUND_UP(lstart, PAGE_SIZE)
    end = ULONG_MAX if lend == -1 else (lend + 1) // PAGE_SIZE
    pvec = pagevec()
    index = start
    while index < end:
        indices: list[int] = []
        pvec.pages = find_get_entries(mapping, index, min(end - index, PAGEVEC_SIZE),
                                      indices)
        if not pvec.pages:
            break
        for page, idx in zip(pvec.pages, indices, strict=True):
            index = idx
            if index >= end:
                break
            if page.mapping is mapping:  # page_mapping(page) == mapping (trylock succeeds)
                truncate_inode_page(pgdat, mapping, page)
        pagevec_remove_exceptionals(pvec)
        pagevec_release(pgdat, pvec)
        index += 1
    # the second pass: whatever the first could not lock (nothing, in the model)
    indices = []
    if find_get_entries(mapping, start, min(end - start, PAGEVEC_SIZE), indices):
        raise KernelBug("model: shmem_undo_range left pages behind", f"indices {indices}")


@kernel(F)
def shmem_truncate_range(pgdat: pglist_data, mapping: address_space, lstart: int,
                         lend: int) -> None:
    """Models mm/shmem.c:shmem_truncate_range."""
    shmem_undo_range(pgdat, mapping, lstart, lend)


def shmem_file_setup_evict(pgdat: pglist_data, f: file) -> None:
    """Model helper: a shmem inode's mapping is swap-backed and its eviction is
    shmem_evict_inode (shmem_get_inode and shmem_aops in 5.10)."""
    f.f_mapping.swapbacked = True
    f.f_mapping.evict = partial(shmem_evict_inode, pgdat)


@kernel(F)
def shmem_unacct_size(f: file) -> None:
    """Models mm/shmem.c:shmem_unacct_size: give back the overcommit charge of the
    object's size (none for VM_NORESERVE)."""
    if f.shmem_acct and f.acct_to is not None:
        vm_unacct_memory(f.acct_to, f.shmem_acct)
        f.shmem_acct = 0


@kernel(F)
def shmem_evict_inode(pgdat: pglist_data, mapping: address_space) -> None:
    """Models mm/shmem.c:shmem_evict_inode: the size's overcommit charge goes back
    (shmem_unacct_size), i_size becomes 0, and every page goes (shmem_truncate_range)."""
    f = mapping.host
    assert isinstance(f, file)
    shmem_unacct_size(f)
    f.size = 0
    shmem_truncate_range(pgdat, mapping, 0, -1)
