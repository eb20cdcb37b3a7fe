"""The buddy allocator and the per-cpu page lists (mm/page_alloc.c, 5.10).

Every function keeps its 5.10 name and takes the node (``pgdat``) it acts on explicitly. List
order is exact: each free list is an ordered dict whose first entry is the list head, so which
pfn an allocation returns is the one 5.10 returns. Left out (see docs/scope.md): CMA, page
isolation, compaction capture, shuffling, guard pages, memcg charging, NUMA, debug checks
that only change logging.
"""

from __future__ import annotations

import sys

from refmodel.bugs import BadPage, KernelBug, KernelWarning
from refmodel.mm import gfp as G
from refmodel.mm.internal import __find_buddy_pfn, combined_pfn
from refmodel.mm.mmzone import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    WMARK_MIN,
    FreeArea,
    Zone,
    ZoneType,
    alloc_context,
    get_pageblock_migratetype,
    min_wmark_pages,
    pageblock_nr_pages,
    pageblock_order,
    pfn_to_page,
    pglist_data,
    set_pageblock_migratetype,
)
from refmodel.mm.page_alloc_fast import alloc_fast, free_fast
from refmodel.mm.types import (
    LEGAL_FROM,
    PAGE_FLAGS_CHECK_AT_FREE,
    ST_ALLOCATED,
    ST_BUDDY,
    ST_PCP,
    ST_TAIL,
    Page,
    PageFlags,
    PageType,
    illegal_page_state,
    set_page_state,
)
from refmodel.trace import alias, kernel, register_arg_formatter

_PG_DIRTY_OR_WB = int(PageFlags.PG_dirty | PageFlags.PG_writeback)

F = "mm/page_alloc.c"

# The profiling hook a Tracer sets: while one is set, the fused fast paths stand aside so the
# trace shows every 5.10 call (see refmodel.mm.page_alloc_fast).
_getprofile = sys.getprofile

# mm/internal.h
ALLOC_WMARK_MIN = 0
ALLOC_WMARK_LOW = 1
ALLOC_WMARK_HIGH = 2
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08
ALLOC_HARDER = 0x10
ALLOC_HIGH = 0x20
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_NOFRAGMENT = 0x100
ALLOC_KSWAPD = 0x800

FPI_NONE = 0
FPI_SKIP_REPORT_NOTIFY = 1
FPI_TO_TAIL = 2

PAGE_ALLOC_COSTLY_ORDER = 3
MAX_RECLAIM_RETRIES = 16

watermark_boost_factor = 15000

_MT_NAMES = ("UNMOVABLE", "MOVABLE", "RECLAIMABLE", "HIGHATOMIC", "ISOLATE")
_ALLOC_NAMES = ((ALLOC_NO_WATERMARKS, "NO_WATERMARKS"), (ALLOC_OOM, "OOM"),
                (ALLOC_HARDER, "HARDER"), (ALLOC_HIGH, "HIGH"), (ALLOC_CPUSET, "CPUSET"),
                (ALLOC_CMA, "CMA"), (ALLOC_NOFRAGMENT, "NOFRAGMENT"), (ALLOC_KSWAPD, "KSWAPD"))


def alloc_flags_names(flags: int) -> str:
    """ALLOC_* flags by name, the watermark first."""
    parts = [("ALLOC_WMARK_MIN", "ALLOC_WMARK_LOW", "ALLOC_WMARK_HIGH", "?")[flags & 3]]
    parts += [f"ALLOC_{n}" for bit, n in _ALLOC_NAMES if flags & bit]
    return "|".join(parts)


def migratetype_name(mt: int) -> str:
    return f"MIGRATE_{_MT_NAMES[mt]}" if 0 <= mt < len(_MT_NAMES) else str(mt)


register_arg_formatter("alloc_flags", alloc_flags_names)
for _p in ("migratetype", "start_migratetype", "start_type"):
    register_arg_formatter(_p, migratetype_name)

_PG_buddy = int(PageType.PG_buddy)
_NOT_PG_buddy = ~_PG_buddy  # worked out once: cleared on every free-list removal
_PG_reserved = int(PageFlags.PG_reserved)
_PG_head = int(PageFlags.PG_head)
# Module constants for the hot paths (a module attribute costs a look-up per use; an Enum
# member about 0.1 µs, see refmodel.mm.types).
_GFP_ZERO = G.__GFP_ZERO
_GFP_COMP = G.__GFP_COMP
_GFP_KSWAPD_RECLAIM = G.__GFP_KSWAPD_RECLAIM
_ZONE_NORMAL = int(ZoneType.ZONE_NORMAL)
# The legal previous states of each state, as bit masks (set_page_state's table, in line).
_TO_TAIL = LEGAL_FROM[ST_TAIL]
_TO_BUDDY = LEGAL_FROM[ST_BUDDY]
_TO_PCP = LEGAL_FROM[ST_PCP]
_TO_ALLOCATED = LEGAL_FROM[ST_ALLOCATED]
# free_pages_prepare clears every page flag (PAGE_FLAGS_CHECK_AT_PREP); none survive a free.
_PAGE_FLAGS_KEPT_AT_FREE = 0

# fallbacks[] of mm/page_alloc.c: which other migratetypes a type may steal from, in order.
fallbacks: dict[int, tuple[int, ...]] = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
    MIGRATE_HIGHATOMIC: (),
    MIGRATE_ISOLATE: (),
}


# --------------------------------------------------------------------------------------------
# Free-list primitives (include/linux/mmzone.h, mm/page_alloc.c)


def set_buddy_order(page: Page, order: int) -> None:
    """mm/page_alloc.c:set_buddy_order: record the order and mark the page PageBuddy."""
    page.private = order
    page.page_type |= _PG_buddy


def add_to_free_list(page: Page, zone: Zone, order: int, migratetype: int) -> None:
    """mm/page_alloc.c:add_to_free_list: list_add at the head."""
    area = zone.free_area[order]
    fl = area.free_list[migratetype]
    pfn = page.pfn
    fl[pfn] = page
    fl.move_to_end(pfn, False)  # last=False: to the head
    page.index = migratetype  # model: lists are not intrusive, so remember which one
    area.nr_free += 1


def add_to_free_list_tail(page: Page, zone: Zone, order: int, migratetype: int) -> None:
    """mm/page_alloc.c:add_to_free_list_tail: list_add_tail."""
    area = zone.free_area[order]
    area.free_list[migratetype][page.pfn] = page
    page.index = migratetype
    area.nr_free += 1


def move_to_free_list(page: Page, zone: Zone, order: int, migratetype: int) -> None:
    """mm/page_alloc.c:move_to_free_list: list_move_tail onto another migratetype's list."""
    area = zone.free_area[order]
    del area.free_list[page.index][page.pfn]
    area.free_list[migratetype][page.pfn] = page
    page.index = migratetype


def del_page_from_free_list(page: Page, zone: Zone, order: int) -> None:
    """mm/page_alloc.c:del_page_from_free_list: unlink, clear PageBuddy and the order."""
    area = zone.free_area[order]
    del area.free_list[page.index][page.pfn]
    page.page_type &= _NOT_PG_buddy
    page.private = 0
    area.nr_free -= 1
    if not _TO_TAIL >> page.state & 1:
        illegal_page_state(page, ST_TAIL)
    page.state = ST_TAIL


def get_page_from_free_area(area: FreeArea, migratetype: int) -> Page | None:
    """mm/page_alloc.c:get_page_from_free_area: the list head, or None."""
    fl = area.free_list[migratetype]
    if not fl:
        return None
    return fl[next(iter(fl))]


@kernel(F)
def page_is_buddy(page: Page, buddy: Page | None, order: int) -> bool:
    """Models mm/page_alloc.c:page_is_buddy: the buddy is a free block of the same order in
    the same zone. A pfn with no struct page of its own here is a tail, never a buddy."""
    return (
        buddy is not None
        and bool(buddy.page_type & _PG_buddy)
        and buddy.private == order
        and buddy.zone_idx == page.zone_idx
    )


# --------------------------------------------------------------------------------------------
# Freeing


