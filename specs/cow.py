"""Copy-on-write, reference counting and contents: invariants over a whole Machine, and the
logical-memory oracle every read is checked against (issue 6: faults, COW, fork, exit).

Invariants (each returns the violations it finds, empty when it holds):
- an anonymous page mapped in more than one place is writable in none of them;
- every mapped or cached page's _mapcount is the number of ptes mapping it, and its
  _refcount is that plus one for the page cache or the swap cache holding it (nothing
  else holds pages between operations: no pins, and the LRU pagevecs are always drained);
- each mm's rss counters are what its ptes map (MM_ANONPAGES / MM_FILEPAGES /
  MM_SHMEMPAGES by mm_counter, MM_SWAPENTS its swap ptes);
- no page is both free and mapped (or cached), and the zero page is never written;
- every allocated page is accounted for: a page table, a mapped page, a page-cache or
  swap-cache page
  (so after every task exits and every file is released, nothing is allocated: no leak);
- the shared zero page is only ever mapped read-only and special.

The oracle (:class:`LogicalMemory`) is a plain model of what each process should read: per
process, a map of the pages whose contents are private to it (anonymous pages written, and
private file pages copied on write), copied on fork; per file or shmem object, its shared
contents. It reads the VMA layout from the model (checked separately by specs.vma) and
never looks at page tables or struct pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from refmodel.arch.x86.fault import (
    BUS_ADRERR,
    SEGV_ACCERR,
    SEGV_MAPERR,
    SIGBUS,
    SIGSEGV,
    SigInfo,
)
from refmodel.arch.x86.pgtable_types import (
    _PAGE_KNL_ERRATUM_MASK,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_SPECIAL,
    MASK64,
    PAGE_SHIFT,
    PAGE_SIZE,
    PTE_PFN_MASK,
)
from refmodel.fs import file
from refmodel.mm.memory import ZERO_PFN
from refmodel.mm.mm_types import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    MM_SHMEMPAGES,
    MM_SWAPENTS,
    mm_struct,
    vm_area_struct,
)
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.swapops import swp_entry
from refmodel.mm.types import PAGE_MAPPING_ANON, PageFlags, PageState
from refmodel.mm.vm_flags import VM_EXEC, VM_READ, VM_SHARED, VM_WRITE
from refmodel.specs import Violation

_PG_swapbacked = int(PageFlags.PG_swapbacked)
_PG_slab = int(PageFlags.PG_slab)
_PG_swapcache = int(PageFlags.PG_owner_priv_1)


# --------------------------------------------------------------------------------------------
# One walk of every user pte, shared by the invariants


@dataclass(slots=True)
class Mappings:
    """Every present user pte of every mm: pfn -> [(mm index, address, pte)], plus the
    cached pages of every file still referenced."""

    mms: Sequence[mm_struct]
    by_pfn: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    cached: dict[int, tuple[file, int]] = field(default_factory=dict)  # pfn -> (file, index)
    swapcached: dict[int, int] = field(default_factory=dict)  # pfn -> swp_entry_t
    swap_ptes: list[int] = field(default_factory=list)  # per mm: swap ptes (MM_SWAPENTS)


def _leaf_entries(pgdat: pglist_data, mm: mm_struct, swap: bool) -> list[tuple[int, int]]:
    """(address, pte) of every pte in mm's user half that is present (or PROT_NONE), or,
    with ``swap``, of every swap pte (is_swap_pte: neither none nor present). The last
    level is filtered by one comprehension per table: this runs after every step."""
    tables = pgdat.pgtables
    if not mm.pgd:
        return []
    shifts = (48, 39, 30, 21, 12) if mm.paging_levels == 5 else (39, 30, 21, 12)
    last = len(shifts) - 1
    out: list[tuple[int, int]] = []
    stack = [(mm.pgd, 0, 0)]
    present = _PAGE_PRESENT | _PAGE_PROTNONE
    not_none = ~_PAGE_KNL_ERRATUM_MASK
    while stack:
        pfn, depth, base = stack.pop()
        table = tables.get(pfn, {})
        if depth == last:
            if swap:
                out += [(base | (idx << 12), val) for idx, val in table.items()
                        if val & not_none and not val & present]
            else:
                out += [(base | (idx << 12), val) for idx, val in table.items()
                        if val & present]
            continue
        shift = shifts[depth]
        for idx, val in table.items():
            if depth == 0 and idx >= 256:
                continue
            if val & _PAGE_PRESENT and not (val & _PAGE_PSE and depth >= last - 2):
                stack.append(((val & PTE_PFN_MASK) >> PAGE_SHIFT, depth + 1,
                              base | (idx << shift)))
    return out


def pfn_of_pte(pte: int) -> int:
    """pte_pfn for a plain int (the pfn of a PROT_NONE pte is stored inverted), without
    the BitOps indirection: it runs for every pte after every step."""
    if pte and not pte & _PAGE_PRESENT:
        pte ^= MASK64
    return (pte & PTE_PFN_MASK) >> PAGE_SHIFT


def user_leaves(pgdat: pglist_data, mm: mm_struct) -> list[tuple[int, int]]:
    """(address, pte) of every present (or PROT_NONE) pte in mm's user half."""
    return _leaf_entries(pgdat, mm, False)


