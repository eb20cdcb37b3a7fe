"""Swap areas, slot allocation and swap_map counts (mm/swapfile.c, 5.10).

One swap area on a rotating disk (no SWP_SOLIDSTATE: no cluster_info, sequential
"cluster_next" allocation with SWAPFILE_CLUSTER-sized runs). ``swap_map[offset]`` is the
number of swap PTEs naming the slot, plus SWAP_HAS_CACHE while the swap cache holds a page
for it. Counts above SWAP_MAP_MAX need 5.10's continuation pages, which the model does not
build: it raises instead (docs/scope.md). The area's contents are real bytes
(``swap_info_struct.data``, sparse: a slot never written reads as zeros).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from refmodel.bugs import KernelBug
from refmodel.fs import address_space
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.swapops import swp_entry, swp_offset, swp_type
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "mm/swapfile.c"
SWAP_HAS_CACHE = 0x40
_NOT_HAS_CACHE = ~SWAP_HAS_CACHE  # worked out once: the count bits of a swap_map entry
SWAP_CONT = 0x80
SWAP_MAP_MAX = 0x3E
SWAP_MAP_BAD = 0x3F
SWAP_MAP_SHMEM = 0xBF
COUNT_CONTINUED = 0x80
SWAPFILE_CLUSTER = 256
LATENCY_LIMIT = 256
SWAP_BATCH = 64
SWP_USED = 1 << 0
SWP_WRITEOK = 1 << 1
SWP_SCANNING = 1 << 14
# __try_to_reclaim_swap's flags
TTRS_ANYWAY = 0x1
TTRS_UNMAPPED = 0x2
TTRS_FULL = 0x4
ENOENT = 2
EEXIST = 17
ENOMEM = 12
EINVAL = 22
PG_swapcache = int(PageFlags.PG_owner_priv_1)
PG_writeback = int(PageFlags.PG_writeback)


@dataclass(slots=True, eq=False)
class swap_info_struct:
    """struct swap_info_struct: the fields slot allocation reads and writes.

    ``cache`` is the swap cache of this area (swapper_spaces: offset -> page). ``data``
    is the area's contents on disk (offset -> 4096 bytes; absent reads as zeros)."""

    type: int
    max: int  # pages in the area, header included
    pages: int  # usable slots
    swap_map: list[int]
    lowest_bit: int
    highest_bit: int
    cluster_next: int
    cluster_nr: int = 0
    inuse_pages: int = 0
    flags: int = SWP_USED | SWP_WRITEOK
    cache: dict[int, Page] = field(default_factory=dict)
    data: dict[int, bytes] = field(default_factory=dict)
    # swapper_spaces[type]: the address_space whose xarray is ``cache`` (the same dict),
    # for the page-cache lookups 5.10 makes on it (find_get_page)
    swapper_space: address_space = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.swapper_space = address_space(i_pages=self.cache)

    def __repr__(self) -> str:
        return (f"swap_info(type={self.type}, max={self.max}, inuse={self.inuse_pages}, "
                f"next={self.cluster_next})")


def swap_info_get(pgdat: pglist_data, entry: int) -> swap_info_struct:
    """mm/swapfile.c:_swap_info_get: the area of an entry, or the kernel's "Bad swap
    file entry" / "Unused swap offset" complaints (raised, since 5.10 only prints them)."""
    t = swp_type(entry)
    swap_info = pgdat.swap_info
    if t >= len(swap_info):
        raise KernelBug("_swap_info_get: Bad swap file entry", f"entry {entry:#x}")
    si = swap_info[t]
    off = swp_offset(entry)
    if off >= si.max:
        raise KernelBug("_swap_info_get: Bad swap offset entry", f"entry {entry:#x}")
    if not si.swap_map[off]:
        raise KernelBug("_swap_info_get: Unused swap offset entry", f"entry {entry:#x}")
    return si


@kernel(F)
def setup_swap_map_and_extents(pgdat: pglist_data, maxpages: int) -> swap_info_struct:
    """Models the state sys_swapon leaves (setup_swap_map_and_extents, enable_swap_info):
    slot 0 is the header (SWAP_MAP_BAD), the others free; cluster_next starts at 1;
    nr_swap_pages and total_swap_pages grow by the usable slots."""
    swap_map = [0] * maxpages
    swap_map[0] = SWAP_MAP_BAD
    si = swap_info_struct(type=len(pgdat.swap_info), max=maxpages, pages=maxpages - 1,
                          swap_map=swap_map, lowest_bit=1, highest_bit=maxpages - 1,
                          cluster_next=1)
    pgdat.swap_info.append(si)
    pgdat.nr_swap_pages += si.pages
    pgdat.total_swap_pages += si.pages
    return si


