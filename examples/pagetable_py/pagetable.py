"""A page-table implementation in plain Python, checked by ``refmodel conform``.

What a teaching kernel or simulator has: a radix tree of 512-entry tables (4- or 5-level
x86-64 paging), leaf entries built as x86 builds them, and a walk that gives the frame and
the access rights of an address. It follows 5.10 closely enough to conform in strict mode
(the L1TF inversion of PROT_NONE entries, pte_modify's preserved bits, tables freed only
when the address space goes away), so it also shows what strict mode asks for.

    refmodel conform --target pagetable --python examples/pagetable_py/pagetable.py:PageTable
    refmodel conform --target pagetable --mode strict --config paging_levels=5 \\
        --python examples/pagetable_py/pagetable.py:PageTable
"""

from __future__ import annotations

from typing import ClassVar

from refmodel.conformance.adapter import Fault, Refused, Translation

MASK64 = (1 << 64) - 1
P, RW, US, PWT, PCD, A, D = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6
PROTNONE = 1 << 8  # the global bit, when the present bit is clear
SPECIAL, UFFD_WP, SOFT_DIRTY, DEVMAP = 1 << 9, 1 << 10, 1 << 11, 1 << 58
NX = 1 << 63
PFN_MASK = ((1 << 52) - 1) & ~0xFFF  # bits 12..51
CHG_MASK = PFN_MASK | PCD | PWT | SPECIAL | A | D | SOFT_DIRTY | DEVMAP | UFFD_WP
LEVEL_NAMES = {4: ("pgd", "pud", "pmd", "pte"), 5: ("pgd", "p4d", "pud", "pmd", "pte")}

Table = dict[int, "Table | int"]


def needs_invert(v: int) -> bool:
    """L1TF: a non-empty entry without the present bit stores its pfn inverted."""
    return v != 0 and not v & P


def pfn_pte(pfn: int, flags: int) -> int:
    v = pfn << 12
    if needs_invert(flags):
        v = ~v & MASK64
    return (v & PFN_MASK) | flags


def pte_pfn(pte: int) -> int:
    v = ~pte & MASK64 if needs_invert(pte) else pte
    return (v & PFN_MASK) >> 12


def pte_modify(pte: int, flags: int) -> int:
    v = (pte & CHG_MASK) | (flags & ~CHG_MASK & MASK64)
    if needs_invert(pte) != needs_invert(v):  # flip_protnone_guard
        v = (v & ~PFN_MASK & MASK64) | (~v & PFN_MASK)
    return v


class PageTable:
    """One address space. ``SHIFTS`` gives each level's index shift, top level first."""

    SHIFTS: ClassVar[dict[int, tuple[int, ...]]] = {4: (39, 30, 21, 12),
                                                    5: (48, 39, 30, 21, 12)}

    def __init__(self, paging_levels: int) -> None:
        if paging_levels not in self.SHIFTS:
            raise ValueError(f"{paging_levels}-level paging is not supported")
        self.levels = paging_levels
        self.shifts = self.SHIFTS[paging_levels]
        self.vbits = 57 if paging_levels == 5 else 48
        self.root: Table = {}
        self.nr_tables = dict.fromkeys(LEVEL_NAMES[paging_levels], 0)
        self.nr_tables["pgd"] = 1

    # -- the walk --------------------------------------------------------------------------
    def _indices(self, address: int) -> list[int]:
        return [(address >> s) & 511 for s in self.shifts]

    def _leaf_table(self, address: int, create: bool) -> Table | None:
        table = self.root
        names = LEVEL_NAMES[self.levels]
        for depth, i in enumerate(self._indices(address)[:-1]):
            nxt = table.get(i)
            if nxt is None:
                if not create:
                    return None
                nxt = table[i] = {}
                self.nr_tables[names[depth + 1]] += 1
            assert isinstance(nxt, dict)
            table = nxt
        return table

    def _check_address(self, address: int) -> None:
        if address % 4096 or not 0 <= address < 1 << (self.vbits - 1):
            raise Refused("not a page-aligned user address")

    @staticmethod
    def _check_flags(flags: int) -> None:
        if flags & PFN_MASK or not 0 <= flags <= MASK64:
            raise Refused("flags carry pfn bits")
        if not flags & (P | PROTNONE):
            raise Refused("flags neither present nor PROT_NONE")

    # -- the operations ----------------------------------------------------------------------
    def map(self, address: int, pfn: int, flags: int) -> None:
        self._check_address(address)
        self._check_flags(flags)
        if not 0 <= pfn < 1 << 40:
            raise Refused("pfn out of range")
        table = self._leaf_table(address, create=True)
        assert table is not None
        table[self._indices(address)[-1]] = pfn_pte(pfn, flags)

    def unmap(self, address: int) -> None:
        self._check_address(address)
        table = self._leaf_table(address, create=False)
        if table is not None:
            table.pop(self._indices(address)[-1], None)

    def protect(self, address: int, flags: int) -> None:
        self._check_address(address)
        self._check_flags(flags)
        table = self._leaf_table(address, create=False)
        i = self._indices(address)[-1]
        old = table.get(i, 0) if table is not None else 0
        if not isinstance(old, int) or not old & ~(A | D):
            raise Refused("nothing mapped there")
        assert table is not None
        table[i] = pte_modify(old, flags)

    def translate(self, address: int) -> Translation | Fault:
        top = address >> (self.vbits - 1)
        if top not in (0, (1 << (65 - self.vbits)) - 1):
            return Fault("non-canonical")
        table = self._leaf_table(address, create=False)
        pte = table.get(self._indices(address)[-1], 0) if table is not None else 0
        if not isinstance(pte, int) or not pte & P:
            return Fault("not-present")
        pfn = pte_pfn(pte)
        return Translation(pfn, (pfn << 12) | (address & 0xFFF), bool(pte & RW),
                           bool(pte & US), not pte & NX, pte)

    # -- observations ----------------------------------------------------------------------
    def entries(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []

        def walk(table: Table, depth: int, base: int) -> None:
            for i, v in sorted(table.items()):
                addr = base | (i << self.shifts[depth])
                if isinstance(v, dict):
                    walk(v, depth + 1, addr)
                elif v & (P | PROTNONE):
                    out.append((addr, v))

        walk(self.root, 0, 0)
        return out

    def tables(self) -> dict[str, int]:
        return dict(self.nr_tables)
