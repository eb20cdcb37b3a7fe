"""5.10's OOM killer: oom_badness arithmetic, oom_score_adj, the tie rule, the kill
(SIGKILL, mark_oom_victim, the reaper), the allocator's side of being a victim, and whole
runs out of memory on a small machine."""

from __future__ import annotations

import dataclasses

import pytest

from refmodel.arch.x86.fault import SI_KERNEL, SIGKILL, SigInfo
from refmodel.arch.x86.pgtable import pte_pfn
from refmodel.bugs import KernelBug, KernelPanic
from refmodel.config import MachineConfig, MiB
from refmodel.errno import Errno
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.memory import MM_ANONPAGES, MM_SWAPENTS
from refmodel.mm.mm_types import (
    MMF_OOM_REAP_QUEUED,
    MMF_OOM_SKIP,
    MMF_OOM_VICTIM,
    MMF_UNSTABLE,
    mm_struct,
)
from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from refmodel.mm.oom_kill import (
    LONG_MIN,
    oom_badness,
    oom_control,
    out_of_memory,
    select_bad_process,
)
from refmodel.mm.page_alloc import (
    ALLOC_HARDER,
    ALLOC_OOM,
    ALLOC_WMARK_MIN,
    __zone_watermark_ok,
)
from refmodel.scenarios import OOM_DEMO_CONFIG, trace_scenario
from refmodel.specs.buddy import check_buddy
from refmodel.specs.call_chains import OOM_KILL, OOM_SELECT, SEED_CLAIMS
from refmodel.specs.oom import check_oom, no_killed_task_survives
from refmodel.task import Task
from refmodel.trace import CallNode, Tracer, lookup
from tests.fault_helpers import assert_invariants, pte_of

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096


def _task(m: Machine, rss: int, swap: int = 0, pgtables: int = 0, adj: int = 0) -> Task:
    t = m.spawn("t")
    assert t.mm is not None
    t.mm.rss_stat[MM_ANONPAGES] += rss
    t.mm.rss_stat[MM_SWAPENTS] += swap
    t.mm.pgtables_bytes = pgtables
    assert m.set_oom_score_adj(t, adj) == 0
    return t


def test_oom_badness_counts_rss_swap_and_page_table_pages_then_scales_adj() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")  # pid 1: unkillable
    t = _task(m, rss=1000, swap=30, pgtables=3 * 4096 + 100, adj=0)
    assert oom_badness(t, 16384) == 1000 + 30 + 3
    m.set_oom_score_adj(t, 500)
    assert oom_badness(t, 16384) == 1033 + 500 * 16  # 16384 // 1000 = 16, divided first
    m.set_oom_score_adj(t, -1)
    assert oom_badness(t, 1999) == 1033 - 1  # 1999 // 1000 = 1
    m.set_oom_score_adj(t, -1000)
    assert oom_badness(t, 16384) == LONG_MIN


def test_oom_score_adj_is_range_checked_and_inherited_by_fork() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    t = m.spawn("a")
    assert m.set_oom_score_adj(t, 1001) == -22 and t.oom_score_adj == 0
    assert m.set_oom_score_adj(t, -1000) == 0
    child = m.fork(t)
    assert isinstance(child, Task) and child.oom_score_adj == -1000


def test_the_highest_badness_wins_and_the_later_task_wins_a_tie() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    init = _task(m, rss=10_000)  # pid 1: never chosen, however big
    a = _task(m, rss=500)
    b = _task(m, rss=800)
    c = _task(m, rss=800)
    _task(m, rss=5000, adj=-1000)  # unkillable by oom_score_adj
    oc = oom_control(totalpages=16384)
    assert select_bad_process(oc, m.tasks.values()) is c and oc.chosen_points == 800
    assert init.pid == 1 and a.pid < b.pid < c.pid


def test_nothing_killable_chooses_nobody() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    _task(m, rss=100)
    _task(m, rss=100, adj=-1000)
    oc = oom_control(totalpages=16384)
    assert select_bad_process(oc, m.tasks.values()) is None


# --------------------------------------------------------------------------------------------
# Helpers for the kill path


def _mmf(mm: mm_struct) -> set[str]:
    names = {MMF_OOM_SKIP: "MMF_OOM_SKIP", MMF_UNSTABLE: "MMF_UNSTABLE",
             MMF_OOM_VICTIM: "MMF_OOM_VICTIM", MMF_OOM_REAP_QUEUED: "MMF_OOM_REAP_QUEUED"}
    return {name for bit, name in names.items() if mm.flags >> bit & 1}


