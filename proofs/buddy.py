"""Proofs of the buddy arithmetic in refmodel.mm.page_alloc, for every order below MAX_ORDER.

For a pfn aligned to ``order`` (52-bit physical addresses, so pfns below 2**40):
  * alignment: the buddy is aligned to ``order``; the combined block to ``order + 1``;
  * involution: the buddy of the buddy is the pfn itself, and differs from it;
  * containment: pfn and buddy are exactly the two halves of the combined block.
"""

from __future__ import annotations

from collections.abc import Callable

import z3

from refmodel.mm.internal import __find_buddy_pfn as find_buddy_pfn
from refmodel.mm.internal import combined_pfn
from refmodel.mm.mmzone import MAX_ORDER
from refmodel.proofs import Proof
from refmodel.proofs.z3util import bv, counterexample

PFN_BITS = 40

BuddyFn = Callable[[z3.BitVecRef, int], z3.BitVecRef]
CombineFn = Callable[[z3.BitVecRef, z3.BitVecRef], z3.BitVecRef]


def _find(pfn: z3.BitVecRef, order: int) -> z3.BitVecRef:
    return find_buddy_pfn(pfn, order)  # type: ignore[arg-type,return-value,unused-ignore]


def _combine(a: z3.BitVecRef, b: z3.BitVecRef) -> z3.BitVecRef:
    return combined_pfn(a, b)  # type: ignore[arg-type,return-value,unused-ignore]


def _broken_find(pfn: z3.BitVecRef, order: int) -> z3.BitVecRef:
    return pfn + (1 << order)  # the classic mistake: always the block above


def _broken_combine(a: z3.BitVecRef, b: z3.BitVecRef) -> z3.BitVecRef:
    return a | b  # the upper half, not the parent's head


def _aligned(x: z3.BitVecRef, order: int) -> z3.BoolRef:
    return (x & ((1 << order) - 1)) == 0


def _setup(order: int) -> tuple[z3.BitVecRef, list[z3.BoolRef]]:
    pfn = bv("pfn")
    return pfn, [z3.ULT(pfn, 1 << PFN_BITS), _aligned(pfn, order)]


def check_alignment(find: BuddyFn, combine: CombineFn) -> str | None:
    for order in range(MAX_ORDER):
        pfn, pre = _setup(order)
        buddy = find(pfn, order)
        claim = z3.And(_aligned(buddy, order), _aligned(combine(pfn, buddy), order + 1))
        cex = counterexample(claim, pre, pfn)
        if cex:
            return f"order {order}: {cex}"
    return None


def check_involution(find: BuddyFn, combine: CombineFn) -> str | None:
    for order in range(MAX_ORDER):
        pfn, pre = _setup(order)
        buddy = find(pfn, order)
        cex = counterexample(z3.And(find(buddy, order) == pfn, buddy != pfn), pre, pfn)
        if cex:
            return f"order {order}: {cex}"
    return None


def check_halves(find: BuddyFn, combine: CombineFn) -> str | None:
    for order in range(MAX_ORDER):
        pfn, pre = _setup(order)
        buddy = find(pfn, order)
        head = combine(pfn, buddy)
        upper = head + (1 << order)
        claim = z3.Or(z3.And(pfn == head, buddy == upper), z3.And(buddy == head, pfn == upper))
        cex = counterexample(claim, pre, pfn)
        if cex:
            return f"order {order}: {cex}"
    return None


PROOFS = [
    Proof("buddy.alignment",
          lambda: check_alignment(_find, _combine),
          lambda: check_alignment(_find, _broken_combine)),
    Proof("buddy.involution",
          lambda: check_involution(_find, _combine),
          lambda: check_involution(_broken_find, _combine)),
    Proof("buddy.halves_of_parent",
          lambda: check_halves(_find, _combine),
          lambda: check_halves(_broken_find, _combine)),
]
