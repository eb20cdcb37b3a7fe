"""The CPU's side of a user memory access (not a kernel file: a model of the hardware).

An x86-64 CPU in user mode translates a virtual address through the four (or five) levels
of the page tables. The access faults (#PF) when an entry on the way is not present, or
when the leaf's rights (the AND of RW and USER, the OR of NX, over every level) do not
allow it; the error code says why (X86_PF_* of arch/x86/include/asm/trap_pf.h). A
non-canonical address raises #GP instead. On success the CPU sets the accessed bit of the
pte, and the dirty bit on a write (the upper levels' A/D bits are always set in the
model's table entries, _PAGE_TABLE). Protection keys: pkey 0 only, PKRU allows everything
(no X86_PF_PK). No TLB is modelled: every access walks.
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_RW,
    _PAGE_USER,
    PAGE_SHIFT,
    PTE_PFN_MASK,
)
from refmodel.mm.mmzone import pglist_data

# enum x86_pf_error_code (arch/x86/include/asm/trap_pf.h)
X86_PF_PROT = 1 << 0
X86_PF_WRITE = 1 << 1
X86_PF_USER = 1 << 2
X86_PF_RSVD = 1 << 3
X86_PF_INSTR = 1 << 4
X86_PF_PK = 1 << 5

GP_FAULT = -(1 << 8)  # model: the access raised #GP (non-canonical address), not #PF

_RIGHTS = _PAGE_USER | _PAGE_RW  # must be set at every level
_AD = _PAGE_ACCESSED | _PAGE_DIRTY


def _pf_error(prot: int, write: bool, instr: bool) -> int:
    """The #PF error code cpu_translate reports (complemented: always negative)."""
    return ~(prot | X86_PF_USER | (X86_PF_WRITE if write else 0)
             | (X86_PF_INSTR if instr else 0))


# The error code of the usual fault (an entry not present, no protection problem), by
# [write][instr]: looked up rather than assembled, as every first touch of a page gets it.
_NOT_PRESENT: tuple[tuple[int, int], tuple[int, int]] = (
    (_pf_error(0, False, False), _pf_error(0, False, True)),
    (_pf_error(0, True, False), _pf_error(0, True, True)),
)
# What the AND of the entries must hold: present, user, and writable for a write.
_NEED_WRITE = _PAGE_PRESENT | _RIGHTS
_NEED_READ = _PAGE_PRESENT | _PAGE_USER


def cpu_translate(pgdat: pglist_data, pgd_pfn: int, levels: int, address: int, write: bool,
                  instr: bool) -> int:
    """Translate a user-mode access. Returns the page's pfn (>= 0) on success, having set
    the pte's accessed (and, for a write, dirty) bit; ~error_code (< 0) for a page fault;
    GP_FAULT (below every ~error_code) for a non-canonical address.

    The walk is written out level by level, and a missing table or upper entry is a
    KeyError (an entry of 0): it runs on every user access. The present bits of the p4d
    (with 4 levels: the pgd), pud and pmd entries are tested once, in the AND of all the
    entries after the walk; only a 5-level pgd entry is tested on the way:
    until then a not-present entry's pfn field at worst names a table that is missing
    (KeyError) or one that is only read, and the error code is the same either way."""
    tables = pgdat.pgtables
    try:
        if levels != 5:
            top = address >> 47  # canonical: the bits above the implemented ones all equal
            if top and top != 0x1FFFF:
                return GP_FAULT
            e0 = 0  # no pgd level of its own (the p4d is folded): no bits for the NX OR
            rights = _NEED_WRITE  # ... and none taken away from the AND
            table_pfn = pgd_pfn
        else:
            top = address >> 56
            if top and top != 0xFF:
                return GP_FAULT
            e0 = tables[pgd_pfn][(address >> 48) & 511]
            if not e0 & _PAGE_PRESENT:
                return _pf_error(0, write, instr)
            rights = _NEED_WRITE & e0
            table_pfn = (e0 & PTE_PFN_MASK) >> PAGE_SHIFT
        hi = address >> 21  # the pgd/p4d, pud and pmd indices, as a small int
        e1 = tables[table_pfn][(hi >> 18) & 511]
        e2 = tables[(e1 & PTE_PFN_MASK) >> PAGE_SHIFT][(hi >> 9) & 511]
        e3 = tables[(e2 & PTE_PFN_MASK) >> PAGE_SHIFT][hi & 511]
        table = tables[(e3 & PTE_PFN_MASK) >> PAGE_SHIFT]
        idx = (address >> PAGE_SHIFT) & 511
        val = table.get(idx, 0)  # the entry a first touch finds missing: no exception
        if not val & _PAGE_PRESENT:  # the usual fault
            return _NOT_PRESENT[write][instr]
    except KeyError:
        return _pf_error(0, write, instr)
    need = _NEED_WRITE if write else _NEED_READ
    got = rights & e1 & e2 & e3 & val
    if got & need != need:
        if not got & _PAGE_PRESENT:  # an upper entry was not present
            return _pf_error(0, write, instr)
        return _pf_error(X86_PF_PROT, write, instr)
    if instr and (e0 | e1 | e2 | e3 | val) & _PAGE_NX:
        return _pf_error(X86_PF_PROT, write, instr)
    if write:
        if val & _AD != _AD:
            table[idx] = val | _AD
    elif not val & _PAGE_ACCESSED:
        table[idx] = val | _PAGE_ACCESSED
    return (val & PTE_PFN_MASK) >> PAGE_SHIFT
