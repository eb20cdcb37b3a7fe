"""The x86-64 mmap layout (arch/x86/mm/mmap.c, 5.10) without address-space randomisation.

arch_pick_mmap_layout chooses top-down (mmap_base below the stack gap) unless the legacy
layout is asked for. Without PF_RANDOMIZE every random offset is 0, so with the usual 8 MiB
stack limit mmap_base is 0x7ffff7fff000 (the gap is clamped up to 128 MiB).
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable_types import DEFAULT_MAP_WINDOW, TASK_SIZE_MAX
from refmodel.arch.x86.sys_x86_64 import arch_get_unmapped_area, arch_get_unmapped_area_topdown
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mman import ADDR_COMPAT_LAYOUT, PAGE_ALIGN, RLIMIT_STACK, ULONG_MAX, rlimit
from refmodel.trace import kernel

F = "arch/x86/mm/mmap.c"
SIZE_128M = 128 << 20


def TASK_SIZE(levels: int) -> int:
    """TASK_SIZE of a native 64-bit task: TASK_SIZE_MAX (0x7ffffffff000 with 4 levels)."""
    return TASK_SIZE_MAX(levels)


@kernel(F)
def mmap_base(rnd: int, task_size: int, rlim_stack: rlimit, stack_guard_gap: int) -> int:
    """Models arch/x86/mm/mmap.c:mmap_base: below the stack rlimit plus the guard gap,
    clamped to [128 MiB, 5/6 of the address space]."""
    gap = rlim_stack.rlim_cur
    pad = stack_guard_gap  # + stack_maxrandom_size(task_size): 0 without PF_RANDOMIZE
    if (gap + pad) & ULONG_MAX > gap:  # values near RLIM_INFINITY would overflow
        gap += pad
    gap_min = SIZE_128M
    gap_max = (task_size // 6) * 5
    if gap < gap_min:
        gap = gap_min
    elif gap > gap_max:
        gap = gap_max
    return PAGE_ALIGN(task_size - gap - rnd)


@kernel(F)
def mmap_legacy_base(rnd: int, task_size: int) -> int:
    """Models arch/x86/mm/mmap.c:mmap_legacy_base = PAGE_ALIGN(task_size / 3) + rnd."""
    return PAGE_ALIGN(task_size // 3) + rnd


@kernel(F)
def mmap_is_legacy(mm: mm_struct) -> bool:
    """Models arch/x86/mm/mmap.c:mmap_is_legacy."""
    if mm.personality & ADDR_COMPAT_LAYOUT:
        return True
    return bool(mm.vm_globals.sysctl_legacy_va_layout)


@kernel(F)
def arch_pick_mmap_layout(mm: mm_struct, rlim_stack: rlimit) -> None:
    """Models arch/x86/mm/mmap.c:arch_pick_mmap_layout for a 64-bit task without
    PF_RANDOMIZE (the compat bases are left out)."""
    if mmap_is_legacy(mm):
        mm.get_unmapped_area = arch_get_unmapped_area
    else:
        mm.get_unmapped_area = arch_get_unmapped_area_topdown
    mm.mmap_base, mm.mmap_legacy_base = arch_pick_mmap_base(
        mm, 0, DEFAULT_MAP_WINDOW, rlim_stack)  # random_factor 0, task_size_64bit(0)


@kernel(F)
def arch_pick_mmap_base(mm: mm_struct, random_factor: int, task_size: int,
                        rlim_stack: rlimit) -> tuple[int, int]:
    """Models arch/x86/mm/mmap.c:arch_pick_mmap_base; returns (base, legacy_base): the
    legacy base always, and the base is that one too for the legacy layout, else
    mmap_base."""
    legacy_base = mmap_legacy_base(random_factor, task_size)
    if mmap_is_legacy(mm):
        return legacy_base, legacy_base
    return mmap_base(random_factor, task_size, rlim_stack,
                     mm.vm_globals.stack_guard_gap), legacy_base


def setup_new_exec_layout(mm: mm_struct) -> None:
    """What exec (fs/exec.c:setup_new_exec / setup_arg_pages) leaves in a fresh mm for the
    VMA layer: task_size = TASK_SIZE, then arch_pick_mmap_layout with the stack rlimit."""
    mm.task_size = TASK_SIZE(mm.paging_levels)
    mm.mm_rb.guard = mm.vm_globals.stack_guard_gap
    arch_pick_mmap_layout(mm, mm.rlim[RLIMIT_STACK])
