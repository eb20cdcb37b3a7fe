"""Stateful fuzzing of the address space: mmap (free, hinted, fixed, fixed-noreplace, shared,
file-backed, stacks), munmap and mprotect with random and adversarial arguments, every VMA
invariant after every step, and a page-by-page shadow of what should be mapped with which
protection. A call that fails an argument check must change nothing."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from refmodel.config import MachineConfig, MiB
from refmodel.errno import Errno
from refmodel.fs import file
from refmodel.machine import Machine
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from refmodel.mm.vm_flags import VM_EXEC, VM_GROWSDOWN, VM_READ, VM_WRITE
from refmodel.specs.vma import check_vma, vma_state, vmas

P = 4096
MMAP_BASE = 0x7FFFF7FFF000
LOW = 0x10000000
HEAP = LOW - 32 * P  # the heap grows into the low window used by fixed mappings
RWX = VM_READ | VM_WRITE | VM_EXEC
PROTS = [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC, PROT_WRITE,
         PROT_READ | PROT_WRITE | PROT_EXEC]

# Addresses near the two regions where VMAs live: just below mmap_base (free placement)
# and a low window used by fixed and hinted mappings.
region = st.sampled_from([MMAP_BASE - 48 * P, LOW])
page_off = st.integers(0, 48)
npages = st.integers(1, 12)
prots = st.sampled_from(PROTS)
adversarial_ints = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.sampled_from([0, 1, P - 1, P + 1, (1 << 47) - P, (1 << 47), (1 << 64) - P,
                     (1 << 64) - 1, 0x7FFFFFFFF000, 0xFFFF0000, -P, -1]),
)


def _vm_prot(prot: int) -> int:
    """The VM_READ/WRITE/EXEC bits mmap and mprotect give for prot."""
    return ((VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0)
            | (VM_EXEC if prot & PROT_EXEC else 0))


class RangeMap:
    """Which addresses should be mapped, with which VM_READ/WRITE/EXEC bits: sorted,
    disjoint, coalesced (start, end, bits) ranges."""

    def __init__(self, ranges: list[tuple[int, int, int]] | None = None) -> None:
        self.ranges: list[tuple[int, int, int]] = []
        for r in ranges or []:
            self.set(*r)

    def set(self, start: int, end: int, bits: int | None) -> None:
        out: list[tuple[int, int, int]] = []
        for s, e, b in self.ranges:
            if e <= start or s >= end:
                out.append((s, e, b))
                continue
            if s < start:
                out.append((s, start, b))
            if e > end:
                out.append((end, e, b))
        if bits is not None:
            out.append((start, end, bits))
        out.sort()
        merged: list[tuple[int, int, int]] = []
        for s, e, b in out:
            if merged and merged[-1][1] == s and merged[-1][2] == b:
                merged[-1] = (merged[-1][0], e, b)
            else:
                merged.append((s, e, b))
        self.ranges = merged

    def any_in(self, start: int, end: int) -> bool:
        return any(s < end and e > start for s, e, _ in self.ranges)

    def all_in(self, start: int, end: int) -> bool:
        covered = 0
        for s, e, _ in self.ranges:
            covered += max(0, min(e, end) - max(s, start))
        return covered == end - start


class VmaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = Machine(MachineConfig(memory=48 * MiB))
        self.mm: mm_struct = self.m.new_mm()
        self.shadow = RangeMap()
        self.file = file("data.bin", 1 << 20)

    @initialize()
    def start(self) -> None:
        assert not vmas(self.mm)
        self.mm.start_brk = self.mm.brk = HEAP  # as exec would leave it

    @rule(pages=st.integers(0, 40), extra=st.integers(0, P - 1))
    def brk(self, pages: int, extra: int) -> None:
        want = HEAP + pages * P + extra
        ret = self.m.brk(self.mm, want)
        assert ret in (want, self.mm.brk)
        self._resync()

    # ---------------------------------------------------------------- helpers
    def _actual(self) -> RangeMap:
        return RangeMap([(v.vm_start, v.vm_end, v.vm_flags & RWX) for v in vmas(self.mm)])

    def _resync(self) -> None:
        self.shadow = self._actual()

    def _set(self, addr: int, n: int, bits: int | None) -> None:
        self.shadow.set(addr, addr + n * P, bits)

    # ---------------------------------------------------------------- rules
    @rule(n=npages, prot=prots, shared=st.booleans(), stack=st.booleans())
    def mmap_free(self, n: int, prot: int, shared: bool, stack: bool) -> None:
        flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANONYMOUS
        if stack:
            flags |= MAP_GROWSDOWN
        ret = self.m.mmap(self.mm, 0, n * P, prot, flags)
        if shared and stack:
            assert ret == -int(Errno.EINVAL)
            return
        assert ret > 0 and ret % P == 0, ret
        assert ret + n * P <= MMAP_BASE
        self._set(ret, n, _vm_prot(prot))

    @rule(base=region, off=page_off, n=npages, prot=prots)
    def mmap_hint(self, base: int, off: int, n: int, prot: int) -> None:
        hint = base + off * P
        nxt = next((v for v in vmas(self.mm) if v.vm_end > hint), None)
        gap_end = MMAP_BASE if nxt is None else nxt.vm_start - (
            (1 << 20) if nxt.vm_flags & VM_GROWSDOWN else 0)  # stack_guard_gap below stacks
        free = hint + n * P <= gap_end
        ret = self.m.mmap(self.mm, hint, n * P, prot, MAP_PRIVATE | MAP_ANONYMOUS)
        assert ret > 0
        if free:
            assert ret == hint  # a free hint is taken as it is
        self._set(ret, n, _vm_prot(prot))

    @rule(base=region, off=page_off, n=npages, prot=prots, noreplace=st.booleans())
    def mmap_fixed(self, base: int, off: int, n: int, prot: int, noreplace: bool) -> None:
        addr = base + off * P
        flags = MAP_PRIVATE | MAP_ANONYMOUS | (MAP_FIXED_NOREPLACE if noreplace else MAP_FIXED)
        busy = self.shadow.any_in(addr, addr + n * P)
        before = vma_state(self.mm)
        ret = self.m.mmap(self.mm, addr, n * P, prot, flags)
        if noreplace and busy:
            assert ret == -int(Errno.EEXIST)
            assert vma_state(self.mm) == before
            return
        assert ret == addr
        self._set(addr, n, _vm_prot(prot))

    @rule(base=region, off=page_off, n=npages, prot=prots, fpage=st.integers(0, 8),
          shared=st.booleans())
    def mmap_file_fixed(self, base: int, off: int, n: int, prot: int, fpage: int,
                        shared: bool) -> None:
        addr = base + off * P
        flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_FIXED
        ret = self.m.mmap(self.mm, addr, n * P, prot, flags, self.file, fpage * P)
        assert ret == addr
        self._set(addr, n, _vm_prot(prot))

    @rule(base=region, off=page_off, n=npages)
    def munmap(self, base: int, off: int, n: int) -> None:
        addr = base + off * P
        assert self.m.munmap(self.mm, addr, n * P) == 0
        self._set(addr, n, None)

    @rule(base=region, off=page_off, n=npages, prot=prots)
    def mprotect(self, base: int, off: int, n: int, prot: int) -> None:
        addr = base + off * P
        mapped = self.shadow.all_in(addr, addr + n * P)
        ret = self.m.mprotect(self.mm, addr, n * P, prot)
        if mapped:
            assert ret in (0, -int(Errno.EACCES)), ret  # EACCES: a read-only shared file
        else:
            assert ret in (-int(Errno.ENOMEM), -int(Errno.EACCES)), ret
        if ret == 0:
            self._set(addr, n, _vm_prot(prot))
        else:
            self._resync()  # 5.10 may have changed the VMAs before the failure

    @rule(base=region, off=page_off, n=npages, prot=prots)
    def mprotect_middle_of_a_vma(self, base: int, off: int, n: int, prot: int) -> None:
        """Pick a VMA and change an inner range of it (splits in three)."""
        vs = vmas(self.mm)
        if not vs:
            return
        v = vs[(off * 7 + n) % len(vs)]
        pages = (v.vm_end - v.vm_start) // P
        if pages < 3:
            return
        start = v.vm_start + P
        length = (pages - 2) * P
        before = self.mm.map_count
        ret = self.m.mprotect(self.mm, start, length, prot)
        if ret == 0:
            self._set(start, pages - 2, _vm_prot(prot))
            if v.vm_flags & RWX != _vm_prot(prot):
                assert self.mm.map_count >= before  # split, unless merged into neighbours
        else:
            self._resync()

    @rule(addr=adversarial_ints, length=adversarial_ints, prot=adversarial_ints,
          flags=adversarial_ints, off=adversarial_ints)
    def mmap_adversarial(self, addr: int, length: int, prot: int, flags: int, off: int) -> None:
        before = vma_state(self.mm)
        flags &= ~0x40000  # MAP_HUGETLB is out of scope (always -EINVAL)
        ret = self.m.mmap(self.mm, addr, length, prot, flags, self.file, off)
        if ret < 0:
            assert -4095 <= ret, ret
            if not (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) and ret == -int(Errno.ENOMEM)):
                assert vma_state(self.mm) == before  # failed checks change nothing
        self._resync()

    @rule(addr=adversarial_ints, length=adversarial_ints)
    def munmap_adversarial(self, addr: int, length: int) -> None:
        before = vma_state(self.mm)
        ret = self.m.munmap(self.mm, addr, length)
        if ret < 0:
            assert ret in (-int(Errno.EINVAL), -int(Errno.ENOMEM))
            assert vma_state(self.mm) == before
        self._resync()

    @rule(addr=adversarial_ints, length=adversarial_ints, prot=adversarial_ints)
    def mprotect_adversarial(self, addr: int, length: int, prot: int) -> None:
        ret = self.m.mprotect(self.mm, addr, length, prot)
        assert ret <= 0
        self._resync()

    # ---------------------------------------------------------------- invariants
    @invariant()
    def vma_invariants_hold(self) -> None:
        violations = check_vma(self.mm)
        assert not violations, "\n".join(map(str, violations))

    @invariant()
    def mapped_ranges_match_the_shadow(self) -> None:
        assert self._actual().ranges == self.shadow.ranges


TestVmaStateMachine = VmaMachine.TestCase
