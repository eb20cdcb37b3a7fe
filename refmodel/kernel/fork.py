"""VMA allocation and address-space duplication (kernel/fork.c, 5.10): vm_area_alloc,
vm_area_dup, vm_area_free; dup_mm → dup_mmap (→ copy_page_range); mmput → __mmput
(→ exit_mmap) → mmdrop → __mmdrop (→ pgd_free).

5.10 takes VMAs and mms from slabs; the model creates plain objects (the slab allocator is a
later part of the model) and never fails those allocations. mm/mmap.py imports this module
for the VMA allocators, so mm/mmap.c's functions are reached through the module object bound
at the end of this file.
"""

from __future__ import annotations

import dataclasses

from refmodel.arch.x86.pgtable import pgd_alloc, pgd_free
from refmodel.bugs import KernelBug
from refmodel.errno import Errno
from refmodel.fs import get_file
from refmodel.mm.memory import copy_page_range, get_mm_rss, mm_pgtables_bytes_init
from refmodel.mm.mm_types import MMF_INIT_MASK, mm_struct, vm_area_struct
from refmodel.mm.rmap import anon_vma_fork
from refmodel.mm.vm_flags import VM_ACCOUNT, VM_DONTCOPY, VM_LOCKED, VM_LOCKONFAULT, VM_WIPEONFORK
from refmodel.trace import kernel

F = "kernel/fork.c"


@kernel(F)
def vm_area_alloc(mm: mm_struct) -> vm_area_struct:
    """Models kernel/fork.c:vm_area_alloc: a zeroed VMA with vma_init(vma, mm)."""
    return vm_area_struct(vm_mm=mm)


@kernel(F)
def vm_area_dup(orig: vm_area_struct) -> vm_area_struct:
    """Models kernel/fork.c:vm_area_dup: a copy of orig with an empty anon_vma_chain and no
    list links."""
    # (positional, in field order: split_vma runs this on every munmap or mprotect that cuts)
    return vm_area_struct(orig.vm_start, orig.vm_end, None, None, orig.vm_page_prot,
                          orig.vm_flags, orig.vm_mm, [], orig.anon_vma, orig.vm_ops,
                          orig.vm_pgoff, orig.vm_file)


@kernel(F)
def vm_area_free(vma: vm_area_struct) -> None:
    """Models kernel/fork.c:vm_area_free: back to the slab. The model unlinks the object so
    a stale pointer to it is noticed."""
    vma.vm_next = None
    vma.vm_prev = None
    vma.vm_mm = None


# --------------------------------------------------------------------------------------------
# fork: dup_mm → dup_mmap


@kernel(F)
def mm_init(mm: mm_struct, oldmm: mm_struct | None) -> mm_struct | None:
    """Models kernel/fork.c:mm_init: a copied mm with no VMAs, no rss, no locked pages,
    one user and one reference, def_flags dropped (VM_INIT_DEF_MASK keeps none of the
    model's flags), and its own pgd (mm_alloc_pgd → pgd_alloc). None if that fails."""
    mm.mmap = None
    mm.mm_rb = type(mm.mm_rb)()
    mm.mm_users = 1
    mm.mm_count = 1
    mm.map_count = 0
    mm.locked_vm = 0
    mm.rss_stat = [0, 0, 0, 0]
    mm.def_flags = 0
    mm.flags &= MMF_INIT_MASK  # the OOM bits are not inherited
    mm_pgtables_bytes_init(mm)
    assert mm.pgdat is not None
    if pgd_alloc(mm.pgdat, mm) is None:  # mm_alloc_pgd
        return None
    return mm


