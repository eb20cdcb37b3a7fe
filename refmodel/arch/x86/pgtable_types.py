"""x86-64 page-table geometry, PTE bits and protections (5.10).

Models arch/x86/include/asm/pgtable_64_types.h, page_types.h, page_64_types.h,
pgtable_types.h, asm/page.h (__canonical_address), include/linux/mm.h (PAGE_ALIGN) and the
protection_map / vm_get_page_prot of mm/mmap.c.

5.10 decides the paging mode at boot: ``pgdir_shift``, ``ptrs_per_p4d`` and
``__pgtable_l5_enabled`` are run-time variables (39 / 1 / off with 4-level paging, 48 / 512 /
on with LA57). Here they are functions of ``levels`` (4 or 5): ``PGDIR_SHIFT(levels)`` is what
the kernel's ``PGDIR_SHIFT`` macro evaluates to on a machine booted in that mode.

Every helper that computes an address, an index or a PTE value is a small function on ints
using only bit operations, ``+``/``-`` and ``==``; where it must branch or compare unsigned it
takes a :class:`BitOps` (default: plain Python), so the z3 proofs in ``refmodel.proofs.pagetable``
run these very functions on 64-bit bit-vectors. Right shifts are only applied to values whose
bit 63 is clear or whose result is masked below 64 - shift bits, so an arithmetic shift (z3's
``>>``) and a logical one agree.

Modelled CPU and build: NX and PGE supported (``__supported_pte_mask`` is all ones), no SME
(``_PAGE_ENC`` = 0), CONFIG_PAGE_TABLE_ISOLATION off, CONFIG_MEM_SOFT_DIRTY on, protection
keys configured but only pkey 0 in use unless the VMA's VM_PKEY bits say otherwise.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntFlag

from refmodel.mm.vm_flags import (
    VM_EXEC,
    VM_PKEY_BIT0,
    VM_PKEY_BIT1,
    VM_PKEY_BIT2,
    VM_PKEY_BIT3,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from refmodel.trace import kernel

MASK64 = (1 << 64) - 1

# --------------------------------------------------------------------------------------------
# How the pure helpers branch and compare (ints here, z3 bit-vectors in the proofs)


@dataclass(frozen=True, slots=True)
class BitOps:
    """The few operations the pure helpers cannot write with operators alone."""

    ite: Callable[[bool, int, int], int]  # if-then-else on a condition
    ult: Callable[[int, int], bool]  # unsigned <
    and_: Callable[[bool, bool], bool]
    not_: Callable[[bool], bool]


def _py_ite(c: bool, a: int, b: int) -> int:
    return a if c else b


PY_OPS = BitOps(_py_ite, operator.lt, operator.and_, operator.not_)

# --------------------------------------------------------------------------------------------
# Geometry (asm/page_types.h, asm/pgtable_64_types.h)

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = MASK64 & ~(PAGE_SIZE - 1)
PMD_SHIFT = 21
PUD_SHIFT = 30
P4D_SHIFT = 39  # the constant 39 whenever CONFIG_X86_5LEVEL=y, in either mode
PGDIR_SHIFT_L4 = 39
PGDIR_SHIFT_L5 = 48
PTRS_PER_PTE = 512
PTRS_PER_PMD = 512
PTRS_PER_PUD = 512
PTRS_PER_PGD = 512
PTRS_PER_P4D_L4 = 1  # the folded p4d: one entry, which is the pgd entry itself
PTRS_PER_P4D_L5 = 512
PMD_SIZE = 1 << PMD_SHIFT
PMD_MASK = MASK64 & ~(PMD_SIZE - 1)
PUD_SIZE = 1 << PUD_SHIFT
PUD_MASK = MASK64 & ~(PUD_SIZE - 1)
P4D_SIZE = 1 << P4D_SHIFT
P4D_MASK = MASK64 & ~(P4D_SIZE - 1)
ENTRY_SIZE = 8  # sizeof(pte_t) == sizeof(pmd_t) == ... == 8
__PHYSICAL_MASK_SHIFT = 52
__PHYSICAL_MASK = (1 << __PHYSICAL_MASK_SHIFT) - 1
# PAGE_OFFSET (page_offset_base without KASLR) and the pgd slot where the kernel half starts.
__PAGE_OFFSET_BASE_L4 = 0xFFFF888000000000
__PAGE_OFFSET_BASE_L5 = 0xFF11000000000000
PGD_KERNEL_START = 256  # first slot of the upper (kernel) half; pgdp_maps_userspace


def pgtable_l5_enabled(levels: int) -> bool:
    """asm/pgtable_64_types.h:pgtable_l5_enabled: LA57 paging is on."""
    return levels == 5


def PGDIR_SHIFT(levels: int) -> int:
    """The run-time ``pgdir_shift``: 39 with 4-level paging, 48 with 5-level."""
    return PGDIR_SHIFT_L5 if levels == 5 else PGDIR_SHIFT_L4


def PTRS_PER_P4D(levels: int) -> int:
    """The run-time ``ptrs_per_p4d``: 1 (folded) with 4-level paging, 512 with 5-level."""
    return PTRS_PER_P4D_L5 if levels == 5 else PTRS_PER_P4D_L4


def PGDIR_SIZE(levels: int) -> int:
    return 1 << PGDIR_SHIFT(levels)


def PGDIR_MASK(levels: int) -> int:
    return MASK64 & ~(PGDIR_SIZE(levels) - 1)


def __VIRTUAL_MASK_SHIFT(levels: int) -> int:
    """asm/page_64_types.h: 56 with LA57, else 47 (the top bit of a user address, + 1)."""
    return 56 if levels == 5 else 47


def TASK_SIZE_MAX(levels: int) -> int:
    """asm/page_64_types.h:task_size_max: (1 << __VIRTUAL_MASK_SHIFT) - PAGE_SIZE.
    0x7ffffffff000 with 4-level paging, 0xfffffffffff000 with 5-level."""
    return (1 << __VIRTUAL_MASK_SHIFT(levels)) - PAGE_SIZE


DEFAULT_MAP_WINDOW = (1 << 47) - PAGE_SIZE


def PAGE_OFFSET(levels: int) -> int:
    """page_offset_base without KASLR: the start of the direct map."""
    return __PAGE_OFFSET_BASE_L5 if levels == 5 else __PAGE_OFFSET_BASE_L4


# --------------------------------------------------------------------------------------------
# Canonical addresses and PAGE_ALIGN


@kernel("arch/x86/include/asm/page.h")
def __canonical_address(vaddr: int, vaddr_bits: int) -> int:
    """Models asm/page.h:__canonical_address: sign-extend bit ``vaddr_bits - 1`` into the bits
    above. 5.10 shifts left then arithmetically right on an s64; this is the same value
    computed with xor and subtraction so it runs unchanged on ints and bit-vectors."""
    low = vaddr & ((1 << vaddr_bits) - 1)
    sign = 1 << (vaddr_bits - 1)
    return ((low ^ sign) - sign) & MASK64


def vaddr_bits(levels: int) -> int:
    """The implemented virtual-address width: 48 (4-level) or 57 (5-level)."""
    return __VIRTUAL_MASK_SHIFT(levels) + 1


def is_canonical_address(vaddr: int, levels: int) -> bool:
    """A canonical address: bits 63..47 (or 63..56) all equal, i.e. it is its own sign
    extension (the test 5.10 writes as ``__canonical_address(v, bits) == v``)."""
    return __canonical_address(vaddr, vaddr_bits(levels)) == vaddr


@kernel("include/linux/mm.h")
def PAGE_ALIGN(addr: int) -> int:
    """Models include/linux/mm.h:PAGE_ALIGN = ALIGN(addr, PAGE_SIZE) on an unsigned long:
    the next multiple of PAGE_SIZE at or above ``addr``, wrapping to 0 above the last page."""
    return (addr + PAGE_SIZE - 1) & PAGE_MASK


def PAGE_ALIGN_overflows(addr: int, ops: BitOps = PY_OPS) -> bool:
    """True when PAGE_ALIGN wrapped past 2**64 (the result is below the input): what callers
    such as do_mmap (``len = PAGE_ALIGN(len); if (!len) return -ENOMEM``) and mprotect
    (``end <= start``) detect."""
    return ops.ult(PAGE_ALIGN(addr), addr)


# --------------------------------------------------------------------------------------------
# PTE bits (asm/pgtable_types.h)


class PteFlags(IntFlag):
    """The _PAGE_* bits of asm/pgtable_types.h."""

    _PAGE_PRESENT = 1 << 0
    _PAGE_RW = 1 << 1
    _PAGE_USER = 1 << 2
    _PAGE_PWT = 1 << 3
    _PAGE_PCD = 1 << 4
    _PAGE_ACCESSED = 1 << 5
    _PAGE_DIRTY = 1 << 6
    _PAGE_PSE = 1 << 7  # also _PAGE_PAT on 4K ptes
    _PAGE_GLOBAL = 1 << 8  # also _PAGE_PROTNONE when _PAGE_PRESENT is clear
    _PAGE_SPECIAL = 1 << 9  # _PAGE_BIT_SOFTW1
    _PAGE_UFFD_WP = 1 << 10  # _PAGE_BIT_SOFTW2
    _PAGE_SOFT_DIRTY = 1 << 11  # _PAGE_BIT_SOFTW3
    _PAGE_PAT_LARGE = 1 << 12
    _PAGE_DEVMAP = 1 << 58  # _PAGE_BIT_SOFTW4
    _PAGE_PKEY_BIT0 = 1 << 59
    _PAGE_PKEY_BIT1 = 1 << 60
    _PAGE_PKEY_BIT2 = 1 << 61
    _PAGE_PKEY_BIT3 = 1 << 62
    _PAGE_NX = 1 << 63


_PAGE_BIT_PRESENT = 0
_PAGE_BIT_RW = 1
_PAGE_BIT_USER = 2
_PAGE_BIT_ACCESSED = 5
_PAGE_BIT_DIRTY = 6
_PAGE_BIT_PSE = 7
_PAGE_BIT_GLOBAL = 8
_PAGE_BIT_NX = 63

_PAGE_PRESENT = 1 << 0
_PAGE_RW = 1 << 1
_PAGE_USER = 1 << 2
_PAGE_PWT = 1 << 3
_PAGE_PCD = 1 << 4
_PAGE_ACCESSED = 1 << 5
_PAGE_DIRTY = 1 << 6
_PAGE_PSE = 1 << 7
_PAGE_PAT = 1 << 7
_PAGE_GLOBAL = 1 << 8
_PAGE_PROTNONE = _PAGE_GLOBAL
_PAGE_SPECIAL = 1 << 9
_PAGE_UFFD_WP = 1 << 10
_PAGE_SOFT_DIRTY = 1 << 11
_PAGE_PAT_LARGE = 1 << 12
_PAGE_DEVMAP = 1 << 58
_PAGE_PKEY_BIT0 = 1 << 59
_PAGE_PKEY_BIT1 = 1 << 60
_PAGE_PKEY_BIT2 = 1 << 61
_PAGE_PKEY_BIT3 = 1 << 62
_PAGE_NX = 1 << 63
_PAGE_ENC = 0  # sme_me_mask without SME
_PAGE_KNL_ERRATUM_MASK = _PAGE_DIRTY | _PAGE_ACCESSED

PHYSICAL_PAGE_MASK = PAGE_MASK & __PHYSICAL_MASK
PTE_PFN_MASK = PHYSICAL_PAGE_MASK  # 0x000ffffffffff000: bits 12..51
PTE_FLAGS_MASK = MASK64 & ~PTE_PFN_MASK
PFN_BITS = __PHYSICAL_MASK_SHIFT - PAGE_SHIFT  # 40: every pfn below 2**40 fits a pte

_PAGE_CACHE_MASK = _PAGE_PWT | _PAGE_PCD | _PAGE_PAT
# _PAGE_CHG_MASK: the bits pte_modify keeps (pfn, cache, special, A, D, soft-dirty, devmap,
# enc, uffd-wp).
_PAGE_CHG_MASK = (PTE_PFN_MASK | _PAGE_PCD | _PAGE_PWT | _PAGE_SPECIAL | _PAGE_ACCESSED
                  | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_DEVMAP | _PAGE_ENC | _PAGE_UFFD_WP)

# Table entries: what *_populate writes above a lower table.
_PAGE_TABLE_NOENC = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY
_KERNPG_TABLE_NOENC = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY
_PAGE_TABLE = _PAGE_TABLE_NOENC | _PAGE_ENC  # 0x67
_KERNPG_TABLE = _KERNPG_TABLE_NOENC | _PAGE_ENC  # 0x63

# The CPU's __supported_pte_mask (arch/x86/mm/init_64.c, setup_nx.c): NX and PGE present.
__supported_pte_mask = MASK64

# --------------------------------------------------------------------------------------------
# pgprot and the user protections (asm/pgtable_types.h)

pgprot_t = int
"""A pgprot_t: PTE flag bits only (never pfn bits)."""


def __pgprot(x: int) -> pgprot_t:
    return x


def pgprot_val(p: pgprot_t) -> int:
    return p


PAGE_NONE = _PAGE_ACCESSED | _PAGE_GLOBAL  # 0x120: PROTNONE, not present
PAGE_SHARED = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_SHARED_EXEC = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED
PAGE_COPY_NOEXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_COPY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
PAGE_COPY = PAGE_COPY_NOEXEC
PAGE_READONLY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_READONLY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED

# The x86 __Pxwr / __Sxwr table: private (P) and shared (S) by exec, write, read.
__P000 = PAGE_NONE
__P001 = PAGE_READONLY
__P010 = PAGE_COPY
__P011 = PAGE_COPY
__P100 = PAGE_READONLY_EXEC
__P101 = PAGE_READONLY_EXEC
__P110 = PAGE_COPY_EXEC
__P111 = PAGE_COPY_EXEC
__S000 = PAGE_NONE
__S001 = PAGE_READONLY
__S010 = PAGE_SHARED
__S011 = PAGE_SHARED
__S100 = PAGE_READONLY_EXEC
__S101 = PAGE_READONLY_EXEC
__S110 = PAGE_SHARED_EXEC
__S111 = PAGE_SHARED_EXEC

protection_map: tuple[pgprot_t, ...] = (
    __P000, __P001, __P010, __P011, __P100, __P101, __P110, __P111,
    __S000, __S001, __S010, __S011, __S100, __S101, __S110, __S111,
)
"""mm/mmap.c:protection_map[16], indexed by vm_flags & (VM_READ|VM_WRITE|VM_EXEC|VM_SHARED).
Private writable mappings get no _PAGE_RW (write access comes from copy-on-write); x86 has
no write-only or exec-only pages, so write and exec imply read."""


@kernel("arch/x86/include/asm/pgtable.h")
def massage_pgprot(pgprot: pgprot_t, ops: BitOps = PY_OPS) -> int:
    """Models asm/pgtable.h:massage_pgprot: a present protection loses the bits the CPU
    does not support; a not-present one (PROT_NONE) is kept whole."""
    if ops is PY_OPS:
        return pgprot & __supported_pte_mask if pgprot & _PAGE_PRESENT else pgprot
    return ops.ite((pgprot & _PAGE_PRESENT) != 0, pgprot & __supported_pte_mask, pgprot)


@kernel("arch/x86/include/asm/pgtable.h")
def check_pgprot(pgprot: pgprot_t, ops: BitOps = PY_OPS) -> int:
    """Models asm/pgtable.h:check_pgprot (the CONFIG_DEBUG_VM warning left out)."""
    return massage_pgprot(pgprot, ops)


@kernel("arch/x86/include/asm/pgtable.h")
def arch_filter_pgprot(prot: pgprot_t) -> pgprot_t:
    """Models asm/pgtable.h:arch_filter_pgprot = canon_pgprot (ARCH_HAS_FILTER_PGPROT)."""
    return massage_pgprot(prot)


_VM_PKEY_BITS = VM_PKEY_BIT0 | VM_PKEY_BIT1 | VM_PKEY_BIT2 | VM_PKEY_BIT3
_PROT_MAP_INDEX = VM_READ | VM_WRITE | VM_EXEC | VM_SHARED  # protection_map's index bits


@kernel("arch/x86/include/asm/pkeys.h")
def arch_vm_get_page_prot(vm_flags: int) -> pgprot_t:
    """Models asm/pgtable_types.h / pkeys.h:arch_vm_get_page_prot: the VMA's protection key
    (VM_PKEY_BIT0..3) as the PTE's _PAGE_PKEY_BIT0..3."""
    if not vm_flags & _VM_PKEY_BITS:
        return 0  # pkey 0, as every VMA has without OSPKE: one test instead of four
    ret = 0
    if vm_flags & VM_PKEY_BIT0:
        ret |= _PAGE_PKEY_BIT0
    if vm_flags & VM_PKEY_BIT1:
        ret |= _PAGE_PKEY_BIT1
    if vm_flags & VM_PKEY_BIT2:
        ret |= _PAGE_PKEY_BIT2
    if vm_flags & VM_PKEY_BIT3:
        ret |= _PAGE_PKEY_BIT3
    return ret


@kernel("mm/mmap.c")
def vm_get_page_prot(vm_flags: int) -> pgprot_t:
    """Models mm/mmap.c:vm_get_page_prot: protection_map by (READ|WRITE|EXEC|SHARED), plus
    the pkey bits, filtered by what the CPU supports."""
    idx = vm_flags & _PROT_MAP_INDEX
    return arch_filter_pgprot(protection_map[idx] | arch_vm_get_page_prot(vm_flags))
