"""Reclaim, LRU, swap and reverse-map invariants (issue 10), as pure predicates.

- a page is on at most one LRU list, and on one exactly when PG_lru is set; PG_active and
  PG_unevictable match the list; the per-zone list sizes are the lists' lengths; only
  allocated, referenced pages are on a list;
- every swap PTE names a used slot, and every slot's swap_map is the number of swap PTEs
  naming it, with SWAP_HAS_CACHE exactly when the swap cache holds a page for it or the
  per-cpu slots cache holds the slot; nr_swap_pages counts the free slots plus none else;
- the reverse maps are consistent: a VMA is in an anon_vma's tree exactly when that
  anon_vma is on the VMA's chain, and a file VMA is in its file's i_mmap;
- with no task left, no swap slot is in use and the swap cache is empty (nothing leaks).
"""

from __future__ import annotations

from collections.abc import Sequence

from refmodel.fs import address_space
from refmodel.mm.mm_types import anon_vma, mm_struct
from refmodel.mm.mmzone import LRU_NAMES, NR_LRU_LISTS, pglist_data
from refmodel.mm.swapfile import SWAP_HAS_CACHE, SWAP_MAP_BAD
from refmodel.mm.swapops import pte_to_swp_entry, swp_offset, swp_type
from refmodel.mm.types import Page, PageFlags, PageState
from refmodel.specs import Violation
from refmodel.specs.cow import user_swap_ptes

PG_lru = int(PageFlags.PG_lru)
PG_active = int(PageFlags.PG_active)
PG_unevictable = int(PageFlags.PG_unevictable)
PG_swapbacked = int(PageFlags.PG_swapbacked)
_ALLOCATED = PageState.ALLOCATED
# The flags a page on each LRU list must have and lack, as (mask, value): PG_lru, and the
# unevictable list's PG_unevictable, or the evictable lists' PG_active and PG_swapbacked.
LRU_FLAGS: tuple[tuple[int, int], ...] = tuple(
    (PG_lru | PG_unevictable, PG_lru | PG_unevictable) if lru == 4 else
    (PG_lru | PG_unevictable | PG_active | PG_swapbacked,
     PG_lru | (PG_active if lru & 1 else 0) | (PG_swapbacked if lru < 2 else 0))
    for lru in range(NR_LRU_LISTS))


def lru_lists_consistent(pgdat: pglist_data) -> list[Violation]:
    """Each LRU page is on one list, has PG_lru, the flags of that list, and is an
    allocated page with a reference; list sizes per zone agree; no page outside the lists
    has PG_lru."""
    v: list[Violation] = []
    lv = pgdat.node_lruvec
    seen: dict[int, int] = {}
    for lru in range(NR_LRU_LISTS):
        per_zone = [0] * len(lv.lru_zone_size[lru])
        mask, want = LRU_FLAGS[lru]
        for pfn, page in lv.lists[lru].items():
            if (pfn in seen or page.pfn != pfn or page.flags & mask != want
                    or page.state is not _ALLOCATED or page._refcount <= 0):
                v += _lru_page_violations(lru, pfn, page, seen)
            seen[pfn] = lru
            per_zone[page.zone_idx] += 1
        if per_zone != lv.lru_zone_size[lru]:
            v.append(Violation("lru_size", f"{LRU_NAMES[lru]}: lru_zone_size "
                               f"{lv.lru_zone_size[lru]}, lists hold {per_zone}"))
    mem_map = pgdat.mem_map
    for pfn in pgdat.allocated:  # only allocated pages can carry PG_lru
        stray = mem_map.get(pfn)
        if stray is not None and stray.flags & PG_lru and pfn not in seen:
            v.append(Violation("lru_flag", f"pfn {pfn:#x} has PG_lru but is on no list"))
    return v


