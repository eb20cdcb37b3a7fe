"""Buddy-allocator invariants (mm/page_alloc.c, include/linux/mmzone.h).

Each predicate reads a node (``pglist_data``) and returns the violations it finds. They hold
after every step of 5.10's allocator, in the full machine and in the standalone buddy.
:func:`check_buddy` reads the free lists once and hands that one scan to every predicate
(they are checked after every step of the state machines, so the scan is the hot part).
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from collections.abc import Callable

from refmodel.mm.mmzone import MIGRATE_PCPTYPES, Zone, pglist_data
from refmodel.mm.types import Page, PageState, PageType
from refmodel.specs import Violation

_PG_buddy = int(PageType.PG_buddy)
_free_list = operator.attrgetter("free_list")
_nr_free = operator.attrgetter("nr_free")
_state = operator.attrgetter("state")
_page_type = operator.attrgetter("page_type")
_BUDDY = PageState.BUDDY
_PCP = PageState.PCP
_ALLOCATED = PageState.ALLOCATED

# One free block as a scan sees it: (pfn, order, zone, migratetype, head page).
_Block = tuple[int, int, Zone, int, Page]


class _FreeScan:
    """One read of every free list: the blocks in list order, and per zone the number of
    blocks each order's lists hold."""

    __slots__ = ("blocks", "counts")

    def __init__(self, pgdat: pglist_data) -> None:
        blocks: list[_Block] = []
        counts: list[list[int]] = []
        for zone in pgdat.node_zones:
            areas = zone.free_area
            per_order = [0] * len(areas)
            # Most lists are empty: the orders with a block are found at C speed.
            for order, used in enumerate(map(any, map(_free_list, areas))):
                if used:
                    n = 0
                    for mt, fl in enumerate(areas[order].free_list):
                        if fl:
                            n += len(fl)
                            for pfn, page in fl.items():
                                blocks.append((pfn, order, zone, mt, page))
                    per_order[order] = n
            counts.append(per_order)
        self.blocks = blocks
        self.counts = counts


def _scan(pgdat: pglist_data, scan: _FreeScan | None = None) -> list[_Block]:
    return (_FreeScan(pgdat) if scan is None else scan).blocks


def free_blocks(pgdat: pglist_data) -> list[tuple[int, int, int, int]]:
    """Every block on a free list as (pfn, order, zone_idx, migratetype)."""
    return [(pfn, order, zone.zone_idx, mt) for pfn, order, zone, mt, _ in _scan(pgdat)]


def free_block_aligned_and_inside_zone(pgdat: pglist_data,
                                       scan: _FreeScan | None = None) -> list[Violation]:
    """Every free block is aligned to its order, lies inside its zone, and its head page
    says so (PageBuddy, the order in page->private, state BUDDY, the list it is on)."""
    v = []
    max_order = pgdat.max_order
    for pfn, order, zone, mt, page in _scan(pgdat, scan):
        if (pfn & ((1 << order) - 1) or pfn < zone.zone_start_pfn
                or pfn + (1 << order) > zone.zone_end_pfn
                or page.pfn != pfn or page.zone_idx != zone.zone_idx
                or not page.page_type & _PG_buddy or page.private != order
                or page.state is not _BUDDY or page.index != mt or order >= max_order):
            v += _block_violations(pgdat, pfn, order, zone, mt, page)
    return v


