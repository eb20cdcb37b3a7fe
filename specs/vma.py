"""Address-space invariants (include/linux/mm_types.h, mm/mmap.c, mm/mprotect.c).

Each predicate reads one ``mm_struct`` and returns the violations it finds. They hold after
every mmap, munmap and mprotect of 5.10, with one documented exception: when split_vma fails
at sysctl_max_map_count in the middle of an mprotect, 5.10 leaves two mergeable halves
(``mergeable_neighbours_are_merged`` then reports them, as it should: that is 5.10's state,
and the state machine stays far below the limit).

The expected vm_page_prot is computed here from protection_map (refmodel.arch.x86
.pgtable_types, the page-table part's table) and the write-notify rule of
vma_wants_writenotify, not by calling the model's own vma_set_page_prot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from refmodel.arch.x86.pgtable_types import (
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    PTE_PFN_MASK,
    protection_map,
)
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.vm_flags import (
    VM_EXEC,
    VM_LOCKED,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_SPECIAL,
    VM_STACK,
    VM_WRITE,
)
from refmodel.specs import Violation

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


def vmas(mm: mm_struct) -> list[vm_area_struct]:
    """The VMAs in mm->mmap list order."""
    out: list[vm_area_struct] = []
    v = mm.mmap
    while v is not None and len(out) <= mm.map_count + 1:
        out.append(v)
        v = v.vm_next
    return out


def _name(v: vm_area_struct) -> str:
    return f"VMA [{v.vm_start:#x}, {v.vm_end:#x})"


def vma_list_and_tree_agree(mm: mm_struct,
                            lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """mm->mmap, vm_next/vm_prev and the ordered index hold the same VMAs in the same
    order, and every VMA points back to its mm."""
    out = []
    lst = vmas(mm) if lst is None else lst
    tree = mm.mm_rb.snapshot()
    if len(lst) != len(tree) or any(a is not b for a, b in zip(lst, tree, strict=False)):
        out.append(Violation("vma_list_and_tree_agree",
                             f"list has {len(lst)} VMAs, tree {len(tree)}, or their order "
                             "differs"))
    prev = None
    for v in lst:
        if v.vm_prev is not prev:
            out.append(Violation("vma_list_and_tree_agree", f"{_name(v)}: vm_prev is wrong"))
        if v.vm_mm is not mm:
            out.append(Violation("vma_list_and_tree_agree", f"{_name(v)}: vm_mm is not this mm"))
        prev = v
    for v in lst:
        if mm.mm_rb.find(v.vm_start) is not v or mm.mm_rb.find(v.vm_end - 1) is not v:
            out.append(Violation("vma_list_and_tree_agree",
                                 f"find_vma does not find {_name(v)}"))
    return out


def free_gap_index_consistent(mm: mm_struct) -> list[Violation]:
    """The ordered index's free-gap summaries are right (validate_mm_rb's
    rb_subtree_gap check, for the model's stand-in of the rbtree)."""
    return [Violation("free_gap_index_consistent", msg) for msg in mm.mm_rb.validate()]