def _oom(m: Machine, gfp_mask: int = G.GFP_KERNEL) -> bool:
    """out_of_memory as the allocator's slow path reaches it (no task current)."""
    hook = m.pgdat.hooks.out_of_memory
    assert hook is not None
    return hook(gfp_mask, 0)


def _toucher(m: Machine, comm: str, pages: int, adj: int = 0) -> tuple[Task, int]:
    """A task with ``pages`` anonymous pages really mapped (and 3 page-table pages)."""
    t = m.spawn(comm)
    assert t.mm is not None and m.set_oom_score_adj(t, adj) == 0
    a = m.mmap(t.mm, 0, max(pages, 1) * PAGE, RW, ANON)
    if pages:
        assert m.write(t, a, bytes(pages * PAGE)) == pages * PAGE
    return t, a


def _victim(m: Machine) -> Task | None:
    """The task the last out_of_memory chose."""
    assert m.last_oom is not None
    return m.last_oom.chosen


def _killed(t: Task) -> bool:
    return t.sigkill_pending


def _gone(m: Machine, t: Task) -> bool:
    """The task has exited and left the task list."""
    return t.pid not in m.tasks and t.mm is None


def _starts_chain(node: CallNode, names: list[str]) -> bool:
    if node.name != names[0]:
        return False
    return len(names) == 1 or any(_starts_chain(c, names[1:]) for c in node.children)


def _has_chain(node: CallNode, names: list[str]) -> bool:
    return _starts_chain(node, names) or any(_has_chain(c, names) for c in node.children)


# --------------------------------------------------------------------------------------------
# Whom out_of_memory kills


def test_out_of_memory_kills_the_highest_rss_plus_swap_plus_page_table_pages() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")
    a = _task(m, rss=100, swap=50)  # 150
    b = _task(m, rss=140, pgtables=5 * PAGE + 4095)  # 145: bytes / PAGE_SIZE, rounded down
    c = _task(m, rss=149)  # 149
    assert _oom(m) is True
    oc = m.last_oom
    assert oc is not None and oc.chosen is a and oc.chosen_points == 150
    assert oc.totalpages == m.pgdat.totalram_pages + m.pgdat.total_swap_pages
    assert [p.points for p in oc.candidates] == [LONG_MIN, 150, 145, 149]
    assert a.sigkill_pending and a.oom_mm is a.mm and a.mm is not None
    assert _mmf(a.mm) == {"MMF_OOM_VICTIM", "MMF_OOM_REAP_QUEUED", "MMF_UNSTABLE",
                          "MMF_OOM_SKIP"}
    assert not b.sigkill_pending and not c.sigkill_pending and b.oom_mm is None
    assert check_oom(oc) == []


def test_oom_score_adj_adds_adj_times_totalpages_per_mille() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")
    per_mille = m.pgdat.totalram_pages // 1000  # no swap
    assert per_mille > 1
    _task(m, rss=1000)
    adj = 1000 // per_mille + 1
    small = _task(m, rss=10, adj=adj)
    assert _oom(m) and m.last_oom is not None
    assert m.last_oom.chosen is small and m.last_oom.chosen_points == 10 + adj * per_mille
    assert check_oom(m.last_oom) == []


def test_equal_badness_goes_to_the_later_task_in_pid_order() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")
    first = _task(m, rss=298, pgtables=2 * PAGE)  # 300
    second = _task(m, rss=0, swap=300)  # 300 as well: the later pid wins (points < chosen only)
    _task(m, rss=299)
    assert _oom(m) and m.last_oom is not None and m.last_oom.chosen is second
    assert not first.sigkill_pending and second.sigkill_pending


def test_init_kernel_threads_and_oom_score_adj_min_are_never_chosen() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    init = _task(m, rss=10_000)
    kworker = Task(m.next_pid, "kworker", m.new_mm(), kthread=True)  # kthread_use_mm
    assert kworker.mm is not None
    kworker.mm.rss_stat[MM_ANONPAGES] = 9000
    m.tasks[kworker.pid] = kworker
    m.next_pid += 1
    shielded = _task(m, rss=8000, adj=-1000)
    small = _task(m, rss=1)
    assert _oom(m) and m.last_oom is not None and m.last_oom.chosen is small
    assert not any(t.sigkill_pending for t in (init, kworker, shielded))
    assert check_oom(m.last_oom) == []


