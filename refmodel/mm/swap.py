"""The LRU entry points the fault and unmap paths call (mm/swap.c, 5.10), as stubs.

The LRU lists, their per-cpu pagevecs and page aging come with reclaim. Until then adding a
page to the LRU sets nothing (in 5.10 it sets PG_lru and the pagevec briefly holds a
reference: the model leaves out that transient reference, see docs/scope.md), and
mark_page_accessed only sets PG_referenced.
"""

from __future__ import annotations

from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "mm/swap.c"
PG_referenced = int(PageFlags.PG_referenced)


@kernel(F)
def mark_page_accessed(page: Page) -> None:
    """Models mm/swap.c:mark_page_accessed for a page off the LRU: PG_referenced."""
    page.flags |= PG_referenced


@kernel(F)
def lru_cache_add(page: Page) -> None:
    """Models mm/swap.c:lru_cache_add (no LRU lists yet: nothing observable)."""


@kernel(F)
def lru_cache_add_inactive_or_unevictable(page: Page, vma: vm_area_struct) -> None:
    """Models mm/swap.c:lru_cache_add_inactive_or_unevictable (→ lru_cache_add)."""
    lru_cache_add(page)
