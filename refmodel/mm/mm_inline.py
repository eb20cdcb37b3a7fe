"""Putting pages on and off the node's LRU lists (include/linux/mm_inline.h, 5.10).

The lists live in ``pgdat.node_lruvec`` (refmodel.mm.mmzone.lruvec), ordered head → tail:
add_page_to_lru_list puts a page at the head, add_page_to_lru_list_tail at the tail, and
reclaim isolates from the tail. Page flags PG_lru, PG_active and PG_unevictable say which
list a page is on, exactly as in 5.10; specs/reclaim.py checks they agree.
"""

from __future__ import annotations

from refmodel.bugs import KernelBug
from refmodel.mm.mmzone import (
    LRU_ACTIVE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
    lruvec,
)
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "include/linux/mm_inline.h"
PG_active = int(PageFlags.PG_active)
PG_unevictable = int(PageFlags.PG_unevictable)
PG_swapbacked = int(PageFlags.PG_swapbacked)


@kernel(F)
def page_is_file_lru(page: Page) -> bool:
    """Models page_is_file_lru: every page that is not swap-backed is a file page (shmem
    pages are swap-backed, so they live on the anon lists)."""
    return not page.flags & PG_swapbacked


@kernel(F)
def update_lru_size(lv: lruvec, lru: int, zid: int, nr_pages: int) -> None:
    """Models update_lru_size: the per-zone count of pages on a list."""
    lv.lru_zone_size[lru][zid] += nr_pages


@kernel(F)
def page_lru_base_type(page: Page) -> int:
    """Models page_lru_base_type: the inactive list of the page's type."""
    return LRU_INACTIVE_FILE if page_is_file_lru(page) else LRU_INACTIVE_ANON


@kernel(F)
def page_lru(page: Page) -> int:
    """Models page_lru: unevictable, else the base type plus LRU_ACTIVE if PG_active."""
    if page.flags & PG_unevictable:
        return LRU_UNEVICTABLE
    lru = page_lru_base_type(page)
    if page.flags & PG_active:
        lru += LRU_ACTIVE
    return lru


@kernel(F)
def page_off_lru(page: Page) -> int:
    """Models page_off_lru: which list the page was on, clearing PG_unevictable and
    PG_active as it leaves for good (freed)."""
    if page.flags & PG_unevictable:
        page.flags &= ~PG_unevictable
        return LRU_UNEVICTABLE
    lru = page_lru_base_type(page)
    if page.flags & PG_active:
        page.flags &= ~PG_active
        lru += LRU_ACTIVE
    return lru


@kernel(F)
def add_page_to_lru_list(page: Page, lv: lruvec, lru: int) -> None:
    """Models add_page_to_lru_list: list_add at the head."""
    update_lru_size(lv, lru, page.zone_idx, 1)
    lst = lv.lists[lru]
    pfn = page.pfn
    lst[pfn] = page
    lst.move_to_end(pfn, False)  # last=False: to the head


@kernel(F)
def add_page_to_lru_list_tail(page: Page, lv: lruvec, lru: int) -> None:
    """Models add_page_to_lru_list_tail: list_add_tail."""
    update_lru_size(lv, lru, page.zone_idx, 1)
    lv.lists[lru][page.pfn] = page


@kernel(F)
def del_page_from_lru_list(page: Page, lv: lruvec, lru: int) -> None:
    """Models del_page_from_lru_list: list_del and the size update."""
    if lv.lists[lru].pop(page.pfn, None) is None:
        raise KernelBug("list_del corruption", f"pfn {page.pfn:#x} is not on LRU list {lru}")
    update_lru_size(lv, lru, page.zone_idx, -1)
