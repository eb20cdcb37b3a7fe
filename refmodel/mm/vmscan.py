"""Page reclaim (mm/vmscan.c, 5.10): direct reclaim, kswapd, the LRU scan, swap-out.

try_to_free_pages → do_try_to_free_pages → shrink_zones → shrink_node → shrink_node_memcgs
→ shrink_lruvec (get_scan_count) → shrink_list → shrink_active_list / shrink_inactive_list →
isolate_lru_pages, shrink_page_list (page_check_references; anonymous pages: add_to_swap,
try_to_unmap, pageout → swap_writepage; clean file pages: __remove_mapping). kswapd:
wakeup_kswapd → balance_pgdat → kswapd_shrink_node → shrink_node.

One node, no memcg (the root lruvec), no compaction, no slab shrinkers (shrink_slab
reclaims nothing), vm_swappiness 60, laptop_mode 0. Workingset shadow entries are not kept,
so no refault ever activates a page and refault counters never change (docs/scope.md).
Swap I/O completes at once, so a written page is freed in the same pass ("synchronous
write" path). ``sc.kswapd`` stands for current_is_kswapd().
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refmodel.bugs import KernelBug
from refmodel.fs import address_space
from refmodel.mm import gfp as G
from refmodel.mm.filemap import page_cache_delete, write_page_to_file
from refmodel.mm.mm_inline import (
    del_page_from_lru_list,
    page_is_file_lru,
    page_lru,
    update_lru_size,
)
from refmodel.mm.mmzone import (
    LRU_ACTIVE,
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_BASE,
    LRU_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    MAX_NR_ZONES,
    WMARK_HIGH,
    Zone,
    high_wmark_pages,
    lruvec,
    pglist_data,
)
from refmodel.mm.page_alloc import (
    __zone_watermark_ok,
    free_unref_page_list,
    put_page_testzero,
)
from refmodel.mm.page_alloc import (  # mm/vmscan.c, modelled there (the allocator calls it)
    zone_reclaimable_pages as zone_reclaimable_pages,
)
from refmodel.mm.rmap import (
    TTU_BATCH_FLUSH,
    page_mkclean,
    page_referenced,
    putback_lru_page,
    try_to_unmap,
)
from refmodel.mm.swap import lru_add_drain, lru_note_cost, page_evictable
from refmodel.mm.swap_slots import put_swap_page
from refmodel.mm.swap_state import (
    PageSwapCache,
    __delete_from_swap_cache,
    add_to_swap,
    swap_writepage,
    try_to_free_swap,
)
from refmodel.mm.swapfile import mem_cgroup_swap_full
from refmodel.mm.types import Page, PageFlags
from refmodel.mm.vm_flags import VM_EXEC, VM_LOCKED
from refmodel.trace import kernel

F = "mm/vmscan.c"
SWAP_CLUSTER_MAX = 32
DEF_PRIORITY = 12
MAX_RECLAIM_RETRIES = 16
vm_swappiness = 60
DEACTIVATE_ANON = 1
DEACTIVATE_FILE = 2
PGDAT_DIRTY = 1 << 0
PGDAT_WRITEBACK = 1 << 1
PAGEREF_RECLAIM, PAGEREF_RECLAIM_CLEAN, PAGEREF_KEEP, PAGEREF_ACTIVATE = range(4)
PAGE_KEEP, PAGE_ACTIVATE, PAGE_SUCCESS, PAGE_CLEAN = range(4)
SCAN_EQUAL, SCAN_FRACT, SCAN_ANON, SCAN_FILE = range(4)
PG_referenced = int(PageFlags.PG_referenced)
PG_active = int(PageFlags.PG_active)
PG_lru = int(PageFlags.PG_lru)
PG_dirty = int(PageFlags.PG_dirty)
PG_writeback = int(PageFlags.PG_writeback)
PG_reclaim = int(PageFlags.PG_reclaim)
PG_swapbacked = int(PageFlags.PG_swapbacked)
PG_mlocked = int(PageFlags.PG_mlocked)
PG_workingset = int(PageFlags.PG_workingset)
PG_unevictable = int(PageFlags.PG_unevictable)
PG_swapcache = int(PageFlags.PG_owner_priv_1)
_NOT_REFERENCED = ~PG_referenced  # masks worked out once, for the per-page flag updates
_NOT_LRU = ~PG_lru
_SWAPCACHE = PG_swapcache | PG_swapbacked  # PageSwapCache, tested in line on hot paths
_GFP_FS = G.__GFP_FS
_GFP_IO = G.__GFP_IO
EVICTABLE_LRUS = (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)


@dataclass(slots=True)
class scan_control:
    """struct scan_control: one reclaim invocation's parameters and running totals."""

    nr_to_reclaim: int = 0
    gfp_mask: int = 0
    order: int = 0
    priority: int = DEF_PRIORITY
    reclaim_idx: int = MAX_NR_ZONES - 1
    may_writepage: int = 0
    may_unmap: int = 0
    may_swap: int = 0
    may_deactivate: int = 0
    force_deactivate: int = 0
    skipped_deactivate: int = 0
    cache_trim_mode: int = 0
    file_is_tiny: int = 0
    anon_cost: int = 0
    file_cost: int = 0
    nr_scanned: int = 0
    nr_reclaimed: int = 0
    nr: dict[str, int] = field(default_factory=dict)  # sc->nr: dirty, taken, file_taken, ...
    kswapd: bool = False  # current_is_kswapd()