@kernel("include/linux/swap.h")
def vm_swap_full(pgdat: pglist_data) -> bool:
    """Models include/linux/swap.h:vm_swap_full: less than half the swap is free."""
    return pgdat.nr_swap_pages * 2 < pgdat.total_swap_pages


@kernel("include/linux/swap.h")
def mem_cgroup_swap_full(pgdat: pglist_data, page: Page) -> bool:
    """Without memcg swap accounting: vm_swap_full()."""
    return vm_swap_full(pgdat)


@kernel(F)
def swap_range_alloc(si: swap_info_struct, offset: int, nr_entries: int) -> None:
    """Models mm/swapfile.c:swap_range_alloc: lowest_bit/highest_bit follow the allocated
    range's ends; a full area has lowest_bit = max, highest_bit = 0."""
    end = offset + nr_entries - 1
    if offset == si.lowest_bit:
        si.lowest_bit += nr_entries
    if end == si.highest_bit:
        si.highest_bit -= nr_entries
    si.inuse_pages += nr_entries
    if si.inuse_pages == si.pages:
        si.lowest_bit = si.max
        si.highest_bit = 0


@kernel(F)
def swap_range_free(pgdat: pglist_data, si: swap_info_struct, offset: int,
                    nr_entries: int) -> None:
    """Models mm/swapfile.c:swap_range_free: widen lowest_bit/highest_bit, give the slots
    back to nr_swap_pages (the bytes on disk become garbage: dropped)."""
    end = offset + nr_entries - 1
    if offset < si.lowest_bit:
        si.lowest_bit = offset
    if end > si.highest_bit:
        si.highest_bit = end
    pgdat.nr_swap_pages += nr_entries
    si.inuse_pages -= nr_entries
    for off in range(offset, end + 1):
        si.data.pop(off, None)


@kernel(F)
def scan_swap_map_slots(pgdat: pglist_data, si: swap_info_struct, usage: int, nr: int,
                        try_to_reclaim: Callable[[swap_info_struct, int, int], int]
                        ) -> list[int]:
    """Models mm/swapfile.c:scan_swap_map_slots for a rotating disk: continue the current
    run at cluster_next while it lasts (cluster_nr), else look from lowest_bit for the first
    SWAPFILE_CLUSTER free slots in a row, else take the first free slot after (then
    before) the scan base. With swap over half full, a slot held only by the swap cache is
    reclaimed and reused. LATENCY_LIMIT's breaks are counted as 5.10 counts them, since they
    decide where a batch stops. Returns the entries allocated (at most nr)."""
    smap = si.swap_map
    slots: list[int] = []
    latency_ration = LATENCY_LIMIT
    scanned_many = False
    scan_base = offset = si.cluster_next
    si.flags |= SWP_SCANNING
    state = "checks"
    si.cluster_nr -= 1
    if si.cluster_nr < 0:  # !si->cluster_nr--
        si.cluster_nr = 0
        if si.pages - si.inuse_pages < SWAPFILE_CLUSTER:
            si.cluster_nr = SWAPFILE_CLUSTER - 1
        else:
            scan_base = offset = si.lowest_bit
            last_in_cluster = offset + SWAPFILE_CLUSTER - 1
            found = False
            while last_in_cluster <= si.highest_bit:
                if smap[offset]:
                    last_in_cluster = offset + SWAPFILE_CLUSTER
                elif offset == last_in_cluster:
                    offset -= SWAPFILE_CLUSTER - 1
                    si.cluster_next = offset
                    si.cluster_nr = SWAPFILE_CLUSTER - 1
                    found = True
                    break
                latency_ration -= 1
                if latency_ration < 0:
                    latency_ration = LATENCY_LIMIT
                offset += 1
            if not found:
                offset = scan_base
                si.cluster_nr = SWAPFILE_CLUSTER - 1
    while True:
        if state == "checks":
            if not si.flags & SWP_WRITEOK or not si.highest_bit:
                break  # no_page
            if offset > si.highest_bit:
                scan_base = offset = si.lowest_bit
            if vm_swap_full(pgdat) and smap[offset] == SWAP_HAS_CACHE:
                if try_to_reclaim(si, offset, TTRS_ANYWAY):
                    continue  # freed: try this slot again
                state = "scan"
                continue
            if smap[offset]:
                if not slots:
                    state = "scan"
                    continue
                state = "done"
                continue
            smap[offset] = usage
            swap_range_alloc(si, offset, 1)
            slots.append(swp_entry(si.type, offset))
            if len(slots) == nr or offset >= si.highest_bit:
                state = "done"
                continue
            latency_ration -= 1
            if latency_ration < 0:
                if slots:
                    state = "done"
                    continue
                latency_ration = LATENCY_LIMIT
            if si.cluster_nr:  # ++offset is evaluated only while the run lasts
                offset += 1
                if not smap[offset]:
                    si.cluster_nr -= 1
                    continue  # checks
            if not scanned_many:
                scan_limit = scan_base if offset < scan_base else si.highest_bit
                hit = False
                while offset <= scan_limit:
                    latency_ration -= 1
                    if latency_ration <= 0:
                        break
                    if not smap[offset]:
                        hit = True
                        break
                    offset += 1
                if hit:
                    continue  # checks
            state = "done"
        elif state == "done":
            si.cluster_next = offset + 1  # set_cluster_next (rotating disk)
            si.flags &= ~SWP_SCANNING
            return slots
        else:  # scan:
            found = False
            offset += 1
            while offset <= si.highest_bit:
                if not smap[offset] or (vm_swap_full(pgdat) and smap[offset] == SWAP_HAS_CACHE):
                    found = True
                    break
                latency_ration -= 1
                if latency_ration < 0:
                    latency_ration = LATENCY_LIMIT
                    scanned_many = True
                offset += 1
            if not found:
                offset = si.lowest_bit
                while offset < scan_base:
                    if not smap[offset] or (vm_swap_full(pgdat)
                                            and smap[offset] == SWAP_HAS_CACHE):
                        found = True
                        break
                    latency_ration -= 1
                    if latency_ration < 0:
                        latency_ration = LATENCY_LIMIT
                        scanned_many = True
                    offset += 1
            if not found:
                break  # no_page
            state = "checks"
    si.flags &= ~SWP_SCANNING
    return slots