def test_nothing_killable_panics_system_is_deadlocked_on_memory() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    _task(m, rss=100)  # init
    _task(m, rss=100, adj=-1000)
    with pytest.raises(KernelPanic, match="System is deadlocked on memory") as e:
        _oom(m)
    assert isinstance(e.value, KernelBug) and e.value.check == "panic"
    assert m.last_oom is not None and m.last_oom.chosen is None and not m.last_oom.aborted
    assert check_oom(m.last_oom) == []


def test_a_victim_not_yet_reaped_aborts_the_scan_and_a_reaped_one_is_skipped() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")
    victim = _task(m, rss=500)
    other = _task(m, rss=100)
    assert victim.mm is not None
    victim.oom_mm = victim.mm  # signal->oom_mm: marked, its reaper not done
    assert _oom(m) is True  # 5.10: chosen = -1, "progress", nobody new killed
    assert m.last_oom is not None and m.last_oom.aborted and m.last_oom.chosen is None
    assert not other.sigkill_pending and check_oom(m.last_oom) == []
    victim.mm.flags |= 1 << MMF_OOM_SKIP  # reaped: no longer in the way
    assert _oom(m) and _victim(m) is other and _killed(other)
    assert check_oom(m.last_oom) == []


def test_a_gfp_nofs_allocation_gets_progress_but_no_kill() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")
    t = _task(m, rss=100)
    last = m.last_oom
    assert _oom(m, G.GFP_NOFS) is True
    assert not t.sigkill_pending and m.last_oom is not last
    assert m.last_oom is not None and m.last_oom.candidates == []


def test_a_dying_current_is_only_marked_and_reaped() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")
    dying, _ = _toucher(m, "dying", 4)
    other, b = _toucher(m, "other", 10)
    dying.sigkill_pending = True  # as if it had been killed
    oc = oom_control(gfp_mask=G.GFP_KERNEL)
    assert out_of_memory(m.pgdat, oc, dying, m.tasks.values()) is True
    assert oc.candidates == [] and oc.chosen is None  # no scan at all
    assert dying.mm is not None and dying.oom_mm is dying.mm
    assert dying.mm.rss_stat[MM_ANONPAGES] == 0  # reaped at once
    assert not other.sigkill_pending
    assert m.read(other, b, 1) == b"\0"  # any operation: the dying task exits after it
    assert _gone(m, dying)
    assert no_killed_task_survives(m.tasks.values()) == []
    assert_invariants(m)


def test_other_users_of_the_victims_mm_die_too_and_init_pins_an_mm() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")
    victim, a = _toucher(m, "victim", 20)
    assert victim.mm is not None
    sharer = Task(m.next_pid, "sharer", victim.mm)  # a CLONE_VM process
    victim.mm.mm_users += 1
    m.tasks[sharer.pid] = sharer
    m.next_pid += 1
    assert _oom(m) and m.last_oom is not None
    assert m.last_oom.chosen is sharer  # the same mm, the same points: the later pid
    assert sharer.sigkill_pending and victim.sigkill_pending  # the other user is killed too
    assert victim.oom_mm is None  # but only the chosen one is a victim (ALLOC_OOM)
    assert victim.mm.rss_stat[MM_ANONPAGES] == 0  # reaped
    assert isinstance(m.read(m.tasks[1], 0x1000, 1), SigInfo)  # an operation ends: both exit
    assert _gone(m, victim) and _gone(m, sharer)
    assert_invariants(m)

    m = Machine(MachineConfig(memory=64 * MiB))
    init, a = _toucher(m, "init", 20)
    assert init.mm is not None
    thread = Task(m.next_pid, "thread", init.mm)  # shares init's mm
    init.mm.mm_users += 1
    m.tasks[thread.pid] = thread
    m.next_pid += 1
    assert _oom(m) and m.last_oom is not None and m.last_oom.chosen is thread
    assert not init.sigkill_pending  # init is never killed ...
    assert _mmf(init.mm) == {"MMF_OOM_VICTIM", "MMF_OOM_SKIP"}  # ... and pins the mm: no reap
    assert init.mm.rss_stat[MM_ANONPAGES] == 20
    assert m.read(init, a, 1) == b"\0"
    assert thread.pid not in m.tasks and init.mm.mm_users == 1
    assert_invariants(m)