@dataclass(slots=True)
class reclaim_stat:
    """struct reclaim_stat of one shrink_page_list call."""

    nr_dirty: int = 0
    nr_unqueued_dirty: int = 0
    nr_pageout: int = 0
    nr_activate: list[int] = field(default_factory=lambda: [0, 0])
    nr_ref_keep: int = 0
    nr_unmap_fail: int = 0


def _node_lru(pgdat: pglist_data, lru: int) -> int:
    """node_page_state(NR_LRU_BASE + lru): pages on the list (isolated pages excluded)."""
    return sum(pgdat.node_lruvec.lru_zone_size[lru])


def _nr_free(zone: Zone) -> int:
    """zone_page_state(NR_FREE_PAGES): buddy pages only (per-cpu pages are not counted)."""
    return zone.nr_free_pages


@kernel(F)
def lruvec_lru_size(pgdat: pglist_data, lru: int, zone_idx: int) -> int:
    """Models mm/vmscan.c:lruvec_lru_size: the list's pages in managed zones <= zone_idx."""
    sz = pgdat.node_lruvec.lru_zone_size[lru]
    total = 0
    for z in pgdat.node_zones[:min(zone_idx, MAX_NR_ZONES - 1) + 1]:
        if z.managed_pages:
            total += sz[z.zone_idx]
    return total


def _int_sqrt(x: int) -> int:
    r = 0
    while (r + 1) * (r + 1) <= x:
        r += 1
    return r


@kernel(F)
def inactive_is_low(pgdat: pglist_data, inactive_lru: int) -> bool:
    """Models mm/vmscan.c:inactive_is_low: inactive * ratio < active, the ratio being
    int_sqrt(10 * GiB of the pair) (1 below 1 GiB)."""
    sizes = pgdat.node_lruvec.lru_zone_size  # node_page_state, as _node_lru reads it
    inactive = sum(sizes[inactive_lru])
    active = sum(sizes[inactive_lru + LRU_ACTIVE])
    gb = (inactive + active) >> (30 - 12)
    ratio = _int_sqrt(10 * gb) if gb else 1
    return inactive * ratio < active


# --------------------------------------------------------------------------------------------
# Isolation and putback


@kernel(F)
def __isolate_lru_page(page: Page, mode: int) -> int:
    """Models mm/vmscan.c:__isolate_lru_page: take a reference and clear PG_lru. 0,
    -EINVAL (not on an LRU / unevictable), -EBUSY (being freed)."""
    flags = page.flags
    if not flags & PG_lru:
        return -22
    if flags & PG_unevictable:
        return -22
    if page._refcount <= 0:
        return -16
    page._refcount += 1
    page.flags = flags & _NOT_LRU
    return 0


@kernel(F)
def isolate_lru_pages(pgdat: pglist_data, nr_to_scan: int, lv: lruvec, sc: scan_control,
                      lru: int) -> tuple[list[Page], int]:
    """Models mm/vmscan.c:isolate_lru_pages: take up to nr_to_scan eligible pages from the
    list's tail; pages of zones above reclaim_idx are skipped (moved to the head, not
    counted against nr_to_scan). Returns (the pages in isolation order, pages scanned)."""
    src = lv.lists[lru]
    taken: list[Page] = []
    skipped: list[Page] = []
    total_scan = scan = 0
    nr_zone_taken = [0] * MAX_NR_ZONES
    reclaim_idx = sc.reclaim_idx
    while scan < nr_to_scan and src:
        page = src.popitem()[1]  # the tail
        total_scan += 1
        if page.zone_idx > reclaim_idx:
            skipped.append(page)
            continue
        scan += 1
        r = __isolate_lru_page(page, 0)
        if r == 0:
            taken.append(page)
            nr_zone_taken[page.zone_idx] += 1
        elif r == -16:
            src[page.pfn] = page
            src.move_to_end(page.pfn, last=False)
        else:
            raise KernelBug("BUG()", f"__isolate_lru_page({page.pfn:#x}) = {r}")
    for page in skipped:
        src[page.pfn] = page
        src.move_to_end(page.pfn, last=False)
    update_lru_sizes(lv, lru, nr_zone_taken)
    return taken, total_scan


@kernel(F)
def update_lru_sizes(lv: lruvec, lru: int, nr_zone_taken: list[int]) -> None:
    """Models mm/vmscan.c:update_lru_sizes: after isolation, update_lru_size for each zone
    that gave pages."""
    for zid in range(MAX_NR_ZONES):
        if nr_zone_taken[zid]:
            update_lru_size(lv, lru, zid, -nr_zone_taken[zid])


@kernel(F)
def move_pages_to_lru(pgdat: pglist_data, lv: lruvec, pages: list[Page]) -> tuple[int, list[Page]]:
    """Models mm/vmscan.c:move_pages_to_lru: put isolated pages back at the head of the
    list their flags name (an unevictable one through putback_lru_page), dropping the
    isolation reference; a page whose last reference that was is freed. Returns (pages
    moved, pages to free, in the order 5.10's list has them)."""
    nr_moved = 0
    to_free: list[Page] = []
    for page in pages:
        if not page_evictable(page):
            putback_lru_page(pgdat, page)
            continue
        page.flags |= PG_lru
        lru = page_lru(page)
        update_lru_size(lv, lru, page.zone_idx, 1)
        lst = lv.lists[lru]  # list_move to the list's head
        lst[page.pfn] = page
        lst.move_to_end(page.pfn, last=False)
        if put_page_testzero(page):
            page.flags &= ~(PG_lru | PG_active)
            del_page_from_lru_list(page, lv, lru)
            to_free.insert(0, page)  # list_add to pages_to_free: freed last-found first
        else:
            nr_moved += 1
    return nr_moved, to_free


