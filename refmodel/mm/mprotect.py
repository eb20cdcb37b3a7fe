"""mprotect(2) (mm/mprotect.c, 5.10): do_mprotect_pkey, mprotect_fixup, change_protection.

The checks and the VMA walk are 5.10's: a range that runs into a hole fails with -ENOMEM
after the VMAs before the hole were changed, as in 5.10. Protection keys: the CPU has no
OSPKE, so every VMA keeps pkey 0 and pkey_mprotect is not offered.
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable import (
    _pmd_none_or_bad_cleared,
    p4d_addr_end,
    p4d_none_or_clear_bad,
    p4d_offset,
    pgd_addr_end,
    pgd_none_or_clear_bad,
    pgd_offset,
    pmd_addr_end,
    pmd_offset,
    pte_dirty,
    pte_mkwrite,
    pte_modify,
    pte_offset_map,
    pte_present,
    ptep_get_and_clear,
    pud_addr_end,
    pud_none_or_clear_bad,
    pud_offset,
    read_entry,
    set_pte_at,
)
from refmodel.arch.x86.pgtable_types import _PAGE_SOFT_DIRTY, PAGE_SIZE, pgprot_t
from refmodel.errno import Errno
from refmodel.mm.gup import populate_vma_page_range
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mman import (
    PAGE_ALIGN,
    PAGE_MASK,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
    calc_vm_prot_bits,
)
from refmodel.mm.mmap import (
    find_vma,
    may_expand_vm,
    security_vm_enough_memory_mm,
    split_vma,
    vm_stat_account,
    vm_unacct_memory,
    vma_merge,
    vma_set_page_prot,
    vma_wants_writenotify,
)
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.swapops import is_swap_pte, pte_to_swp_entry
from refmodel.mm.vm_flags import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_LOCKED,
    VM_MAYEXEC,
    VM_NORESERVE,
    VM_PKEY_BIT0,
    VM_PKEY_BIT1,
    VM_PKEY_BIT2,
    VM_PKEY_BIT3,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_WRITE,
)
from refmodel.trace import kernel

F = "mm/mprotect.c"
EINVAL = -int(Errno.EINVAL)
ENOMEM = -int(Errno.ENOMEM)
EACCES = -int(Errno.EACCES)
MM_CP_DIRTY_ACCT = 1
VM_FLAGS_CLEAR = VM_PKEY_BIT0 | VM_PKEY_BIT1 | VM_PKEY_BIT2 | VM_PKEY_BIT3
# do_mprotect_pkey's masks, computed once (Python does not fold names into constants)
_PROT_GROWS = PROT_GROWSDOWN | PROT_GROWSUP
_PAGE_OFFSET = ~PAGE_MASK
_PROT_NOT_VALID = ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)  # arch_validate_prot
_KEEP_OLD_FLAGS = ~(VM_READ | VM_WRITE | VM_EXEC | VM_FLAGS_CLEAR)  # ~mask_off_old_flags


@kernel(F)
def change_pte_range(pgdat: pglist_data, vma: vm_area_struct, pmd: int, addr: int, end: int,
                     newprot: pgprot_t, cp_flags: int) -> int:
    """Models mm/mprotect.c:change_pte_range: every present pte (PROT_NONE ones included)
    becomes pte_modify(pte, newprot) (ptep_modify_prot_start / _commit); with
    MM_CP_DIRTY_ACCT a dirty pte is made writable at once. Returns the ptes changed.
    NUMA hinting and userfaultfd write-protection are left out; swap ptes are left as they
    are (not counted), as 5.10 leaves them."""
    mm = vma.vm_mm
    assert mm is not None
    dirty_accountable = cp_flags & MM_CP_DIRTY_ACCT
    pages = 0
    pte = pte_offset_map(pgdat, pmd, addr)
    while True:
        oldpte = read_entry(pgdat, pte)
        if pte_present(oldpte):
            oldpte = ptep_get_and_clear(pgdat, mm, addr, pte)  # ptep_modify_prot_start
            ptent = pte_modify(oldpte, newprot)
            if dirty_accountable and pte_dirty(ptent) and (
                    ptent & _PAGE_SOFT_DIRTY or not vma.vm_flags & VM_SOFTDIRTY):
                ptent = pte_mkwrite(ptent)
            set_pte_at(pgdat, mm, addr, pte, ptent)  # ptep_modify_prot_commit
            pages += 1
        elif is_swap_pte(oldpte):
            # a swap entry stays as it is: only migration and device-private entries (none
            # arise in the model) would be rewritten
            pte_to_swp_entry(oldpte)
        pte += 8
        addr += PAGE_SIZE
        if addr == end:
            return pages


@kernel(F)
def pmd_none_or_clear_bad_unless_trans_huge(pgdat: pglist_data, pmd: int) -> bool:
    """Models mm/mprotect.c:pmd_none_or_clear_bad_unless_trans_huge: an empty pmd, or a bad
    one (cleared), has no ptes to change; a huge pmd (no THP here) would be left to the
    caller."""
    return _pmd_none_or_bad_cleared(pgdat, pmd)


@kernel(F)
def change_pmd_range(pgdat: pglist_data, vma: vm_area_struct, pud: int, addr: int, end: int,
                     newprot: pgprot_t, cp_flags: int) -> int:
    """Models mm/mprotect.c:change_pmd_range (no THP)."""
    pages = 0
    pmd = pmd_offset(pgdat, pud, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        if not pmd_none_or_clear_bad_unless_trans_huge(pgdat, pmd):
            pages += change_pte_range(pgdat, vma, pmd, addr, next_, newprot, cp_flags)
        pmd += 8
        addr = next_
        if addr == end:
            return pages


@kernel(F)
def change_pud_range(pgdat: pglist_data, vma: vm_area_struct, p4d: int, addr: int, end: int,
                     newprot: pgprot_t, cp_flags: int) -> int:
    """Models mm/mprotect.c:change_pud_range."""
    pages = 0
    pud = pud_offset(pgdat, p4d, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        if not pud_none_or_clear_bad(pgdat, pud):
            pages += change_pmd_range(pgdat, vma, pud, addr, next_, newprot, cp_flags)
        pud += 8
        addr = next_
        if addr == end:
            return pages


@kernel(F)
def change_p4d_range(pgdat: pglist_data, vma: vm_area_struct, pgd: int, addr: int, end: int,
                     newprot: pgprot_t, cp_flags: int) -> int:
    """Models mm/mprotect.c:change_p4d_range."""
    pages = 0
    p4d = p4d_offset(pgdat, pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        if not p4d_none_or_clear_bad(pgdat, p4d):
            pages += change_pud_range(pgdat, vma, p4d, addr, next_, newprot, cp_flags)
        p4d += 8
        addr = next_
        if addr == end:
            return pages


@kernel(F)
def change_protection_range(pgdat: pglist_data, vma: vm_area_struct, addr: int, end: int,
                            newprot: pgprot_t, cp_flags: int) -> int:
    """Models mm/mprotect.c:change_protection_range (the TLB flush is not modelled)."""
    mm = vma.vm_mm
    assert mm is not None
    pages = 0
    pgd = pgd_offset(mm, addr)
    while True:
        next_ = pgd_addr_end(addr, end, pgdat.paging_levels)
        if not pgd_none_or_clear_bad(pgdat, pgd):
            pages += change_p4d_range(pgdat, vma, pgd, addr, next_, newprot, cp_flags)
        pgd += 8
        addr = next_
        if addr == end:
            return pages


@kernel(F)
def change_protection(mm: mm_struct, vma: vm_area_struct, start: int, end: int,
                      newprot: pgprot_t, cp_flags: int) -> int:
    """Models mm/mprotect.c:change_protection: rewrite the present PTEs of [start, end)
    with pte_modify(pte, newprot) (making dirty ones writable when MM_CP_DIRTY_ACCT).
    Returns the number of PTEs changed. A private writable VMA's vm_page_prot has no
    _PAGE_RW (PAGE_COPY), so its ptes become read-only and the next write takes a
    write-protect fault (do_wp_page reuses or copies)."""
    pgdat = mm.pgdat
    if pgdat is None or not mm.pgd:
        return 0  # an mm without page tables (unit tests of the VMA layer alone)
    return change_protection_range(pgdat, vma, start, end, newprot, cp_flags)


@kernel(F)
def mprotect_fixup(mm: mm_struct, vma: vm_area_struct, prev: vm_area_struct | None,
                   start: int, end: int, newflags: int
                   ) -> tuple[int, vm_area_struct | None]:
    """Models mm/mprotect.c:mprotect_fixup: charge a private mapping that becomes writable,
    merge [start, end) with a neighbour or split it out (in two or three), then set the new
    flags and protection. Returns (0 or -errno, the new *pprev)."""
    oldflags = vma.vm_flags
    nrpages = (end - start) >> PAGE_SHIFT
    charged = 0
    if newflags == oldflags:
        return 0, vma

    if newflags & VM_WRITE:
        if (not may_expand_vm(mm, newflags, nrpages)
                and may_expand_vm(mm, oldflags, nrpages)):
            return ENOMEM, prev
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            charged = nrpages
            if security_vm_enough_memory_mm(mm, charged):
                return ENOMEM, prev
            newflags |= VM_ACCOUNT

    pgoff = vma.vm_pgoff + ((start - vma.vm_start) >> PAGE_SHIFT)
    merged = vma_merge(mm, prev, start, end, newflags, vma.anon_vma, vma.vm_file, pgoff)
    if merged is not None:
        vma = merged
        prev = merged
    else:
        prev = vma
        if start != vma.vm_start:
            error = split_vma(mm, vma, start, 1)
            if error:
                vm_unacct_memory(mm.vm_globals, charged)
                return error, prev
        if end != vma.vm_end:
            error = split_vma(mm, vma, end, 0)
            if error:
                vm_unacct_memory(mm.vm_globals, charged)
                return error, prev

    vma.vm_flags = newflags
    dirty_accountable = vma_wants_writenotify(vma, vma.vm_page_prot)
    vma_set_page_prot(vma)
    change_protection(mm, vma, start, end, vma.vm_page_prot,
                      MM_CP_DIRTY_ACCT if dirty_accountable else 0)
    # A private locked mapping becoming writable: break COW now, not on a later fault.
    if (oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED) == VM_LOCKED
            and newflags & VM_WRITE and mm.pgdat is not None and mm.pgd):
        populate_vma_page_range(vma, start, end)
    vm_stat_account(mm, oldflags, -nrpages)
    vm_stat_account(mm, newflags, nrpages)
    return 0, prev


@kernel(F)
def do_mprotect_pkey(mm: mm_struct, start: int, len: int, prot: int, pkey: int) -> int:
    """Models mm/mprotect.c:do_mprotect_pkey with 5.10's checks in order, then
    mprotect_fixup on every VMA of the range."""
    grows = prot & _PROT_GROWS
    rier = mm.personality & READ_IMPLIES_EXEC != 0 and prot & PROT_READ != 0
    prot &= ~_PROT_GROWS
    if grows == _PROT_GROWS:
        return EINVAL
    if start & _PAGE_OFFSET:
        return EINVAL
    if not len:
        return 0
    len = PAGE_ALIGN(len)
    end = start + len
    if len == 0 or end <= start or end >= 1 << 64:
        return ENOMEM  # PAGE_ALIGN wrapped, or start + len wrapped past 2**64
    if prot & _PROT_NOT_VALID:
        return EINVAL  # arch_validate_prot
    reqprot = prot
    if pkey != -1:
        return EINVAL  # mm_pkey_is_allocated: no key is ever allocated (no OSPKE)

    vma = find_vma(mm, start)
    if vma is None:
        return ENOMEM
    prev = vma.vm_prev
    if grows & PROT_GROWSDOWN:
        if vma.vm_start >= end:
            return ENOMEM
        start = vma.vm_start
        if not vma.vm_flags & VM_GROWSDOWN:
            return EINVAL
    else:
        if vma.vm_start > start:
            return ENOMEM
        if grows & PROT_GROWSUP:
            return EINVAL  # x86 has no VM_GROWSUP
    if start > vma.vm_start:
        prev = vma

    nstart = start
    while True:
        if rier and vma.vm_flags & VM_MAYEXEC:
            prot |= PROT_EXEC
        newflags = calc_vm_prot_bits(prot, 0)
        newflags |= vma.vm_flags & _KEEP_OLD_FLAGS
        if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
            return EACCES
        tmp = vma.vm_end
        if tmp > end:
            tmp = end
        error, prev = mprotect_fixup(mm, vma, prev, nstart, tmp, newflags)
        if error:
            return error
        assert prev is not None
        nstart = tmp
        if nstart < prev.vm_end:
            nstart = prev.vm_end
        if nstart >= end:
            return 0
        nxt = prev.vm_next
        if nxt is None or nxt.vm_start != nstart:
            return ENOMEM
        vma = nxt
        prot = reqprot


@kernel(F, "__x64_sys_mprotect")
def sys_mprotect(mm: mm_struct, start: int, len: int, prot: int) -> int:
    """Models mm/mprotect.c:SYSCALL_DEFINE3(mprotect) = do_mprotect_pkey(..., -1)."""
    return do_mprotect_pkey(mm, start, len, prot, -1)

