"""The per-cpu swap slots cache (mm/swap_slots.c, 5.10) and the slot-freeing entry points
of mm/swapfile.c that go through it (swap_free, put_swap_page; they live here because they
call free_swap_slot, and mm/swapfile.py is below this module).

get_swap_page hands out slots from a per-cpu cache refilled SWAP_SLOTS_CACHE_SIZE at a time
by get_swap_pages; free_swap_slot collects freed slots in slots_ret and returns them to the
area in sorted batches. The cache works only while it is active: it activates when more than
THRESHOLD_ACTIVATE_SWAP_SLOTS_CACHE slots per CPU are free, and deactivates (returning
every cached slot) below THRESHOLD_DEACTIVATE_SWAP_SLOTS_CACHE. One CPU here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from refmodel.mm.mmzone import pglist_data
from refmodel.mm.swapfile import (
    SWAP_HAS_CACHE,
    __swap_entry_free_locked,
    get_swap_pages,
    swap_info_get,
    swap_info_struct,
    swapcache_free_entries,
)
from refmodel.mm.swapops import swp_offset
from refmodel.mm.types import Page
from refmodel.trace import kernel

F = "mm/swap_slots.c"
SWAP_SLOTS_CACHE_SIZE = 64  # SWAP_BATCH
THRESHOLD_ACTIVATE_SWAP_SLOTS_CACHE = 5 * SWAP_SLOTS_CACHE_SIZE
THRESHOLD_DEACTIVATE_SWAP_SLOTS_CACHE = 2 * SWAP_SLOTS_CACHE_SIZE
NUM_ONLINE_CPUS = 1


@dataclass(slots=True)
class swap_slots_cache:
    """struct swap_slots_cache of the only CPU, plus the file's two globals
    (swap_slot_cache_enabled, swap_slot_cache_active)."""

    slots: list[int] = field(default_factory=list)  # cache->slots[cur:cur+nr]
    cur: int = 0
    nr: int = 0
    slots_ret: list[int] = field(default_factory=list)  # cache->slots_ret[:n_ret]
    enabled: bool = False
    active: bool = False

    def use_swap_slot_cache(self) -> bool:
        return self.active and self.enabled


TryToReclaim = Callable[[swap_info_struct, int, int], int]


@kernel(F)
def enable_swap_slots_cache(pgdat: pglist_data) -> None:
    """Models mm/swap_slots.c:enable_swap_slots_cache (end of swapon): allocate this CPU's
    cache and enable it if there is usable swap (__reenable_swap_slots_cache)."""
    if pgdat.swp_slots is None:
        pgdat.swp_slots = swap_slots_cache()
    pgdat.swp_slots.enabled = pgdat.nr_swap_pages > 0  # has_usable_swap


@kernel(F)
def drain_slots_cache_cpu(pgdat: pglist_data, cache: swap_slots_cache) -> None:
    """Models mm/swap_slots.c:drain_slots_cache_cpu (SLOTS_CACHE | SLOTS_CACHE_RET): give
    back the unused cached slots and the batch of returned ones."""
    if cache.nr:
        swapcache_free_entries(pgdat, cache.slots[cache.cur:cache.cur + cache.nr])
    cache.slots = []
    cache.cur = 0
    cache.nr = 0
    if cache.slots_ret:
        swapcache_free_entries(pgdat, cache.slots_ret)
        cache.slots_ret = []


@kernel(F)
def check_cache_active(pgdat: pglist_data) -> bool:
    """Models mm/swap_slots.c:check_cache_active: (re)activate above, deactivate (and drain)
    below the thresholds; whether the cache is active."""
    cache = pgdat.swp_slots
    if cache is None or not cache.enabled:
        return False
    pages = pgdat.nr_swap_pages
    if not cache.active:
        if pages > NUM_ONLINE_CPUS * THRESHOLD_ACTIVATE_SWAP_SLOTS_CACHE:
            cache.active = True  # reactivate_swap_slots_cache
        return cache.active
    if pages < NUM_ONLINE_CPUS * THRESHOLD_DEACTIVATE_SWAP_SLOTS_CACHE:
        cache.active = False  # deactivate_swap_slots_cache → __drain_swap_slots_cache
        drain_slots_cache_cpu(pgdat, cache)
    return cache.active


@kernel(F)
def refill_swap_slots_cache(pgdat: pglist_data, cache: swap_slots_cache,
                            try_to_reclaim: TryToReclaim) -> int:
    """Models mm/swap_slots.c:refill_swap_slots_cache: an empty, usable cache takes up to
    SWAP_SLOTS_CACHE_SIZE slots from get_swap_pages; how many it got."""
    if not cache.use_swap_slot_cache() or cache.nr:
        return 0
    cache.cur = 0
    if cache.active:
        cache.slots = get_swap_pages(pgdat, SWAP_SLOTS_CACHE_SIZE, try_to_reclaim)
        cache.nr = len(cache.slots)
    return cache.nr


@kernel(F)
def get_swap_page(pgdat: pglist_data, page: Page, try_to_reclaim: TryToReclaim) -> int:
    """Models mm/swap_slots.c:get_swap_page for an order-0 page: the next slot of the cache
    (refilling it when empty), or one slot straight from get_swap_pages when the cache is
    inactive; 0 when swap is full. The slot is SWAP_HAS_CACHE already. ``try_to_reclaim``
    is __try_to_reclaim_swap (passed down: it needs the swap cache, above this module)."""
    cache = pgdat.swp_slots
    if check_cache_active(pgdat) and cache is not None:
        while True:
            if cache.nr:
                entry = cache.slots[cache.cur]
                cache.cur += 1
                cache.nr -= 1
                return entry
            if not refill_swap_slots_cache(pgdat, cache, try_to_reclaim):
                break
    got = get_swap_pages(pgdat, 1, try_to_reclaim)
    return got[0] if got else 0


@kernel(F)
def free_swap_slot(pgdat: pglist_data, entry: int) -> int:
    """Models mm/swap_slots.c:free_swap_slot: with the cache in use, keep the slot in
    slots_ret (it stays SWAP_HAS_CACHE in swap_map), first returning a full batch to the
    area; else free it at once. 0."""
    cache = pgdat.swp_slots
    if cache is not None and cache.use_swap_slot_cache():
        if len(cache.slots_ret) >= SWAP_SLOTS_CACHE_SIZE:
            swapcache_free_entries(pgdat, cache.slots_ret)
            cache.slots_ret = []
        cache.slots_ret.append(entry)
    else:
        swapcache_free_entries(pgdat, [entry])
    return 0


@kernel("mm/swapfile.c")
def __swap_entry_free(pgdat: pglist_data, si: swap_info_struct, entry: int) -> int:
    """Models mm/swapfile.c:__swap_entry_free: drop one PTE reference; a slot nobody uses
    any more goes to free_swap_slot. The new usage."""
    usage = __swap_entry_free_locked(si, swp_offset(entry), 1)
    if not usage:
        free_swap_slot(pgdat, entry)
    return usage


@kernel("mm/swapfile.c")
def swap_free(pgdat: pglist_data, entry: int) -> None:
    """Models mm/swapfile.c:swap_free: a PTE no longer names the slot."""
    __swap_entry_free(pgdat, swap_info_get(pgdat, entry), entry)


@kernel("mm/swapfile.c")
def put_swap_page(pgdat: pglist_data, page: Page, entry: int) -> None:
    """Models mm/swapfile.c:put_swap_page for an order-0 page: the swap cache lets go of
    the slot; free it if no PTE names it."""
    si = swap_info_get(pgdat, entry)
    if not __swap_entry_free_locked(si, swp_offset(entry), SWAP_HAS_CACHE):
        free_swap_slot(pgdat, entry)
