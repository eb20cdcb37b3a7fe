"""The boot-time half of mm/page_alloc.c (5.10): zones, per-cpu list sizes, watermarks and
lowmem reserves, and building a node from a configuration.

Order follows start_kernel: free_area_init (zones), build_all_zonelists, memblock_free_all
(mm_init), setup_per_cpu_pageset, then init_per_zone_wmark_min (an initcall).
"""

from __future__ import annotations

from math import isqrt

from refmodel.config import MAX_DMA32_PFN, MAX_DMA_PFN, BuddyConfig, MachineConfig
from refmodel.mm import gfp as G
from refmodel.mm.memblock import free_ranges_of, memblock_free_all
from refmodel.mm.mempolicy import alloc_pages_current
from refmodel.mm.mmzone import (
    MAX_NR_ZONES,
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    ZONE_NAMES,
    AllocatorHooks,
    FreeArea,
    Zone,
    ZoneType,
    high_wmark_pages,
    pageblock_nr_pages,
    pglist_data,
)
from refmodel.trace import kernel

F = "mm/page_alloc.c"

watermark_scale_factor = 10
sysctl_lowmem_reserve_ratio = (256, 256, 32, 0)  # DMA, DMA32, NORMAL, MOVABLE


@kernel(F)
def zone_batchsize(zone: Zone) -> int:
    """Models mm/page_alloc.c:zone_batchsize: about a quarter of a 1/1024th of the zone,
    at most 1 MiB worth, rounded to 2^n - 1."""
    batch = zone.managed_pages // 1024
    if batch * 4096 > 1024 * 1024:
        batch = (1024 * 1024) // 4096
    batch //= 4
    if batch < 1:
        batch = 1
    x = batch + batch // 2
    return (1 << (x.bit_length() - 1)) - 1  # rounddown_pow_of_two(x) - 1


@kernel(F)
def pageset_set_batch(zone: Zone, batch: int) -> None:
    """Models mm/page_alloc.c:pageset_set_batch: high = 6 * batch."""
    zone.pageset.high = 6 * batch
    zone.pageset.batch = max(1, batch)


@kernel(F)
def setup_per_cpu_pageset(pgdat: pglist_data) -> None:
    """Models mm/page_alloc.c:setup_per_cpu_pageset for the one CPU."""
    for zone in pgdat.node_zones:
        if zone.populated():
            pageset_set_batch(zone, zone_batchsize(zone))


def nr_free_zone_pages(pgdat: pglist_data, offset: int) -> int:
    """mm/page_alloc.c:nr_free_zone_pages: managed pages above the high watermark."""
    total = 0
    for zone in pgdat.zonelist(offset):
        size = zone.managed_pages
        high = high_wmark_pages(zone)
        if size > high:
            total += size - high
    return total


@kernel(F)
def __setup_per_zone_wmarks(pgdat: pglist_data) -> None:
    """Models mm/page_alloc.c:__setup_per_zone_wmarks: min split by managed pages, low and
    high a quarter of min (or 0.1% of the zone) apart; the boost is cleared."""
    pages_min = pgdat.min_free_kbytes >> 2
    lowmem_pages = sum(z.managed_pages for z in pgdat.node_zones)
    for zone in pgdat.node_zones:
        tmp = pages_min * zone.managed_pages // lowmem_pages if lowmem_pages else 0
        zone._watermark[WMARK_MIN] = tmp
        scale = (zone.managed_pages // 10000) * watermark_scale_factor + (
            (zone.managed_pages % 10000) * watermark_scale_factor) // 10000  # mult_frac
        tmp = max(tmp >> 2, scale)
        zone.watermark_boost = 0
        zone._watermark[WMARK_LOW] = zone._watermark[WMARK_MIN] + tmp
        zone._watermark[WMARK_HIGH] = zone._watermark[WMARK_MIN] + tmp * 2


@kernel(F)
def setup_per_zone_lowmem_reserve(pgdat: pglist_data) -> None:
    """Models mm/page_alloc.c:setup_per_zone_lowmem_reserve as 5.10.13 has it: what each
    lower zone keeps back from allocations that could have used a higher zone."""
    zones = pgdat.node_zones
    for j in range(MAX_NR_ZONES):
        managed_pages = zones[j].managed_pages
        zones[j].lowmem_reserve[j] = 0
        idx = j
        while idx:
            idx -= 1
            lower = zones[idx]
            if not sysctl_lowmem_reserve_ratio[idx] or not lower.managed_pages:
                lower.lowmem_reserve[j] = 0
                continue
            lower.lowmem_reserve[j] = managed_pages // sysctl_lowmem_reserve_ratio[idx]
            managed_pages += lower.managed_pages