@kernel(F)
def dup_mmap(mm: mm_struct, oldmm: mm_struct) -> int:
    """Models kernel/fork.c:dup_mmap: every VMA but VM_DONTCOPY ones is duplicated
    (vm_area_dup), gets its anon_vma (anon_vma_fork), loses VM_LOCKED, takes a file
    reference, is linked in order, and has its page tables copied (copy_page_range, which
    skips VMAs a fault can refill). A VM_ACCOUNT VMA charges the overcommit counter again.
    Before each VMA it copies (VM_DONTCOPY ones are skipped first) a fatal signal pending
    for current (the OOM killer chose the forking task) stops the copy with -EINTR.
    0, -EINTR or -ENOMEM."""
    assert oldmm.pgdat is not None
    fatal_signal_pending = oldmm.pgdat.hooks.fatal_signal_pending
    mm.total_vm = oldmm.total_vm
    mm.data_vm = oldmm.data_vm
    mm.exec_vm = oldmm.exec_vm
    mm.stack_vm = oldmm.stack_vm
    prev: vm_area_struct | None = None
    retval = 0
    mpnt = oldmm.mmap
    while mpnt is not None:
        if mpnt.vm_flags & VM_DONTCOPY:
            _mmap.vm_stat_account(mm, mpnt.vm_flags, -_mmap.vma_pages(mpnt))
            mpnt = mpnt.vm_next
            continue
        charge = 0
        # don't copy many VMAs once current has been OOM-killed, for example
        if fatal_signal_pending is not None and fatal_signal_pending():
            return -int(Errno.EINTR)
        if mpnt.vm_flags & VM_ACCOUNT:
            length = _mmap.vma_pages(mpnt)
            if _mmap.security_vm_enough_memory_mm(oldmm, length):
                _mmap.vm_unacct_memory(mm.vm_globals, charge)  # fail_nomem (charge is 0)
                return -int(Errno.ENOMEM)
            charge = length
        tmp = vm_area_dup(mpnt)
        tmp.vm_mm = mm
        if tmp.vm_flags & VM_WIPEONFORK:
            tmp.anon_vma = None
        elif anon_vma_fork(tmp, mpnt):
            vm_area_free(tmp)  # fail_nomem_anon_vma_fork → fail_nomem_policy
            _mmap.vm_unacct_memory(mm.vm_globals, charge)
            return -int(Errno.ENOMEM)
        tmp.vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT)
        if tmp.vm_file is not None:
            get_file(tmp.vm_file)
            # vma_interval_tree_insert_after(tmp, mpnt, &mapping->i_mmap), in line as in
            # 5.10: tmp comes right after mpnt in the tree's order
            i_mmap = tmp.vm_file.f_mapping.i_mmap
            pos = next((i for i, v in enumerate(i_mmap) if v is mpnt), len(i_mmap) - 1)
            i_mmap.insert(pos + 1, tmp)
        tmp.vm_prev = prev
        tmp.vm_next = None
        if prev is None:
            mm.mmap = tmp
        else:
            prev.vm_next = tmp
        prev = tmp
        _mmap.__vma_link_rb(mm, tmp)
        mm.map_count += 1
        if not tmp.vm_flags & VM_WIPEONFORK:
            retval = copy_page_range(mm.pgdat, tmp, mpnt) if mm.pgdat is not None else 0
        if retval:
            return retval
        mpnt = mpnt.vm_next
    return retval


@kernel(F)
def dup_mm(oldmm: mm_struct) -> mm_struct | None:
    """Models kernel/fork.c:dup_mm: allocate_mm, memcpy of the parent's mm, mm_init,
    dup_mmap; hiwater_rss from the copied rss. None on failure (the half-built mm is
    mmput)."""
    mm = dataclasses.replace(oldmm, rlim=[dataclasses.replace(r) for r in oldmm.rlim])
    if mm_init(mm, oldmm) is None:
        return None
    err = dup_mmap(mm, oldmm)
    if err:
        mmput(mm)
        return None
    mm.hiwater_rss = get_mm_rss(mm)
    return mm


# --------------------------------------------------------------------------------------------
# Dropping an mm: mmput (users) and mmdrop (references)


@kernel(F)
def check_mm(mm: mm_struct) -> None:
    """Models kernel/fork.c:check_mm: every rss counter and pgtables_bytes must be zero
    when an mm is freed (5.10 prints "BUG: Bad rss-counter state"; the model raises)."""
    for i, x in enumerate(mm.rss_stat):
        if x:
            names = ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES")
            raise KernelBug("check_mm: Bad rss-counter state", f"type {names[i]} val {x}")
    if mm.pgtables_bytes:
        raise KernelBug("check_mm: non-zero pgtables_bytes on freeing mm",
                        str(mm.pgtables_bytes))


@kernel(F)
def mm_free_pgd(mm: mm_struct) -> None:
    """Models kernel/fork.c:mm_free_pgd: pgd_free(mm, mm->pgd)."""
    assert mm.pgdat is not None
    pgd_free(mm.pgdat, mm, mm.pgd)
    mm.pgd = 0


def _mmdrop(mm: mm_struct) -> None:
    """Models kernel/fork.c:__mmdrop: free the pgd, check the counters, free the mm."""
    mm_free_pgd(mm)
    check_mm(mm)


kernel(F, "__mmdrop")(_mmdrop)


@kernel("include/linux/sched/mm.h")
def mmgrab(mm: mm_struct) -> None:
    mm.mm_count += 1


@kernel("include/linux/sched/mm.h")
def mmdrop(mm: mm_struct) -> None:
    """Models include/linux/sched/mm.h:mmdrop: the last reference frees the mm."""
    mm.mm_count -= 1
    if mm.mm_count == 0:
        _mmdrop(mm)


def _mmput(mm: mm_struct) -> None:
    """Models kernel/fork.c:__mmput: exit_mmap, then mmdrop."""
    _mmap_exit.exit_mmap(mm)
    mmdrop(mm)


kernel(F, "__mmput")(_mmput)


@kernel(F)
def mmput(mm: mm_struct) -> None:
    """Models kernel/fork.c:mmput: the last user tears the address space down."""
    mm.mm_users -= 1
    if mm.mm_users == 0:
        _mmput(mm)


# mm/mmap.py imports this module (vm_area_alloc & co.): bind mm/mmap.c's modules last.
from refmodel.mm import mmap as _mmap  # noqa: E402
from refmodel.mm import mmap_exit as _mmap_exit  # noqa: E402
