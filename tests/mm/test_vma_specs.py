"""The address-space invariants of specs/vma.py hold on real states and catch each kind of
corruption they are about (a check that cannot fail is caught here)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from refmodel.arch.x86.pgtable import pgd_offset, pte_offset_map, set_pte_at
from refmodel.arch.x86.pgtable_types import _PAGE_NX, _PAGE_RW, PAGE_COPY
from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.memory import p4d_alloc, pmd_alloc, pte_alloc, pud_alloc
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mman import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE
from refmodel.mm.mmap import find_vma
from refmodel.mm.vm_flags import VM_SOFTDIRTY
from refmodel.specs.vma import check_vma

P = 4096
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
A = 0x10000000


@pytest.fixture
def m() -> Machine:
    return Machine(MachineConfig(memory=64 * MiB))


def _three(m: Machine) -> mm_struct:
    mm = m.new_mm()
    m.mmap(mm, A, 2 * P, RW, ANON)
    m.mmap(mm, A + 2 * P, 2 * P, PROT_READ, ANON | MAP_FIXED)
    m.mmap(mm, A + 8 * P, 2 * P, RW, ANON)
    assert not check_vma(mm)
    return mm


def _pte_for(m: Machine, mm: mm_struct, addr: int) -> int:
    pgdat = m.pgdat
    p4d = p4d_alloc(pgdat, mm, pgd_offset(mm, addr), addr)
    assert p4d is not None
    pud = pud_alloc(pgdat, mm, p4d, addr)
    assert pud is not None
    pmd = pmd_alloc(pgdat, mm, pud, addr)
    assert pmd is not None
    assert pte_alloc(pgdat, mm, pmd) == 0
    return pte_offset_map(pgdat, pmd, addr)


def _corrupt_overlap(m: Machine, mm: mm_struct) -> None:
    v = find_vma(mm, A)
    assert v is not None
    v.vm_end += P


def _corrupt_map_count(m: Machine, mm: mm_struct) -> None:
    mm.map_count += 1


def _corrupt_accounting(m: Machine, mm: mm_struct) -> None:
    mm.data_vm -= 1


def _corrupt_prot(m: Machine, mm: mm_struct) -> None:
    v = find_vma(mm, A)
    assert v is not None
    v.vm_page_prot |= _PAGE_RW


def _corrupt_unmerged(m: Machine, mm: mm_struct) -> None:
    v = find_vma(mm, A + 2 * P)
    assert v is not None
    v.vm_flags = find_vma(mm, A).vm_flags & ~VM_SOFTDIRTY  # type: ignore[union-attr]
    v.vm_page_prot = PAGE_COPY


def _corrupt_gap_index(m: Machine, mm: mm_struct) -> None:
    mm.mm_rb._gaps[0][0] += P


def _corrupt_list(m: Machine, mm: mm_struct) -> None:
    v = find_vma(mm, A + 8 * P)
    assert v is not None
    v.vm_prev = None


def _stray_pte(m: Machine, mm: mm_struct) -> None:
    ptep = _pte_for(m, mm, A + 5 * P)  # in the hole between the VMAs
    set_pte_at(m.pgdat, mm, A + 5 * P, ptep, (0x1234 << 12) | 0x25 | _PAGE_NX)


def _writable_pte_in_readonly_vma(m: Machine, mm: mm_struct) -> None:
    ptep = _pte_for(m, mm, A + 2 * P)
    set_pte_at(m.pgdat, mm, A + 2 * P, ptep, (0x1234 << 12) | 0x27 | _PAGE_NX)


def _unaligned(m: Machine, mm: mm_struct) -> None:
    v = find_vma(mm, A + 8 * P)
    assert v is not None
    v.vm_end -= 1


def _below_min_addr(m: Machine, mm: mm_struct) -> None:
    mm.vm_globals.mmap_min_addr = A + P  # (this Machine only)


CORRUPTIONS: dict[str, Callable[[Machine, mm_struct], None]] = {
    "no_vma_overlap": _corrupt_overlap,
    "map_count_matches": _corrupt_map_count,
    "accounting_matches": _corrupt_accounting,
    "vm_page_prot_agrees": _corrupt_prot,
    "mergeable_neighbours_merged": _corrupt_unmerged,
    "free_gap_index_consistent": _corrupt_gap_index,
    "vma_list_and_tree_agree": _corrupt_list,
    "no_pte_outside_vma": _stray_pte,
    "pte_not_above_vma": _writable_pte_in_readonly_vma,
    "vma_page_aligned": _unaligned,
    "vma_inside_user_range": _below_min_addr,
}


@pytest.mark.parametrize("invariant", sorted(CORRUPTIONS))
def test_each_invariant_catches_its_corruption(m: Machine, invariant: str) -> None:
    mm = _three(m)
    CORRUPTIONS[invariant](m, mm)
    found = {v.invariant for v in check_vma(mm)}
    assert invariant in found, found
