"""Swap I/O (mm/page_io.c, 5.10): the bytes of a page go to its slot and come back.

The model's swap device completes every request at once (like a ramdisk): __swap_writepage
sets and clears PG_writeback within the call (end_swap_bio_write → end_page_writeback), and
swap_readpage returns an uptodate page. The contents live in ``swap_info_struct.data``.
swap_writepage itself, which first tries try_to_free_swap, is in refmodel.mm.swap_state
(it needs the swap cache).
"""

from __future__ import annotations

from refmodel.mm.mmzone import pglist_data
from refmodel.mm.swap import get_page, put_page
from refmodel.mm.swapops import swp_offset, swp_type
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "mm/page_io.c"
PG_uptodate = int(PageFlags.PG_uptodate)
PG_writeback = int(PageFlags.PG_writeback)
PG_reclaim = int(PageFlags.PG_reclaim)
PG_error = int(PageFlags.PG_error)


@kernel("mm/filemap.c")
def end_page_writeback(pgdat: pglist_data, page: Page) -> None:
    """Models mm/filemap.c:end_page_writeback (5.10.13): PG_reclaim cleared
    (rotate_reclaimable_page finds the page isolated during reclaim, so it has nothing to
    rotate), then PG_writeback cleared under a reference of its own (get_page ... put_page:
    the page must not be freed before the writeback waiters are woken)."""
    page.flags &= ~PG_reclaim
    get_page(page)
    page.flags &= ~PG_writeback  # test_clear_page_writeback; wake_up_page
    put_page(pgdat, page)


@kernel(F)
def __swap_writepage(pgdat: pglist_data, page: Page) -> int:
    """Models mm/page_io.c:__swap_writepage: set_page_writeback, write the page's bytes to
    its slot, end_swap_bio_write → end_page_writeback. 0."""
    entry = page.private
    si = pgdat.swap_info[swp_type(entry)]
    page.flags |= PG_writeback  # set_page_writeback
    data = pgdat.page_data.get(page.pfn)
    off = swp_offset(entry)
    if data is None or not any(data):
        si.data.pop(off, None)  # a zero page: the slot reads back as zeros
    else:
        si.data[off] = bytes(data)
    end_page_writeback(pgdat, page)
    pgdat.vm_events["PSWPOUT"] = pgdat.vm_events.get("PSWPOUT", 0) + 1
    return 0


@kernel(F)
def swap_readpage(pgdat: pglist_data, page: Page) -> int:
    """Models mm/page_io.c:swap_readpage: the slot's bytes into the page, PG_uptodate
    (end_swap_bio_read). 0."""
    entry = page.private
    si = pgdat.swap_info[swp_type(entry)]
    data = si.data.get(swp_offset(entry))
    if data is None:
        pgdat.page_data.pop(page.pfn, None)
    else:
        pgdat.page_data[page.pfn] = bytearray(data)
    page.flags |= PG_uptodate
    pgdat.vm_events["PSWPIN"] = pgdat.vm_events.get("PSWPIN", 0) + 1
    return 0