@kernel(F)
def get_swap_pages(pgdat: pglist_data, n_goal: int,
                   try_to_reclaim: Callable[[swap_info_struct, int, int], int]) -> list[int]:
    """Models mm/swapfile.c:get_swap_pages for order-0 entries: up to min(n_goal,
    SWAP_BATCH, free slots) entries, each already marked SWAP_HAS_CACHE (reserved for the
    swap cache). nr_swap_pages drops by what was taken."""
    avail = pgdat.nr_swap_pages
    if avail <= 0:
        return []
    n_goal = min(n_goal, SWAP_BATCH, avail)
    pgdat.nr_swap_pages -= n_goal
    slots: list[int] = []
    for si in pgdat.swap_info:  # the avail list: one area, or by priority
        if not si.highest_bit or not si.flags & SWP_WRITEOK:
            continue
        slots = scan_swap_map_slots(pgdat, si, SWAP_HAS_CACHE, n_goal, try_to_reclaim)
        if slots:
            break
    if len(slots) < n_goal:
        pgdat.nr_swap_pages += n_goal - len(slots)
    return slots


@kernel(F)
def swap_entry_free(pgdat: pglist_data, si: swap_info_struct, entry: int) -> None:
    """Models mm/swapfile.c:swap_entry_free: a slot held only by SWAP_HAS_CACHE (what a
    freed slot waits in) becomes free."""
    off = swp_offset(entry)
    if si.swap_map[off] != SWAP_HAS_CACHE:
        raise KernelBug("VM_BUG_ON(count != SWAP_HAS_CACHE)",
                        f"slot {off} has swap_map {si.swap_map[off]:#x}")
    si.swap_map[off] = 0
    swap_range_free(pgdat, si, off, 1)


@kernel(F)
def swapcache_free_entries(pgdat: pglist_data, entries: list[int]) -> None:
    """Models mm/swapfile.c:swapcache_free_entries: free a batch, sorted (swp_entry_cmp)."""
    for entry in sorted(entries) if len(entries) > 1 else entries:
        swap_entry_free(pgdat, pgdat.swap_info[swp_type(entry)], entry)