def _block_violations(pgdat: pglist_data, pfn: int, order: int, zone: Zone, mt: int,
                      page: Page) -> list[Violation]:
    """What is wrong with one free block (the slow, wordy half of the check above)."""
    v = []
    name = f"free block at pfn {pfn:#x} (order {order}, zone {zone.name})"
    if pfn & ((1 << order) - 1):
        v.append(Violation("free_block_aligned", f"{name} is not aligned"))
    if not (zone.zone_start_pfn <= pfn and pfn + (1 << order) <= zone.zone_end_pfn):
        v.append(Violation("free_block_inside_zone", f"{name} leaves its zone"))
    if page.pfn != pfn or page.zone_idx != zone.zone_idx:
        v.append(Violation("free_block_head", f"{name} has a foreign page"))
    if not page.page_type & _PG_buddy or page.private != order:
        v.append(Violation("page_flags_agree",
                           f"{name}: PageBuddy/order in page->private wrong"))
    if page.state is not PageState.BUDDY or page.index != mt:
        v.append(Violation("page_flags_agree",
                           f"{name}: page state {page.state.name}, list {mt}"))
    if order >= pgdat.max_order:
        v.append(Violation("free_block_order", f"{name} is above MAX_ORDER-1"))
    return v


def _intervals(pgdat: pglist_data,
               scan: _FreeScan | None = None) -> list[tuple[int, int, str]]:
    iv: list[tuple[int, int, str]] = []
    for pfn, order, _, _, _ in _scan(pgdat, scan):
        iv.append((pfn, pfn + (1 << order), f"free block {pfn:#x}/order {order}"))
    for zone in pgdat.node_zones:
        for mt, lst in enumerate(zone.pageset.lists):
            for page in lst:
                iv.append((page.pfn, page.pfn + 1, f"per-cpu page {page.pfn:#x} (list {mt})"))
    for pfn, order in pgdat.allocated.items():
        iv.append((pfn, pfn + (1 << order), f"allocated block {pfn:#x}/order {order}"))
    for s, e in pgdat.reserved_ranges:
        iv.append((s, e, f"reserved [{s:#x}, {e:#x})"))
    iv.sort()
    return iv


def no_block_overlap(pgdat: pglist_data, scan: _FreeScan | None = None) -> list[Violation]:
    """No two blocks (free, per-cpu, allocated, reserved) share a page."""
    if scan is None:
        scan = _FreeScan(pgdat)
    # Sorted by start, some two intervals overlap iff some neighbours do, whatever breaks
    # ties; so the bare (start, end) pairs decide, and the named intervals are only built
    # to word a violation.
    iv = [(pfn, pfn + (1 << order)) for pfn, order, _, _, _ in scan.blocks]
    for zone in pgdat.node_zones:
        for lst in zone.pageset.lists:
            iv += [(p.pfn, p.pfn + 1) for p in lst]
    iv += [(pfn, pfn + (1 << order)) for pfn, order in pgdat.allocated.items()]
    iv += pgdat.reserved_ranges
    iv.sort()
    prev_end = -1
    for s, e in iv:
        if s < prev_end:
            break
        prev_end = e
    else:
        return []
    v = []
    for (_s1, e1, n1), (s2, _e2, n2) in itertools.pairwise(_intervals(pgdat, scan)):
        if s2 < e1:
            v.append(Violation("no_block_overlap", f"{n1} overlaps {n2}"))
    return v


def pages_conserved(pgdat: pglist_data, scan: _FreeScan | None = None) -> list[Violation]:
    """free + per-cpu + allocated + reserved = the node's pages: none lost, none made up."""
    free = sum(1 << o for _, o, _, _, _ in _scan(pgdat, scan))
    pcp = sum(len(lst) for z in pgdat.node_zones for lst in z.pageset.lists)
    alloc = sum(1 << o for o in pgdat.allocated.values())
    reserved = sum(e - s for s, e in pgdat.reserved_ranges)
    total = pgdat.node_spanned_pages
    if free + pcp + alloc + reserved != total:
        return [Violation("pages_conserved",
                          f"free {free} + per-cpu {pcp} + allocated {alloc} + reserved "
                          f"{reserved} = {free + pcp + alloc + reserved}, not {total} pages")]
    return []


