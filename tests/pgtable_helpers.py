"""Shared helpers for the page-table tests (not a kernel model)."""

from __future__ import annotations

from refmodel.arch.x86.pgtable import pgd_alloc
from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmzone import pglist_data


def machine(levels: int) -> Machine:
    return Machine(MachineConfig(memory=64 * MiB, paging_levels=levels))


def new_mm(pgdat: pglist_data) -> mm_struct:
    mm = mm_struct(paging_levels=pgdat.paging_levels)
    assert pgd_alloc(pgdat, mm) is not None
    return mm


def pages_in_use(pgdat: pglist_data) -> int:
    """Pages handed out by the allocator and not yet freed."""
    return sum(1 << o for o in pgdat.allocated.values())
