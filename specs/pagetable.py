"""Page-table invariants (arch/x86 page tables, mm/memory.c).

Each predicate reads a node (``pglist_data``) and the mms whose page tables live in it and
returns the violations it finds. They hold after every step of 5.10's page-table code:
population, mapping, unmapping and teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from refmodel.arch.x86.pgtable import KERNEL_PGD_BOUNDARY, swapper_pg_dir_entries
from refmodel.arch.x86.pgtable_types import (
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_SPECIAL,
    _PAGE_TABLE,
    PAGE_SHIFT,
    PGD_KERNEL_START,
    PTE_PFN_MASK,
)
from refmodel.mm.memory import ZERO_PFN
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.types import PageState, PageType
from refmodel.specs import Violation
from refmodel.specs.cow import pfn_of_pte

_PG_table = int(PageType.PG_table)


@dataclass(slots=True)
class TableTree:
    """What one mm's user half reaches: table pfn -> level, plus the present leaves."""

    mm: mm_struct
    tables: dict[int, str] = field(default_factory=dict)
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    leaves: list[tuple[int, int]] = field(default_factory=list)  # (address, pte)
    malformed: list[str] = field(default_factory=list)
    pgd_user_slots: int = 0  # how many entries of the pgd's dict lie below slot 256
    slot_past_511: bool = False  # a lower table holds an index >= 512 (no store makes one)


def _levels_below_pgd(levels: int) -> list[str]:
    return ["p4d", "pud", "pmd", "pte"] if levels == 5 else ["pud", "pmd", "pte"]


_SHIFTS = {"p4d": 39, "pud": 30, "pmd": 21, "pte": 12}


_KERNEL_PGD_SLOTS = frozenset(range(PGD_KERNEL_START, 512))
_FLAGS = ~PTE_PFN_MASK


def user_table_tree(pgdat: pglist_data, mm: mm_struct) -> TableTree:
    """Every table reachable from the user half (pgd slots 0..255) of ``mm``'s pgd."""
    tree = TableTree(mm)
    if not mm.pgd:
        return tree
    tables = tree.tables
    tables[mm.pgd] = "pgd"
    leaves = tree.leaves
    pgtables = pgdat.pgtables
    below = _levels_below_pgd(mm.paging_levels)
    shifts = [_SHIFTS[lv] for lv in below]
    last = len(below) - 1
    pgd_shift = 48 if mm.paging_levels == 5 else 39

    def descend(table_pfn: int, depth: int, base: int) -> None:
        entries = pgtables.get(table_pfn, {})
        shift = shifts[depth]
        idxs = sorted(entries)
        if idxs and idxs[-1] >= 512:
            tree.slot_past_511 = True
        if depth == last:
            for idx in idxs:
                val = entries[idx]
                if val & (_PAGE_PRESENT | _PAGE_PROTNONE):  # pte_present
                    leaves.append((base | (idx << shift), val))
            return
        for idx in idxs:
            val = entries[idx]
            if val & ~0x60 == 0:  # none
                continue
            # An entry whose flags are exactly _PAGE_TABLE is never pmd_bad or pud_bad.
            if val & _FLAGS != _PAGE_TABLE:
                tree.malformed.append(f"{below[depth]}[{idx}] of table {table_pfn:#x} = "
                                      f"{val:#x} is not a user table entry")
                continue
            pfn = (val & PTE_PFN_MASK) >> PAGE_SHIFT
            if pfn in tables:
                tree.duplicates.append((pfn, below[depth + 1]))
                continue
            tables[pfn] = below[depth + 1]
            descend(pfn, depth + 1, base | (idx << shift))

    pgd_entries = pgtables.get(mm.pgd, {})
    # The kernel half (over 200 slots) is dropped at C speed before the sort.
    user_slots = sorted(i for i in pgd_entries.keys() - _KERNEL_PGD_SLOTS
                        if i < PGD_KERNEL_START)
    tree.pgd_user_slots = len(user_slots)
    for idx in user_slots:
        val = pgd_entries[idx]
        if val:
            base = idx << pgd_shift
            if val & _FLAGS != _PAGE_TABLE:
                tree.malformed.append(f"pgd[{idx}] = {val:#x} is not a user table entry")
                continue
            pfn = (val & PTE_PFN_MASK) >> PAGE_SHIFT
            if pfn in tables:
                tree.duplicates.append((pfn, below[0]))
                continue
            tables[pfn] = below[0]
            descend(pfn, 0, base)
    return tree


def _trees(pgdat: pglist_data, mms: Sequence[mm_struct],
           trees: list[TableTree] | None = None) -> list[TableTree]:
    return trees if trees is not None else [user_table_tree(pgdat, mm) for mm in mms]


