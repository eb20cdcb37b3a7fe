"""The SLUB allocator with one CPU and no debugging (mm/slub.c, 5.10).

Objects are kernel virtual addresses in the direct map; a free object's first word at
``s->offset`` holds the address of the next free object, written into the page's real bytes
(no freelist randomisation, no pointer hardening), so ``virt_to_page`` of an object finds its
slab and a corrupted free pointer would be followed as 5.10 follows it. Left out: per-cpu
sheaves of other CPUs, NUMA node choice, memcg accounting, debug flags (red zones, poisoning,
tracking), kasan, kfence.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from refmodel.bugs import KernelBug, KernelWarning
from refmodel.mm import gfp as G
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_alloc import __free_pages as _free_block
from refmodel.mm.page_alloc import (
    alloc_pages,
    page_address,
    page_offset,
    pfn_to_virt,
    virt_to_head_page,
)
from refmodel.mm.slub_def import kmem_cache, kmem_cache_cpu, kmem_cache_node, slab_page
from refmodel.mm.types import Page, PageFlags
from refmodel.trace import kernel

F = "mm/slub.c"
PAGE_SIZE = 4096
PAGE_ALLOC_COSTLY_ORDER = 3
MAX_OBJS_PER_PAGE = 32767
slub_max_order = PAGE_ALLOC_COSTLY_ORDER
slub_min_order = 0
slub_min_objects = 0
MIN_PARTIAL = 5
MAX_PARTIAL = 10
nr_cpu_ids = 1

# include/linux/slab.h flags
SLAB_CONSISTENCY_CHECKS = 0x00000100
SLAB_RED_ZONE = 0x00000400
SLAB_POISON = 0x00000800
SLAB_HWCACHE_ALIGN = 0x00002000
SLAB_CACHE_DMA = 0x00004000
SLAB_CACHE_DMA32 = 0x00008000
SLAB_STORE_USER = 0x00010000
SLAB_PANIC = 0x00040000
SLAB_TYPESAFE_BY_RCU = 0x00080000
SLAB_TRACE = 0x00200000
SLAB_NOLEAKTRACE = 0x00800000
SLAB_FAILSLAB = 0x02000000
SLAB_ACCOUNT = 0x04000000
SLAB_KASAN = 0x08000000
SLAB_RECLAIM_ACCOUNT = 0x00020000
SLAB_NEVER_MERGE = (SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_TRACE
                    | SLAB_TYPESAFE_BY_RCU | SLAB_NOLEAKTRACE | SLAB_FAILSLAB | SLAB_KASAN)
SLAB_MERGE_SAME = SLAB_RECLAIM_ACCOUNT | SLAB_CACHE_DMA | SLAB_CACHE_DMA32 | SLAB_ACCOUNT

cache_line_size = 64
ARCH_KMALLOC_MINALIGN = 8
ARCH_SLAB_MINALIGN = 8
KMALLOC_SHIFT_LOW = 3
KMALLOC_SHIFT_HIGH = 13  # PAGE_SHIFT + 1: SLUB serves kmalloc up to 8 KiB from caches
KMALLOC_MAX_CACHE_SIZE = 1 << KMALLOC_SHIFT_HIGH

GFP_RECLAIM_MASK = (G.__GFP_RECLAIM | G.__GFP_HIGH | G.__GFP_IO | G.__GFP_FS | G.__GFP_NOWARN
                    | G.__GFP_RETRY_MAYFAIL | G.__GFP_NOFAIL | G.__GFP_NORETRY
                    | G.__GFP_MEMALLOC | G.__GFP_NOMEMALLOC)
GFP_CONSTRAINT_MASK = G.__GFP_HARDWALL | G.__GFP_THISNODE

_PG_slab = int(PageFlags.PG_slab)
KMALLOC_MAX_SIZE = 1 << (11 + 12 - 1)  # MAX_ORDER + PAGE_SHIFT - 1: 4 MiB


@dataclass(slots=True)
class kmem_state:
    """The slab allocator of one node: slab_caches, kmalloc_caches, and the slab view of the
    pages it owns (model: 5.10 finds them through struct page)."""

    pgdat: pglist_data
    slab_caches: list[kmem_cache] = field(default_factory=list)
    kmalloc_caches: dict[int, kmem_cache] = field(default_factory=dict)  # KMALLOC_NORMAL
    kmalloc_rcl_caches: dict[int, kmem_cache] = field(default_factory=dict)  # KMALLOC_RECLAIM
    kmalloc_dma_caches: dict[int, kmem_cache] = field(default_factory=dict)  # KMALLOC_DMA
    slabs: dict[int, slab_page] = field(default_factory=dict)  # every pfn of a slab
    # Model bookkeeping, for the checks 5.10 leaves to debug options: object -> its cache,
    # and kmalloc_large blocks -> order.
    live: dict[int, kmem_cache] = field(default_factory=dict)
    large: dict[int, int] = field(default_factory=dict)
    direct_map: int = field(init=False)  # PAGE_OFFSET of the node's paging mode

    def __post_init__(self) -> None:
        self.direct_map = page_offset(self.pgdat)


# --------------------------------------------------------------------------------------------
# Bytes of the direct map (objects and their free pointers live in page contents)


_WORD = struct.Struct("<Q")  # one little-endian 64-bit word


def _read_word(kmem: kmem_state, addr: int) -> int:
    phys = addr - kmem.direct_map
    data = kmem.pgdat.page_data.get(phys >> 12)
    if data is None:
        return 0
    word: int = _WORD.unpack_from(data, phys & 0xFFF)[0]
    return word


def _write_word(kmem: kmem_state, addr: int, value: int) -> None:
    phys = addr - kmem.direct_map
    data = kmem.pgdat.page_data.get(phys >> 12)
    if data is None:
        data = kmem.pgdat.page_data[phys >> 12] = bytearray(PAGE_SIZE)
    _WORD.pack_into(data, phys & 0xFFF, value)


def _zero(kmem: kmem_state, addr: int, n: int) -> None:
    phys = addr - kmem.direct_map
    while n > 0:
        pfn, off = phys >> 12, phys & 0xFFF
        chunk = min(n, PAGE_SIZE - off)
        data = kmem.pgdat.page_data.get(pfn)
        if data is not None:
            data[off:off + chunk] = bytes(chunk)
        phys += chunk
        n -= chunk


@kernel(F)
def get_freepointer(kmem: kmem_state, s: kmem_cache, obj: int) -> int:
    """Models mm/slub.c:get_freepointer: the word at obj + s->offset (no hardening)."""
    return _read_word(kmem, obj + s.offset)


@kernel(F)
def set_freepointer(kmem: kmem_state, s: kmem_cache, obj: int, fp: int) -> None:
    """Models mm/slub.c:set_freepointer (CONFIG_SLAB_FREELIST_HARDENED's naive double-free
    check, BUG_ON(object == fp), included)."""
    if obj == fp:
        raise KernelBug("BUG_ON(object == fp)", f"double free of {obj:#x} in {s.name}")
    _write_word(kmem, obj + s.offset, fp)


# --------------------------------------------------------------------------------------------
# Sizing (calculate_sizes, calculate_order)


def order_objects(order: int, size: int) -> int:
    return (PAGE_SIZE << order) // size


def get_order(size: int) -> int:
    """include/asm-generic/getorder.h:get_order for size > 0."""
    return max(0, ((size - 1) >> 12).bit_length())


@kernel(F)
def slab_order(size: int, min_objects: int, max_order: int, fract_leftover: int) -> int:
    """Models mm/slub.c:slab_order: the smallest order whose leftover is at most
    1/fract_leftover of the slab, starting from one that holds min_objects."""
    min_order = slub_min_order
    if order_objects(min_order, size) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE) - 1
    order = max(min_order, get_order(min_objects * size))
    while order <= max_order:
        slab_size = PAGE_SIZE << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


@kernel(F)
def calculate_order(size: int) -> int:
    """Models mm/slub.c:calculate_order with one CPU (min_objects = 4 * (fls(1) + 1) = 8)."""
    min_objects = slub_min_objects or 4 * (nr_cpu_ids.bit_length() + 1)
    max_objects = order_objects(slub_max_order, size)
    min_objects = min(min_objects, max_objects)
    while min_objects > 1:
        fraction = 16
        while fraction >= 4:
            order = slab_order(size, min_objects, slub_max_order, fraction)
            if order <= slub_max_order:
                return order
            fraction //= 2
        min_objects -= 1
    order = slab_order(size, 1, slub_max_order, 1)
    if order <= slub_max_order:
        return order
    order = slab_order(size, 1, 10, 1)
    if order < 11:
        return order
    raise KernelBug("calculate_order", f"no order fits objects of {size} bytes")


@kernel("mm/slab_common.c")
def calculate_alignment(flags: int, align: int, size: int) -> int:
    """Models mm/slab_common.c:calculate_alignment."""
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = cache_line_size
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_SLAB_MINALIGN)
    return (align + 7) & ~7


@kernel(F)
def calculate_sizes(s: kmem_cache) -> bool:
    """Models mm/slub.c:calculate_sizes without debug flags: the free pointer sits in the
    middle of the object (5.7+) unless the cache has a constructor or is RCU-typesafe, in
    which case it follows the object."""
    size = (s.object_size + 7) & ~7
    s.inuse = size
    if s.flags & (SLAB_TYPESAFE_BY_RCU | SLAB_POISON) or s.ctor:
        s.offset = size
        size += 8
    else:
        s.offset = (s.object_size // 2) & ~7
    size = (size + s.align - 1) & ~(s.align - 1)
    s.size = size
    order = calculate_order(size)
    s.allocflags = 0
    if order:
        s.allocflags |= G.__GFP_COMP
    if s.flags & SLAB_CACHE_DMA:
        s.allocflags |= G.GFP_DMA
    if s.flags & SLAB_CACHE_DMA32:
        s.allocflags |= G.GFP_DMA32
    if s.flags & SLAB_RECLAIM_ACCOUNT:
        s.allocflags |= G.__GFP_RECLAIMABLE
    s.order, s.objects = order, order_objects(order, size)
    s.min_order = get_order(size)
    s.min_objects = order_objects(s.min_order, size)
    return s.objects > 0


@kernel(F)
def set_min_partial(s: kmem_cache, min_: int) -> None:
    """Models mm/slub.c:set_min_partial: clamped to [MIN_PARTIAL, MAX_PARTIAL]."""
    s.min_partial = min(max(min_, MIN_PARTIAL), MAX_PARTIAL)


@kernel(F)
def set_cpu_partial(s: kmem_cache) -> None:
    """Models mm/slub.c:set_cpu_partial (CONFIG_SLUB_CPU_PARTIAL)."""
    if s.size >= PAGE_SIZE:
        s.cpu_partial = 2
    elif s.size >= 1024:
        s.cpu_partial = 6
    elif s.size >= 256:
        s.cpu_partial = 13
    else:
        s.cpu_partial = 30


@kernel(F)
def kmem_cache_open(s: kmem_cache) -> int:
    """Models mm/slub.c:kmem_cache_open: sizes, min_partial = ilog2(size) / 2, cpu_partial."""
    if not calculate_sizes(s):
        return -22
    set_min_partial(s, (s.size.bit_length() - 1) // 2)
    set_cpu_partial(s)
    s.cpu_slab = kmem_cache_cpu()
    s.node = kmem_cache_node()
    return 0


# --------------------------------------------------------------------------------------------
# Slab pages


@kernel(F)
def alloc_slab_page(kmem: kmem_state, s: kmem_cache, flags: int, order: int) -> Page | None:
    """Models mm/slub.c:alloc_slab_page (no memcg charge)."""
    return alloc_pages(kmem.pgdat, flags, order)


@kernel(F)
def allocate_slab(kmem: kmem_state, s: kmem_cache, flags: int) -> slab_page | None:
    """Models mm/slub.c:allocate_slab: try the preferred order without reclaim, fall back
    to the minimum order; thread the free list through the objects in address order."""
    flags |= s.allocflags
    alloc_gfp = (flags | G.__GFP_NOWARN | G.__GFP_NORETRY) & ~G.__GFP_NOFAIL
    order, objects = s.order, s.objects
    if alloc_gfp & G.__GFP_DIRECT_RECLAIM and order > s.min_order:
        alloc_gfp = (alloc_gfp | G.__GFP_NOMEMALLOC) & ~(G.__GFP_RECLAIM | G.__GFP_NOFAIL)
    page = alloc_slab_page(kmem, s, alloc_gfp, order)
    if page is None:
        order, objects = s.min_order, s.min_objects
        page = alloc_slab_page(kmem, s, flags, order)
        if page is None:
            return None
    page.flags |= _PG_slab  # __SetPageSlab
    start = page_address(kmem.pgdat, page)
    slab = slab_page(page, s, order, objects, start=start)
    for i in range(1 << order):
        kmem.slabs[page.pfn + i] = slab
    p = start
    slab.freelist = start
    for _ in range(objects - 1):
        nxt = p + s.size
        set_freepointer(kmem, s, p, nxt)
        p = nxt
    set_freepointer(kmem, s, p, 0)
    slab.inuse = objects
    slab.frozen = True
    s.node.nr_slabs += 1  # inc_slabs_node
    s.node.total_objects += objects
    return slab


@kernel(F)
def new_slab(kmem: kmem_state, s: kmem_cache, flags: int) -> slab_page | None:
    """Models mm/slub.c:new_slab: only reclaim and constraint bits reach the page
    allocator; zone and migratetype come from the cache's allocflags."""
    return allocate_slab(kmem, s, flags & (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK))


