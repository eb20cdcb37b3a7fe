"""The allocator's untraced fast path (refmodel.mm.page_alloc_fast) against the traced chain.

Two machines boot alike; one may take the fast path, the other (``pgdat.fast_paths =
False``) always runs the chain of 5.10 functions. Every step goes to both, and after every
step their whole allocator state must be equal: every slot of every struct page, every
free and per-cpu list in order, every zone counter, the page contents. Results and raised
exceptions must be equal too. The steps include the cases the fast path declines (flags on
a page, extra references, cold per-cpu lists, low watermarks, bad frees), so the hand-over
to the traced chain is checked as well.
"""

from __future__ import annotations

import collections
import dataclasses
import random

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from refmodel.bugs import KernelBug, KernelWarning
from refmodel.config import BuddyConfig, MachineConfig, MiB
from refmodel.machine import Machine, StandaloneBuddy
from refmodel.mm import gfp as G
from refmodel.mm import page_alloc, page_alloc_fast
from refmodel.mm.mmzone import MAX_ORDER, pfn_to_page, pglist_data
from refmodel.mm.page_alloc import __free_pages as free_block
from refmodel.mm.page_alloc import alloc_pages, drain_all_pages
from refmodel.mm.swap import get_page
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import Tracer
from tests.mm.buddy_steps import BAD_FREES, draw_bad_free

GFPS = [
    G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_USER, G.GFP_DMA, G.GFP_DMA32, G.GFP_ATOMIC,
    G.GFP_KERNEL | G.__GFP_ZERO, G.GFP_NOWAIT, G.GFP_KERNEL | G.__GFP_RECLAIMABLE,
    G.GFP_KERNEL | G.__GFP_COMP, G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO | G.__GFP_COMP,
    G.GFP_KERNEL | G.__GFP_NOWARN | G.__GFP_NORETRY,
]
_SLOTS = tuple(f.name for f in dataclasses.fields(Page))


def allocator_state(pgdat: pglist_data) -> tuple[object, ...]:
    """Everything the allocator keeps, in order where order matters."""
    pages = tuple(tuple(getattr(p, s) for s in _SLOTS) for _, p in sorted(pgdat.mem_map.items()))
    zones = tuple(
        (tuple((tuple(tuple(fl) for fl in a.free_list), a.nr_free) for a in z.free_area),
         z.pageset.count, z.pageset.high, z.pageset.batch,
         tuple(tuple(p.pfn for p in lst) for lst in z.pageset.lists),
         z.nr_free_pages, z.managed_pages, tuple(z._watermark), z.watermark_boost,
         tuple(z.lowmem_reserve), z.nr_reserved_highatomic, z.boosted_watermark,
         tuple(sorted(z.pageblock_mt.items())))
        for z in pgdat.node_zones)
    return (pages, zones, tuple(sorted(pgdat.allocated.items())),
            tuple(sorted((k, bytes(v)) for k, v in pgdat.page_data.items())),
            pgdat.alloc_failures, pgdat.kswapd_woken, pgdat.kswapd_order,
            tuple(sorted(pgdat.alloc_contexts)))


def _outcome(fn: object, *args: object) -> tuple[str, object]:
    try:
        result = fn(*args)  # type: ignore[operator]
    except (KernelBug, KernelWarning) as e:
        return ("raised", (type(e).__name__, str(e)))
    return ("returned", result.pfn if isinstance(result, Page) else result)


def on_both(fast: pglist_data, traced: pglist_data, fn: object, *args: object,
            where: str = "") -> tuple[str, object]:
    """Run ``fn(pgdat, *args)`` on both allocators; the outcomes must agree."""
    a = _outcome(fn, fast, *args)
    b = _outcome(fn, traced, *args)
    assert a == b, f"{where}fast path {a} but traced chain {b}"
    return a


def free_on_both(fast: pglist_data, traced: pglist_data, pfn: int, order: int,
                 where: str = "") -> tuple[str, object]:
    """__free_pages of the block at ``pfn`` on both; the outcomes must agree."""
    a = _outcome(free_block, fast, pfn_to_page(fast, pfn), order)
    b = _outcome(free_block, traced, pfn_to_page(traced, pfn), order)
    assert a == b, f"{where}fast path {a} but traced chain {b}"
    return a


