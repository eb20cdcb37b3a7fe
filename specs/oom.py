"""The OOM killer's choice of victim (mm/oom_kill.c, 5.10): invariants over a recorded
decision, and the death of killed tasks.

``Machine.last_oom`` holds the oom_control of the most recent out_of_memory, with a snapshot
(``OomCandidate``) of every task select_bad_process looked at: its pid, whether it is a
kernel thread or has an mm, its oom_score_adj, rss, swap entries, page-table bytes, and
whether its mm is reaped or it is a victim already. The predicates recompute each task's
badness from that snapshot by 5.10's rules, without calling the model:

- an unkillable task is never chosen: init (pid 1), kernel threads, tasks without an mm,
  oom_score_adj -1000 (OOM_SCORE_ADJ_MIN), mms already reaped (MMF_OOM_SKIP), victims;
- the victim has the highest badness among the eligible tasks, and among equals it is the
  last in pid order (oom_evaluate_task replaces the choice unless ``points < chosen``);
  nobody is chosen only if nobody is eligible (5.10 then panics) or the scan stopped at a
  victim whose mm is not reaped yet;
- the points recorded for each task are oom_badness's: rss + swap entries + page-table
  pages, plus oom_score_adj times totalpages / 1000 (integer division first).

Over a Machine's tasks: no task with SIGKILL pending outlives the operation that killed it.
"""

from __future__ import annotations

from collections.abc import Iterable

from refmodel.mm.oom_kill import OomCandidate, oom_control
from refmodel.specs import Violation
from refmodel.task import Task

PAGE_SIZE = 4096
OOM_SCORE_ADJ_MIN = -1000
LONG_MIN = -(1 << 63)


def eligible(c: OomCandidate) -> bool:
    """Whether 5.10 lets select_bad_process choose this task at all."""
    return not (c.pid == 1 or c.kthread or not c.has_mm or c.oom_score_adj == OOM_SCORE_ADJ_MIN
                or c.oom_skip or c.oom_victim)


def expected_badness(c: OomCandidate, totalpages: int) -> int:
    """oom_badness for an eligible task, from the snapshot."""
    points = c.rss + c.swapents + c.pgtables_bytes // PAGE_SIZE
    return points + c.oom_score_adj * (totalpages // 1000)


def _describe(c: OomCandidate) -> str:
    return f"pid {c.pid} ({c.comm})"


def unkillable_task_never_chosen(oc: oom_control) -> list[Violation]:
    """The victim is none of: init, a kernel thread, a task without an mm, a task with
    oom_score_adj -1000, a task whose mm is reaped, a victim already."""
    if oc.chosen is None:
        return []
    pid = oc.chosen.pid
    mine = [c for c in oc.candidates if c.pid == pid]
    if not mine:
        return [Violation("unkillable_task_never_chosen",
                          f"the victim pid {pid} is not among the tasks the scan looked at")]
    c = mine[0]
    if eligible(c):
        return []
    why = ("it is init" if c.pid == 1 else "it is a kernel thread" if c.kthread
           else "it has no mm" if not c.has_mm
           else "its oom_score_adj is -1000" if c.oom_score_adj == OOM_SCORE_ADJ_MIN
           else "its mm is already reaped (MMF_OOM_SKIP)" if c.oom_skip
           else "it is an OOM victim already")
    return [Violation("unkillable_task_never_chosen",
                      f"{_describe(c)} was chosen as the OOM victim, but {why}")]


def victim_has_the_highest_badness(oc: oom_control) -> list[Violation]:
    """The victim's badness is the highest among eligible tasks; a tie goes to the later
    pid; nobody is chosen only when nobody is eligible or the scan was aborted at a victim
    still in flight."""
    name = "victim_has_the_highest_badness"
    if oc.aborted:
        last = oc.candidates[-1] if oc.candidates else None
        if last is None or not last.oom_victim or last.oom_skip:
            return [Violation(name, "the scan was aborted, but not at an OOM victim whose mm "
                                    "is still unreaped")]
        return []
    scored = sorted(((expected_badness(c, oc.totalpages), c.pid, c)
                     for c in oc.candidates if eligible(c)), key=lambda x: (x[0], x[1]))
    if oc.chosen is None:
        if scored:
            best = scored[-1][2]
            return [Violation(name, f"nobody was chosen, but {_describe(best)} was eligible "
                                    f"with badness {scored[-1][0]}")]
        return []
    if not scored:
        return [Violation(name, f"pid {oc.chosen.pid} was chosen, but no task was eligible")]
    top_points, top_pid, top = scored[-1]
    if oc.chosen.pid != top_pid:
        mine = [s for s in scored if s[1] == oc.chosen.pid]
        had = f"badness {mine[0][0]}" if mine else "no badness (not eligible)"
        return [Violation(name, f"pid {oc.chosen.pid} was chosen with {had}, but "
                                f"{_describe(top)} has {top_points} (5.10: the highest wins, "
                                "the later pid among equals)")]
    return []


def points_are_oom_badness(oc: oom_control) -> list[Violation]:
    """Each eligible task's recorded points are rss + swap entries + page-table pages +
    oom_score_adj * (totalpages / 1000); each ineligible one has LONG_MIN."""
    out: list[Violation] = []
    for c in oc.candidates:
        want = expected_badness(c, oc.totalpages) if eligible(c) else LONG_MIN
        if c.points != want:
            out.append(Violation("points_are_oom_badness",
                                 f"{_describe(c)} scored {c.points}, 5.10's oom_badness "
                                 f"gives {want}"))
    return out


def no_killed_task_survives(tasks: Iterable[Task]) -> list[Violation]:
    """Between Machine operations no live task has SIGKILL pending: killed tasks have
    exited."""
    return [Violation("no_killed_task_survives",
                      f"{t!r} has SIGKILL pending but is still alive after the operation")
            for t in tasks if t.sigkill_pending]


def check_oom(oc: oom_control) -> list[Violation]:
    """Every invariant of a recorded OOM decision."""
    return (unkillable_task_never_chosen(oc) + victim_has_the_highest_badness(oc)
            + points_are_oom_badness(oc))