@kernel(F)
def __free_slab(kmem: kmem_state, s: kmem_cache, slab: slab_page) -> None:
    """Models mm/slub.c:__free_slab: clear PG_slab and give the pages back."""
    page = slab.page
    page.flags &= ~_PG_slab
    for i in range(1 << slab.order):
        del kmem.slabs[page.pfn + i]
    _free_block(kmem.pgdat, page, slab.order)


@kernel(F)
def discard_slab(kmem: kmem_state, s: kmem_cache, slab: slab_page) -> None:
    """Models mm/slub.c:discard_slab: dec_slabs_node, free_slab."""
    s.node.nr_slabs -= 1
    s.node.total_objects -= slab.objects
    __free_slab(kmem, s, slab)


@kernel(F)
def add_partial(n: kmem_cache_node, slab: slab_page, tail: bool) -> None:
    """Models mm/slub.c:add_partial (DEACTIVATE_TO_TAIL or to the head)."""
    n.nr_partial += 1
    n.partial[slab.page.pfn] = slab
    if not tail:
        n.partial.move_to_end(slab.page.pfn, last=False)
    slab.on_node_partial = True


@kernel(F)
def remove_partial(n: kmem_cache_node, slab: slab_page) -> None:
    """Models mm/slub.c:remove_partial."""
    del n.partial[slab.page.pfn]
    n.nr_partial -= 1
    slab.on_node_partial = False


