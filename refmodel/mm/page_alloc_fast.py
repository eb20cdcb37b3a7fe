"""The buddy allocator's untraced fast path: the common cases of allocating and freeing a
block, with 5.10's call chain fused into one function each.

Why it exists: the model of mm/page_alloc.c (refmodel.mm.page_alloc) calls every function
5.10 calls, so that ``refmodel trace`` shows the real chain; an order-0 allocation is a dozen
Python calls deep. When no tracer is running nobody can see the calls, only their effect, so
``__alloc_pages_nodemask`` and ``__free_pages`` first offer the request to this module.

The contract, which tests/mm/test_page_alloc_fast.py checks by driving a fast and a
traced-path machine in lockstep (every field of every struct page, every list in order,
every counter, after every step):

- Each function either serves the request exactly as the traced chain would, leaving the
  same state, or declines (returns None / False) having changed nothing; the caller then
  runs the traced chain. Anything unusual declines: a cold per-cpu list, a watermark that
  fails, a boosted watermark, fallback stealing, a page with flags, a mapping or more than
  one reference, an isolated pageblock, a per-cpu list about to be drained.
- It runs only while no profiling hook is set (the Tracer is one) and ``pgdat.fast_paths``
  is true (set it false to run the traced chain always).
- It calls the proved pfn arithmetic of refmodel.mm.internal, not copies of it.

Nothing here is a kernel function of its own; the comments name the 5.10 function each step
stands for.
"""

from __future__ import annotations

from refmodel.mm import gfp as G
from refmodel.mm.internal import __find_buddy_pfn, combined_pfn
from refmodel.mm.mmzone import (
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    WMARK_LOW,
    pageblock_order,
    pglist_data,
)
from refmodel.mm.types import (
    LEGAL_FROM,
    ST_ALLOCATED,
    ST_BUDDY,
    ST_PCP,
    ST_TAIL,
    Page,
    PageFlags,
    PageType,
    illegal_page_state,
)

_PG_buddy = int(PageType.PG_buddy)
_PG_head = int(PageFlags.PG_head)
_GFP_ZERO = G.__GFP_ZERO
_GFP_COMP = G.__GFP_COMP
_NOT_PG_buddy = ~_PG_buddy
_TO_TAIL = LEGAL_FROM[ST_TAIL]
_TO_BUDDY = LEGAL_FROM[ST_BUDDY]
_TO_PCP = LEGAL_FROM[ST_PCP]
_TO_ALLOCATED = LEGAL_FROM[ST_ALLOCATED]


def alloc_fast(pgdat: pglist_data, gfp_mask: int, order: int) -> Page | None:
    """__alloc_pages_nodemask's fast path (get_page_from_freelist on the preferred zone,
    rmqueue, prep_new_page), or None having changed nothing. The caller has checked that
    ``order`` is below max_order."""
    # prepare_alloc_pages: a mask seen before has a cached context (and was validated then)
    ac = pgdat.alloc_contexts.get(gfp_mask)
    if ac is None:
        return None
    zone = ac.preferred_zone
    mt = ac.migratetype
    # ZONE_BOOSTED_WATERMARK is cleared again by the rmqueue that set it, so it is never
    # seen here unless set by hand; the wake-up it owes is the traced chain's to make
    if zone is None or zone.boosted_watermark or mt >= MIGRATE_PCPTYPES:
        return None
    # zone_watermark_fast / __zone_watermark_ok at the low mark, alloc_flags as
    # __alloc_pages_nodemask sets them (no ALLOC_HARDER, ALLOC_HIGH or ALLOC_OOM)
    free = zone.nr_free_pages - zone.nr_reserved_highatomic - ((1 << order) - 1)
    if free <= (zone._watermark[WMARK_LOW] + zone.watermark_boost
                + zone.lowmem_reserve[ac.highest_zoneidx]):
        return None
    if order == 0 and pgdat.pcp_enabled:
        # rmqueue_pcplist / __rmqueue_pcplist on a warm list
        pcp = zone.pageset
        lst = pcp.lists[mt]
        if not lst:
            return None
        page = lst.popleft()
        pcp.count -= 1
    else:
        # __rmqueue_smallest; a block found in this migratetype's lists is also what
        # __zone_watermark_ok's free-block test asks for (mt is a PCPTYPES list)
        free_area = zone.free_area
        for current_order in range(order, pgdat.max_order):
            area = free_area[current_order]
            fl = area.free_list[mt]
            if fl:
                break
        else:
            return None  # __rmqueue_fallback's business
        pfn, page = fl.popitem(False)  # the list head
        # del_page_from_free_list
        page.page_type &= _NOT_PG_buddy
        page.private = 0
        area.nr_free -= 1
        if not _TO_TAIL >> page.state & 1:
            illegal_page_state(page, ST_TAIL)
        page.state = ST_TAIL
        # expand: each upper half to the head of the next lower list
        mem_map = pgdat.mem_map
        high = current_order
        size = 1 << high
        while high > order:
            high -= 1
            size >>= 1
            upper_pfn = pfn + size
            upper = mem_map.get(upper_pfn)
            if upper is None:
                upper = mem_map[upper_pfn] = Page(upper_pfn, page.zone_idx)
            if not _TO_BUDDY >> upper.state & 1:
                illegal_page_state(upper, ST_BUDDY)
            upper.state = ST_BUDDY
            lower = free_area[high]
            lfl = lower.free_list[mt]
            lfl[upper_pfn] = upper
            lfl.move_to_end(upper_pfn, False)
            upper.index = mt
            lower.nr_free += 1
            upper.private = high
            upper.page_type |= _PG_buddy
        page.index = mt  # set_pcppage_migratetype
        zone.nr_free_pages -= 1 << order  # __mod_zone_freepage_state
    # prep_new_page / post_alloc_hook
    if not _TO_ALLOCATED >> page.state & 1:
        illegal_page_state(page, ST_ALLOCATED)
    page.state = ST_ALLOCATED
    page.private = 0
    page._refcount = 1
    page.alloc_order = order
    pfn = page.pfn
    pgdat.allocated[pfn] = order
    if gfp_mask & _GFP_ZERO:  # kernel_init_free_pages: clear_highpage on every page
        page_data = pgdat.page_data
        for p in range(pfn, pfn + (1 << order)):
            page_data.pop(p, None)
    if order and gfp_mask & _GFP_COMP:
        page.flags |= _PG_head
    return page