# --------------------------------------------------------------------------------------------
# The page-level decisions


@kernel(F)
def page_check_references(page: Page, sc: scan_control) -> int:
    """Models mm/vmscan.c:page_check_references: PAGEREF_ACTIVATE for a page referenced
    through its ptes twice (or once plus PG_referenced, or an executable file page),
    PAGEREF_KEEP for once, PAGEREF_RECLAIM_CLEAN for an unmapped file page with only
    PG_referenced, else PAGEREF_RECLAIM (also for an mlocked VMA: try_to_unmap mlocks)."""
    referenced_ptes, vm_flags = page_referenced(page, 1)
    referenced_page = page.flags & PG_referenced
    page.flags &= _NOT_REFERENCED  # TestClearPageReferenced
    if vm_flags & VM_LOCKED:
        return PAGEREF_RECLAIM
    if referenced_ptes:
        page.flags |= PG_referenced
        if referenced_page or referenced_ptes > 1:
            return PAGEREF_ACTIVATE
        if vm_flags & VM_EXEC and not page.flags & PG_swapbacked:
            return PAGEREF_ACTIVATE
        return PAGEREF_KEEP
    if referenced_page and not page.flags & PG_swapbacked:
        return PAGEREF_RECLAIM_CLEAN
    return PAGEREF_RECLAIM


def _page_mapping(page: Page) -> object | None:
    """mm/util.c:page_mapping: the swap cache for a swap-cache page, None for other
    anonymous pages, else page->mapping."""
    if page.flags & _SWAPCACHE == _SWAPCACHE:  # PageSwapCache
        return "swapper_space"
    if page.mapping_flags:
        return None
    return page.mapping


@kernel("mm/page-writeback.c")
def clear_page_dirty_for_io(page: Page) -> bool:
    """Models mm/page-writeback.c:clear_page_dirty_for_io: write-protect the page's shared
    mappings (page_mkclean) and clear PG_dirty; whether it was dirty."""
    if isinstance(page.mapping, address_space) and not page.mapping_flags:
        page_mkclean(page)
    if page.flags & PG_dirty:
        page.flags &= ~PG_dirty
        return True
    return False


def _writepage(pgdat: pglist_data, page: Page) -> None:
    """a_ops->writepage of a regular file's page (refmodel.mm.filemap)."""
    mapping = page.mapping
    assert isinstance(mapping, address_space) and mapping.host is not None
    write_page_to_file(pgdat, mapping.host, page)


@kernel(F)
def pageout(pgdat: pglist_data, page: Page, mapping: object) -> int:
    """Models mm/vmscan.c:pageout: PAGE_KEEP unless only the cache and the isolation hold
    the page; a dirty page is written (swap_writepage, or the file's writepage; shmem's
    writepage redirties and activates: shmem swap is not modelled) and PAGE_SUCCESS; a
    clean one is PAGE_CLEAN."""
    if page._refcount != 2:  # is_page_cache_freeable
        return PAGE_KEEP
    if mapping is None:
        return PAGE_KEEP
    if isinstance(mapping, address_space) and mapping.swapbacked:
        return PAGE_ACTIVATE  # shmem_writepage: redirty, AOP_WRITEPAGE_ACTIVATE
    if clear_page_dirty_for_io(page):
        page.flags |= PG_reclaim
        if isinstance(mapping, address_space):
            _writepage(pgdat, page)
        else:
            swap_writepage(pgdat, page)
        if not page.flags & PG_writeback:
            page.flags &= ~PG_reclaim
        return PAGE_SUCCESS
    return PAGE_CLEAN


@kernel(F)
def __remove_mapping(pgdat: pglist_data, mapping: object, page: Page) -> int:
    """Models mm/vmscan.c:__remove_mapping: if only the cache and the isolation hold the
    page (refcount frozen at 2) and it is clean, take it out of the swap cache (and let go
    of its slot) or the page cache. 1 with the refcount at 0, else 0. No shadow entry."""
    if page._refcount != 2:
        return 0
    if page.flags & PG_dirty:
        return 0
    page._refcount = 0  # page_ref_freeze
    if page.flags & _SWAPCACHE == _SWAPCACHE:  # PageSwapCache
        entry = page.private
        __delete_from_swap_cache(pgdat, page, entry)
        put_swap_page(pgdat, page, entry)
    else:
        assert isinstance(mapping, address_space)
        page_cache_delete(mapping, page)  # __delete_from_page_cache
    return 1


