"""The default memory policy's allocation entry points (mm/mempolicy.c, 5.10).

With one node and the default policy, every policy decision is "this node"; what remains is
the call chain itself, which the traces show as 5.10 has it.
"""

from __future__ import annotations

from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_alloc import __alloc_pages_nodemask
from refmodel.mm.types import Page
from refmodel.trace import kernel


@kernel("mm/mempolicy.c")
def alloc_pages_current(pgdat: pglist_data, gfp: int, order: int) -> Page | None:
    """Models mm/mempolicy.c:alloc_pages_current: the default policy allocates on the local
    node with no nodemask (interleave and bind policies are out of scope)."""
    return __alloc_pages_nodemask(pgdat, gfp, order)
