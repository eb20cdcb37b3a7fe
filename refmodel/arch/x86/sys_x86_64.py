"""The x86-64 mmap syscall and address-space search (arch/x86/kernel/sys_x86_64.c, 5.10).

Native 64-bit tasks only (no in_32bit_syscall). No PF_RANDOMIZE, so MAP_32BIT's window is
not randomised, and no AMD family 15h alignment (get_align_mask() is 0).
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable_types import DEFAULT_MAP_WINDOW, TASK_SIZE_MAX
from refmodel.errno import Errno
from refmodel.fs import file
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mman import MAP_32BIT, MAP_FIXED, PAGE_ALIGN, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from refmodel.mm.mmap import (
    VM_UNMAPPED_AREA_TOPDOWN,
    find_vma,
    ksys_mmap_pgoff,
    vm_start_gap,
    vm_unmapped_area,
)
from refmodel.mm.vm_flags import VM_GROWSDOWN
from refmodel.trace import kernel

F = "arch/x86/kernel/sys_x86_64.c"
ENOMEM = -int(Errno.ENOMEM)
EINVAL = -int(Errno.EINVAL)
_PAGE_OFFSET = ~PAGE_MASK  # offset_in_page, computed once for the mmap path


@kernel(F, "__x64_sys_mmap")
def sys_mmap(mm: mm_struct, addr: int, len: int, prot: int, flags: int, fd: int | file,
             off: int) -> int:
    """Models arch/x86/kernel/sys_x86_64.c:SYSCALL_DEFINE6(mmap): the byte offset must be
    page aligned, then ksys_mmap_pgoff with it in pages."""
    if off & _PAGE_OFFSET:
        return EINVAL
    return ksys_mmap_pgoff(mm, addr, len, prot, flags, fd, off >> PAGE_SHIFT)


def task_size_64bit(mm: mm_struct, full_addr_space: bool) -> int:
    """asm/processor.h:task_size_64bit: the whole TASK_SIZE_MAX, or the 47-bit window."""
    return TASK_SIZE_MAX(mm.paging_levels) if full_addr_space else DEFAULT_MAP_WINDOW


@kernel("arch/x86/mm/mmap.c")
def mmap_address_hint_valid(mm: mm_struct, addr: int, len: int) -> bool:
    """Models arch/x86/mm/mmap.c:mmap_address_hint_valid: inside TASK_SIZE, and not
    straddling the 47-bit window."""
    if mm.task_size - len < addr:
        return False
    return (addr > DEFAULT_MAP_WINDOW) == (addr + len > DEFAULT_MAP_WINDOW)


@kernel(F)
def find_start_end(mm: mm_struct, addr: int, flags: int) -> tuple[int, int]:
    """Models arch/x86/kernel/sys_x86_64.c:find_start_end: the bottom-up search window."""
    if flags & MAP_32BIT:
        return 0x40000000, 0x80000000
    return mm.mmap_legacy_base, task_size_64bit(mm, addr > DEFAULT_MAP_WINDOW)


@kernel(F)
def arch_get_unmapped_area(mm: mm_struct, filp: file | None, addr: int, len: int, pgoff: int,
                           flags: int) -> int:
    """Models arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area (bottom-up, the legacy
    layout and the top-down fallback): MAP_FIXED as is, a free hint, or the lowest gap in
    [mmap_legacy_base, end)."""
    if flags & MAP_FIXED:
        return addr
    begin, end = find_start_end(mm, addr, flags)
    if len > end:
        return ENOMEM
    if addr:
        addr = PAGE_ALIGN(addr)
        vma = find_vma(mm, addr)
        if end - len >= addr and (vma is None or addr + len <= vm_start_gap(mm, vma)):
            return addr
    return vm_unmapped_area(mm, 0, len, begin, end, 0, pgoff << PAGE_SHIFT)


@kernel(F)
def arch_get_unmapped_area_topdown(mm: mm_struct, filp: file | None, addr0: int, len: int,
                                   pgoff: int, flags: int) -> int:
    """Models arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area_topdown: MAP_FIXED as
    is; a hint if [hint, hint+len) is free; else the highest gap below mmap_base; else
    bottom-up from mmap_legacy_base."""
    if len > mm.task_size:
        return ENOMEM
    if flags & MAP_FIXED:
        return addr0
    addr = addr0
    if not flags & MAP_32BIT:
        if addr:
            addr &= PAGE_MASK
            if mmap_address_hint_valid(mm, addr, len):
                vma = find_vma(mm, addr)
                # vm_start_gap is vm_start but for a stack: called only then
                if vma is None or addr + len <= (vm_start_gap(mm, vma)
                                                 if vma.vm_flags & VM_GROWSDOWN else vma.vm_start):
                    return addr
        high_limit = mm.mmap_base
        if addr > DEFAULT_MAP_WINDOW:
            high_limit += TASK_SIZE_MAX(mm.paging_levels) - DEFAULT_MAP_WINDOW
        addr = vm_unmapped_area(mm, VM_UNMAPPED_AREA_TOPDOWN, len, PAGE_SIZE, high_limit, 0,
                                pgoff << PAGE_SHIFT)
        if addr >= 0 and not addr & _PAGE_OFFSET:
            return addr
    return arch_get_unmapped_area(mm, filp, addr0, len, pgoff, flags)