@kernel(F)
def shrink_page_list(pgdat: pglist_data, pages: list[Page], sc: scan_control,
                     stat: reclaim_stat) -> tuple[int, list[Page]]:
    """Models mm/vmscan.c:shrink_page_list for order-0 pages, in isolation order: each
    page is activated, kept, or reclaimed (anonymous: swap slot, unmap, write out, off the
    swap cache; file: unmap, off the page cache when clean). Returns (pages reclaimed, the
    pages to put back in keep order); the reclaimed ones are freed here."""
    nr_reclaimed = 0
    ret_pages: list[Page] = []
    free_pages: list[Page] = []
    for page in pages:
        sc.nr_scanned += 1
        outcome = _shrink_one_page(pgdat, page, sc, stat)
        if outcome == "free":
            nr_reclaimed += 1
            free_pages.insert(0, page)  # list_add
            continue
        if outcome == "activate":
            if PageSwapCache(page) and (mem_cgroup_swap_full(pgdat, page)
                                        or page.flags & PG_mlocked):
                try_to_free_swap(pgdat, page)
            if not page.flags & PG_mlocked:
                page.flags |= PG_active
                stat.nr_activate[int(page_is_file_lru(page))] += 1
        ret_pages.append(page)
    free_unref_page_list(pgdat, free_pages)
    return nr_reclaimed, ret_pages


def _shrink_one_page(pgdat: pglist_data, page: Page, sc: scan_control,
                     stat: reclaim_stat) -> str:
    """One page of shrink_page_list: "free", "activate" or "keep"."""
    if not page_evictable(page):
        return "activate"
    flags = page.flags  # until page_check_references changes them
    may_enter_fs = sc.gfp_mask & _GFP_FS or (
        flags & _SWAPCACHE == _SWAPCACHE and sc.gfp_mask & _GFP_IO)
    if page_is_file_lru(page) and flags & (PG_dirty | PG_writeback):
        stat.nr_dirty += 1
        if flags & PG_dirty and not flags & PG_writeback:
            stat.nr_unqueued_dirty += 1
    references = page_check_references(page, sc)
    if references == PAGEREF_ACTIVATE:
        return "activate"
    if references == PAGEREF_KEEP:
        stat.nr_ref_keep += 1
        return "keep"
    flags = page.flags
    # an anonymous page not yet in the swap cache (PageSwapCache, PG_swapbacked known set)
    if page.mapping_flags and flags & PG_swapbacked and not flags & PG_swapcache:
        if not sc.gfp_mask & _GFP_IO:
            return "keep"
        if not add_to_swap(pgdat, page):
            return "activate"
        may_enter_fs = True
        mapping: object | None = "swapper_space"  # page_mapping: now in the swap cache
    else:
        mapping = _page_mapping(page)
    if page._mapcount >= 0:
        if not try_to_unmap(page, TTU_BATCH_FLUSH):
            stat.nr_unmap_fail += 1
            return "activate"
    if page.flags & PG_dirty:
        if page_is_file_lru(page) and (not sc.kswapd or not page.flags & PG_reclaim
                                       or not pgdat.pgdat_flags & PGDAT_DIRTY):
            page.flags |= PG_reclaim  # NR_VMSCAN_IMMEDIATE: left for the flusher
            return "activate"
        if references == PAGEREF_RECLAIM_CLEAN or not may_enter_fs or not sc.may_writepage:
            return "keep"
        r = pageout(pgdat, page, mapping)
        if r == PAGE_KEEP:
            return "keep"
        if r == PAGE_ACTIVATE:
            return "activate"
        if r == PAGE_SUCCESS:
            stat.nr_pageout += 1
            if page.flags & (PG_writeback | PG_dirty):
                return "keep"
            mapping = _page_mapping(page)
    if mapping is None or not __remove_mapping(pgdat, mapping, page):
        return "keep"
    return "free"


# --------------------------------------------------------------------------------------------
# The list scans


@kernel(F)
def shrink_active_list(pgdat: pglist_data, nr_to_scan: int, lv: lruvec, sc: scan_control,
                       lru: int) -> None:
    """Models mm/vmscan.c:shrink_active_list: isolate from the active list's tail; a
    referenced executable file page stays active, every other page is deactivated
    (PG_active cleared, PG_workingset set, PG_referenced left alone) to the inactive head."""
    lru_add_drain(pgdat)
    taken, _ = isolate_lru_pages(pgdat, nr_to_scan, lv, sc, lru)
    l_active: list[Page] = []
    l_inactive: list[Page] = []
    for page in taken:
        if not page_evictable(page):
            putback_lru_page(pgdat, page)
            continue
        referenced, vm_flags = page_referenced(page, 0)
        if referenced and vm_flags & VM_EXEC and page_is_file_lru(page):
            l_active.append(page)
            continue
        page.flags &= ~PG_active
        page.flags |= PG_workingset
        l_inactive.append(page)
    _, free_a = move_pages_to_lru(pgdat, lv, l_active)
    _, free_i = move_pages_to_lru(pgdat, lv, l_inactive)
    free_unref_page_list(pgdat, free_i + free_a)  # l_inactive spliced ahead of l_active


@kernel("fs/fs-writeback.c")
def wakeup_flusher_threads(pgdat: pglist_data) -> None:
    """Models fs/fs-writeback.c:wakeup_flusher_threads(WB_REASON_VMSCAN): the flusher
    writes back every dirty page-cache page of regular files. The model's flusher runs at
    once (docs/scope.md): each page is cleaned (clear_page_dirty_for_io) and written."""
    for lru in (LRU_INACTIVE_FILE, LRU_ACTIVE_FILE):
        for page in list(pgdat.node_lruvec.lists[lru].values()):
            m = page.mapping
            if (page.flags & PG_dirty and isinstance(m, address_space) and not m.swapbacked
                    and not page.mapping_flags and clear_page_dirty_for_io(page)):
                _writepage(pgdat, page)


