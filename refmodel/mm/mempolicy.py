"""The default memory policy's allocation entry points (mm/mempolicy.c, 5.10).

With one node and the default policy, every policy decision is "this node"; what remains is
the call chain itself, which the traces show as 5.10 has it.
"""

from __future__ import annotations

from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_alloc import __alloc_pages_nodemask
from refmodel.mm.types import Page
from refmodel.trace import kernel


@kernel("mm/mempolicy.c")
def alloc_pages_current(pgdat: pglist_data, gfp: int, order: int) -> Page | None:
    """Models mm/mempolicy.c:alloc_pages_current: the default policy allocates on the local
    node with no nodemask (interleave and bind policies are out of scope)."""
    return __alloc_pages_nodemask(pgdat, gfp, order)


@kernel("mm/mempolicy.c")
def alloc_pages_vma(pgdat: pglist_data, gfp: int, order: int, vma: vm_area_struct,
                    addr: int, node: int = 0, hugepage: bool = False) -> Page | None:
    """Models mm/mempolicy.c:alloc_pages_vma with the default policy (no VMA or task
    policy, one node): __alloc_pages_nodemask on the local node, no nodemask. This is where
    the seed's "alloc_pages_vma in mm/memory.c" really lives; it returns a page and maps
    nothing (the fault handler sets the pte)."""
    return __alloc_pages_nodemask(pgdat, gfp, order)


@kernel("include/linux/gfp.h")
def alloc_page_vma(pgdat: pglist_data, gfp: int, vma: vm_area_struct,
                   addr: int) -> Page | None:
    """Models the include/linux/gfp.h macro alloc_page_vma = alloc_pages_vma(gfp, 0, vma,
    addr, numa_node_id(), false)."""
    return alloc_pages_vma(pgdat, gfp, 0, vma, addr, 0, False)