def clear_block_flags(pgdats: tuple[pglist_data, ...], pfn: int, order: int) -> None:
    """Take away the flags a free was refused for (set_a_flag's), on every allocator."""
    for pgdat in pgdats:
        for p in range(pfn, pfn + (1 << order)):
            if p in pgdat.mem_map:
                pgdat.mem_map[p].flags = 0


class _Lockstep(RuleBasedStateMachine):
    """Both allocators get every step; ``live`` holds (pfn, order) of blocks both hold."""

    fast: pglist_data
    traced: pglist_data

    def __init__(self) -> None:
        super().__init__()
        self.live: list[tuple[int, int]] = []
        self.freed: list[tuple[int, int]] = []

    def _both(self, fn: object, *args: object) -> tuple[str, object]:
        return on_both(self.fast, self.traced, fn, *args)

    def _pages(self, pfn: int) -> tuple[Page, Page]:
        return pfn_to_page(self.fast, pfn), pfn_to_page(self.traced, pfn)

    @invariant()
    def same_state(self) -> None:
        if hasattr(self, "fast"):
            assert allocator_state(self.fast) == allocator_state(self.traced)

    def _free(self, pfn: int, order: int) -> tuple[str, object]:
        return free_on_both(self.fast, self.traced, pfn, order)

    def _alloc(self, gfp: int, order: int) -> int | None:
        kind, result = self._both(alloc_pages, gfp, order)
        if kind == "returned" and isinstance(result, int):
            self.live.append((result, order))
            return result
        return None

    @precondition(lambda self: hasattr(self, "fast"))
    @rule(data=st.data())
    def free_live_block(self, data: st.DataObject) -> None:
        if not self.live:
            return
        pfn, order = self.live.pop(data.draw(st.integers(0, len(self.live) - 1)))
        if self._free(pfn, order)[0] == "raised":
            # a flag free_pages_check refuses (set_a_flag): both refused alike and changed
            # nothing; with the flags gone, the free goes through
            clear_block_flags((self.fast, self.traced), pfn, order)
            assert self._free(pfn, order) == ("returned", None)
        self.freed.append((pfn, order))

    @precondition(lambda self: hasattr(self, "fast"))
    @rule(data=st.data())
    def extra_reference_then_free(self, data: st.DataObject) -> None:
        # a second holder of a non-compound block: __free_pages frees the upper halves now
        # and leaves the head page with its holder (an order-0 block from then on)
        if not self.live:
            return
        i = data.draw(st.integers(0, len(self.live) - 1))
        pfn, order = self.live[i]
        fp, tp = self._pages(pfn)
        get_page(fp)
        get_page(tp)
        if self._free(pfn, order)[0] == "raised":  # refused alike (a flag): drop the reference
            fp._refcount -= 1
            tp._refcount -= 1
            return
        if fp._refcount == 0:
            self.live.pop(i)  # a compound block's last reference went with it
        elif not fp.flags & PageFlags.PG_head:
            self.live[i] = (pfn, 0)

    @precondition(lambda self: hasattr(self, "fast"))
    @rule(data=st.data(), flag=st.sampled_from([PageFlags.PG_dirty, PageFlags.PG_referenced,
                                                PageFlags.PG_active, PageFlags.PG_locked]))
    def set_a_flag(self, data: st.DataObject, flag: PageFlags) -> None:
        # a flag on the head or on a tail sends the free to the traced chain's checks
        if not self.live:
            return
        pfn, order = data.draw(st.sampled_from(self.live))
        at = pfn + data.draw(st.integers(0, (1 << order) - 1))
        for p in self._pages(at):
            p.flags |= int(flag)

    @precondition(lambda self: hasattr(self, "fast"))
    @rule(data=st.data(), byte=st.integers(1, 255))
    def write_page(self, data: st.DataObject, byte: int) -> None:
        # contents, so that a __GFP_ZERO allocation of the page later must clear them
        if not self.live:
            return
        pfn, order = data.draw(st.sampled_from(self.live))
        at = pfn + data.draw(st.integers(0, (1 << order) - 1))
        for pgdat in (self.fast, self.traced):
            pgdat.page_data[at] = bytearray([byte]) * 4096

    @precondition(lambda self: hasattr(self, "fast"))
    @rule(data=st.data(), kind=st.sampled_from(BAD_FREES))
    def bad_free(self, data: st.DataObject, kind: str) -> None:
        bad = draw_bad_free(data, kind, self.live, self.freed, self.fast.node_spanned_pages,
                            self.fast.max_order)
        if bad is None:
            return
        pfn, order = bad
        kind_of, _ = self._free(pfn, order)
        assert kind_of == "raised"