@kernel(F)
def buddy_merge_likely(
    pgdat: pglist_data, pfn: int, buddy_pfn: int, page: Page, order: int
) -> bool:
    """Models mm/page_alloc.c:buddy_merge_likely: is the next-order buddy already free?"""
    if order >= pgdat.max_order - 2:
        return False
    combined = combined_pfn(pfn, buddy_pfn)
    # higher_page lies in the same MAX_ORDER-aligned block as page, hence the same zone; only
    # its zone is read, so page stands in for it when it has no struct page of its own here.
    higher_page = pgdat.mem_map.get(combined, page)
    higher_buddy = pgdat.mem_map.get(__find_buddy_pfn(combined, order + 1))
    return page_is_buddy(higher_page, higher_buddy, order + 1)


@kernel(F)
def __free_one_page(
    pgdat: pglist_data, page: Page, pfn: int, zone: Zone, order: int, migratetype: int,
    fpi_flags: int,
) -> None:
    """Models mm/page_alloc.c:__free_one_page (5.10): merge with free buddies up to
    MAX_ORDER-1, then put the block at the list tail if FPI_TO_TAIL or if the next-order
    buddy is free (buddy_merge_likely), else at the head. Pageblock isolation is left out,
    so the pageblock_order pause of 5.10 never stops a merge."""
    if pfn & ((1 << order) - 1):
        raise KernelBug("VM_BUG_ON_PAGE(pfn & ((1 << order) - 1))", f"pfn {pfn:#x} order {order}")
    if migratetype != MIGRATE_ISOLATE:
        zone.nr_free_pages += 1 << order  # __mod_zone_freepage_state
    mem_map = pgdat.mem_map
    max_order = pgdat.max_order - 1
    buddy_pfn = pfn
    freed = page
    while order < max_order:
        buddy_pfn = __find_buddy_pfn(pfn, order)
        buddy = mem_map.get(buddy_pfn)
        if not page_is_buddy(page, buddy, order):
            break
        assert buddy is not None  # page_is_buddy is False for a pfn with no struct page
        del_page_from_free_list(buddy, zone, order)
        combined = combined_pfn(pfn, buddy_pfn)
        if combined != pfn:  # the buddy is the lower half: it heads the merged block
            page = buddy
        pfn = combined
        order += 1
    if page is not freed:
        set_page_state(freed, ST_TAIL)
    if not _TO_BUDDY >> page.state & 1:
        illegal_page_state(page, ST_BUDDY)
    page.state = ST_BUDDY
    page.private = order  # set_buddy_order
    page.page_type |= _PG_buddy
    if fpi_flags & FPI_TO_TAIL:
        to_tail = True
    else:
        to_tail = buddy_merge_likely(pgdat, pfn, buddy_pfn, page, order)
    # add_to_free_list_tail or add_to_free_list, in line (the hot path of every buddy free)
    area = zone.free_area[order]
    fl = area.free_list[migratetype]
    fl[pfn] = page
    if not to_tail:
        fl.move_to_end(pfn, False)  # last=False: to the head
    page.index = migratetype  # model: lists are not intrusive, so remember which one
    area.nr_free += 1


def _bad_reason(page: Page) -> str | None:
    """mm/page_alloc.c:free_pages_check_bad's reason (later reasons overwrite)."""
    reason = None
    if page._mapcount != -1 or page.page_type & _PG_buddy:
        reason = "nonzero mapcount"  # PageBuddy lives in the _mapcount word in 5.10
    if page.mapping is not None:
        reason = "non-NULL mapping"
    if page._refcount != 0:
        reason = "nonzero _refcount"
    if page.flags & PAGE_FLAGS_CHECK_AT_FREE:
        reason = "PAGE_FLAGS_CHECK_AT_FREE flag(s) set"
    return reason


@kernel(F)
def free_pages_prepare(pgdat: pglist_data, page: Page, order: int, check_free: bool) -> bool:
    """Models mm/page_alloc.c:free_pages_prepare: check the head and every tail page.

    5.10 reports a bad page and leaks it; the model raises :class:`BadPage` instead (before
    anything changed), because a reference model must not hide the caller's bug. The checks
    of the block are made on entry to the free path (in __free_pages, and by
    :func:`check_free_block`); here the head is checked for a mapping and the flags the
    allocator sets are cleared."""
    if page._mapcount != -1 or (page.mapping is not None and not page.mapping_flags):
        # free_pages_check (_head_refused, in line: every free runs it): a mapped page, or a
        # page still in a page cache, is a bad page
        raise BadPage(f"pfn {page.pfn:#x}: "
                      + ("nonzero mapcount" if page._mapcount != -1 else "non-NULL mapping"))
    if page.mapping_flags:  # PageMappingFlags: an anonymous page forgets its anon_vma
        page.mapping = None
        page.mapping_flags = 0
    page.flags &= _PAGE_FLAGS_KEPT_AT_FREE  # page->flags &= ~PAGE_FLAGS_CHECK_AT_PREP
    page.private = 0
    return True


def check_free_block(pgdat: pglist_data, page: Page, order: int) -> None:
    """Every check the free path makes, done up front so a rejected free changes nothing.
    __free_pages calls it for all but the common case (the head of a live block freed with
    its own order, whose range is inside its zone and aligned as the allocation made it:
    only its tail pages need a look, and __free_pages looks at them in line).

    Raises the kernel check that 5.10 would hit (or, for what 5.10 cannot see, a
    ``bad_page`` naming the model's own check)."""
    if not 0 <= order < pgdat.max_order:
        raise KernelBug("VM_BUG_ON(order >= MAX_ORDER)", f"free of order {order}")
    pfn = page.pfn
    zone = pgdat.node_zones[page.zone_idx]
    if not (zone.zone_start_pfn <= pfn and pfn + (1 << order) <= zone.zone_end_pfn):
        raise KernelBug("VM_BUG_ON_PAGE(bad_range(zone, page))", f"pfn {pfn:#x} order {order} "
                        f"is outside zone {zone.name}")
    if pfn & ((1 << order) - 1):
        raise KernelBug("VM_BUG_ON_PAGE(pfn & ((1 << order) - 1))",
                        f"pfn {pfn:#x} is not aligned to order {order}")
    if page._refcount == 0:
        raise KernelBug("VM_BUG_ON_PAGE(page_ref_count(page) == 0)",
                        f"put_page_testzero on pfn {pfn:#x}, which is not allocated "
                        f"({page.state.name.lower()}): a double free or a stray pfn")
    if page.flags & _PG_reserved:
        raise BadPage(f"pfn {pfn:#x}: PAGE_FLAGS_CHECK_AT_FREE flag(s) set (PG_reserved)")
    if page.state is ST_ALLOCATED and page.alloc_order != order:
        raise BadPage(
            f"pfn {pfn:#x} was allocated with order {page.alloc_order} but freed with order "
            f"{order} (5.10 would corrupt or leak memory here)",
            check="bad_page (model: order mismatch)",
        )
    if order:
        _check_tails(pgdat, pfn, order, _put_frees_tails(page))


def _head_refused(page: Page) -> bool:
    """Will free_pages_prepare refuse this head page (a mapcount, or a mapping that is not
    an anon_vma)?"""
    return page._mapcount != -1 or (page.mapping is not None and not page.mapping_flags)


def _put_frees_tails(page: Page) -> bool:
    """Will __free_pages free the tail pages of this block? With the last reference, or,
    for a non-compound block others still hold, as the upper halves it frees at once; and
    not if free_pages_prepare will refuse the head (a mapcount, or a mapping that is not
    an anon_vma), since a refused free changes nothing."""
    if _head_refused(page):
        return False
    return page._refcount == 1 or not page.flags & _PG_head