def free_fast(pgdat: pglist_data, page: Page, order: int) -> bool:
    """__free_pages' fast path for the last reference to a plain block freed with its own
    order (put_page_testzero, free_the_page, then free_unref_page to the per-cpu list or
    __free_pages_ok to the buddy lists); False having changed nothing otherwise."""
    if (page.state is not ST_ALLOCATED or page.alloc_order != order or page._refcount != 1
            or page.flags or page.page_type or page._mapcount != -1
            or page.mapping is not None or page.mapping_flags):
        return False
    pfn = page.pfn
    mem_map = pgdat.mem_map
    if order:
        # free_pages_prepare's check of every tail page: clean, or no struct page of its
        # own here
        get = mem_map.get
        for p in range(pfn + 1, pfn + (1 << order)):
            tail = get(p)
            if tail is not None and (tail.state is not ST_TAIL or tail._refcount or tail.flags
                                     or tail.page_type or tail._mapcount != -1
                                     or tail.mapping is not None):
                return False
    zone = pgdat.node_zones[page.zone_idx]
    mt = zone.pageblock_mt.get(pfn >> pageblock_order, MIGRATE_MOVABLE)
    pcp = zone.pageset
    to_pcp = order == 0 and pgdat.pcp_enabled  # free_the_page's choice
    if to_pcp:
        if mt >= MIGRATE_PCPTYPES or pcp.count + 1 >= pcp.high:
            return False  # an isolated or highatomic block, or free_pcppages_bulk to come
    elif mt == MIGRATE_ISOLATE or pfn & ((1 << order) - 1):
        return False
    page._refcount = 0  # put_page_testzero
    page.private = 0  # free_pages_prepare
    pgdat.allocated.pop(pfn, None)
    if to_pcp:
        page.index = mt  # set_pcppage_migratetype
        # free_unref_page_commit
        if not _TO_PCP >> page.state & 1:
            illegal_page_state(page, ST_PCP)
        page.state = ST_PCP
        pcp.lists[mt].appendleft(page)
        pcp.count += 1
        return True
    # __free_one_page: merge with free buddies up to max_order-1
    zone.nr_free_pages += 1 << order
    max_order = pgdat.max_order - 1
    free_area = zone.free_area
    zone_idx = page.zone_idx
    buddy_pfn = pfn
    freed = page
    while order < max_order:
        buddy_pfn = __find_buddy_pfn(pfn, order)
        buddy = mem_map.get(buddy_pfn)
        # page_is_buddy
        if (buddy is None or not buddy.page_type & _PG_buddy or buddy.private != order
                or buddy.zone_idx != zone_idx):
            break
        # del_page_from_free_list
        area = free_area[order]
        del area.free_list[buddy.index][buddy_pfn]
        buddy.page_type &= _NOT_PG_buddy
        buddy.private = 0
        area.nr_free -= 1
        if not _TO_TAIL >> buddy.state & 1:
            illegal_page_state(buddy, ST_TAIL)
        buddy.state = ST_TAIL
        combined = combined_pfn(pfn, buddy_pfn)
        if combined != pfn:
            page = buddy
        pfn = combined
        order += 1
    if page is not freed:
        if not _TO_TAIL >> freed.state & 1:
            illegal_page_state(freed, ST_TAIL)
        freed.state = ST_TAIL
    if not _TO_BUDDY >> page.state & 1:
        illegal_page_state(page, ST_BUDDY)
    page.state = ST_BUDDY
    page.private = order  # set_buddy_order
    page.page_type |= _PG_buddy
    # buddy_merge_likely: is the next-order buddy free? Then the block goes to the tail.
    to_tail = False
    if order < max_order - 1:
        combined = combined_pfn(pfn, buddy_pfn)
        higher_buddy = mem_map.get(__find_buddy_pfn(combined, order + 1))
        to_tail = (higher_buddy is not None and bool(higher_buddy.page_type & _PG_buddy)
                   and higher_buddy.private == order + 1
                   and higher_buddy.zone_idx == mem_map.get(combined, page).zone_idx)
    area = free_area[order]
    fl = area.free_list[mt]
    fl[pfn] = page
    if not to_tail:
        fl.move_to_end(pfn, False)
    page.index = mt
    area.nr_free += 1
    return True