class FastVsChainFull(_Lockstep):
    """Full machines: zones, per-cpu lists, migratetypes, watermarks, fallback stealing."""

    @initialize(mem=st.sampled_from([40, 64, 256]), pcp=st.booleans())
    def boot(self, mem: int, pcp: bool) -> None:
        pair = []
        for fast in (True, False):
            m = Machine(MachineConfig(memory=mem * MiB, kernel_image=8 * MiB, pcp=pcp))
            m.pgdat.hooks.out_of_memory = None  # the allocator alone: nobody to kill
            m.pgdat.fast_paths = fast
            pair.append(m)
        self.machines = pair
        self.fast, self.traced = pair[0].pgdat, pair[1].pgdat

    @precondition(lambda self: hasattr(self, "fast"))
    @rule(gfp=st.sampled_from(GFPS), order=st.integers(0, MAX_ORDER), n=st.integers(1, 40))
    def allocate(self, gfp: int, order: int, n: int) -> None:
        for _ in range(n if order < 3 else 1):
            if self._alloc(gfp, order) is None:
                break

    @precondition(lambda self: hasattr(self, "fast"))
    @rule()
    def drain(self) -> None:
        drain_all_pages(self.fast)
        drain_all_pages(self.traced)


class FastVsChainStandalone(_Lockstep):
    """The plain buddy over [0, N), max_order up to the conformance kit's 16."""

    @initialize(n=st.integers(1, 5000), max_order=st.integers(1, 16))
    def boot(self, n: int, max_order: int) -> None:
        self.buddies = [StandaloneBuddy(BuddyConfig(n, max_order=max_order)) for _ in range(2)]
        self.fast, self.traced = self.buddies[0].pgdat, self.buddies[1].pgdat
        self.traced.fast_paths = False

    @precondition(lambda self: hasattr(self, "fast"))
    @rule(order=st.integers(0, 16), n=st.integers(1, 20))
    def allocate(self, order: int, n: int) -> None:
        for _ in range(n):
            if self._alloc(0, order) is None:
                break


TestFastVsChainFull = FastVsChainFull.TestCase
TestFastVsChainStandalone = FastVsChainStandalone.TestCase


def _lockstep_script(fast: pglist_data, traced: pglist_data, seed: int, steps: int,
                     gfps: list[int]) -> collections.Counter[str]:
    """A long seeded run of the same kinds of steps as the state machines, with phases of
    memory pressure (allocate until failures) and release, so that watermarks fail,
    fallback stealing boosts watermarks, highatomic pageblocks appear and per-cpu lists
    drain. Outcomes are compared at every step, the whole state every 64 steps and at the
    end. Returns how often each kind of step ran."""
    rng = random.Random(seed)
    live: list[tuple[int, int]] = []
    freed: list[tuple[int, int]] = []
    ran: collections.Counter[str] = collections.Counter()
    top = fast.max_order

    def both(fn: object, *args: object) -> tuple[str, object]:
        return on_both(fast, traced, fn, *args, where=f"step {ran.total()}: ")

    def free(pfn: int, order: int) -> str:
        return free_on_both(fast, traced, pfn, order, where=f"step {ran.total()}: ")[0]

    pressure = False
    for step in range(steps):
        if step % 500 == 0:
            pressure = not pressure
        roll = rng.random()
        if roll < (0.7 if pressure else 0.3) or not live:
            order = rng.choice((0, 0, 0, 0, 1, 1, 2, 3, rng.randrange(top + 1)))
            _, pfn = both(alloc_pages, rng.choice(gfps), order)
            ran["alloc" if pfn is not None else "alloc failed"] += 1
            if isinstance(pfn, int):
                live.append((pfn, order))
        elif roll < 0.85:
            pfn, order = live.pop(rng.randrange(len(live)))
            if free(pfn, order) == "raised":
                clear_block_flags((fast, traced), pfn, order)
                assert free(pfn, order) == "returned"
                ran["refused free"] += 1
            ran["free"] += 1
            freed.append((pfn, order))
        elif roll < 0.89:
            i = rng.randrange(len(live))
            pfn, order = live[i]
            fp, tp = pfn_to_page(fast, pfn), pfn_to_page(traced, pfn)
            get_page(fp)
            get_page(tp)
            if free(pfn, order) == "raised":
                fp._refcount -= 1
                tp._refcount -= 1
            elif fp._refcount == 0:
                live.pop(i)
            elif not fp.flags & PageFlags.PG_head:
                live[i] = (pfn, 0)
            ran["extra reference"] += 1
        elif roll < 0.93:
            pfn, order = rng.choice(live)
            at = pfn + rng.randrange(1 << order)
            flag = rng.choice((PageFlags.PG_dirty, PageFlags.PG_referenced,
                               PageFlags.PG_active, PageFlags.PG_locked))
            for pgdat in (fast, traced):
                pfn_to_page(pgdat, at).flags |= int(flag)
            ran["flag"] += 1
        elif roll < 0.96:
            pfn, order = rng.choice(live)
            at = pfn + rng.randrange(1 << order)
            for pgdat in (fast, traced):
                pgdat.page_data[at] = bytearray([step % 255 + 1]) * 4096
            ran["write"] += 1
        elif roll < 0.97:
            pfn, _ = rng.choice(live)  # page->private in use while allocated (a cookie)
            for pgdat in (fast, traced):
                pfn_to_page(pgdat, pfn).private = step
            ran["private"] += 1
        elif roll < 0.99 and freed:
            pfn, order = rng.choice(freed)
            if not any(p <= pfn < p + (1 << o) for p, o in live):
                assert free(pfn, order) == "raised"
                ran["double free"] += 1
        else:
            drain_all_pages(fast)
            drain_all_pages(traced)
            ran["drain"] += 1
        if step % 64 == 0:
            assert allocator_state(fast) == allocator_state(traced), f"after step {step}"
    assert allocator_state(fast) == allocator_state(traced)
    return ran


