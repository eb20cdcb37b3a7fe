"""Every z3 proof proves, and its deliberately broken variant is caught."""

from __future__ import annotations

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
