"""VMA allocation (kernel/fork.c, 5.10): vm_area_alloc, vm_area_dup, vm_area_free.

5.10 takes VMAs from the vm_area_cachep slab; the model creates plain objects (the slab
allocator is a later part of the model) and never fails an allocation here.
"""

from __future__ import annotations

from refmodel.mm.mm_types import mm_struct, vm_area_struct
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
    return vm_area_struct(
        vm_start=orig.vm_start, vm_end=orig.vm_end, vm_page_prot=orig.vm_page_prot,
        vm_flags=orig.vm_flags, vm_mm=orig.vm_mm, anon_vma=orig.anon_vma, vm_ops=orig.vm_ops,
        vm_pgoff=orig.vm_pgoff, vm_file=orig.vm_file)


@kernel(F)
def vm_area_free(vma: vm_area_struct) -> None:
    """Models kernel/fork.c:vm_area_free: back to the slab. The model unlinks the object so
    a stale pointer to it is noticed."""
    vma.vm_next = None
    vma.vm_prev = None
    vma.vm_mm = None