# --------------------------------------------------------------------------------------------
# Allocation


@kernel(F)
def acquire_slab(s: kmem_cache, n: kmem_cache_node, slab: slab_page, mode: bool) -> tuple[int, int]:
    """Models mm/slub.c:acquire_slab: take a partial slab off the node list and freeze it;
    with ``mode`` take its whole free list too. Returns (freelist, free objects)."""
    freelist = slab.freelist
    objects = slab.objects - slab.inuse
    if mode:
        slab.inuse = slab.objects
        slab.freelist = 0
    slab.frozen = True
    remove_partial(n, slab)
    return freelist, objects


@kernel(F)
def put_cpu_partial(kmem: kmem_state, s: kmem_cache, slab: slab_page, drain: bool) -> None:
    """Models mm/slub.c:put_cpu_partial: push a frozen slab on the per-cpu partial list,
    first unfreezing the list into the node's if it holds more than cpu_partial objects."""
    c = s.cpu_slab
    oldpage = c.partial
    pages = pobjects = 0
    if oldpage is not None:
        pobjects, pages = oldpage.pobjects, oldpage.pages
        if drain and pobjects > s.cpu_partial:
            unfreeze_partials(kmem, s, c)
            oldpage = None
            pobjects = pages = 0
    pages += 1
    pobjects += slab.objects - slab.inuse
    slab.pages, slab.pobjects, slab.next = pages, pobjects, oldpage
    c.partial = slab