def test_specs_oom_catch_a_wrong_victim_an_unkillable_one_and_wrong_points() -> None:
    from refmodel.specs.oom import (
        points_are_oom_badness,
        unkillable_task_never_chosen,
        victim_has_the_highest_badness,
    )

    m = Machine(MachineConfig(memory=64 * MiB))
    init = _task(m, rss=5000)
    low = _task(m, rss=10)
    high = _task(m, rss=20)
    assert _oom(m) and m.last_oom is not None and m.last_oom.chosen is high
    oc = m.last_oom
    assert check_oom(oc) == []
    oc.chosen = low  # not the highest badness
    v = victim_has_the_highest_badness(oc)
    assert len(v) == 1 and "pid 3 (t) has 20" in v[0].message
    oc.chosen = init  # unkillable
    assert [x.invariant for x in unkillable_task_never_chosen(oc)] == [
        "unkillable_task_never_chosen"]
    assert "it is init" in unkillable_task_never_chosen(oc)[0].message
    oc.chosen = high
    oc.candidates[2] = dataclasses.replace(oc.candidates[2], points=99)
    assert [x.message for x in points_are_oom_badness(oc)] == [
        "pid 3 (t) scored 99, 5.10's oom_badness gives 20"]


# --------------------------------------------------------------------------------------------
# The allocator's side: ALLOC_OOM for a victim, half the min watermark, no endless loop


def test_zone_watermark_ok_halves_min_for_alloc_oom_and_takes_a_quarter_for_harder() -> None:
    m = Machine(MachineConfig(memory=64 * MiB))
    zone = m.pgdat.node_zones[1]
    idx = zone.zone_idx
    assert zone.nr_reserved_highatomic == 0 and zone.lowmem_reserve[idx] == 0
    assert not __zone_watermark_ok(zone, 0, 100, idx, ALLOC_WMARK_MIN, 100)
    assert __zone_watermark_ok(zone, 0, 100, idx, ALLOC_WMARK_MIN | ALLOC_HARDER, 76)
    assert not __zone_watermark_ok(zone, 0, 100, idx, ALLOC_WMARK_MIN | ALLOC_HARDER, 75)
    assert __zone_watermark_ok(zone, 0, 100, idx, ALLOC_WMARK_MIN | ALLOC_OOM, 51)
    assert not __zone_watermark_ok(zone, 0, 100, idx, ALLOC_WMARK_MIN | ALLOC_OOM, 50)


def test_an_oom_victim_allocates_below_min_with_alloc_oom_then_fails_instead_of_looping(
) -> None:
    from refmodel.mm.page_alloc import ALLOC_NO_WATERMARKS, __gfp_pfmemalloc_flags

    m = Machine(MachineConfig(memory=64 * MiB))
    pgdat = m.pgdat
    assert __gfp_pfmemalloc_flags(pgdat, G.GFP_KERNEL) == 0
    while m.alloc_pages(G.GFP_NOWAIT | G.__GFP_NOWARN, 0) is not None:
        pass  # down to the min watermark
    pgdat.hooks.tsk_is_oom_victim = lambda: True  # current is an OOM victim
    assert __gfp_pfmemalloc_flags(pgdat, G.GFP_KERNEL) == ALLOC_OOM
    assert __gfp_pfmemalloc_flags(pgdat, G.GFP_KERNEL | G.__GFP_NOMEMALLOC) == 0
    assert __gfp_pfmemalloc_flags(pgdat, G.GFP_KERNEL | G.__GFP_MEMALLOC) == ALLOC_NO_WATERMARKS
    with Tracer() as tr:
        page = m.alloc_pages(G.GFP_KERNEL, 0)
    assert page is not None
    slow = tr.roots[0].find("__alloc_pages_slowpath")
    assert slow is not None
    got = [n for n in slow.children
           if n.name == "get_page_from_freelist" and n.result not in (None, "None")]
    assert got and got[0].args["alloc_flags"] == "ALLOC_WMARK_MIN|ALLOC_OOM"
    ooms: list[int] = []

    def fake_oom(gfp_mask: int, order: int) -> bool:  # "progress", as a victim in flight
        ooms.append(order)
        return True

    pgdat.hooks.out_of_memory = fake_oom
    failures = pgdat.alloc_failures
    for _ in range(10_000):
        if m.alloc_pages(G.GFP_KERNEL, 0) is None:
            break
    else:
        raise AssertionError("the victim's allocations never failed")
    # it had ALLOC_OOM and out_of_memory reported progress: nopage, not another retry
    assert pgdat.alloc_failures == failures + 1 and ooms == [0]


# --------------------------------------------------------------------------------------------
# Whole runs out of memory on a small machine (about 1160 usable pages, no swap)


