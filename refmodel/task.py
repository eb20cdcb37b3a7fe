"""Tasks and user memory access: what a Machine runs on top of the kernel model.

A :class:`Task` is the little of struct task_struct the memory model needs: a pid, a name
and its mm. :func:`user_access` is a user-mode load/store/fetch of a byte range: the CPU
walks the page tables (refmodel.arch.x86.cpu); on #PF the kernel's fault entry runs
(exc_page_fault) and the access is retried; a signal ends it, and a task the OOM killer
killed meanwhile (SIGKILL pending) dies instead of retrying. The bytes are the model's
page contents (pgdat.page_data), so copy-on-write can be checked by reading memory back.
"""

from __future__ import annotations

from dataclasses import dataclass

from refmodel.arch.x86.cpu import GP_FAULT, cpu_translate
from refmodel.arch.x86.fault import (
    SI_KERNEL,
    SIGKILL,
    SigInfo,
    exc_general_protection,
    exc_page_fault,
)
from refmodel.arch.x86.pgtable_types import PAGE_SIZE
from refmodel.bugs import KernelBug
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmzone import pglist_data

_PAGE_OFFSET_MASK = PAGE_SIZE - 1  # the byte offset inside a page
MAX_FAULTS_PER_ACCESS = 4  # a read fault, then a write-protect fault, at most; more is a bug


@dataclass(slots=True, eq=False)
class Task:
    """A process: pid, comm, and its address space (None once it has exited)."""

    pid: int
    comm: str
    mm: mm_struct | None
    oom_score_adj: int = 0  # signal->oom_score_adj, as /proc/PID/oom_score_adj sets it
    kthread: bool = False  # PF_KTHREAD: never an OOM victim
    # SIGKILL queued for the task (and, as complete_signal does for a fatal signal,
    # SIGNAL_GROUP_EXIT set): fatal_signal_pending. The task exits at the end of the
    # Machine operation (Machine._after_op); no other signal is ever left pending.
    sigkill_pending: bool = False
    # signal->oom_mm: the mm it had when the OOM killer marked it (tsk_is_oom_victim); it
    # holds a reference on that mm (mm_count) until the task is released.
    oom_mm: mm_struct | None = None

    def __repr__(self) -> str:
        return f"Task({self.pid}, {self.comm!r}{'' if self.mm is not None else ', exited'})"


def _page_access(pgdat: pglist_data, mm: mm_struct, addr: int, write: bool,
                 instr: bool) -> int | SigInfo:
    """Translate one page's access, taking faults as the CPU would: the pfn, or the
    signal that ended it."""
    pfn = cpu_translate(pgdat, mm.pgd, mm.paging_levels, addr, write, instr)
    faults = 0
    while pfn < 0:
        if pfn == GP_FAULT:
            return exc_general_protection(addr)
        sig = exc_page_fault(pgdat, mm, ~pfn, addr)
        fatal = pgdat.hooks.fatal_signal_pending
        if fatal is not None and fatal():
            # On the way back to user mode get_signal finds the group exit (the OOM
            # killer's SIGKILL) before anything else: the access is not retried.
            return SigInfo(SIGKILL, SI_KERNEL, 0)
        if sig is not None:
            return sig
        faults += 1
        if faults == MAX_FAULTS_PER_ACCESS:
            raise KernelBug("model: fault loop", f"{MAX_FAULTS_PER_ACCESS} faults for one "
                            f"access at {addr:#x} (write={write}): a handler returned "
                            "without fixing the pte")
        pfn = cpu_translate(pgdat, mm.pgd, mm.paging_levels, addr, write, instr)
    return pfn


def user_read(pgdat: pglist_data, mm: mm_struct, addr: int, n: int,
              instr: bool = False) -> bytes | SigInfo:
    """Load (or fetch) ``n`` bytes at ``addr``; page by page, stopping at a signal."""
    off = addr & _PAGE_OFFSET_MASK
    if 0 < n <= PAGE_SIZE - off:  # within one page: no assembling
        r = _page_access(pgdat, mm, addr, False, instr)
        if isinstance(r, SigInfo):
            return r
        data = pgdat.page_data.get(r)
        return bytes(data[off:off + n]) if data is not None else bytes(n)
    out = bytearray()
    done = 0
    while done < n:
        off = addr & _PAGE_OFFSET_MASK
        chunk = PAGE_SIZE - off if PAGE_SIZE - off < n - done else n - done
        r = _page_access(pgdat, mm, addr, False, instr)
        if isinstance(r, SigInfo):
            return r
        data = pgdat.page_data.get(r)
        out += data[off:off + chunk] if data is not None else bytes(chunk)
        done += chunk
        addr += chunk
    return bytes(out)


def _store(page_data: dict[int, bytearray], pfn: int, off: int, piece: bytes) -> None:
    """Put ``piece`` at byte ``off`` of page ``pfn`` (an untouched page starts as zeros)."""
    buf = page_data.get(pfn)
    if buf is None:
        buf = page_data[pfn] = bytearray(PAGE_SIZE)
    buf[off:off + len(piece)] = piece


def user_write(pgdat: pglist_data, mm: mm_struct, addr: int, data: bytes) -> int | SigInfo:
    """Store ``data`` at ``addr``, page by page; the bytes written, or the signal that
    stopped the store (earlier pages keep what was written, as a real store loop would)."""
    page_data = pgdat.page_data
    n = len(data)
    off = addr & _PAGE_OFFSET_MASK
    if n and off + n <= PAGE_SIZE:  # within one page: one access, no chunking
        r = _page_access(pgdat, mm, addr, True, False)
        if isinstance(r, SigInfo):
            return r
        _store(page_data, r, off, data)
        return n
    done = 0
    while done < n:
        off = addr & _PAGE_OFFSET_MASK
        chunk = PAGE_SIZE - off if PAGE_SIZE - off < n - done else n - done
        r = _page_access(pgdat, mm, addr, True, False)
        if isinstance(r, SigInfo):
            return r
        _store(page_data, r, off, data[done:done + chunk])
        done += chunk
        addr += chunk
    return done
