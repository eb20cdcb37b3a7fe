"""The model side of kernel-diff: the same calls on a fresh model address space."""

from __future__ import annotations

from refmodel.config import MachineConfig, MiB
from refmodel.kerneldiff.driver import WINDOW_PAGES, Op, StepResult
from refmodel.machine import Machine
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.vm_flags import VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE
from refmodel.trace import Tracer

PAGE = 4096


def vma_lines(mm: mm_struct, base: int) -> tuple[list[str], list[int]]:
    """The VMAs inside the window as /proc/PID/maps prints them (relative to the window),
    and their vm_flags."""
    lo, hi = base, base + WINDOW_PAGES * PAGE
    out = []
    flags = []
    vma = mm.mmap
    while vma is not None:
        if vma.vm_start < hi and vma.vm_end > lo:
            f = vma.vm_flags
            perms = ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + (
                "x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")
            out.append(f"{vma.vm_start - base:#x}-{vma.vm_end - base:#x} {perms}")
            flags.append(f)
        vma = vma.vm_next
    return out, flags


def _step(m: Machine, mm: mm_struct, op: Op, base: int) -> int | str:
    addr = base + int(op["addr"])
    kind = op["op"]
    if kind == "mmap":
        ret = m.mmap(mm, addr, int(op["len"]), int(op["prot"]), int(op["flags"]))
        if ret >= 0:
            if not base <= ret < base + WINDOW_PAGES * PAGE:
                m.munmap(mm, ret, int(op["len"]))
                return "outside"
            return ret - base
        return ret
    if kind == "munmap":
        return m.munmap(mm, addr, int(op["len"]))
    if kind == "mprotect":
        return m.mprotect(mm, addr, int(op["len"]), int(op["prot"]))
    raise ValueError(f"unknown op {kind!r}")


def run_model(steps: list[Op], base: int, trace_last: bool) -> tuple[list[StepResult], str]:
    """Replay ``steps`` on a fresh machine; with ``trace_last``, the call tree of the last."""
    m = Machine(MachineConfig(memory=64 * MiB))
    mm = m.new_mm()
    out: list[StepResult] = []
    trace = ""
    for i, op in enumerate(steps):
        if trace_last and i == len(steps) - 1:
            with Tracer() as t:
                ret = _step(m, mm, op, base)
            trace = t.render(show_files=True, max_depth=6)
        else:
            ret = _step(m, mm, op, base)
        out.append(StepResult(ret, *vma_lines(mm, base)))
    return out, trace