def files_of(mms: Iterable[mm_struct], extra: Iterable[file] = ()) -> list[file]:
    """Every file a VMA of the mms maps, plus ``extra`` (files held open), once each."""
    seen: dict[int, file] = {id(f): f for f in extra}
    for mm in mms:
        v = mm.mmap
        while v is not None:
            if v.vm_file is not None:
                seen.setdefault(id(v.vm_file), v.vm_file)
            v = v.vm_next
    return list(seen.values())


def collect(pgdat: pglist_data, mms: Sequence[mm_struct], files: Iterable[file],
            leaves: Sequence[list[tuple[int, int]]] | None = None) -> Mappings:
    """Index every present pte by pfn (``leaves``: each mm's (address, pte) list if the
    caller has walked the tables already) and every cached page."""
    out = Mappings(mms)
    by_pfn = out.by_pfn
    for n, mm in enumerate(mms):
        for addr, pte in (leaves[n] if leaves is not None else user_leaves(pgdat, mm)):
            pfn = pfn_of_pte(pte)
            users = by_pfn.get(pfn)
            if users is None:
                by_pfn[pfn] = [(n, addr, pte)]
            else:
                users.append((n, addr, pte))
    for f in files:
        for index, page in f.f_mapping.i_pages.items():
            out.cached[page.pfn] = (f, index)
    for si in pgdat.swap_info:
        for off, page in si.cache.items():
            out.swapcached[page.pfn] = swp_entry(si.type, off)
    out.swap_ptes = [len(user_swap_ptes(pgdat, mm)) if pgdat.swap_info else 0 for mm in mms]
    return out


def user_swap_ptes(pgdat: pglist_data, mm: mm_struct) -> list[tuple[int, int]]:
    """(address, pte) of every swap pte in mm's user half."""
    return _leaf_entries(pgdat, mm, True)


# --------------------------------------------------------------------------------------------
# The invariants


def shared_anon_page_never_writable(pgdat: pglist_data, mp: Mappings) -> list[Violation]:
    """An anonymous page mapped in more than one place is writable in none of them."""
    v = []
    for pfn, users in mp.by_pfn.items():
        if len(users) < 2 or pfn == ZERO_PFN:
            continue
        page = pgdat.mem_map.get(pfn)
        if page is None or not page.mapping_flags & PAGE_MAPPING_ANON:
            continue
        for n, addr, pte in users:
            if pte & _PAGE_RW:
                v.append(Violation("shared_anon_page_never_writable",
                                   f"anon pfn {pfn:#x} is mapped {len(users)} times and "
                                   f"writable at {addr:#x} in mm #{n}"))
    return v