@kernel(F)
def unfreeze_partials(kmem: kmem_state, s: kmem_cache, c: kmem_cache_cpu) -> None:
    """Models mm/slub.c:unfreeze_partials: move the per-cpu partial slabs to the node list
    (tail), discarding empty ones while the node already has min_partial slabs."""
    n = s.node
    discard: list[slab_page] = []
    while c.partial is not None:
        slab = c.partial
        c.partial = slab.next
        slab.next = None
        slab.frozen = False
        if not slab.inuse and n.nr_partial >= s.min_partial:
            discard.insert(0, slab)  # pushed on a singly linked list: reversed
        else:
            add_partial(n, slab, True)
    for slab in discard:
        discard_slab(kmem, s, slab)


@kernel(F)
def get_partial_node(kmem: kmem_state, s: kmem_cache, n: kmem_cache_node,
                     c: kmem_cache_cpu) -> int:
    """Models mm/slub.c:get_partial_node: the first partial slab becomes the cpu slab (its
    free list returned); more are moved to the per-cpu partial list until more than half of
    cpu_partial objects are available."""
    obj = 0
    available = 0
    for slab in list(n.partial.values()):
        t, objects = acquire_slab(s, n, slab, obj == 0)
        available += objects
        if not obj:
            c.page = slab
            obj = t
        else:
            put_cpu_partial(kmem, s, slab, False)
        if available > s.cpu_partial // 2:
            break
    return obj


@kernel(F)
def get_partial(kmem: kmem_state, s: kmem_cache, flags: int, c: kmem_cache_cpu) -> int:
    """Models mm/slub.c:get_partial for NUMA_NO_NODE: the local node's partial slabs, else
    the other nodes' (get_any_partial)."""
    freelist = get_partial_node(kmem, s, s.node, c)
    if freelist:
        return freelist
    return get_any_partial(kmem, s, flags, c)


@kernel(F)
def get_any_partial(kmem: kmem_state, s: kmem_cache, flags: int, c: kmem_cache_cpu) -> int:
    """Models mm/slub.c:get_any_partial (CONFIG_NUMA): it works out the zone limit
    (gfp_zone) and would search the other nodes' partial lists; with one node there are
    none, so no object (its random remote_node_defrag_ratio gate changes nothing)."""
    G.gfp_zone(flags)
    return 0


@kernel(F)
def new_slab_objects(kmem: kmem_state, s: kmem_cache, flags: int) -> int:
    """Models mm/slub.c:new_slab_objects: a partial slab, else a new one."""
    c = s.cpu_slab
    freelist = get_partial(kmem, s, flags, c)
    if freelist:
        return freelist
    slab = new_slab(kmem, s, flags)
    if slab is None:
        return 0
    if c.page is not None:
        flush_slab(kmem, s, c)
    freelist = slab.freelist
    slab.freelist = 0
    c.page = slab
    return freelist


@kernel(F)
def get_freelist(s: kmem_cache, slab: slab_page) -> int:
    """Models mm/slub.c:get_freelist: take the slab's free list for the cpu; a slab with
    none is unfrozen (it leaves the cpu, full)."""
    freelist = slab.freelist
    slab.freelist = 0
    slab.inuse = slab.objects
    slab.frozen = freelist != 0
    return freelist


