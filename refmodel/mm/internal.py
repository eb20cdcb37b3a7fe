"""mm/internal.h: what mm/ shares internally; here the buddy allocator's pfn arithmetic.

proofs/buddy.py runs these very functions on bit-vectors, so they keep to ^, &, | and <<.
Both the allocator's traced free path (refmodel.mm.page_alloc) and its untraced fast path
(refmodel.mm.page_alloc_fast) call them, so the proofs cover the arithmetic that runs.
"""

from __future__ import annotations

from refmodel.trace import kernel


@kernel("mm/internal.h")
def __find_buddy_pfn(page_pfn: int, order: int) -> int:
    """Models mm/internal.h:__find_buddy_pfn: the buddy differs in bit ``order`` only."""
    return page_pfn ^ (1 << order)


def combined_pfn(pfn: int, buddy_pfn: int) -> int:
    """The head of the block two buddies form (``pfn & buddy_pfn`` in __free_one_page)."""
    return buddy_pfn & pfn
