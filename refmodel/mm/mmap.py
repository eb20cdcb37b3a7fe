"""The address space: VMA look-up, merge, split, mmap and munmap (mm/mmap.c, 5.10).

Every function keeps its 5.10 name and order of checks and takes the ``mm`` it acts on
(``current->mm`` in 5.10). The VMAs are the sorted ``mm->mmap`` list (vm_next/vm_prev) plus
an ordered index standing in for the augmented rbtree (refmodel.mm.vma_index), so find_vma
and the free-gap search stay logarithmic-ish. Left out (docs/scope.md): locking, the vmacache,
userfaultfd, uprobes, perf events, khugepaged, memory policies (always the default), file
interval trees (i_mmap), hugetlb VMAs, VM_GROWSUP (x86 has none).
"""

from __future__ import annotations

from refmodel.arch.x86.pgtable_types import _PAGE_CHG_MASK, MASK64, vm_get_page_prot
from refmodel.bugs import KernelBug
from refmodel.errno import Errno, is_err_value
from refmodel.fs import FMODE_READ, FMODE_WRITE, file, fput, get_file
from refmodel.kernel.fork import vm_area_alloc, vm_area_dup, vm_area_free
from refmodel.mm.memory import (  # the last two are mm/mmap.c's, modelled there (free_pgtables)
    __remove_shared_vm_struct as __remove_shared_vm_struct,
)
from refmodel.mm.memory import free_pgtables, unmap_vmas
from refmodel.mm.memory import unlink_file_vma as unlink_file_vma
from refmodel.mm.mm_counters import update_hiwater_rss
from refmodel.mm.mm_types import anon_vma as anon_vma_t
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mman import (
    LEGACY_MAP_MASK,
    MAP_ANONYMOUS,
    MAP_DENYWRITE,
    MAP_EXECUTABLE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    OVERCOMMIT_ALWAYS,
    OVERCOMMIT_GUESS,
    OVERCOMMIT_NEVER,
    PAGE_ALIGN,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
    RLIMIT_AS,
    RLIMIT_DATA,
    RLIMIT_MEMLOCK,
    ULONG_MAX,
    calc_vm_flag_bits,
    calc_vm_prot_bits,
)
from refmodel.mm.mman import vm_acct_memory as vm_acct_memory
from refmodel.mm.mman import vm_unacct_memory as vm_unacct_memory
from refmodel.mm.mmu_gather import tlb_finish_mmu, tlb_gather_mmu
from refmodel.mm.rmap import anon_vma_clone, anon_vma_merge, unlink_anon_vmas
from refmodel.mm.shmem import shmem_file_setup_evict
from refmodel.mm.swap import lru_add_drain
from refmodel.mm.vm_flags import (
    VM_ACCOUNT,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_GROWSUP,
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKED_CLEAR_MASK,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NORESERVE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_SPECIAL,
    VM_STACK,
    VM_WRITE,
)
from refmodel.security import security_mmap_addr
from refmodel.trace import kernel

F = "mm/mmap.c"
MM_H = "include/linux/mm.h"
EINVAL = -int(Errno.EINVAL)
ENOMEM = -int(Errno.ENOMEM)
EOVERFLOW = -int(Errno.EOVERFLOW)
EEXIST = -int(Errno.EEXIST)
EPERM = -int(Errno.EPERM)
EAGAIN = -int(Errno.EAGAIN)
EACCES = -int(Errno.EACCES)
EBADF = -int(Errno.EBADF)
ENODEV = -int(Errno.ENODEV)
EOPNOTSUPP = -int(Errno.EOPNOTSUPP)

FIRST_USER_ADDRESS = 0
USER_PGTABLES_CEILING = 0
MAX_LFS_FILESIZE = (1 << 63) - 1
VM_UNMAPPED_AREA_TOPDOWN = 1

# vm_operations_struct tables the model knows, and whether they have ->page_mkwrite.
GENERIC_FILE_VM_OPS = "generic_file_vm_ops"
SHMEM_VM_OPS = "shmem_vm_ops"
_HAS_PAGE_MKWRITE = {GENERIC_FILE_VM_OPS: True, SHMEM_VM_OPS: False}

# Masks of the hot paths, computed once (Python does not fold names into constants).
_EXEC_MASK = VM_EXEC | VM_WRITE | VM_STACK  # is_exec_mapping
_DATA_MASK = VM_WRITE | VM_SHARED | VM_STACK  # is_data_mapping
_WRITE_SHARED = VM_WRITE | VM_SHARED
_ACCT_MASK = VM_NORESERVE | VM_SHARED | VM_WRITE  # accountable_mapping
_NEW_PROT_MASK = ~_PAGE_CHG_MASK & MASK64  # pgprot_modify
_PAGE_OFFSET = PAGE_SIZE - 1  # offset_in_page
_ERR_TOP = ULONG_MAX - 4094  # IS_ERR_VALUE: the top 4095 unsigned longs
_POPULATE_MASK = MAP_POPULATE | MAP_NONBLOCK
_VM_MAY_RWX = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
_NOT_SOFTDIRTY = ~VM_SOFTDIRTY
_KEEP_MAP_FLAGS = ~(MAP_EXECUTABLE | MAP_DENYWRITE)  # what ksys_mmap_pgoff passes on


# --------------------------------------------------------------------------------------------
# Small helpers of include/linux/mm.h and mm/internal.h


def vma_pages(vma: vm_area_struct) -> int:
    return (vma.vm_end - vma.vm_start) >> PAGE_SHIFT


def vm_start_gap(mm: mm_struct, vma: vm_area_struct) -> int:
    """include/linux/mm.h:vm_start_gap: a stack's start minus stack_guard_gap (0 if that
    underflows)."""
    vm_start = vma.vm_start
    if vma.vm_flags & VM_GROWSDOWN:
        vm_start -= mm.vm_globals.stack_guard_gap
        if vm_start < 0:
            vm_start = 0
    return vm_start


def vm_end_gap(vma: vm_area_struct) -> int:
    """include/linux/mm.h:vm_end_gap (x86 has no VM_GROWSUP)."""
    return vma.vm_end


def is_exec_mapping(flags: int) -> bool:
    return (flags & (VM_EXEC | VM_WRITE | VM_STACK)) == VM_EXEC


def is_stack_mapping(flags: int) -> bool:
    return (flags & VM_STACK) == VM_STACK


def is_data_mapping(flags: int) -> bool:
    return (flags & (VM_WRITE | VM_SHARED | VM_STACK)) == VM_WRITE


def rlimit(mm: mm_struct, resource: int) -> int:
    return mm.rlim[resource].rlim_cur


def rlimit_max(mm: mm_struct, resource: int) -> int:
    return mm.rlim[resource].rlim_max