@kernel(F)
def ___slab_alloc(kmem: kmem_state, s: kmem_cache, gfpflags: int, c: kmem_cache_cpu) -> int:
    """Models mm/slub.c:___slab_alloc: the cpu slab's remote frees, the per-cpu partial list,
    a node partial slab, or a new slab."""
    slab = c.page
    while True:
        if slab is not None:
            freelist = c.freelist
            if not freelist:
                freelist = get_freelist(s, slab)
            if freelist:
                c.freelist = get_freepointer(kmem, s, freelist)  # load_freelist
                return freelist
            c.page = None
        # new_slab:
        if c.partial is not None:
            slab = c.page = c.partial
            c.partial = slab.next  # slub_set_percpu_partial
            slab.next = None
            continue
        freelist = new_slab_objects(kmem, s, gfpflags)
        if not freelist:
            return 0  # slab_out_of_memory
        c.freelist = get_freepointer(kmem, s, freelist)
        return freelist


@kernel(F)
def __slab_alloc(kmem: kmem_state, s: kmem_cache, gfpflags: int, c: kmem_cache_cpu) -> int:
    """Models mm/slub.c:__slab_alloc (interrupts are not modelled)."""
    return ___slab_alloc(kmem, s, gfpflags, c)


@kernel(F)
def slab_alloc_node(kmem: kmem_state, s: kmem_cache, gfpflags: int) -> int:
    """Models mm/slub.c:slab_alloc_node: the per-cpu free list head, else the slow path;
    __GFP_ZERO clears the object (slab_post_alloc_hook)."""
    c = s.cpu_slab
    obj = c.freelist
    if not obj or c.page is None:
        obj = __slab_alloc(kmem, s, gfpflags, c)
    else:
        c.freelist = get_freepointer(kmem, s, obj)
    if obj:
        if gfpflags & G.__GFP_ZERO:
            _zero(kmem, obj, s.object_size)
        kmem.live[obj] = s
    return obj


@kernel(F)
def slab_alloc(kmem: kmem_state, s: kmem_cache, gfpflags: int) -> int:
    """Models mm/slub.c:slab_alloc."""
    return slab_alloc_node(kmem, s, gfpflags)


@kernel(F)
def kmem_cache_alloc(kmem: kmem_state, s: kmem_cache, gfpflags: int) -> int:
    """Models mm/slub.c:kmem_cache_alloc: an object's address, or 0."""
    return slab_alloc(kmem, s, gfpflags)


# --------------------------------------------------------------------------------------------
# Freeing


@kernel(F)
def __slab_free(kmem: kmem_state, s: kmem_cache, slab: slab_page, head: int) -> None:
    """Models mm/slub.c:__slab_free: free into a slab that is not the cpu slab; a full slab
    becomes frozen on the per-cpu partial list, an empty one is discarded once the node has
    min_partial partial slabs."""
    prior = slab.freelist
    set_freepointer(kmem, s, head, prior)
    was_frozen = slab.frozen
    slab.inuse -= 1
    slab.freelist = head
    need_list = False
    if (not slab.inuse or not prior) and not was_frozen:
        if not prior:
            slab.frozen = True  # kmem_cache_has_cpu_partial: defer, freeze
        else:
            need_list = True
    if not need_list:
        if not was_frozen and slab.frozen:
            put_cpu_partial(kmem, s, slab, True)
        return
    n = s.node
    if not slab.inuse and n.nr_partial >= s.min_partial:
        remove_partial(n, slab)  # slab_empty: it was on the partial list (prior != NULL)
        discard_slab(kmem, s, slab)


@kernel(F)
def do_slab_free(kmem: kmem_state, s: kmem_cache, slab: slab_page, head: int) -> None:
    """Models mm/slub.c:do_slab_free: the cpu slab's objects go to the per-cpu free list."""
    c = s.cpu_slab
    if slab is c.page:
        set_freepointer(kmem, s, head, c.freelist)
        c.freelist = head
    else:
        __slab_free(kmem, s, slab, head)


@kernel(F)
def slab_free_freelist_hook(kmem: kmem_state, s: kmem_cache, head: int) -> bool:
    """Models mm/slub.c:slab_free_freelist_hook for one object: no KASAN, debug or
    init_on_free hook delays or touches it, so it becomes a freelist of one (its free
    pointer read, then set to NULL) and is freed."""
    get_freepointer(kmem, s, head)  # the next object of the list: none after the only one
    set_freepointer(kmem, s, head, 0)
    return True


@kernel(F)
def slab_free(kmem: kmem_state, s: kmem_cache, slab: slab_page, head: int) -> None:
    """Models mm/slub.c:slab_free: the freelist hook, then do_slab_free."""
    if slab_free_freelist_hook(kmem, s, head):
        do_slab_free(kmem, s, slab, head)


def _slab_of(kmem: kmem_state, x: int, what: str) -> slab_page:
    pfn = (x - kmem.direct_map) >> 12
    slab = kmem.slabs.get(pfn)
    if slab is None:
        raise KernelBug(f"{what}: object is not in a slab page", f"{x:#x}")
    return slab


