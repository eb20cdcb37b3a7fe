"""Steps the allocator state machines share."""

from __future__ import annotations

from hypothesis import strategies as st

from refmodel.mm.mmzone import MAX_ORDER

BAD_FREES = ["double", "wrong_order", "misaligned", "stray", "too_big"]


def _inside_live(pfn: int, live: list[tuple[int, int]]) -> bool:
    return any(p <= pfn < p + (1 << o) for p, o in live)


def draw_bad_free(data: st.DataObject, kind: str, live: list[tuple[int, int]],
                  freed: list[tuple[int, int]], spanned: int,
                  max_order: int) -> tuple[int, int] | None:
    """A free of this kind that the allocator must refuse, as (pfn, order), or None if the
    state has none to offer (nothing freed yet, a freed block allocated again, ...)."""
    if kind == "double" and freed:
        pfn, order = data.draw(st.sampled_from(freed), label="freed block")
        return None if _inside_live(pfn, live) else (pfn, order)
    if kind in ("wrong_order", "misaligned") and live:
        pfn, order = data.draw(st.sampled_from(live), label="live block")
        if kind == "wrong_order":
            return pfn, data.draw(st.integers(0, MAX_ORDER - 1).filter(lambda o: o != order))
        return None if order == 0 else (pfn + 1, order)
    if kind == "stray":
        pfn = data.draw(st.integers(0, spanned - 1), label="pfn")
        return None if _inside_live(pfn, live) else (pfn, 0)
    if kind == "too_big":
        return 0, max_order
    return None
