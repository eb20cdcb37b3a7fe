"""A VMA manager in plain Python, checked by ``refmodel conform --target vma``.

One process's address space: a sorted list of VMAs changed by mmap, munmap and mprotect
(anonymous memory only), with Linux's errnos, its merging rules and a top-down placement.
What it has to get right beyond the obvious: a private writable mapping is accounted
(VM_ACCOUNT) and keeps that flag when made read-only, so it no longer merges with a
never-writable neighbour; every MAP_SHARED|MAP_ANONYMOUS mapping is backed by its own shmem
file, so it never merges with another one (but its own pieces re-merge); mprotect stops at
the first hole with ENOMEM after changing what came before it.

    refmodel conform --target vma --python examples/vma_py/vma.py:VmaManager
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

PAGE = 4096
PROT_READ, PROT_WRITE, PROT_EXEC, PROT_SEM = 1, 2, 4, 8
PROT_GROWSDOWN, PROT_GROWSUP = 0x01000000, 0x02000000
MAP_SHARED, MAP_PRIVATE, MAP_TYPE = 0x01, 0x02, 0x0F
MAP_FIXED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x10, 0x20, 0x100000
EPERM, ENOMEM, EINVAL, EEXIST = 1, 12, 22, 17
MMAP_MIN_ADDR = 65536
TASK_SIZE = (1 << 47) - PAGE
MMAP_BASE = 0x7FFFF7FFF000  # below the 8 MiB stack and its gap


@dataclass(frozen=True)
class Vma:
    start: int
    end: int
    prot: int  # PROT_READ | PROT_WRITE | PROT_EXEC
    shared: bool
    accounted: bool  # VM_ACCOUNT
    file: int | None  # the shmem file of a shared anonymous mapping

    def perms(self) -> str:
        p = self.prot
        return ("r" if p & PROT_READ else "-") + ("w" if p & PROT_WRITE else "-") + (
            "x" if p & PROT_EXEC else "-") + ("s" if self.shared else "p")


def page_align(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


class VmaManager:
    MERGES = True

    def __init__(self, paging_levels: int = 4) -> None:
        self.vmas: list[Vma] = []
        self._files = itertools.count(1)

    # -- helpers ---------------------------------------------------------------------------
    def _compatible(self, a: Vma, b: Vma) -> bool:
        return (self.MERGES and a.end == b.start and a.prot == b.prot
                and a.shared == b.shared and a.accounted == b.accounted and a.file == b.file)

    def _merge_around(self, start: int, end: int) -> None:
        """Merge the VMAs touching [start, end) with compatible neighbours."""
        out: list[Vma] = []
        for v in self.vmas:
            if (out and self._compatible(out[-1], v)
                    and (start <= v.start <= end or start <= out[-1].end <= end)):
                out[-1] = replace(out[-1], end=v.end)
            else:
                out.append(v)
        self.vmas = out

    def _unmap(self, start: int, end: int) -> None:
        out: list[Vma] = []
        for v in self.vmas:
            if v.end <= start or v.start >= end:
                out.append(v)
                continue
            if v.start < start:
                out.append(replace(v, end=start))
            if v.end > end:
                out.append(replace(v, start=end))
        self.vmas = out

    def _free(self, start: int, end: int) -> bool:
        return all(v.end <= start or v.start >= end for v in self.vmas)

    def _place(self, hint: int, length: int) -> int:
        if hint:
            hint &= ~(PAGE - 1)
            if hint <= TASK_SIZE - length and self._free(hint, hint + length):
                return hint
        top = MMAP_BASE  # the highest gap below mmap_base that fits
        for v in reversed(self.vmas):
            if v.start >= top:
                continue
            if top - v.end >= length:
                return top - length
            top = min(top, v.start)
        if top - max(MMAP_MIN_ADDR, PAGE) >= length:
            return top - length
        return -ENOMEM

    # -- the syscalls ------------------------------------------------------------------------
    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        if length == 0:
            return -EINVAL
        fixed = bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
        if not fixed and addr and addr < MMAP_MIN_ADDR:
            addr = MMAP_MIN_ADDR
        length = page_align(length)
        if length == 0 or length > TASK_SIZE:
            return -ENOMEM
        if fixed:
            if addr > TASK_SIZE - length:
                return -ENOMEM
            if addr % PAGE:
                return -EINVAL
        else:
            addr = self._place(addr, length)
            if addr < 0:
                return addr
        if addr < MMAP_MIN_ADDR:
            return -EPERM
        if flags & MAP_FIXED_NOREPLACE and not self._free(addr, addr + length):
            return -EEXIST
        kind = flags & MAP_TYPE
        if kind not in (MAP_SHARED, MAP_PRIVATE):
            return -EINVAL
        shared = kind == MAP_SHARED
        self._unmap(addr, addr + length)
        rwx = prot & (PROT_READ | PROT_WRITE | PROT_EXEC)
        v = Vma(addr, addr + length, rwx, shared, not shared and bool(prot & PROT_WRITE),
                next(self._files) if shared else None)
        self.vmas = sorted([*self.vmas, v], key=lambda x: x.start)
        if not shared:
            self._merge_around(addr, addr + length)
        return addr

    def munmap(self, addr: int, length: int) -> int:
        if addr % PAGE or addr > TASK_SIZE or length > TASK_SIZE - addr:
            return -EINVAL
        length = page_align(length)
        if length == 0:
            return -EINVAL
        self._unmap(addr, addr + length)
        return 0

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
        prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
        if grows == PROT_GROWSDOWN | PROT_GROWSUP or addr % PAGE:
            return -EINVAL
        if length == 0:
            return 0
        end = addr + page_align(length)
        if end <= addr:
            return -ENOMEM
        if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM):
            return -EINVAL
        first = next((v for v in self.vmas if v.end > addr), None)
        if first is None:
            return -ENOMEM
        if grows:  # no VMA here grows down
            return -ENOMEM if first.start >= end else -EINVAL
        if first.start > addr:
            return -ENOMEM
        rwx = prot & (PROT_READ | PROT_WRITE | PROT_EXEC)
        nstart = addr
        while True:
            v = next(x for x in self.vmas if x.start <= nstart < x.end)
            tmp = min(v.end, end)
            if v.prot != rwx or (rwx & PROT_WRITE and not v.shared and not v.accounted):
                new = replace(v, start=nstart, end=tmp, prot=rwx,
                              accounted=v.accounted or (bool(rwx & PROT_WRITE)
                                                        and not v.shared))
                pieces = [p for p in (replace(v, end=nstart), new, replace(v, start=tmp))
                          if p.start < p.end]
                i = self.vmas.index(v)
                self.vmas[i:i + 1] = pieces
                self._merge_around(nstart, tmp)
            # the changed piece may have merged with what follows: go on after it
            nstart = next(x.end for x in self.vmas if x.start < tmp <= x.end)
            if nstart >= end:
                return 0
            if not any(x.start == nstart for x in self.vmas):
                return -ENOMEM

    def find_vma(self, addr: int) -> tuple[int, int, str] | None:
        v = next((x for x in self.vmas if x.end > addr), None)
        return None if v is None else (v.start, v.end, v.perms())

    def vmas_observed(self) -> list[tuple[int, int, str]]:
        return [(v.start, v.end, v.perms()) for v in self.vmas]
