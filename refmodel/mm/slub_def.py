"""SLUB's structures (include/linux/slub_def.h, include/linux/mm_types.h's slab fields, 5.10).

With one CPU there is one ``kmem_cache_cpu`` per cache, and with one node one
``kmem_cache_node``. The slab fields of struct page (freelist, inuse, objects, frozen, the
per-cpu partial link) live in a :class:`slab_page` kept beside the page, keyed by pfn in
``kmem_state.slabs``: 5.10 keeps them in struct page's slab union.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from refmodel.mm.types import Page


@dataclass(slots=True, eq=False)
class slab_page:
    """The slab view of a struct page: the first page of a slab."""

    page: Page
    slab_cache: kmem_cache
    order: int
    objects: int
    freelist: int = 0  # address of the first free object (0 = NULL)
    inuse: int = 0
    frozen: bool = False
    next: slab_page | None = None  # the per-cpu partial list link
    pages: int = 0  # per-cpu partial: slabs on the list from here on
    pobjects: int = 0  # per-cpu partial: free objects on the list from here on
    on_node_partial: bool = False  # model: which list the slab is on, made explicit
    start: int = 0  # page_address(page): the first object's address


@dataclass(slots=True)
class kmem_cache_cpu:
    """struct kmem_cache_cpu of the only CPU."""

    freelist: int = 0
    page: slab_page | None = None
    partial: slab_page | None = None


@dataclass(slots=True)
class kmem_cache_node:
    """struct kmem_cache_node: the partial list (head first) and its length."""

    partial: OrderedDict[int, slab_page] = field(default_factory=OrderedDict)
    nr_partial: int = 0
    nr_slabs: int = 0
    total_objects: int = 0


@dataclass(slots=True, eq=False)
class kmem_cache:
    """struct kmem_cache (SLUB), the fields calculate_sizes and the allocator use."""

    name: str
    object_size: int
    size: int = 0
    align: int = 8
    offset: int = 0  # where the free pointer lives inside an object
    inuse: int = 0
    flags: int = 0
    ctor: bool = False
    order: int = 0  # oo_order(s->oo)
    objects: int = 0  # oo_objects(s->oo)
    min_order: int = 0  # s->min
    min_objects: int = 0
    allocflags: int = 0
    min_partial: int = 5
    cpu_partial: int = 0
    cpu_slab: kmem_cache_cpu = field(default_factory=kmem_cache_cpu)
    node: kmem_cache_node = field(default_factory=kmem_cache_node)
    refcount: int = 1

    def __repr__(self) -> str:
        return (f"kmem_cache({self.name!r}, size={self.size}, objects={self.objects}, "
                f"order={self.order})")