def _check_tails(pgdat: pglist_data, pfn: int, order: int, freeing: bool) -> None:
    """free_pages_prepare's free_pages_check of every tail page. A tail may carry flags
    outside PAGE_FLAGS_CHECK_AT_FREE (PG_dirty, PG_referenced, ...): 5.10 clears them
    (flags &= ~PAGE_FLAGS_CHECK_AT_PREP) as it checks. The model clears them here, once
    every tail has passed and only if this put frees the block (``freeing``); nothing can
    look at the tails between here and free_pages_prepare."""
    get = pgdat.mem_map.get
    flagged: list[Page] = []
    for p in range(pfn + 1, pfn + (1 << order)):
        tail = get(p)
        if tail is None:
            continue  # no struct page of its own here: a clean tail
        reason = _bad_reason(tail)
        if reason is None and tail.state is not ST_TAIL:
            reason = f"page is {tail.state.name.lower()} (model: overlapping free)"
        if reason is not None:
            raise BadPage(f"tail pfn {p:#x} of the block at {pfn:#x}: {reason}")
        if tail.flags:
            flagged.append(tail)
    if freeing:
        for tail in flagged:
            tail.flags &= _PAGE_FLAGS_KEPT_AT_FREE


@kernel(F)
def free_one_page(
    pgdat: pglist_data, zone: Zone, page: Page, pfn: int, order: int, migratetype: int,
    fpi_flags: int,
) -> None:
    """Models mm/page_alloc.c:free_one_page (zone->lock and isolation re-checks left out)."""
    __free_one_page(pgdat, page, pfn, zone, order, migratetype, fpi_flags)


@kernel(F)
def __free_pages_ok(pgdat: pglist_data, page: Page, order: int, fpi_flags: int) -> None:
    """Models mm/page_alloc.c:__free_pages_ok: high orders (and boot frees) skip pcp."""
    pfn = page.pfn
    if not free_pages_prepare(pgdat, page, order, True):
        return
    pgdat.allocated.pop(pfn, None)
    zone = pgdat.node_zones[page.zone_idx]
    # get_pageblock_migratetype, in line
    migratetype = zone.pageblock_mt.get(pfn >> pageblock_order, MIGRATE_MOVABLE)
    free_one_page(pgdat, zone, page, pfn, order, migratetype, fpi_flags)


@kernel(F)
def free_pcppages_bulk(pgdat: pglist_data, zone: Zone, count: int) -> None:
    """Models mm/page_alloc.c:free_pcppages_bulk: take ``count`` pages from the list tails,
    round-robin over the migratetypes starting at MOVABLE, then free them in that order."""
    pcp = zone.pageset
    migratetype = 0
    batch_free = 0
    count = min(pcp.count, count)
    taken: list[Page] = []
    while count:
        while True:
            batch_free += 1
            migratetype += 1
            if migratetype == MIGRATE_PCPTYPES:
                migratetype = 0
            lst = pcp.lists[migratetype]
            if lst:
                break
        if batch_free == MIGRATE_PCPTYPES:
            batch_free = count  # the only non-empty list: free them all
        while True:
            page = lst.pop()  # list_last_entry: the coldest page
            pcp.count -= 1
            taken.append(page)
            count -= 1
            if not count:
                break
            batch_free -= 1
            if not batch_free or not lst:
                break
    for page in taken:
        __free_one_page(pgdat, page, page.pfn, zone, 0, page.index, FPI_NONE)


@kernel(F)
def free_unref_page_commit(pgdat: pglist_data, page: Page, pfn: int) -> None:
    """Models mm/page_alloc.c:free_unref_page_commit: pcp list head; drain a batch at high."""
    zone = pgdat.node_zones[page.zone_idx]
    migratetype = page.index
    if migratetype >= MIGRATE_PCPTYPES:
        if migratetype == MIGRATE_ISOLATE:
            free_one_page(pgdat, zone, page, pfn, 0, migratetype, FPI_NONE)
            return
        migratetype = MIGRATE_MOVABLE
    pcp = zone.pageset
    if not _TO_PCP >> page.state & 1:
        illegal_page_state(page, ST_PCP)
    page.state = ST_PCP
    pcp.lists[migratetype].appendleft(page)
    pcp.count += 1
    if pcp.count >= pcp.high:
        free_pcppages_bulk(pgdat, zone, pcp.batch)


@kernel(F)
def free_pcp_prepare(pgdat: pglist_data, page: Page) -> bool:
    """Models mm/page_alloc.c:free_pcp_prepare without CONFIG_DEBUG_VM or debug_pagealloc:
    free_pages_prepare(page, 0, check_free=false)."""
    return free_pages_prepare(pgdat, page, 0, False)


@kernel(F)
def set_pcppage_migratetype(page: Page, migratetype: int) -> None:
    """Models mm/page_alloc.c:set_pcppage_migratetype: the pcp list's migratetype is kept
    in page->index while the page is on a per-cpu list."""
    page.index = migratetype


@kernel(F)
def free_unref_page_prepare(pgdat: pglist_data, page: Page, pfn: int) -> bool:
    """Models mm/page_alloc.c:free_unref_page_prepare: free_pcp_prepare, then note the
    pageblock's migratetype (get_pfnblock_migratetype, read in line) for the pcp list.
    The page stops being allocated here (the model's pgdat.allocated)."""
    if not free_pcp_prepare(pgdat, page):
        return False
    pgdat.allocated.pop(pfn, None)
    zone = pgdat.node_zones[page.zone_idx]
    set_pcppage_migratetype(page, zone.pageblock_mt.get(pfn >> pageblock_order,
                                                        MIGRATE_MOVABLE))
    return True


@kernel(F)
def free_unref_page(pgdat: pglist_data, page: Page) -> None:
    """Models mm/page_alloc.c:free_unref_page: an order-0 page goes to the per-cpu list."""
    pfn = page.pfn
    if not free_unref_page_prepare(pgdat, page, pfn):
        return
    free_unref_page_commit(pgdat, page, pfn)


@kernel(F)
def free_unref_page_list(pgdat: pglist_data, pages: list[Page]) -> None:
    """Models mm/page_alloc.c:free_unref_page_list: order-0 pages whose last reference is
    gone, in list order: free_unref_page_prepare for each (a page it refuses is dropped
    from the list), then free_unref_page_commit for each. With the model's per-cpu lists
    switched off (MachineConfig(pcp=False)) each page goes to the buddy allocator
    instead, as free_the_page sends it."""
    if not pgdat.pcp_enabled:
        for page in pages:
            __free_pages_ok(pgdat, page, 0, FPI_NONE)
        return
    for page in pages:
        # a page free_pages_prepare would refuse is refused before any page of the list is
        # prepared (the model raises where 5.10 drops and leaks it), so nothing has changed
        if _head_refused(page):
            free_pages_prepare(pgdat, page, 0, True)  # raises the bad_page it models
    prepared = [page for page in pages if free_unref_page_prepare(pgdat, page, page.pfn)]
    for page in prepared:
        free_unref_page_commit(pgdat, page, page.pfn)


@kernel(F)
def free_the_page(pgdat: pglist_data, page: Page, order: int) -> None:
    """Models mm/page_alloc.c:free_the_page: order 0 to pcp, else straight to the buddy."""
    if order == 0 and pgdat.pcp_enabled:
        free_unref_page(pgdat, page)
    else:
        __free_pages_ok(pgdat, page, order, FPI_NONE)


@kernel(F)
def put_page_testzero(page: Page) -> bool:
    """Models include/linux/mm.h:put_page_testzero: drop a reference, true if it was the last."""
    if page._refcount == 0:
        raise KernelBug("VM_BUG_ON_PAGE(page_ref_count(page) == 0)", f"pfn {page.pfn:#x}")
    page._refcount -= 1
    return page._refcount == 0


