"""Shared helpers for the fault, fork and whole-system tests: a small machine and every
invariant of every issue so far."""

from __future__ import annotations

from refmodel.config import MachineConfig, MiB
from refmodel.fs import file
from refmodel.machine import Machine
from refmodel.mm.mm_types import mm_struct
from refmodel.specs import Violation
from refmodel.specs.buddy import check_buddy
from refmodel.specs.cow import check_cow
from refmodel.specs.pagetable import check_pagetables
from refmodel.specs.vma import check_vma
from refmodel.task import Task


def small_machine() -> Machine:
    return Machine(MachineConfig(memory=64 * MiB))


def all_violations(m: Machine, baseline: frozenset[int] = frozenset(),
                   extra_files: list[file] | None = None) -> list[Violation]:
    mms: list[mm_struct] = [t.mm for t in m.tasks.values() if t.mm is not None]
    out = check_buddy(m.pgdat) + check_pagetables(m.pgdat, mms)
    for mm in mms:
        out += check_vma(mm)
    out += check_cow(m.pgdat, mms, list(m.files) + (extra_files or []), baseline)
    return out


def assert_invariants(m: Machine, baseline: frozenset[int] = frozenset()) -> None:
    v = all_violations(m, baseline)
    assert not v, "\n".join(str(x) for x in v)


def pte_of(m: Machine, task: Task, addr: int) -> int:
    """The pte value mapping addr in task's page tables (0 if none)."""
    from refmodel.arch.x86.walk import walk

    assert task.mm is not None
    w = walk(m.pgdat, task.mm.pgd, addr)
    if w.stop != "mapped":
        return w.steps[-1].value if w.steps and w.steps[-1].level == "pte" else 0
    return w.steps[-1].value