def test_running_out_of_memory_kills_the_biggest_task_and_the_fault_succeeds() -> None:
    m = Machine(OOM_DEMO_CONFIG)
    m.spawn("init")
    hog, a = _toucher(m, "hog", 600)
    hog_pfns = {pte_pfn(pte_of(m, hog, a + i * PAGE)) for i in range(600)}
    grow = m.spawn("grow")
    assert grow.mm is not None
    m.mmap(grow.mm, 0, 4 * MiB, RW, ANON)
    b = m.mmap(grow.mm, 0, 4 * MiB, RW, ANON)
    n = 0
    while m.last_oom is None:
        assert m.write(grow, b + n * PAGE, b"g") == 1  # every write succeeds, the last too
        n += 1
        assert n < 2048
    oc = m.last_oom
    assert oc.chosen is hog and check_oom(oc) == []
    assert _gone(m, hog)  # the victim is gone
    assert grow.pid in m.tasks and not grow.sigkill_pending
    last = b + (n - 1) * PAGE
    assert m.read(grow, last, 1) == b"g"
    # every page the hog had is free again, but the one the faulting write got
    assert hog_pfns & set(m.pgdat.allocated) <= {pte_pfn(pte_of(m, grow, last))}
    assert no_killed_task_survives(m.tasks.values()) == []
    assert_invariants(m)


def test_the_allocating_task_itself_is_killed_when_it_is_the_biggest() -> None:
    from refmodel.mm.vm_fault import VM_FAULT_SIGBUS

    def build() -> tuple[Machine, Task, Task, int, int]:
        m = Machine(OOM_DEMO_CONFIG)
        m.spawn("init")
        small, a = _toucher(m, "small", 8)
        grow = m.spawn("grow")
        assert grow.mm is not None
        m.mmap(grow.mm, 0, 4 * MiB, RW, ANON)
        return m, small, grow, a, m.mmap(grow.mm, 0, 4 * MiB, RW, ANON)

    m, small, grow, a, b = build()
    n = 0
    while m.write(grow, b + n * PAGE, b"g") == 1:
        n += 1
        assert n < 2048
    m, small, grow, a, b = build()  # deterministic: again, tracing the last write only
    for i in range(n):
        assert m.write(grow, b + i * PAGE, b"g") == 1
    with Tracer() as tr:
        r = m.write(grow, b + n * PAGE, b"g")
    assert r == SigInfo(SIGKILL, SI_KERNEL, 0)
    assert m.last_oom is not None and m.last_oom.chosen is grow
    assert grow.pid not in m.tasks and small.pid in m.tasks
    assert m.read(small, a, 1) == b"\0"
    # the reaped mm got no new page: do_anonymous_page's check_stable_address_space
    check = tr.roots[0].find("check_stable_address_space")
    assert check is not None and check.result == str(VM_FAULT_SIGBUS)
    assert check_oom(m.last_oom) == []
    assert_invariants(m)


# --------------------------------------------------------------------------------------------
# The traced chain, and errata row 35


@pytest.fixture(scope="module")
def oom_trace() -> list[CallNode]:
    return trace_scenario("oom").roots


def test_oom_trace_is_slowpath_may_oom_out_of_memory_select_then_kill(
        oom_trace: list[CallNode]) -> None:
    fault = oom_trace[0]
    for chain in (OOM_SELECT, OOM_KILL):
        assert _has_chain(fault, [name for name, _ in chain]), chain
        for name, file in chain:
            kf = lookup(name)
            assert kf is not None and kf.file == file, (name, kf)
    oom = fault.find("out_of_memory")
    assert oom is not None
    kids = [c.name for c in oom.children]
    assert kids.index("select_bad_process") < kids.index("oom_kill_process")
    # the victim exits once the operation is over
    assert [r.name for r in oom_trace[1:]] == ["do_exit", "release_task"]


def test_errata_35_out_of_memory_selects_and_oom_kill_process_only_kills(
        oom_trace: list[CallNode]) -> None:
    """The seed: "`oom_kill_process()`：选择需要终止的进程。" and
    "调用 `select_bad_process()` 选择最适合的进程进行杀死，以释放内存。". 5.10: out_of_memory
    calls select_bad_process, then oom_kill_process(oc, message) kills oc->chosen;
    oom_kill_process selects nothing."""
    oom = oom_trace[0].find("out_of_memory")
    assert oom is not None
    assert oom.path_to("select_bad_process") == ["out_of_memory", "select_bad_process"]
    assert oom.path_to("__oom_kill_process") == [
        "out_of_memory", "oom_kill_process", "__oom_kill_process"]
    kill = oom.find("oom_kill_process")
    assert kill is not None and kill.find("select_bad_process") is None
    claimed = SEED_CLAIMS["oom"]
    assert not _has_chain(oom_trace[0], list(claimed))


