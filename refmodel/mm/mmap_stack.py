"""Stack growth on a fault below a VM_GROWSDOWN VMA (mm/mmap.c, 5.10): expand_stack →
expand_downwards → acct_stack_growth. (A module of its own only so that mm/mmap.py, which
the fault path does not need, stays as the address-space layer left it.) x86 has no
VM_GROWSUP, so expand_stack is expand_downwards.
"""

from __future__ import annotations

from refmodel.errno import Errno
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mman import PAGE_MASK, PAGE_SHIFT, RLIMIT_MEMLOCK, RLIMIT_STACK
from refmodel.mm.mmap import may_expand_vm, security_vm_enough_memory_mm, vm_stat_account
from refmodel.mm.rmap import anon_vma_prepare
from refmodel.mm.vm_flags import VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_READ, VM_WRITE
from refmodel.trace import kernel

F = "mm/mmap.c"
ENOMEM = -int(Errno.ENOMEM)
EPERM = -int(Errno.EPERM)


def vma_is_accessible(vma: vm_area_struct) -> bool:
    """include/linux/mm.h:vma_is_accessible."""
    return bool(vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC))


@kernel(F)
def acct_stack_growth(mm: mm_struct, vma: vm_area_struct, size: int, grow: int) -> int:
    """Models mm/mmap.c:acct_stack_growth: address-space limit, RLIMIT_STACK, the mlock
    limit for a VM_LOCKED stack, then the overcommit charge. 0 or -ENOMEM."""
    if not may_expand_vm(mm, vma.vm_flags, grow):
        return ENOMEM
    if size > mm.rlim[RLIMIT_STACK].rlim_cur:
        return ENOMEM
    if vma.vm_flags & VM_LOCKED:
        locked = mm.locked_vm + grow
        limit = mm.rlim[RLIMIT_MEMLOCK].rlim_cur >> PAGE_SHIFT
        if locked > limit and not mm.cap_ipc_lock:
            return ENOMEM
    if security_vm_enough_memory_mm(mm, grow):
        return ENOMEM
    return 0


@kernel(F)
def expand_downwards(vma: vm_area_struct, address: int) -> int:
    """Models mm/mmap.c:expand_downwards: move vm_start (and vm_pgoff) down to the page of
    ``address``, keeping stack_guard_gap above an accessible non-stack VMA below. 0 or
    -errno."""
    mm = vma.vm_mm
    assert mm is not None
    address &= PAGE_MASK
    if address < mm.vm_globals.mmap_min_addr:
        return EPERM
    prev = vma.vm_prev
    if prev is not None and not prev.vm_flags & VM_GROWSDOWN and vma_is_accessible(prev):
        if address - prev.vm_end < mm.vm_globals.stack_guard_gap:
            return ENOMEM
    if anon_vma_prepare(vma):
        return ENOMEM
    error = 0
    if address < vma.vm_start:
        size = vma.vm_end - address
        grow = (vma.vm_start - address) >> PAGE_SHIFT
        error = ENOMEM
        if grow <= vma.vm_pgoff:
            error = acct_stack_growth(mm, vma, size, grow)
            if not error:
                if vma.vm_flags & VM_LOCKED:
                    mm.locked_vm += grow
                vm_stat_account(mm, vma.vm_flags, grow)
                old_start = vma.vm_start
                vma.vm_start = address
                vma.vm_pgoff -= grow
                mm.mm_rb.rekey(vma, old_start)  # vma_gap_update
    return error


@kernel(F)
def expand_stack(vma: vm_area_struct, address: int) -> int:
    """Models mm/mmap.c:expand_stack (no VM_GROWSUP on x86): expand_downwards."""
    return expand_downwards(vma, address)