def test_lockstep_through_fragmentation_and_a_boosted_watermark(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Fill the zones with movable pages and free every other one: only order-0 blocks are
    # left, so unmovable requests steal them one at a time (__rmqueue_fallback below a
    # pageblock), which boosts the watermark (boost_watermark; rmqueue clears
    # ZONE_BOOSTED_WATERMARK again and wakes kswapd before it returns). Allocations after
    # that must meet the boosted mark on both paths alike.
    served = _served(monkeypatch)
    pair = []
    for fast in (True, False):
        m = Machine(MachineConfig(memory=64 * MiB, kernel_image=8 * MiB, pcp=False))
        m.pgdat.hooks.out_of_memory = None
        m.pgdat.fast_paths = fast
        pair.append(m.pgdat)
    fast_pgdat, traced = pair
    quiet = G.__GFP_NOWARN | G.__GFP_NORETRY

    def both(gfp: int, order: int) -> int | None:
        _, pfn = on_both(fast_pgdat, traced, alloc_pages, gfp, order)
        return pfn if isinstance(pfn, int) else None

    movable = []
    while (pfn := both(G.GFP_HIGHUSER_MOVABLE | quiet, 0)) is not None:
        movable.append(pfn)
    for pfn in movable[::2]:
        for pgdat in pair:
            free_block(pgdat, pfn_to_page(pgdat, pfn), 0)
    assert allocator_state(fast_pgdat) == allocator_state(traced)
    declined = served["alloc declined"]
    for i in range(3000):
        if both((G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE)[i % 2] | quiet, 0) is None:
            break
        if i % 50 == 0:
            assert allocator_state(fast_pgdat) == allocator_state(traced)
    assert allocator_state(fast_pgdat) == allocator_state(traced)
    assert any(z.watermark_boost for z in fast_pgdat.node_zones), "no watermark was boosted"
    assert fast_pgdat.kswapd_woken
    # both paths ran: stealing is the traced chain's, the rest the fast path's
    assert served["alloc served"] > 100 and served["alloc declined"] > declined, served


def _served(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Count what the fast paths serve and what they hand to the traced chain."""
    counts: collections.Counter[str] = collections.Counter()
    alloc, free = page_alloc_fast.alloc_fast, page_alloc_fast.free_fast

    def alloc_spy(pgdat: pglist_data, gfp: int, order: int) -> Page | None:
        page = alloc(pgdat, gfp, order)
        counts["alloc served" if page is not None else "alloc declined"] += 1
        return page

    def free_spy(pgdat: pglist_data, page: Page, order: int) -> bool:
        done = free(pgdat, page, order)
        counts["free served" if done else "free declined"] += 1
        return done

    monkeypatch.setattr(page_alloc, "alloc_fast", alloc_spy)
    monkeypatch.setattr(page_alloc, "free_fast", free_spy)
    return counts


@pytest.mark.parametrize(("mem", "pcp"), [(40, True), (40, False), (256, True)])
def test_long_lockstep_runs_on_full_machines(monkeypatch: pytest.MonkeyPatch, mem: int,
                                             pcp: bool) -> None:
    served = _served(monkeypatch)
    pair = []
    for fast in (True, False):
        m = Machine(MachineConfig(memory=mem * MiB, kernel_image=8 * MiB, pcp=pcp))
        m.pgdat.hooks.out_of_memory = None
        m.pgdat.fast_paths = fast
        pair.append(m.pgdat)
    ran = _lockstep_script(pair[0], pair[1], mem + pcp, 6000, GFPS)
    # the run went where it should: failures under pressure, both sides of the hand-over
    assert ran["refused free"] and ran["double free"] and (ran["alloc failed"] or mem > 40), ran
    assert served["alloc served"] > 500 and served["alloc declined"] > 20, served
    assert served["free served"] > 500 and served["free declined"] > 20, served
    zones = pair[0].node_zones
    if mem == 40:  # pressure stole pageblocks across migratetypes
        assert any(z.pageblock_mt for z in zones)


@pytest.mark.parametrize(("n", "max_order"), [(5000, 11), (700, 4), (4096, 16), (97, 2)])
def test_long_lockstep_runs_on_standalone_buddies(monkeypatch: pytest.MonkeyPatch, n: int,
                                                  max_order: int) -> None:
    served = _served(monkeypatch)
    pair = [StandaloneBuddy(BuddyConfig(n, max_order=max_order)).pgdat for _ in range(2)]
    pair[1].fast_paths = False
    ran = _lockstep_script(pair[0], pair[1], n, 4000, [0])
    assert ran["alloc failed"] and ran["double free"], ran
    assert served["alloc served"] > 500 and served["free served"] > 500, served


def _mixed_workload(pgdat: pglist_data, steps: int) -> None:
    live: list[tuple[Page, int]] = []
    for i in range(steps):
        if live and i % 3 == 2:
            page, order = live.pop((i * 7) % len(live))
            free_block(pgdat, page, order)
        else:
            order = (0, 0, 0, 1, 2, 3)[i % 6]
            new = alloc_pages(pgdat, G.GFP_KERNEL, order)
            assert new is not None
            live.append((new, order))


def test_the_fast_path_serves_the_common_case(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a tracer, most allocations and frees of a plain mixed workload never reach
    # the traced chain (a cold per-cpu list, a per-cpu drain and the first use of a mask
    # do); with pgdat.fast_paths off, all of them do.
    counts = {"get_page_from_freelist": 0, "free_the_page": 0}
    for name in counts:
        real = getattr(page_alloc, name)

        def spy(*args: object, _real: object = real, _name: str = name) -> object:
            counts[_name] += 1
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(page_alloc, name, spy)
    m = Machine(MachineConfig(memory=256 * MiB))
    _mixed_workload(m.pgdat, 3000)
    assert counts["get_page_from_freelist"] < 200 and counts["free_the_page"] < 100, counts
    counts.update(dict.fromkeys(counts, 0))
    m.pgdat.fast_paths = False
    _mixed_workload(m.pgdat, 3000)
    assert counts == {"get_page_from_freelist": 2000, "free_the_page": 1000}


def test_a_tracer_sees_the_whole_chain_with_fast_paths_on() -> None:
    # the fast path stands aside while a tracer runs, so the trace shows 5.10's chain
    m = Machine(MachineConfig(memory=256 * MiB))
    assert m.pgdat.fast_paths
    m.alloc_pages(G.GFP_KERNEL, 0)  # the mask's context, and a warm per-cpu list
    with Tracer() as t:
        page = m.alloc_pages(G.GFP_KERNEL, 0)
        assert page is not None
        m.free_pages(page.pfn, 0)
    names = [n for r in t.roots for n in r.names()]
    for name in ("__alloc_pages_nodemask", "get_page_from_freelist", "rmqueue_pcplist",
                 "prep_new_page", "__free_pages", "free_unref_page_commit"):
        assert name in names
