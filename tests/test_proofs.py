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
