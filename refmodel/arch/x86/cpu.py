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

GP_FAULT = -2  # model: the access raised #GP (non-canonical address), not #PF
ACCESS_OK = -1

_EMPTY: dict[int, int] = {}


def cpu_translate(pgdat: pglist_data, pgd_pfn: int, levels: int, address: int, write: bool,
                  instr: bool) -> tuple[int, int]:
    """Translate a user-mode access. Returns (ACCESS_OK, pte entry address) on success,
    having set the pte's accessed (and, for a write, dirty) bit; (error code, 0) for a
    page fault; (GP_FAULT, 0) for a non-canonical address."""
    top = address >> (56 if levels == 5 else 47)  # canonical: the bits above all equal
    if top and top != (1 << (8 if levels == 5 else 17)) - 1:
        return GP_FAULT, 0
    tables = pgdat.pgtables
    shifts = (48, 39, 30, 21, 12) if levels == 5 else (39, 30, 21, 12)
    table_pfn = pgd_pfn
    rw = user = True
    nx = False
    ptep = 0
    val = 0
    for shift in shifts:
        idx = (address >> shift) & 511
        val = tables.get(table_pfn, _EMPTY).get(idx, 0)
        ptep = (table_pfn << PAGE_SHIFT) | (idx << 3)
        if not val & _PAGE_PRESENT:
            code = X86_PF_USER
            if write:
                code |= X86_PF_WRITE
            if instr:
                code |= X86_PF_INSTR
            return code, 0
        rw = rw and bool(val & _PAGE_RW)
        user = user and bool(val & _PAGE_USER)
        nx = nx or bool(val & _PAGE_NX)
        table_pfn = (val & PTE_PFN_MASK) >> PAGE_SHIFT
    if not user or (write and not rw) or (instr and nx):
        code = X86_PF_PROT | X86_PF_USER
        if write:
            code |= X86_PF_WRITE
        if instr:
            code |= X86_PF_INSTR
        return code, 0
    new = val | _PAGE_ACCESSED | (_PAGE_DIRTY if write else 0)
    if new != val:
        tables[ptep >> PAGE_SHIFT][(ptep >> 3) & 511] = new
    return ACCESS_OK, ptep
