"""Incremental checking of the whole-system invariants (issue 6: "make the invariant checks
incremental where a full scan would be the bottleneck").

After every step the whole-system walk asks one question: does every invariant that
:meth:`refmodel.specs.system.System.violations` checks still hold? On a machine full of
pages (the pressure walk) that full check reads every page, pte, list and swap slot, about
5 ms a step. :class:`IncrementalChecker` answers the same question by reading only what the
step changed, given that everything held before it. Whenever its answer is not a plain
"all holds" (a violation, or a change of a kind it does not follow), it runs the full check,
which words the violations; a full check that passes makes it rebuild its own records from
scratch. So it never says more than the full check, and it never says less for the changes
it follows (tests/test_incremental.py compares the two after every step of long walks and
plants each kind of corruption).

What changed is found, not reported by the model:
- writes to any field of a struct page: every page in ``mem_map`` is given a subclass of
  Page whose ``__setattr__`` notes its pfn (the model only ever adds pages to mem_map, so a
  new page is one past the count seen last time);
- page tables: a copy of each table, compared whole at C speed; only tables that differ are
  diffed entry by entry, from the top level down;
- every other container the invariants read (allocated blocks, free lists, per-cpu lists,
  LRU lists, page caches, swap caches, swap_map, the swap-slots cache): a shadow copy. The
  pages noted above are re-read in it, then the shadow is compared whole at C speed, and
  only a difference left over (a change no page write announced) costs a full diff.

Everything derived from those (who maps each pfn, swap-pte users per slot, rss per mm, the
sorted block intervals, table reachability) is kept up to date from the changes, and each
invariant is re-evaluated for the pfns, slots, tables and mms the changes touched. The
VMA-level invariants (VMA lists and index, rmap chains, i_mmap, OOM) are cheap and run in
full every time, except the "no present pte outside a VMA" scan, which reads only the
changed ptes of an mm whose VMA layout stayed the same.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from refmodel.arch.x86.pgtable_types import (
    _PAGE_KNL_ERRATUM_MASK,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_RW,
    _PAGE_SPECIAL,
    _PAGE_TABLE,
    PGD_KERNEL_START,
    PTE_PFN_MASK,
)
from refmodel.fs import file
from refmodel.machine import Machine
from refmodel.mm.memory import ZERO_PFN
from refmodel.mm.mm_types import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    MM_SHMEMPAGES,
    MM_SWAPENTS,
    anon_vma,
    mm_struct,
)
from refmodel.mm.mmzone import MIGRATE_PCPTYPES
from refmodel.mm.swapfile import SWAP_HAS_CACHE, SWAP_MAP_BAD
from refmodel.mm.swapops import pte_to_swp_entry, swp_entry, swp_offset, swp_type
from refmodel.mm.types import (
    PAGE_MAPPING_ANON,
    ST_ALLOCATED,
    ST_BUDDY,
    ST_PCP,
    Page,
    PageFlags,
    PageType,
)
from refmodel.specs import Violation
from refmodel.specs.cow import files_of, pfn_of_pte
from refmodel.specs.oom import check_oom, no_killed_task_survives
from refmodel.specs.pagetable import kernel_half_intact
from refmodel.specs.reclaim import LRU_FLAGS, PG_lru, i_mmap_consistent, rmap_consistent
from refmodel.specs.vma import check_vma, no_present_pte_outside_or_above_vma, vmas

_PRESENT = _PAGE_PRESENT | _PAGE_PROTNONE
_NOT_NONE = ~_PAGE_KNL_ERRATUM_MASK  # pte_none ignores the KNL erratum bits
_FLAGS = ~PTE_PFN_MASK
_PG_buddy = int(PageType.PG_buddy)
_PG_table = int(PageType.PG_table)
_PG_slab = int(PageFlags.PG_slab)
_PG_swapbacked = int(PageFlags.PG_swapbacked)
_PG_swapcache = int(PageFlags.PG_owner_priv_1)
# Everything specs.vma reads of a VMA and of its mm (objects compare by identity).
_VMA_FIELDS = operator.attrgetter("vm_start", "vm_end", "vm_flags", "vm_page_prot",
                                  "vm_pgoff", "vm_file", "anon_vma", "vm_prev", "vm_next",
                                  "vm_mm")
_MM_FIELDS = operator.attrgetter("map_count", "highest_vm_end", "total_vm", "exec_vm",
                                 "stack_vm", "data_vm", "locked_vm", "cap_sys_rawio",
                                 "task_size", "mmap")
_free_list = operator.attrgetter("free_list")
_nr_free = operator.attrgetter("nr_free")
_SHIFTS4 = (39, 30, 21, 12)
_SHIFTS5 = (48, 39, 30, 21, 12)


class _Unusual(Exception):
    """A change the checker does not follow, or a violation: the full check decides."""


def _tracking_class(dirty: set[int]) -> type[Page]:
    """A subclass of Page that notes the pfn of every page written (before the write, so
    that a changed pfn field is noticed under the old number)."""
    note = dirty.add
    set_field = object.__setattr__

    def __setattr__(self: Page, name: str, value: object) -> None:
        note(self.pfn)
        set_field(self, name, value)

    return type("TrackedPage", (Page,), {"__slots__": (), "__setattr__": __setattr__})


def _changed_keys(old: dict[int, int], new: dict[int, int]) -> set[int]:
    return {k for k, _ in old.items() ^ new.items()}


class IncrementalChecker:
    """The whole-system invariants of one Machine, checked after each step by what it
    changed (see the module docstring). ``full`` is the full check (System.violations);
    ``files`` the files held open besides their mappings (read at every check);
    ``baseline`` the pfns allocated before the run."""

    def __init__(self, m: Machine, files: list[file], baseline: frozenset[int],
                 full: Callable[[], list[Violation]]) -> None:
        self.m = m
        self.files = files
        self.baseline = baseline
        self.full = full
        self.dirty: set[int] = set()
        self.tracked = _tracking_class(self.dirty)
        self.full_checks = 0  # how often the full check had to decide (for tests)
        self._valid = False
        self._reset()

    # ---------------------------------------------------------------- entry point
    def violations(self) -> list[Violation]:
        if self._valid:
            try:
                self._step()
                return []
            except (_Unusual, KeyError, IndexError):
                pass
        self.full_checks += 1
        out = self.full()
        self._valid = not out
        if self._valid:
            self._reset()
            try:
                self._step()
            except (_Unusual, KeyError, IndexError):
                # The full check passed but the records disagree: check in full next time.
                self._valid = False
        return out

    # ---------------------------------------------------------------- records
    def _reset(self) -> None:
        """Forget everything: the next _step treats the whole machine as new."""
        pgdat = self.m.pgdat
        self.pages_seen = 0
        self.page_objs: list[Page] = []
        self.cfg: tuple[object, ...] | None = None
        self.dirty.clear()
        self.tshadow: dict[int, dict[int, int]] = {}
        # table pfn -> (mm key, depth, base address); references to each non-root table
        self.reach: dict[int, tuple[int, int, int]] = {}
        self.trefs: dict[int, int] = {}
        self.mms: dict[int, mm_struct] = {}
        self.levels: dict[int, int] = {}
        self.roots: dict[int, int] = {}  # mm key -> pgd pfn
        self.counted_tables: dict[int, int] = {}  # mm key -> pud/pmd/pte tables
        self.users: dict[int, dict[tuple[int, int], int]] = {}  # pfn -> {(mm, addr): pte}
        self.leaves: dict[int, dict[int, int]] = {}  # mm key -> {addr: present pte}
        self.nswap: dict[int, int] = {}  # mm key -> swap ptes
        self.swap_users: dict[tuple[int, int], int] = {}
        self.rss: dict[int, list[int]] = {}  # mm key -> expected rss_stat
        self.rss_class: dict[int, int] = {}  # pfn -> the counter its mappings were counted in
        self.alloc_shadow: dict[int, int] = {}
        self.free_shadow: list[list[list[dict[int, Page]]]] = [
            [[{} for _ in a.free_list] for a in z.free_area] for z in pgdat.node_zones]
        self.free_where: dict[int, tuple[int, int, int]] = {}
        # per zone: blocks per order on its lists and the pages they hold, while unchanged
        self.free_counts: list[tuple[list[int], int] | None] = [None] * len(pgdat.node_zones)
        self.pcp_shadow: list[list[list[Page]]] = [
            [[] for _ in z.pageset.lists] for z in pgdat.node_zones]
        self.pcp: set[int] = set()
        self.lru_shadow: list[dict[int, Page]] = [{} for _ in pgdat.node_lruvec.lists]
        self.lru_where: dict[int, tuple[int, int]] = {}  # pfn -> (list, zone index)
        self.lru_sizes: list[list[int]] = [
            [0] * len(sizes) for sizes in pgdat.node_lruvec.lru_zone_size]
        self.file_shadow: dict[int, tuple[file, dict[int, Page]]] = {}
        self.cached: dict[int, tuple[file, int]] = {}
        self.file_ids: dict[int, tuple[object, bool]] = {}
        self.swapcache_shadow: list[dict[int, Page]] = [{} for _ in pgdat.swap_info]
        self.swapcached: dict[int, int] = {}
        self.swap_map_shadow: list[list[int]] = [[0] * si.max for si in pgdat.swap_info]
        self.held: set[int] = set()
        self.held_raw: tuple[list[int], list[int]] | None = None
        self.swap_free: int | None = None  # free slots while no swap_map changes
        self.intervals: list[tuple[int, int]] = sorted(pgdat.reserved_ranges)
        self.covered = sum(e - s for s, e in pgdat.reserved_ranges)
        self.pt_flagged: set[int] = set()  # table pages with PageTable set
        self.layouts: dict[int, tuple[tuple[int, int, int], ...]] = {}
        self.vma_snaps: dict[int, tuple[object, ...]] = {}
        self.rmap_snap: tuple[object, ...] = ()

    # ---------------------------------------------------------------- one step
    def _step(self) -> None:
        """Bring the records up to date with the machine and check what changed; raise
        _Unusual at anything the full check must look at."""
        m = self.m
        pgdat = m.pgdat
        mem_map = pgdat.mem_map
        tracked = self.tracked
        touched = self.dirty  # pfns whose invariants are re-evaluated at the end
        # Pages created since the last check are new: track and check them.
        n = len(mem_map)
        if n < self.pages_seen:
            raise _Unusual
        pages = list(mem_map.values())
        if (pages if n == self.pages_seen else pages[:self.pages_seen]) != self.page_objs:
            raise _Unusual  # a struct page replaced (or removed and another added)
        if n > self.pages_seen:
            for page in pages[self.pages_seen:]:
                page.__class__ = tracked
                touched.add(page.pfn)
            self.pages_seen = n
            self.page_objs = pages
        # Everything the invariants read that no container above holds: fixed at boot
        cfg = self._config()
        if cfg != self.cfg:
            if self.cfg is not None:
                raise _Unusual
            self.cfg = cfg
        slots: set[tuple[int, int]] = set()  # swap slots to re-evaluate
        new_iv: list[tuple[int, int]] = []

        mms = [t.mm for t in sorted(m.tasks.values(), key=lambda t: t.pid)
               if t.mm is not None]
        self._update_mms(mms)
        self.files_now = files_of(mms, self.files)
        changed_leaves = self._update_tables(touched, slots)
        self._update_allocated(touched, new_iv)
        self._update_free_lists(touched, new_iv)
        self._update_pcp(touched, new_iv)
        self._update_lru(touched)
        self._update_caches(mms, touched, slots)
        self._update_swap(slots)
        self._check_intervals(new_iv)
        self._check_pfns(touched)
        touched.clear()
        self._check_slots(slots)
        self._check_aggregates(mms, changed_leaves)

    def _config(self) -> tuple[object, ...]:
        m = self.m
        pgdat = m.pgdat
        return (pgdat.reserved_ranges, pgdat.max_order, pgdat.node_spanned_pages,
                [(z.zone_start_pfn, z.spanned_pages, z.zone_idx) for z in pgdat.node_zones],
                [(si.type, si.max) for si in pgdat.swap_info])

    # ---------------------------------------------------------------- mms and tables
    def _update_mms(self, mms: Sequence[mm_struct]) -> None:
        """New mms get their pgd as a root; exited ones are kept in ``gone`` until their
        tables have been taken apart."""
        now = {id(mm): mm for mm in mms}
        if len(now) != len(mms):
            raise _Unusual  # two tasks sharing an mm: the walk never makes one
        self.gone = self.mms.keys() - now.keys()
        self.new_roots: list[tuple[int, int]] = []
        for key, mm in now.items():
            if self.levels.get(key, mm.paging_levels) != mm.paging_levels:
                raise _Unusual  # the full check walks the tables by it
            root = self.roots.get(key)
            if key not in self.mms:
                self.levels[key] = mm.paging_levels
                self.mms[key] = mm
                self.leaves[key] = {}
                self.nswap[key] = 0
                self.rss[key] = [0, 0, 0, 0]
                self.counted_tables[key] = 0
            if root != (mm.pgd or None):
                if root is not None:
                    raise _Unusual  # a live mm changed its pgd
                # registered once the exited mms' tables are gone (the pfn may be reused)
                self.new_roots.append((key, mm.pgd))

    def _forget_gone(self) -> None:
        """Exited mms must have left nothing behind (no tables, ptes or swap ptes)."""
        for key in self.gone:
            if self.leaves[key] or self.nswap[key] or self.counted_tables[key]:
                raise _Unusual
            del self.mms[key], self.leaves[key], self.nswap[key], self.rss[key]
            del self.counted_tables[key], self.levels[key]
            self.roots.pop(key, None)
            self.layouts.pop(key, None)
            self.vma_snaps.pop(key, None)

    def _update_tables(self, touched: set[int],
                       slots: set[tuple[int, int]]) -> dict[int, list[tuple[int, int]]]:
        """Diff the page tables against their copies, from the pgds down; returns the
        present ptes that changed, per mm."""
        cur = self.m.pgdat.pgtables
        shadow = self.tshadow
        reach = self.reach
        trefs = self.trefs
        changed_leaves: dict[int, list[tuple[int, int]]] = {}
        if self.gone:
            # An exited mm's tables all go at once; any still in pgtables is left with no
            # copy and no reach, so below it counts as a new table that nothing reaches.
            for p in [p for p, r in reach.items() if r[0] in self.gone]:
                key, d, base = reach.pop(p)
                trefs.pop(p, None)
                old = shadow.pop(p, {})
                if d == self._last(key):
                    self._leaf_changes(key, base, old, {}, set(old), touched, slots,
                                       changed_leaves)
                if d >= self._last(key) - 2:
                    self.counted_tables[key] -= 1
                touched.add(p)
        for key, pgd in self.new_roots:
            if pgd in reach or pgd in shadow:
                raise _Unusual
            self.roots[key] = pgd
            reach[pgd] = (key, 0, 0)
        pending = {p for p, t in cur.items() if shadow.get(p) != t}
        pending |= shadow.keys() - cur.keys()
        if not pending:
            return changed_leaves
        detached: set[int] = set()
        removed = pending - cur.keys()
        changed = pending - removed
        while pending:
            ready = [p for p in pending if p in reach]
            if not ready:
                raise _Unusual  # a changed table no pgd reaches
            depth = min(reach[p][1] for p in ready)
            layer = [p for p in ready if reach[p][1] == depth]
            pending.difference_update(layer)
            attach: list[tuple[int, int, int, int]] = []  # (child, key, depth, base)
            for p in layer:
                key, d, base = reach[p]
                mm = self.mms[key]
                five = mm.paging_levels == 5
                shift = (_SHIFTS5 if five else _SHIFTS4)[d]
                old = shadow.get(p, {})
                new = cur.get(p, {})
                idxs = _changed_keys(old, new)
                touched.add(p)
                if d == (4 if five else 3):
                    self._leaf_changes(key, base, old, new, idxs, touched, slots,
                                       changed_leaves)
                    continue
                kernel_half = False
                for idx in idxs:
                    if d == 0 and idx >= PGD_KERNEL_START:
                        kernel_half = True
                        continue
                    if idx >= 512:
                        raise _Unusual
                    o = old.get(idx, 0)
                    if o if d == 0 else o & _NOT_NONE:  # was a table entry (checked then)
                        child = (o & PTE_PFN_MASK) >> 12
                        trefs[child] -= 1
                        if not trefs[child]:
                            detached.add(child)
                    v = new.get(idx, 0)
                    if v if d == 0 else v & _NOT_NONE:
                        if v & _FLAGS != _PAGE_TABLE:
                            raise _Unusual  # malformed
                        attach.append(((v & PTE_PFN_MASK) >> 12, key, d + 1,
                                       base | (idx << shift)))
                if kernel_half and p in cur and not self._kernel_half_ok(mm, new):
                    raise _Unusual
            for child, key, d, base in attach:
                if child in reach or child not in cur or child in detached:
                    raise _Unusual  # reached twice, not a table, or freed and reused elsewhere
                reach[child] = (key, d, base)
                trefs[child] = 1
                touched.add(child)
                if d >= self._last(key) - 2:
                    self.counted_tables[key] += 1
        for p in detached:
            if p not in removed:
                raise _Unusual  # an orphan: no longer referenced, still a table
        for p in removed:
            key, d, _ = reach.pop(p)
            if p not in detached:
                raise _Unusual  # freed while still referenced (a pgd goes with its mm)
            trefs.pop(p, None)
            if d and d >= self._last(key) - 2:
                self.counted_tables[key] -= 1
            del shadow[p]
            touched.add(p)
        for p in changed:
            shadow[p] = dict(cur[p])
        return changed_leaves

    def _last(self, key: int) -> int:
        """The depth of the pte level in mm ``key``'s tables."""
        return 4 if self.mms[key].paging_levels == 5 else 3

    def _kernel_half_ok(self, mm: mm_struct, pgd: dict[int, int]) -> bool:
        user = sum(1 for i in pgd if i < PGD_KERNEL_START)
        return kernel_half_intact(pgd, user, mm.paging_levels, self.m.pgdat.node_spanned_pages)

    def _leaf_changes(self, key: int, base: int, old: dict[int, int], new: dict[int, int],
                      idxs: set[int], touched: set[int], slots: set[tuple[int, int]],
                      changed_leaves: dict[int, list[tuple[int, int]]]) -> None:
        users = self.users
        leaves = self.leaves[key]
        swap_info = self.m.pgdat.swap_info
        rss_class = self.rss_class
        rss = self.rss[key]
        for idx in idxs:
            if idx >= 512:
                raise _Unusual
            addr = base | (idx << 12)
            o = old.get(idx, 0)
            if o & _PRESENT:
                pfn = pfn_of_pte(o)
                del users[pfn][(key, addr)]
                del leaves[addr]
                c = rss_class.get(pfn)
                if c is not None:
                    rss[c] -= 1
                touched.add(pfn)
            elif o & _NOT_NONE:
                e = pte_to_swp_entry(o)
                slot = (swp_type(e), swp_offset(e))
                self.swap_users[slot] -= 1
                self.nswap[key] -= 1
                slots.add(slot)
            v = new.get(idx, 0)
            if v & _PRESENT:
                pfn = pfn_of_pte(v)
                u = users.get(pfn)
                if u is None:
                    users[pfn] = {(key, addr): v}
                else:
                    u[(key, addr)] = v
                leaves[addr] = v
                c = rss_class.get(pfn)
                if c is not None:
                    rss[c] += 1
                touched.add(pfn)
                changed_leaves.setdefault(key, []).append((addr, v))
            elif v & _NOT_NONE:
                e = pte_to_swp_entry(v)
                slot = (swp_type(e), swp_offset(e))
                if slot[0] >= len(swap_info) or not 0 < slot[1] < swap_info[slot[0]].max:
                    raise _Unusual  # names no slot
                self.swap_users[slot] = self.swap_users.get(slot, 0) + 1
                self.nswap[key] += 1
                slots.add(slot)

    # ---------------------------------------------------------------- blocks and lists
    def _iv_add(self, start: int, end: int, new_iv: list[tuple[int, int]]) -> None:
        bisect.insort(self.intervals, (start, end))
        self.covered += end - start
        new_iv.append((start, end))

    def _iv_remove(self, start: int, end: int) -> None:
        ivs = self.intervals
        i = bisect.bisect_left(ivs, (start, end))
        if i == len(ivs) or ivs[i] != (start, end):
            raise _Unusual
        del ivs[i]
        self.covered -= end - start

    def _update_allocated(self, touched: set[int], new_iv: list[tuple[int, int]]) -> None:
        cur = self.m.pgdat.allocated
        sh = self.alloc_shadow
        if cur == sh:
            return
        for p, old, new in _dict_changes(cur, sh, touched):
            if old is not None:
                self._iv_remove(p, p + (1 << old))
            if new is not None:
                self._iv_add(p, p + (1 << new), new_iv)
            touched.add(p)

    def _update_free_lists(self, touched: set[int], new_iv: list[tuple[int, int]]) -> None:
        gone: list[tuple[int, tuple[int, int, int]]] = []
        came: list[tuple[int, Page, tuple[int, int, int]]] = []
        for zi, zone in enumerate(self.m.pgdat.node_zones):
            shadows = self.free_shadow[zi]
            if list(map(_free_list, zone.free_area)) == shadows:
                continue  # compared at C speed: most steps change one zone at most
            self.free_counts[zi] = None
            for order, area in enumerate(zone.free_area):
                if area.free_list == shadows[order]:
                    continue
                for mt, fl in enumerate(area.free_list):
                    sh = shadows[order][mt]
                    if fl == sh:
                        continue
                    for p, old, new in _dict_changes(fl, sh, touched):
                        if old is not None:
                            gone.append((p, (zi, order, mt)))
                        if new is not None:
                            came.append((p, new, (zi, order, mt)))
        where = self.free_where
        mem_map = self.m.pgdat.mem_map
        for p, w in gone:
            if where.pop(p, None) != w:
                raise _Unusual
            self._iv_remove(p, p + (1 << w[1]))
            touched.add(p)
        for p, page, w in came:
            if p in where or mem_map.get(p) is not page:
                raise _Unusual  # on two lists, or a foreign page
            where[p] = w
            self._iv_add(p, p + (1 << w[1]), new_iv)
            touched.add(p)

    def _update_pcp(self, touched: set[int], new_iv: list[tuple[int, int]]) -> None:
        gone: list[int] = []
        came: list[Page] = []
        for zone, shadows in zip(self.m.pgdat.node_zones, self.pcp_shadow, strict=True):
            lists = zone.pageset.lists
            if len(lists) != len(shadows):
                raise _Unusual
            if list(map(list, lists)) == shadows:  # pages compare by identity
                continue
            for mt, lst in enumerate(lists):
                sh = shadows[mt]
                if len(lst) == len(sh) and all(map(operator.is_, lst, sh)):
                    continue
                ids = {id(x) for x in sh}
                now = {id(x) for x in lst}
                if len(now) != len(lst):
                    raise _Unusual  # a page twice on a list
                gone += [x.pfn for x in sh if id(x) not in now]
                came += [x for x in lst if id(x) not in ids]
                shadows[mt] = list(lst)
        pcp = self.pcp
        for p in gone:
            if p not in pcp:
                raise _Unusual
            pcp.discard(p)
            self._iv_remove(p, p + 1)
            touched.add(p)
        mem_map = self.m.pgdat.mem_map
        for page in came:
            p = page.pfn
            if p in pcp or mem_map.get(p) is not page:
                raise _Unusual
            pcp.add(p)
            self._iv_add(p, p + 1, new_iv)
            touched.add(p)

    def _update_lru(self, touched: set[int]) -> None:
        gone: list[tuple[int, int]] = []
        came: list[tuple[int, Page, int]] = []
        lists = self.m.pgdat.node_lruvec.lists
        for lru, lst in enumerate(lists):
            sh = self.lru_shadow[lru]
            if lst == sh:
                continue
            for p, old, new in _dict_changes(lst, sh, touched):
                if old is not None:
                    gone.append((p, lru))
                if new is not None:
                    came.append((p, new, lru))
        where = self.lru_where
        sizes = self.lru_sizes
        mem_map = self.m.pgdat.mem_map
        for p, lru in gone:
            w = where.pop(p, None)
            if w is None or w[0] != lru:
                raise _Unusual
            sizes[lru][w[1]] -= 1
            touched.add(p)
        for p, page, lru in came:
            if p in where or mem_map.get(p) is not page:
                raise _Unusual  # on two lists, or a foreign page
            where[p] = (lru, page.zone_idx)
            sizes[lru][page.zone_idx] += 1
            touched.add(p)

    def _update_caches(self, mms: Sequence[mm_struct], touched: set[int],
                       slots: set[tuple[int, int]]) -> None:
        """The page caches of the files the invariants look at, and the swap caches."""
        files = {id(f): f for f in self.files_now}
        gone: list[tuple[int, file, int]] = []
        came: list[tuple[Page, file, int]] = []
        shadows = self.file_shadow
        for fid in shadows.keys() - files.keys():
            f, sh = shadows.pop(fid)
            self.file_ids.pop(fid, None)
            gone += [(page.pfn, f, idx) for idx, page in sh.items()]
        for fid, f in files.items():
            entry = shadows.get(fid)
            if entry is None:
                entry = shadows[fid] = (f, {})
                self.file_ids[fid] = (id(f.f_mapping), f.shmem)
            elif self.file_ids[fid] != (id(f.f_mapping), f.shmem):
                raise _Unusual  # specs.vma reads f.shmem, specs.cow page->mapping
            cur = f.f_mapping.i_pages
            sh = entry[1]
            if cur == sh:
                continue
            for idx, page in sh.items() - cur.items():
                gone.append((page.pfn, f, idx))
            for idx, page in cur.items() - sh.items():
                came.append((page, f, idx))
            shadows[fid] = (f, dict(cur))
        cached = self.cached
        for p, f, idx in gone:
            c = cached.pop(p, None)
            if c is None or c[0] is not f or c[1] != idx:
                raise _Unusual
            touched.add(p)
        for page, f, idx in came:
            if page.pfn in cached:
                raise _Unusual
            cached[page.pfn] = (f, idx)
            touched.add(page.pfn)
        swapcached = self.swapcached
        for si, sh in zip(self.m.pgdat.swap_info, self.swapcache_shadow, strict=True):
            if si.cache == sh:
                continue
            out = sh.items() - si.cache.items()
            into = si.cache.items() - sh.items()
            for off, page in out:
                if swapcached.pop(page.pfn, None) != swp_entry(si.type, off):
                    raise _Unusual
                touched.add(page.pfn)
                slots.add((si.type, off))
            for off, page in into:
                if page.pfn in swapcached or self.m.pgdat.mem_map.get(page.pfn) is not page:
                    raise _Unusual
                swapcached[page.pfn] = swp_entry(si.type, off)
                touched.add(page.pfn)
                slots.add((si.type, off))
            self.swapcache_shadow[si.type] = dict(si.cache)

    def _update_swap(self, slots: set[tuple[int, int]]) -> None:
        """The swap-slots cache's reserved slots and every swap_map change."""
        pgdat = self.m.pgdat
        if len(pgdat.swap_info) != len(self.swapcache_shadow):
            raise _Unusual  # swapon or swapoff
        sc = pgdat.swp_slots
        raw = (sc.slots[sc.cur:sc.cur + sc.nr], sc.slots_ret[:]) if sc is not None else None
        if raw != self.held_raw:
            self.held_raw = raw
            held: set[int] = set()
            if raw is not None:
                held = {swp_offset(e) for e in raw[0]} | {swp_offset(e) for e in raw[1]}
            for off in held ^ self.held:
                for si in pgdat.swap_info:
                    slots.add((si.type, off))
            self.held = held
        for si in pgdat.swap_info:
            sh = self.swap_map_shadow[si.type]
            cur = si.swap_map
            if cur == sh:
                continue
            if len(cur) != len(sh):
                raise _Unusual
            self.swap_free = None
            for t, off in slots:
                if t == si.type and 0 <= off < len(cur):
                    sh[off] = cur[off]
            if cur != sh:  # a change nothing announced: find it
                for off, (a, b) in enumerate(zip(cur, sh, strict=True)):
                    if a != b:
                        slots.add((si.type, off))
                        sh[off] = a

    # ---------------------------------------------------------------- the checks
    def _check_intervals(self, new_iv: list[tuple[int, int]]) -> None:
        """No block overlaps another: the old ones did not, so any overlap now involves a
        new block, and (sorted by start) one next to it."""
        ivs = self.intervals
        for iv in new_iv:
            i = bisect.bisect_left(ivs, iv)
            if i and ivs[i - 1][1] > iv[0]:
                raise _Unusual
            if i + 1 < len(ivs) and ivs[i + 1][0] < iv[1]:
                raise _Unusual

    def _check_pfns(self, touched: set[int]) -> None:
        """Every per-page invariant of specs.buddy, .pagetable, .cow and .reclaim, for the
        pages the step touched (and the pfns whose mappings, lists or caches changed)."""
        pgdat = self.m.pgdat
        mem_map = pgdat.mem_map
        allocated = pgdat.allocated
        pgtables = pgdat.pgtables
        zones = pgdat.node_zones
        max_order = pgdat.max_order
        free_where = self.free_where
        pcp = self.pcp
        users = self.users
        cached = self.cached
        swapcached = self.swapcached
        lru_where = self.lru_where
        reach = self.reach
        baseline = self.baseline
        rss_class = self.rss_class
        rss = self.rss
        pt_flagged = self.pt_flagged
        for p in touched:
            page = mem_map.get(p)
            u = users.get(p)
            if u is not None and not u:
                del users[p]
                u = None
            if u and p == ZERO_PFN:  # mapped only read-only by special ptes
                for pte in u.values():
                    if pte & _PAGE_RW or not pte & _PAGE_SPECIAL:
                        raise _Unusual
            if page is None:
                if (p in free_where or p in pcp or p in allocated or p in cached
                        or (u and p != ZERO_PFN)
                        or p in swapcached or p in lru_where or p in reach or p in pgtables):
                    raise _Unusual
                continue
            st = page.state
            ref = page._refcount
            free = p in free_where
            # specs.buddy: state, PageBuddy and counts agree with the lists
            if (page.pfn != p or (page.page_type & _PG_buddy != 0) != free
                    or (st is ST_BUDDY) != free or (st is ST_PCP) != (p in pcp)
                    or (st is ST_ALLOCATED) != (p in allocated)):
                raise _Unusual
            if st is ST_ALLOCATED:
                if ref < 1:
                    raise _Unusual
            elif (st is ST_BUDDY or st is ST_PCP) and ref:
                raise _Unusual
            if free:
                zi, order, mt = free_where[p]
                zone = zones[zi]
                if (p & ((1 << order) - 1) or p < zone.zone_start_pfn
                        or p + (1 << order) > zone.zone_end_pfn or page.zone_idx != zi
                        or page.private != order or page.index != mt or order >= max_order):
                    raise _Unusual
                if order < max_order - 1:
                    w = free_where.get(p ^ (1 << order))
                    if w is not None and w[0] == zi and w[1] == order:
                        raise _Unusual  # unmerged buddies
            # specs.pagetable: a reachable table is an allocated order-0 table page
            is_table = p in pgtables
            r = reach.get(p)
            if r is not None:
                if not is_table or st is not ST_ALLOCATED or allocated.get(p) != 0:
                    raise _Unusual
                if bool(page.page_type & _PG_table) != (r[1] >= self._last(r[0]) - 1):
                    raise _Unusual
            elif is_table:
                raise _Unusual  # an orphan table
            if is_table and page.page_type & _PG_table:
                pt_flagged.add(p)
            else:
                pt_flagged.discard(p)
            # specs.cow: counts, sharing, caches, leaks
            in_cache = cached.get(p)
            entry = swapcached.get(p)
            cls: int | None = None
            if u:
                n = len(u)
                if p != ZERO_PFN:
                    if st is not ST_ALLOCATED or is_table:
                        raise _Unusual
                    if page._mapcount + 1 != n or ref != (
                            n + (in_cache is not None) + (entry is not None)):
                        raise _Unusual
                    anon = page.mapping_flags & PAGE_MAPPING_ANON
                    if n >= 2 and anon and any(pte & _PAGE_RW for pte in u.values()):
                        raise _Unusual  # a shared anonymous page is writable
                    cls = (MM_ANONPAGES if anon else
                           MM_SHMEMPAGES if page.flags & _PG_swapbacked else MM_FILEPAGES)
            else:
                if in_cache is not None and (
                        page._mapcount != -1 or ref != 1
                        or page.mapping is not in_cache[0].f_mapping
                        or page.index != in_cache[1]):
                    raise _Unusual
                if entry is not None and (page._mapcount != -1 or ref != 1):
                    raise _Unusual
            if (in_cache is not None or entry is not None) and (
                    st is not ST_ALLOCATED or is_table):
                raise _Unusual
            if entry is not None and (page.private != entry
                                      or not page.flags & _PG_swapcache):
                raise _Unusual
            if p in allocated and not (p in baseline or is_table or u or in_cache is not None
                                       or entry is not None or page.flags & _PG_slab):
                raise _Unusual  # leaked
            # specs.reclaim: LRU membership and flags
            lw = lru_where.get(p)
            if lw is not None:
                mask, want = LRU_FLAGS[lw[0]]
                if (page.flags & mask != want or st is not ST_ALLOCATED or ref <= 0
                        or page.zone_idx != lw[1]):
                    raise _Unusual
            elif page.flags & PG_lru and p in allocated:
                raise _Unusual
            # rss: the counter this page's mappings count in
            old = rss_class.get(p)
            if old != cls:
                if u:
                    for key, _ in u:
                        if old is not None:
                            rss[key][old] -= 1
                        if cls is not None:
                            rss[key][cls] += 1
                if cls is None:
                    del rss_class[p]
                else:
                    rss_class[p] = cls

    def _check_slots(self, slots: set[tuple[int, int]]) -> None:
        swap_info = self.m.pgdat.swap_info
        held = self.held
        for t, off in slots:
            si = swap_info[t]
            if not off:
                continue  # the header slot: _check_aggregates
            if not 0 < off < si.max:
                raise _Unusual
            cached = off in si.cache
            in_slots = off in held
            if cached and in_slots:
                raise _Unusual
            want = self.swap_users.get((t, off), 0) | (
                SWAP_HAS_CACHE if cached or in_slots else 0)
            if si.swap_map[off] != want:
                raise _Unusual

    def _check_aggregates(self, mms: Sequence[mm_struct],
                          changed_leaves: dict[int, list[tuple[int, int]]]) -> None:
        m = self.m
        pgdat = m.pgdat
        # specs.buddy: list counts, per-cpu counts, pages conserved
        for zi, zone in enumerate(pgdat.node_zones):
            known = self.free_counts[zi]
            if known is None:  # the zone's lists changed: count them
                counts = [sum(map(len, a.free_list)) for a in zone.free_area]
                known = self.free_counts[zi] = (counts, sum(
                    n << o for o, n in enumerate(counts)))
            if known[0] != list(map(_nr_free, zone.free_area)) or (
                    zone.nr_free_pages != known[1]):
                raise _Unusual
            pcp = zone.pageset
            if pcp.count != sum(map(len, pcp.lists)) or len(pcp.lists) != MIGRATE_PCPTYPES:
                raise _Unusual
        if self.covered != pgdat.node_spanned_pages:
            raise _Unusual
        # specs.reclaim: LRU sizes, swap totals
        if self.lru_sizes != pgdat.node_lruvec.lru_zone_size:
            raise _Unusual
        if pgdat.swap_info:
            if self.swap_free is None:
                self.swap_free = sum(si.swap_map.count(0) for si in pgdat.swap_info)
            if self.swap_free != pgdat.nr_swap_pages or any(
                    si.swap_map[0] != SWAP_MAP_BAD for si in pgdat.swap_info):
                raise _Unusual
        # specs.pagetable and specs.cow: per-mm counters, NR_PAGETABLE, pgd_list
        if sum(pgdat.nr_pagetable.values()) != len(self.pt_flagged):
            raise _Unusual
        if sorted(pgdat.pgd_list) != sorted(mm.pgd for mm in mms if mm.pgd):
            raise _Unusual
        if ZERO_PFN in pgdat.page_data:
            raise _Unusual
        self._forget_gone()
        chains: list[list[anon_vma]] = []
        vmas_changed = False
        for mm in mms:
            key = id(mm)
            r = self.rss[key]
            r[MM_SWAPENTS] = self.nswap[key] if pgdat.swap_info else 0
            if mm.rss_stat != r:
                raise _Unusual
            if mm.pgtables_bytes != 4096 * self.counted_tables[key]:
                raise _Unusual
            # specs.vma: everything again if anything it reads changed (the pte scan over
            # all of the mm's ptes if its VMA layout changed); else the changed ptes only
            lst = vmas(mm)
            chains += [v.anon_vma_chain[:] for v in lst]
            snap = (lst, list(map(_VMA_FIELDS, lst)), _MM_FIELDS(mm),
                    mm.vm_globals.mmap_min_addr, mm.mm_rb.fingerprint())
            if snap != self.vma_snaps.get(key):
                vmas_changed = True
                self.vma_snaps[key] = snap
                layout = tuple((v.vm_start, v.vm_end, v.vm_flags) for v in lst)
                if layout != self.layouts.get(key):
                    self.layouts[key] = layout
                    ptes = sorted(self.leaves[key].items())
                else:
                    ptes = sorted(changed_leaves.get(key, ()))
                if check_vma(mm, ptes):
                    raise _Unusual
            elif key in changed_leaves and no_present_pte_outside_or_above_vma(
                    mm, sorted(changed_leaves[key])):
                raise _Unusual
        # specs.reclaim's rmap and i_mmap checks, again if any list they read changed
        mappings = [f.f_mapping for f in self.files_now]
        avs = {id(av): av for chain in chains for av in chain}
        rmap = (list(map(id, mms)), chains, [av.rb_root[:] for av in avs.values()],
                [(id(a), a.i_mmap[:]) for a in mappings])
        if vmas_changed or rmap != self.rmap_snap:
            self.rmap_snap = rmap
            if rmap_consistent(mms) or i_mmap_consistent(mappings, mms):
                raise _Unusual
        if no_killed_task_survives(m.tasks.values()):
            raise _Unusual
        if m.last_oom is not None and check_oom(m.last_oom):
            raise _Unusual


V = TypeVar("V")


def _dict_changes(cur: Mapping[int, V], sh: dict[int, V],
                  candidates: set[int]) -> list[tuple[int, V | None, V | None]]:
    """The keys whose value differs between ``cur`` and its shadow ``sh`` as (key, old,
    new), bringing ``sh`` up to date: the candidate keys first, and a full diff only if
    the two still differ after them (or at once, for dicts smaller than the candidates)."""
    out: list[tuple[int, V | None, V | None]] = []

    def move(keys: Iterable[int]) -> None:
        for k in keys:
            a = cur.get(k)
            b = sh.get(k)
            if a is not b and a != b:
                out.append((k, b, a))
                if a is None:
                    del sh[k]
                else:
                    sh[k] = a

    if len(cur) + len(sh) > len(candidates):
        move(candidates)
    if cur != sh:
        move({k for k, _ in cur.items() ^ sh.items()})
    return out
