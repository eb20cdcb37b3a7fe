"""Faulting a range in from the kernel side (mm/gup.c, 5.10): __mm_populate →
populate_vma_page_range → __get_user_pages → follow_page_mask / faultin_page →
handle_mm_fault. Used by MAP_POPULATE and MAP_LOCKED mmaps (mm_populate) and by mprotect
making a locked private mapping writable.

Only the populate use is modelled: no pages are returned or pinned (pages == NULL, no
FOLL_GET/FOLL_PIN). follow_page_pte's FOLL_TOUCH (mark_page_accessed) and FOLL_MLOCK
(mlock_vma_page in a VM_LOCKED VMA) are modelled.
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable import (
    p4d_bad,
    p4d_none,
    p4d_offset,
    pgd_bad,
    pgd_none,
    pgd_offset,
    pmd_bad,
    pmd_none,
    pmd_offset,
    pmd_present,
    pte_dirty,
    pte_none,
    pte_pfn,
    pte_present,
    pte_write,
    pud_bad,
    pud_none,
    pud_offset,
    read_entry,
)
from refmodel.arch.x86.pgtable_types import PAGE_SHIFT, PAGE_SIZE
from refmodel.bugs import KernelBug
from refmodel.errno import Errno
from refmodel.mm.memory import is_cow_mapping, is_zero_pfn, pte_offset_map_lock, vm_normal_page
from refmodel.mm.memory_fault import handle_mm_fault
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mmzone import pfn_to_page
from refmodel.mm.page_writeback import set_page_dirty
from refmodel.mm.rmap import mlock_vma_page
from refmodel.mm.swap import lru_add_drain, mark_page_accessed
from refmodel.mm.types import Page, PageFlags
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
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_MAYREAD,
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
EINTR = -int(Errno.EINTR)
PG_dirty = int(PageFlags.PG_dirty)


@kernel(F)
def no_page_table(vma: vm_area_struct, flags: int) -> Page | None:
    """Models mm/gup.c:no_page_table: nothing is mapped here, fault it in (None). FOLL_DUMP
    (core dumps, its -EFAULT) is not modelled."""
    return None


@kernel(F)
def follow_page_pte(vma: vm_area_struct, address: int, pmd: int, flags: int) -> Page | None:
    """Models mm/gup.c:follow_page_pte for an order-0 page: the page behind a present pte
    that serves the access (pte_write, or pte_dirty after a COW break with
    FOLL_FORCE|FOLL_COW, when FOLL_WRITE), the zero page for reads; None to fault. FOLL_TOUCH
    dirties the page for a write whose pte is clean and marks it accessed; FOLL_MLOCK in a
    VM_LOCKED VMA mlocks a page that has a mapping (not the zero page). No FOLL_GET/FOLL_PIN,
    no migration entries, no FOLL_NUMA (populate always sets FOLL_FORCE), no devmap."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    pgdat = mm.pgdat
    if pmd_bad(read_entry(pgdat, pmd)):
        return no_page_table(vma, flags)
    ptep = pte_offset_map_lock(pgdat, mm, pmd, address)
    pte = read_entry(pgdat, ptep)
    if not pte_present(pte):
        # a swap entry is faulted in; an empty pte is no page table's business either
        if not pte_none(pte):
            return None
        return no_page_table(vma, flags)
    # can_follow_write_pte (inline)
    if flags & FOLL_WRITE and not (
            pte_write(pte) or (flags & FOLL_FORCE and flags & FOLL_COW and pte_dirty(pte))):
        return None
    page = vm_normal_page(pgdat, vma, address, pte)
    if page is None:
        if not is_zero_pfn(pte_pfn(pte)):
            raise KernelBug("model: follow_pfn_pte", f"special pte {pte:#x} at {address:#x}")
        page = pfn_to_page(pgdat, pte_pfn(pte))  # pte_page
    if flags & FOLL_TOUCH:
        if flags & FOLL_WRITE and not pte_dirty(pte) and not page.flags & PG_dirty:
            set_page_dirty(page)
        mark_page_accessed(pgdat, page)
    # (no compound pages, and trylock_page cannot fail on one CPU)
    if flags & FOLL_MLOCK and vma.vm_flags & VM_LOCKED and page.mapping is not None:
        lru_add_drain(pgdat)
        mlock_vma_page(pgdat, page)
    return page