def vma_next(mm: mm_struct, vma: vm_area_struct | None) -> vm_area_struct | None:
    """mm/mmap.c:vma_next: the VMA after ``vma``, or the first one if ``vma`` is None."""
    return mm.mmap if vma is None else vma.vm_next


def vma_is_anonymous(vma: vm_area_struct) -> bool:
    return vma.vm_ops is None


# --------------------------------------------------------------------------------------------
# Protections


@kernel("arch/x86/include/asm/pgtable.h")
def pgprot_modify(oldprot: int, newprot: int) -> int:
    """Models asm/pgtable.h:pgprot_modify: keep the old _PAGE_CHG_MASK bits (cache mode,
    ...), take everything else from the new protection."""
    return (oldprot & _PAGE_CHG_MASK) | (newprot & _NEW_PROT_MASK)


def vm_pgprot_modify(oldprot: int, vm_flags: int) -> int:
    return pgprot_modify(oldprot, vm_get_page_prot(vm_flags))


@kernel(F)
def vma_wants_writenotify(vma: vm_area_struct, vm_page_prot: int) -> bool:
    """Models mm/mmap.c:vma_wants_writenotify: shared writable mappings whose writes must be
    tracked (page_mkwrite, soft-dirty, dirty accounting) map their pages read-only."""
    vm_flags = vma.vm_flags
    if vm_flags & _WRITE_SHARED != _WRITE_SHARED:
        return False
    if vma.vm_ops is not None and _HAS_PAGE_MKWRITE.get(vma.vm_ops, False):
        return True
    if vm_page_prot != vm_pgprot_modify(vm_page_prot, vm_flags):
        return False
    if not vm_flags & VM_SOFTDIRTY:
        return True
    if vm_flags & VM_PFNMAP:
        return False
    # mapping_can_writeback: regular files can, shmem cannot (noop_backing_dev_info)
    f = vma.vm_file
    return f is not None and not f.shmem


@kernel(F)
def vma_set_page_prot(vma: vm_area_struct) -> None:
    """Models mm/mmap.c:vma_set_page_prot: vm_page_prot from vm_flags, without VM_SHARED
    when writes must be notified."""
    vm_flags = vma.vm_flags
    vm_page_prot = pgprot_modify(vma.vm_page_prot, vm_get_page_prot(vm_flags))
    if vma_wants_writenotify(vma, vm_page_prot):
        vm_flags &= ~VM_SHARED
        vm_page_prot = pgprot_modify(vm_page_prot, vm_get_page_prot(vm_flags))
    vma.vm_page_prot = vm_page_prot


# --------------------------------------------------------------------------------------------
# Look-ups


@kernel(F)
def find_vma(mm: mm_struct, addr: int) -> vm_area_struct | None:
    """Models mm/mmap.c:find_vma: the first VMA with addr < vm_end (it may start above
    addr), or None."""
    return mm.mm_rb.find(addr)


@kernel(F)
def find_vma_prev(mm: mm_struct, addr: int
                  ) -> tuple[vm_area_struct | None, vm_area_struct | None]:
    """Models mm/mmap.c:find_vma_prev: find_vma and its predecessor (the last VMA when
    find_vma finds none). Returns (vma, prev)."""
    vma = find_vma(mm, addr)
    if vma is not None:
        return vma, vma.vm_prev
    return None, mm.mm_rb.last()


@kernel(MM_H)
def find_vma_intersection(mm: mm_struct, start_addr: int, end_addr: int
                          ) -> vm_area_struct | None:
    """Models include/linux/mm.h:find_vma_intersection: the first VMA overlapping
    [start_addr, end_addr)."""
    vma = find_vma(mm, start_addr)
    if vma is not None and end_addr <= vma.vm_start:
        return None
    return vma


@kernel(F)
def find_vma_links(mm: mm_struct, addr: int, end: int
                   ) -> tuple[int, vm_area_struct | None]:
    """Models mm/mmap.c:find_vma_links: -ENOMEM if a VMA overlaps [addr, end), else 0 and
    the VMA that will precede a new one at addr (the rb_link/rb_parent slots are the index's
    business). Returns (error, prev)."""
    vma = mm.mm_rb.find(addr)
    if vma is not None and vma.vm_start < end:
        return ENOMEM, None
    prev = vma.vm_prev if vma is not None else mm.mm_rb.last()
    return 0, prev


@kernel(F)
def count_vma_pages_range(mm: mm_struct, addr: int, end: int) -> int:
    """Models mm/mmap.c:count_vma_pages_range: pages of [addr, end) already mapped."""
    vma = find_vma_intersection(mm, addr, end)
    if vma is None:
        return 0
    nr_pages = (min(end, vma.vm_end) - max(addr, vma.vm_start)) >> PAGE_SHIFT
    vma = vma.vm_next
    while vma is not None:
        if vma.vm_start > end:
            break
        nr_pages += (min(end, vma.vm_end) - vma.vm_start) >> PAGE_SHIFT
        vma = vma.vm_next
    return nr_pages


# --------------------------------------------------------------------------------------------
# Linking and unlinking


@kernel("mm/util.c")
def __vma_link_list(mm: mm_struct, vma: vm_area_struct, prev: vm_area_struct | None) -> None:
    """Models mm/util.c:__vma_link_list: insert into the sorted mm->mmap list after prev."""
    vma.vm_prev = prev
    if prev is not None:
        next_ = prev.vm_next
        prev.vm_next = vma
    else:
        next_ = mm.mmap
        mm.mmap = vma
    vma.vm_next = next_
    if next_ is not None:
        next_.vm_prev = vma


@kernel("mm/util.c")
def __vma_unlink_list(mm: mm_struct, vma: vm_area_struct) -> None:
    """Models mm/util.c:__vma_unlink_list."""
    next_ = vma.vm_next
    prev = vma.vm_prev
    if prev is not None:
        prev.vm_next = next_
    else:
        mm.mmap = next_
    if next_ is not None:
        next_.vm_prev = prev


@kernel(F)
def __vma_link_rb(mm: mm_struct, vma: vm_area_struct) -> None:
    """Models mm/mmap.c:__vma_link_rb: into the ordered index; highest_vm_end if last."""
    if vma.vm_next is None:
        mm.highest_vm_end = vm_end_gap(vma)
    mm.mm_rb.insert(vma)


def _vma_link(mm: mm_struct, vma: vm_area_struct, prev: vm_area_struct | None) -> None:
    """mm/mmap.c:__vma_link: list, then tree."""
    __vma_link_list(mm, vma, prev)
    __vma_link_rb(mm, vma)


kernel(F, "__vma_link")(_vma_link)


