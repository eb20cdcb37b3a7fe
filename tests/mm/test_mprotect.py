"""5.10-exact behaviour of mm/mprotect.c (splits, merges, errno) as modelled in
refmodel.mm.mprotect."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from refmodel.arch.x86.pgtable_types import PAGE_COPY, PAGE_NONE, PAGE_READONLY_EXEC
from refmodel.config import MachineConfig, MiB
from refmodel.errno import Errno
from refmodel.machine import Machine
from refmodel.mm.mm_types import anon_vma, mm_struct
from refmodel.mm.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_GROWSDOWN,
    MAP_PRIVATE,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_NONE,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    vm_globals,
)
from refmodel.mm.mmap import find_vma
from refmodel.mm.vm_flags import VM_ACCOUNT, VM_EXEC, VM_READ, VM_WRITE
from refmodel.specs.vma import check_vma, vma_state, vmas
from refmodel.trace import Tracer

P = 4096
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


@pytest.fixture(scope="module")
def machine() -> Machine:
    return Machine(MachineConfig(memory=64 * MiB))


@pytest.fixture
def mm(machine: Machine) -> mm_struct:
    return machine.new_mm()


def ranges(mm: mm_struct) -> list[tuple[int, int]]:
    return [(v.vm_start, v.vm_end) for v in vmas(mm)]


def ok(mm: mm_struct) -> None:
    violations = check_vma(mm)
    assert not violations, "\n".join(map(str, violations))


def unchanged(mm: mm_struct, call: Callable[[], int], errno: Errno) -> None:
    before = vma_state(mm)
    assert call() == -int(errno)
    assert vma_state(mm) == before
    ok(mm)


def test_mprotect_middle_splits_in_three(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    assert machine.mprotect(mm, a + 2 * P, 3 * P, PROT_READ) == 0
    assert ranges(mm) == [(a, a + 2 * P), (a + 2 * P, a + 5 * P), (a + 5 * P, a + 8 * P)]
    mid = find_vma(mm, a + 2 * P)
    assert mid is not None and mid.vm_flags & (VM_READ | VM_WRITE) == VM_READ
    assert mid.vm_pgoff == (a + 2 * P) >> 12
    assert mid.vm_flags & VM_ACCOUNT  # never removed by mprotect
    assert mm.map_count == 3 and mm.data_vm == 5 and mm.total_vm == 8
    ok(mm)


def test_mprotect_back_merges_all_three(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    machine.mprotect(mm, a + 2 * P, 3 * P, PROT_READ)
    assert machine.mprotect(mm, a + 2 * P, 3 * P, RW) == 0  # vma_merge case 6
    assert ranges(mm) == [(a, a + 8 * P)]
    ok(mm)


def test_mprotect_start_or_end_splits_in_two(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    assert machine.mprotect(mm, a, 2 * P, PROT_READ) == 0
    assert ranges(mm) == [(a, a + 2 * P), (a + 2 * P, a + 8 * P)]
    assert machine.mprotect(mm, a + 6 * P, 2 * P, PROT_NONE) == 0
    assert ranges(mm) == [(a, a + 2 * P), (a + 2 * P, a + 6 * P), (a + 6 * P, a + 8 * P)]
    last = find_vma(mm, a + 6 * P)
    assert last is not None and last.vm_page_prot == PAGE_NONE
    ok(mm)


def test_mprotect_whole_vma_does_not_split(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 4 * P, RW, ANON)
    assert machine.mprotect(mm, a, 4 * P, PROT_READ | PROT_EXEC) == 0
    v = find_vma(mm, a)
    assert ranges(mm) == [(a, a + 4 * P)] and v is not None
    assert v.vm_flags & (VM_READ | VM_WRITE | VM_EXEC) == VM_READ | VM_EXEC
    assert v.vm_page_prot == PAGE_READONLY_EXEC
    assert (mm.exec_vm, mm.data_vm) == (4, 0)


def test_mprotect_to_the_same_protection_changes_nothing(machine: Machine,
                                                          mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 4 * P, RW, ANON)
    before = vma_state(mm)
    assert machine.mprotect(mm, a + P, P, RW) == 0
    assert vma_state(mm) == before


def test_mprotect_moves_the_boundary_case_4_and_5(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 4 * P, RW, ANON)
    machine.mprotect(mm, a, 4 * P, PROT_READ)  # read-only, but VM_ACCOUNT stays
    machine.mmap(mm, a + 4 * P, 4 * P, RW, ANON | MAP_FIXED)
    assert mm.map_count == 2
    # the tail of the lower VMA becomes RW: it joins the upper one (case 4)
    assert machine.mprotect(mm, a + 3 * P, P, RW) == 0
    assert ranges(mm) == [(a, a + 3 * P), (a + 3 * P, a + 8 * P)]
    upper = find_vma(mm, a + 3 * P)
    assert upper is not None and upper.vm_pgoff == (a + 3 * P) >> 12
    # the head of the upper VMA goes back to read-only: it joins the lower one (case 5)
    assert machine.mprotect(mm, a + 3 * P, 2 * P, PROT_READ) == 0
    assert ranges(mm) == [(a, a + 5 * P), (a + 5 * P, a + 8 * P)]
    ok(mm)


def test_vm_account_keeps_a_once_writable_range_apart(machine: Machine,
                                                      mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 4 * P, PROT_READ, ANON)  # never writable: no VM_ACCOUNT
    machine.mmap(mm, a + 4 * P, 4 * P, RW, ANON | MAP_FIXED)
    assert machine.mprotect(mm, a + 3 * P, P, RW) == 0  # charged: joins the upper one
    assert ranges(mm) == [(a, a + 3 * P), (a + 3 * P, a + 8 * P)]
    # back to read-only: still VM_ACCOUNT, so it cannot rejoin the lower VMA; a split
    assert machine.mprotect(mm, a + 3 * P, 2 * P, PROT_READ) == 0
    assert ranges(mm) == [(a, a + 3 * P), (a + 3 * P, a + 5 * P), (a + 5 * P, a + 8 * P)]
    ok(mm)


def test_mprotect_whole_vma_merges_into_next_case_8(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, PROT_READ, ANON)
    machine.mmap(mm, a + 2 * P, 2 * P, RW, ANON | MAP_FIXED)
    assert machine.mprotect(mm, a, 2 * P, RW) == 0
    assert ranges(mm) == [(a, a + 4 * P)]
    v = find_vma(mm, a)
    assert v is not None and v.vm_pgoff == a >> 12
    ok(mm)


def test_mprotect_across_several_vmas(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    machine.mmap(mm, a + 2 * P, 2 * P, PROT_READ, ANON | MAP_FIXED)
    machine.mmap(mm, a + 4 * P, 2 * P, PROT_EXEC, ANON | MAP_FIXED)
    assert machine.mprotect(mm, a + P, 4 * P, PROT_NONE) == 0
    # A's tail keeps VM_ACCOUNT (A was writable) so it stays apart from B; B (whole) and
    # C's head have equal flags: C's head joins B (case 5)
    assert ranges(mm) == [(a, a + P), (a + P, a + 2 * P), (a + 2 * P, a + 5 * P),
                          (a + 5 * P, a + 6 * P)]
    ok(mm)


def test_mprotect_private_readonly_to_writable_is_charged(machine: Machine,
                                                          mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 4 * P, PROT_READ, ANON)
    v = find_vma(mm, a)
    assert v is not None and not v.vm_flags & VM_ACCOUNT
    committed = mm.vm_globals.vm_committed_as
    assert machine.mprotect(mm, a, 4 * P, RW) == 0
    v = find_vma(mm, a)
    assert v is not None and v.vm_flags & VM_ACCOUNT and v.vm_page_prot == PAGE_COPY
    assert mm.vm_globals.vm_committed_as == committed + 4


def test_mprotect_errors_change_nothing(machine: Machine, mm: mm_struct) -> None:
    m = machine
    a = m.mmap(mm, 0, 4 * P, RW, ANON)
    unchanged(mm, lambda: m.mprotect(mm, a + 1, P, PROT_READ), Errno.EINVAL)
    unchanged(mm, lambda: m.mprotect(mm, a, P, 0x10), Errno.EINVAL)  # unknown prot bit
    unchanged(mm, lambda: m.mprotect(mm, a, P, PROT_GROWSDOWN | PROT_GROWSUP | PROT_READ),
              Errno.EINVAL)
    unchanged(mm, lambda: m.mprotect(mm, a, P, PROT_READ | PROT_GROWSUP), Errno.EINVAL)
    unchanged(mm, lambda: m.mprotect(mm, a, P, PROT_READ | PROT_GROWSDOWN), Errno.EINVAL)
    unchanged(mm, lambda: m.mprotect(mm, a - 2 * P, P, PROT_READ), Errno.ENOMEM)  # hole
    unchanged(mm, lambda: m.mprotect(mm, a - P, 2 * P, PROT_READ), Errno.ENOMEM)  # starts in hole
    unchanged(mm, lambda: m.mprotect(mm, a, (1 << 64) - P, PROT_READ), Errno.ENOMEM)  # wraps
    unchanged(mm, lambda: m.mprotect(mm, a + 8 * P, P, PROT_READ), Errno.ENOMEM)  # above all
    before = vma_state(mm)
    assert m.mprotect(mm, a, 0, PROT_READ) == 0  # len 0: success, nothing done
    assert m.mprotect(mm, a, P, PROT_READ | PROT_SEM) == 0  # PROT_SEM is accepted
    assert vma_state(mm) != before


def test_mprotect_into_a_hole_changes_what_came_before(machine: Machine,
                                                       mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    machine.mmap(mm, a + 3 * P, 2 * P, RW, ANON)
    assert machine.mprotect(mm, a, 5 * P, PROT_READ) == -int(Errno.ENOMEM)
    first = find_vma(mm, a)
    second = find_vma(mm, a + 3 * P)
    assert first is not None and first.vm_flags & VM_WRITE == 0  # changed before the hole
    assert second is not None and second.vm_flags & VM_WRITE  # untouched
    ok(mm)


def test_mprotect_growsdown_extends_to_the_vma_start(machine: Machine, mm: mm_struct) -> None:
    s = machine.mmap(mm, 0, 4 * P, RW, ANON | MAP_GROWSDOWN)
    assert machine.mprotect(mm, s + 2 * P, P, PROT_READ | PROT_GROWSDOWN) == 0
    assert ranges(mm) == [(s, s + 3 * P), (s + 3 * P, s + 4 * P)]
    ok(mm)


def test_split_at_max_map_count_fails_half_done(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    mm.vm_globals = vm_globals(sysctl_max_map_count=2)
    # first split (below) succeeds, the second finds map_count == 2: -ENOMEM, as in 5.10
    assert machine.mprotect(mm, a + 2 * P, 2 * P, PROT_READ) == -int(Errno.ENOMEM)
    assert ranges(mm) == [(a, a + 2 * P), (a + 2 * P, a + 8 * P)]
    # 5.10 leaves the two halves unmerged: every invariant but that one holds
    assert [v.invariant for v in check_vma(mm)] == ["mergeable_neighbours_merged"]
    # munmap that would split in the middle is refused up front, changing nothing
    before = vma_state(mm)
    assert machine.munmap(mm, a + 4 * P, P) == -int(Errno.ENOMEM)
    assert vma_state(mm) == before


def test_anon_vma_blocks_merging_with_a_different_one(machine: Machine,
                                                      mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 4 * P, RW, ANON)
    machine.mprotect(mm, a + 2 * P, 2 * P, PROT_READ)
    lo, hi = find_vma(mm, a), find_vma(mm, a + 2 * P)
    assert lo is not None and hi is not None
    # as after faults: each half has its own anon_vma
    lo.anon_vma, hi.anon_vma = anon_vma(), anon_vma()
    lo.anon_vma_chain, hi.anon_vma_chain = [lo.anon_vma], [hi.anon_vma]
    assert machine.mprotect(mm, a + 2 * P, 2 * P, RW) == 0
    assert mm.map_count == 2  # is_mergeable_anon_vma refuses two different anon_vmas


def test_shared_anon_vma_lets_mprotect_merge(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 4 * P, RW, ANON)
    v = find_vma(mm, a)
    assert v is not None
    av = anon_vma()
    v.anon_vma, v.anon_vma_chain = av, [av]
    machine.mprotect(mm, a + 2 * P, 2 * P, PROT_READ)  # the split copies the anon_vma
    hi = find_vma(mm, a + 2 * P)
    assert hi is not None and hi.anon_vma is av
    assert machine.mprotect(mm, a + 2 * P, 2 * P, RW) == 0
    assert ranges(mm) == [(a, a + 4 * P)]


def test_mprotect_call_tree(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    with Tracer() as t:
        machine.mprotect(mm, a + 2 * P, 2 * P, PROT_READ)
    root = t.roots[0]
    assert root.path_to("split_vma") == [
        "__x64_sys_mprotect", "do_mprotect_pkey", "mprotect_fixup", "split_vma"]
    names = root.names()
    assert names.count("__split_vma") == 2
    assert names.index("vma_merge") < names.index("split_vma") < names.index(
        "change_protection")
