"""The mm target: the model conforms to itself in both modes; an implementation whose fork
shares private memory (no copy on write) is caught within 10 steps."""

from __future__ import annotations

import pytest

from refmodel.conformance.adapter import Signal, in_process
from refmodel.conformance.reference import ModelMm
from refmodel.conformance.runner import Driver, RunResult, conform
from refmodel.conformance.targets.mm import MmTarget
from tests.conformance.test_protocol_schema import Recording, check_traffic

TARGET = MmTarget()


def run(cls: type, mode: str, sequences: int = 40) -> RunResult:
    cfg = TARGET.validate_config({})
    rec = Recording(in_process("mm", cls, cfg))
    r = conform(Driver(rec, TARGET, cfg, mode), sequences, 30, 0)
    check_traffic(TARGET, rec)
    return r


@pytest.mark.parametrize("mode", ["invariant", "strict"])
def test_the_model_conforms_to_itself(mode: str) -> None:
    r = run(ModelMm, mode)
    assert r.status == 0, r.counterexample and r.counterexample.to_json()
    for check in ("read_matches_model", "write_matches_model", "fork_gives_new_pid",
                  "vmas_match_model"):
        assert r.tally[check] > 0, check


class NoCopyOnWrite(ModelMm):
    """Broken: a write lands in the writer and in every process forked from the same
    ancestor, as if fork shared private memory."""

    def __init__(self, paging_levels: int) -> None:
        super().__init__(paging_levels)
        self.family: dict[int, int] = {}

    def spawn(self) -> int:
        pid = super().spawn()
        self.family[pid] = pid
        return pid

    def fork(self, pid: int) -> int:
        child = super().fork(pid)
        if child > 0:
            self.family[child] = self.family[pid]
        return child

    def write(self, pid: int, addr: int, data: bytes) -> Signal | None:
        res = super().write(pid, addr, data)
        if res is None:
            for other, root in list(self.family.items()):
                if other != pid and root == self.family[pid] and other in self.m.m.tasks:
                    super().write(other, addr, data)
        return res


def test_fork_without_copy_on_write_is_caught_in_at_most_10_steps() -> None:
    r = run(NoCopyOnWrite, "invariant", sequences=100)
    assert r.status == 1
    ce = r.counterexample
    assert ce is not None and len(ce.steps) <= 10
    assert {f.check for f in ce.failures} & {"read_matches_model", "write_matches_model"}
    assert any(s.request["op"] == "fork" for s in ce.steps)