@kernel(F)
def vma_link(mm: mm_struct, vma: vm_area_struct, prev: vm_area_struct | None) -> None:
    """Models mm/mmap.c:vma_link: list + tree (+ file interval tree, not modelled);
    map_count++."""
    _vma_link(mm, vma, prev)
    __vma_link_file(vma)
    mm.map_count += 1


@kernel(F)
def __vma_link_file(vma: vm_area_struct) -> None:
    """Models mm/mmap.c:__vma_link_file: a file VMA joins its mapping's i_mmap tree."""
    if vma.vm_file is not None:
        vma.vm_file.f_mapping.i_mmap.append(vma)


@kernel(F)
def __insert_vm_struct(mm: mm_struct, vma: vm_area_struct) -> None:
    """Models mm/mmap.c:__insert_vm_struct (split_vma's insert)."""
    err, prev = find_vma_links(mm, vma.vm_start, vma.vm_end)
    if err:
        raise KernelBug("BUG", f"__insert_vm_struct: {vma} overlaps an existing VMA")
    _vma_link(mm, vma, prev)
    mm.map_count += 1


def _vma_unlink(mm: mm_struct, vma: vm_area_struct) -> None:
    """mm/mmap.c:__vma_unlink: out of the tree and the list."""
    mm.mm_rb.remove(vma)
    __vma_unlink_list(mm, vma)


kernel(F, "__vma_unlink")(_vma_unlink)


# --------------------------------------------------------------------------------------------
# vma_adjust and vma_merge


def _vma_adjust(vma: vm_area_struct, start: int, end: int, pgoff: int,
                insert: vm_area_struct | None, expand: vm_area_struct | None) -> int:
    """Models mm/mmap.c:__vma_adjust: set vma's range and pgoff, and move the boundary with,
    or remove, the next VMA (vma_merge's cases 1 and 4-8), or insert split_vma's new half.
    Returns 0 (anon_vma_clone cannot fail in the model)."""
    mm = vma.vm_mm
    assert mm is not None
    next_ = vma.vm_next
    f = vma.vm_file
    adjust_next = 0
    remove_next = 0

    if next_ is not None and insert is None:
        exporter: vm_area_struct | None = None
        importer: vm_area_struct | None = None
        if end >= next_.vm_end:
            if next_ is expand:
                # case 8: remove vma, expand next down over it (5.10 swaps the two)
                remove_next = 3
                vma, next_ = next_, vma
            else:
                # cases 1, 6 (remove_next 2: next and the one after), 7
                remove_next = 1 + (end > next_.vm_end)
                end = next_.vm_end
            exporter = next_
            importer = vma
            if remove_next == 2 and next_.anon_vma is None:
                exporter = next_.vm_next
        elif end > next_.vm_start:
            adjust_next = end - next_.vm_start  # case 5: boundary moves up
            exporter = next_
            importer = vma
        elif end < vma.vm_end:
            adjust_next = -(vma.vm_end - end)  # case 4: boundary moves down
            exporter = vma
            importer = next_
        if (exporter is not None and importer is not None and exporter.anon_vma is not None
                and importer.anon_vma is None):
            importer.anon_vma = exporter.anon_vma
            anon_vma_clone(importer, exporter)

    index = mm.mm_rb
    while True:  # "again:" of 5.10, taken once more in case 6
        if f is not None and insert is not None:
            # in the interval tree before vma's bounds change (5.10 does it first)
            __vma_link_file(insert)
        old_start = vma.vm_start
        start_changed = start != old_start
        end_changed = end != vma.vm_end
        vma.vm_start = start
        vma.vm_end = end
        vma.vm_pgoff = pgoff
        old_next_start = 0
        if adjust_next:
            assert next_ is not None
            old_next_start = next_.vm_start
            next_.vm_start += adjust_next
            next_.vm_pgoff += adjust_next >> PAGE_SHIFT

        if remove_next:
            assert next_ is not None
            _vma_unlink(mm, next_)
            if f is not None:
                __remove_shared_vm_struct(next_)
        if start_changed:
            # split_vma's lower half, inserted below, ends at vma's new start: its insert
            # brings the gap below vma up to date (5.10 skips vma_gap_update(vma) too)
            index.rekey(vma, old_start, insert is None or insert.vm_end != start)
        if adjust_next:
            assert next_ is not None
            index.rekey(next_, old_next_start)
        if not remove_next:
            if insert is not None:
                __insert_vm_struct(mm, insert)
            elif end_changed:
                if next_ is None:
                    mm.highest_vm_end = vm_end_gap(vma)
                elif not adjust_next:
                    index.gap_changed(next_)

        if not remove_next:
            break
        assert next_ is not None
        if f is not None:
            fput(f)
        if next_.anon_vma is not None:
            anon_vma_merge(vma, next_)
        mm.map_count -= 1
        vm_area_free(next_)
        next_ = vma.vm_next if remove_next != 3 else vma
        if remove_next == 2:
            remove_next = 1
            assert next_ is not None
            end = next_.vm_end
            continue
        # 5.10's vma_gap_update(next) here: the index's remove (in _vma_unlink, after vma's
        # new range was set) has already brought the gap below next up to date
        if next_ is None:
            mm.highest_vm_end = vm_end_gap(vma)
        break
    return 0


kernel(F, "__vma_adjust")(_vma_adjust)


@kernel(MM_H)
def vma_adjust(vma: vm_area_struct, start: int, end: int, pgoff: int,
               insert: vm_area_struct | None) -> int:
    """Models include/linux/mm.h:vma_adjust = __vma_adjust(..., expand=NULL)."""
    return _vma_adjust(vma, start, end, pgoff, insert, None)


@kernel(F)
def is_mergeable_vma(vma: vm_area_struct, file: file | None, vm_flags: int) -> bool:
    """Models mm/mmap.c:is_mergeable_vma: same flags but VM_SOFTDIRTY, same file, no
    ->close (none of the model's vm_ops has one), same userfaultfd context (none)."""
    if (vma.vm_flags ^ vm_flags) & _NOT_SOFTDIRTY:
        return False
    return vma.vm_file is file


@kernel(F)
def is_mergeable_anon_vma(anon_vma1: anon_vma_t | None, anon_vma2: anon_vma_t | None,
                          vma: vm_area_struct | None) -> bool:
    """Models mm/mmap.c:is_mergeable_anon_vma. An empty anon_vma_chain is not singular, so
    two VMAs without anon_vma merge by the final equality test."""
    if (anon_vma1 is None or anon_vma2 is None) and (
            vma is None or len(vma.anon_vma_chain) == 1):
        return True
    return anon_vma1 is anon_vma2


@kernel(F)
def can_vma_merge_before(vma: vm_area_struct, vm_flags: int, anon_vma: anon_vma_t | None,
                         file: file | None, vm_pgoff: int) -> bool:
    """Models mm/mmap.c:can_vma_merge_before: the range can join vma at its start."""
    return (is_mergeable_vma(vma, file, vm_flags)
            and is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma)
            and vma.vm_pgoff == vm_pgoff)


