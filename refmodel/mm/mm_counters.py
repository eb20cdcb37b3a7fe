"""The mm counters of include/linux/mm.h (5.10): rss_stat by page kind, and the high-water
mark of the resident set. They live below the fault, unmap and reclaim paths that use them
(rmap included); refmodel.mm.memory re-exports them with the other include/linux/mm.h
functions.
"""

from __future__ import annotations

from refmodel.mm.mm_types import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    MM_SHMEMPAGES,
    mm_struct,
)
from refmodel.mm.types import PAGE_MAPPING_ANON, Page, PageFlags
from refmodel.trace import kernel

MM_H = "include/linux/mm.h"
PG_swapbacked = int(PageFlags.PG_swapbacked)


@kernel(MM_H)
def mm_counter_file(page: Page) -> int:
    """Models include/linux/mm.h:mm_counter_file: shmem pages count as MM_SHMEMPAGES."""
    return MM_SHMEMPAGES if page.flags & PG_swapbacked else MM_FILEPAGES


@kernel(MM_H)
def mm_counter(page: Page) -> int:
    """Models include/linux/mm.h:mm_counter."""
    if page.mapping_flags & PAGE_MAPPING_ANON:
        return MM_ANONPAGES
    return mm_counter_file(page)


@kernel(MM_H)
def get_mm_counter(mm: mm_struct, member: int) -> int:
    return mm.rss_stat[member]


@kernel(MM_H)
def add_mm_counter(mm: mm_struct, member: int, value: int) -> None:
    mm.rss_stat[member] += value


@kernel(MM_H)
def inc_mm_counter(mm: mm_struct, member: int) -> None:
    """Models inc_mm_counter (and inc_mm_counter_fast, its per-task batched twin)."""
    mm.rss_stat[member] += 1


@kernel(MM_H)
def dec_mm_counter(mm: mm_struct, member: int) -> None:
    mm.rss_stat[member] -= 1


@kernel(MM_H)
def get_mm_rss(mm: mm_struct) -> int:
    """Models include/linux/mm.h:get_mm_rss: file + anon + shmem pages."""
    s = mm.rss_stat
    return s[MM_FILEPAGES] + s[MM_ANONPAGES] + s[MM_SHMEMPAGES]


@kernel(MM_H)
def update_hiwater_rss(mm: mm_struct) -> None:
    """Models include/linux/mm.h:update_hiwater_rss: remember the largest RSS seen."""
    rss = get_mm_rss(mm)
    if mm.hiwater_rss < rss:
        mm.hiwater_rss = rss