def _check_object_free(kmem: kmem_state, s: kmem_cache | None, x: int, what: str) -> slab_page:
    """The checks a free must pass, before anything changes (5.10 makes them only with
    SLUB debugging or hardening; the model always does, and names the check)."""
    slab = _slab_of(kmem, x, what)
    if s is not None and slab.slab_cache is not s:
        raise KernelWarning("cache_from_obj: Wrong slab cache",
                            f"{s.name} but object {x:#x} is from {slab.slab_cache.name}")
    cache = slab.slab_cache
    end = slab.start + slab.objects * cache.size
    if (x - slab.start) % cache.size or not slab.start <= x < end:
        raise KernelBug("check_valid_pointer",
                        f"{x:#x} is not the start of an object of {cache.name}")
    if kmem.live.get(x) is not cache:
        raise KernelBug("BUG_ON(object == fp) / on_freelist",
                        f"double free of {x:#x} in {cache.name}")
    return slab


@kernel(F)
def kmem_cache_free(kmem: kmem_state, s: kmem_cache, x: int) -> None:
    """Models mm/slub.c:kmem_cache_free (cache_from_obj's wrong-cache check included)."""
    _check_object_free(kmem, s, x, "kmem_cache_free")  # cache_from_obj and the model's checks
    slab = kmem.slabs[virt_to_head_page(kmem.pgdat, x).pfn]  # the slab view of the head page
    del kmem.live[x]
    slab_free(kmem, s, slab, x)


@kernel(F)
def flush_slab(kmem: kmem_state, s: kmem_cache, c: kmem_cache_cpu) -> None:
    """Models mm/slub.c:flush_slab: deactivate the cpu slab."""
    if c.page is not None:
        deactivate_slab(kmem, s, c.page, c.freelist)
        c.page = None
        c.freelist = 0


@kernel(F)
def deactivate_slab(kmem: kmem_state, s: kmem_cache, slab: slab_page, freelist: int) -> None:
    """Models mm/slub.c:deactivate_slab: give the cpu's free objects back to the slab (in
    order, each to the head of its free list), unfreeze it, and file it: discarded if empty
    and the node has enough partial slabs, on the node's partial list if it has free objects
    (at the tail when others had freed into it meanwhile), else on no list (full)."""
    n = s.node
    tail = slab.freelist != 0
    while freelist:
        nxt = get_freepointer(kmem, s, freelist)
        set_freepointer(kmem, s, freelist, slab.freelist)
        slab.freelist = freelist
        slab.inuse -= 1
        freelist = nxt
    slab.frozen = False
    if not slab.inuse and n.nr_partial >= s.min_partial:
        discard_slab(kmem, s, slab)
    elif slab.freelist:
        add_partial(n, slab, tail)


# --------------------------------------------------------------------------------------------
# kmalloc


@kernel("include/linux/slab.h")
def kmalloc_index(size: int) -> int:
    """Models include/linux/slab.h:kmalloc_index: 0 for size 0; the 96- and 192-byte caches
    are indexes 1 and 2; otherwise ceil(log2(size)), at least 3."""
    if not size:
        return 0
    if size <= 8:
        return 3
    if 64 < size <= 96:
        return 1
    if 128 < size <= 192:
        return 2
    return (size - 1).bit_length()


def kmalloc_size(index: int) -> int:
    return {1: 96, 2: 192}.get(index, 1 << index)


# enum kmalloc_cache_type (CONFIG_ZONE_DMA is on for x86-64)
KMALLOC_NORMAL = 0
KMALLOC_RECLAIM = 1
KMALLOC_DMA = 2


@kernel("include/linux/slab.h")
def kmalloc_type(flags: int) -> int:
    """Models include/linux/slab.h:kmalloc_type: __GFP_DMA picks the DMA caches, else
    __GFP_RECLAIMABLE the reclaimable ones, else the normal ones."""
    if not flags & (G.__GFP_DMA | G.__GFP_RECLAIMABLE):
        return KMALLOC_NORMAL
    return KMALLOC_DMA if flags & G.__GFP_DMA else KMALLOC_RECLAIM


def _kmalloc_caches(kmem: kmem_state, kmalloc_type: int) -> dict[int, kmem_cache]:
    """kmalloc_caches[type]: one dict of caches by kmalloc index per type."""
    if kmalloc_type == KMALLOC_NORMAL:
        return kmem.kmalloc_caches
    return kmem.kmalloc_dma_caches if kmalloc_type == KMALLOC_DMA else kmem.kmalloc_rcl_caches


