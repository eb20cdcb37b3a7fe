"""The vma target through the in-process adapter: the Python VMA manager conforms in both
modes, the variant that never merges is caught within 10 steps, the model conforms to
itself, and the traffic matches the schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from refmodel.conformance.adapter import in_process, load_class
from refmodel.conformance.reference import ModelVma
from refmodel.conformance.runner import Driver, RunResult, conform
from refmodel.conformance.targets.vma import VmaTarget
from tests.conformance.test_protocol_schema import Recording, check_traffic

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "vma_py"
TARGET = VmaTarget()


def run(cls: type, mode: str, sequences: int = 60, record: bool = False) -> RunResult:
    cfg = TARGET.validate_config({})
    transport = in_process("vma", cls, cfg)
    rec = Recording(transport) if record else None
    driver = Driver(rec or transport, TARGET, cfg, mode)
    r = conform(driver, sequences, 30, 0)
    if rec is not None:
        check_traffic(TARGET, rec)
    return r


@pytest.mark.parametrize("mode", ["invariant", "strict"])
def test_python_vma_example_conforms(mode: str) -> None:
    r = run(load_class(f"{EXAMPLES / 'vma.py'}:VmaManager"), mode, record=True)
    assert r.status == 0, r.counterexample and r.counterexample.to_json()
    assert r.tally["vmas_match_model"] > 0 and r.tally["mprotect_result"] > 0
    assert r.tally["mmap_errno"] > 0 and r.tally["find_vma_matches_model"] > 0


def test_vma_manager_that_never_merges_is_caught_in_at_most_10_steps() -> None:
    r = run(load_class(f"{EXAMPLES / 'vma_no_merge.py'}:NoMergeVmaManager"), "invariant")
    assert r.status == 1
    ce = r.counterexample
    assert ce is not None and 1 <= len(ce.steps) <= 10
    assert "vmas_match_model" in {f.check for f in ce.failures}
    assert "do_mmap" in ce.trace


def test_the_model_conforms_to_itself() -> None:
    assert run(ModelVma, "strict", sequences=30).status == 0


class _Squatter:
    """Places every unfixed mapping at 0x10000000, mapped or not: caught as overlapping."""

    def __init__(self, paging_levels: int) -> None:
        self.inner = ModelVma(paging_levels)

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        if flags & 0x100010 or length == 0 or length > 1 << 40 or not flags & 3:
            return self.inner.mmap(addr, length, prot, flags)
        return self.inner.mmap(0x10000000, length, prot, flags | 0x10)

    def munmap(self, addr: int, length: int) -> int:
        return self.inner.munmap(addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.inner.mprotect(addr, length, prot)

    def find_vma(self, addr: int) -> tuple[int, int, str] | None:
        return self.inner.find_vma(addr)


def test_free_placement_is_followed_but_overlap_is_flagged() -> None:
    r = run(_Squatter, "invariant")
    assert r.status == 1 and r.counterexample is not None
    assert "mmap_placement_free" in {f.check for f in r.counterexample.failures}
    assert r.tally["mmap_placement_free"] > 0  # its first choices were followed
