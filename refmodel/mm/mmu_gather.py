"""struct mmu_gather and the page batching of mm/mmu_gather.c (5.10), as far as freeing page
tables (and, later, zapped pages) needs it.

Pages handed to tlb_remove_page are kept in batches and freed only at tlb_flush_mmu /
tlb_finish_mmu, through free_pages_and_swap_cache → release_pages, which puts the pages on a
local list with list_add (so each batch is freed in reverse order). The first batch is the
8-entry ``local`` one inside the gather; further batches are pages from
__get_free_pages(GFP_NOWAIT | __GFP_NOWARN), freed by tlb_batch_list_free. Page tables go the
same way: on native x86 the paravirt tlb_remove_table hook is tlb_remove_page. TLB flushing
itself and the range tracking are not modelled (a single CPU with no TLB in the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refmodel.mm import gfp as G
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_alloc import (
    __get_free_pages,
    free_pages,
    virt_to_page,
)
from refmodel.mm.swap_state import free_pages_and_swap_cache
from refmodel.mm.types import Page
from refmodel.trace import kernel

F = "mm/mmu_gather.c"

MMU_GATHER_BUNDLE = 8
# (PAGE_SIZE - sizeof(struct mmu_gather_batch)) / sizeof(void *): 16-byte header.
MAX_GATHER_BATCH = (4096 - 16) // 8
MAX_GATHER_BATCH_COUNT = 10000 // MAX_GATHER_BATCH


@dataclass(slots=True)
class mmu_gather_batch:
    """struct mmu_gather_batch; ``va`` is the batch page's address (0 for the local one)."""

    max: int
    pages: list[Page] = field(default_factory=list)
    va: int = 0


@dataclass(slots=True)
class mmu_gather:
    """struct mmu_gather: the mm, the range, and the page batches (``batches[0]`` is local)."""

    mm: mm_struct
    start: int
    end: int
    fullmm: bool
    batches: list[mmu_gather_batch] = field(
        default_factory=lambda: [mmu_gather_batch(MMU_GATHER_BUNDLE)])
    active: int = 0
    batch_count: int = 0
    freed_tables: bool = False


@kernel(F)
def tlb_gather_mmu(pgdat: pglist_data, mm: mm_struct, start: int, end: int) -> mmu_gather:
    """Models mm/mmu_gather.c:tlb_gather_mmu: a full-mm gather when start == 0 and end == ~0."""
    # (the local batch passed in, not left to the default factory: one call less per munmap)
    return mmu_gather(mm, start, end, start == 0 and end == (1 << 64) - 1,
                      [mmu_gather_batch(MMU_GATHER_BUNDLE, [])])


@kernel(F)
def tlb_next_batch(pgdat: pglist_data, tlb: mmu_gather) -> bool:
    """Models mm/mmu_gather.c:tlb_next_batch: reuse the next batch, or allocate a page for one
    (GFP_NOWAIT; failing is fine, the caller flushes instead)."""
    if tlb.active + 1 < len(tlb.batches):
        tlb.active += 1
        return True
    if tlb.batch_count == MAX_GATHER_BATCH_COUNT:
        return False
    va = __get_free_pages(pgdat, G.GFP_NOWAIT | G.__GFP_NOWARN, 0)
    if not va:
        return False
    tlb.batch_count += 1
    tlb.batches.append(mmu_gather_batch(MAX_GATHER_BATCH, va=va))
    tlb.active = len(tlb.batches) - 1
    return True


@kernel(F)
def __tlb_remove_page_size(pgdat: pglist_data, tlb: mmu_gather, page: Page,
                           page_size: int) -> bool:
    """Models mm/mmu_gather.c:__tlb_remove_page_size: queue the page; true if the gather is
    full and must be flushed now."""
    batch = tlb.batches[tlb.active]
    batch.pages.append(page)
    if len(batch.pages) == batch.max:
        if not tlb_next_batch(pgdat, tlb):
            return True
    return False


@kernel("include/asm-generic/tlb.h")
def tlb_remove_page(pgdat: pglist_data, tlb: mmu_gather, page: Page) -> None:
    """Models asm-generic/tlb.h:tlb_remove_page (→ tlb_remove_page_size)."""
    if __tlb_remove_page_size(pgdat, tlb, page, 4096):
        tlb_flush_mmu(pgdat, tlb)


@kernel(F)
def tlb_batch_pages_flush(pgdat: pglist_data, tlb: mmu_gather) -> None:
    """Models mm/mmu_gather.c:tlb_batch_pages_flush: release each batch in order."""
    for batch in tlb.batches:
        if not batch.pages:
            break
        pages, batch.pages = batch.pages, []
        free_pages_and_swap_cache(pgdat, pages)
    tlb.active = 0


@kernel(F)
def tlb_flush_mmu(pgdat: pglist_data, tlb: mmu_gather) -> None:
    """Models mm/mmu_gather.c:tlb_flush_mmu (the TLB flush itself is not modelled)."""
    tlb_batch_pages_flush(pgdat, tlb)


@kernel(F)
def tlb_batch_list_free(pgdat: pglist_data, tlb: mmu_gather) -> None:
    """Models mm/mmu_gather.c:tlb_batch_list_free: give back the allocated batch pages."""
    for batch in tlb.batches[1:]:
        free_pages(pgdat, batch.va, 0)
    del tlb.batches[1:]


@kernel(F)
def tlb_finish_mmu(pgdat: pglist_data, tlb: mmu_gather, start: int, end: int) -> None:
    """Models mm/mmu_gather.c:tlb_finish_mmu: flush, free everything gathered, then the
    batch pages."""
    tlb_flush_mmu(pgdat, tlb)
    tlb_batch_list_free(pgdat, tlb)


def batch_page(pgdat: pglist_data, batch: mmu_gather_batch) -> Page | None:
    """The page holding an allocated batch (None for the local batch)."""
    return virt_to_page(pgdat, batch.va) if batch.va else None