def table_pages_allocated(pgdat: pglist_data, mms: Sequence[mm_struct],
        trees: list[TableTree] | None = None) -> list[Violation]:
    """Every table page reachable from an mm's pgd is an allocated order-0 page with a
    reference, in use as a page table, and never a free buddy or per-cpu page."""
    v = []
    for tree in _trees(pgdat, mms, trees):
        for pfn, level in tree.tables.items():
            page = pgdat.mem_map.get(pfn)
            if page is None or page.state is not PageState.ALLOCATED or page._refcount < 1:
                st = "untouched" if page is None else page.state.name
                v.append(Violation("table_pages_allocated",
                                   f"{level} table at pfn {pfn:#x} of {tree.mm!r} is {st}"))
            elif pgdat.allocated.get(pfn) != 0:
                v.append(Violation("table_pages_allocated",
                                   f"{level} table at pfn {pfn:#x} is not an order-0 allocation"))
            if pfn not in pgdat.pgtables:
                v.append(Violation("table_pages_allocated",
                                   f"{level} table at pfn {pfn:#x} is not registered as a table"))
    return v


def tables_reachable_once(pgdat: pglist_data, mms: Sequence[mm_struct],
        trees: list[TableTree] | None = None) -> list[Violation]:
    """Each table page is reached exactly once: no table appears twice in one mm's tree,
    and no user-half table is shared between two mms."""
    v = []
    owner: dict[int, int] = {}
    for n, tree in enumerate(_trees(pgdat, mms, trees)):
        for pfn, level in tree.duplicates:
            v.append(Violation("tables_reachable_once",
                               f"{level} table at pfn {pfn:#x} is reached twice in mm #{n}"))
        for pfn, level in tree.tables.items():
            if pfn in owner:
                v.append(Violation("tables_reachable_once",
                                   f"{level} table at pfn {pfn:#x} is shared by mm #{owner[pfn]} "
                                   f"and mm #{n}"))
            owner[pfn] = n
    return v


_KERNEL_HALF: dict[tuple[int, int], dict[int, int]] = {}


def _kernel_half(levels: int, nr_pages: int) -> dict[int, int]:
    """The non-empty kernel-half slots every pgd copies from swapper_pg_dir (a pure
    function of its arguments, so computed once per pair)."""
    want = _KERNEL_HALF.get((levels, nr_pages))
    if want is None:
        boundary = KERNEL_PGD_BOUNDARY(levels)
        swapper = swapper_pg_dir_entries(levels, nr_pages)
        want = {i: e for i, e in swapper.items() if i >= boundary and e}
        _KERNEL_HALF[(levels, nr_pages)] = want
    return want


def kernel_half_intact(pgd: dict[int, int], user_slots: int, levels: int,
                       nr_pages: int) -> bool:
    """The common case of the kernel-half rule, compared at C speed: every wanted
    swapper_pg_dir entry is in the pgd and the pgd has nothing else at or above
    PGD_KERNEL_START (``user_slots``: how many of its entries lie below)."""
    want_half = _kernel_half(levels, nr_pages)
    return len(pgd) - user_slots == len(want_half) and want_half.items() <= pgd.items()


def table_entries_well_formed(pgdat: pglist_data, mms: Sequence[mm_struct],
        trees: list[TableTree] | None = None) -> list[Violation]:
    """Every non-empty entry above the pte level is a _PAGE_TABLE entry (P|RW|U|A|D) for a
    table below; pgd slots 256..272 are empty and 273..511 are swapper_pg_dir's."""
    v = []
    for n, tree in enumerate(_trees(pgdat, mms, trees)):
        v += [Violation("table_entries_well_formed", f"mm #{n}: {m}") for m in tree.malformed]
        mm = tree.mm
        if not mm.pgd:
            continue
        pgd = pgdat.pgtables.get(mm.pgd, {})
        boundary = KERNEL_PGD_BOUNDARY(mm.paging_levels)
        # The loop below names the slots when the common case does not hold.
        if kernel_half_intact(pgd, tree.pgd_user_slots, mm.paging_levels,
                              pgdat.node_spanned_pages):
            continue
        swapper = swapper_pg_dir_entries(mm.paging_levels, pgdat.node_spanned_pages)
        for idx in range(PGD_KERNEL_START, 512):
            want = swapper.get(idx, 0) if idx >= boundary else 0
            if pgd.get(idx, 0) != want:
                v.append(Violation("kernel_half_is_swapper",
                                   f"mm #{n}: pgd[{idx}] = {pgd.get(idx, 0):#x}, "
                                   f"swapper_pg_dir has {want:#x}"))
    return v


