"""Every z3 proof proves, and its deliberately broken variant is caught."""

from __future__ import annotations

from typing import Any

import pytest

from refmodel.proofs import Proof, all_proofs, run_proof
from refmodel.proofs.buddy import PROOFS as BUDDY


@pytest.mark.parametrize("proof", all_proofs(), ids=lambda p: p.name)
def test_proof_holds_and_broken_variant_fails(proof: Proof) -> None:
    r = run_proof(proof)
    assert r.proved, r.counterexample
    assert r.broken_caught, f"{proof.name}: the broken variant was not refuted"


def test_buddy_proofs_cover_the_three_properties() -> None:
    assert [p.name for p in BUDDY] == [
        "buddy.alignment", "buddy.involution", "buddy.halves_of_parent"]




def test_the_mm_code_runs_the_proved_page_align() -> None:
    # PAGE_ALIGN is proved once (proofs/pagetable.py); mm/ must call that function, not a
    # copy. That mmap, munmap and mprotect call it first is checked on their traces
    # (tests/mm/test_mmap.py).
    from refmodel.arch.x86 import pgtable_types
    from refmodel.mm import mman, mmap, mprotect

    assert mman.PAGE_ALIGN is pgtable_types.PAGE_ALIGN
    assert vars(mmap)["PAGE_ALIGN"] is vars(mprotect)["PAGE_ALIGN"] is pgtable_types.PAGE_ALIGN


@pytest.mark.parametrize("fast", [False, True], ids=["traced_chain", "fast_path"])
def test_the_buddy_merge_runs_the_proved_arithmetic(
        monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    # proofs/buddy.py proves refmodel.mm.internal's __find_buddy_pfn and combined_pfn; the
    # merge loop and buddy_merge_likely must call them, not copies of their formulas, on
    # the traced chain (__free_one_page) and on the untraced fast path alike. (That the
    # merge loop calls __find_buddy_pfn is also on its trace: tests/mm/test_page_alloc.py.)
    # Spies show both are called on a free that merges.
    from refmodel.config import BuddyConfig
    from refmodel.machine import StandaloneBuddy
    from refmodel.mm import internal, page_alloc, page_alloc_fast

    calls: list[str] = []
    find, combine = internal.__find_buddy_pfn, internal.combined_pfn

    def spy_find(pfn: int, order: int) -> int:
        calls.append("find")
        return find(pfn, order)

    def spy_combine(pfn: int, buddy_pfn: int) -> int:
        calls.append("combine")
        return combine(pfn, buddy_pfn)

    b = StandaloneBuddy(BuddyConfig(64))
    b.pgdat.fast_paths = fast
    b.alloc(0)
    for module in (page_alloc, page_alloc_fast):
        monkeypatch.setattr(module, "__find_buddy_pfn", spy_find)
        monkeypatch.setattr(module, "combined_pfn", spy_combine)
    traced: list[int] = []
    free_one_page = page_alloc.free_one_page

    def spy_free_one_page(*args: Any) -> None:
        traced.append(1)
        free_one_page(*args)

    monkeypatch.setattr(page_alloc, "free_one_page", spy_free_one_page)
    b.free(0, 0)  # merges with 1, 2, 4, 8, 16, 32: one block of order 6
    assert bool(traced) is not fast  # the path asked for is the one that ran
    # six merges; the loop's seventh buddy (pfn 64) is not free; buddy_merge_likely looks
    # one order up (a combine and a find of its own)
    assert calls == ["find", "combine"] * 6 + ["find", "combine", "find"]