@kernel(F)
def shrink_inactive_list(pgdat: pglist_data, nr_to_scan: int, lv: lruvec, sc: scan_control,
                         lru: int) -> int:
    """Models mm/vmscan.c:shrink_inactive_list: isolate up to nr_to_scan pages from the
    tail, shrink_page_list, put the rest back, note the cost of what was written out, and
    wake the flusher if every page taken was dirty and unqueued. Pages reclaimed."""
    file = lru >= LRU_FILE
    lru_add_drain(pgdat)
    taken, _ = isolate_lru_pages(pgdat, nr_to_scan, lv, sc, lru)
    if not taken:
        return 0
    stat = reclaim_stat()
    nr_reclaimed, kept = shrink_page_list(pgdat, taken, sc, stat)
    _, to_free = move_pages_to_lru(pgdat, lv, kept)
    lru_note_cost(lv, file, stat.nr_pageout)
    free_unref_page_list(pgdat, to_free)
    if stat.nr_unqueued_dirty == len(taken):
        wakeup_flusher_threads(pgdat)
    nr = sc.nr
    nr["unqueued_dirty"] = nr.get("unqueued_dirty", 0) + stat.nr_unqueued_dirty
    nr["dirty"] = nr.get("dirty", 0) + stat.nr_dirty
    nr["taken"] = nr.get("taken", 0) + len(taken)
    if file:
        nr["file_taken"] = nr.get("file_taken", 0) + len(taken)
    return nr_reclaimed


@kernel(F)
def shrink_list(pgdat: pglist_data, lru: int, nr_to_scan: int, lv: lruvec,
                sc: scan_control) -> int:
    """Models mm/vmscan.c:shrink_list: an active list is aged only if deactivation of its
    type is allowed (else skipped_deactivate); an inactive list is shrunk."""
    if lru in (LRU_ACTIVE_ANON, LRU_ACTIVE_FILE):
        if sc.may_deactivate & (1 << int(lru >= LRU_FILE)):
            shrink_active_list(pgdat, nr_to_scan, lv, sc, lru)
        else:
            sc.skipped_deactivate = 1
        return 0
    return shrink_inactive_list(pgdat, nr_to_scan, lv, sc, lru)


@kernel(F)
def get_scan_count(pgdat: pglist_data, lv: lruvec, sc: scan_control) -> list[int]:
    """Models mm/vmscan.c:get_scan_count: how many pages of each evictable list to scan at
    this priority: file only without swap (or with cache_trim_mode), anon only when file
    is tiny, equally at priority 0, else (size >> priority) split by swappiness 60 and the
    recent anon/file reclaim costs."""
    swappiness = vm_swappiness
    fraction = [0, 0]
    denominator = 1
    if not sc.may_swap or pgdat.nr_swap_pages <= 0:
        balance = SCAN_FILE
    elif not sc.priority and swappiness:
        balance = SCAN_EQUAL
    elif sc.file_is_tiny:
        balance = SCAN_ANON
    elif sc.cache_trim_mode:
        balance = SCAN_FILE
    else:
        balance = SCAN_FRACT
        total_cost = sc.anon_cost + sc.file_cost
        anon_cost = total_cost + sc.anon_cost
        file_cost = total_cost + sc.file_cost
        total_cost = anon_cost + file_cost
        ap = swappiness * (total_cost + 1) // (anon_cost + 1)
        fp = (200 - swappiness) * (total_cost + 1) // (file_cost + 1)
        fraction = [ap, fp]
        denominator = ap + fp
    nr = [0, 0, 0, 0]
    for lru in EVICTABLE_LRUS:
        file = int(lru >= LRU_FILE)
        scan = lruvec_lru_size(pgdat, lru, sc.reclaim_idx) >> sc.priority
        if balance == SCAN_FRACT:
            scan = scan * fraction[file] // denominator
        elif balance in (SCAN_FILE, SCAN_ANON) and (balance == SCAN_FILE) != bool(file):
            scan = 0
        nr[lru] = scan
    return nr