@kernel("mm/slab_common.c")
def create_kmalloc_caches(kmem: kmem_state) -> None:
    """Models mm/slab_common.c:create_kmalloc_caches: for KMALLOC_NORMAL, then
    KMALLOC_RECLAIM (SLAB_RECLAIM_ACCOUNT), kmalloc-8 ... kmalloc-8k with kmalloc-96 after
    kmalloc-64 and kmalloc-192 after kmalloc-128; then (CONFIG_ZONE_DMA) a dma-kmalloc-*
    cache for every normal one (SLAB_CACHE_DMA, and no usercopy region, so mergeable)."""
    for kmalloc_type in (KMALLOC_NORMAL, KMALLOC_RECLAIM):
        for i in range(KMALLOC_SHIFT_LOW, KMALLOC_SHIFT_HIGH + 1):
            _create_kmalloc_cache(kmem, i, kmalloc_type)
            if i == 6:
                _create_kmalloc_cache(kmem, 1, kmalloc_type)
            if i == 7:
                _create_kmalloc_cache(kmem, 2, kmalloc_type)
    for i in sorted(kmem.kmalloc_caches):
        _create_kmalloc_cache(kmem, i, KMALLOC_DMA)


_KMALLOC_PREFIX = {KMALLOC_NORMAL: "kmalloc-", KMALLOC_RECLAIM: "kmalloc-rcl-",
                   KMALLOC_DMA: "dma-kmalloc-"}
_KMALLOC_FLAGS = {KMALLOC_NORMAL: 0, KMALLOC_RECLAIM: SLAB_RECLAIM_ACCOUNT,
                  KMALLOC_DMA: SLAB_CACHE_DMA}


def _create_kmalloc_cache(kmem: kmem_state, index: int, kmalloc_type: int) -> None:
    """mm/slab_common.c:new_kmalloc_cache / create_kmalloc_cache → create_boot_cache: a
    power-of-two size is also the cache's alignment."""
    size = kmalloc_size(index)
    name = _KMALLOC_PREFIX[kmalloc_type] + (f"{size // 1024}k" if size >= 1024 else f"{size}")
    flags = _KMALLOC_FLAGS[kmalloc_type]
    align = max(ARCH_KMALLOC_MINALIGN, size) if size & (size - 1) == 0 else ARCH_KMALLOC_MINALIGN
    s = kmem_cache(name, size, flags=flags)
    s.align = calculate_alignment(flags, align, size)
    kmem_cache_open(s)
    s.refcount = 1
    _kmalloc_caches(kmem, kmalloc_type)[index] = s
    kmem.slab_caches.append(s)


# mm/slab_common.c:size_index: the kmalloc index of sizes 1..192 by (size - 1) / 8, with the
# 96- and 192-byte caches (indexes 1 and 2) in their places.
size_index: tuple[int, ...] = (3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7,
                               2, 2, 2, 2, 2, 2, 2, 2)