@kernel(F)
def can_vma_merge_after(vma: vm_area_struct, vm_flags: int, anon_vma: anon_vma_t | None,
                        file: file | None, vm_pgoff: int) -> bool:
    """Models mm/mmap.c:can_vma_merge_after: the range can join vma at its end."""
    return (is_mergeable_vma(vma, file, vm_flags)
            and is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma)
            and vma.vm_pgoff + ((vma.vm_end - vma.vm_start) >> PAGE_SHIFT) == vm_pgoff)


@kernel(F)
def vma_merge(mm: mm_struct, prev: vm_area_struct | None, addr: int, end: int, vm_flags: int,
              anon_vma: anon_vma_t | None, file: file | None, pgoff: int
              ) -> vm_area_struct | None:
    """Models mm/mmap.c:vma_merge: extend prev and/or next over [addr, end) instead of
    creating a VMA (the eight cases of 5.10's comment). The memory policy and userfaultfd
    context are always the defaults, so mpol_equal and the uffd test always pass."""
    pglen = (end - addr) >> PAGE_SHIFT
    if vm_flags & VM_SPECIAL:
        return None
    next_ = mm.mmap if prev is None else prev.vm_next  # vma_next
    area = next_
    if area is not None and area.vm_end == end:  # cases 6, 7, 8
        next_ = next_.vm_next if next_ is not None else None

    if (prev is not None and prev.vm_end == addr
            and can_vma_merge_after(prev, vm_flags, anon_vma, file, pgoff)):
        if (next_ is not None and end == next_.vm_start
                and can_vma_merge_before(next_, vm_flags, anon_vma, file, pgoff + pglen)
                and is_mergeable_anon_vma(prev.anon_vma, next_.anon_vma, None)):
            err = _vma_adjust(prev, prev.vm_start, next_.vm_end, prev.vm_pgoff, None,
                              prev)  # cases 1, 6
        else:
            err = _vma_adjust(prev, prev.vm_start, end, prev.vm_pgoff, None,
                              prev)  # cases 2, 5, 7
        if err:
            return None
        return prev

    if (next_ is not None and end == next_.vm_start
            and can_vma_merge_before(next_, vm_flags, anon_vma, file, pgoff + pglen)):
        if prev is not None and addr < prev.vm_end:  # case 4
            err = _vma_adjust(prev, prev.vm_start, addr, prev.vm_pgoff, None, next_)
        else:  # cases 3, 8
            assert area is not None
            err = _vma_adjust(area, addr, next_.vm_end, next_.vm_pgoff - pglen, None, next_)
            area = next_
        if err:
            return None
        return area
    return None


# --------------------------------------------------------------------------------------------
# Accounting


@kernel(F)
def may_expand_vm(mm: mm_struct, flags: int, npages: int) -> bool:
    """Models mm/mmap.c:may_expand_vm: RLIMIT_AS, and RLIMIT_DATA for data mappings (with
    the RLIMIT_DATA=0 allowance; the warning is not modelled)."""
    rlim = mm.rlim
    if mm.total_vm + npages > rlim[RLIMIT_AS].rlim_cur >> PAGE_SHIFT:
        return False
    if (flags & _DATA_MASK == VM_WRITE  # is_data_mapping
            and mm.data_vm + npages > rlim[RLIMIT_DATA].rlim_cur >> PAGE_SHIFT):
        if (rlimit(mm, RLIMIT_DATA) == 0
                and mm.data_vm + npages <= rlimit_max(mm, RLIMIT_DATA) >> PAGE_SHIFT):
            return True
        if not mm.vm_globals.ignore_rlimit_data:
            return False
    return True


@kernel(F)
def vm_stat_account(mm: mm_struct, flags: int, npages: int) -> None:
    """Models mm/mmap.c:vm_stat_account: total_vm and one of exec_vm, stack_vm, data_vm."""
    mm.total_vm += npages
    if flags & _EXEC_MASK == VM_EXEC:  # is_exec_mapping
        mm.exec_vm += npages
    elif flags & VM_STACK:  # is_stack_mapping
        mm.stack_vm += npages
    elif flags & _DATA_MASK == VM_WRITE:  # is_data_mapping
        mm.data_vm += npages