@kernel(F)
def __free_pages(pgdat: pglist_data, page: Page, order: int) -> None:
    """Models mm/page_alloc.c:__free_pages (5.10): drop a reference; the last one frees the
    block. If others still hold the head of a non-compound block, the upper halves are
    freed now (in descending order) and the head page stays with its holders."""
    if pgdat.fast_paths and _getprofile() is None and free_fast(pgdat, page, order):
        return  # untraced: the fused chain (refmodel.mm.page_alloc_fast) freed it
    if (page.state is not ST_ALLOCATED or page.alloc_order != order or not page._refcount
            or page.flags & _PG_reserved):
        check_free_block(pgdat, page, order)  # all but the head of a live block of this order
    elif order:
        # The common case of check_free_block, in line: every tail must be clean (a pfn with
        # no struct page of its own here is); _check_tails words the complaint.
        get = pgdat.mem_map.get
        pfn = page.pfn
        for p in range(pfn + 1, pfn + (1 << order)):
            tail = get(p)
            if tail is None or (tail.state is ST_TAIL and not tail._refcount
                                and not tail.flags and not tail.page_type
                                and tail._mapcount == -1 and tail.mapping is None):
                continue
            _check_tails(pgdat, pfn, order, _put_frees_tails(page))
            break
    if put_page_testzero(page):
        free_the_page(pgdat, page, order)
    elif not page.flags & _PG_head:
        page.alloc_order = 0
        pgdat.allocated[page.pfn] = 0
        while order > 0:
            order -= 1
            upper = pfn_to_page(pgdat, page.pfn + (1 << order))
            set_page_state(upper, ST_ALLOCATED)  # refcount 0, as 5.10's tails have
            free_the_page(pgdat, upper, order)


@kernel(F)
def free_pages(pgdat: pglist_data, addr: int, order: int) -> None:
    """Models mm/page_alloc.c:free_pages: free by kernel virtual address (0 is ignored)."""
    if addr != 0:
        __free_pages(pgdat, virt_to_page(pgdat, addr), order)


@kernel(F)
def __free_pages_core(pgdat: pglist_data, page: Page, order: int) -> None:
    """Models mm/page_alloc.c:__free_pages_core: release boot memory to the buddy lists,
    bypassing pcp and placing every block at the list tail (FPI_TO_TAIL, new in 5.10)."""
    zone = pgdat.node_zones[page.zone_idx]
    zone.managed_pages += 1 << order
    page.flags &= ~_PG_reserved
    page._refcount = 0
    set_page_state(page, ST_ALLOCATED)
    __free_pages_ok(pgdat, page, order, FPI_TO_TAIL)


@kernel(F)
def memblock_free_pages(pgdat: pglist_data, page: Page, pfn: int, order: int) -> None:
    """Models mm/page_alloc.c:memblock_free_pages (no deferred struct-page init)."""
    __free_pages_core(pgdat, page, order)


# --------------------------------------------------------------------------------------------
# Allocation: the buddy lists


@kernel(F)
def expand(pgdat: pglist_data, zone: Zone, page: Page, low: int, high: int,
           migratetype: int) -> None:
    """Models mm/page_alloc.c:expand: split a block, putting each upper half at the head of
    the next lower list; the caller keeps the lowest pages."""
    size = 1 << high
    mem_map = pgdat.mem_map
    base = page.pfn
    while high > low:
        high -= 1
        size >>= 1
        upper_pfn = base + size
        upper = mem_map.get(upper_pfn)
        if upper is None:  # first look at this pfn: inside a free block, so same zone
            upper = mem_map[upper_pfn] = Page(upper_pfn, page.zone_idx)
        if not _TO_BUDDY >> upper.state & 1:
            illegal_page_state(upper, ST_BUDDY)
        upper.state = ST_BUDDY
        add_to_free_list(upper, zone, high, migratetype)
        upper.private = high  # set_buddy_order
        upper.page_type |= _PG_buddy


@kernel(F)
def __rmqueue_smallest(pgdat: pglist_data, zone: Zone, order: int, migratetype: int) -> Page | None:
    """Models mm/page_alloc.c:__rmqueue_smallest: the head of the lowest non-empty list of
    this migratetype at or above ``order``, split down to ``order``."""
    for current_order in range(order, pgdat.max_order):
        area = zone.free_area[current_order]
        fl = area.free_list[migratetype]
        if not fl:
            continue
        page = fl[next(iter(fl))]
        del_page_from_free_list(page, zone, current_order)
        expand(pgdat, zone, page, order, current_order, migratetype)
        page.index = migratetype  # set_pcppage_migratetype
        return page
    return None


@kernel(F)
def can_steal_fallback(pgdat: pglist_data, order: int, start_mt: int) -> bool:
    """Models mm/page_alloc.c:can_steal_fallback."""
    if order >= pageblock_order:
        return True
    return (
        order >= pageblock_order // 2
        or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)
        or pgdat.page_group_by_mobility_disabled
    )


@kernel(F)
def find_suitable_fallback(
    pgdat: pglist_data, area: FreeArea, order: int, migratetype: int, only_stealable: bool
) -> tuple[int, bool]:
    """Models mm/page_alloc.c:find_suitable_fallback; returns (fallback_mt or -1, can_steal)."""
    if area.nr_free == 0:
        return -1, False
    can_steal = False
    for fallback_mt in fallbacks[migratetype]:
        if not area.free_list[fallback_mt]:
            continue
        if can_steal_fallback(pgdat, order, migratetype):
            can_steal = True
        if not only_stealable or can_steal:
            return fallback_mt, can_steal
    return -1, can_steal


@kernel(F)
def boost_watermark(zone: Zone) -> bool:
    """Models mm/page_alloc.c:boost_watermark (watermark_boost_factor 15000)."""
    if not watermark_boost_factor:
        return False
    if pageblock_nr_pages * 4 > zone.managed_pages:
        return False
    high = zone._watermark[2]
    max_boost = (high // 10000) * watermark_boost_factor + (
        (high % 10000) * watermark_boost_factor
    ) // 10000
    if not max_boost:
        return False
    max_boost = max(pageblock_nr_pages, max_boost)
    zone.watermark_boost = min(zone.watermark_boost + pageblock_nr_pages, max_boost)
    return True


@kernel(F)
def move_freepages_block(
    pgdat: pglist_data, zone: Zone, page: Page, migratetype: int
) -> tuple[int, int]:
    """Models mm/page_alloc.c:move_freepages_block / move_freepages: move every free block of
    the pageblock to ``migratetype``'s lists (tail). Returns (pages moved, movable pages)."""
    start = page.pfn & ~(pageblock_nr_pages - 1)
    end = start + pageblock_nr_pages - 1
    if start < zone.zone_start_pfn:
        start = page.pfn
    if end >= zone.zone_end_pfn:
        return 0, 0
    moved = 0
    movable = 0
    pfn = start
    mem_map = pgdat.mem_map
    while pfn <= end:
        p = mem_map.get(pfn)
        if p is None or not p.page_type & _PG_buddy:
            if p is not None and p.flags & int(PageFlags.PG_lru):
                movable += 1
            pfn += 1
            continue
        order = p.private
        move_to_free_list(p, zone, order, migratetype)
        pfn += 1 << order
        moved += 1 << order
    return moved, movable


@kernel(F)
def steal_suitable_fallback(
    pgdat: pglist_data, zone: Zone, page: Page, alloc_flags: int, start_type: int,
    whole_block: bool,
) -> None:
    """Models mm/page_alloc.c:steal_suitable_fallback: claim the pageblock (or blocks) when
    enough of it is free or alike, else move just this block."""
    current_order = page.private
    old_block_type = get_pageblock_migratetype(zone, page.pfn)
    if old_block_type != MIGRATE_HIGHATOMIC:
        if current_order >= pageblock_order:
            # change_pageblock_range
            for i in range(1 << (current_order - pageblock_order)):
                _set_pageblock_mt(pgdat, zone, page.pfn + i * pageblock_nr_pages, start_type)
        else:
            if boost_watermark(zone) and alloc_flags & ALLOC_KSWAPD:
                zone.boosted_watermark = True
            if whole_block:
                free_pages, movable_pages = move_freepages_block(pgdat, zone, page, start_type)
                if start_type == MIGRATE_MOVABLE:
                    alike_pages = movable_pages
                elif old_block_type == MIGRATE_MOVABLE:
                    alike_pages = pageblock_nr_pages - (free_pages + movable_pages)
                else:
                    alike_pages = 0
                if free_pages:
                    if (free_pages + alike_pages >= 1 << (pageblock_order - 1)
                            or pgdat.page_group_by_mobility_disabled):
                        _set_pageblock_mt(pgdat, zone, page.pfn, start_type)
                    return
    move_to_free_list(page, zone, current_order, start_type)