@kernel(F)
def __swap_entry_free_locked(si: swap_info_struct, offset: int, usage: int) -> int:
    """Models mm/swapfile.c:__swap_entry_free_locked: drop one PTE reference (usage 1)
    or the swap cache's (SWAP_HAS_CACHE). Returns the new usage; when nothing is left the
    slot keeps SWAP_HAS_CACHE in swap_map until free_swap_slot releases it."""
    count = si.swap_map[offset]
    has_cache = count & SWAP_HAS_CACHE
    count &= _NOT_HAS_CACHE
    if usage == SWAP_HAS_CACHE:
        if not has_cache:
            raise KernelBug("VM_BUG_ON(!has_cache)", f"slot {offset}")
        has_cache = 0
    elif count == SWAP_MAP_SHMEM:
        count = 0
    elif count <= SWAP_MAP_MAX:
        if count == 0:
            raise KernelBug("swap_free: Unused swap offset entry", f"slot {offset}")
        count -= 1
    new = count | has_cache
    si.swap_map[offset] = new if new else SWAP_HAS_CACHE
    return new


@kernel(F)
def __swap_duplicate(pgdat: pglist_data, entry: int, usage: int) -> int:
    """Models mm/swapfile.c:__swap_duplicate: one more PTE reference (usage 1), or claim
    the slot for the swap cache (SWAP_HAS_CACHE: -EEXIST if it has a cache page already,
    -ENOENT if nobody uses the slot). 0 or -errno."""
    t, off = swp_type(entry), swp_offset(entry)
    swap_info = pgdat.swap_info
    if t >= len(swap_info) or off >= swap_info[t].max:
        return -EINVAL  # "Bad swap file entry"
    swap_map = swap_info[t].swap_map
    count = swap_map[off]
    if swap_count(count) == SWAP_MAP_BAD:
        return -ENOENT
    has_cache = count & SWAP_HAS_CACHE
    count &= _NOT_HAS_CACHE
    err = 0
    if usage == SWAP_HAS_CACHE:
        if not has_cache and count:
            has_cache = SWAP_HAS_CACHE
        elif has_cache:
            err = -EEXIST
        else:
            err = -ENOENT
    elif count or has_cache:
        if count < SWAP_MAP_MAX:
            count += usage
        else:
            raise KernelBug("model: swap count continuation is not modelled",
                            f"slot {off} would need more than {SWAP_MAP_MAX} references")
    else:
        err = -ENOENT
    swap_map[off] = count | has_cache
    return err


@kernel(F)
def swap_duplicate(pgdat: pglist_data, entry: int) -> int:
    """Models mm/swapfile.c:swap_duplicate (fork, try_to_unmap): 0 or -errno."""
    return __swap_duplicate(pgdat, entry, 1)


@kernel(F)
def swapcache_prepare(pgdat: pglist_data, entry: int) -> int:
    """Models mm/swapfile.c:swapcache_prepare: __swap_duplicate(entry, SWAP_HAS_CACHE)."""
    return __swap_duplicate(pgdat, entry, SWAP_HAS_CACHE)


@kernel(F)
def swap_count(ent: int) -> int:
    """Models mm/swapfile.c:swap_count: a swap_map entry without SWAP_HAS_CACHE."""
    return ent & _NOT_HAS_CACHE


@kernel(F)
def swap_swapcount(si: swap_info_struct, entry: int) -> int:
    """Models mm/swapfile.c:swap_swapcount: PTE references of a slot of this area."""
    return swap_count(si.swap_map[swp_offset(entry)])


@kernel(F)
def __swp_swapcount(pgdat: pglist_data, entry: int) -> int:
    """Models mm/swapfile.c:__swp_swapcount: swap_swapcount of the entry's area
    (get_swap_device always finds the model's one area)."""
    return swap_swapcount(pgdat.swap_info[swp_type(entry)], entry)


@kernel(F)
def page_swapcount(pgdat: pglist_data, page: Page) -> int:
    """Models mm/swapfile.c:page_swapcount: PTE references of the page's slot
    (_swap_info_get cannot fail for a swap-cache page: its slot is in use)."""
    entry = page.private
    return swap_count(pgdat.swap_info[swp_type(entry)].swap_map[swp_offset(entry)])


@kernel(F)
def swap_page_trans_huge_swapped(si: swap_info_struct, entry: int) -> bool:
    """Models mm/swapfile.c:swap_page_trans_huge_swapped on a rotating disk (no
    cluster_info, so never a huge cluster): whether PTEs still name the slot."""
    return swap_count(si.swap_map[swp_offset(entry)]) != 0


@kernel(F)
def page_swapped(pgdat: pglist_data, page: Page) -> bool:
    """Models mm/swapfile.c:page_swapped for an order-0 page."""
    return page_swapcount(pgdat, page) != 0