@kernel(F)
def init_per_zone_wmark_min(pgdat: pglist_data, user_min_free_kbytes: int | None) -> None:
    """Models mm/page_alloc.c:init_per_zone_wmark_min: min_free_kbytes = sqrt(16 * lowmem
    KiB), clamped to [128, 262144], unless the user set it. No THP, so khugepaged does not
    raise it afterwards."""
    if user_min_free_kbytes is not None:
        pgdat.min_free_kbytes = user_min_free_kbytes
    else:
        lowmem_kbytes = nr_free_zone_pages(pgdat, G.gfp_zone(G.GFP_USER)) * 4
        pgdat.min_free_kbytes = min(max(isqrt(lowmem_kbytes * 16), 128), 262144)
    __setup_per_zone_wmarks(pgdat)
    setup_per_zone_lowmem_reserve(pgdat)


def _make_zones(nr_pages: int, bounds: tuple[int, int, int]) -> list[Zone]:
    zones: list[Zone] = []
    start = 0
    for idx, limit in enumerate(bounds):
        end = min(limit, nr_pages)
        span = max(0, end - start)
        zones.append(Zone(idx, ZONE_NAMES[idx], start if span else 0, span))
        start = max(start, end)
    zones.append(Zone(int(ZoneType.ZONE_MOVABLE), ZONE_NAMES[3], 0, 0))
    return zones


def _present(zone: Zone, holes: tuple[tuple[int, int], ...]) -> int:
    n = zone.spanned_pages
    for s, e in holes:
        n -= max(0, min(e, zone.zone_end_pfn) - max(s, zone.zone_start_pfn))
    return n


def _union(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping union of pfn ranges (memblock merges its regions too)."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def boot_node(config: MachineConfig) -> pglist_data:
    """Boot physical memory the way 5.10 does for ``config``: zones, the release of free
    memory by memblock, per-cpu lists, watermarks."""
    n = config.nr_pages
    zones = _make_zones(n, (MAX_DMA_PFN, MAX_DMA32_PFN, 1 << 62))
    holes = config.holes()
    for z in zones:
        z.present_pages = _present(z, holes) if z.spanned_pages else 0
    unavailable = _union([*holes, *config.reserved()])
    pgdat = pglist_data(zones, 0, n, tuple(sorted(unavailable)), pcp_enabled=config.pcp,
                        paging_levels=config.paging_levels)
    pgdat.hooks = AllocatorHooks(alloc_pages_current=alloc_pages_current)
    # build_all_zonelists: mobility grouping off on tiny machines (estimate: present pages)
    vm_total_pages = sum(z.present_pages for z in zones)
    pgdat.page_group_by_mobility_disabled = vm_total_pages < pageblock_nr_pages * MIGRATE_TYPES
    memblock_free_all(pgdat, free_ranges_of(n, unavailable))
    setup_per_cpu_pageset(pgdat)
    init_per_zone_wmark_min(pgdat, config.min_free_kbytes)
    return pgdat


def boot_standalone(config: BuddyConfig) -> pglist_data:
    """The standalone buddy: one zone over [0, nr_pages), one migratetype, no per-cpu lists,
    zero watermarks; free memory released exactly as memblock releases it."""
    n = config.nr_pages
    zone = Zone(int(ZoneType.ZONE_NORMAL), ZONE_NAMES[2], 0, n, present_pages=n)
    # the standalone buddy's max_order plays MAX_ORDER's part: one free_area per order
    zone.free_area = [FreeArea() for _ in range(max(MAX_ORDER, config.max_order))]
    zones = [Zone(0, ZONE_NAMES[0], 0, 0), Zone(1, ZONE_NAMES[1], 0, 0), zone,
             Zone(3, ZONE_NAMES[3], 0, 0)]
    reserved = _union(list(config.reserved))
    pgdat = pglist_data(zones, 0, n, tuple(reserved), pcp_enabled=False,
                        single_migratetype=MIGRATE_MOVABLE, max_order=config.max_order)
    memblock_free_all(pgdat, free_ranges_of(n, reserved))
    return pgdat
