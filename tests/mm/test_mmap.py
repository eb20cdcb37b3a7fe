"""5.10-exact behaviour of mm/mmap.c (mmap, munmap, placement, merging) as modelled in
refmodel.mm.mmap, through the Machine syscall layer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from refmodel.arch.x86.pgtable import pgd_offset
from refmodel.arch.x86.pgtable_types import PAGE_COPY, PAGE_NONE, PAGE_SHARED
from refmodel.config import MachineConfig, MiB
from refmodel.errno import Errno
from refmodel.fs import FMODE_READ, file
from refmodel.machine import Machine
from refmodel.mm.memory import p4d_alloc, pmd_alloc, pte_alloc, pud_alloc
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mman import (
    MAP_32BIT,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    RLIMIT_AS,
    RLIMIT_DATA,
    RLIMIT_MEMLOCK,
    rlimit,
)
from refmodel.mm.mmap import do_mmap, find_vma, find_vma_intersection, find_vma_prev
from refmodel.mm.vm_flags import (
    VM_ACCOUNT,
    VM_GROWSDOWN,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_WRITE,
)
from refmodel.security import security_mmap_addr
from refmodel.specs.vma import check_vma, vma_state, vmas
from refmodel.trace import CallNode, Tracer

P = 4096
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
MMAP_BASE = 0x7FFFF7FFF000
TASK_SIZE = 0x7FFFFFFFF000


def e(x: Errno) -> int:
    return -int(x)


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


def unchanged(m: Machine, mm: mm_struct, call: Callable[[], int], errno: Errno) -> None:
    """The call fails with errno and leaves the address space exactly as it was."""
    before = vma_state(mm)
    assert call() == e(errno)
    assert vma_state(mm) == before
    ok(mm)


# ------------------------------------------------------------------ layout and placement


def test_new_mm_layout_is_topdown_below_128mib_stack_gap(mm: mm_struct) -> None:
    assert mm.mmap_base == MMAP_BASE
    assert mm.task_size == TASK_SIZE
    assert mm.mmap_legacy_base == 0x2AAAAAAAB000
    assert mm.map_count == 0 and mm.mmap is None


def test_first_anonymous_mappings_land_just_below_mmap_base(machine: Machine,
                                                            mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, P, RW, ANON)
    assert a == MMAP_BASE - P
    b = machine.mmap(mm, 0, 3 * P, PROT_READ, ANON)
    assert b == MMAP_BASE - 4 * P
    c = machine.mmap(mm, 0, 100, RW, ANON)  # length rounded up to a page
    assert c == MMAP_BASE - 5 * P
    assert mm.map_count == 3
    ok(mm)


def test_two_fresh_adjacent_anonymous_mappings_merge(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 4 * P, RW, ANON)
    b = machine.mmap(mm, 0, 2 * P, RW, ANON)
    assert b == a - 2 * P
    assert ranges(mm) == [(b, a + 4 * P)]
    v = find_vma(mm, b)
    assert v is not None and v.vm_pgoff == b >> 12  # extended down: pgoff follows vm_start
    assert mm.total_vm == 6 and mm.data_vm == 6
    ok(mm)


def test_anonymous_private_rw_flags_and_prot(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, P, RW, ANON)
    v = find_vma(mm, a)
    assert v is not None
    assert v.vm_flags == (VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
                          | VM_ACCOUNT | VM_SOFTDIRTY) == 0x8100073
    assert v.vm_page_prot == PAGE_COPY == 0x8000000000000025  # private: no _PAGE_RW
    assert v.vm_pgoff == a >> 12 and v.anon_vma is None and v.vm_file is None
    n = machine.mmap(mm, 0, P, PROT_NONE, ANON)
    vn = find_vma(mm, n)
    assert vn is not None and vn.vm_page_prot == PAGE_NONE == 0x120
    assert not vn.vm_flags & VM_ACCOUNT  # not writable: not charged


def test_hint_is_honoured_when_free(machine: Machine, mm: mm_struct) -> None:
    assert machine.mmap(mm, 0x10000000, 2 * P, RW, ANON) == 0x10000000
    assert machine.mmap(mm, 0x20000123, P, RW, ANON) == 0x20000000  # rounded down
    ok(mm)


def test_hint_over_a_mapping_falls_back_to_the_top_down_search(machine: Machine,
                                                               mm: mm_struct) -> None:
    assert machine.mmap(mm, 0x10000000, 2 * P, RW, ANON) == 0x10000000
    assert machine.mmap(mm, 0x10000000 - P, 2 * P, RW, ANON) == MMAP_BASE - 2 * P


def test_hint_below_mmap_min_addr_is_raised_to_it(machine: Machine, mm: mm_struct) -> None:
    assert machine.mmap(mm, 0x1000, P, RW, ANON) == 0x10000
    assert machine.mmap(mm, 0x1000, P, RW, ANON) == MMAP_BASE - P  # now taken


def test_hint_above_task_size_is_ignored(machine: Machine, mm: mm_struct) -> None:
    assert machine.mmap(mm, TASK_SIZE - P, 2 * P, RW, ANON) == MMAP_BASE - 2 * P
    assert machine.mmap(mm, TASK_SIZE - P, P, RW, ANON) == TASK_SIZE - P  # fits exactly


def test_search_takes_the_highest_hole_that_fits(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 10 * P, RW, ANON)
    assert machine.munmap(mm, a + 2 * P, 3 * P) == 0  # 3-page hole low
    assert machine.munmap(mm, a + 7 * P, P) == 0  # 1-page hole high
    assert machine.mmap(mm, 0, 2 * P, PROT_READ, ANON) == a + 2 * P + P  # top of 3-page hole
    assert machine.mmap(mm, 0, P, PROT_READ, ANON) == a + 7 * P
    ok(mm)


def test_stack_guard_gap_is_kept_below_a_growsdown_vma(machine: Machine, mm: mm_struct) -> None:
    s = machine.mmap(mm, 0, 4 * P, RW, ANON | MAP_GROWSDOWN)
    assert s == MMAP_BASE - 4 * P
    v = find_vma(mm, s)
    assert v is not None and v.vm_flags & VM_GROWSDOWN
    assert mm.stack_vm == 4 and mm.data_vm == 0
    # the next mapping stays stack_guard_gap (1 MiB) below the stack's start
    assert machine.mmap(mm, 0, P, RW, ANON) == s - (1 << 20) - P
    ok(mm)


def test_full_top_down_space_falls_back_to_bottom_up(machine: Machine, mm: mm_struct) -> None:
    # one page at 0x300000000000 leaves no top-down gap below mmap_base for a request a
    # page bigger than [0x300000001000, mmap_base); bottom-up goes up to DEFAULT_MAP_WINDOW
    assert machine.mmap(mm, 0x300000000000, P, PROT_READ, ANON | MAP_FIXED) > 0
    big = MMAP_BASE - 0x300000001000 + P
    assert machine.mmap(mm, 0, big, PROT_NONE, ANON) == 0x300000001000
    ok(mm)


def test_map_32bit_searches_bottom_up_in_the_low_2gib(machine: Machine, mm: mm_struct) -> None:
    assert machine.mmap(mm, 0, P, RW, ANON | MAP_32BIT) == 0x40000000
    assert machine.mmap(mm, 0, P, RW, ANON | MAP_32BIT) == 0x40000000 + P


# ------------------------------------------------------------------ MAP_FIXED


def test_map_fixed_replaces_what_it_overlaps(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    assert machine.mmap(mm, a + 2 * P, 2 * P, PROT_READ, ANON | MAP_FIXED) == a + 2 * P
    assert ranges(mm) == [(a, a + 2 * P), (a + 2 * P, a + 4 * P), (a + 4 * P, a + 8 * P)]
    assert mm.total_vm == 8 and mm.data_vm == 6
    ok(mm)


def test_map_fixed_with_same_prot_over_a_vma_merges_back(machine: Machine,
                                                         mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    assert machine.mmap(mm, a + 2 * P, 2 * P, RW, ANON | MAP_FIXED) == a + 2 * P
    assert ranges(mm) == [(a, a + 8 * P)]  # unmapped, then case 1: prev and next joined
    ok(mm)


def test_map_fixed_noreplace_collision_is_eexist(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 4 * P, RW, ANON)
    unchanged(machine, mm, lambda: machine.mmap(mm, a + 3 * P, 2 * P, RW,
                                                ANON | MAP_FIXED_NOREPLACE), Errno.EEXIST)
    unchanged(machine, mm, lambda: machine.mmap(mm, a - P, 2 * P, RW,
                                                ANON | MAP_FIXED_NOREPLACE), Errno.EEXIST)
    assert machine.mmap(mm, a - 2 * P, 2 * P, RW, ANON | MAP_FIXED_NOREPLACE) == a - 2 * P
    assert ranges(mm) == [(a - 2 * P, a + 4 * P)]


# ------------------------------------------------------------------ merges


def test_merge_extends_previous(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    assert machine.mmap(mm, a + 2 * P, 3 * P, RW, ANON | MAP_FIXED) == a + 2 * P
    assert ranges(mm) == [(a, a + 5 * P)]
    v = find_vma(mm, a)
    assert v is not None and v.vm_pgoff == a >> 12


def test_merge_extends_next(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    assert machine.mmap(mm, a - 3 * P, 3 * P, RW, ANON | MAP_FIXED) == a - 3 * P
    assert ranges(mm) == [(a - 3 * P, a + 2 * P)]
    v = find_vma(mm, a)
    assert v is not None and v.vm_pgoff == (a - 3 * P) >> 12


def test_merge_bridges_a_hole(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    b = machine.mmap(mm, a + 5 * P, 2 * P, RW, ANON)
    assert mm.map_count == 2
    assert machine.mmap(mm, a + 2 * P, 3 * P, RW, ANON | MAP_FIXED) == a + 2 * P
    assert ranges(mm) == [(a, b + 2 * P)] and mm.map_count == 1
    ok(mm)


def test_no_merge_across_different_protections(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    machine.mmap(mm, a + 2 * P, 2 * P, PROT_READ, ANON | MAP_FIXED)
    assert mm.map_count == 2


def test_no_merge_when_pgoff_does_not_follow(machine: Machine, mm: mm_struct) -> None:
    f = file("data.bin", 1 << 20)
    a = machine.mmap(mm, 0x10000000, 2 * P, PROT_READ, MAP_PRIVATE, f, 0)
    machine.mmap(mm, a + 2 * P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, f, 8 * P)
    assert mm.map_count == 2
    machine.mmap(mm, a + 4 * P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, f, 10 * P)
    assert mm.map_count == 2  # the second and third join: offsets follow
    ok(mm)


def test_shared_anonymous_mappings_never_merge(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS)
    b = machine.mmap(mm, 0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS)
    assert b == a - 2 * P and mm.map_count == 2
    va, vb = find_vma(mm, a), find_vma(mm, b)
    assert va is not None and vb is not None
    assert va.vm_flags & (VM_SHARED | VM_MAYSHARE) == VM_SHARED | VM_MAYSHARE
    assert va.vm_pgoff == 0 and va.vm_file is not None and va.vm_file.shmem
    assert va.vm_file is not vb.vm_file  # shmem_zero_setup: one file each
    assert va.vm_page_prot == PAGE_SHARED  # shmem: no write notification
    assert not va.vm_flags & VM_ACCOUNT
    ok(mm)


def test_shared_writable_file_mapping_is_write_notified(machine: Machine, mm: mm_struct) -> None:
    f = file("data.bin", 1 << 20)
    a = machine.mmap(mm, 0, 2 * P, RW, MAP_SHARED, f, 0)
    v = find_vma(mm, a)
    assert v is not None and v.vm_flags & VM_SHARED and v.vm_file is f
    assert v.vm_page_prot == PAGE_COPY  # page_mkwrite: mapped read-only until written
    assert f.f_count == 2
    assert machine.munmap(mm, a, 2 * P) == 0 and f.f_count == 1


def test_read_only_file_shared_mapping_drops_maywrite(machine: Machine, mm: mm_struct) -> None:
    f = file("ro.bin", 1 << 20, f_mode=FMODE_READ)
    a = machine.mmap(mm, 0, P, PROT_READ, MAP_SHARED, f, 0)
    v = find_vma(mm, a)
    assert v is not None and not v.vm_flags & (VM_SHARED | VM_MAYWRITE)
    assert v.vm_flags & VM_MAYSHARE
    unchanged(machine, mm, lambda: machine.mprotect(mm, a, P, RW), Errno.EACCES)


# ------------------------------------------------------------------ munmap


def test_munmap_middle_splits_in_two(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 8 * P, RW, ANON)
    assert machine.munmap(mm, a + 2 * P, 2 * P) == 0
    assert ranges(mm) == [(a, a + 2 * P), (a + 4 * P, a + 8 * P)]
    hi = find_vma(mm, a + 4 * P)
    assert hi is not None and hi.vm_pgoff == (a + 4 * P) >> 12
    assert mm.total_vm == 6 and mm.vm_globals.vm_committed_as >= 6
    ok(mm)


def test_munmap_across_several_vmas_and_holes(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    machine.mmap(mm, a + 3 * P, 2 * P, PROT_READ, ANON)
    machine.mmap(mm, a + 6 * P, 2 * P, RW, ANON)
    assert machine.munmap(mm, a + P, 6 * P) == 0
    assert ranges(mm) == [(a, a + P), (a + 7 * P, a + 8 * P)]
    ok(mm)


def test_munmap_of_nothing_succeeds(machine: Machine, mm: mm_struct) -> None:
    before = vma_state(mm)
    assert machine.munmap(mm, 0x10000000, P) == 0
    assert vma_state(mm) == before


def test_munmap_frees_the_page_tables_of_the_range(machine: Machine, mm: mm_struct) -> None:
    pgdat = machine.pgdat
    allocated_before = dict(pgdat.allocated)
    a = machine.mmap(mm, 0x10000000, 4 * P, RW, ANON)
    pgd = pgd_offset(mm, a)
    p4d = p4d_alloc(pgdat, mm, pgd, a)
    assert p4d is not None
    pud = pud_alloc(pgdat, mm, p4d, a)
    assert pud is not None
    pmd = pmd_alloc(pgdat, mm, pud, a)
    assert pmd is not None
    assert pte_alloc(pgdat, mm, pmd) == 0
    assert mm.pgtables_bytes == 3 * P  # pud, pmd, pte tables
    assert machine.munmap(mm, a, 4 * P) == 0
    assert mm.pgtables_bytes == 0
    assert dict(pgdat.allocated) == allocated_before  # the three table pages are free again


def test_munmap_keeps_page_tables_a_neighbour_still_uses(machine: Machine,
                                                         mm: mm_struct) -> None:
    pgdat = machine.pgdat
    a = machine.mmap(mm, 0x10000000, 4 * P, RW, ANON)
    pgd = pgd_offset(mm, a)
    p4d = p4d_alloc(pgdat, mm, pgd, a)
    assert p4d is not None
    pud = pud_alloc(pgdat, mm, p4d, a)
    assert pud is not None
    pmd = pmd_alloc(pgdat, mm, pud, a)
    assert pmd is not None
    assert pte_alloc(pgdat, mm, pmd) == 0
    assert machine.munmap(mm, a, P) == 0  # the rest of the VMA shares the PTE table
    assert mm.pgtables_bytes == 3 * P


# ------------------------------------------------------------------ errno checks


def test_mmap_argument_errors_change_nothing(machine: Machine, mm: mm_struct) -> None:
    m = machine
    a = m.mmap(mm, 0, 4 * P, RW, ANON)
    f = file("data.bin", 1 << 20)
    cases: list[tuple[Callable[[], int], Errno]] = [
        (lambda: m.mmap(mm, 0, 0, RW, ANON), Errno.EINVAL),  # zero length
        (lambda: m.mmap(mm, 0, P, RW, ANON, -1, 1), Errno.EINVAL),  # unaligned offset
        (lambda: m.mmap(mm, 0, (1 << 64) - 1, RW, ANON), Errno.ENOMEM),  # PAGE_ALIGN wraps
        (lambda: m.mmap(mm, 0, TASK_SIZE + P, RW, ANON), Errno.ENOMEM),  # > TASK_SIZE
        (lambda: m.mmap(mm, a + 1, P, RW, ANON | MAP_FIXED), Errno.EINVAL),  # unaligned
        (lambda: m.mmap(mm, 0x1000, P, RW, ANON | MAP_FIXED), Errno.EPERM),  # < min_addr
        (lambda: m.mmap(mm, TASK_SIZE - P, 2 * P, RW, ANON | MAP_FIXED), Errno.ENOMEM),
        (lambda: m.mmap(mm, 0, P, RW, MAP_ANONYMOUS), Errno.EINVAL),  # no map type
        (lambda: m.mmap(mm, 0, P, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS), Errno.EINVAL),
        (lambda: m.mmap(mm, 0, P, RW, 0xF | MAP_ANONYMOUS), Errno.EINVAL),
        (lambda: m.mmap(mm, 0, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN),
         Errno.EINVAL),
        (lambda: m.mmap(mm, 0, P, RW, MAP_PRIVATE), Errno.EBADF),  # no file
        (lambda: m.mmap(mm, 0, P, RW, ANON | MAP_HUGETLB), Errno.EINVAL),  # no hugetlbfs
        (lambda: m.mmap(mm, 0, P, PROT_READ, MAP_PRIVATE, f, 1 << 63), Errno.EOVERFLOW),
        (lambda: m.mmap(mm, 0, P, PROT_READ, MAP_PRIVATE | MAP_GROWSDOWN, f, 0),
         Errno.EINVAL),
        (lambda: m.mmap(mm, 0, P, PROT_READ, 0x4, f, 0), Errno.EINVAL),
        (lambda: m.mmap(mm, 0, P, RW, ANON | MAP_LOCKED), Errno.EAGAIN),  # > 64 KiB? no
    ]
    for call, errno in cases[:-1]:
        unchanged(m, mm, call, errno)
    # MAP_LOCKED within the 64 KiB memlock limit works; beyond it is EAGAIN
    unchanged(m, mm, lambda: m.mmap(mm, 0, 17 * P, RW, ANON | MAP_LOCKED), Errno.EAGAIN)
    assert m.mmap(mm, 0, 16 * P, RW, ANON | MAP_LOCKED) > 0 and mm.locked_vm == 16


def test_map_locked_without_memlock_limit_is_eperm(machine: Machine, mm: mm_struct) -> None:
    mm.rlim[RLIMIT_MEMLOCK] = rlimit(0, 0)
    unchanged(machine, mm, lambda: machine.mmap(mm, 0, P, RW, ANON | MAP_LOCKED), Errno.EPERM)
    mm.cap_ipc_lock = True
    assert machine.mmap(mm, 0, P, RW, ANON | MAP_LOCKED) > 0


def test_file_permission_errors(machine: Machine, mm: mm_struct) -> None:
    ro = file("ro.bin", P, f_mode=FMODE_READ)
    wo = file("wo.bin", P, f_mode=0x2)
    nx = file("nx.bin", P, noexec=True)
    nommap = file("pipe", 0, has_mmap=False)
    m = machine
    unchanged(m, mm, lambda: m.mmap(mm, 0, P, RW, MAP_SHARED, ro, 0), Errno.EACCES)
    unchanged(m, mm, lambda: m.mmap(mm, 0, P, PROT_READ, MAP_PRIVATE, wo, 0), Errno.EACCES)
    unchanged(m, mm, lambda: m.mmap(mm, 0, P, PROT_EXEC, MAP_PRIVATE, nx, 0), Errno.EPERM)
    unchanged(m, mm, lambda: m.mmap(mm, 0, P, PROT_READ, MAP_PRIVATE, nommap, 0), Errno.ENODEV)
    assert m.mmap(mm, 0, P, RW, MAP_PRIVATE, ro, 0) > 0  # private writable: fine
    a = m.mmap(mm, 0, P, PROT_READ, MAP_PRIVATE, nx, 0)
    v = find_vma(mm, a)
    assert v is not None and not v.vm_flags & VM_MAYEXEC


def test_map_count_limit_is_strictly_above_max(machine: Machine, mm: mm_struct) -> None:
    mm.vm_globals = type(mm.vm_globals)(sysctl_max_map_count=3)
    for i in range(4):  # map_count 0..3 pass "map_count > 3"
        assert machine.mmap(mm, 0, P, PROT_READ if i % 2 else RW, ANON) > 0
    assert mm.map_count == 4
    unchanged(machine, mm, lambda: machine.mmap(mm, 0, P, RW, ANON), Errno.ENOMEM)


_MAX_MAP_COUNT_RUN = """
from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from refmodel.specs.vma import vma_state
m = Machine(MachineConfig(memory=64 * MiB))
mm = m.new_mm()
assert mm.vm_globals.sysctl_max_map_count == 65530
prots = (PROT_READ | PROT_WRITE, PROT_READ)
for i in range(65531):
    assert m.mmap(mm, 0, 4096, prots[i & 1], MAP_PRIVATE | MAP_ANONYMOUS) > 0
