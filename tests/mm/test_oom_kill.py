"""5.10's OOM victim choice: oom_badness arithmetic, oom_score_adj, the tie rule."""

from __future__ import annotations

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.memory import MM_ANONPAGES, MM_SWAPENTS
from refmodel.mm.oom_kill import (
    LONG_MIN,
    oom_badness,
    oom_control,
    select_bad_process,
)
from refmodel.task import Task


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
