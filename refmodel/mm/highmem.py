"""User page allocation and copying helpers (include/linux/highmem.h,
arch/x86/include/asm/page.h, 5.10). x86-64 has no highmem: kmap is page_address, and the
copies are of the model's page bytes (an untouched page reads as zeros).
"""

from __future__ import annotations

from refmodel.mm import gfp as G
from refmodel.mm.mempolicy import alloc_page_vma
from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.page_alloc import clear_highpage as clear_highpage  # modelled there
from refmodel.mm.types import Page
from refmodel.trace import kernel

F = "include/linux/highmem.h"
_GFP_HIGHUSER_ZERO = G.GFP_HIGHUSER | G.__GFP_ZERO


@kernel("arch/x86/include/asm/page.h")
def __alloc_zeroed_user_highpage(pgdat: pglist_data, movableflags: int, vma: vm_area_struct,
                                 vaddr: int) -> Page | None:
    """Models the x86 macro __alloc_zeroed_user_highpage (__HAVE_ARCH_ALLOC_ZEROED_USER_
    HIGHPAGE): alloc_page_vma(GFP_HIGHUSER | __GFP_ZERO | movableflags, vma, vaddr)."""
    return alloc_page_vma(pgdat, _GFP_HIGHUSER_ZERO | movableflags, vma, vaddr)


@kernel(F)
def alloc_zeroed_user_highpage_movable(pgdat: pglist_data, vma: vm_area_struct,
                                       vaddr: int) -> Page | None:
    """Models include/linux/highmem.h:alloc_zeroed_user_highpage_movable."""
    return __alloc_zeroed_user_highpage(pgdat, G.__GFP_MOVABLE, vma, vaddr)


@kernel(F)
def copy_user_highpage(pgdat: pglist_data, to: Page, from_: Page, vaddr: int,
                       vma: vm_area_struct) -> None:
    """Models include/linux/highmem.h:copy_user_highpage: the 4096 bytes of ``from_``."""
    data = pgdat.page_data.get(from_.pfn)
    if data is None:
        pgdat.page_data.pop(to.pfn, None)
    else:
        pgdat.page_data[to.pfn] = bytearray(data)