@kernel(F)
def follow_pmd_mask(vma: vm_area_struct, address: int, pud: int, flags: int) -> Page | None:
    """Models mm/gup.c:follow_pmd_mask without huge pmds (no THP, no hugetlb)."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    pmd = pmd_offset(mm.pgdat, pud, address)
    pmdval = read_entry(mm.pgdat, pmd)
    if pmd_none(pmdval):
        return no_page_table(vma, flags)
    if not pmd_present(pmdval):  # (no FOLL_MIGRATION)
        return no_page_table(vma, flags)
    return follow_page_pte(vma, address, pmd, flags)


@kernel(F)
def follow_pud_mask(vma: vm_area_struct, address: int, p4d: int, flags: int) -> Page | None:
    """Models mm/gup.c:follow_pud_mask without huge puds."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    pud = pud_offset(mm.pgdat, p4d, address)
    pudval = read_entry(mm.pgdat, pud)
    if pud_none(pudval) or pud_bad(pudval):
        return no_page_table(vma, flags)
    return follow_pmd_mask(vma, address, pud, flags)


@kernel(F)
def follow_p4d_mask(vma: vm_area_struct, address: int, pgd: int, flags: int) -> Page | None:
    """Models mm/gup.c:follow_p4d_mask (with 4-level paging the p4d is the pgd entry)."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    p4d = p4d_offset(mm.pgdat, pgd, address)
    p4dval = read_entry(mm.pgdat, p4d)
    if p4d_none(p4dval) or p4d_bad(p4dval):
        return no_page_table(vma, flags)
    return follow_pud_mask(vma, address, p4d, flags)


@kernel(F)
def follow_page_mask(vma: vm_area_struct, address: int, foll_flags: int) -> Page | None:
    """Models mm/gup.c:follow_page_mask: walk mm's tables down to the pte (follow_p4d_mask
    → follow_pud_mask → follow_pmd_mask → follow_page_pte); the page that serves the
    access, or None when it must be faulted in. No huge entries, no hugepd."""
    mm = vma.vm_mm
    assert mm is not None and mm.pgdat is not None
    pgd = pgd_offset(mm, address)
    pgdval = read_entry(mm.pgdat, pgd)
    if pgd_none(pgdval, mm.paging_levels) or pgd_bad(pgdval, mm.paging_levels):
        return no_page_table(vma, foll_flags)
    return follow_p4d_mask(vma, address, pgd, foll_flags)


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
            if not is_cow_mapping(vm_flags):
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
    the VMA allows the access, then, per page, fault it in until follow_page_mask finds
    it. A fatal signal pending for current stops the loop (-EINTR), checked before every
    follow_page_mask; -ENOENT from faultin_page (VM_LOCKONFAULT: not populated) moves on
    to the next page. foll_flags start from gup_flags again for every page. The number of
    pages done, or -errno if none was."""
    ret = check_vma_flags(vma, gup_flags)
    if ret:
        return ret
    assert mm.pgdat is not None
    fatal_signal_pending = mm.pgdat.hooks.fatal_signal_pending
    done = 0
    while nr_pages:
        foll_flags = gup_flags
        tries = 0
        while True:
            # a pending SIGKILL: no more faulting and allocating
            if fatal_signal_pending is not None and fatal_signal_pending():
                return done if done else EINTR
            if follow_page_mask(vma, start, foll_flags) is not None:
                break
            ret, foll_flags = faultin_page(vma, start, foll_flags)
            if ret == ENOENT:
                break  # next_page
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
