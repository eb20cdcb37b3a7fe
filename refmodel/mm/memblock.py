"""The boot-time release of free memory to the buddy allocator (mm/memblock.c, 5.10)."""

from __future__ import annotations

from refmodel.mm.mmzone import pfn_to_page, pglist_data
from refmodel.mm.page_alloc import memblock_free_pages
from refmodel.trace import kernel

F = "mm/memblock.c"


def __ffs(x: int) -> int:
    """include/asm-generic/bitops/__ffs.h: index of the lowest set bit (x != 0)."""
    return (x & -x).bit_length() - 1


@kernel(F)
def __free_pages_memory(pgdat: pglist_data, start: int, end: int) -> None:
    """Models mm/memblock.c:__free_pages_memory: free [start, end) in the largest naturally
    aligned blocks, ascending. __ffs(0) is undefined in 5.10 (pfn 0 is always reserved on
    x86); the model treats pfn 0 as aligned to every order."""
    top = pgdat.max_order - 1  # MAX_ORDER - 1; the standalone buddy's may differ
    while start < end:
        order = top if start == 0 else min(top, __ffs(start))
        while start + (1 << order) > end:
            order -= 1
        memblock_free_pages(pgdat, pfn_to_page(pgdat, start), start, order)
        start += 1 << order


@kernel(F)
def __free_memory_core(pgdat: pglist_data, start_pfn: int, end_pfn: int) -> int:
    """Models mm/memblock.c:__free_memory_core (on pfns): release one free range."""
    if start_pfn >= end_pfn:
        return 0
    __free_pages_memory(pgdat, start_pfn, end_pfn)
    return end_pfn - start_pfn


@kernel(F)
def free_low_memory_core_early(pgdat: pglist_data, free_ranges: list[tuple[int, int]]) -> int:
    """Models mm/memblock.c:free_low_memory_core_early: every free range, ascending."""
    count = 0
    for start, end in free_ranges:
        count += __free_memory_core(pgdat, start, end)
    return count


@kernel(F)
def memblock_free_all(pgdat: pglist_data, free_ranges: list[tuple[int, int]]) -> int:
    """Models mm/memblock.c:memblock_free_all: managed pages start at 0 and count up as
    memory is released; returns the pages released (added to totalram_pages)."""
    for zone in pgdat.node_zones:
        zone.managed_pages = 0  # reset_all_zones_managed_pages
    pages = free_low_memory_core_early(pgdat, free_ranges)
    pgdat.totalram_pages += pages
    return pages


def free_ranges_of(nr_pages: int, unavailable: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """for_each_free_mem_range: [0, nr_pages) minus the sorted unavailable ranges."""
    out: list[tuple[int, int]] = []
    cur = 0
    for s, e in sorted(unavailable):
        if s > cur:
            out.append((cur, min(s, nr_pages)))
        cur = max(cur, e)
    if cur < nr_pages:
        out.append((cur, nr_pages))
    return [(s, e) for s, e in out if s < e]