def _set_pageblock_mt(pgdat: pglist_data, zone: Zone, pfn: int, mt: int) -> None:
    """set_pageblock_migratetype, with 5.10's mapping to UNMOVABLE when grouping is off."""
    if pgdat.page_group_by_mobility_disabled and mt < MIGRATE_PCPTYPES:
        mt = MIGRATE_UNMOVABLE
    set_pageblock_migratetype(zone, pfn, mt)


@kernel(F)
def __rmqueue_fallback(
    pgdat: pglist_data, zone: Zone, order: int, start_migratetype: int, alloc_flags: int
) -> bool:
    """Models mm/page_alloc.c:__rmqueue_fallback: steal from another migratetype, looking
    from the largest order down (to take whole pageblocks), except that a movable request
    that may not steal takes the smallest block instead."""
    min_order = pageblock_order if alloc_flags & ALLOC_NOFRAGMENT else order
    current_order = pgdat.max_order - 1
    fallback_mt = -1
    can_steal = False
    found = False
    while current_order >= min_order:
        area = zone.free_area[current_order]
        fallback_mt, can_steal = find_suitable_fallback(
            pgdat, area, current_order, start_migratetype, False)
        if fallback_mt == -1:
            current_order -= 1
            continue
        if not can_steal and start_migratetype == MIGRATE_MOVABLE and current_order > order:
            # find_smallest
            for current_order in range(order, pgdat.max_order):
                area = zone.free_area[current_order]
                fallback_mt, can_steal = find_suitable_fallback(
                    pgdat, area, current_order, start_migratetype, False)
                if fallback_mt != -1:
                    break
            if fallback_mt == -1:
                raise KernelBug("VM_BUG_ON(current_order == MAX_ORDER)", "find_smallest failed")
        found = True
        break
    if not found:
        return False
    area = zone.free_area[current_order]
    page = get_page_from_free_area(area, fallback_mt)
    assert page is not None
    steal_suitable_fallback(pgdat, zone, page, alloc_flags, start_migratetype, can_steal)
    return True


@kernel(F)
def __rmqueue(pgdat: pglist_data, zone: Zone, order: int, migratetype: int,
              alloc_flags: int) -> Page | None:
    """Models mm/page_alloc.c:__rmqueue (no CMA): smallest fit, else steal and retry."""
    while True:
        page = __rmqueue_smallest(pgdat, zone, order, migratetype)
        if page is not None:
            return page
        if not __rmqueue_fallback(pgdat, zone, order, migratetype, alloc_flags):
            return None


@kernel(F)
def rmqueue_bulk(pgdat: pglist_data, zone: Zone, order: int, count: int, migratetype: int,
                 alloc_flags: int) -> int:
    """Models mm/page_alloc.c:rmqueue_bulk: ``count`` blocks to the pcp list tail."""
    lst = zone.pageset.lists[migratetype]
    alloced = 0
    for _ in range(count):
        page = __rmqueue(pgdat, zone, order, migratetype, alloc_flags)
        if page is None:
            break
        if not _TO_PCP >> page.state & 1:
            illegal_page_state(page, ST_PCP)
        page.state = ST_PCP
        lst.append(page)
        alloced += 1
    zone.nr_free_pages -= alloced << order
    return alloced


@kernel(F)
def __rmqueue_pcplist(pgdat: pglist_data, zone: Zone, migratetype: int,
                      alloc_flags: int) -> Page | None:
    """Models mm/page_alloc.c:__rmqueue_pcplist: refill an empty list, take its head."""
    pcp = zone.pageset
    lst = pcp.lists[migratetype]
    if not lst:
        pcp.count += rmqueue_bulk(pgdat, zone, 0, pcp.batch, migratetype, alloc_flags)
        if not lst:
            return None
    page = lst.popleft()
    pcp.count -= 1
    return page


@kernel(F)
def rmqueue_pcplist(pgdat: pglist_data, preferred_zone: Zone, zone: Zone, gfp_flags: int,
                    migratetype: int, alloc_flags: int) -> Page | None:
    """Models mm/page_alloc.c:rmqueue_pcplist."""
    return __rmqueue_pcplist(pgdat, zone, migratetype, alloc_flags)


@kernel(F)
def rmqueue(pgdat: pglist_data, preferred_zone: Zone, zone: Zone, order: int,
            gfp_flags: int, alloc_flags: int, migratetype: int) -> Page | None:
    """Models mm/page_alloc.c:rmqueue: order 0 from the pcp list, else from the buddy lists
    (the highatomic reserve first for ALLOC_HARDER). It never frees anything."""
    if order == 0 and pgdat.pcp_enabled:
        page = rmqueue_pcplist(pgdat, preferred_zone, zone, gfp_flags, migratetype, alloc_flags)
    else:
        page = None
        if order > 0 and alloc_flags & ALLOC_HARDER:
            page = __rmqueue_smallest(pgdat, zone, order, MIGRATE_HIGHATOMIC)
        if page is None:
            page = __rmqueue(pgdat, zone, order, migratetype, alloc_flags)
        if page is not None and page.index != MIGRATE_ISOLATE:
            zone.nr_free_pages -= 1 << order  # __mod_zone_freepage_state
    if zone.boosted_watermark:
        zone.boosted_watermark = False
        hook = pgdat.hooks.wakeup_kswapd
        if hook is not None:
            hook(zone, 0, zone.zone_idx)
    return page


# --------------------------------------------------------------------------------------------
# Watermarks


@kernel(F)
def __zone_watermark_ok(zone: Zone, order: int, mark: int, highest_zoneidx: int,
                        alloc_flags: int, free_pages: int) -> bool:
    """Models mm/page_alloc.c:__zone_watermark_ok: enough free pages above the mark plus the
    lowmem reserve, and (for order > 0) a free block of at least that order."""
    min_ = mark
    alloc_harder = alloc_flags & (ALLOC_HARDER | ALLOC_OOM)
    free_pages -= (1 << order) - 1  # __zone_watermark_unusable_free
    if not alloc_harder:
        free_pages -= zone.nr_reserved_highatomic
    if alloc_flags & ALLOC_HIGH:
        min_ -= min_ // 2
    if alloc_harder:
        if alloc_flags & ALLOC_OOM:
            min_ -= min_ // 2
        else:
            min_ -= min_ // 4
    if free_pages <= min_ + zone.lowmem_reserve[highest_zoneidx]:
        return False
    if not order:
        return True
    for o in range(order, len(zone.free_area)):  # MAX_ORDER (the standalone buddy's max_order)
        area = zone.free_area[o]
        if not area.nr_free:
            continue
        fl = area.free_list  # the MIGRATE_PCPTYPES lists: UNMOVABLE, MOVABLE, RECLAIMABLE
        if fl[MIGRATE_UNMOVABLE] or fl[MIGRATE_MOVABLE] or fl[MIGRATE_RECLAIMABLE]:
            return True
        if alloc_harder and fl[MIGRATE_HIGHATOMIC]:
            return True
    return False


@kernel(F)
def zone_watermark_ok(zone: Zone, order: int, mark: int, highest_zoneidx: int,
                      alloc_flags: int) -> bool:
    """Models mm/page_alloc.c:zone_watermark_ok."""
    return __zone_watermark_ok(zone, order, mark, highest_zoneidx, alloc_flags,
                               zone.nr_free_pages)


@kernel(F)
def zone_watermark_fast(zone: Zone, order: int, mark: int, highest_zoneidx: int,
                        alloc_flags: int, gfp_mask: int) -> bool:
    """Models mm/page_alloc.c:zone_watermark_fast (5.10.13's order-0 shortcut)."""
    free_pages = zone.nr_free_pages
    if not order:
        fast_free = free_pages
        if not alloc_flags & (ALLOC_HARDER | ALLOC_OOM):
            fast_free -= zone.nr_reserved_highatomic
        if fast_free > mark + zone.lowmem_reserve[highest_zoneidx]:
            return True
    if __zone_watermark_ok(zone, order, mark, highest_zoneidx, alloc_flags, free_pages):
        return True
    if (not order and gfp_mask & G.__GFP_ATOMIC and zone.watermark_boost
            and alloc_flags & ALLOC_WMARK_MASK == WMARK_MIN):
        return __zone_watermark_ok(zone, order, zone._watermark[WMARK_MIN], highest_zoneidx,
                                   alloc_flags, free_pages)
    return False