@kernel("mm/util.c")
def __vm_enough_memory(mm: mm_struct, pages: int, cap_sys_admin: bool) -> int:
    """Models mm/util.c:__vm_enough_memory. OVERCOMMIT_GUESS refuses only a request larger
    than RAM + swap; OVERCOMMIT_NEVER compares vm_committed_as with the commit limit (the
    admin and user reserves are taken as their usual 8 MiB and 128 MiB caps)."""
    g = mm.vm_globals
    vm_acct_memory(mm.vm_globals, pages)
    if g.sysctl_overcommit_memory == OVERCOMMIT_ALWAYS:
        return 0
    if g.sysctl_overcommit_memory == OVERCOMMIT_GUESS:
        if pages > g.totalram_pages + g.total_swap_pages:
            vm_unacct_memory(mm.vm_globals, pages)
            return ENOMEM
        return 0
    assert g.sysctl_overcommit_memory == OVERCOMMIT_NEVER
    allowed = g.totalram_pages * g.sysctl_overcommit_ratio // 100 + g.total_swap_pages
    if not cap_sys_admin:
        allowed -= min(g.totalram_pages // 32, (8192 << 10) >> PAGE_SHIFT)
    allowed -= min(mm.total_vm // 32, (131072 << 10) >> PAGE_SHIFT)
    if g.vm_committed_as < allowed:
        return 0
    vm_unacct_memory(mm.vm_globals, pages)
    return ENOMEM


@kernel("include/linux/security.h")
def security_vm_enough_memory_mm(mm: mm_struct, pages: int) -> int:
    """Models security/security.c:security_vm_enough_memory_mm with only the capability
    module: cap_vm_enough_memory then __vm_enough_memory (no CAP_SYS_ADMIN)."""
    return __vm_enough_memory(mm, pages, False)


@kernel(F)
def accountable_mapping(file: file | None, vm_flags: int) -> bool:
    """Models mm/mmap.c:accountable_mapping: private writable mappings are charged."""
    return vm_flags & _ACCT_MASK == VM_WRITE


# --------------------------------------------------------------------------------------------
# Free-area search


@kernel(F)
def unmapped_area(mm: mm_struct, length: int, low_limit: int, high_limit: int,
                  align_mask: int, align_offset: int) -> int:
    """Models mm/mmap.c:unmapped_area: the lowest gap in [low_limit, high_limit) that fits."""
    L = length + align_mask
    if L < length or L > ULONG_MAX:
        return ENOMEM
    if high_limit < L:
        return ENOMEM
    hi = high_limit - L
    if low_limit > hi:
        return ENOMEM
    lo = low_limit + L
    ok, vma = mm.mm_rb.search_bottomup(L, lo, hi)
    if not ok:
        return ENOMEM
    if vma is not None:
        p = vma.vm_prev
        gap_start = p.vm_end if p is not None else 0
    else:
        gap_start = mm.highest_vm_end
        if gap_start > hi:
            return ENOMEM
    if gap_start < low_limit:
        gap_start = low_limit
    gap_start += (align_offset - gap_start) & align_mask
    return gap_start


@kernel(F)
def unmapped_area_topdown(mm: mm_struct, length: int, low_limit: int, high_limit: int,
                          align_mask: int, align_offset: int) -> int:
    """Models mm/mmap.c:unmapped_area_topdown: the highest gap in [low_limit, high_limit)
    that fits, the gap above the last VMA first."""
    L = length + align_mask
    if L < length or L > ULONG_MAX:
        return ENOMEM
    gap_end = high_limit
    if gap_end < L:
        return ENOMEM
    hi = gap_end - L
    if low_limit > hi:
        return ENOMEM
    lo = low_limit + L
    if mm.highest_vm_end > hi:
        vma = mm.mm_rb.search_topdown(L, lo, hi)
        if vma is None:
            return ENOMEM
        gap_end = vma.vm_start  # vm_start_gap
        if vma.vm_flags & VM_GROWSDOWN:
            gap_end -= mm.vm_globals.stack_guard_gap
            if gap_end < 0:
                gap_end = 0
        if gap_end > high_limit:
            gap_end = high_limit
    gap_end -= length
    if align_mask:  # (x & 0 is 0: the common unaligned search skips the arithmetic)
        gap_end -= (gap_end - align_offset) & align_mask
    return gap_end


@kernel(F)
def vm_unmapped_area(mm: mm_struct, flags: int, length: int, low_limit: int,
                     high_limit: int, align_mask: int, align_offset: int) -> int:
    """Models mm/mmap.c:vm_unmapped_area (5.10 moved it out of include/linux/mm.h to add its
    tracepoint); struct vm_unmapped_area_info is spelled out as arguments."""
    if flags & VM_UNMAPPED_AREA_TOPDOWN:
        return unmapped_area_topdown(mm, length, low_limit, high_limit, align_mask,
                                     align_offset)
    return unmapped_area(mm, length, low_limit, high_limit, align_mask, align_offset)


@kernel("mm/shmem.c")
def shmem_get_unmapped_area(mm: mm_struct, file: file | None, addr: int, len: int,
                            pgoff: int, flags: int) -> int:
    """Models mm/shmem.c:shmem_get_unmapped_area without huge shmem: the mm's own choice."""
    if len > mm.task_size:
        return ENOMEM
    get_area = mm.get_unmapped_area
    assert get_area is not None
    r: int = get_area(mm, file, addr, len, pgoff, flags)
    return r


@kernel(F)
def get_unmapped_area(mm: mm_struct, file: file | None, addr: int, len: int, pgoff: int,
                      flags: int) -> int:
    """Models mm/mmap.c:get_unmapped_area: pick (or, for MAP_FIXED, validate) the address:
    the mm's, shmem's or a file's get_unmapped_area, then the range, alignment and LSM
    checks, for MAP_FIXED too."""
    if len > mm.task_size:
        return ENOMEM
    get_area = mm.get_unmapped_area
    assert get_area is not None
    if file is not None:
        if file.shmem:
            get_area = shmem_get_unmapped_area
    elif flags & MAP_SHARED:
        pgoff = 0
        get_area = shmem_get_unmapped_area
    addr = get_area(mm, file, addr, len, pgoff, flags)
    if 0 > addr >= -4095 or addr >= _ERR_TOP:  # IS_ERR_VALUE (a valid address: two tests)
        return addr
    if addr > mm.task_size - len:
        return ENOMEM
    if addr & _PAGE_OFFSET:
        return EINVAL
    error = security_mmap_addr(mm, addr)
    return error if error else addr


# --------------------------------------------------------------------------------------------
# mmap


def can_do_mlock(mm: mm_struct) -> bool:
    """mm/mlock.c:can_do_mlock."""
    return rlimit(mm, RLIMIT_MEMLOCK) != 0 or mm.cap_ipc_lock


def mlock_future_check(mm: mm_struct, flags: int, len: int) -> int:
    """mm/mmap.c:mlock_future_check."""
    if flags & VM_LOCKED:
        locked = (len >> PAGE_SHIFT) + mm.locked_vm
        lock_limit = rlimit(mm, RLIMIT_MEMLOCK) >> PAGE_SHIFT
        if locked > lock_limit and not mm.cap_ipc_lock:
            return EAGAIN
    return 0


def file_mmap_ok(file: file, pgoff: int, len: int) -> bool:
    """mm/mmap.c:file_mmap_ok for a regular file (MAX_LFS_FILESIZE)."""
    maxsize = MAX_LFS_FILESIZE
    if len > maxsize:
        return False
    maxsize -= len
    return pgoff <= maxsize >> PAGE_SHIFT


@kernel(F)
def do_mmap(mm: mm_struct, file: file | None, addr: int, len: int, prot: int, flags: int,
            pgoff: int) -> tuple[int, int]:
    """Models mm/mmap.c:do_mmap: every check in 5.10's order, the vm_flags, then
    mmap_region. Returns (address or -errno, populate); populate is the length to fault in
    (VM_LOCKED or MAP_POPULATE without MAP_NONBLOCK), else 0."""
    populate = 0
    if not len:
        return EINVAL, populate
    if prot & PROT_READ and mm.personality & READ_IMPLIES_EXEC:
        if not (file is not None and file.noexec):
            prot |= PROT_EXEC
    if flags & MAP_FIXED_NOREPLACE:
        flags |= MAP_FIXED
    if not flags & MAP_FIXED:
        # mm/mmap.c:round_hint_to_min, in line: a non-zero hint below mmap_min_addr
        # becomes PAGE_ALIGN(mmap_min_addr)
        addr &= PAGE_MASK
        if addr and addr < mm.vm_globals.mmap_min_addr:
            addr = PAGE_ALIGN(mm.vm_globals.mmap_min_addr)
    len = PAGE_ALIGN(len)
    if not len:
        return ENOMEM, populate
    if pgoff + (len >> PAGE_SHIFT) > ULONG_MAX:  # it wraps (pgoff is an unsigned long)
        return EOVERFLOW, populate
    if mm.map_count > mm.vm_globals.sysctl_max_map_count:
        return ENOMEM, populate

    addr = get_unmapped_area(mm, file, addr, len, pgoff, flags)
    if 0 > addr >= -4095 or addr >= _ERR_TOP:  # IS_ERR_VALUE (a valid address: two tests)
        return addr, populate

    if flags & MAP_FIXED_NOREPLACE:
        vma = find_vma(mm, addr)
        if vma is not None and vma.vm_start < addr + len:
            return EEXIST, populate

    pkey = 0  # execute_only_pkey() is negative without OSPKE: pkey 0
    vm_flags = (calc_vm_prot_bits(prot, pkey) | calc_vm_flag_bits(flags) | mm.def_flags
                | _VM_MAY_RWX)

    if flags & MAP_LOCKED and not can_do_mlock(mm):
        return EPERM, populate
    if vm_flags & VM_LOCKED and mlock_future_check(mm, vm_flags, len):
        return EAGAIN, populate

    if file is not None:
        if not file_mmap_ok(file, pgoff, len):
            return EOVERFLOW, populate
        flags_mask = LEGACY_MAP_MASK  # no model file has mmap_supported_flags (MAP_SYNC)
        map_type = flags & MAP_TYPE
        if map_type == MAP_SHARED or map_type == MAP_SHARED_VALIDATE:
            if map_type == MAP_SHARED:
                flags &= LEGACY_MAP_MASK
            if flags & ~flags_mask:
                return EOPNOTSUPP, populate
            if prot & PROT_WRITE and not file.f_mode & FMODE_WRITE:
                return EACCES, populate
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not file.f_mode & FMODE_WRITE:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
            map_type = MAP_PRIVATE  # fall through
        if map_type == MAP_PRIVATE:
            if not file.f_mode & FMODE_READ:
                return EACCES, populate
            if file.noexec:
                if vm_flags & VM_EXEC:
                    return EPERM, populate
                vm_flags &= ~VM_MAYEXEC
            if not file.has_mmap:
                return ENODEV, populate
            if vm_flags & (VM_GROWSDOWN | VM_GROWSUP):
                return EINVAL, populate
        else:
            return EINVAL, populate
    else:
        map_type = flags & MAP_TYPE
        if map_type == MAP_SHARED:
            if vm_flags & (VM_GROWSDOWN | VM_GROWSUP):
                return EINVAL, populate
            pgoff = 0
            vm_flags |= VM_SHARED | VM_MAYSHARE
        elif map_type == MAP_PRIVATE:
            pgoff = addr >> PAGE_SHIFT
        else:
            return EINVAL, populate

    if flags & MAP_NORESERVE:
        if mm.vm_globals.sysctl_overcommit_memory != OVERCOMMIT_NEVER:
            vm_flags |= VM_NORESERVE

    addr = mmap_region(mm, file, addr, len, vm_flags, pgoff)
    if (vm_flags & VM_LOCKED or flags & _POPULATE_MASK == MAP_POPULATE) and not (
            -4095 <= addr < 0 or addr >= _ERR_TOP):
        populate = len
    return addr, populate


@kernel(F)
def munmap_vma_range(mm: mm_struct, start: int, len: int
                     ) -> tuple[int, vm_area_struct | None]:
    """Models mm/mmap.c:munmap_vma_range: unmap whatever overlaps [start, start+len) and
    return (0 or -ENOMEM, the VMA that will precede the new one)."""
    while True:
        err, prev = find_vma_links(mm, start, start + len)
        if not err:
            return 0, prev
        if do_munmap(mm, start, len):
            return ENOMEM, None


@kernel(F)
def mmap_region(mm: mm_struct, file: file | None, addr: int, len: int, vm_flags: int,
                pgoff: int) -> int:
    """Models mm/mmap.c:mmap_region: limits, unmap what MAP_FIXED overlaps, overcommit
    charge, then merge with a neighbour or allocate, fill and link a new VMA."""
    npages = len >> PAGE_SHIFT
    if not may_expand_vm(mm, vm_flags, npages):
        nr_pages = count_vma_pages_range(mm, addr, addr + len)
        if not may_expand_vm(mm, vm_flags, npages - nr_pages):
            return ENOMEM

    err, prev = munmap_vma_range(mm, addr, len)
    if err:
        return ENOMEM

    charged = 0
    if accountable_mapping(file, vm_flags):
        charged = npages
        if security_vm_enough_memory_mm(mm, charged):
            return ENOMEM
        vm_flags |= VM_ACCOUNT

    vma = vma_merge(mm, prev, addr, addr + len, vm_flags, None, file, pgoff)
    if vma is None:
        new = vm_area_alloc(mm)
        new.vm_start = addr
        new.vm_end = addr + len
        new.vm_flags = vm_flags
        new.vm_page_prot = vm_get_page_prot(vm_flags)
        new.vm_pgoff = pgoff
        if file is not None:
            new.vm_file = get_file(file)
            call_mmap(file, new)
            addr = new.vm_start
        elif vm_flags & VM_SHARED:
            error = shmem_zero_setup(new)
            if error:
                vm_area_free(new)  # free_vma:, then unacct_error:
                if charged:
                    vm_unacct_memory(mm.vm_globals, charged)
                return error
        else:
            vma_set_anonymous(new)
        vma_link(mm, new, prev)
        vma = new

    vm_stat_account(mm, vm_flags, npages)
    if vm_flags & VM_LOCKED:
        if vm_flags & VM_SPECIAL or vma.vm_flags & VM_HUGETLB:
            vma.vm_flags &= VM_LOCKED_CLEAR_MASK
        else:
            mm.locked_vm += npages
    vma.vm_flags |= VM_SOFTDIRTY
    vma_set_page_prot(vma)
    return addr


@kernel("include/linux/fs.h")
def call_mmap(file: file, vma: vm_area_struct) -> int:
    """Models include/linux/fs.h:call_mmap: file->f_op->mmap, here generic_file_mmap or
    shmem_mmap, which only install their vm_ops."""
    vma.vm_ops = SHMEM_VM_OPS if file.shmem else GENERIC_FILE_VM_OPS
    return 0


@kernel("mm/shmem.c")
def shmem_zero_setup(vma: vm_area_struct) -> int:
    """Models mm/shmem.c:shmem_zero_setup: a shared anonymous mapping is backed by its own
    new shmem file ("dev/zero"), so it never merges with a neighbour. Creating the object
    charges its size to the overcommit counter unless VM_NORESERVE (shmem_acct_size):
    -ENOMEM if that fails."""
    mm = vma.vm_mm
    assert mm is not None
    size = vma.vm_end - vma.vm_start
    pages = PAGE_ALIGN(size) >> PAGE_SHIFT
    if not vma.vm_flags & VM_NORESERVE:
        if security_vm_enough_memory_mm(mm, pages):
            return ENOMEM
    f = file("dev/zero", size, shmem=True)
    if not vma.vm_flags & VM_NORESERVE:
        f.shmem_acct = pages
        f.acct_to = mm.vm_globals
    assert mm.pgdat is not None
    shmem_file_setup_evict(mm.pgdat, f)  # the inode's ->evict_inode is shmem_evict_inode
    if vma.vm_file is not None:
        fput(vma.vm_file)
    vma.vm_file = f
    vma.vm_ops = SHMEM_VM_OPS
    return 0


@kernel(MM_H)
def vma_set_anonymous(vma: vm_area_struct) -> None:
    vma.vm_ops = None


# --------------------------------------------------------------------------------------------
# Split and unmap


def _split_vma(mm: mm_struct, vma: vm_area_struct, addr: int, new_below: int) -> int:
    """Models mm/mmap.c:__split_vma: cut vma at addr; the new VMA is the lower part if
    new_below, else the upper part. No map_count check."""
    new = vm_area_dup(vma)
    if new_below:
        new.vm_end = addr
    else:
        new.vm_start = addr
        new.vm_pgoff += (addr - vma.vm_start) >> PAGE_SHIFT
    anon_vma_clone(new, vma)
    if new.vm_file is not None:
        get_file(new.vm_file)
    if new_below:
        return vma_adjust(vma, addr, vma.vm_end,
                          vma.vm_pgoff + ((addr - new.vm_start) >> PAGE_SHIFT), new)
    return vma_adjust(vma, vma.vm_start, addr, vma.vm_pgoff, new)


kernel(F, "__split_vma")(_split_vma)


@kernel(F)
def split_vma(mm: mm_struct, vma: vm_area_struct, addr: int, new_below: int) -> int:
    """Models mm/mmap.c:split_vma: -ENOMEM at sysctl_max_map_count, else __split_vma."""
    if mm.map_count >= mm.vm_globals.sysctl_max_map_count:
        return ENOMEM
    return _split_vma(mm, vma, addr, new_below)


@kernel(F)
def detach_vmas_to_be_unmapped(mm: mm_struct, vma: vm_area_struct,
                               prev: vm_area_struct | None, end: int
                               ) -> tuple[bool, list[vm_area_struct]]:
    """Models mm/mmap.c:detach_vmas_to_be_unmapped: take the VMAs from vma up to end off
    the list and the tree. Returns (may the lock be downgraded, the detached VMAs)."""
    detached: list[vm_area_struct] = []
    cur: vm_area_struct | None = vma
    index = mm.mm_rb
    while cur is not None:
        mm.map_count -= 1
        detached.append(cur)
        cur = cur.vm_next
        if cur is None or cur.vm_start >= end:
            break
    index.remove_run(detached)  # vma_rb_erase of each; also vma_gap_update(cur), below
    if prev is not None:
        prev.vm_next = cur
    else:
        mm.mmap = cur
    vma.vm_prev = None
    if cur is not None:
        cur.vm_prev = prev
    else:
        mm.highest_vm_end = vm_end_gap(prev) if prev is not None else 0
    detached[-1].vm_next = None
    if cur is not None and cur.vm_flags & VM_GROWSDOWN:
        return False, detached
    return True, detached


@kernel(F)
def unmap_region(mm: mm_struct, vmas: list[vm_area_struct], prev: vm_area_struct | None,
                 start: int, end: int) -> None:
    """Models mm/mmap.c:unmap_region: drain the LRU pagevecs, zap the range's pages
    (unmap_vmas) and free the page tables nobody else needs (free_pgtables, which also
    unlinks each VMA from rmap and its file, between prev's end and next's start)."""
    next_ = mm.mmap if prev is None else prev.vm_next  # vma_next
    pgdat = mm.pgdat
    if pgdat is not None:
        lru_add_drain(pgdat)
    if pgdat is None or not mm.pgd:
        for v in vmas:  # an mm without page tables (unit tests of the VMA layer alone)
            unlink_anon_vmas(v)
            unlink_file_vma(v)
        return
    tlb = tlb_gather_mmu(pgdat, mm, start, end)
    update_hiwater_rss(mm)
    unmap_vmas(pgdat, tlb, vmas[0] if vmas else None, start, end)
    floor = prev.vm_end if prev is not None else FIRST_USER_ADDRESS
    ceiling = next_.vm_start if next_ is not None else USER_PGTABLES_CEILING
    free_pgtables(pgdat, tlb, vmas[0] if vmas else None, floor, ceiling)
    tlb_finish_mmu(pgdat, tlb, start, end)


@kernel(F)
def remove_vma(vma: vm_area_struct) -> None:
    """Models mm/mmap.c:remove_vma: ->close (none), fput, free."""
    if vma.vm_file is not None:
        fput(vma.vm_file)
    vm_area_free(vma)


@kernel(F)
def remove_vma_list(mm: mm_struct, vmas: list[vm_area_struct]) -> None:
    """Models mm/mmap.c:remove_vma_list: unaccount and free the detached VMAs."""
    nr_accounted = 0
    for vma in vmas:
        nrpages = (vma.vm_end - vma.vm_start) >> PAGE_SHIFT
        flags = vma.vm_flags
        if flags & VM_ACCOUNT:
            nr_accounted += nrpages
        vm_stat_account(mm, flags, -nrpages)
        remove_vma(vma)
    vm_unacct_memory(mm.vm_globals, nr_accounted)


def _do_munmap(mm: mm_struct, start: int, len: int, downgrade: bool) -> int:
    """Models mm/mmap.c:__do_munmap: split at both ends, detach, unmap, free. Returns 1 if
    the lock was (would be) downgraded, 0, or -errno."""
    task_size = mm.task_size  # TASK_SIZE
    if start & _PAGE_OFFSET or start > task_size or len > task_size - start:
        return EINVAL
    len = PAGE_ALIGN(len)
    end = start + len
    if len == 0:
        return EINVAL

    vma = find_vma(mm, start)
    if vma is None:
        return 0
    prev = vma.vm_prev
    if vma.vm_start >= end:
        return 0

    if start > vma.vm_start:
        if end < vma.vm_end and mm.map_count >= mm.vm_globals.sysctl_max_map_count:
            return ENOMEM
        error = _split_vma(mm, vma, start, 0)
        if error:
            return error
        prev = vma

    last = find_vma(mm, end)
    if last is not None and end > last.vm_start:
        error = _split_vma(mm, last, end, 1)
        if error:
            return error
    vma = mm.mmap if prev is None else prev.vm_next  # vma_next
    assert vma is not None

    if mm.locked_vm:
        tmp: vm_area_struct | None = vma
        while tmp is not None and tmp.vm_start < end:
            if tmp.vm_flags & VM_LOCKED:
                mm.locked_vm -= vma_pages(tmp)
            tmp = tmp.vm_next

    ok, detached = detach_vmas_to_be_unmapped(mm, vma, prev, end)
    if not ok:
        downgrade = False
    unmap_region(mm, detached, prev, start, end)
    remove_vma_list(mm, detached)
    return 1 if downgrade else 0


kernel(F, "__do_munmap")(_do_munmap)


@kernel(F)
def do_munmap(mm: mm_struct, start: int, len: int) -> int:
    """Models mm/mmap.c:do_munmap = __do_munmap(..., downgrade=false)."""
    return _do_munmap(mm, start, len, False)


def _vm_munmap(mm: mm_struct, start: int, len: int, downgrade: bool) -> int:
    """Models mm/mmap.c:__vm_munmap: take the lock, __do_munmap, 1 (downgraded) means 0."""
    ret = _do_munmap(mm, start, len, downgrade)
    if ret == 1:
        ret = 0
    return ret


kernel(F, "__vm_munmap")(_vm_munmap)


@kernel(F, "__x64_sys_munmap")
def sys_munmap(mm: mm_struct, addr: int, len: int) -> int:
    """Models mm/mmap.c:SYSCALL_DEFINE2(munmap): __vm_munmap(addr, len, true)."""
    return _vm_munmap(mm, addr, len, True)


@kernel(F)
def ksys_mmap_pgoff(mm: mm_struct, addr: int, len: int, prot: int, flags: int,
                    fd: int | file, pgoff: int) -> int:
    """Models mm/mmap.c:ksys_mmap_pgoff: resolve the file (``fd`` is the model's open file
    or an int with no file behind it: -EBADF), refuse MAP_HUGETLB (no hugetlbfs in the
    model: -EINVAL, see docs/scope.md), drop MAP_EXECUTABLE|MAP_DENYWRITE."""
    f: file | None = None
    if not flags & MAP_ANONYMOUS:
        if not isinstance(fd, file):
            return EBADF
        f = fd
        if flags & MAP_HUGETLB:
            return EINVAL
    elif flags & MAP_HUGETLB:
        return EINVAL
    flags &= _KEEP_MAP_FLAGS
    return _util.vm_mmap_pgoff(mm, f, addr, len, prot, flags, pgoff)



# --------------------------------------------------------------------------------------------
# brk


def check_data_rlimit(rlim: int, new: int, start: int, end_data: int, start_data: int) -> int:
    """include/linux/mm.h:check_data_rlimit: the heap plus the data segment within
    RLIMIT_DATA (-ENOSPC otherwise)."""
    if rlim < ULONG_MAX and (new - start) + (end_data - start_data) > rlim:
        return -int(Errno.ENOSPC)
    return 0


@kernel(F)
def do_brk_flags(mm: mm_struct, addr: int, len: int, flags: int) -> int:
    """Models mm/mmap.c:do_brk_flags: a simplified do_mmap of anonymous data at addr:
    validate the address, unmap what is there, check limits and overcommit, then extend the
    previous VMA or link a new one. Returns 0 or -errno."""
    pgoff = addr >> PAGE_SHIFT
    if flags & ~VM_EXEC:
        return EINVAL
    task_exec = VM_EXEC if mm.personality & READ_IMPLIES_EXEC else 0
    flags |= (VM_READ | VM_WRITE | task_exec | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
              | VM_ACCOUNT | mm.def_flags)  # VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | def_flags

    mapped_addr = get_unmapped_area(mm, None, addr, len, 0, MAP_FIXED)
    if is_err_value(mapped_addr):
        return mapped_addr
    error = mlock_future_check(mm, mm.def_flags, len)
    if error:
        return error
    err, prev = munmap_vma_range(mm, addr, len)
    if err:
        return ENOMEM
    if not may_expand_vm(mm, flags, len >> PAGE_SHIFT):
        return ENOMEM
    if mm.map_count > mm.vm_globals.sysctl_max_map_count:
        return ENOMEM
    if security_vm_enough_memory_mm(mm, len >> PAGE_SHIFT):
        return ENOMEM

    vma = vma_merge(mm, prev, addr, addr + len, flags, None, None, pgoff)
    if vma is None:
        vma = vm_area_alloc(mm)
        vma_set_anonymous(vma)
        vma.vm_start = addr
        vma.vm_end = addr + len
        vma.vm_pgoff = pgoff
        vma.vm_flags = flags
        vma.vm_page_prot = vm_get_page_prot(flags)
        vma_link(mm, vma, prev)
    mm.total_vm += len >> PAGE_SHIFT
    mm.data_vm += len >> PAGE_SHIFT
    if flags & VM_LOCKED:
        mm.locked_vm += len >> PAGE_SHIFT
    vma.vm_flags |= VM_SOFTDIRTY
    return 0


@kernel(F, "__x64_sys_brk")
def sys_brk(mm: mm_struct, brk: int) -> int:
    """Models mm/mmap.c:SYSCALL_DEFINE1(brk) without CONFIG_COMPAT_BRK (as distributions
    build 5.10): the new break, or the old one when the request is refused. mm->start_brk,
    brk, start_data and end_data are what exec set (the model has no ELF loader: a caller
    sets them)."""
    origbrk = mm.brk
    min_brk = mm.start_brk
    if brk < min_brk:
        return origbrk
    if check_data_rlimit(rlimit(mm, RLIMIT_DATA), brk, mm.start_brk, mm.end_data,
                         mm.start_data):
        return origbrk
    newbrk = PAGE_ALIGN(brk)
    oldbrk = PAGE_ALIGN(mm.brk)
    if oldbrk == newbrk:
        mm.brk = brk
        return brk
    if brk <= mm.brk:
        # always allow shrinking; __do_munmap may downgrade the lock (returns 1)
        mm.brk = brk
        ret = _do_munmap(mm, newbrk, oldbrk - newbrk, True)
        if ret < 0:
            mm.brk = origbrk
            return origbrk
        return brk
    next_ = find_vma(mm, oldbrk)
    # unsigned long arithmetic: a break in the last page aligns up to 0, and the length
    # wraps to a huge one that get_unmapped_area refuses (-ENOMEM)
    if next_ is not None and (newbrk + PAGE_SIZE) & ULONG_MAX > vm_start_gap(mm, next_):
        return origbrk
    if do_brk_flags(mm, oldbrk, (newbrk - oldbrk) & ULONG_MAX, 0) < 0:
        return origbrk
    mm.brk = brk
    # populate (mm->def_flags & VM_LOCKED) would fault the new range in: see mm_populate
    return brk


# mm/util.c calls do_mmap and mm/mmap.c calls vm_mmap_pgoff: the module is bound here, at
# the end, so either may be imported first.
from refmodel.mm import util as _util  # noqa: E402
