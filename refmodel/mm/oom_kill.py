"""The OOM killer (mm/oom_kill.c, 5.10): choosing a victim, killing it, reaping its memory.

out_of_memory → select_bad_process → oom_evaluate_task → oom_badness, then oom_kill_process
→ __oom_kill_process: SIGKILL for the victim, mark_oom_victim (ALLOC_OOM access to the
reserves), SIGKILL for the other users of its mm, wake_oom_reaper. The badness arithmetic,
the tie rule and the abort on a victim still in flight are 5.10's.

Simplifications (docs/scope.md): the oom_reaper kthread's work (oom_reap_task) runs
synchronously inside wake_oom_reaper; killed tasks exit at the end of the Machine operation
(Machine._after_op). No memcg, cpusets or mempolicy constraints (always CONSTRAINT_NONE), no
OOM notifiers, sysrq, oom_lock, panic_on_oom / oom_kill_allocating_task (both 0),
oom_task_origin, vfork, coredumps, PF_EXITING, TIF_MEMDIE or printing (dump_header).
``current`` and the task list (for_each_process: pid order) are parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from refmodel.bugs import KernelPanic
from refmodel.kernel.fork import mmdrop, mmgrab
from refmodel.mm import gfp as G
from refmodel.mm.memory import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    MM_SHMEMPAGES,
    MM_SWAPENTS,
    get_mm_counter,
    get_mm_rss,
    mm_pgtables_bytes,
    unmap_page_range,
)
from refmodel.mm.memory_fault import vma_is_anonymous
from refmodel.mm.mm_types import (
    MMF_OOM_REAP_QUEUED,
    MMF_OOM_SKIP,
    MMF_OOM_VICTIM,
    MMF_UNSTABLE,
    mm_struct,
    vm_area_struct,
)
from refmodel.mm.mmu_gather import tlb_finish_mmu, tlb_gather_mmu
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.vm_flags import VM_HUGETLB, VM_LOCKED, VM_PFNMAP, VM_SHARED
from refmodel.trace import kernel

if TYPE_CHECKING:  # refmodel.task imports the fault path; exit_mmap imports this module
    from refmodel.task import Task

F = "mm/oom_kill.c"
OOM_H = "include/linux/oom.h"
SIGKILL = 9
MAX_OOM_REAP_RETRIES = 10
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
LONG_MIN = -(1 << 63)
PAGE_SIZE = 4096


class oom_constraint(IntEnum):
    """enum oom_constraint (include/linux/oom.h)."""

    CONSTRAINT_NONE = 0
    CONSTRAINT_CPUSET = 1
    CONSTRAINT_MEMORY_POLICY = 2
    CONSTRAINT_MEMCG = 3


@dataclass(frozen=True, slots=True)
class OomCandidate:
    """Model-only record: one task as oom_evaluate_task saw it (what specs.oom checks).
    ``points`` is what oom_badness returned; LONG_MIN if the task was skipped before it
    (unkillable, or an OOM victim already)."""

    pid: int
    comm: str
    kthread: bool
    has_mm: bool
    oom_score_adj: int
    rss: int
    swapents: int
    pgtables_bytes: int
    oom_skip: bool  # MMF_OOM_SKIP on its mm
    oom_victim: bool  # tsk_is_oom_victim
    points: int


@dataclass(slots=True)
class oom_control:
    """struct oom_control: what out_of_memory works with (no zonelist, nodemask or memcg:
    one node, no memcg). ``aborted`` stands for 5.10's ``chosen == (void *)-1UL``: the
    scan stopped at a victim still in flight. ``candidates`` is model-only (specs.oom)."""

    totalpages: int = 0
    gfp_mask: int = 0
    order: int = 0
    chosen: Task | None = None
    chosen_points: int = LONG_MIN
    constraint: oom_constraint = oom_constraint.CONSTRAINT_NONE
    aborted: bool = False
    candidates: list[OomCandidate] = field(default_factory=list)


@kernel(OOM_H)
def tsk_is_oom_victim(tsk: Task) -> bool:
    """Models include/linux/oom.h:tsk_is_oom_victim: signal->oom_mm is set."""
    return tsk.oom_mm is not None


def _test_bit(nr: int, mm: mm_struct) -> bool:
    return bool(mm.flags & (1 << nr))


def _set_bit(nr: int, mm: mm_struct) -> None:
    mm.flags |= 1 << nr


@kernel(OOM_H)
def mm_is_oom_victim(mm: mm_struct) -> bool:
    """Models include/linux/oom.h:mm_is_oom_victim: MMF_OOM_VICTIM."""
    return _test_bit(MMF_OOM_VICTIM, mm)


@kernel(F)
def oom_unkillable_task(p: Task) -> bool:
    """Models mm/oom_kill.c:oom_unkillable_task: init and kernel threads."""
    return p.pid == 1 or p.kthread


@kernel(F)
def oom_badness(p: Task, totalpages: int) -> int:
    """Models mm/oom_kill.c:oom_badness (5.10): RSS + swap entries + page-table pages, then
    oom_score_adj scaled by totalpages / 1000 (the division first, in integers). LONG_MIN
    for a task that must not be chosen: unkillable, without an mm (find_lock_task_mm),
    oom_score_adj -1000, or an mm already reaped (MMF_OOM_SKIP). No vfork in the model."""
    if oom_unkillable_task(p):
        return LONG_MIN
    t = find_lock_task_mm(p)
    if t is None or t.mm is None:
        return LONG_MIN
    adj = t.oom_score_adj
    mm = t.mm
    if adj == OOM_SCORE_ADJ_MIN or _test_bit(MMF_OOM_SKIP, mm):
        return LONG_MIN
    points = (get_mm_rss(mm) + get_mm_counter(mm, MM_SWAPENTS)
              + mm_pgtables_bytes(mm) // PAGE_SIZE)
    adj *= totalpages // 1000
    return points + adj


def _record(task: Task, oc: oom_control, points: int) -> None:
    """Note the task in oc.candidates (plain field reads: nothing shows in traces)."""
    mm = task.mm
    s = mm.rss_stat if mm is not None else [0] * 4
    oc.candidates.append(OomCandidate(
        task.pid, task.comm, task.kthread, mm is not None, task.oom_score_adj,
        s[MM_FILEPAGES] + s[MM_ANONPAGES] + s[MM_SHMEMPAGES], s[MM_SWAPENTS],
        mm.pgtables_bytes if mm is not None else 0,
        mm is not None and _test_bit(MMF_OOM_SKIP, mm), task.oom_mm is not None, points))


@kernel(F)
def oom_evaluate_task(task: Task, oc: oom_control) -> bool:
    """Models mm/oom_kill.c:oom_evaluate_task: a task at least as bad as the one chosen so
    far replaces it, so among equals the last one in the task list wins. An OOM victim
    whose mm is not reaped yet (no MMF_OOM_SKIP) aborts the scan (True: stop, and
    oc.aborted); a reaped one is skipped. (oom_task_origin is never set in the model.)"""
    if oom_unkillable_task(task):
        _record(task, oc, LONG_MIN)
        return False
    if tsk_is_oom_victim(task):  # not a sysrq OOM
        _record(task, oc, LONG_MIN)
        assert task.oom_mm is not None
        if _test_bit(MMF_OOM_SKIP, task.oom_mm):
            return False
        oc.chosen = None
        oc.aborted = True
        return True
    points = oom_badness(task, oc.totalpages)
    _record(task, oc, points)
    if points == LONG_MIN or points < oc.chosen_points:
        return False
    oc.chosen = task
    oc.chosen_points = points
    return False


@kernel(F)
def select_bad_process(oc: oom_control, tasks: Iterable[Task]) -> Task | None:
    """Models mm/oom_kill.c:select_bad_process (no memcg): for_each_process in creation
    order, which the model's pid order is. The chosen task, or None (nothing killable, or
    the scan was aborted: see oc.aborted)."""
    oc.chosen_points = LONG_MIN
    for p in sorted(tasks, key=lambda t: t.pid):
        if oom_evaluate_task(p, oc):
            break
    return oc.chosen


# --------------------------------------------------------------------------------------------
# Killing: out_of_memory → oom_kill_process → __oom_kill_process


@kernel(F)
def constrained_alloc(pgdat: pglist_data, oc: oom_control) -> oom_constraint:
    """Models mm/oom_kill.c:constrained_alloc for one node, no memcg, no cpusets and the
    default memory policy: all of RAM and swap (totalram_pages() + total_swap_pages) and
    CONSTRAINT_NONE. gfp_zone(oc->gfp_mask) is asked first (its highest_zoneidx only
    matters for the cpuset and mempolicy checks, which do not apply)."""
    G.gfp_zone(oc.gfp_mask)
    oc.totalpages = pgdat.totalram_pages + pgdat.total_swap_pages
    return oom_constraint.CONSTRAINT_NONE


@kernel(F)
def find_lock_task_mm(p: Task) -> Task | None:
    """Models mm/oom_kill.c:find_lock_task_mm for single-threaded processes: the task
    itself while it has an mm (task_lock is not modelled)."""
    return p if p.mm is not None else None


@kernel(F)
def process_shares_mm(p: Task, mm: mm_struct) -> bool:
    """Models mm/oom_kill.c:process_shares_mm (one thread per process)."""
    return p.mm is mm


def _is_global_init(p: Task) -> bool:
    return p.pid == 1


@kernel(F)
def __task_will_free_mem(task: Task) -> bool:
    """Models mm/oom_kill.c:__task_will_free_mem: a group exit is under way
    (SIGNAL_GROUP_EXIT, which a pending SIGKILL implies). Coredumps and PF_EXITING are not
    modelled."""
    return task.sigkill_pending


@kernel(F)
def task_will_free_mem(task: Task, tasks: Iterable[Task]) -> bool:
    """Models mm/oom_kill.c:task_will_free_mem: the task is dying, its mm is not reaped yet
    (no MMF_OOM_SKIP), and every other process using that mm is dying too."""
    mm = task.mm
    if mm is None:
        return False
    if not __task_will_free_mem(task):
        return False
    if _test_bit(MMF_OOM_SKIP, mm):
        return False
    if mm.mm_users <= 1:
        return True
    for p in tasks:
        if not process_shares_mm(p, mm) or p is task:
            continue
        if not __task_will_free_mem(p):
            return False
    return True


@kernel(F)
def mark_oom_victim(tsk: Task) -> None:
    """Models mm/oom_kill.c:mark_oom_victim: the first time, signal->oom_mm = tsk->mm,
    which keeps a reference on the mm (mmgrab, dropped when the task is released), and the
    mm gets MMF_OOM_VICTIM. From now on tsk_is_oom_victim(tsk) holds: the allocator gives
    it ALLOC_OOM. (TIF_MEMDIE and the oom_victims count are not modelled.)"""
    mm = tsk.mm
    assert mm is not None, "mark_oom_victim needs tsk->mm"
    if tsk.oom_mm is None:
        tsk.oom_mm = mm
        mmgrab(mm)
        _set_bit(MMF_OOM_VICTIM, mm)


@kernel("kernel/signal.c")
def do_send_sig_info(sig: int, p: Task) -> None:
    """Models kernel/signal.c:do_send_sig_info(SIGKILL, SEND_SIG_PRIV, p, PIDTYPE_TGID), the
    only signal the model sends: SIGKILL pending, the whole group exiting
    (complete_signal)."""
    if sig != SIGKILL:
        raise ValueError(f"model: only SIGKILL is sent, not signal {sig}")
    p.sigkill_pending = True


# --------------------------------------------------------------------------------------------
# The OOM reaper (run synchronously: see the module docstring)


@kernel("mm/internal.h")
def can_madv_lru_vma(vma: vm_area_struct) -> bool:
    """Models mm/internal.h:can_madv_lru_vma: not VM_LOCKED, VM_HUGETLB or VM_PFNMAP."""
    return not vma.vm_flags & (VM_LOCKED | VM_HUGETLB | VM_PFNMAP)


@kernel(F)
def __oom_reap_task_mm(mm: mm_struct) -> bool:
    """Models mm/oom_kill.c:__oom_reap_task_mm: MMF_UNSTABLE, then every anonymous or
    private VMA that can_madv_lru_vma allows is unmapped (unmap_page_range) through an
    mmu_gather of its own; shared file mappings and page tables stay. True (no MMU
    notifiers can refuse)."""
    pgdat = mm.pgdat
    assert pgdat is not None
    _set_bit(MMF_UNSTABLE, mm)
    vma = mm.mmap
    while vma is not None:
        if can_madv_lru_vma(vma) and (vma_is_anonymous(vma) or not vma.vm_flags & VM_SHARED):
            start, end = vma.vm_start, vma.vm_end
            tlb = tlb_gather_mmu(pgdat, mm, start, end)
            unmap_page_range(pgdat, tlb, vma, start, end)
            tlb_finish_mmu(pgdat, tlb, start, end)
        vma = vma.vm_next
    return True


@kernel(F)
def oom_reap_task_mm(tsk: Task, mm: mm_struct) -> bool:
    """Models mm/oom_kill.c:oom_reap_task_mm: the mmap lock is always free in the model;
    an mm already marked MMF_OOM_SKIP is left alone."""
    if _test_bit(MMF_OOM_SKIP, mm):
        return True
    return __oom_reap_task_mm(mm)


@kernel(F)
def oom_reap_task(tsk: Task) -> None:
    """Models mm/oom_kill.c:oom_reap_task: reap signal->oom_mm (the first attempt always
    succeeds in the model), then hide the mm from the OOM killer (MMF_OOM_SKIP)."""
    mm = tsk.oom_mm
    assert mm is not None
    attempts = 1
    while not oom_reap_task_mm(tsk, mm) and attempts < MAX_OOM_REAP_RETRIES:
        attempts += 1
    _set_bit(MMF_OOM_SKIP, mm)


@kernel(F)
def wake_oom_reaper(tsk: Task) -> None:
    """Models mm/oom_kill.c:wake_oom_reaper: queue the victim once (MMF_OOM_REAP_QUEUED).
    5.10 wakes the oom_reaper kthread, which runs oom_reap_task later; the model runs it
    here, synchronously."""
    mm = tsk.oom_mm
    assert mm is not None
    if _test_bit(MMF_OOM_REAP_QUEUED, mm):
        return
    _set_bit(MMF_OOM_REAP_QUEUED, mm)
    oom_reap_task(tsk)


@kernel(F)
def __oom_kill_process(victim: Task, message: str, tasks: Iterable[Task]) -> None:
    """Models mm/oom_kill.c:__oom_kill_process: SIGKILL before access to the reserves
    (mark_oom_victim), then SIGKILL for every other process using the victim's mm except
    kernel threads; if init uses it, the mm cannot be reaped (MMF_OOM_SKIP instead of
    wake_oom_reaper)."""
    p = find_lock_task_mm(victim)
    if p is None:  # already exiting
        return
    mm = victim.mm
    assert mm is not None
    mmgrab(mm)
    do_send_sig_info(SIGKILL, victim)
    mark_oom_victim(victim)
    can_oom_reap = True
    for p in tasks:
        if not process_shares_mm(p, mm) or p is victim:
            continue
        if _is_global_init(p):
            can_oom_reap = False
            _set_bit(MMF_OOM_SKIP, mm)
            continue
        if p.kthread:
            continue
        do_send_sig_info(SIGKILL, p)
    if can_oom_reap:
        wake_oom_reaper(victim)
    mmdrop(mm)


@kernel(F)
def oom_kill_process(oc: oom_control, message: str, tasks: Iterable[Task]) -> None:
    """Models mm/oom_kill.c:oom_kill_process (no memcg OOM group): a victim already dying
    only gets access to the reserves and the reaper; any other is killed by
    __oom_kill_process."""
    victim = oc.chosen
    assert victim is not None
    if task_will_free_mem(victim, tasks):
        mark_oom_victim(victim)
        wake_oom_reaper(victim)
        return
    __oom_kill_process(victim, message, tasks)


@kernel(F)
def out_of_memory(pgdat: pglist_data, oc: oom_control, current: Task | None,
                  tasks: Iterable[Task]) -> bool:
    """Models mm/oom_kill.c:out_of_memory (5.10, global OOM). ``current`` (None: no task,
    e.g. an allocation made by a tool) and the processes are parameters. A dying current
    is only marked and reaped; a !__GFP_FS allocation (other than the page fault's mask 0)
    gets no kill; otherwise select_bad_process chooses and oom_kill_process kills. With
    nothing killable 5.10 panics ("System is deadlocked on memory"): KernelPanic. True
    ("progress") in every other case, the aborted scan included."""
    procs = sorted(tasks, key=lambda t: t.pid)
    if current is not None and task_will_free_mem(current, procs):
        mark_oom_victim(current)
        wake_oom_reaper(current)
        return True
    if oc.gfp_mask and not oc.gfp_mask & G.__GFP_FS:
        return True
    oc.constraint = constrained_alloc(pgdat, oc)
    select_bad_process(oc, procs)
    if oc.chosen is None and not oc.aborted:
        raise KernelPanic("System is deadlocked on memory: out of memory and no killable "
                          "processes (out_of_memory)")
    if oc.chosen is not None:
        oom_kill_process(oc, "Out of memory", procs)
    return oc.chosen is not None or oc.aborted
