"""Process exit, as far as memory goes (kernel/exit.c, 5.10): do_exit → exit_mm → mmput.

exit_mm takes a reference on the mm (mmgrab) for the exiting task's active_mm, drops the
task's use of it (mmput: the last user runs exit_mmap), and the reference goes at the final
context switch (finish_task_switch → mmdrop → __mmdrop → pgd_free), which the model runs at
the end of do_exit. Signals, files, credentials and the rest of do_exit are out of scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refmodel.kernel.fork import mmdrop, mmgrab, mmput
from refmodel.mm.mm_types import mm_struct
from refmodel.trace import kernel

if TYPE_CHECKING:
    from refmodel.task import Task

F = "kernel/exit.c"


@kernel(F)
def exit_mm(mm: mm_struct) -> None:
    """Models kernel/exit.c:exit_mm: sync_mm_rss (rss is never batched in the model),
    mmgrab for active_mm, current->mm = NULL, mmput. (mm->hiwater_rss is only read on
    exit, by do_exit's setmax_mm_hiwater_rss into signal->maxrss, which is not modelled.)"""
    mmgrab(mm)
    mmput(mm)


@kernel("kernel/sched/core.c")
def finish_task_switch(prev_mm: mm_struct) -> None:
    """Models kernel/sched/core.c:finish_task_switch for a dead task: mmdrop(prev's
    active_mm)."""
    mmdrop(prev_mm)


@kernel(F)
def do_exit(mm: mm_struct, code: int = 0) -> None:
    """Models kernel/exit.c:do_exit for the memory side: exit_mm, then the last schedule
    away from the dead task drops its active_mm."""
    exit_mm(mm)
    finish_task_switch(mm)


@kernel(F)
def release_task(p: Task) -> None:
    """Models kernel/exit.c:release_task for the memory side: the dead task's last
    reference goes, and with it its signal_struct (kernel/fork.c:free_signal_struct), which
    drops the mm reference an OOM victim's signal->oom_mm holds (mmdrop: for a victim this
    is the one that frees the mm's pgd). The model releases a task as soon as it exits."""
    oom_mm, p.oom_mm = p.oom_mm, None
    if oom_mm is not None:
        mmdrop(oom_mm)