# --------------------------------------------------------------------------------------------
# Allocation: the zonelist walk and the entry points


@kernel("include/linux/highmem.h")
def clear_highpage(pgdat: pglist_data, page: Page) -> None:
    """Models include/linux/highmem.h:clear_highpage: the page's bytes read as zeros. It
    lives here because the allocator calls it; refmodel.mm.highmem re-exports it."""
    pgdat.page_data.pop(page.pfn, None)


@kernel(F)
def kernel_init_free_pages(pgdat: pglist_data, page: Page, numpages: int) -> None:
    """Models mm/page_alloc.c:kernel_init_free_pages: clear_highpage on every page of the
    block. A tail with no struct page of its own in the sparse mem_map (a clean tail) is
    handed a transient one, so zeroing does not make the mem_map grow."""
    clear_highpage(pgdat, page)
    get = pgdat.mem_map.get
    pfn = page.pfn
    for i in range(1, numpages):
        clear_highpage(pgdat, get(pfn + i) or Page(pfn + i, page.zone_idx))


@kernel(F)
def prep_new_page(pgdat: pglist_data, page: Page, order: int, gfp_flags: int,
                  alloc_flags: int) -> None:
    """Models mm/page_alloc.c:prep_new_page / post_alloc_hook: a reference of 1, zeroed only
    with __GFP_ZERO (init_on_alloc is off), PG_head with __GFP_COMP."""
    if not _TO_ALLOCATED >> page.state & 1:
        illegal_page_state(page, ST_ALLOCATED)
    page.state = ST_ALLOCATED
    page.private = 0
    page._refcount = 1  # set_page_refcounted
    page.alloc_order = order
    pgdat.allocated[page.pfn] = order
    if gfp_flags & _GFP_ZERO:  # want_init_on_alloc: init_on_alloc is off, so __GFP_ZERO
        kernel_init_free_pages(pgdat, page, 1 << order)
    if order and gfp_flags & _GFP_COMP:
        page.flags |= _PG_head


@kernel(F)
def reserve_highatomic_pageblock(pgdat: pglist_data, page: Page, zone: Zone, order: int) -> None:
    """Models mm/page_alloc.c:reserve_highatomic_pageblock (up to 1% of the zone)."""
    max_managed = zone.managed_pages // 100 + pageblock_nr_pages
    if zone.nr_reserved_highatomic >= max_managed:
        return
    mt = get_pageblock_migratetype(zone, page.pfn)
    if mt not in (MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE):
        zone.nr_reserved_highatomic += pageblock_nr_pages
        set_pageblock_migratetype(zone, page.pfn, MIGRATE_HIGHATOMIC)
        move_freepages_block(pgdat, zone, page, MIGRATE_HIGHATOMIC)


@kernel(F)
def get_page_from_freelist(pgdat: pglist_data, gfp_mask: int, order: int, alloc_flags: int,
                           ac: alloc_context) -> Page | None:
    """Models mm/page_alloc.c:get_page_from_freelist: walk the zonelist from the preferred
    zone down, take the first zone whose watermark allows it, retry once without
    ALLOC_NOFRAGMENT. No node reclaim (one node)."""
    while True:
        no_fallback = alloc_flags & ALLOC_NOFRAGMENT
        preferred = ac.preferred_zone
        for zone in ac.zonelist:
            mark = zone._watermark[alloc_flags & ALLOC_WMARK_MASK] + zone.watermark_boost
            if not zone_watermark_fast(zone, order, mark, ac.highest_zoneidx, alloc_flags,
                                       gfp_mask) and not alloc_flags & ALLOC_NO_WATERMARKS:
                continue  # node_reclaim_mode is 0
            assert preferred is not None
            page = rmqueue(pgdat, preferred, zone, order, gfp_mask, alloc_flags, ac.migratetype)
            if page is not None:
                prep_new_page(pgdat, page, order, gfp_mask, alloc_flags)
                if order and alloc_flags & ALLOC_HARDER:
                    reserve_highatomic_pageblock(pgdat, page, zone, order)
                return page
        if no_fallback:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            continue
        return None


@kernel(F)
def alloc_flags_nofragment(zone: Zone | None, gfp_mask: int) -> int:
    """Models mm/page_alloc.c:alloc_flags_nofragment: avoid fragmenting ZONE_NORMAL when
    ZONE_DMA32 could serve instead."""
    alloc_flags = gfp_mask & _GFP_KSWAPD_RECLAIM  # == ALLOC_KSWAPD
    if zone is None or zone.zone_idx != _ZONE_NORMAL:
        return alloc_flags
    return alloc_flags | ALLOC_NOFRAGMENT


@kernel(F)
def prepare_alloc_pages(pgdat: pglist_data, gfp_mask: int, order: int) -> alloc_context:
    """Models mm/page_alloc.c:prepare_alloc_pages: zone limit and migratetype from the mask."""
    highest_zoneidx = G.gfp_zone(gfp_mask)
    migratetype = G.gfp_migratetype(gfp_mask, pgdat.page_group_by_mobility_disabled)
    ac = pgdat.alloc_contexts.get(gfp_mask)
    if ac is not None:  # the rest is a pure function of the mask once the node is booted
        return ac
    if pgdat.single_migratetype is not None:  # the standalone buddy has one list per order
        migratetype = pgdat.single_migratetype
    zonelist = pgdat.zonelist(highest_zoneidx)
    ac = alloc_context(zonelist, highest_zoneidx, migratetype, bool(gfp_mask & G.__GFP_WRITE),
                       zonelist[0] if zonelist else None)
    pgdat.alloc_contexts[gfp_mask] = ac
    return ac


@kernel(F)
def gfp_to_alloc_flags(gfp_mask: int) -> int:
    """Models mm/page_alloc.c:gfp_to_alloc_flags (no cpusets, no RT tasks)."""
    alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    alloc_flags |= gfp_mask & (G.__GFP_HIGH | G.__GFP_KSWAPD_RECLAIM)  # ALLOC_HIGH, _KSWAPD
    if gfp_mask & G.__GFP_ATOMIC:
        if not gfp_mask & G.__GFP_NOMEMALLOC:
            alloc_flags |= ALLOC_HARDER
        alloc_flags &= ~ALLOC_CPUSET
    return alloc_flags


@kernel(F)
def wake_all_kswapds(pgdat: pglist_data, order: int, gfp_mask: int, ac: alloc_context) -> None:
    """Models mm/page_alloc.c:wake_all_kswapds: one wakeup for the node (its first zone)."""
    hook = pgdat.hooks.wakeup_kswapd
    if hook is not None and ac.zonelist:
        hook(ac.zonelist[0], order, ac.highest_zoneidx)


@kernel(F)
def __perform_reclaim(pgdat: pglist_data, gfp_mask: int, order: int, ac: alloc_context) -> int:
    """Models mm/page_alloc.c:__perform_reclaim: try_to_free_pages through the hook."""
    hook = pgdat.hooks.try_to_free_pages
    return hook(gfp_mask, order) if hook is not None else 0


@kernel(F)
def drain_all_pages(pgdat: pglist_data) -> None:
    """Models mm/page_alloc.c:drain_all_pages: empty every zone's per-cpu lists."""
    for zone in pgdat.node_zones:
        if zone.pageset.count:
            free_pcppages_bulk(pgdat, zone, zone.pageset.count)


@kernel(F)
def __alloc_pages_direct_reclaim(pgdat: pglist_data, gfp_mask: int, order: int,
                                 alloc_flags: int, ac: alloc_context) -> tuple[Page | None, int]:
    """Models mm/page_alloc.c:__alloc_pages_direct_reclaim; returns (page, progress)."""
    progress = __perform_reclaim(pgdat, gfp_mask, order, ac)
    if not progress:
        return None, 0
    page = get_page_from_freelist(pgdat, gfp_mask, order, alloc_flags, ac)
    if page is None:
        drain_all_pages(pgdat)
        page = get_page_from_freelist(pgdat, gfp_mask, order, alloc_flags, ac)
    return page, progress


