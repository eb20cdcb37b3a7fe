"""Choosing the OOM victim (mm/oom_kill.c, 5.10): oom_badness and select_bad_process.

The arithmetic and the tie rule are 5.10's. Killing is done by the caller (Machine.exit
releases the victim's memory as exit and the OOM reaper would); wiring this into the
allocator's slow path (``__alloc_pages_may_oom`` → ``out_of_memory``) together with reclaim
is still to come, so the allocator's OOM hook is not set yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from refmodel.mm.memory import MM_SWAPENTS, get_mm_counter, get_mm_rss
from refmodel.task import Task
from refmodel.trace import kernel

F = "mm/oom_kill.c"
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
LONG_MIN = -(1 << 63)
PAGE_SIZE = 4096


@dataclass(slots=True)
class oom_control:
    """struct oom_control: what out_of_memory works with."""

    totalpages: int
    gfp_mask: int = 0
    order: int = 0
    chosen: Task | None = None
    chosen_points: int = LONG_MIN


@kernel(F)
def oom_unkillable_task(p: Task) -> bool:
    """Models mm/oom_kill.c:oom_unkillable_task: init and kernel threads."""
    return p.pid == 1 or p.kthread


@kernel(F)
def oom_badness(p: Task, totalpages: int) -> int:
    """Models mm/oom_kill.c:oom_badness (5.10): RSS + swap entries + page-table pages, then
    oom_score_adj scaled by totalpages / 1000 (the division first, in integers). LONG_MIN
    for a task that must not be chosen."""
    if oom_unkillable_task(p) or p.mm is None:
        return LONG_MIN
    adj = p.oom_score_adj
    if adj == OOM_SCORE_ADJ_MIN:
        return LONG_MIN
    mm = p.mm
    points = get_mm_rss(mm) + get_mm_counter(mm, MM_SWAPENTS) + mm.pgtables_bytes // PAGE_SIZE
    adj *= totalpages // 1000
    return points + adj


@kernel(F)
def oom_evaluate_task(task: Task, oc: oom_control) -> bool:
    """Models mm/oom_kill.c:oom_evaluate_task: a task at least as bad as the one chosen so
    far replaces it, so among equals the last one in the task list wins. Returns True to
    stop the scan (never, without OOM victims still exiting)."""
    if oom_unkillable_task(task):
        return False
    points = oom_badness(task, oc.totalpages)
    if points == LONG_MIN or points < oc.chosen_points:
        return False
    oc.chosen = task
    oc.chosen_points = points
    return False


@kernel(F)
def select_bad_process(oc: oom_control, tasks: Iterable[Task]) -> Task | None:
    """Models mm/oom_kill.c:select_bad_process (no memcg): for_each_process in creation
    order, which the model's pid order is."""
    oc.chosen_points = LONG_MIN
    for p in sorted(tasks, key=lambda t: t.pid):
        if oom_evaluate_task(p, oc):
            break
    return oc.chosen