def vma_page_aligned_and_nonempty(mm: mm_struct,
                                  lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """Every VMA starts and ends on a page boundary and is at least a page long."""
    out = []
    for v in (vmas(mm) if lst is None else lst):
        if v.vm_start % PAGE_SIZE or v.vm_end % PAGE_SIZE:
            out.append(Violation("vma_page_aligned", f"{_name(v)} is not page aligned"))
        if v.vm_end <= v.vm_start:
            out.append(Violation("vma_nonempty", f"{_name(v)} is empty or inverted"))
    return out


def vmas_sorted_and_disjoint(mm: mm_struct,
                             lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """VMAs are in address order and no two share an address."""
    out = []
    for a, b in itertools.pairwise(vmas(mm) if lst is None else lst):
        if b.vm_start < a.vm_end:
            out.append(Violation("no_vma_overlap", f"{_name(a)} and {_name(b)} overlap or are "
                                                   "out of order"))
    return out


def vmas_inside_user_range(mm: mm_struct,
                           lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """Every VMA lies in [mmap_min_addr, TASK_SIZE) (from 0 for a task with
    CAP_SYS_RAWIO, which may map below mmap_min_addr)."""
    out = []
    low = 0 if mm.cap_sys_rawio else mm.vm_globals.mmap_min_addr
    for v in (vmas(mm) if lst is None else lst):
        if v.vm_start < low or v.vm_end > mm.task_size:
            out.append(Violation("vma_inside_user_range",
                                 f"{_name(v)} leaves [{low:#x}, {mm.task_size:#x})"))
    return out


def map_count_matches(mm: mm_struct,
                      lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """mm->map_count is the number of VMAs; highest_vm_end is the last VMA's end."""
    out = []
    lst = vmas(mm) if lst is None else lst
    if mm.map_count != len(lst):
        out.append(Violation("map_count_matches",
                             f"map_count {mm.map_count} but {len(lst)} VMAs"))
    want = lst[-1].vm_end if lst else 0
    if mm.highest_vm_end != want:
        out.append(Violation("highest_vm_end_matches",
                             f"highest_vm_end {mm.highest_vm_end:#x}, last VMA ends {want:#x}"))
    return out


def accounting_matches(mm: mm_struct,
                       lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """total_vm, exec_vm, stack_vm, data_vm and locked_vm are the page counts of the VMAs
    that vm_stat_account classifies that way."""
    total = exec_ = stack = data = locked = 0
    for v in (vmas(mm) if lst is None else lst):
        n = (v.vm_end - v.vm_start) >> PAGE_SHIFT
        f = v.vm_flags
        total += n
        if (f & (VM_EXEC | VM_WRITE | VM_STACK)) == VM_EXEC:
            exec_ += n
        elif f & VM_STACK:
            stack += n
        elif (f & (VM_WRITE | VM_SHARED | VM_STACK)) == VM_WRITE:
            data += n
        if f & VM_LOCKED:
            locked += n
    got = (mm.total_vm, mm.exec_vm, mm.stack_vm, mm.data_vm, mm.locked_vm)
    want = (total, exec_, stack, data, locked)
    if got != want:
        return [Violation("accounting_matches",
                          f"(total_vm, exec_vm, stack_vm, data_vm, locked_vm) = {got}, "
                          f"the VMAs say {want}")]
    return []


def expected_page_prot(v: vm_area_struct) -> int:
    """protection_map[READ|WRITE|EXEC|SHARED], with VM_SHARED dropped for a shared
    writable mapping whose writes must be notified (a regular file: page_mkwrite)."""
    f = v.vm_flags
    writenotify = ((f & (VM_WRITE | VM_SHARED)) == (VM_WRITE | VM_SHARED)
                   and v.vm_file is not None and not v.vm_file.shmem)
    if writenotify:
        f &= ~VM_SHARED
    return protection_map[f & (VM_READ | VM_WRITE | VM_EXEC | VM_SHARED)]


def vm_page_prot_agrees_with_flags(mm: mm_struct,
                                   lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """Every VMA's vm_page_prot is what vm_flags call for (pkey 0, default caching)."""
    out = []
    for v in (vmas(mm) if lst is None else lst):
        want = expected_page_prot(v)
        if v.vm_page_prot != want:
            out.append(Violation("vm_page_prot_agrees",
                                 f"{_name(v)} flags {v.vm_flags:#x}: vm_page_prot "
                                 f"{v.vm_page_prot:#x}, expected {want:#x}"))
    return out


def would_merge(a: vm_area_struct, b: vm_area_struct) -> bool:
    """Would 5.10's vma_merge join b onto a whatever the operation (adjacent, same flags
    but soft-dirty, same file, contiguous pgoff, no anon_vma on either side, not
    VM_SPECIAL)?"""
    return (a.vm_end == b.vm_start
            and not a.vm_flags & VM_SPECIAL
            and not (a.vm_flags ^ b.vm_flags) & ~VM_SOFTDIRTY
            and a.vm_file is b.vm_file
            and a.vm_pgoff + ((a.vm_end - a.vm_start) >> PAGE_SHIFT) == b.vm_pgoff
            # is_mergeable_anon_vma: when only one side has an anon_vma, whether 5.10
            # merges depends on which side the operation changed (the other side's
            # anon_vma_chain must be singular, and an empty one is not); and a later fault
            # may give the other side the same anon_vma (find_mergeable_anon_vma) without
            # merging anything. Only neighbours with no anon_vma at all must be merged.
            and a.anon_vma is None and b.anon_vma is None)


def mergeable_neighbours_are_merged(mm: mm_struct,
                                    lst: list[vm_area_struct] | None = None) -> list[Violation]:
    """No two neighbouring VMAs are ones 5.10 would have merged."""
    out = []
    for a, b in itertools.pairwise(vmas(mm) if lst is None else lst):
        if would_merge(a, b):
            out.append(Violation("mergeable_neighbours_merged",
                                 f"{_name(a)} and {_name(b)} should be one VMA"))
    return out


def _user_ptes(mm: mm_struct) -> list[tuple[int, int]]:
    """Every present leaf entry (address, value) under the user half of mm->pgd, read
    straight from the page-table pages."""
    pgdat = mm.pgdat
    if pgdat is None or not mm.pgd:
        return []
    tables = pgdat.pgtables
    levels = mm.paging_levels
    shifts = [48, 39, 30, 21, 12] if levels == 5 else [39, 30, 21, 12]
    out: list[tuple[int, int]] = []

    def walk(pfn: int, depth: int, base: int) -> None:
        entries = tables.get(pfn, {})
        shift = shifts[depth]
        limit = 256 if depth == 0 else 512
        for idx, val in sorted(entries.items()):
            if idx >= limit:
                continue
            addr = base | (idx << shift)
            leaf = depth == len(shifts) - 1
            if leaf:
                if val & (_PAGE_PRESENT | _PAGE_PROTNONE):  # pte_present
                    out.append((addr, val))
            elif val & _PAGE_PRESENT:
                if val & _PAGE_PSE and depth >= len(shifts) - 3:
                    out.append((addr, val))
                else:
                    walk((val & PTE_PFN_MASK) >> PAGE_SHIFT, depth + 1, addr)

    walk(mm.pgd, 0, 0)
    return out


def no_present_pte_outside_or_above_vma(
        mm: mm_struct, ptes: list[tuple[int, int]] | None = None) -> list[Violation]:
    """Every present user PTE lies inside a VMA and grants no more than it: writable only
    in a VM_WRITE VMA, executable only in a VM_EXEC one, present only if the VMA allows
    some access. (``ptes``: what _user_ptes(mm) returns, if the caller has it.)"""
    out = []
    find = mm.mm_rb.find
    v: vm_area_struct | None = None
    start = end = 0
    for addr, pte in _user_ptes(mm) if ptes is None else ptes:
        if not start <= addr < end:  # the ptes come in address order: few look-ups
            v = find(addr)
            start, end = (v.vm_start, v.vm_end) if v is not None else (0, 0)
        if v is None or v.vm_start > addr:
            out.append(Violation("no_pte_outside_vma", f"present PTE at {addr:#x} in no VMA"))
            continue
        f = v.vm_flags
        if not pte & _PAGE_PRESENT:
            continue  # PROT_NONE: the hardware grants nothing
        if pte & _PAGE_RW and not f & VM_WRITE:
            out.append(Violation("pte_not_above_vma", f"writable PTE at {addr:#x} in {_name(v)}"))
        if not pte & _PAGE_NX and not f & VM_EXEC:
            out.append(Violation("pte_not_above_vma",
                                 f"executable PTE at {addr:#x} in {_name(v)}"))
        if not f & (VM_READ | VM_WRITE | VM_EXEC):
            out.append(Violation("pte_not_above_vma",
                                 f"present PTE at {addr:#x} in PROT_NONE {_name(v)}"))
    return out


VMA_INVARIANTS: tuple[Callable[[mm_struct], list[Violation]], ...] = (
    vma_list_and_tree_agree,
    free_gap_index_consistent,
    vma_page_aligned_and_nonempty,
    vmas_sorted_and_disjoint,
    vmas_inside_user_range,
    map_count_matches,
    accounting_matches,
    vm_page_prot_agrees_with_flags,
    mergeable_neighbours_are_merged,
    no_present_pte_outside_or_above_vma,
)


def check_vma(mm: mm_struct, ptes: list[tuple[int, int]] | None = None) -> list[Violation]:
    """Every address-space invariant, over one read of the VMA list (``ptes``: the mm's
    present user ptes as _user_ptes lists them, if the caller has walked the tables)."""
    lst = vmas(mm)
    return (vma_list_and_tree_agree(mm, lst) + free_gap_index_consistent(mm)
            + vma_page_aligned_and_nonempty(mm, lst) + vmas_sorted_and_disjoint(mm, lst)
            + vmas_inside_user_range(mm, lst) + map_count_matches(mm, lst)
            + accounting_matches(mm, lst) + vm_page_prot_agrees_with_flags(mm, lst)
            + mergeable_neighbours_are_merged(mm, lst)
            + no_present_pte_outside_or_above_vma(mm, ptes))


def vma_state(mm: mm_struct) -> tuple[object, ...]:
    """A comparable snapshot of everything a syscall may change in the address space (to
    check that a failed call changed nothing)."""
    return (
        tuple((v.vm_start, v.vm_end, v.vm_flags, v.vm_page_prot, v.vm_pgoff, id(v.vm_file),
               id(v.anon_vma), v.vm_ops) for v in vmas(mm)),
        mm.map_count, mm.highest_vm_end, mm.total_vm, mm.exec_vm, mm.stack_vm, mm.data_vm,
        mm.locked_vm, mm.pgtables_bytes, mm.vm_globals.vm_committed_as,
    )