@kernel(F)
def shrink_lruvec(pgdat: pglist_data, lv: lruvec, sc: scan_control) -> None:
    """Models mm/vmscan.c:shrink_lruvec: scan the four lists in SWAP_CLUSTER_MAX batches
    in proportion to get_scan_count; once enough is reclaimed (not at direct reclaim's
    first priority) cut the larger type's remaining scan in proportion and stop the
    smaller; finally age the active anon list if its inactive list is low."""
    nr = get_scan_count(pgdat, lv, sc)
    targets = list(nr)
    nr_reclaimed = 0
    nr_to_reclaim = sc.nr_to_reclaim
    scan_adjusted = not sc.kswapd and sc.priority == DEF_PRIORITY
    while nr[LRU_INACTIVE_ANON] or nr[LRU_ACTIVE_FILE] or nr[LRU_INACTIVE_FILE]:
        for lru in EVICTABLE_LRUS:
            if nr[lru]:
                n = min(nr[lru], SWAP_CLUSTER_MAX)
                nr[lru] -= n
                nr_reclaimed += shrink_list(pgdat, lru, n, lv, sc)
        if nr_reclaimed < nr_to_reclaim or scan_adjusted:
            continue
        nr_file = nr[LRU_INACTIVE_FILE] + nr[LRU_ACTIVE_FILE]
        nr_anon = nr[LRU_INACTIVE_ANON] + nr[LRU_ACTIVE_ANON]
        if not nr_file or not nr_anon:
            break
        if nr_file > nr_anon:
            scan_target = targets[LRU_INACTIVE_ANON] + targets[LRU_ACTIVE_ANON] + 1
            lru = LRU_BASE
            percentage = nr_anon * 100 // scan_target
        else:
            scan_target = targets[LRU_INACTIVE_FILE] + targets[LRU_ACTIVE_FILE] + 1
            lru = LRU_FILE
            percentage = nr_file * 100 // scan_target
        nr[lru] = 0
        nr[lru + LRU_ACTIVE] = 0
        lru = LRU_FILE if lru == LRU_BASE else LRU_BASE
        for x in (lru, lru + LRU_ACTIVE):
            scanned = targets[x] - nr[x]
            nr[x] = targets[x] * (100 - percentage) // 100
            nr[x] -= min(nr[x], scanned)
        scan_adjusted = True
    sc.nr_reclaimed += nr_reclaimed
    if pgdat.total_swap_pages > 0 and inactive_is_low(pgdat, LRU_INACTIVE_ANON):
        shrink_active_list(pgdat, SWAP_CLUSTER_MAX, lv, sc, LRU_ACTIVE_ANON)


@kernel(F)
def shrink_slab(gfp_mask: int, priority: int) -> int:
    """Models mm/vmscan.c:shrink_slab with no shrinkers registered: nothing freed."""
    return 0


@kernel(F)
def shrink_node_memcgs(pgdat: pglist_data, sc: scan_control) -> None:
    """Models mm/vmscan.c:shrink_node_memcgs without memcg: the root lruvec once."""
    shrink_lruvec(pgdat, pgdat.node_lruvec, sc)
    shrink_slab(sc.gfp_mask, sc.priority)


@kernel(F)
def shrink_node(pgdat: pglist_data, sc: scan_control) -> None:
    """Models mm/vmscan.c:shrink_node: snapshot the reclaim costs, decide which active
    lists may be deactivated (inactive_is_low; no refault signal without shadows), set
    cache_trim_mode and file_is_tiny, shrink; progress resets kswapd_failures. kswapd
    marks the node PGDAT_DIRTY when no file page it took was written back."""
    lv = pgdat.node_lruvec
    sc.nr = {}
    nr_reclaimed = sc.nr_reclaimed
    sc.anon_cost = lv.anon_cost
    sc.file_cost = lv.file_cost
    if not sc.force_deactivate:
        if inactive_is_low(pgdat, LRU_INACTIVE_ANON):
            sc.may_deactivate |= DEACTIVATE_ANON
        else:
            sc.may_deactivate &= ~DEACTIVATE_ANON
        if inactive_is_low(pgdat, LRU_INACTIVE_FILE):
            sc.may_deactivate |= DEACTIVATE_FILE
        else:
            sc.may_deactivate &= ~DEACTIVATE_FILE
    else:
        sc.may_deactivate = DEACTIVATE_ANON | DEACTIVATE_FILE
    file = _node_lru(pgdat, LRU_INACTIVE_FILE)
    sc.cache_trim_mode = int(bool(file >> sc.priority)
                             and not sc.may_deactivate & DEACTIVATE_FILE)
    free = sum(_nr_free(z) for z in pgdat.node_zones)
    file = _node_lru(pgdat, LRU_ACTIVE_FILE) + _node_lru(pgdat, LRU_INACTIVE_FILE)
    total_high_wmark = sum(high_wmark_pages(z) for z in pgdat.node_zones if z.managed_pages)
    anon = _node_lru(pgdat, LRU_INACTIVE_ANON)
    sc.file_is_tiny = int(file + free <= total_high_wmark
                          and not sc.may_deactivate & DEACTIVATE_ANON
                          and bool(anon >> sc.priority))
    shrink_node_memcgs(pgdat, sc)
    reclaimable = sc.nr_reclaimed - nr_reclaimed != 0
    if sc.kswapd and sc.nr.get("unqueued_dirty", 0) == sc.nr.get("file_taken", 0):
        pgdat.pgdat_flags |= PGDAT_DIRTY
    if reclaimable:
        pgdat.kswapd_failures = 0


@kernel(F)
def shrink_zones(pgdat: pglist_data, sc: scan_control) -> None:
    """Models mm/vmscan.c:shrink_zones: one shrink_node per node among the zonelist's
    zones up to reclaim_idx (one node: once, if any such zone is populated)."""
    if any(z.managed_pages for z in pgdat.node_zones[:sc.reclaim_idx + 1]):
        shrink_node(pgdat, sc)