def counts_match_mappings(pgdat: pglist_data, mp: Mappings) -> list[Violation]:
    """_mapcount + 1 is the number of ptes mapping the page; _refcount is that plus one if
    a page cache holds it. The zero page is mapped only read-only by special ptes."""
    v = []
    for pfn, users in mp.by_pfn.items():
        if pfn == ZERO_PFN:
            for n, addr, pte in users:
                if pte & _PAGE_RW or not pte & _PAGE_SPECIAL:
                    v.append(Violation("zero_page_read_only_special",
                                       f"mm #{n} maps the zero page at {addr:#x} with "
                                       f"pte {pte:#x}"))
            continue
        page = pgdat.mem_map.get(pfn)
        if page is None:
            v.append(Violation("counts_match_mappings", f"pfn {pfn:#x} mapped, never used"))
            continue
        want_ref = len(users) + (1 if pfn in mp.cached else 0) + (
            1 if pfn in mp.swapcached else 0)
        if page._mapcount + 1 != len(users) or page._refcount != want_ref:
            v.append(Violation("counts_match_mappings",
                               f"pfn {pfn:#x}: _mapcount {page._mapcount} _refcount "
                               f"{page._refcount}, but {len(users)} pte(s)"
                               f"{' and the page cache' if pfn in mp.cached else ''}"
                               f"{' and the swap cache' if pfn in mp.swapcached else ''} "
                               f"map it (want {len(users) - 1} / {want_ref})"))
    for pfn, (f, index) in mp.cached.items():
        if pfn in mp.by_pfn:
            continue
        page = pgdat.mem_map[pfn]
        if page._mapcount != -1 or page._refcount != 1:
            v.append(Violation("counts_match_mappings",
                               f"cached pfn {pfn:#x} ({f.name}[{index}]) is mapped by no pte "
                               f"but has _mapcount {page._mapcount} _refcount "
                               f"{page._refcount}"))
        if page.mapping is not f.f_mapping or page.index != index:
            v.append(Violation("page_cache_links",
                               f"pfn {pfn:#x} in {f.name}[{index}] has the wrong "
                               f"mapping/index ({page.index})"))
    for pfn, entry in mp.swapcached.items():
        page = pgdat.mem_map[pfn]
        if pfn not in mp.by_pfn and (page._mapcount != -1 or page._refcount != 1):
            v.append(Violation("counts_match_mappings",
                               f"swap-cached pfn {pfn:#x} is mapped by no pte but has "
                               f"_mapcount {page._mapcount} _refcount {page._refcount}"))
        if page.private != entry or not page.flags & _PG_swapcache:
            v.append(Violation("swap_cache_links",
                               f"pfn {pfn:#x} in the swap cache at {entry:#x} has "
                               f"private {page.private:#x}, flags {page.flags:#x}"))
    return v


def rss_matches_ptes(pgdat: pglist_data, mp: Mappings) -> list[Violation]:
    """Each mm's MM_ANONPAGES / MM_FILEPAGES / MM_SHMEMPAGES counts its ptes by
    mm_counter(page)."""
    want = [[0, 0, 0, 0] for _ in mp.mms]
    for pfn, users in mp.by_pfn.items():
        if pfn == ZERO_PFN:
            continue
        page = pgdat.mem_map.get(pfn)
        if page is None:
            continue
        if page.mapping_flags & PAGE_MAPPING_ANON:
            c = MM_ANONPAGES
        elif page.flags & _PG_swapbacked:
            c = MM_SHMEMPAGES
        else:
            c = MM_FILEPAGES
        for n, _addr, _pte in users:
            want[n][c] += 1
    for n, nswap in enumerate(mp.swap_ptes):
        want[n][MM_SWAPENTS] = nswap
    v = []
    for n, mm in enumerate(mp.mms):
        if mm.rss_stat != want[n]:
            v.append(Violation("rss_matches_ptes",
                               f"mm #{n}: rss_stat {mm.rss_stat}, its ptes make {want[n]}"))
    return v


