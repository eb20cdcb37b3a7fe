"""Swap entries and swap PTEs (include/linux/swapops.h, arch/x86/include/asm/pgtable_64.h).

A swp_entry_t is kept as its ``val``: the generic format of include/linux/swapops.h, the
type in the bits above SWP_TYPE_SHIFT and the offset below. In a PTE, x86-64 5.10 stores
the type in the top SWP_TYPE_BITS bits and the offset *inverted* from bit
SWP_OFFSET_FIRST_BIT up (the L1TF mitigation: a non-present PTE must not point at real
memory). _PAGE_SWP_SOFT_DIRTY (the RW bit) carries the soft-dirty state of a swapped page.
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable_types import (
    _PAGE_KNL_ERRATUM_MASK,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_RW,
)
from refmodel.trace import kernel

F = "include/linux/swapops.h"
ARCH = "arch/x86/include/asm/pgtable_64.h"
MASK64 = (1 << 64) - 1

MAX_SWAPFILES_SHIFT = 5
SWP_TYPE_SHIFT = 64 - 1 - MAX_SWAPFILES_SHIFT  # BITS_PER_XA_VALUE - MAX_SWAPFILES_SHIFT
SWP_OFFSET_MASK = (1 << SWP_TYPE_SHIFT) - 1
# 32 types less 2 device-private, 2 migration and 1 hwpoison type (distribution config)
MAX_SWAPFILES = (1 << MAX_SWAPFILES_SHIFT) - 2 - 2 - 1
SWP_TYPE_BITS = 5
_PAGE_BIT_PROTNONE = 8
SWP_OFFSET_FIRST_BIT = _PAGE_BIT_PROTNONE + 1
SWP_OFFSET_SHIFT = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS
_PAGE_SWP_SOFT_DIRTY = _PAGE_RW


@kernel(F)
def swp_entry(type: int, offset: int) -> int:
    """Models swp_entry: the generic entry for (type, offset)."""
    return (type << SWP_TYPE_SHIFT) | (offset & SWP_OFFSET_MASK)


@kernel(F)
def swp_type(entry: int) -> int:
    return entry >> SWP_TYPE_SHIFT


@kernel(F)
def swp_offset(entry: int) -> int:
    return entry & SWP_OFFSET_MASK


@kernel(ARCH)
def __swp_entry(type: int, offset: int) -> int:
    """Models __swp_entry: the arch entry, offset inverted and shifted into place."""
    return ((((~offset) << SWP_OFFSET_SHIFT) & MASK64) >> SWP_TYPE_BITS) | (
        type << (64 - SWP_TYPE_BITS))


@kernel(ARCH)
def __swp_type(arch_entry: int) -> int:
    return arch_entry >> (64 - SWP_TYPE_BITS)


@kernel(ARCH)
def __swp_offset(arch_entry: int) -> int:
    return (((~arch_entry) << SWP_TYPE_BITS) & MASK64) >> SWP_OFFSET_SHIFT


@kernel(F)
def swp_entry_to_pte(entry: int) -> int:
    """Models swp_entry_to_pte: __swp_entry_to_pte(__swp_entry(type, offset))."""
    return __swp_entry(swp_type(entry), swp_offset(entry))


@kernel(F)
def pte_to_swp_entry(pte: int) -> int:
    """Models pte_to_swp_entry: drop the soft-dirty bit (pte_swp_soft_dirty,
    pte_swp_clear_soft_dirty), decode. The uffd-wp bit is never set in the model
    (no userfaultfd), so its check is left out."""
    if pte_swp_soft_dirty(pte):
        pte = pte_swp_clear_soft_dirty(pte)
    return swp_entry(__swp_type(pte), __swp_offset(pte))


@kernel(F)
def is_swap_pte(pte: int) -> bool:
    """Models is_swap_pte: !pte_none && !pte_present, both tested in line: this module
    cannot import refmodel.arch.x86.pgtable, which imports (through mmu_gather and the swap
    cache) the modules that import this one."""
    return bool(pte & ~_PAGE_KNL_ERRATUM_MASK) and not pte & (_PAGE_PRESENT | _PAGE_PROTNONE)


@kernel(F)
def non_swap_entry(entry: int) -> bool:
    """Models non_swap_entry: the types at and above MAX_SWAPFILES are migration, device
    and hwpoison entries (none arise in the model)."""
    return swp_type(entry) >= MAX_SWAPFILES


@kernel(ARCH)
def pte_swp_mksoft_dirty(pte: int) -> int:
    return pte | _PAGE_SWP_SOFT_DIRTY


@kernel(ARCH)
def pte_swp_soft_dirty(pte: int) -> bool:
    return pte & _PAGE_SWP_SOFT_DIRTY != 0


@kernel(ARCH)
def pte_swp_clear_soft_dirty(pte: int) -> int:
    return pte & ~_PAGE_SWP_SOFT_DIRTY