def nr_free_matches_lists(pgdat: pglist_data,
                          scan: _FreeScan | None = None) -> list[Violation]:
    """Each free_area's nr_free is its lists' length; NR_FREE_PAGES is the buddy pages;
    pcp->count is the per-cpu lists' length."""
    v = []
    if scan is None:
        scan = _FreeScan(pgdat)
    for zone, counts in zip(pgdat.node_zones, scan.counts, strict=True):
        areas = zone.free_area
        if counts != list(map(_nr_free, areas)):  # compared at C speed, worded below
            for order, area in enumerate(areas):
                n = counts[order]
                if n != area.nr_free:
                    v.append(Violation("nr_free_matches_lists",
                                       f"zone {zone.name} order {order}: nr_free "
                                       f"{area.nr_free}, lists hold {n}"))
        total = sum(map(operator.lshift, counts, range(len(counts))))
        if total != zone.nr_free_pages:
            v.append(Violation("nr_free_matches_lists",
                               f"zone {zone.name}: NR_FREE_PAGES {zone.nr_free_pages}, "
                               f"free lists hold {total} pages"))
        pcp = zone.pageset
        if pcp.count != sum(map(len, pcp.lists)):
            v.append(Violation("nr_free_matches_lists",
                               f"zone {zone.name}: pcp->count {pcp.count} disagrees with lists"))
        if len(pcp.lists) != MIGRATE_PCPTYPES:
            v.append(Violation("pcp_lists", f"zone {zone.name} has {len(pcp.lists)} pcp lists"))
    return v


def no_unmerged_buddies(pgdat: pglist_data,
                        scan: _FreeScan | None = None) -> list[Violation]:
    """No free block's buddy of the same order is also a free block: 5.10 always merges."""
    v = []
    blocks = {(pfn, o, z.zone_idx)
              for pfn, o, z, _, _ in _scan(pgdat, scan)}
    top = pgdat.max_order - 1
    for pfn, o, z in blocks:
        if o >= top:
            continue
        buddy = pfn ^ (1 << o)
        if buddy > pfn and (buddy, o, z) in blocks:
            v.append(Violation("no_unmerged_buddies",
                               f"free blocks {pfn:#x} and {buddy:#x} (order {o}) are buddies "
                               f"and should have merged into one order-{o + 1} block"))
    return v


def page_flags_agree(pgdat: pglist_data, scan: _FreeScan | None = None) -> list[Violation]:
    """Every page's state, flags and counts agree with where it is."""
    v: list[Violation] = []
    on_pcp = {p.pfn for z in pgdat.node_zones for lst in z.pageset.lists for p in lst}
    on_free = {b[0] for b in _scan(pgdat, scan)}
    if _pages_agree(pgdat, on_free, on_pcp):
        return v
    allocated_map = pgdat.allocated
    for pfn, page in pgdat.mem_map.items():
        st = page.state
        free = pfn in on_free
        if (bool(page.page_type & _PG_buddy) != free or (st is _BUDDY) != free
                or (st is _PCP) != (pfn in on_pcp)
                or (st is _ALLOCATED) != (pfn in allocated_map)
                or (page._refcount < 1 if st is _ALLOCATED
                    else page._refcount != 0 and (st is _BUDDY or st is _PCP))):
            v += _page_violations(pgdat, pfn, page, on_free, on_pcp)
    return v


def _pages_agree(pgdat: pglist_data, on_free: set[int], on_pcp: set[int]) -> bool:
    """Whether page_flags_agree holds for every page, decided mostly at C speed: the pages
    in each state (and those with PageBuddy) are as many as the pfns on the matching lists,
    and each of those is in that state. False sends the caller to its page-by-page loop,
    which says what is wrong."""
    mem_map = pgdat.mem_map
    keys = mem_map.keys()
    states = list(map(_state, mem_map.values()))
    free = on_free & keys
    pcp = on_pcp & keys
    alloc = pgdat.allocated.keys() & keys
    if (states.count(_BUDDY) != len(free) or states.count(_PCP) != len(pcp)
            or states.count(_ALLOCATED) != len(alloc)):
        return False
    types = Counter(map(_page_type, mem_map.values()))
    if sum(n for t, n in types.items() if t & _PG_buddy) != len(free):
        return False
    for pfn in free:
        page = mem_map[pfn]
        if page.state is not _BUDDY or not page.page_type & _PG_buddy or page._refcount:
            return False
    for pfn in pcp:
        page = mem_map[pfn]
        if page.state is not _PCP or page._refcount:
            return False
    for pfn in alloc:
        page = mem_map[pfn]
        if page.state is not _ALLOCATED or page._refcount < 1:
            return False
    return True