@kernel(F)
def do_try_to_free_pages(pgdat: pglist_data, sc: scan_control) -> int:
    """Models mm/vmscan.c:do_try_to_free_pages: priorities DEF_PRIORITY down to 0 until
    SWAP_CLUSTER_MAX pages are reclaimed (writing allowed below priority 10); if nothing
    was and deactivation was skipped, one more pass forcing it. Pages reclaimed."""
    initial_priority = sc.priority
    while True:  # retry:
        while True:
            sc.nr_scanned = 0
            shrink_zones(pgdat, sc)
            if sc.nr_reclaimed >= sc.nr_to_reclaim:
                break
            if sc.priority < DEF_PRIORITY - 2:
                sc.may_writepage = 1
            sc.priority -= 1
            if sc.priority < 0:
                break
        if sc.nr_reclaimed:
            return sc.nr_reclaimed
        if sc.skipped_deactivate:
            sc.priority = initial_priority
            sc.force_deactivate = 1
            sc.skipped_deactivate = 0
            continue
        return 0


@kernel(F)
def try_to_free_pages(pgdat: pglist_data, order: int, gfp_mask: int) -> int:
    """Models mm/vmscan.c:try_to_free_pages: direct reclaim of SWAP_CLUSTER_MAX pages
    from zones up to gfp_zone(gfp_mask), from DEF_PRIORITY, allowed to write, unmap and
    swap. (throttle_direct_reclaim is left out: docs/scope.md.) Pages reclaimed."""
    sc = scan_control(nr_to_reclaim=SWAP_CLUSTER_MAX, gfp_mask=gfp_mask,
                      reclaim_idx=G.gfp_zone(gfp_mask), order=order, priority=DEF_PRIORITY,
                      may_writepage=1, may_unmap=1, may_swap=1)
    return do_try_to_free_pages(pgdat, sc)


# --------------------------------------------------------------------------------------------
# kswapd


@kernel(F)
def pgdat_balanced(pgdat: pglist_data, order: int, highest_zoneidx: int) -> bool:
    """Models mm/vmscan.c:pgdat_balanced: one managed zone up to highest_zoneidx at its
    high watermark is enough (and a node with none is balanced)."""
    mark = -1
    for z in pgdat.node_zones[:highest_zoneidx + 1]:
        if not z.managed_pages:
            continue
        mark = z._watermark[WMARK_HIGH] + z.watermark_boost  # high_wmark_pages, in line
        if __zone_watermark_ok(z, order, mark, highest_zoneidx, 0, z.nr_free_pages):
            return True
    return mark == -1


def pgdat_watermark_boosted(pgdat: pglist_data, highest_zoneidx: int) -> bool:
    return any(z.managed_pages and z.watermark_boost
               for z in pgdat.node_zones[:highest_zoneidx + 1])


@kernel(F)
def wakeup_kswapd(pgdat: pglist_data, zone: Zone, gfp_flags: int, order: int,
                  highest_zoneidx: int) -> None:
    """Models mm/vmscan.c:wakeup_kswapd: record the request (the highest zone and order
    asked for); if kswapd is asleep (waitqueue_active(&pgdat->kswapd_wait): not woken
    already, not running), wake it unless it has failed MAX_RECLAIM_RETRIES times or the
    node is balanced and not boosted. The woken kswapd runs at the next deterministic point
    (Machine: after the current operation)."""
    if not zone.managed_pages:
        return
    cur = pgdat.kswapd_highest_zoneidx
    if cur == MAX_NR_ZONES or cur < highest_zoneidx:
        pgdat.kswapd_highest_zoneidx = highest_zoneidx
    if pgdat.kswapd_order < order:
        pgdat.kswapd_order = order
    if pgdat.kswapd_woken:  # !waitqueue_active: kswapd is awake, nobody waits on kswapd_wait
        return
    if pgdat.kswapd_failures >= MAX_RECLAIM_RETRIES or (
            pgdat_balanced(pgdat, order, highest_zoneidx)
            and not pgdat_watermark_boosted(pgdat, highest_zoneidx)):
        return
    pgdat.kswapd_woken = True


@kernel(F)
def age_active_anon(pgdat: pglist_data, sc: scan_control) -> None:
    """Models mm/vmscan.c:age_active_anon: with swap, deactivate a batch of active anon
    pages when the inactive anon list is low."""
    if not pgdat.total_swap_pages:
        return
    if inactive_is_low(pgdat, LRU_INACTIVE_ANON):
        shrink_active_list(pgdat, SWAP_CLUSTER_MAX, pgdat.node_lruvec, sc, LRU_ACTIVE_ANON)


@kernel(F)
def kswapd_shrink_node(pgdat: pglist_data, sc: scan_control) -> bool:
    """Models mm/vmscan.c:kswapd_shrink_node: aim for the eligible zones' high watermarks
    (at least SWAP_CLUSTER_MAX each); whether enough pages were scanned."""
    sc.nr_to_reclaim = sum(max(high_wmark_pages(z), SWAP_CLUSTER_MAX)
                           for z in pgdat.node_zones[:sc.reclaim_idx + 1] if z.managed_pages)
    shrink_node(pgdat, sc)
    if sc.order and sc.nr_reclaimed >= 2 << sc.order:  # compact_gap
        sc.order = 0
    return sc.nr_scanned >= sc.nr_to_reclaim