@kernel("mm/vmscan.c")
def zone_reclaimable_pages(pgdat: pglist_data, zone: Zone) -> int:
    """Models mm/vmscan.c:zone_reclaimable_pages: the zone's file LRU pages, and its anon
    ones while a swap slot is free. It lives here because should_reclaim_retry calls it and
    the allocator is below vmscan; refmodel.mm.vmscan re-exports it."""
    sz = pgdat.node_lruvec.lru_zone_size
    z = zone.zone_idx
    nr = sz[LRU_INACTIVE_FILE][z] + sz[LRU_ACTIVE_FILE][z]
    if pgdat.nr_swap_pages > 0:
        nr += sz[LRU_INACTIVE_ANON][z] + sz[LRU_ACTIVE_ANON][z]
    return nr


@kernel(F)
def should_reclaim_retry(pgdat: pglist_data, gfp_mask: int, order: int, ac: alloc_context,
                         alloc_flags: int, did_some_progress: bool,
                         no_progress_loops: int) -> tuple[bool, int]:
    """Models mm/page_alloc.c:should_reclaim_retry; returns (retry, no_progress_loops):
    retry while some zone would pass its min watermark if every reclaimable page (file LRU
    pages, anon ones while swap has room) were freed, at most MAX_RECLAIM_RETRIES times
    without progress. (unreserve_highatomic_pageblock's last chance is left out.)"""
    if did_some_progress and order <= PAGE_ALLOC_COSTLY_ORDER:
        no_progress_loops = 0
    else:
        no_progress_loops += 1
    if no_progress_loops > MAX_RECLAIM_RETRIES:
        return False, no_progress_loops
    for zone in ac.zonelist:
        z = zone.zone_idx
        reclaimable = zone_reclaimable_pages(pgdat, zone)
        available = reclaimable + zone.nr_free_pages
        if __zone_watermark_ok(zone, order, min_wmark_pages(zone), ac.highest_zoneidx,
                               alloc_flags, available):
            if not did_some_progress:
                # NR_ZONE_WRITE_PENDING: dirty (or under writeback) file pages of the zone
                write_pending = sum(
                    1 for lru in (LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)
                    for p in pgdat.node_lruvec.lists[lru].values()
                    if p.zone_idx == z and p.flags & _PG_DIRTY_OR_WB)
                if 2 * write_pending > reclaimable:
                    return True, no_progress_loops  # congestion_wait, then retry
            return True, no_progress_loops
    return False, no_progress_loops


@kernel(F)
def __alloc_pages_may_oom(pgdat: pglist_data, gfp_mask: int, order: int,
                          ac: alloc_context) -> tuple[Page | None, bool]:
    """Models mm/page_alloc.c:__alloc_pages_may_oom; returns (page, progress). After the
    OOM killer a __GFP_NOFAIL request may use every reserve (ALLOC_NO_WATERMARKS). 5.10
    also counts it as progress when nothing was killed, to loop again; the model does not,
    so that a request nothing can satisfy ends at nopage instead of looping forever."""
    page = get_page_from_freelist(pgdat, gfp_mask & ~G.__GFP_DIRECT_RECLAIM, order,
                                  ALLOC_WMARK_HIGH | ALLOC_CPUSET, ac)
    if page is not None:
        return page, False
    if order > PAGE_ALLOC_COSTLY_ORDER or gfp_mask & (G.__GFP_RETRY_MAYFAIL | G.__GFP_THISNODE):
        return None, False
    if ac.highest_zoneidx < _ZONE_NORMAL:
        return None, False
    hook = pgdat.hooks.out_of_memory
    progress = hook is not None and hook(gfp_mask, order)
    if gfp_mask & G.__GFP_NOFAIL:  # help non-failing allocations with the memory reserves
        page = __alloc_pages_cpuset_fallback(pgdat, gfp_mask, order, ALLOC_NO_WATERMARKS, ac)
    return page, progress


@kernel(F)
def __alloc_pages_cpuset_fallback(pgdat: pglist_data, gfp_mask: int, order: int,
                                  alloc_flags: int, ac: alloc_context) -> Page | None:
    """Models mm/page_alloc.c:__alloc_pages_cpuset_fallback: with ALLOC_CPUSET, then
    without (no cpusets here, so the second try only repeats the first)."""
    page = get_page_from_freelist(pgdat, gfp_mask, order, alloc_flags | ALLOC_CPUSET, ac)
    if page is None:
        page = get_page_from_freelist(pgdat, gfp_mask, order, alloc_flags, ac)
    return page


def _current_is_oom_victim(pgdat: pglist_data) -> bool:
    """tsk_is_oom_victim(current), through the hook Machine wires (no hook: never)."""
    hook = pgdat.hooks.tsk_is_oom_victim
    return hook is not None and hook()


@kernel(F)
def oom_reserves_allowed(pgdat: pglist_data) -> bool:
    """Models mm/page_alloc.c:oom_reserves_allowed(current): an OOM victim may use part of
    the reserves (with an MMU the TIF_MEMDIE test does not apply). ``current`` is reached
    through the node's tsk_is_oom_victim hook."""
    return _current_is_oom_victim(pgdat)


@kernel(F)
def gfp_pfmemalloc_allowed(pgdat: pglist_data, gfp_mask: int) -> bool:
    """Models mm/page_alloc.c:gfp_pfmemalloc_allowed: may this request use the reserves?"""
    return bool(__gfp_pfmemalloc_flags(pgdat, gfp_mask))


@kernel(F)
def __gfp_pfmemalloc_flags(pgdat: pglist_data, gfp_mask: int) -> int:
    """Models mm/page_alloc.c:__gfp_pfmemalloc_flags: __GFP_NOMEMALLOC forbids the reserves,
    __GFP_MEMALLOC gives all of them (ALLOC_NO_WATERMARKS), an OOM victim gets ALLOC_OOM
    (half the min watermark). Never in interrupt context; PF_MEMALLOC tasks are not
    modelled."""
    if gfp_mask & G.__GFP_NOMEMALLOC:
        return 0
    if gfp_mask & G.__GFP_MEMALLOC:
        return ALLOC_NO_WATERMARKS
    if oom_reserves_allowed(pgdat):
        return ALLOC_OOM
    return 0


