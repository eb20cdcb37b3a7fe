"""The anon_vma links VMA merging and splitting maintain (mm/rmap.c, 5.10), minimally.

Only what decides merges is modelled: which anon_vma a VMA points to and how many entries
its anon_vma_chain has. The interval trees, anon_vma locking and the reverse walk itself come
with the fault and reclaim parts of the model.
"""

from __future__ import annotations

from refmodel.bugs import KernelBug
from refmodel.mm.mm_types import vm_area_struct
from refmodel.trace import kernel

F = "mm/rmap.c"


@kernel(F)
def anon_vma_clone(dst: vm_area_struct, src: vm_area_struct) -> int:
    """Models mm/rmap.c:anon_vma_clone: link dst to every anon_vma src is linked to.
    Returns 0 (the allocation of chain entries cannot fail in the model)."""
    for av in src.anon_vma_chain:
        if not any(x is av for x in dst.anon_vma_chain):
            dst.anon_vma_chain.append(av)
    return 0


@kernel(F)
def unlink_anon_vmas(vma: vm_area_struct) -> None:
    """Models mm/rmap.c:unlink_anon_vmas: drop every chain entry of vma."""
    vma.anon_vma_chain.clear()
    vma.anon_vma = None


@kernel(F)
def anon_vma_merge(vma: vm_area_struct, next: vm_area_struct) -> None:
    """Models include/linux/rmap.h:anon_vma_merge: next is merged into vma, which must
    already share its anon_vma."""
    if vma.anon_vma is not next.anon_vma:
        raise KernelBug("VM_BUG_ON_VMA(vma->anon_vma != next->anon_vma)",
                        f"{vma} merging {next}")
    unlink_anon_vmas(next)
