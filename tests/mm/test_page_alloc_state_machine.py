"""Stateful fuzzing of the buddy allocator: every invariant after every step, in the full
machine and in the standalone buddy; bad frees must be refused and change nothing."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from refmodel.bugs import KernelBug, KernelWarning
from refmodel.config import BuddyConfig, MachineConfig, MiB
from refmodel.machine import Machine, StandaloneBuddy
from refmodel.mm import gfp as G
from refmodel.mm.mmzone import MAX_ORDER, pglist_data
from refmodel.mm.page_alloc import drain_all_pages
from refmodel.specs.buddy import buddy_state, check_buddy
from tests.mm.buddy_steps import BAD_FREES, draw_bad_free

GFPS = [
    G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_USER, G.GFP_DMA, G.GFP_DMA32, G.GFP_ATOMIC,
    G.GFP_KERNEL | G.__GFP_ZERO, G.GFP_NOWAIT, G.GFP_KERNEL | G.__GFP_RECLAIMABLE,
    G.GFP_KERNEL | G.__GFP_NOWARN | G.__GFP_NORETRY,
]


class _AllocatorMachine(RuleBasedStateMachine):
    pgdat: pglist_data

    def __init__(self) -> None:
        super().__init__()
        self.live: list[tuple[int, int]] = []
        self.freed: list[tuple[int, int]] = []

    def _alloc(self, gfp: int, order: int) -> int | None:
        raise NotImplementedError

    def _free(self, pfn: int, order: int) -> None:
        raise NotImplementedError

    @invariant()
    def buddy_invariants_hold(self) -> None:
        violations = check_buddy(self.pgdat)
        assert not violations, "\n".join(map(str, violations))

    @rule(data=st.data())
    def free_live_block(self, data: st.DataObject) -> None:
        if not self.live:
            return
        i = data.draw(st.integers(0, len(self.live) - 1), label="live block")
        pfn, order = self.live.pop(i)
        self._free(pfn, order)
        self.freed.append((pfn, order))

    @rule(data=st.data(), kind=st.sampled_from(BAD_FREES))
    def bad_free_is_refused(self, data: st.DataObject, kind: str) -> None:
        bad = draw_bad_free(data, kind, self.live, self.freed, self.pgdat.node_spanned_pages,
                            MAX_ORDER)
        if bad is None:
            return
        pfn, order = bad
        before = buddy_state(self.pgdat)
        try:
            self._free(pfn, order)
        except KernelBug:
            pass
        else:
            raise AssertionError(f"bad free ({kind}) of pfn {pfn:#x} order {order} accepted")
        assert buddy_state(self.pgdat) == before, f"refused bad free ({kind}) changed state"


class FullMachineAllocator(_AllocatorMachine):
    """The full machine: zones, per-cpu lists, migratetypes, watermarks."""

    @initialize(mem=st.sampled_from([40, 64, 256]), pcp=st.booleans())
    def boot(self, mem: int, pcp: bool) -> None:
        self.machine = Machine(MachineConfig(memory=mem * MiB, kernel_image=8 * MiB, pcp=pcp))
        self.pgdat = self.machine.pgdat
        # the allocator alone: no OOM killer (with no task to kill, 5.10 would panic)
        self.pgdat.hooks.out_of_memory = None

    def _alloc(self, gfp: int, order: int) -> int | None:
        page = self.machine.alloc_pages(gfp, order)
        return None if page is None else page.pfn

    def _free(self, pfn: int, order: int) -> None:
        self.machine.free_pages(pfn, order)

    @rule(gfp=st.sampled_from(GFPS), order=st.integers(0, MAX_ORDER - 1), n=st.integers(1, 40))
    def allocate(self, gfp: int, order: int, n: int) -> None:
        for _ in range(n if order < 3 else 1):
            pfn = self._alloc(gfp, order)
            if pfn is None:
                break
            assert pfn % (1 << order) == 0
            self.live.append((pfn, order))

    @rule()
    def allocate_max_order_warns(self) -> None:
        before = buddy_state(self.pgdat)
        try:
            self.machine.alloc_pages(G.GFP_KERNEL, MAX_ORDER)
        except KernelWarning:
            pass
        else:
            raise AssertionError("order MAX_ORDER was not refused")
        assert buddy_state(self.pgdat) == before

    @precondition(lambda self: hasattr(self, "pgdat"))
    @rule()
    def drain(self) -> None:
        drain_all_pages(self.pgdat)
        assert all(z.pageset.count == 0 for z in self.pgdat.node_zones)


class StandaloneAllocator(_AllocatorMachine):
    """The plain buddy over [0, N): one zone, one migratetype, no per-cpu lists."""

    @initialize(n=st.integers(1, 5000), max_order=st.integers(1, MAX_ORDER))
    def boot(self, n: int, max_order: int) -> None:
        self.buddy = StandaloneBuddy(BuddyConfig(n, max_order=max_order))
        self.pgdat = self.buddy.pgdat

    def _free(self, pfn: int, order: int) -> None:
        self.buddy.free(pfn, order)

    @rule(order=st.integers(0, MAX_ORDER - 1), n=st.integers(1, 20))
    def allocate(self, order: int, n: int) -> None:
        for _ in range(n):
            exists = any(z.free_area[o].nr_free for z in self.pgdat.node_zones
                         for o in range(order, MAX_ORDER))
            try:
                pfn = self.buddy.alloc(order)
            except KernelWarning:
                assert order >= self.pgdat.max_order
                return
            # fails only when no free block of that order or larger exists
            assert (pfn is None) == (not exists)
            if pfn is None:
                return
            self.live.append((pfn, order))


TestFullMachineAllocator = FullMachineAllocator.TestCase
TestStandaloneAllocator = StandaloneAllocator.TestCase