def _lru_page_violations(lru: int, pfn: int, page: Page,
                         seen: dict[int, int]) -> list[Violation]:
    """What is wrong with one page on LRU list ``lru`` (the wordy half of the check)."""
    v = []
    name = LRU_NAMES[lru]
    if pfn in seen:
        v.append(Violation("lru_one_list", f"pfn {pfn:#x} is on {name} and "
                           f"{LRU_NAMES[seen[pfn]]}"))
    if page.pfn != pfn or not page.flags & PG_lru:
        v.append(Violation("lru_flag", f"pfn {pfn:#x} on {name} without PG_lru"))
    unevictable = lru == 4
    if bool(page.flags & PG_unevictable) != unevictable:
        v.append(Violation("lru_unevictable_flag", f"pfn {pfn:#x} on {name} with "
                           f"flags {page.flags:#x}"))
    if not unevictable:
        if bool(page.flags & PG_active) != bool(lru & 1):
            v.append(Violation("lru_active_flag", f"pfn {pfn:#x} on {name} with "
                               f"PG_active {bool(page.flags & PG_active)}"))
        if bool(page.flags & PG_swapbacked) == (lru >= 2):
            v.append(Violation("lru_type", f"pfn {pfn:#x} on {name} with "
                               f"PG_swapbacked {bool(page.flags & PG_swapbacked)}"))
    if page.state is not PageState.ALLOCATED or page._refcount <= 0:
        v.append(Violation("lru_page_in_use", f"pfn {pfn:#x} on {name} is "
                           f"{page.state.name} with _refcount {page._refcount}"))
    return v


def swap_counts_consistent(pgdat: pglist_data, mms: Sequence[mm_struct]) -> list[Violation]:
    """swap_map[offset] = number of swap PTEs naming the slot | SWAP_HAS_CACHE when the
    swap cache or the slots cache holds it; nr_swap_pages = free slots."""
    v: list[Violation] = []
    if not pgdat.swap_info:
        return v
    users: dict[tuple[int, int], int] = {}
    for mm in mms:
        for addr, pte in user_swap_ptes(pgdat, mm):
            e = pte_to_swp_entry(pte)
            key = (swp_type(e), swp_offset(e))
            if key[0] >= len(pgdat.swap_info) or not 0 < key[1] < pgdat.swap_info[key[0]].max:
                v.append(Violation("swap_pte_valid", f"pte {pte:#x} at {addr:#x} names no "
                                   f"slot"))
                continue
            users[key] = users.get(key, 0) + 1
    slots = pgdat.swp_slots
    held: set[int] = set()
    if slots is not None:
        held = {swp_offset(e) for e in slots.slots[slots.cur:slots.cur + slots.nr]}
        held |= {swp_offset(e) for e in slots.slots_ret}
    if not v and _swap_maps_as_expected(pgdat, users, held):
        return v
    free = 0
    for si in pgdat.swap_info:
        if si.swap_map[0] != SWAP_MAP_BAD:
            v.append(Violation("swap_header", "slot 0 is not SWAP_MAP_BAD"))
        for off in range(1, si.max):
            n = users.get((si.type, off), 0)
            cached = off in si.cache
            in_slots = off in held
            if cached and in_slots:
                v.append(Violation("swap_slot_state", f"slot {off} is both in the swap cache "
                                   f"and in the slots cache"))
            want = n | (SWAP_HAS_CACHE if cached or in_slots else 0)
            if si.swap_map[off] != want:
                v.append(Violation("swap_map_count", f"slot {off}: swap_map "
                                   f"{si.swap_map[off]:#x}, but {n} pte(s)"
                                   f"{', swap cache' if cached else ''}"
                                   f"{', slots cache' if in_slots else ''}"))
            if not si.swap_map[off]:
                free += 1
        for off, page in si.cache.items():
            if page.state is not PageState.ALLOCATED:
                v.append(Violation("swap_cache_page", f"slot {off}'s page {page.pfn:#x} is "
                                   f"{page.state.name}"))
    if free != pgdat.nr_swap_pages:
        v.append(Violation("nr_swap_pages", f"nr_swap_pages {pgdat.nr_swap_pages}, but "
                           f"{free} slots are free"))
    return v


def _swap_maps_as_expected(pgdat: pglist_data, users: dict[tuple[int, int], int],
                           held: set[int]) -> bool:
    """swap_counts_consistent's answer when nothing is wrong, decided with whole-list
    comparisons (this runs after every step); False sends it to the slot-by-slot walk that
    words each violation."""
    free = 0
    for si in pgdat.swap_info:
        want = [0] * si.max
        want[0] = SWAP_MAP_BAD
        for (t, off), n in users.items():
            if t == si.type:
                want[off] = n
        if held & si.cache.keys() or any(not 0 < off < si.max for off in held):
            return False  # a slot both in the swap cache and in the slots cache, or a bad one
        for off in (*si.cache, *held):
            want[off] |= SWAP_HAS_CACHE
        if want != si.swap_map:
            return False
        if any(page.state is not _ALLOCATED for page in si.cache.values()):
            return False
        free += want.count(0)
    return free == pgdat.nr_swap_pages