def page_table_flag_matches_level(pgdat: pglist_data,
                                  mms: Sequence[mm_struct],
        trees: list[TableTree] | None = None) -> list[Violation]:
    """PageTable is set on pte and pmd tables (their ctors) and on no pgd, p4d or pud page;
    NR_PAGETABLE counts exactly the PageTable pages."""
    v = []
    for tree in _trees(pgdat, mms, trees):
        for pfn, level in tree.tables.items():
            page = pgdat.mem_map.get(pfn)
            has = bool(page is not None and page.page_type & _PG_table)
            if has != (level in ("pte", "pmd")):
                v.append(Violation("page_table_flag_matches_level",
                                   f"{level} table at pfn {pfn:#x}: PageTable is {has}"))
    counted = sum(1 for p in pgdat.pgtables if pgdat.mem_map[p].page_type & _PG_table)
    if sum(pgdat.nr_pagetable.values()) != counted:
        v.append(Violation("page_table_flag_matches_level",
                           f"NR_PAGETABLE is {sum(pgdat.nr_pagetable.values())}, "
                           f"but {counted} pages are PageTable"))
    return v


def pgtables_bytes_accounted(pgdat: pglist_data, mms: Sequence[mm_struct],
        trees: list[TableTree] | None = None) -> list[Violation]:
    """mm->pgtables_bytes is 4096 per pte, pmd and pud table; p4d and pgd are not counted."""
    v = []
    for n, tree in enumerate(_trees(pgdat, mms, trees)):
        want = 4096 * sum(1 for lv in tree.tables.values() if lv in ("pte", "pmd", "pud"))
        if tree.mm.pgtables_bytes != want:
            v.append(Violation("pgtables_bytes_accounted",
                               f"mm #{n}: pgtables_bytes {tree.mm.pgtables_bytes}, its pte+pmd+pud "
                               f"tables make {want}"))
    return v


def present_leaves_map_allocated_pages(pgdat: pglist_data,
                                       mms: Sequence[mm_struct],
        trees: list[TableTree] | None = None) -> list[Violation]:
    """Every present pte maps a pfn that is allocated with a reference held (never a free
    buddy or per-cpu page) and is not itself a page table; the one exception is a special
    pte of the shared zero page (a reserved page in the kernel image)."""
    v = []
    for n, tree in enumerate(_trees(pgdat, mms, trees)):
        for addr, pte in tree.leaves:
            pfn = pfn_of_pte(pte)
            if pfn == ZERO_PFN and pte & _PAGE_SPECIAL:
                continue
            page = pgdat.mem_map.get(pfn)
            if page is None or page.state is not PageState.ALLOCATED or page._refcount < 1:
                st = "untouched" if page is None else f"{page.state.name}, ref {page._refcount}"
                v.append(Violation("present_leaves_map_allocated_pages",
                                   f"mm #{n}: {addr:#x} maps pfn {pfn:#x}, which is {st}"))
            elif pfn in pgdat.pgtables:
                v.append(Violation("present_leaves_map_allocated_pages",
                                   f"mm #{n}: {addr:#x} maps pfn {pfn:#x}, a page table"))
    return v


def no_orphan_tables(pgdat: pglist_data, mms: Sequence[mm_struct],
        trees: list[TableTree] | None = None) -> list[Violation]:
    """Every page in use as a table belongs to one of the mms (nothing leaked), and
    pgd_list holds exactly their pgds."""
    v = []
    reached: set[int] = set()
    for tree in _trees(pgdat, mms, trees):
        reached.update(tree.tables)
    for pfn in pgdat.pgtables:
        if pfn not in reached:
            v.append(Violation("no_orphan_tables",
                               f"table page {pfn:#x} is reachable from no mm (leaked)"))
    pgds = sorted(mm.pgd for mm in mms if mm.pgd)
    if sorted(pgdat.pgd_list) != pgds:
        v.append(Violation("no_orphan_tables",
                           f"pgd_list {[hex(p) for p in pgdat.pgd_list]} is not the mms' pgds "
                           f"{[hex(p) for p in pgds]}"))
    return v


PAGETABLE_INVARIANTS: tuple[
    Callable[[pglist_data, Sequence[mm_struct], list[TableTree] | None], list[Violation]],
    ...] = (
    table_pages_allocated,
    tables_reachable_once,
    table_entries_well_formed,
    page_table_flag_matches_level,
    pgtables_bytes_accounted,
    present_leaves_map_allocated_pages,
    no_orphan_tables,
)


def check_pagetables(pgdat: pglist_data, mms: Sequence[mm_struct]) -> list[Violation]:
    """Every page-table invariant, for the mms whose tables live in ``pgdat``."""
    out: list[Violation] = []
    trees = [user_table_tree(pgdat, mm) for mm in mms]  # walked once for every invariant
    for inv in PAGETABLE_INVARIANTS:
        out.extend(inv(pgdat, mms, trees))
    return out