def test_a_parent_killed_after_its_mm_was_copied_gets_eintr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_process (kernel/fork.c, "let kill terminate clone/fork in the middle"): a
    fatal signal that arrives once copy_mm has succeeded cancels the fork with -EINTR; the
    copied mm is dropped (bad_fork_cleanup_mm) and the parent then dies."""
    import refmodel.machine as machine_mod
    from refmodel.kernel.fork import dup_mm as real_dup_mm

    m = Machine(MachineConfig(memory=64 * MiB))
    parent = m.spawn()
    assert parent.mm is not None
    a = m.mmap(parent.mm, 0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(16):
        m.write(parent, a + i * 4096, b"p")
    baseline = set(m.pgdat.allocated)

    def dup_mm_then_killed(mm: mm_struct) -> mm_struct | None:
        child_mm = real_dup_mm(mm)
        parent.sigkill_pending = True  # as mark_oom_victim + do_send_sig_info would
        return child_mm

    monkeypatch.setattr(machine_mod, "dup_mm", dup_mm_then_killed)
    pids = set(m.tasks)
    assert m.fork(parent) == -int(Errno.EINTR)
    assert set(m.tasks) == pids - {parent.pid}  # no child; the parent exited (do_exit)
    # the child's copy went with mmput: nothing of it is left allocated
    assert set(m.pgdat.allocated) <= baseline and check_buddy(m.pgdat) == []


def test_a_task_killed_while_spawn_allocates_exits_when_spawn_returns() -> None:
    # The fuzz profile's counterexample: spawn's pgd allocation ran the OOM killer outside
    # the operation bracket, so its victim was still alive after the operation.
    m = Machine(MachineConfig(memory=48 * MiB))
    m.spawn()  # pid 1, never killed
    t, _ = _toucher(m, "hog", 3000)
    while m.alloc_pages(G.GFP_KERNEL | G.__GFP_NORETRY, 0) is not None:
        pass  # down to the min watermark, without an OOM kill
    assert not t.sigkill_pending and t.pid in m.tasks
    new = m.spawn("late")
    assert new.mm is not None
    assert t.pid not in m.tasks and t.mm is None  # killed for the pgd, and gone
    assert no_killed_task_survives(m.tasks.values()) == []


def _every(root: CallNode, name: str) -> list[CallNode]:
    out = [root] if root.name == name else []
    for c in root.children:
        out.extend(_every(c, name))
    return out


def test_oom_badness_asks_find_lock_task_mm_and_mm_pgtables_bytes(
        oom_trace: list[CallNode]) -> None:
    """5.10's oom_badness takes the task's mm through find_lock_task_mm (after
    oom_unkillable_task) and reads the page-table bytes with mm_pgtables_bytes."""
    scored = [n for r in oom_trace for n in _every(r, "oom_badness")]
    assert scored
    for n in scored:
        kids = [c.name for c in n.children]
        assert kids[:2] == ["oom_unkillable_task", "find_lock_task_mm"]
    counted = [n for n in scored if "mm_pgtables_bytes" in [c.name for c in n.children]]
    assert counted  # the hog: its points are RSS + swap entries + page-table pages
    kids = [c.name for c in counted[0].children]
    assert kids[-3:] == ["get_mm_rss", "get_mm_counter", "mm_pgtables_bytes"]


def test_constrained_alloc_asks_gfp_zone_first(oom_trace: list[CallNode]) -> None:
    """5.10's constrained_alloc starts with gfp_zone(oc->gfp_mask)."""
    ca = [n for r in oom_trace for n in _every(r, "constrained_alloc")]
    assert ca and all([c.name for c in n.children][:1] == ["gfp_zone"] for n in ca)


def test_oom_badness_of_a_task_without_an_mm_is_long_min() -> None:
    """find_lock_task_mm finds no mm: LONG_MIN, before oom_score_adj is looked at."""
    m = Machine(MachineConfig(memory=64 * MiB))
    m.spawn("init")  # pid 1 is unkillable
    t = _task(m, rss=4)
    t.mm = None
    with Tracer() as tr:
        assert oom_badness(t, 1000) == LONG_MIN
    assert [c.name for c in tr.roots[0].children] == ["oom_unkillable_task",
                                                      "find_lock_task_mm"]
