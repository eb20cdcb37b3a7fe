"""Machine configurations: the full x86-64 machine and the standalone buddy allocator."""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE_SIZE = 4096
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

# x86-64 zone limits in pfns (arch/x86/mm/init.c:zone_sizes_init)
MAX_DMA_PFN = (16 * MiB) // PAGE_SIZE
MAX_DMA32_PFN = (4 * GiB) // PAGE_SIZE

# Early reservations of a 5.10 x86-64 boot without KASLR (arch/x86/kernel/setup.c), in pfns.
RESERVE_LOW = (0, 16)  # trim_low_memory_range: CONFIG_X86_RESERVE_LOW = 64 KiB, page 0 too
EBDA = (0x9F, 0xA0)  # reserve_bios_regions: the default BIOS start 0x9f000 up to 640 KiB
LEGACY_HOLE = (0xA0, 0x100)  # trim_bios_range: 640 KiB - 1 MiB is never RAM
KERNEL_START_PFN = (16 * MiB) // PAGE_SIZE  # CONFIG_PHYSICAL_START = 0x1000000


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """The full machine: x86-64, one node, one CPU, SLUB, no PTI, no ASLR.

    ``memory`` is contiguous RAM from physical address 0 (no PCI hole). The reserved map is
    the simplest 5.10 x86-64 boot: reserve_low, the EBDA, the legacy 640 KiB-1 MiB hole and a
    kernel image of ``kernel_image`` bytes at 16 MiB; memblock's own early allocations and
    what the rest of boot allocates are left out (docs/scope.md). ``extra_reserved`` adds
    pfn ranges, as a ``memmap=`` or ``memblock_reserve`` would.
    """

    memory: int = 256 * MiB
    paging_levels: int = 4
    kernel_image: int = 16 * MiB
    extra_reserved: tuple[tuple[int, int], ...] = ()
    min_free_kbytes: int | None = None  # None: computed at boot as 5.10 does
    pcp: bool = True
    # One swap area on a rotating disk (swapon at boot), ``swap`` bytes including its
    # header page; 0 for none.
    swap: int = 0

    def __post_init__(self) -> None:
        if self.paging_levels not in (4, 5):
            raise ValueError("paging_levels must be 4 or 5")
        if self.memory % PAGE_SIZE:
            raise ValueError("memory must be a multiple of the page size")
        if self.kernel_image < 0 or self.kernel_image % PAGE_SIZE:
            raise ValueError("kernel_image must be a non-negative multiple of the page size")
        first_free = KERNEL_START_PFN + self.kernel_image // PAGE_SIZE
        if self.nr_pages < first_free + 1024:
            raise ValueError(
                f"memory of {self.memory // MiB} MiB leaves less than 4 MiB above the kernel "
                f"image (which ends at {first_free * PAGE_SIZE // MiB} MiB)")
        if self.memory > 4 * TiB:
            # 5.10 addresses 64 TiB (4-level) or 4 PiB (5-level); the model keeps a list
            # entry per free 4 MiB block, about 80 MB and a second of boot per TiB
            raise ValueError("memory beyond 4 TiB is not supported by the model (its free "
                             "lists cost about 80 MB and a second of boot per TiB)")
        if self.min_free_kbytes is not None and self.min_free_kbytes < 0:
            raise ValueError("min_free_kbytes must not be negative (sysctl's minimum is 0)")
        for s, e in self.extra_reserved:
            if not 0 <= s < e <= self.nr_pages:
                raise ValueError(f"reserved range [{s:#x}, {e:#x}) is not inside memory")
        if self.swap < 0 or self.swap % PAGE_SIZE:
            raise ValueError("swap must be a non-negative multiple of the page size")
        if 0 < self.swap < 2 * PAGE_SIZE:
            raise ValueError("a swap area needs its header page and at least one slot "
                             "(swapon: \"Empty swap-file\")")
        if self.swap > 64 * GiB:
            raise ValueError("swap beyond 64 GiB is not supported by the model")

    @property
    def nr_pages(self) -> int:
        return self.memory // PAGE_SIZE

    @property
    def swap_pages(self) -> int:
        """Pages of the swap area, header included (swap_info_struct.max)."""
        return self.swap // PAGE_SIZE

    def holes(self) -> tuple[tuple[int, int], ...]:
        """pfn ranges that are not RAM at all (not present)."""
        return (LEGACY_HOLE,)

    def reserved(self) -> tuple[tuple[int, int], ...]:
        """memblock.reserved at memblock_free_all, sorted, in pfns."""
        kernel = (KERNEL_START_PFN, KERNEL_START_PFN + self.kernel_image // PAGE_SIZE)
        ranges = [RESERVE_LOW, EBDA, kernel, *self.extra_reserved]
        return tuple(sorted(r for r in ranges if r[0] < r[1]))


@dataclass(frozen=True, slots=True)
class BuddyConfig:
    """The standalone buddy allocator over pfns [0, nr_pages): one zone, one migratetype,
    per-cpu lists off, no watermarks, nothing reserved. What the conformance kit drives."""

    nr_pages: int
    max_order: int = 11
    reserved: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if not 1 <= self.nr_pages <= (1 << 32):
            raise ValueError("nr_pages must be between 1 and 2**32")
        if not 1 <= self.max_order <= 20:
            raise ValueError("max_order must be between 1 and 20")
        if self.nr_pages >> (self.max_order - 1) > 1 << 20:
            # boot frees one block per 2**(max_order-1) pages, each a struct page and a
            # list entry: past a million blocks that is hundreds of MB
            raise ValueError(f"nr_pages {self.nr_pages} with max_order {self.max_order} boots "
                             f"more than 2**20 free blocks; raise max_order or lower nr_pages")
        for s, e in self.reserved:
            if not 0 <= s < e <= self.nr_pages:
                raise ValueError(f"reserved range [{s:#x}, {e:#x}) is not inside [0, nr_pages)")