def _page_violations(pgdat: pglist_data, pfn: int, page: Page, on_free: set[int],
                     on_pcp: set[int]) -> list[Violation]:
    """What is wrong with one page (the wordy half of page_flags_agree)."""
    v = []
    st = page.state
    buddy = bool(page.page_type & _PG_buddy)
    if buddy != (pfn in on_free) or (st is PageState.BUDDY) != (pfn in on_free):
        v.append(Violation("page_flags_agree",
                           f"pfn {pfn:#x}: state {st.name}, PageBuddy {buddy}, "
                           f"on a free list {pfn in on_free}"))
    if (st is PageState.PCP) != (pfn in on_pcp):
        v.append(Violation("page_flags_agree",
                           f"pfn {pfn:#x}: state {st.name}, on a per-cpu list {pfn in on_pcp}"))
    allocated = pfn in pgdat.allocated
    if (st is PageState.ALLOCATED) != allocated:
        v.append(Violation("page_flags_agree",
                           f"pfn {pfn:#x}: state {st.name}, allocated {allocated}"))
    if st is PageState.ALLOCATED and page._refcount < 1:
        v.append(Violation("page_flags_agree", f"allocated pfn {pfn:#x} has no reference"))
    if st in (PageState.BUDDY, PageState.PCP) and page._refcount != 0:
        v.append(Violation("page_flags_agree",
                           f"free pfn {pfn:#x} has _refcount {page._refcount}"))
    return v


BUDDY_INVARIANTS: tuple[Callable[[pglist_data], list[Violation]], ...] = (
    free_block_aligned_and_inside_zone,
    no_block_overlap,
    pages_conserved,
    nr_free_matches_lists,
    no_unmerged_buddies,
    page_flags_agree,
)


def check_buddy(pgdat: pglist_data) -> list[Violation]:
    """Every buddy invariant, over one scan of the free lists."""
    scan = _FreeScan(pgdat)
    return (free_block_aligned_and_inside_zone(pgdat, scan) + no_block_overlap(pgdat, scan)
            + pages_conserved(pgdat, scan) + nr_free_matches_lists(pgdat, scan)
            + no_unmerged_buddies(pgdat, scan) + page_flags_agree(pgdat, scan))
def buddy_state(pgdat: pglist_data) -> tuple[object, ...]:
    """Everything observable about the allocator, for "a rejected call changed nothing"."""
    lists = tuple(
        tuple((*tuple(tuple(fl) for fl in area.free_list), area.nr_free) for area in z.free_area)
        for z in pgdat.node_zones
    )
    pcps = tuple(
        (z.pageset.count, tuple(tuple(p.pfn for p in lst) for lst in z.pageset.lists))
        for z in pgdat.node_zones
    )
    pages = tuple(
        (pfn, p.state, p.flags, p.page_type, p._refcount, p._mapcount, p.private, p.index)
        for pfn, p in sorted(pgdat.mem_map.items())
        if p.state is not PageState.RESERVED  # made lazily by pfn_to_page, never changed
        and (p.state is not PageState.TAIL or p._refcount or p.flags)
    )
    zones = tuple((z.nr_free_pages, z.managed_pages, tuple(z._watermark), z.watermark_boost,
                   tuple(sorted(z.pageblock_mt.items()))) for z in pgdat.node_zones)
    return lists, pcps, tuple(sorted(pgdat.allocated.items())), pages, zones
