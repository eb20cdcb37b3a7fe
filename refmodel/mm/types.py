"""struct page and its flags (include/linux/mm_types.h, include/linux/page-flags.h, 5.10).

Only the fields whose values the model observes are kept. ``pfn`` and ``state`` are the
model's own: 5.10 computes the pfn from the page's address in mem_map, and keeps a page's
state implicitly in flags, page_type and list membership; here the state is explicit and every
change of it is checked against a transition table (see :func:`set_page_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import NoReturn

from refmodel.bugs import KernelBug


class PageFlags(IntFlag):
    """enum pageflags of include/linux/page-flags.h (5.10, x86-64), as bit masks."""

    PG_locked = 1 << 0
    PG_referenced = 1 << 1
    PG_uptodate = 1 << 2
    PG_dirty = 1 << 3
    PG_lru = 1 << 4
    PG_active = 1 << 5
    PG_workingset = 1 << 6
    PG_waiters = 1 << 7
    PG_error = 1 << 8
    PG_slab = 1 << 9
    PG_owner_priv_1 = 1 << 10  # PG_swapcache for swap-backed pages
    PG_arch_1 = 1 << 11
    PG_reserved = 1 << 12
    PG_private = 1 << 13
    PG_private_2 = 1 << 14
    PG_writeback = 1 << 15
    PG_head = 1 << 16
    PG_mappedtodisk = 1 << 17
    PG_reclaim = 1 << 18
    PG_swapbacked = 1 << 19
    PG_unevictable = 1 << 20
    PG_mlocked = 1 << 21


PG_swapcache = PageFlags.PG_owner_priv_1

# The flags free_pages_check() refuses at free time (PAGE_FLAGS_CHECK_AT_FREE, 5.10).
PAGE_FLAGS_CHECK_AT_FREE = int(
    PageFlags.PG_lru | PageFlags.PG_locked | PageFlags.PG_private | PageFlags.PG_private_2
    | PageFlags.PG_writeback | PageFlags.PG_reserved | PageFlags.PG_slab | PageFlags.PG_active
    | PageFlags.PG_unevictable | PageFlags.PG_mlocked
)


class PageType(IntFlag):
    """page_type bits (include/linux/page-flags.h). 5.10 stores them inverted in the word
    shared with _mapcount; the model keeps them in their own field, set meaning "is"."""

    PG_buddy = 0x00000080
    PG_offline = 0x00000100
    PG_table = 0x00000200
    PG_guard = 0x00000400


class PageState(IntEnum):
    """Where a page is, made explicit (the kernel infers it from flags and lists)."""

    TAIL = 0  # not the head of any block: inside a larger free or allocated block
    RESERVED = 1  # PG_reserved, never given to the buddy allocator
    BUDDY = 2  # head of a free block on a zone free list (PageBuddy)
    PCP = 3  # an order-0 page on a per-cpu list
    ALLOCATED = 4  # head of a block handed out by the allocator


# Every legal change of state; anything else is a model bug caught at once.
_TRANSITIONS: frozenset[tuple[PageState, PageState]] = frozenset(
    {
        (PageState.TAIL, PageState.BUDDY),  # boot release, or a split's upper half
        (PageState.BUDDY, PageState.TAIL),  # merged into a buddy, or taken off a free list
        (PageState.TAIL, PageState.ALLOCATED),  # handed out by rmqueue (or boot's release)
        (PageState.TAIL, PageState.PCP),  # rmqueue_bulk
        (PageState.PCP, PageState.ALLOCATED),  # __rmqueue_pcplist
        (PageState.PCP, PageState.BUDDY),  # free_pcppages_bulk
        (PageState.PCP, PageState.TAIL),  # ... merged straight into a lower buddy
        (PageState.ALLOCATED, PageState.PCP),  # free_unref_page
        (PageState.ALLOCATED, PageState.BUDDY),  # __free_pages_ok
        (PageState.ALLOCATED, PageState.TAIL),
    }
)


@dataclass(slots=True, eq=False)
class Page:
    """struct page: the fields 5.10 keeps that the model observes."""

    pfn: int
    zone_idx: int  # page_zonenum(): 5.10 encodes it in the top bits of flags
    flags: int = 0
    page_type: int = 0
    _refcount: int = 0
    _mapcount: int = -1
    private: int = 0  # buddy order while PageBuddy (set_buddy_order)
    # page->index: the pcp migratetype while on a per-cpu list (set_pcppage_migratetype);
    # while mapped, the page's offset in its mapping (pages) as 5.10 keeps it: the file
    # offset of a page-cache page, linear_page_index() of an anonymous one. The two uses
    # never overlap in time, exactly as in 5.10.
    index: int = 0
    state: PageState = PageState.TAIL
    alloc_order: int = -1  # model-only: the order the block was allocated with
    # page->mapping: the address_space of a page-cache page, or the anon_vma of an anonymous
    # page; 5.10 tags the latter with PAGE_MAPPING_ANON in the pointer's low bit, the model
    # keeps that bit in ``mapping_flags``.
    mapping: object | None = None
    mapping_flags: int = 0

    def __repr__(self) -> str:
        return f"Page(pfn={self.pfn:#x}, {self.state.name}, ref={self._refcount})"


# Attribute access on an Enum class costs about 0.1 µs in Python 3.11 (EnumType defines
# __getattr__), so the allocator's hot paths use these module constants instead.
ST_TAIL = PageState.TAIL
ST_RESERVED = PageState.RESERVED
ST_BUDDY = PageState.BUDDY
ST_PCP = PageState.PCP
ST_ALLOCATED = PageState.ALLOCATED

# _ALLOWED[old] has bit ``new`` set for every legal change old -> new.
_ALLOWED: tuple[int, ...] = tuple(
    sum(1 << b for a, b in _TRANSITIONS if a is s) for s in PageState
)


# LEGAL_FROM[new] has bit ``old`` set for every legal change old -> new: the allocator's hot
# paths test ``LEGAL_FROM[new] >> page.state & 1`` in line instead of calling set_page_state.
LEGAL_FROM: tuple[int, ...] = tuple(
    sum(1 << a for a, b in _TRANSITIONS if b is s) for s in PageState
)


def illegal_page_state(page: Page, new: PageState) -> NoReturn:
    """The model bug of an illegal state change."""
    raise KernelBug(
        "VM_BUG_ON_PAGE", f"illegal page state change {page.state.name} -> {new.name} "
        f"for pfn {page.pfn:#x}"
    )


def set_page_state(page: Page, new: PageState) -> None:
    """Move a page to a new state, refusing any change the allocator never makes."""
    if not _ALLOWED[page.state] >> new & 1:
        illegal_page_state(page, new)
    page.state = new


PAGE_MAPPING_ANON = 0x1  # include/linux/page-flags.h


def PageAnon(page: Page) -> bool:
    """include/linux/page-flags.h:PageAnon: the PAGE_MAPPING_ANON bit of page->mapping."""
    return bool(page.mapping_flags & PAGE_MAPPING_ANON)


# Plain ints for the tests below (an Enum member read costs a metaclass __getattr__).
_PG_swapbacked = int(PageFlags.PG_swapbacked)
_PG_buddy = int(PageType.PG_buddy)
_PG_reserved = int(PageFlags.PG_reserved)


def PageSwapBacked(page: Page) -> bool:
    return page.flags & _PG_swapbacked != 0


def PageBuddy(page: Page) -> bool:
    return page.page_type & _PG_buddy != 0


def PageReserved(page: Page) -> bool:
    return page.flags & _PG_reserved != 0


def page_count(page: Page) -> int:
    return page._refcount


def page_mapcount(page: Page) -> int:
    """include/linux/mm.h:page_mapcount (order-0 pages): _mapcount + 1."""
    return page._mapcount + 1


def page_mapped(page: Page) -> bool:
    return page._mapcount >= 0


def buddy_order(page: Page) -> int:
    """include/linux/mm.h / mm/internal.h:buddy_order: the order kept in page->private."""
    return page.private