@kernel(F)
def __alloc_pages_slowpath(pgdat: pglist_data, gfp_mask: int, order: int,
                           ac: alloc_context) -> Page | None:
    """Models mm/page_alloc.c:__alloc_pages_slowpath: kswapd, the min watermark, the
    reserves (__gfp_pfmemalloc_flags: ALLOC_NO_WATERMARKS, or ALLOC_OOM for an OOM victim),
    direct reclaim and the OOM killer (through hooks Machine wires), or failure; a victim
    that already had ALLOC_OOM fails rather than loop. Compaction and cpusets are out of
    scope."""
    can_direct_reclaim = bool(gfp_mask & G.__GFP_DIRECT_RECLAIM)
    costly_order = order > PAGE_ALLOC_COSTLY_ORDER
    if gfp_mask & (G.__GFP_ATOMIC | G.__GFP_DIRECT_RECLAIM) == (
            G.__GFP_ATOMIC | G.__GFP_DIRECT_RECLAIM):
        gfp_mask &= ~G.__GFP_ATOMIC
    alloc_flags = gfp_to_alloc_flags(gfp_mask)
    if not ac.zonelist:
        return None
    if alloc_flags & ALLOC_KSWAPD:
        wake_all_kswapds(pgdat, order, gfp_mask, ac)
    page = get_page_from_freelist(pgdat, gfp_mask, order, alloc_flags, ac)
    if page is not None:
        return page
    # 5.10 tries direct compaction first for costly and for non-movable high-order requests
    # that may not use the reserves. The gate is asked; compaction itself is out of scope
    # (__alloc_pages_direct_compact would find nothing here).
    if (can_direct_reclaim and (costly_order or (order > 0 and ac.migratetype != MIGRATE_MOVABLE))
            and not gfp_pfmemalloc_allowed(pgdat, gfp_mask)):
        pass
    no_progress_loops = 0
    while True:  # retry:
        if alloc_flags & ALLOC_KSWAPD:
            wake_all_kswapds(pgdat, order, gfp_mask, ac)
        reserve_flags = __gfp_pfmemalloc_flags(pgdat, gfp_mask)
        if reserve_flags:
            alloc_flags = reserve_flags  # current_alloc_flags: no CMA
        page = get_page_from_freelist(pgdat, gfp_mask, order, alloc_flags, ac)
        if page is not None:
            return page
        if not can_direct_reclaim:
            break
        page, progress = __alloc_pages_direct_reclaim(pgdat, gfp_mask, order, alloc_flags, ac)
        if page is not None:
            return page
        if gfp_mask & G.__GFP_NORETRY:
            break
        if costly_order and not gfp_mask & G.__GFP_RETRY_MAYFAIL:
            break
        retry, no_progress_loops = should_reclaim_retry(
            pgdat, gfp_mask, order, ac, alloc_flags, progress > 0, no_progress_loops)
        if retry:
            continue
        page, oom_progress = __alloc_pages_may_oom(pgdat, gfp_mask, order, ac)
        if page is not None:
            return page
        # An OOM victim that already had its share of the reserves gives up (no endless
        # loop on the reserves).
        if _current_is_oom_victim(pgdat) and (alloc_flags & ALLOC_OOM
                                              or gfp_mask & G.__GFP_NOMEMALLOC):
            break
        if oom_progress:
            no_progress_loops = 0
            continue
        break
    # nopage:
    if gfp_mask & G.__GFP_NOFAIL and can_direct_reclaim:
        # (without direct reclaim 5.10 warns and fails: a non-sleeping request cannot loop)
        page = __alloc_pages_cpuset_fallback(pgdat, gfp_mask, order, ALLOC_HARDER, ac)
        if page is not None:
            return page
        raise KernelBug("__GFP_NOFAIL", f"order-{order} allocation cannot fail, but nothing "
                        "can be reclaimed or killed: 5.10 would loop here forever")
    pgdat.alloc_failures += 1  # warn_alloc
    return None


@kernel(F)
def __alloc_pages_nodemask(pgdat: pglist_data, gfp_mask: int, order: int) -> Page | None:
    """Models mm/page_alloc.c:__alloc_pages_nodemask, the heart of the allocator (the seed's
    "__alloc_pages"): the fast path at the low watermark, else the slow path."""
    if order >= pgdat.max_order:
        if not gfp_mask & G.__GFP_NOWARN:
            raise KernelWarning("WARN_ON_ONCE(order >= MAX_ORDER)",
                                f"order {order} requested; 5.10 warns and returns NULL")
        return None
    if order < 0:
        raise KernelBug("VM_BUG_ON(order < 0)", "orders are unsigned in 5.10")
    if pgdat.fast_paths and _getprofile() is None:  # untraced: the fused chain may serve it
        page = alloc_fast(pgdat, gfp_mask, order)
        if page is not None:
            return page
    ac = prepare_alloc_pages(pgdat, gfp_mask, order)
    alloc_flags = ALLOC_WMARK_LOW
    alloc_flags |= alloc_flags_nofragment(ac.preferred_zone, gfp_mask)
    page = get_page_from_freelist(pgdat, gfp_mask, order, alloc_flags, ac)
    if page is not None:
        return page
    return __alloc_pages_slowpath(pgdat, gfp_mask, order, ac)


alias("__alloc_pages", "__alloc_pages_nodemask",
      "include/linux/gfp.h wrapper of __alloc_pages_nodemask in 5.10 (renamed in 5.13)")


def __alloc_pages(pgdat: pglist_data, gfp_mask: int, order: int) -> Page | None:
    """The seed's name: include/linux/gfp.h:__alloc_pages wraps __alloc_pages_nodemask."""
    return __alloc_pages_nodemask(pgdat, gfp_mask, order)


@kernel("include/linux/gfp.h")
def alloc_pages(pgdat: pglist_data, gfp_mask: int, order: int) -> Page | None:
    """Models include/linux/gfp.h:alloc_pages. With CONFIG_NUMA it calls mm/mempolicy.c's
    alloc_pages_current, which the node's hooks point at (mempolicy imports this module)."""
    hook = pgdat.hooks.alloc_pages_current
    if hook is not None:
        return hook(pgdat, gfp_mask, order)
    return __alloc_pages_nodemask(pgdat, gfp_mask, order)


# --------------------------------------------------------------------------------------------
# Addresses: the direct map (arch/x86/include/asm/page.h, page_64.h)

PAGE_SHIFT = 12
PAGE_OFFSET_L4 = 0xFFFF888000000000  # __PAGE_OFFSET_BASE_L4 (no KASLR)
PAGE_OFFSET_L5 = 0xFF11000000000000  # __PAGE_OFFSET_BASE_L5


def page_offset(pgdat: pglist_data) -> int:
    return PAGE_OFFSET_L5 if pgdat.paging_levels == 5 else PAGE_OFFSET_L4


def pfn_to_virt(pgdat: pglist_data, pfn: int) -> int:
    return page_offset(pgdat) + (pfn << PAGE_SHIFT)


@kernel("include/linux/mm.h")
def page_address(pgdat: pglist_data, page: Page) -> int:
    """Models page_address / lowmem_page_address: the page's direct-map address."""
    return pfn_to_virt(pgdat, page.pfn)


@kernel("arch/x86/include/asm/page.h")
def virt_to_page(pgdat: pglist_data, kaddr: int) -> Page:
    """Models arch/x86/include/asm/page.h:virt_to_page for direct-map addresses."""
    off = kaddr - page_offset(pgdat)
    if off < 0 or off >> PAGE_SHIFT >= pgdat.node_start_pfn + pgdat.node_spanned_pages:
        raise KernelBug("VIRTUAL_BUG_ON(!virt_addr_valid)", f"{kaddr:#x} is not in the direct map")
    return pfn_to_page(pgdat, off >> PAGE_SHIFT)


def compound_head(pgdat: pglist_data, page: Page) -> Page:
    """include/linux/page-flags.h:compound_head. 5.10 reads the head from a tail's own
    compound_head word; the model keeps none, so it looks for the allocated PG_head page
    below whose block covers this one (blocks are aligned to their order)."""
    if page.state is not ST_TAIL or page.flags & _PG_head:
        return page  # the head of a block, or a free or per-cpu page: no compound tail
    pfn = page.pfn
    get = pgdat.mem_map.get
    for order in range(1, pgdat.max_order):
        head = get(pfn & ~((1 << order) - 1))
        if (head is not None and head.flags & _PG_head and head.state is ST_ALLOCATED
                and head.pfn + (1 << head.alloc_order) > pfn):
            return head
    return page


@kernel("include/linux/mm.h")
def virt_to_head_page(pgdat: pglist_data, kaddr: int) -> Page:
    """Models include/linux/mm.h:virt_to_head_page: virt_to_page, then its compound head."""
    return compound_head(pgdat, virt_to_page(pgdat, kaddr))


@kernel(F)
def __get_free_pages(pgdat: pglist_data, gfp_mask: int, order: int) -> int:
    """Models mm/page_alloc.c:__get_free_pages: the block's kernel address, or 0."""
    page = alloc_pages(pgdat, gfp_mask & ~G.__GFP_HIGHMEM, order)
    if page is None:
        return 0
    return page_address(pgdat, page)


@kernel(F)
def get_zeroed_page(pgdat: pglist_data, gfp_mask: int) -> int:
    """Models mm/page_alloc.c:get_zeroed_page."""
    return __get_free_pages(pgdat, gfp_mask | G.__GFP_ZERO, 0)


def nr_free_pages(pgdat: pglist_data) -> int:
    """NR_FREE_PAGES summed over the node's zones (buddy pages, not per-cpu ones)."""
    return sum(z.nr_free_pages for z in pgdat.node_zones)