def no_page_free_and_mapped(pgdat: pglist_data, mp: Mappings) -> list[Violation]:
    """Every mapped or cached page is allocated (never free in the buddy or on a per-cpu
    list, never a page table); the zero page is never written."""
    v = []
    for pfn in list(mp.by_pfn) + list(mp.cached) + list(mp.swapcached):
        if pfn == ZERO_PFN:
            continue
        page = pgdat.mem_map.get(pfn)
        if page is None or page.state is not PageState.ALLOCATED or pfn in pgdat.pgtables:
            st = "untouched" if page is None else page.state.name
            v.append(Violation("no_page_free_and_mapped", f"pfn {pfn:#x} is mapped or cached "
                               f"but {st}{' (a page table)' if pfn in pgdat.pgtables else ''}"))
    if ZERO_PFN in pgdat.page_data:
        v.append(Violation("zero_page_never_written", "the zero page has contents"))
    return v


def every_page_accounted(pgdat: pglist_data, mp: Mappings,
                         baseline: Iterable[int] = ()) -> list[Violation]:
    """Every allocated block is a page table, a mapped page, a cached page, a slab page or
    was allocated before the run (``baseline``): nothing leaks. After every task has exited
    and every file is released, only the baseline remains."""
    known = set(baseline)
    v = []
    for pfn in pgdat.allocated:
        if (pfn in known or pfn in pgdat.pgtables or pfn in mp.by_pfn or pfn in mp.cached
                or pfn in mp.swapcached):
            continue
        page = pgdat.mem_map.get(pfn)
        if page is not None and page.flags & _PG_slab:
            continue
        v.append(Violation("every_page_accounted",
                           f"pfn {pfn:#x} (order {pgdat.allocated[pfn]}) is allocated but no "
                           f"page table, pte or page cache holds it (leaked)"))
    return v


def check_cow(pgdat: pglist_data, mms: Sequence[mm_struct], files: Iterable[file] = (),
              baseline: Iterable[int] = (),
              leaves: Sequence[list[tuple[int, int]]] | None = None) -> list[Violation]:
    """Every invariant of this module over the mms whose tables live in ``pgdat`` and the
    files held open besides their mappings (``leaves``: the present ptes of each mm, e.g.
    from refmodel.specs.pagetable.user_table_tree, to save a walk)."""
    mp = collect(pgdat, mms, files_of(mms, files), leaves)
    return (shared_anon_page_never_writable(pgdat, mp) + counts_match_mappings(pgdat, mp)
            + rss_matches_ptes(pgdat, mp) + no_page_free_and_mapped(pgdat, mp)
            + every_page_accounted(pgdat, mp, baseline))


# --------------------------------------------------------------------------------------------
# The logical-memory oracle


def _vma_at(mm: mm_struct, addr: int) -> vm_area_struct | None:
    v = mm.mm_rb.find(addr)
    if v is None or v.vm_start > addr:
        return None
    return v


