"""The whole-system Hypothesis state machine (issue 6): several tasks; mmap / munmap /
mprotect, fork, exit, file mappings, reads and writes of random bytes at random addresses;
every invariant of every issue so far (buddy, page tables, VMAs, COW / counts / leaks)
after every step (by the incremental checker and by the full check), every read and write
against the logical-memory oracle, and no leak after the last task exits. A failure prints
as a replayable list of steps."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from refmodel.specs.system import PRESSURE, PRESSURE_NO_SWAP, System, random_steps

small = st.integers(0, 15)
big = st.integers(0, 1 << 20)


class WholeSystem(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sys = System()

    @rule()
    def spawn(self) -> None:
        self.sys.spawn()

    @rule(task=small)
    def fork(self, task: int) -> None:
        self.sys.fork(task)

    @rule(task=small)
    def exit(self, task: int) -> None:
        self.sys.exit(task)

    @rule(npages=small, extra=big, seed=st.integers(0, 255))
    def create_file(self, npages: int, extra: int, seed: int) -> None:
        self.sys.create_file(npages, extra, seed)

    @rule(f=small)
    def release_file(self, f: int) -> None:
        self.sys.release_file(f)

    @rule(task=small, npages=small, prot=small, kind=small, sel=small, off=big,
          fixed=st.booleans())
    def mmap(self, task: int, npages: int, prot: int, kind: int, sel: int, off: int,
             fixed: bool) -> None:
        self.sys.mmap(task, npages, prot, kind, sel, off, fixed)

    @rule(task=small, sel=small, off=big, npages=small)
    def munmap(self, task: int, sel: int, off: int, npages: int) -> None:
        self.sys.munmap(task, sel, off, npages)

    @rule(task=small, sel=small, off=big, npages=small, prot=small)
    def mprotect(self, task: int, sel: int, off: int, npages: int, prot: int) -> None:
        self.sys.mprotect(task, sel, off, npages, prot)

    @rule(task=small, sel=small, off=big, n=st.integers(0, 63), seed=st.integers(0, 255))
    def write(self, task: int, sel: int, off: int, n: int, seed: int) -> None:
        self.sys.write(task, sel, off, n, seed)

    @rule(task=small, sel=small, off=big, n=st.integers(0, 63))
    def read(self, task: int, sel: int, off: int, n: int) -> None:
        self.sys.read(task, sel, off, n)

    @invariant()
    def every_invariant_holds(self) -> None:
        # The incremental checker System.check uses, and the full check it stands for,
        # must agree after every step (tests/test_incremental.py plants corruptions).
        full = self.sys.violations()
        self.sys.check()
        assert not full, full

    def teardown(self) -> None:
        self.sys.teardown()


class PressureSystem(WholeSystem):
    """The same machine under memory pressure (issue 10): a small machine with swap, and
    "stress" steps touching up to 512 pages, so that kswapd, direct reclaim, swap-out and
    swap-in (and, when swap fills up, the OOM killer) run, with every invariant checked."""

    def __init__(self) -> None:
        super().__init__()
        self.sys = System(PRESSURE)

    @rule(task=small, size=small, seed=st.integers(0, 255))
    def stress(self, task: int, size: int, seed: int) -> None:
        self.sys.stress(task, size, seed)


class PressureNoSwapSystem(PressureSystem):
    """No swap: anonymous memory cannot be reclaimed, so pressure ends in OOM kills."""

    def __init__(self) -> None:
        super().__init__()
        self.sys = System(PRESSURE_NO_SWAP)


TestWholeSystem = WholeSystem.TestCase
TestPressureSystem = PressureSystem.TestCase
TestPressureNoSwapSystem = PressureNoSwapSystem.TestCase
# At least 100 runs of 50 steps whatever the profile (about 10 s under ci); fuzz goes further.
_profile = settings.default
assert _profile is not None
TestWholeSystem.settings = settings(
    _profile, max_examples=max(_profile.max_examples, 100),
    stateful_step_count=max(_profile.stateful_step_count, 50))


# Pressure runs are slower (hundreds of faults per stress step): fewer, shorter runs in ci.
for _case in (TestPressureSystem, TestPressureNoSwapSystem):
    _case.settings = settings(_profile, max_examples=max(_profile.max_examples // 5, 10),
                              stateful_step_count=max(_profile.stateful_step_count, 30))


def test_seeded_pressure_walks_reclaim_swap_and_kill() -> None:
    """Seeded walks under pressure, with and without swap: swap is used, kswapd and the
    OOM killer run, every invariant holds after every step, nothing leaks."""
    s = System(PRESSURE)
    random_steps(s, random.Random(2), 300, check=True, stress_weight=20)
    assert s.m.pgdat.total_swap_pages > s.m.pgdat.nr_swap_pages  # something is swapped
    s.teardown()
    s = System(PRESSURE_NO_SWAP)
    random_steps(s, random.Random(0), 300, check=True, stress_weight=20)
    assert s.oom_kills > 0
    s.teardown()


def test_seeded_random_walk_with_every_check() -> None:
    """A longer deterministic walk (the fuzz benchmark's driver) than the ci profile."""
    s = System()
    random_steps(s, random.Random(6), 600, check=True)
    s.teardown()
