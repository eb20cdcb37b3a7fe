"""A model of the x86-64 hardware page walk, for tests and tools.

For a virtual address, :func:`walk` reads what the MMU would read: with 4-level paging
PML4 (the pgd) → PDPT (pud) → PD (pmd) → PT (pte); with 5-level paging PML5 (pgd) → PML4
(p4d) → ... It records every entry it reads and where and why it stops: a non-canonical
address (#GP, no walk at all), an entry without the P bit, a large (PS) entry at pud or pmd
level, or a present leaf pte. Access rights are summarised the way the MMU combines them
(writable only if RW at every level, user only if U at every level, executable unless NX at
some level). This is the hardware's view, not the kernel's: it does not use pgd_none &
co., and a PROT_NONE pte (P clear) stops the walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refmodel.arch.x86.pgtable import (
    entry_ptr,
    p4d_index,
    pgd_index,
    pmd_index,
    pte_index,
    pud_index,
    read_entry,
)
from refmodel.arch.x86.pgtable_types import (
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_USER,
    PAGE_SHIFT,
    PAGE_SIZE,
    PTE_PFN_MASK,
    is_canonical_address,
)
from refmodel.mm.mmzone import pglist_data


@dataclass(frozen=True, slots=True)
class WalkStep:
    """One entry the walk read: its level name, index, address (physical) and value."""

    level: str
    index: int
    entry_addr: int
    value: int

    def __str__(self) -> str:
        return f"{self.level}[{self.index}] @ {self.entry_addr:#x} = {self.value:#018x}"


@dataclass(slots=True)
class Walk:
    """The outcome of a walk. ``stop`` is one of "non-canonical", "not-present",
    "large-page" or "mapped"; ``stop_level`` names the level it stopped at."""

    address: int
    levels: int
    steps: list[WalkStep] = field(default_factory=list)
    stop: str = "mapped"
    stop_level: str = ""
    pfn: int | None = None
    phys: int | None = None
    writable: bool = False
    user: bool = False
    executable: bool = False

    def render(self) -> str:
        lines = [f"walk {self.address:#x} ({self.levels}-level paging)"]
        lines += [f"  {s}" for s in self.steps]
        where = f" at {self.stop_level}" if self.stop_level else ""
        tail = f"  -> {self.stop}{where}"
        if self.phys is not None:
            rights = "".join(("r", "w" if self.writable else "-", "x" if self.executable else "-",
                              "u" if self.user else "k"))
            tail += f": phys {self.phys:#x} (pfn {self.pfn:#x}) {rights}"
        return "\n".join([*lines, tail])


def walk(pgdat: pglist_data, pgd_pfn: int, address: int) -> Walk:
    """Walk ``address`` through the page tables rooted at the pgd page ``pgd_pfn``."""
    levels = pgdat.paging_levels
    w = Walk(address, levels)
    if not is_canonical_address(address, levels):
        w.stop, w.stop_level = "non-canonical", ""
        return w
    names: list[tuple[str, int]] = [("pgd", pgd_index(address, levels))]
    if levels == 5:
        names.append(("p4d", p4d_index(address, levels)))
    names += [("pud", pud_index(address)), ("pmd", pmd_index(address)),
              ("pte", pte_index(address))]
    table = pgd_pfn << PAGE_SHIFT
    rw = user = True
    nx = False
    for name, idx in names:
        ptr = entry_ptr(table, idx)
        val = read_entry(pgdat, ptr)
        w.steps.append(WalkStep(name, idx, ptr, val))
        if not val & _PAGE_PRESENT:
            w.stop, w.stop_level = "not-present", name
            return w
        rw = rw and bool(val & _PAGE_RW)
        user = user and bool(val & _PAGE_USER)
        nx = nx or bool(val & _PAGE_NX)
        if name in ("pud", "pmd") and val & _PAGE_PSE:
            w.stop, w.stop_level = "large-page", name
            return w
        table = val & PTE_PFN_MASK
    w.stop, w.stop_level = "mapped", "pte"
    w.pfn = table >> PAGE_SHIFT
    w.phys = table | (address & (PAGE_SIZE - 1))
    w.writable, w.user, w.executable = rw, user, not nx
    return w
