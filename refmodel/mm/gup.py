"""Faulting a range in from the kernel side (mm/gup.c, 5.10): __mm_populate →
populate_vma_page_range → __get_user_pages → follow_page_mask / faultin_page →
handle_mm_fault. Used by MAP_POPULATE and MAP_LOCKED mmaps (mm_populate) and by mprotect
making a locked private mapping writable.

Only the populate use is modelled: no pages are returned or pinned (pages == NULL, no
FOLL_GET/FOLL_PIN), and FOLL_MLOCK's mlock_vma_page (PG_mlocked, the unevictable LRU) is left
out with the rest of mlock (docs/scope.md).
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable import pgd_offset, read_entry
from refmodel.arch.x86.pgtable_types import (
    _PAGE_DIRTY,
    _PAGE_KNL_ERRATUM_MASK,
    _PAGE_PRESENT,
    _PAGE_PSE,
    _PAGE_RW,
    PAGE_SHIFT,
    PAGE_SIZE,
    PTE_PFN_MASK,
)
from refmodel.bugs import KernelBug
from refmodel.errno import Errno
from refmodel.mm.memory_fault import handle_mm_fault
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.vm_fault import (
    FAULT_FLAG_ALLOW_RETRY,
    FAULT_FLAG_KILLABLE,
    FAULT_FLAG_WRITE,
    VM_FAULT_ERROR,
    VM_FAULT_OOM,
    VM_FAULT_WRITE,
)
from refmodel.mm.vm_flags import (
    VM_EXEC,
    VM_IO,
    VM_LOCKONFAULT,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from refmodel.trace import kernel

F = "mm/gup.c"
FOLL_WRITE = 0x01
FOLL_TOUCH = 0x02
FOLL_GET = 0x04
FOLL_FORCE = 0x10
FOLL_POPULATE = 0x40
FOLL_MLOCK = 0x1000
FOLL_COW = 0x4000
ENOMEM = -int(Errno.ENOMEM)
EFAULT = -int(Errno.EFAULT)
ENOENT = -int(Errno.ENOENT)


def _pte_of(mm: mm_struct, address: int) -> int:
    """The pte mapping ``address`` (0 if a level is missing): follow_page_mask's walk
    (follow_p4d_mask → follow_pud_mask → follow_pmd_mask → follow_page_pte), no huge
    entries."""
    pgdat = mm.pgdat
    assert pgdat is not None
    entry = read_entry(pgdat, pgd_offset(mm, address))
    shifts = (39, 30, 21, 12) if mm.paging_levels == 5 else (30, 21, 12)
    for shift in shifts:
        if not entry & _PAGE_PRESENT or entry & _PAGE_PSE:
            return 0
        entry = read_entry(pgdat, (entry & PTE_PFN_MASK) | (((address >> shift) & 511) << 3))
    return entry


@kernel(F)
def follow_page_mask(vma: vm_area_struct, address: int, foll_flags: int) -> bool:
    """Models mm/gup.c:follow_page_mask for populate: is there a present pte that serves
    the access (writable, or dirty after a COW break with FOLL_FORCE|FOLL_COW, when
    FOLL_WRITE)? The zero page serves reads."""
    mm = vma.vm_mm
    assert mm is not None
    pte = _pte_of(mm, address)
    if not pte & _PAGE_PRESENT or not pte & ~_PAGE_KNL_ERRATUM_MASK:
        return False
    if foll_flags & FOLL_WRITE and not pte & _PAGE_RW:
        # can_follow_write_pte
        return bool(foll_flags & FOLL_FORCE and foll_flags & FOLL_COW and pte & _PAGE_DIRTY)
    return True


@kernel(F)
def faultin_page(vma: vm_area_struct, address: int, foll_flags: int) -> tuple[int, int]:
    """Models mm/gup.c:faultin_page: handle_mm_fault with FAULT_FLAG_WRITE for FOLL_WRITE.
    Returns (0 or -errno, the new foll_flags: FOLL_COW once a write fault broke COW in a
    VMA that is not writable)."""
    if foll_flags & (FOLL_POPULATE | FOLL_MLOCK) == FOLL_MLOCK:
        return ENOENT, foll_flags
    fault_flags = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE
    if foll_flags & FOLL_WRITE:
        fault_flags |= FAULT_FLAG_WRITE
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    ret = handle_mm_fault(mm.pgdat, vma, address, fault_flags, None)
    if ret & VM_FAULT_ERROR:
        return (ENOMEM if ret & VM_FAULT_OOM else EFAULT), foll_flags  # vm_fault_to_errno
    if ret & VM_FAULT_WRITE and not vma.vm_flags & VM_WRITE:
        foll_flags |= FOLL_COW
    return 0, foll_flags


@kernel(F)
def check_vma_flags(vma: vm_area_struct, gup_flags: int) -> int:
    """Models mm/gup.c:check_vma_flags: may this access be made in this VMA at all? A
    write needs VM_WRITE (or FOLL_FORCE on a COW mapping), a read VM_READ (or FOLL_FORCE
    and VM_MAYREAD). 0 or -EFAULT."""
    vm_flags = vma.vm_flags
    if vm_flags & (VM_IO | VM_PFNMAP):
        return EFAULT
    if gup_flags & FOLL_WRITE:
        if not vm_flags & VM_WRITE:
            if not gup_flags & FOLL_FORCE:
                return EFAULT
            if vm_flags & (VM_SHARED | VM_MAYWRITE) != VM_MAYWRITE:  # !is_cow_mapping
                return EFAULT
    elif not vm_flags & VM_READ:
        if not gup_flags & FOLL_FORCE:
            return EFAULT
        if not vm_flags & VM_MAYREAD:
            return EFAULT
    return 0


@kernel(F)
def __get_user_pages(mm: mm_struct, vma: vm_area_struct, start: int, nr_pages: int,
                     gup_flags: int) -> int:
    """Models mm/gup.c:__get_user_pages within one VMA and without a pages array: check
    the VMA allows the access, then fault each page in until follow_page_mask finds it.
    The number of pages done, or -errno if none was."""
    ret = check_vma_flags(vma, gup_flags)
    if ret:
        return ret
    done = 0
    foll_flags = gup_flags
    while nr_pages:
        tries = 0
        while not follow_page_mask(vma, start, foll_flags):
            ret, foll_flags = faultin_page(vma, start, foll_flags)
            if ret:
                return done if done else ret
            tries += 1
            if tries > 3:  # 5.10 would retry forever: a model bug, made loud
                raise KernelBug("model: __get_user_pages makes no progress",
                                f"{start:#x} in {vma}, gup_flags {foll_flags:#x}")
        start += PAGE_SIZE
        done += 1
        nr_pages -= 1
    return done


@kernel(F)
def populate_vma_page_range(vma: vm_area_struct, start: int, end: int) -> int:
    """Models mm/gup.c:populate_vma_page_range: write faults for private writable VMAs (to
    break COW now), read faults otherwise; FOLL_FORCE for any accessible VMA."""
    mm = vma.vm_mm
    assert mm is not None
    nr_pages = (end - start) >> PAGE_SHIFT
    gup_flags = FOLL_TOUCH | FOLL_POPULATE | FOLL_MLOCK
    if vma.vm_flags & VM_LOCKONFAULT:
        gup_flags &= ~FOLL_POPULATE
    if vma.vm_flags & (VM_WRITE | VM_SHARED) == VM_WRITE:
        gup_flags |= FOLL_WRITE
    if vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC):
        gup_flags |= FOLL_FORCE
    return __get_user_pages(mm, vma, start, nr_pages, gup_flags)


@kernel(F)
def __mm_populate(mm: mm_struct, start: int, len: int, ignore_errors: int) -> int:
    """Models mm/gup.c:__mm_populate: populate every VMA piece of [start, start + len)
    (VM_IO / VM_PFNMAP skipped). 0 or -errno."""
    end = start + len
    nstart = start
    vma: vm_area_struct | None = None
    ret = 0
    while nstart < end:
        if vma is None:
            vma = _mmap.find_vma(mm, nstart)
        elif nstart >= vma.vm_end:
            vma = vma.vm_next
        if vma is None or vma.vm_start >= end:
            break
        nend = min(end, vma.vm_end)
        if vma.vm_flags & (VM_IO | VM_PFNMAP):
            nstart = nend
            continue
        if nstart < vma.vm_start:
            nstart = vma.vm_start
        ret = populate_vma_page_range(vma, nstart, nend)
        if ret < 0:
            if ignore_errors:
                ret = 0
                nstart = nend
                continue
            break
        nend = nstart + ret * PAGE_SIZE
        ret = 0
        nstart = nend
    return ret


# mm/mmap.py → mm/util.py → this module: mm/mmap.c's find_vma through the module object.
from refmodel.mm import mmap as _mmap  # noqa: E402