@kernel("mm/slab_common.c")
def kmalloc_slab(kmem: kmem_state, size: int, flags: int) -> kmem_cache | None:
    """Models mm/slab_common.c:kmalloc_slab: the size_index table up to 192 bytes, fls(size
    - 1) above (kmalloc_index is only for sizes known at compile time). None stands for both
    of 5.10's answers that are no cache: ZERO_SIZE_PTR for size 0 and NULL (with a
    WARN_ON_ONCE) above KMALLOC_MAX_CACHE_SIZE."""
    if size <= 192:
        if not size:
            return None  # ZERO_SIZE_PTR
        index = size_index[(size - 1) // 8]  # size_index_elem
    else:
        if size > KMALLOC_MAX_CACHE_SIZE:
            return None
        index = (size - 1).bit_length()  # fls(size - 1)
    kind = kmalloc_type(flags)
    return (kmem.kmalloc_caches if kind == KMALLOC_NORMAL else _kmalloc_caches(kmem, kind))[index]


@kernel("mm/slab_common.c")
def kmalloc_order(kmem: kmem_state, size: int, flags: int, order: int) -> int:
    """Models mm/slab_common.c:kmalloc_order: a compound page block for a big kmalloc."""
    page = alloc_pages(kmem.pgdat, flags | G.__GFP_COMP, order)
    if page is None:
        return 0
    addr = page_address(kmem.pgdat, page)
    kmem.large[addr] = order
    return addr


@kernel("include/linux/slab.h")
def kmalloc_large(kmem: kmem_state, size: int, flags: int) -> int:
    """Models include/linux/slab.h:kmalloc_large."""
    return kmalloc_order(kmem, size, flags, get_order(size))


@kernel(F)
def __kmalloc(kmem: kmem_state, size: int, flags: int) -> int:
    """Models mm/slub.c:__kmalloc: ZERO_SIZE_PTR (16) for size 0."""
    if size > KMALLOC_MAX_CACHE_SIZE:
        return kmalloc_large(kmem, size, flags)
    s = kmalloc_slab(kmem, size, flags)
    if s is None:
        return 16  # ZERO_SIZE_PTR
    return slab_alloc(kmem, s, flags)


@kernel("include/linux/slab.h")
def kmalloc(kmem: kmem_state, size: int, flags: int) -> int:
    """Models include/linux/slab.h:kmalloc: an object's address, 0 on failure."""
    if size < 0:
        raise KernelWarning("kmalloc", "negative size")
    return __kmalloc(kmem, size, flags)  # the size is not a compile-time constant


@kernel(F)
def kfree(kmem: kmem_state, x: int) -> None:
    """Models mm/slub.c:kfree: NULL and ZERO_SIZE_PTR are ignored; a non-slab page must be a
    kmalloc_large compound page (BUG_ON(!PageCompound(page)) otherwise), and is freed whole
    from its head page (virt_to_head_page), even for a pointer into its middle, as 5.10
    does."""
    if x <= 16:
        return
    page = virt_to_head_page(kmem.pgdat, x)
    if not page.flags & _PG_slab:
        # free_nonslab_page: a kmalloc_large compound page, freed whole from its head
        head_addr = pfn_to_virt(kmem.pgdat, page.pfn)
        order = kmem.large.get(head_addr)
        if order is None:
            raise KernelBug("kfree: BUG_ON(!PageCompound(page))",
                            f"{x:#x} was not returned by kmalloc")
        del kmem.large[head_addr]
        _free_block(kmem.pgdat, page, order)
        return
    slab = _check_object_free(kmem, None, x, "kfree")
    del kmem.live[x]
    slab_free(kmem, slab.slab_cache, slab, x)


# --------------------------------------------------------------------------------------------
# Caches


def _find_mergeable(kmem: kmem_state, size: int, align: int, flags: int,
                    ctor: bool) -> kmem_cache | None:
    """mm/slab_common.c:find_mergeable: an existing cache of the same rounded size, unless
    merging is impossible (constructors, debug flags, usercopy regions as kmalloc has)."""
    if ctor:
        return None
    size = (size + 7) & ~7
    align = calculate_alignment(flags, align, size)  # asked before the flags, as 5.10 does
    size = (size + align - 1) & ~(align - 1)
    if flags & SLAB_NEVER_MERGE:
        return None
    for s in reversed(kmem.slab_caches):
        if (s in kmem.kmalloc_caches.values() or s in kmem.kmalloc_rcl_caches.values()
                or s.ctor or s.flags & SLAB_NEVER_MERGE):
            continue  # slab_unmergeable: those kmalloc caches have a usercopy region
        if size > s.size or (flags & SLAB_MERGE_SAME) != (s.flags & SLAB_MERGE_SAME):
            continue
        if s.size - size >= 8:
            continue
        return s
    return None


@kernel("mm/slab_common.c")
def kmem_cache_create(kmem: kmem_state, name: str, size: int, align: int = 0,
                      flags: int = 0, ctor: bool = False) -> kmem_cache | None:
    """Models mm/slab_common.c:kmem_cache_create: merge with a compatible cache
    (__kmem_cache_alias) or create one (create_cache → __kmem_cache_create)."""
    if not 8 <= size <= KMALLOC_MAX_SIZE or align < 0 or align & (align - 1):
        return None  # kmem_cache_sanity_check
    alias = _find_mergeable(kmem, size, align, flags, ctor)
    if alias is not None:
        alias.refcount += 1
        alias.object_size = max(alias.object_size, size)
        return alias
    s = kmem_cache(name, size, flags=flags, ctor=ctor)
    s.align = calculate_alignment(flags, align, size)
    if kmem_cache_open(s):
        return None
    kmem.slab_caches.append(s)
    return s


@kernel("mm/slab_common.c")
def kmem_cache_destroy(kmem: kmem_state, s: kmem_cache) -> None:
    """Models mm/slab_common.c:kmem_cache_destroy: the last reference flushes the cpu slab
    and partial lists (__kmem_cache_shutdown); objects still allocated are an error and the
    cache is kept, as in 5.10."""
    if s.refcount - 1 > 0:
        s.refcount -= 1
        return
    if any(c is s for c in kmem.live.values()):
        raise KernelWarning("kmem_cache_destroy",
                            f"{s.name}: Slab cache still has objects (cache kept)")
    s.refcount -= 1
    # shutdown_cache → __kmem_cache_shutdown: flush_all runs __flush_cpu_slab on a cpu that
    # has a slab or per-cpu partial slabs (has_cpu_slab)
    c = s.cpu_slab
    if c.page is not None or c.partial is not None:
        if c.page is not None:
            flush_slab(kmem, s, c)
        unfreeze_partials(kmem, s, c)
    # free_partial: every empty slab off the partial list onto a local list (list_add, so
    # the last one first), then each discarded
    discard: list[slab_page] = []
    for slab in list(s.node.partial.values()):
        if not slab.inuse:
            remove_partial(s.node, slab)
            discard.insert(0, slab)
    for slab in discard:
        discard_slab(kmem, s, slab)
    kmem.slab_caches.remove(s)


def kmem_cache_init(pgdat: pglist_data) -> kmem_state:
    """Models mm/slub.c:kmem_cache_init's outcome: the kmalloc caches exist; their own
    descriptors are not slab objects in the model (docs/scope.md)."""
    kmem = kmem_state(pgdat)
    create_kmalloc_caches(kmem)
    return kmem

