"""Zones, free areas, per-cpu lists and the node (include/linux/mmzone.h, 5.10).

Physical memory is sparse: ``mem_map`` holds a :class:`Page` only for pfns that have been
looked at (block heads, allocated pages, ...). Every other pfn is implicitly the tail of the
block that contains it, or a reserved page, so a booted 16 GiB node costs a few thousand
objects, not four million.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from refmodel.bugs import KernelBug
from refmodel.mm.types import Page, PageFlags, PageState

if TYPE_CHECKING:
    from refmodel.mm.swap_slots import swap_slots_cache
    from refmodel.mm.swapfile import swap_info_struct

MAX_ORDER = 11
pageblock_order = 9
pageblock_nr_pages = 1 << pageblock_order


class MigrateType(IntEnum):
    """enum migratetype (no CMA; CONFIG_MEMORY_ISOLATION on, as on distribution kernels)."""

    MIGRATE_UNMOVABLE = 0
    MIGRATE_MOVABLE = 1
    MIGRATE_RECLAIMABLE = 2
    MIGRATE_HIGHATOMIC = 3  # == MIGRATE_PCPTYPES
    MIGRATE_ISOLATE = 4


MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = 3
MIGRATE_ISOLATE = 4
MIGRATE_TYPES = 5


class ZoneType(IntEnum):
    """enum zone_type for x86-64 (no HIGHMEM; ZONE_DEVICE left out)."""

    ZONE_DMA = 0
    ZONE_DMA32 = 1
    ZONE_NORMAL = 2
    ZONE_MOVABLE = 3


MAX_NR_ZONES = 4
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")

WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2


@dataclass(slots=True)
class FreeArea:
    """struct free_area: one list per migratetype, ordered head → tail, and nr_free."""

    free_list: list[OrderedDict[int, Page]] = field(
        default_factory=lambda: [OrderedDict() for _ in range(MIGRATE_TYPES)]
    )
    nr_free: int = 0


@dataclass(slots=True)
class PerCpuPages:
    """struct per_cpu_pages of the only CPU. lists[mt][0] is the list head."""

    count: int = 0
    high: int = 0
    batch: int = 1
    lists: list[deque[Page]] = field(
        default_factory=lambda: [deque() for _ in range(MIGRATE_PCPTYPES)]
    )


@dataclass(slots=True)
class Zone:
    """struct zone: the fields the buddy allocator reads and writes."""

    zone_idx: int
    name: str
    zone_start_pfn: int
    spanned_pages: int
    present_pages: int = 0
    managed_pages: int = 0
    _watermark: list[int] = field(default_factory=lambda: [0, 0, 0])
    watermark_boost: int = 0
    lowmem_reserve: list[int] = field(default_factory=lambda: [0] * MAX_NR_ZONES)
    nr_reserved_highatomic: int = 0
    free_area: list[FreeArea] = field(
        default_factory=lambda: [FreeArea() for _ in range(MAX_ORDER)])
    nr_free_pages: int = 0  # vm_stat[NR_FREE_PAGES]: buddy pages only, not per-cpu ones
    pageset: PerCpuPages = field(default_factory=PerCpuPages)
    boosted_watermark: bool = False  # ZONE_BOOSTED_WATERMARK in zone->flags
    # get_pageblock_migratetype: pageblocks not listed are MIGRATE_MOVABLE (memmap_init).
    pageblock_mt: dict[int, int] = field(default_factory=dict)

    @property
    def zone_end_pfn(self) -> int:
        return self.zone_start_pfn + self.spanned_pages

    def populated(self) -> bool:
        return self.present_pages > 0


def zone_managed_pages(zone: Zone) -> int:
    return zone.managed_pages


def wmark_pages(zone: Zone, i: int) -> int:
    """include/linux/mmzone.h:wmark_pages: the watermark plus the current boost."""
    return zone._watermark[i] + zone.watermark_boost


def min_wmark_pages(zone: Zone) -> int:
    return wmark_pages(zone, WMARK_MIN)


def low_wmark_pages(zone: Zone) -> int:
    return wmark_pages(zone, WMARK_LOW)


def high_wmark_pages(zone: Zone) -> int:
    return wmark_pages(zone, WMARK_HIGH)


# enum lru_list (include/linux/mmzone.h)
LRU_INACTIVE_ANON = 0
LRU_ACTIVE_ANON = 1
LRU_INACTIVE_FILE = 2
LRU_ACTIVE_FILE = 3
LRU_UNEVICTABLE = 4
NR_LRU_LISTS = 5
LRU_BASE = 0
LRU_ACTIVE = 1
LRU_FILE = 2
LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable")


def _lru_lists() -> list[OrderedDict[int, Page]]:
    return [OrderedDict() for _ in range(NR_LRU_LISTS)]


@dataclass(slots=True)
class lruvec:
    """struct lruvec of the node (no memcg: the node's own lruvec).

    Each list is ordered head → tail and keyed by pfn: list_add puts a page first,
    list_add_tail last, and reclaim isolates from the tail (the end). ``lru_zone_size``
    is mem_cgroup_per_node's lru_zone_size / the NR_ZONE_LRU counters: pages per list per
    zone. ``anon_cost`` / ``file_cost`` are what lru_note_cost accumulates.
    """

    lists: list[OrderedDict[int, Page]] = field(default_factory=_lru_lists)
    lru_zone_size: list[list[int]] = field(
        default_factory=lambda: [[0] * MAX_NR_ZONES for _ in range(NR_LRU_LISTS)])
    anon_cost: int = 0
    file_cost: int = 0


@dataclass(frozen=True, slots=True)
class alloc_context:
    """struct alloc_context (mm/internal.h): what prepare_alloc_pages works out once."""

    zonelist: list[Zone]
    highest_zoneidx: int
    migratetype: int
    spread_dirty_pages: bool = False
    preferred_zone: Zone | None = None  # preferred_zoneref: the zonelist's first zone


@dataclass(slots=True)
class AllocatorHooks:
    """Where the slow path calls into reclaim and OOM; wired by Machine (DESIGN: no cycles).

    Each default does what 5.10 would do with nothing to reclaim and nobody to kill.
    """

    # alloc_pages -> alloc_pages_current (mm/mempolicy.c), which calls back into page_alloc
    alloc_pages_current: Callable[[pglist_data, int, int], Page | None] | None = None
    wakeup_kswapd: Callable[[Zone, int, int], None] | None = None
    # try_to_free_pages(gfp_mask, order) -> pages reclaimed
    try_to_free_pages: Callable[[int, int], int] | None = None
    # out_of_memory(gfp_mask, order) for current (mm/oom_kill.c): its return value, True for
    # "progress" (a task was killed, a victim is already on its way out, or the !__GFP_FS
    # bail-out); it raises KernelPanic when nothing is killable.
    out_of_memory: Callable[[int, int], bool] | None = None
    # fatal_signal_pending(current): SIGKILL is pending for current (None: never).
    fatal_signal_pending: Callable[[], bool] | None = None
    # tsk_is_oom_victim(current): the OOM killer has marked current (None: never).
    tsk_is_oom_victim: Callable[[], bool] | None = None


@dataclass(slots=True)
class pglist_data:
    """pg_data_t for the only node, plus the sparse mem_map and the allocator's settings."""

    node_zones: list[Zone]
    node_start_pfn: int
    node_spanned_pages: int
    reserved_ranges: tuple[tuple[int, int], ...] = ()
    mem_map: dict[int, Page] = field(default_factory=dict)
    # Model settings: the standalone buddy turns pcp and mobility grouping off.
    pcp_enabled: bool = True
    page_group_by_mobility_disabled: bool = False
    single_migratetype: int | None = None
    max_order: int = MAX_ORDER
    # Untraced runs may take the allocator's fused fast paths (refmodel.mm.page_alloc_fast);
    # False runs the traced chain always. The results are the same either way.
    fast_paths: bool = True
    paging_levels: int = 4
    totalram_pages: int = 0
    min_free_kbytes: int = 0
    hooks: AllocatorHooks = field(default_factory=AllocatorHooks)
    alloc_failures: int = 0  # warn_alloc() calls
    # mm/swapfile.c's globals for the node's machine: total_swap_pages (usable slots of all
    # swap areas) and nr_swap_pages (free ones); both 0 without swap.
    total_swap_pages: int = 0
    nr_swap_pages: int = 0
    swap_info: list[swap_info_struct] = field(default_factory=list)  # swapon order
    swp_slots: swap_slots_cache | None = None  # mm/swap_slots.c, the only CPU's cache
    swap_ra: object | None = None  # mm/swap_state.c's readahead statics (swap_ra_state)
    # The node's LRU lists (mm/swap.c, mm/vmscan.c) and kswapd's state (pgdat->kswapd_*).
    node_lruvec: lruvec = field(default_factory=lruvec)  # pgdat->__lruvec
    kswapd_order: int = 0
    kswapd_highest_zoneidx: int = MAX_NR_ZONES  # MAX_NR_ZONES: no request pending
    kswapd_failures: int = 0
    kswapd_woken: bool = False  # model: woken and not asleep again (off kswapd_wait; docs/scope.md)
    pgdat_flags: int = 0  # pgdat->flags: PGDAT_DIRTY, PGDAT_WRITEBACK
    # vm_event_states (/proc/vmstat), the few the model counts: PSWPIN, PSWPOUT
    vm_events: dict[str, int] = field(default_factory=dict)
    # Page contents, sparse: a pfn with no entry reads as zeros (see mm/memory.c later).
    page_data: dict[int, bytearray] = field(default_factory=dict)
    # Pages handed out and not yet freed, by head pfn (model bookkeeping for checks).
    allocated: dict[int, int] = field(default_factory=dict)
    # Page-table pages (refmodel.arch.x86.pgtable): table pfn -> {index: entry value}, sparse
    # (a missing index is a zero entry). A pfn is a key exactly while its page is in use as a
    # page table; 5.10 keeps the entries in the page itself.
    pgtables: dict[int, dict[int, int]] = field(default_factory=dict)
    # arch/x86/mm/pgtable.c:pgd_list (a global list in 5.10): pgd pfns, head first.
    pgd_list: list[int] = field(default_factory=list)
    # vm_stat[NR_PAGETABLE] of each zone (by zone index): pte and pmd pages (their ctors).
    nr_pagetable: dict[int, int] = field(default_factory=dict)

    # Zonelists are fixed once memory is released (no hotplug), so built once, lazily.
    _zonelists: dict[int, list[Zone]] = field(default_factory=dict)
    # prepare_alloc_pages' result per GFP mask (model cache; see page_alloc)
    alloc_contexts: dict[int, alloc_context] = field(default_factory=dict)

    def zonelist(self, highest_zoneidx: int) -> list[Zone]:
        """The node's zonelist from ``highest_zoneidx`` down, populated zones only."""
        zl = self._zonelists.get(highest_zoneidx)
        if zl is None:
            zl = [z for z in reversed(self.node_zones[: highest_zoneidx + 1]) if z.managed_pages]
            self._zonelists[highest_zoneidx] = zl
        return zl


pg_data_t = pglist_data


def pfn_valid(pgdat: pglist_data, pfn: int) -> bool:
    return pgdat.node_start_pfn <= pfn < pgdat.node_start_pfn + pgdat.node_spanned_pages


def _zone_idx_of(pgdat: pglist_data, pfn: int) -> int:
    for z in pgdat.node_zones:
        if z.spanned_pages and z.zone_start_pfn <= pfn < z.zone_end_pfn:
            return z.zone_idx
    raise KernelBug("pfn_valid", f"pfn {pfn:#x} is in no zone")


def _is_reserved(pgdat: pglist_data, pfn: int) -> bool:
    return any(s <= pfn < e for s, e in pgdat.reserved_ranges)


def pfn_to_page(pgdat: pglist_data, pfn: int) -> Page:
    """include/asm-generic/memory_model.h:pfn_to_page over the sparse mem_map."""
    page = pgdat.mem_map.get(pfn)
    if page is not None:
        return page
    if not pfn_valid(pgdat, pfn):
        raise KernelBug("pfn_valid", f"pfn {pfn:#x} is outside physical memory")
    page = Page(pfn, _zone_idx_of(pgdat, pfn))
    if _is_reserved(pgdat, pfn):
        page.flags = int(PageFlags.PG_reserved)
        page.state = PageState.RESERVED
        page._refcount = 1  # __init_single_page: reserved pages keep their first reference
    pgdat.mem_map[pfn] = page
    return page


def page_to_pfn(page: Page) -> int:
    return page.pfn


def page_zone(pgdat: pglist_data, page: Page) -> Zone:
    """include/linux/mm.h:page_zone."""
    return pgdat.node_zones[page.zone_idx]


def get_pageblock_migratetype(zone: Zone, pfn: int) -> int:
    """include/linux/mmzone.h:get_pageblock_migratetype (via get_pfnblock_flags_mask)."""
    return zone.pageblock_mt.get(pfn >> pageblock_order, MIGRATE_MOVABLE)


def set_pageblock_migratetype(zone: Zone, pfn: int, migratetype: int) -> None:
    """mm/page_alloc.c:set_pageblock_migratetype."""
    blk = pfn >> pageblock_order
    if migratetype == MIGRATE_MOVABLE:
        zone.pageblock_mt.pop(blk, None)
    else:
        zone.pageblock_mt[blk] = migratetype