assert mm.map_count == 65531
before = vma_state(mm)
assert m.mmap(mm, 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS) == -12
assert vma_state(mm) == before
# a munmap that removes a whole VMA needs no split: fine at the limit
assert m.munmap(mm, mm.mmap_base - 4 * 4096, 4096) == 0
print("ok")
"""


def test_default_max_map_count_is_65530() -> None:
    # in a child process: 65,531 VMAs would leave this process's heap grown for later tests
    out = subprocess.run([sys.executable, "-c", _MAX_MAP_COUNT_RUN], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_rlimit_as_and_data(machine: Machine, mm: mm_struct) -> None:
    mm.rlim[RLIMIT_AS] = rlimit(8 * P, 8 * P)
    assert machine.mmap(mm, 0, 8 * P, PROT_READ, ANON) > 0
    unchanged(machine, mm, lambda: machine.mmap(mm, 0, P, PROT_READ, ANON), Errno.ENOMEM)
    mm2 = machine.new_mm()
    mm2.rlim[RLIMIT_DATA] = rlimit(2 * P, 2 * P)
    unchanged(machine, mm2, lambda: machine.mmap(mm2, 0, 3 * P, RW, ANON), Errno.ENOMEM)
    assert machine.mmap(mm2, 0, 3 * P, PROT_READ, ANON) > 0  # not a data mapping


def test_munmap_argument_errors(machine: Machine, mm: mm_struct) -> None:
    m = machine
    a = m.mmap(mm, 0, 4 * P, RW, ANON)
    unchanged(m, mm, lambda: m.munmap(mm, a + 1, P), Errno.EINVAL)
    unchanged(m, mm, lambda: m.munmap(mm, a, 0), Errno.EINVAL)
    unchanged(m, mm, lambda: m.munmap(mm, TASK_SIZE + P, P), Errno.EINVAL)
    unchanged(m, mm, lambda: m.munmap(mm, a, TASK_SIZE), Errno.EINVAL)
    unchanged(m, mm, lambda: m.munmap(mm, -P, P), Errno.EINVAL)
    assert m.munmap(mm, a, 1) == 0  # length rounded up to a page
    assert ranges(mm) == [(a + P, a + 4 * P)]


# ------------------------------------------------------------------ look-ups


def test_find_vma_family(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    b = machine.mmap(mm, 0x10010000, 2 * P, RW, ANON)
    va, vb = find_vma(mm, a), find_vma(mm, b)
    assert isinstance(va, vm_area_struct) and isinstance(vb, vm_area_struct)
    assert find_vma(mm, 0) is va
    assert find_vma(mm, a + 2 * P) is vb  # first VMA ending above addr
    assert find_vma(mm, b + 2 * P) is None
    assert find_vma_prev(mm, b) == (vb, va)
    assert find_vma_prev(mm, b + 2 * P) == (None, vb)
    assert find_vma_intersection(mm, a + 2 * P, b) is None
    assert find_vma_intersection(mm, a + 2 * P, b + 1) is vb


# ------------------------------------------------------------------ accounting


def test_accounting_counters_follow_the_vmas(machine: Machine, mm: mm_struct) -> None:
    m = machine
    m.mmap(mm, 0, 2 * P, RW, ANON)  # data
    m.mmap(mm, 0, 3 * P, PROT_READ | PROT_EXEC, ANON)  # exec
    m.mmap(mm, 0, 4 * P, RW, ANON | MAP_GROWSDOWN)  # stack
    m.mmap(mm, 0, 5 * P, PROT_READ, ANON)  # none of them
    m.mmap(mm, 0, 6 * P, RW, MAP_SHARED | MAP_ANONYMOUS)  # shared: not data
    assert (mm.total_vm, mm.data_vm, mm.exec_vm, mm.stack_vm) == (20, 2, 3, 4)
    # overcommit: only private writable mappings are charged (2 + 4 pages)
    ok(mm)



# ------------------------------------------------------------------ errata (docs/errata.md)


def _trace(call: Callable[[], int]) -> CallNode:
    with Tracer() as t:
        call()
    assert len(t.roots) == 1
    return t.roots[0]


def test_errata_1_get_unmapped_area_runs_for_map_fixed_too(machine: Machine,
                                                           mm: mm_struct) -> None:
    root = _trace(lambda: machine.mmap(mm, 0x10000000, P, RW, ANON | MAP_FIXED))
    assert root.path_to("arch_get_unmapped_area_topdown") == [
        "__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap", "get_unmapped_area",
        "arch_get_unmapped_area_topdown"]
    names = root.names()
    assert names.index("get_unmapped_area") < names.index("mmap_region")
    # and its checks apply to MAP_FIXED: unaligned, beyond TASK_SIZE, below mmap_min_addr
    assert machine.mmap(mm, 0x10000001, P, RW, ANON | MAP_FIXED) == e(Errno.EINVAL)
    assert machine.mmap(mm, 0x8000, P, RW, ANON | MAP_FIXED) == e(Errno.EPERM)


def test_errata_2_mmap_region_merges_through_vma_merge(machine: Machine,
                                                      mm: mm_struct) -> None:
    machine.mmap(mm, 0, 2 * P, RW, ANON)
    merged = _trace(lambda: machine.mmap(mm, 0, P, RW, ANON))
    region = merged.find("mmap_region")
    assert region is not None
    assert region.path_to("__vma_adjust") == ["mmap_region", "vma_merge", "__vma_adjust"]
    assert "vm_area_alloc" not in region.names() and "vma_link" not in region.names()
    fresh = _trace(lambda: machine.mmap(mm, 0, P, PROT_READ, ANON))
    region = fresh.find("mmap_region")
    assert region is not None
    assert "__vma_adjust" not in region.names() and "vma_adjust" not in region.names()
    assert "vm_area_alloc" in region.names() and "vma_link" in region.names()


def test_errata_3_security_mmap_addr_checks_mmap_min_addr_not_overlap(
        machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    assert security_mmap_addr(mm, a) == 0  # already mapped: not its business
    assert security_mmap_addr(mm, 0xF000) == e(Errno.EPERM)  # below mmap_min_addr
    mm.cap_sys_rawio = True
    assert security_mmap_addr(mm, 0xF000) == 0
    assert machine.mmap(mm, 0xF000, P, RW, ANON | MAP_FIXED) == 0xF000
    # the overlap test is do_mmap's find_vma for MAP_FIXED_NOREPLACE
    root = _trace(lambda: machine.mmap(mm, a, P, RW, ANON | MAP_FIXED_NOREPLACE))
    assert root.result == str(e(Errno.EEXIST))
    dm = root.find("do_mmap")
    assert dm is not None
    assert [c.name for c in dm.children] == ["PAGE_ALIGN", "get_unmapped_area", "find_vma"]
    assert dm.path_to("cap_mmap_addr") == [
        "do_mmap", "get_unmapped_area", "security_mmap_addr", "cap_mmap_addr"]


def test_errata_4_do_mmap_populate_is_len_not_addr(mm: mm_struct) -> None:
    addr, populate = do_mmap(mm, None, 0, 3 * P, RW, ANON, 0)
    assert (addr, populate) == (MMAP_BASE - 3 * P, 0)
    addr, populate = do_mmap(mm, None, 0, 2 * P, RW, ANON | MAP_POPULATE, 0)
    assert populate == 2 * P and addr == MMAP_BASE - 5 * P
    addr, populate = do_mmap(mm, None, 0, P, RW, ANON | MAP_LOCKED, 0)
    assert populate == P


def test_errata_5_mmap_region_order(machine: Machine, mm: mm_struct) -> None:
    root = _trace(lambda: machine.mmap(mm, 0, P, RW, ANON))
    region = root.find("mmap_region")
    assert region is not None
    top = [c.name for c in region.children]
    order = ["may_expand_vm", "munmap_vma_range", "vma_merge", "vm_area_alloc", "vma_link",
             "vm_stat_account", "vma_set_page_prot"]
    assert [n for n in top if n in order] == order
    assert "find_vma_prev" not in region.names()


def test_errata_6_do_mmap_computes_vm_flags(machine: Machine, mm: mm_struct) -> None:
    root = _trace(lambda: machine.mmap(mm, 0, P, PROT_READ, ANON))
    assert root.path_to("calc_vm_prot_bits") == [
        "__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap", "calc_vm_prot_bits"]
    region = root.find("mmap_region")
    assert region is not None and region.args["vm_flags"] == str(VM_READ | 0x70)
    assert "calc_vm_prot_bits" not in region.names()


def test_errata_7_vma_adjust_also_removes_or_inserts(machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0x10000000, 2 * P, RW, ANON)
    machine.mmap(mm, a + 3 * P, 2 * P, RW, ANON)
    assert mm.map_count == 2
    root = _trace(lambda: machine.mmap(mm, a + 2 * P, P, RW, ANON | MAP_FIXED))
    assert mm.map_count == 1  # __vma_adjust removed the next VMA (case 1)
    adj = root.find("__vma_adjust")
    assert adj is not None and "vm_area_free" in adj.names()
    # split_vma inserts the new half through vma_adjust's insert argument
    root = _trace(lambda: machine.mprotect(mm, a + P, P, PROT_READ))
    adj = root.find("vma_adjust")
    assert adj is not None and "__insert_vm_struct" in adj.names()
    assert mm.map_count == 3


def test_errata_8_mm_pgd_is_a_pgd_t_pointer(machine: Machine, mm: mm_struct) -> None:
    # pgd_t *pgd: the PGD page itself (the model: its pfn), indexed by pgd_offset
    assert isinstance(mm.pgd, int) and mm.pgd > 0
    assert pgd_offset(mm, 0x10000000) >> 12 == mm.pgd
    assert pgd_offset(mm, 0x10000000) & 0xFFF == 0  # entry 0 of that page


def test_five_level_paging_keeps_the_47_bit_window_unless_hinted_above() -> None:
    m5 = Machine(MachineConfig(memory=64 * MiB, paging_levels=5))
    mm = m5.new_mm()
    assert mm.task_size == 0xFFFFFFFFFFF000 and mm.mmap_base == MMAP_BASE
    assert m5.mmap(mm, 0, P, RW, ANON) == MMAP_BASE - P  # hint-less: below 47 bits
    high = 1 << 50
    assert m5.mmap(mm, high, P, RW, ANON) == high  # a hint above 47 bits is honoured
    # a hint straddling the 47-bit boundary is not taken; the search stays below mmap_base
    assert m5.mmap(mm, (1 << 47) - P, 2 * P, RW, ANON) == MMAP_BASE - 3 * P
    # a taken hint above 47 bits searches the full space: high limit mmap_base +
    # (TASK_SIZE_MAX - DEFAULT_MAP_WINDOW)
    high_limit = MMAP_BASE + (0xFFFFFFFFFFF000 - 0x7FFFFFFFF000)
    assert m5.mmap(mm, high, P, RW, ANON) == high_limit - P
    ok(mm)


# ------------------------------------------------------------------ brk


def _heap(mm: mm_struct) -> int:
    """What exec leaves for a small non-PIE program: the heap right after .bss."""
    mm.start_data, mm.end_data = 0x601000, 0x602000
    mm.start_brk = mm.brk = 0x603000
    return mm.start_brk


def test_brk_grows_one_merged_heap_vma(machine: Machine, mm: mm_struct) -> None:
    base = _heap(mm)
    assert machine.brk(mm, 0) == base  # a query: brk below start_brk returns the old one
    assert machine.brk(mm, base + 100) == base + 100
    assert ranges(mm) == [(base, base + P)]
    assert machine.brk(mm, base + 3 * P) == base + 3 * P
    assert ranges(mm) == [(base, base + 3 * P)]  # extended by vma_merge
    v = find_vma(mm, base)
    assert v is not None and v.vm_flags == 0x8100073 and v.vm_pgoff == base >> 12
    assert (mm.total_vm, mm.data_vm) == (3, 3)
    ok(mm)


def test_brk_shrinks_with_munmap_and_refuses_to_run_into_a_mapping(machine: Machine,
                                                                   mm: mm_struct) -> None:
    base = _heap(mm)
    machine.brk(mm, base + 4 * P)
    assert machine.brk(mm, base + P) == base + P
    assert ranges(mm) == [(base, base + P)] and mm.total_vm == 1
    machine.mmap(mm, base + 4 * P, P, PROT_READ, ANON | MAP_FIXED)
    # growing to within a page of the next mapping is refused: the old break comes back
    assert machine.brk(mm, base + 3 * P + 1) == base + P
    assert machine.brk(mm, base + 3 * P) == base + 3 * P
    ok(mm)


def test_brk_respects_rlimit_data(machine: Machine, mm: mm_struct) -> None:
    base = _heap(mm)
    mm.rlim[RLIMIT_DATA] = rlimit(4 * P, 4 * P)  # the data segment counts (1 page)
    assert machine.brk(mm, base + 4 * P) == base
    assert machine.brk(mm, base + 3 * P) == base + 3 * P


@pytest.mark.parametrize("top", [-1, (1 << 64) - 1, (1 << 64) - P, (1 << 64) - P + 1])
def test_brk_into_the_last_page_is_refused_and_changes_nothing(machine: Machine,
                                                               mm: mm_struct, top: int) -> None:
    # PAGE_ALIGN wraps to 0 and newbrk - oldbrk to a huge unsigned length that
    # get_unmapped_area refuses; the model's Python subtraction went negative and linked a
    # VMA ending at 0 (a Machine-API audit found it)
    base = _heap(mm)
    machine.brk(mm, base + P)
    before = ranges(mm)
    assert machine.brk(mm, top) == base + P
    assert ranges(mm) == before and mm.brk == base + P
    ok(mm)


def test_a_torn_down_mm_is_refused_by_every_syscall(machine: Machine) -> None:
    t = machine.spawn()
    mm = t.mm
    assert mm is not None
    machine.exit(t)
    tables = dict(machine.pgdat.pgtables)
    calls: list[Callable[[], int]] = [
        lambda: machine.mmap(mm, 0, P, PROT_READ, ANON),
        lambda: machine.munmap(mm, 0x10000, P),
        lambda: machine.mprotect(mm, 0x10000, P, PROT_READ),
        lambda: machine.brk(mm, 0x10000)]
    for call in calls:
        with pytest.raises(ValueError, match="torn down"):
            call()
    assert machine.pgdat.pgtables == tables  # nothing was allocated for it


# ------------------------------------------------------------------ refmodel trace


def test_trace_scenarios_show_the_5_10_call_trees() -> None:
    from refmodel.scenarios import trace_scenario

    mmap_roots = trace_scenario("mmap").roots
    assert [r.name for r in mmap_roots] == ["__x64_sys_mmap", "__x64_sys_mmap"]
    assert mmap_roots[0].path_to("__vma_adjust") == [
        "__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap", "mmap_region",
        "vma_merge", "__vma_adjust"]
    assert mmap_roots[1].path_to("__vma_link_rb") == [
        "__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap", "mmap_region",
        "vma_link", "__vma_link", "__vma_link_rb"]
    assert mmap_roots[0].path_to("unmapped_area_topdown") == [
        "__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap", "get_unmapped_area",
        "arch_get_unmapped_area_topdown", "vm_unmapped_area", "unmapped_area_topdown"]

    (munmap,) = trace_scenario("munmap").roots
    assert munmap.path_to("free_pgd_range") == [
        "__x64_sys_munmap", "__vm_munmap", "__do_munmap", "unmap_region", "free_pgtables",
        "free_pgd_range"]
    do_munmap = munmap.find("__do_munmap")
    assert do_munmap is not None
    assert [c.name for c in do_munmap.children if c.name != "find_vma"] == [
        "PAGE_ALIGN", "__split_vma", "__split_vma", "detach_vmas_to_be_unmapped",
        "unmap_region", "remove_vma_list"]

    # 5.10 page-aligns the length first, with the PAGE_ALIGN the proofs cover
    do_mmap = mmap_roots[1].find("do_mmap")
    assert do_mmap is not None and do_mmap.children[0].name == "PAGE_ALIGN"

    split, merge = trace_scenario("mprotect").roots
    for root in (split, merge):
        dmp = root.find("do_mprotect_pkey")
        assert dmp is not None and dmp.children[0].name == "PAGE_ALIGN"
    assert split.names().count("split_vma") == 2
    assert merge.path_to("__vma_adjust") == [
        "__x64_sys_mprotect", "do_mprotect_pkey", "mprotect_fixup", "vma_merge",
        "__vma_adjust"]
    assert "split_vma" not in merge.names()


def test_overcommit_guess_refuses_only_more_than_ram_plus_swap(machine: Machine,
                                                               mm: mm_struct) -> None:
    huge = 1 << 40  # far more than the machine's RAM
    committed = mm.vm_globals.vm_committed_as
    unchanged(machine, mm, lambda: machine.mmap(mm, 0, huge, RW, ANON), Errno.ENOMEM)
    unchanged(machine, mm, lambda: machine.mmap(mm, 0, huge, RW, MAP_SHARED | MAP_ANONYMOUS),
              Errno.ENOMEM)  # shmem_acct_size on the new shmem object
    a = machine.mmap(mm, 0, huge, PROT_READ, ANON)  # not writable: not charged
    assert a > 0 and mm.vm_globals.vm_committed_as == committed
    assert machine.mmap(mm, 0, huge, RW, ANON | MAP_NORESERVE) > 0
    s = machine.mmap(mm, 0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS)
    assert mm.vm_globals.vm_committed_as == committed + 4
    machine.munmap(mm, s, 2 * P)  # the object lives on in the other half
    assert mm.vm_globals.vm_committed_as == committed + 4
    machine.munmap(mm, s + 2 * P, 2 * P)  # last reference: shmem_unacct_size
    assert mm.vm_globals.vm_committed_as == committed
    ok(mm)


def test_file_only_calls_are_made_for_file_vmas_only(machine: Machine, mm: mm_struct) -> None:
    # 5.10 calls __vma_link_file (split_vma's insert, first thing in __vma_adjust) and
    # __remove_shared_vm_struct (unlink_file_vma, a merge's removed VMA) only under
    # `if (file)`; unmap_region starts with lru_add_drain.
    a = machine.mmap(mm, 0, 4 * P, RW, ANON)
    root = _trace(lambda: machine.munmap(mm, a + P, P))
    assert "__vma_link_file" not in root.names()
    assert "__remove_shared_vm_struct" not in root.names()
    ur = root.find("unmap_region")
    assert ur is not None and ur.children[0].name == "lru_add_drain"
    s = machine.mmap(mm, 0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS)  # a shmem file behind it
    root = _trace(lambda: machine.munmap(mm, s + P, P))
    adj = root.find("__vma_adjust")
    assert adj is not None and adj.children[0].name == "__vma_link_file"
    ufv = root.find("unlink_file_vma")
    assert ufv is not None and [c.name for c in ufv.children] == ["__remove_shared_vm_struct"]
    ok(mm)


def test_change_pte_range_asks_is_swap_pte_for_every_non_present_pte(
        machine: Machine, mm: mm_struct) -> None:
    a = machine.mmap(mm, 0, 2 * P, RW, ANON)
    t = machine.spawn()
    t.mm = mm
    assert machine.write(t, a, b"x") == 1  # the first page is present, the second is not
    root = _trace(lambda: machine.mprotect(mm, a, 2 * P, PROT_READ))
    cpr = root.find("change_pte_range")
    assert cpr is not None
    names = [c.name for c in cpr.children]
    assert "is_swap_pte" in names and names.count("pte_present") == 2
    pmd = root.find("change_pmd_range")
    assert pmd is not None
    assert [c.name for c in pmd.children][:3] == [
        "pmd_offset", "pmd_addr_end", "pmd_none_or_clear_bad_unless_trans_huge"]


def test_legacy_layout_takes_the_legacy_base_for_mmap_base() -> None:
    # arch_pick_mmap_base: the legacy layout's mmap_base is the legacy base
    from refmodel.arch.x86.mmap import arch_pick_mmap_layout
    from refmodel.mm.mman import ADDR_COMPAT_LAYOUT, rlimit

    m = Machine(MachineConfig(memory=64 * MiB))
    mm = m.new_mm()
    mm.personality |= ADDR_COMPAT_LAYOUT
    with Tracer() as tr:
        arch_pick_mmap_layout(mm, rlimit(8 * MiB, -1))
    assert mm.mmap_base == mm.mmap_legacy_base == 0x2AAAAAAAB000
    apmb = tr.roots[0].find("arch_pick_mmap_base")
    assert apmb is not None
    assert [c.name for c in apmb.children] == ["mmap_legacy_base", "mmap_is_legacy"]


def test_free_pgtables_unlinks_each_vma_before_freeing_its_tables(machine: Machine,
                                                                   mm: mm_struct) -> None:
    # 5.10: unmap_region is lru_add_drain, tlb_gather_mmu, update_hiwater_rss, unmap_vmas,
    # free_pgtables, tlb_finish_mmu; free_pgtables unlinks each VMA (unlink_anon_vmas,
    # unlink_file_vma) before free_pgd_range.
    a = machine.mmap(mm, 0, 4 * P, RW, ANON)
    root = _trace(lambda: machine.munmap(mm, a, 4 * P))
    ur = root.find("unmap_region")
    assert ur is not None and [c.name for c in ur.children] == [
        "lru_add_drain", "tlb_gather_mmu", "update_hiwater_rss", "unmap_vmas", "free_pgtables",
        "tlb_finish_mmu"]
    fp = ur.children[4]
    assert [c.name for c in fp.children] == ["unlink_anon_vmas", "unlink_file_vma",
                                             "free_pgd_range"]
    ok(mm)


def test_shared_anonymous_unmap_evicts_through_shmem_evict_inode_which_unaccounts() -> None:
    """mm/shmem.c: the object's overcommit charge goes back when the inode is evicted,
    in shmem_evict_inode (shmem_unacct_size → vm_unacct_memory), even for an object that
    never held a page."""
    from refmodel.mm.mman import MAP_SHARED

    m = Machine(MachineConfig(memory=64 * MiB))
    t = m.spawn()
    assert t.mm is not None
    committed = m.vm_globals.vm_committed_as
    a = m.mmap(t.mm, 0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    # only the shmem object is charged (a shared VMA is not VM_ACCOUNT)
    assert a > 0 and m.vm_globals.vm_committed_as == committed + 3
    with Tracer() as tr:
        assert m.munmap(t.mm, a, 3 * 4096) == 0
    assert m.vm_globals.vm_committed_as == committed
    evict = tr.roots[0].find("shmem_evict_inode")
    assert evict is not None
    assert [c.name for c in evict.children] == ["shmem_unacct_size", "shmem_truncate_range"]
    unacct = evict.find("shmem_unacct_size")
    assert unacct is not None and [c.name for c in unacct.children] == ["vm_unacct_memory"]
