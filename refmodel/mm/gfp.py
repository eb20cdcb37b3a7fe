"""GFP flags and their zone and migratetype decoding (include/linux/gfp.h, 5.10).

The names are the kernel's macros, as plain ints so the allocator's hot path stays cheap;
:func:`gfp_names` turns a mask back into the macro names for traces and reports.
"""

from __future__ import annotations

from refmodel.bugs import KernelBug
from refmodel.mm.mmzone import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    ZoneType,
)
from refmodel.trace import kernel, register_arg_formatter

__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
__GFP_ATOMIC = 0x200
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_WRITE = 0x1000
__GFP_NOWARN = 0x2000
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_HARDWALL = 0x100000
__GFP_THISNODE = 0x200000
__GFP_ACCOUNT = 0x400000
__GFP_BITS_MASK = (1 << 23) - 1

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM
GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE
GFP_MOVABLE_MASK = __GFP_RECLAIMABLE | __GFP_MOVABLE
GFP_MOVABLE_SHIFT = 3

GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE
# arch/x86/include/asm/pgalloc.h / include/asm-generic/pgalloc.h
GFP_PGTABLE_KERNEL = GFP_KERNEL | __GFP_ZERO
GFP_PGTABLE_USER = GFP_PGTABLE_KERNEL | __GFP_ACCOUNT

_SINGLE_BITS: dict[str, int] = {
    "__GFP_DMA": __GFP_DMA, "__GFP_HIGHMEM": __GFP_HIGHMEM, "__GFP_DMA32": __GFP_DMA32,
    "__GFP_MOVABLE": __GFP_MOVABLE, "__GFP_RECLAIMABLE": __GFP_RECLAIMABLE,
    "__GFP_HIGH": __GFP_HIGH, "__GFP_IO": __GFP_IO, "__GFP_FS": __GFP_FS,
    "__GFP_ZERO": __GFP_ZERO, "__GFP_ATOMIC": __GFP_ATOMIC,
    "__GFP_DIRECT_RECLAIM": __GFP_DIRECT_RECLAIM, "__GFP_KSWAPD_RECLAIM": __GFP_KSWAPD_RECLAIM,
    "__GFP_WRITE": __GFP_WRITE, "__GFP_NOWARN": __GFP_NOWARN,
    "__GFP_RETRY_MAYFAIL": __GFP_RETRY_MAYFAIL, "__GFP_NOFAIL": __GFP_NOFAIL,
    "__GFP_NORETRY": __GFP_NORETRY, "__GFP_MEMALLOC": __GFP_MEMALLOC, "__GFP_COMP": __GFP_COMP,
    "__GFP_NOMEMALLOC": __GFP_NOMEMALLOC, "__GFP_HARDWALL": __GFP_HARDWALL,
    "__GFP_THISNODE": __GFP_THISNODE, "__GFP_ACCOUNT": __GFP_ACCOUNT,
}

# Composite masks a user may name (CLI, conformance requests), longest first for gfp_names.
GFP_COMPOSITES: dict[str, int] = {
    "GFP_HIGHUSER_MOVABLE": GFP_HIGHUSER_MOVABLE,
    "GFP_PGTABLE_USER": GFP_PGTABLE_USER,
    "GFP_HIGHUSER": GFP_HIGHUSER,
    "GFP_KERNEL_ACCOUNT": GFP_KERNEL_ACCOUNT,
    "GFP_USER": GFP_USER,
    "GFP_KERNEL": GFP_KERNEL,
    "GFP_NOFS": GFP_NOFS,
    "GFP_NOIO": GFP_NOIO,
    "GFP_ATOMIC": GFP_ATOMIC,
    "GFP_NOWAIT": GFP_NOWAIT,
    "GFP_DMA": GFP_DMA,
    "GFP_DMA32": GFP_DMA32,
}


def parse_gfp(text: str) -> int:
    """Parse ``"GFP_KERNEL|__GFP_ZERO"`` (or a number) into a mask; ValueError if unknown."""
    mask = 0
    for part in text.replace(" ", "").split("|"):
        if not part:
            continue
        if part in GFP_COMPOSITES:
            mask |= GFP_COMPOSITES[part]
        elif part in _SINGLE_BITS:
            mask |= _SINGLE_BITS[part]
        else:
            try:
                mask |= int(part, 0)
            except ValueError:
                raise ValueError(f"unknown GFP flag {part!r}") from None
    if mask & ~__GFP_BITS_MASK:
        raise ValueError(f"GFP mask {mask:#x} has bits outside __GFP_BITS_MASK")
    return mask


def gfp_names(mask: int) -> str:
    """The mask as the kernel would spell it: the largest composite, then single bits."""
    parts: list[str] = []
    rest = mask
    for name, value in GFP_COMPOSITES.items():
        if value and rest & value == value:
            parts.append(name)
            rest &= ~value
            break
    for name, value in _SINGLE_BITS.items():
        if rest & value:
            parts.append(name)
            rest &= ~value
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) if parts else "0"


# GFP_ZONE_TABLE for x86-64 (no HIGHMEM: OPT_ZONE_HIGHMEM is ZONE_NORMAL), indexed by the
# four zone bits; None marks the GFP_ZONE_BAD combinations.
_ZONE_TABLE: tuple[int | None, ...] = (
    ZoneType.ZONE_NORMAL,  # 0
    ZoneType.ZONE_DMA,  # DMA
    ZoneType.ZONE_NORMAL,  # HIGHMEM
    None,  # DMA|HIGHMEM
    ZoneType.ZONE_DMA32,  # DMA32
    None,  # DMA|DMA32
    None,  # HIGHMEM|DMA32
    None,  # DMA|HIGHMEM|DMA32
    ZoneType.ZONE_NORMAL,  # MOVABLE
    ZoneType.ZONE_DMA,  # MOVABLE|DMA
    ZoneType.ZONE_MOVABLE,  # MOVABLE|HIGHMEM
    None,
    ZoneType.ZONE_DMA32,  # MOVABLE|DMA32
    None,
    None,
    None,
)


@kernel("include/linux/gfp.h")
def gfp_zone(flags: int) -> int:
    """Models include/linux/gfp.h:gfp_zone: the highest zone a mask may use."""
    z = _ZONE_TABLE[flags & GFP_ZONEMASK]
    if z is None:
        raise KernelBug("VM_BUG_ON(GFP_ZONE_BAD)", f"invalid zone modifiers {gfp_names(flags)}")
    return z


@kernel("include/linux/gfp.h")
def gfp_migratetype(gfp_flags: int, mobility_disabled: bool = False) -> int:
    """Models include/linux/gfp.h:gfp_migratetype (page_group_by_mobility_disabled passed in)."""
    if gfp_flags & GFP_MOVABLE_MASK == GFP_MOVABLE_MASK:
        raise KernelBug(
            "VM_WARN_ON((gfp_flags & GFP_MOVABLE_MASK) == GFP_MOVABLE_MASK)",
            "both __GFP_MOVABLE and __GFP_RECLAIMABLE",
        )
    if mobility_disabled:
        return MIGRATE_UNMOVABLE
    mt = (gfp_flags & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT
    assert mt in (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
    return mt


for _param in ("gfp_mask", "gfp_flags", "gfp"):
    register_arg_formatter(_param, gfp_names)


def gfpflags_allow_blocking(gfp_flags: int) -> bool:
    return bool(gfp_flags & __GFP_DIRECT_RECLAIM)
