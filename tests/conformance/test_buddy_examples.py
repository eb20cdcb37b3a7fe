"""The kit's own check on the C buddy example: the correct one conforms (in both modes), each
deliberately broken variant is caught with a counterexample of at most 10 steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from refmodel.conformance.protocol import JSON
from refmodel.conformance.runner import Driver, RunResult, conform
from refmodel.conformance.targets.buddy import BuddyTarget
from refmodel.conformance.transport import SubprocessTransport

TARGET = BuddyTarget()


def run(exe: Path, mode: str = "invariant", sequences: int = 100, seed: int = 0,
        config: dict[str, JSON] | None = None) -> RunResult:
    cfg = TARGET.validate_config(dict(config or {}))
    driver = Driver(SubprocessTransport([str(exe)], "buddy", mode, cfg), TARGET, cfg, mode)
    return conform(driver, sequences, 30, seed, command=[str(exe)])


@pytest.mark.parametrize("mode", ["invariant", "strict"])
def test_correct_c_buddy_conforms(buddy_bins: dict[str, Path], mode: str) -> None:
    r = run(buddy_bins["buddy"], mode)
    assert r.status == 0, r.counterexample and r.counterexample.to_json()
    assert r.sequences == 100 and r.tally["free_lists_match_model"] > 0
    if mode == "strict":
        assert r.tally["alloc_pfn_exact"] > 0 and r.tally["free_lists_exact"] > 0


def test_correct_c_buddy_conforms_on_other_configs(buddy_bins: dict[str, Path]) -> None:
    cfgs: list[dict[str, JSON]] = [{"nr_pages": 1, "max_order": 1},
                                   {"nr_pages": 128, "max_order": 11},
                                   {"nr_pages": 37, "max_order": 3}]
    for cfg in cfgs:
        r = run(buddy_bins["buddy"], "strict", sequences=30, config=cfg)
        assert r.status == 0, (cfg, r.counterexample and r.counterexample.to_json())


@pytest.mark.parametrize(("variant", "checks"), [
    ("buddy_no_merge", {"no_unmerged_buddies", "free_lists_match_model"}),
    ("buddy_wrong_buddy", {"no_unmerged_buddies", "free_lists_match_model",
                           "free_blocks_disjoint", "pages_conserved", "free_blocks_aligned"}),
    ("buddy_double_free", {"free_rejects_double_free", "free_rejects_interior"}),
])
@pytest.mark.parametrize("mode", ["invariant", "strict"])
def test_broken_c_buddy_is_caught_in_at_most_10_steps(
        buddy_bins: dict[str, Path], variant: str, checks: set[str], mode: str) -> None:
    r = run(buddy_bins[variant], mode)
    assert r.status == 1 and r.drive_error is None
    ce = r.counterexample
    assert ce is not None and 1 <= len(ce.steps) <= 10
    assert {f.check for f in ce.failures} & checks, [f.to_json() for f in ce.failures]
    assert ce.trace, "the model's call trace of the failing step is shown"


def test_counterexample_is_deterministic_for_a_seed(buddy_bins: dict[str, Path]) -> None:
    a = run(buddy_bins["buddy_wrong_buddy"], seed=7)
    b = run(buddy_bins["buddy_wrong_buddy"], seed=7)
    assert a.counterexample is not None and b.counterexample is not None
    assert a.counterexample.to_json() == b.counterexample.to_json()
    assert a.sequences == b.sequences
