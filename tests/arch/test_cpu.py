"""refmodel/arch/x86/cpu.py: cpu_translate against a plain level-by-level walk.

cpu_translate tests the present bits of the upper entries once, after the walk; the
reference below stops at the first entry that is not present, as the hardware describes
it. Both must give the same pfn or error code, and leave the same accessed/dirty bits,
on any table contents (entries not present, with stray pfns, NX, missing tables).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from refmodel.arch.x86.cpu import (
    GP_FAULT,
    X86_PF_INSTR,
    X86_PF_PROT,
    X86_PF_USER,
    X86_PF_WRITE,
    cpu_translate,
)
from refmodel.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_RW,
    _PAGE_USER,
    PTE_PFN_MASK,
)
from refmodel.mm.mmzone import pglist_data

TABLE_PFNS = (1, 2, 3, 4, 5, 6)  # a small pool, so walks often land on real tables
# (flag, one in how many entries lacks it)
FLAGS = ((_PAGE_PRESENT, 8), (_PAGE_RW, 6), (_PAGE_USER, 8), (_PAGE_ACCESSED, 2),
         (_PAGE_DIRTY, 2), (_PAGE_NX, 1))


def reference_translate(tables: dict[int, dict[int, int]], pgd_pfn: int, levels: int,
                        address: int, write: bool, instr: bool) -> int:
    def err(prot: int) -> int:
        return ~(prot | X86_PF_USER | (X86_PF_WRITE if write else 0)
                 | (X86_PF_INSTR if instr else 0))

    vbits = 57 if levels == 5 else 48
    top = address >> (vbits - 1)
    if top and top != (1 << (64 - vbits + 1)) - 1:
        return GP_FAULT
    shifts = (48, 39, 30, 21, 12) if levels == 5 else (39, 30, 21, 12)
    entries = []
    table_pfn = pgd_pfn
    for shift in shifts:
        e = tables.get(table_pfn, {}).get((address >> shift) & 511, 0)
        if not e & _PAGE_PRESENT:
            return err(0)
        entries.append(e)
        table_pfn = (e & PTE_PFN_MASK) >> 12
    need = _PAGE_USER | (_PAGE_RW if write else 0)
    for e in entries:
        if e & need != need:
            return err(X86_PF_PROT)
    if instr and any(e & _PAGE_NX for e in entries):
        return err(X86_PF_PROT)
    leaf_table = tables[(entries[-2] & PTE_PFN_MASK) >> 12]
    idx = (address >> 12) & 511
    bits = _PAGE_ACCESSED | (_PAGE_DIRTY if write else 0)
    if entries[-1] & bits != bits:
        leaf_table[idx] = entries[-1] | bits
    return (entries[-1] & PTE_PFN_MASK) >> 12


@st.composite
def walks(draw: st.DrawFn) -> tuple[dict[int, dict[int, int]], int, int, bool, bool]:
    levels = draw(st.sampled_from((4, 5)))
    shifts = (48, 39, 30, 21, 12) if levels == 5 else (39, 30, 21, 12)
    idx = [draw(st.integers(0, 3)) for _ in shifts]  # tables hold entries 0-3 only
    address = sum(i << s for i, s in zip(idx, shifts, strict=True))
    if not draw(st.integers(0, 5)):
        address |= draw(st.sampled_from((1 << 63, (~0 << (shifts[0] + 8)) & (2**64 - 1))))
    tables: dict[int, dict[int, int]] = {}
    for pfn in TABLE_PFNS:
        if draw(st.integers(0, 9)):
            tables[pfn] = {i: draw(st.sampled_from(TABLE_PFNS)) << 12
                           | sum(f for f, odds in FLAGS if draw(st.integers(0, odds)))
                           for i in range(4) if draw(st.integers(0, 9))}
    return tables, levels, address, draw(st.booleans()), draw(st.booleans())


@given(walks())
def test_cpu_translate_agrees_with_a_level_by_level_walk(
        case: tuple[dict[int, dict[int, int]], int, int, bool, bool]) -> None:
    tables, levels, address, write, instr = case
    mine = {pfn: dict(t) for pfn, t in tables.items()}
    pgdat = cast(pglist_data, SimpleNamespace(pgtables=mine))
    got = cpu_translate(pgdat, 1, levels, address, write, instr)
    want = reference_translate(tables, 1, levels, address, write, instr)
    assert got == want
    assert mine == tables