def rmap_consistent(mms: Sequence[mm_struct]) -> list[Violation]:
    """anon_vma trees and chains mirror each other; file VMAs are in their i_mmap."""
    v: list[Violation] = []
    avs: dict[int, anon_vma] = {}
    live: set[int] = set()
    # Identity membership ("x is y for some x in the list"), by the lists' ids, each list
    # read once: this runs after every step.
    tree_ids: dict[int, set[int]] = {}
    chain_ids: dict[int, set[int]] = {}

    def in_tree(av: anon_vma) -> set[int]:
        ids = tree_ids.get(id(av))
        if ids is None:
            ids = tree_ids[id(av)] = {id(x) for x in av.rb_root}
        return ids

    for mm in mms:
        vma = mm.mmap
        while vma is not None:
            live.add(id(vma))
            chain = vma.anon_vma_chain
            chain_ids[id(vma)] = {id(x) for x in chain}
            for av in chain:
                avs[id(av)] = av
                if id(vma) not in in_tree(av):
                    v.append(Violation("anon_vma_tree", f"{vma} is on {av}'s chain but not "
                                       f"in its tree"))
            if vma.anon_vma is not None and id(vma.anon_vma) not in chain_ids[id(vma)]:
                v.append(Violation("anon_vma_chain", f"{vma}'s anon_vma is not on its chain"))
            f = vma.vm_file
            if f is not None and not any(x is vma for x in f.f_mapping.i_mmap):
                v.append(Violation("i_mmap", f"{vma} maps {f.name} but is not in its i_mmap"))
            vma = vma.vm_next
    for av in avs.values():
        for vma in av.rb_root:
            # a VMA that is not live may not be alive at all: its chain is read directly
            if id(vma) not in live or id(av) not in (
                    chain_ids.get(id(vma)) or {id(x) for x in vma.anon_vma_chain}):
                v.append(Violation("anon_vma_tree", f"{av}'s tree holds {vma}, which is "
                                   f"gone or not linked to it"))
    return v


def i_mmap_consistent(mappings: Sequence[address_space],
                      mms: Sequence[mm_struct]) -> list[Violation]:
    """Every VMA in a file's i_mmap is a live VMA mapping that file."""
    live = set()
    for mm in mms:
        vma = mm.mmap
        while vma is not None:
            live.add(id(vma))
            vma = vma.vm_next
    return [Violation("i_mmap", f"i_mmap of {m.host} holds a dead or foreign {vma}")
            for m in mappings for vma in m.i_mmap
            if id(vma) not in live or vma.vm_file is None or vma.vm_file.f_mapping is not m]


def orphaned_swap_cache(pgdat: pglist_data) -> list[Page]:
    """Swap-cache pages nothing maps and no PTE's swap entry names (the slot's count is
    SWAP_HAS_CACHE alone). 5.10 makes them: since 5.9, do_wp_page copies any anonymous page
    somebody else holds a reference to, and the swap cache holds one, so a write after a
    swap-in copies the page and leaves the swap-cache copy behind. Reclaim frees them
    (shrink_page_list → __remove_mapping); until it runs they stay, even with no task."""
    return [page for si in pgdat.swap_info for off, page in si.cache.items()
            if page._mapcount < 0 and si.swap_map[off] == SWAP_HAS_CACHE]


def nothing_swapped_when_idle(pgdat: pglist_data) -> list[Violation]:
    """With every task gone: no slot is used by a PTE, and the swap cache holds only
    orphans (:func:`orphaned_swap_cache`; the slots cache may still hold reserved slots,
    as 5.10's does)."""
    v: list[Violation] = []
    orphans = {page.pfn for page in orphaned_swap_cache(pgdat)}
    for si in pgdat.swap_info:
        kept = [page for page in si.cache.values() if page.pfn not in orphans]
        if kept:
            v.append(Violation("swap_leak", f"{len(kept)} page(s) left in the swap cache "
                               f"with no task, mapped or named by a PTE"))
        used = [off for off in range(1, si.max) if si.swap_map[off] & ~SWAP_HAS_CACHE]
        if used:
            v.append(Violation("swap_leak", f"slots {used[:8]} still have PTE users"))
    return v


def check_reclaim(pgdat: pglist_data, mms: Sequence[mm_struct],
                  mappings: Sequence[address_space] = ()) -> list[Violation]:
    """Every invariant of this module."""
    return (lru_lists_consistent(pgdat) + swap_counts_consistent(pgdat, mms)
            + rmap_consistent(mms) + i_mmap_consistent(mappings, mms))
