"""The pagetable target through the in-process adapter: the Python example conforms in both
modes and paging modes; the wrong-shift variant is caught within 10 steps; the model
conforms to itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from refmodel.conformance.adapter import in_process, load_class
from refmodel.conformance.reference import ModelPageTable
from refmodel.conformance.runner import Driver, RunResult, conform
from refmodel.conformance.targets.pagetable import PageTableTarget, candidate_addresses

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pagetable_py"
TARGET = PageTableTarget()


def run(cls: type, mode: str, levels: int, sequences: int = 60) -> RunResult:
    cfg = TARGET.validate_config({"paging_levels": levels})
    driver = Driver(in_process("pagetable", cls, cfg), TARGET, cfg, mode)
    return conform(driver, sequences, 30, 0)


@pytest.mark.parametrize("levels", [4, 5])
@pytest.mark.parametrize("mode", ["invariant", "strict"])
def test_python_pagetable_example_conforms(mode: str, levels: int) -> None:
    cls = load_class(f"{EXAMPLES / 'pagetable.py'}:PageTable")
    r = run(cls, mode, levels)
    assert r.status == 0, r.counterexample and r.counterexample.to_json()
    assert r.tally["translate_matches_model"] > 0 and r.tally["entries_match_model"] > 0
    if mode == "strict":
        assert r.tally["tables_exact"] > 0 and r.tally["entries_exact"] > 0


@pytest.mark.parametrize("levels", [4, 5])
def test_wrong_shift_is_caught_in_at_most_10_steps(levels: int) -> None:
    cls = load_class(f"{EXAMPLES / 'pagetable_wrong_shift.py'}:WrongShiftPageTable")
    r = run(cls, "invariant", levels)
    assert r.status == 1
    ce = r.counterexample
    assert ce is not None and 1 <= len(ce.steps) <= 10
    assert {f.check for f in ce.failures} & {"entries_match_model", "translate_matches_model"}


def test_the_model_conforms_to_itself_in_strict_mode() -> None:
    assert run(ModelPageTable, "strict", 5, sequences=30).status == 0


def test_candidate_addresses_are_user_pages() -> None:
    for levels, top in ((4, 1 << 47), (5, 1 << 56)):
        cands = candidate_addresses(levels)
        assert cands[0] == 0 and all(a % 4096 == 0 and a < top for a in cands)
        assert top - 4096 in cands and (1 << 29) in cands