@dataclass(slots=True)
class LogicalMemory:
    """What every process must read: private pages per pid, shared contents per object."""

    private: dict[int, dict[int, bytes]] = field(default_factory=dict)
    objects: dict[int, bytearray] = field(default_factory=dict)  # id(file) -> contents
    _keep: dict[int, file] = field(default_factory=dict)  # keeps ids stable

    # -- process and mapping events
    def spawn(self, pid: int) -> None:
        self.private[pid] = {}

    def fork(self, parent: int, child: int) -> None:
        self.private[child] = dict(self.private[parent])

    def exit(self, pid: int) -> None:
        del self.private[pid]

    def pids(self) -> list[int]:
        """The processes the oracle follows."""
        return sorted(self.private)

    def unmapped(self, pid: int, start: int, end: int) -> None:
        """[start, end) lost its old contents (munmap, or an mmap placed over it)."""
        priv = self.private[pid]
        if (end - start) >> PAGE_SHIFT < len(priv):
            for a in range(start, end, PAGE_SIZE):
                priv.pop(a, None)
        else:
            for a in [a for a in priv if start <= a < end]:
                del priv[a]

    def copied(self, pid: int, mm: mm_struct, start: int, end: int) -> None:
        """The pages of [start, end) were copied on write without being written (a write
        fault taken by the kernel: MAP_POPULATE of a private writable file mapping): from
        now on they are private to the process, with the contents they have now."""
        for page_addr in range(start, end, PAGE_SIZE):
            vma = _vma_at(mm, page_addr)
            if vma is None or vma.vm_flags & VM_SHARED:
                continue
            page = self._page(pid, mm, vma, page_addr)
            if isinstance(page, SigInfo):
                return  # __get_user_pages stops at the first page it cannot fault in
            self.private[pid][page_addr] = page

    def new_file(self, f: file) -> None:
        self._obj(f)

    def _obj(self, f: file) -> bytearray:
        data = self.objects.get(id(f))
        if data is None:
            size = -(-f.size // PAGE_SIZE) * PAGE_SIZE
            data = bytearray(size)
            init = bytes(f.data[:f.size])
            data[:len(init)] = init
            self.objects[id(f)] = data
            self._keep[id(f)] = f
        return data

    # -- expectations
    def _page(self, pid: int, mm: mm_struct, vma: vm_area_struct, page_addr: int
              ) -> bytes | SigInfo:
        """The logical contents of one mapped page, or SIGBUS past a file's end."""
        priv = self.private[pid].get(page_addr)
        if priv is not None:
            return priv
        f = vma.vm_file
        if f is None:
            return bytes(PAGE_SIZE)
        index = ((page_addr - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff
        if index >= -(-f.size // PAGE_SIZE):
            return SigInfo(SIGBUS, BUS_ADRERR, page_addr)
        data = self._obj(f)
        return bytes(data[index << PAGE_SHIFT:(index + 1) << PAGE_SHIFT])

    def read(self, pid: int, mm: mm_struct, addr: int, n: int) -> bytes | SigInfo:
        """What a read of n bytes at addr must return (VMAs as the model has them; no
        VM_GROWSDOWN VMA may be involved)."""
        out = bytearray()
        end = addr + n
        while addr < end:
            chunk = min(end, (addr | (PAGE_SIZE - 1)) + 1) - addr
            vma = _vma_at(mm, addr)
            if vma is None:
                return SigInfo(SIGSEGV, SEGV_MAPERR, addr)
            if not vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC):
                return SigInfo(SIGSEGV, SEGV_ACCERR, addr)
            page = self._page(pid, mm, vma, addr & ~(PAGE_SIZE - 1))
            if isinstance(page, SigInfo):
                return SigInfo(page.signo, page.si_code, addr)
            off = addr & (PAGE_SIZE - 1)
            out += page[off:off + chunk]
            addr += chunk
        return bytes(out)

    def write(self, pid: int, mm: mm_struct, addr: int, data: bytes) -> int | SigInfo:
        """Apply a write as it must happen; the bytes written or the expected signal."""
        done = 0
        end = addr + len(data)
        while addr < end:
            chunk = min(end, (addr | (PAGE_SIZE - 1)) + 1) - addr
            vma = _vma_at(mm, addr)
            if vma is None:
                return SigInfo(SIGSEGV, SEGV_MAPERR, addr)
            if not vma.vm_flags & VM_WRITE:
                return SigInfo(SIGSEGV, SEGV_ACCERR, addr)
            page_addr = addr & ~(PAGE_SIZE - 1)
            off = addr & (PAGE_SIZE - 1)
            piece = data[done:done + chunk]
            if vma.vm_flags & VM_SHARED:
                f = vma.vm_file
                assert f is not None
                index = ((page_addr - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff
                if index >= -(-f.size // PAGE_SIZE):
                    return SigInfo(SIGBUS, BUS_ADRERR, addr)
                obj = self._obj(f)
                start = (index << PAGE_SHIFT) + off
                obj[start:start + chunk] = piece
            else:
                page = self._page(pid, mm, vma, page_addr)
                if isinstance(page, SigInfo):
                    return SigInfo(page.signo, page.si_code, addr)
                self.private[pid][page_addr] = page[:off] + piece + page[off + chunk:]
            done += chunk
            addr += chunk
        return done