@kernel(F)
def balance_pgdat(pgdat: pglist_data, order: int, highest_zoneidx: int) -> int:
    """Models mm/vmscan.c:balance_pgdat: reclaim from DEF_PRIORITY down to 1 until some
    eligible zone is at its high watermark (first working off any watermark boost without
    writing or swapping); a run that reclaims nothing counts a kswapd failure."""
    sc = scan_control(gfp_mask=G.GFP_KERNEL, order=order, may_unmap=1, kswapd=True)
    zones = [z for z in pgdat.node_zones[:highest_zoneidx + 1] if z.managed_pages]
    zone_boosts = {z.zone_idx: z.watermark_boost for z in zones}
    nr_boost_reclaim = sum(zone_boosts.values())
    boosted = nr_boost_reclaim != 0
    balanced_out = False
    restart = True
    while restart:
        restart = False
        sc.priority = DEF_PRIORITY
        while True:
            nr_reclaimed_before = sc.nr_reclaimed
            raise_priority = True
            sc.reclaim_idx = highest_zoneidx
            balanced = pgdat_balanced(pgdat, sc.order, highest_zoneidx)
            if not balanced and nr_boost_reclaim:
                nr_boost_reclaim = 0
                restart = True
                break
            if not nr_boost_reclaim and balanced:
                balanced_out = True
                break
            if nr_boost_reclaim and sc.priority == DEF_PRIORITY - 2:
                raise_priority = False
            sc.may_writepage = int(not nr_boost_reclaim)
            sc.may_swap = int(not nr_boost_reclaim)
            age_active_anon(pgdat, sc)
            if sc.priority < DEF_PRIORITY - 2:
                sc.may_writepage = 1
            sc.nr_scanned = 0
            if kswapd_shrink_node(pgdat, sc):
                raise_priority = False
            nr_reclaimed = sc.nr_reclaimed - nr_reclaimed_before
            nr_boost_reclaim -= min(nr_boost_reclaim, nr_reclaimed)
            if nr_boost_reclaim and not nr_reclaimed:
                break
            if raise_priority or not nr_reclaimed:
                sc.priority -= 1
            if sc.priority < 1:
                break
    if not balanced_out and not sc.nr_reclaimed:
        pgdat.kswapd_failures += 1
    if boosted:
        for z in zones:
            if zone_boosts[z.zone_idx]:
                z.watermark_boost -= min(z.watermark_boost, zone_boosts[z.zone_idx])
    return sc.order


@kernel(F)
def prepare_kswapd_sleep(pgdat: pglist_data, order: int, highest_zoneidx: int) -> bool:
    """Models mm/vmscan.c:prepare_kswapd_sleep: sleep when hopeless (MAX_RECLAIM_RETRIES
    failures) or balanced (then the node's congestion/dirty flags are cleared)."""
    if pgdat.kswapd_failures >= MAX_RECLAIM_RETRIES:
        return True
    if pgdat_balanced(pgdat, order, highest_zoneidx):
        pgdat.pgdat_flags &= ~(PGDAT_DIRTY | PGDAT_WRITEBACK)  # clear_pgdat_congested
        return True
    return False


@kernel(F)
def kswapd_try_to_sleep(pgdat: pglist_data, alloc_order: int, reclaim_order: int,
                        highest_zoneidx: int) -> bool:
    """Models mm/vmscan.c:kswapd_try_to_sleep: if prepare_kswapd_sleep allows, a short
    sleep (HZ/10); then, unless woken during it, prepare_kswapd_sleep once more decides
    whether to sleep until woken. Nothing runs while kswapd naps in the model, so it is
    never woken early and the second check always happens. Whether kswapd went to sleep
    (kcompactd and the vmstat thresholds are out of scope)."""
    if prepare_kswapd_sleep(pgdat, reclaim_order, highest_zoneidx):
        pass  # reset_isolation_suitable, wakeup_kcompactd; schedule_timeout(HZ/10) → 0
    # remaining == 0: not woken during the short sleep
    return prepare_kswapd_sleep(pgdat, reclaim_order, highest_zoneidx)


KSWAPD_MAX_ROUNDS = 100_000


@kernel(F)
def kswapd(pgdat: pglist_data) -> int:
    """Models one wake-up of mm/vmscan.c:kswapd: take the recorded order and zone, run
    balance_pgdat, and go back to sleep once kswapd_try_to_sleep allows (else balance
    again). kswapd stays awake (pgdat.kswapd_woken, off kswapd_wait) until it sleeps.
    Returns the number of balance_pgdat runs."""
    highest_zoneidx = MAX_NR_ZONES - 1
    runs = 0
    pgdat.kswapd_woken = True
    while True:
        alloc_order = pgdat.kswapd_order
        if pgdat.kswapd_highest_zoneidx != MAX_NR_ZONES:
            highest_zoneidx = pgdat.kswapd_highest_zoneidx
        pgdat.kswapd_order = 0
        pgdat.kswapd_highest_zoneidx = MAX_NR_ZONES
        reclaim_order = balance_pgdat(pgdat, alloc_order, highest_zoneidx)
        runs += 1
        if reclaim_order >= alloc_order:
            # back at the top of kswapd's loop: read the order and zone again
            alloc_order = reclaim_order = pgdat.kswapd_order
            if pgdat.kswapd_highest_zoneidx != MAX_NR_ZONES:
                highest_zoneidx = pgdat.kswapd_highest_zoneidx
        if kswapd_try_to_sleep(pgdat, alloc_order, reclaim_order, highest_zoneidx):
            pgdat.kswapd_woken = False
            return runs
        if runs >= KSWAPD_MAX_ROUNDS:
            raise KernelBug("model: kswapd never settles", f"{runs} balance_pgdat runs")

