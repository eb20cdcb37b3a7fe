"""The page-table proofs run, prove, catch their broken variants, and are fast."""

from __future__ import annotations

import time

import pytest

from refmodel.proofs import all_proofs, run_proof
from refmodel.proofs.pagetable import PROOFS


@pytest.mark.parametrize("proof", PROOFS, ids=[p.name for p in PROOFS])
def test_proof_holds_and_its_broken_variant_is_caught(proof: object) -> None:
    r = run_proof(proof)  # type: ignore[arg-type]
    assert r.proved, r.counterexample
    assert r.broken_caught


def test_pagetable_proofs_are_registered_and_all_run_under_five_seconds() -> None:
    names = {p.name for p in all_proofs()}
    assert {p.name for p in PROOFS} <= names
    t0 = time.perf_counter()
    results = [run_proof(p) for p in PROOFS]
    assert all(r.ok for r in results)
    assert time.perf_counter() - t0 < 5.0
