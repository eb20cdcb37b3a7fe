"""One Machine: boots physical memory, owns the allocator, and (later) tasks and syscalls.

Kernel functions named with a leading ``__`` are imported under other names here: Python
mangles such names inside class bodies."""

from __future__ import annotations

from refmodel.bugs import KernelBug
from refmodel.config import BuddyConfig, MachineConfig
from refmodel.mm.mmzone import pfn_to_page, pglist_data
from refmodel.mm.page_alloc import __free_pages as _free_pages_of_page
from refmodel.mm.page_alloc import alloc_pages
from refmodel.mm.page_alloc_init import boot_node, boot_standalone
from refmodel.mm.types import Page


class Machine:
    """A booted x86-64 machine (one node, one CPU). Two Machines never share state."""

    def __init__(self, config: MachineConfig | None = None) -> None:
        self.config = config or MachineConfig()
        self.pgdat: pglist_data = boot_node(self.config)

    # The allocator, by pfn, for tools and tests.
    def alloc_pages(self, gfp_mask: int, order: int) -> Page | None:
        return alloc_pages(self.pgdat, gfp_mask, order)

    def free_pages(self, pfn: int, order: int) -> None:
        _free_pages_of_page(self.pgdat, pfn_to_page(self.pgdat, pfn), order)


class StandaloneBuddy:
    """The plain buddy system over pfns [0, N): the same allocator code, configured as one
    zone with one migratetype and no per-cpu lists or watermarks."""

    def __init__(self, config: BuddyConfig) -> None:
        self.config = config
        self.pgdat: pglist_data = boot_standalone(config)

    def alloc(self, order: int) -> int | None:
        """Allocate a block of 2**order pages; its first pfn, or None if none is free."""
        page = alloc_pages(self.pgdat, 0, order)
        return None if page is None else page.pfn

    def free(self, pfn: int, order: int) -> None:
        """Free the block at ``pfn``; raises a KernelBug subclass for a bad free."""
        if not 0 <= pfn < self.config.nr_pages:
            raise KernelBug("VM_BUG_ON_PAGE(bad_range(zone, page))",
                            f"pfn {pfn:#x} is outside [0, {self.config.nr_pages:#x})")
        _free_pages_of_page(self.pgdat, pfn_to_page(self.pgdat, pfn), order)
