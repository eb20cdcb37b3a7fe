"""struct vm_fault and the fault codes (include/linux/mm.h, include/linux/mm_types.h, 5.10).

``vm_fault_t`` values are the VM_FAULT_* bits; ``FAULT_FLAG_*`` describe the fault. The
page-table pointers in a vm_fault (``pmd``, ``pte``) are entry addresses as everywhere in
the model (refmodel.arch.x86.pgtable); ``pgdat`` is model-only (5.10 reaches the allocator
and the page tables through globals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.types import Page

if TYPE_CHECKING:
    from refmodel.mm.mmzone import pglist_data

# enum vm_fault_reason (include/linux/mm_types.h)
VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_WRITE = 0x000008
VM_FAULT_HWPOISON = 0x000010
VM_FAULT_HWPOISON_LARGE = 0x000020
VM_FAULT_SIGSEGV = 0x000040
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_LOCKED = 0x000200
VM_FAULT_RETRY = 0x000400
VM_FAULT_FALLBACK = 0x000800
VM_FAULT_DONE_COW = 0x001000
VM_FAULT_NEEDDSYNC = 0x002000
VM_FAULT_ERROR = (VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON
                  | VM_FAULT_HWPOISON_LARGE | VM_FAULT_FALLBACK)

# FAULT_FLAG_* (include/linux/mm.h)
FAULT_FLAG_WRITE = 0x01
FAULT_FLAG_MKWRITE = 0x02
FAULT_FLAG_ALLOW_RETRY = 0x04
FAULT_FLAG_RETRY_NOWAIT = 0x08
FAULT_FLAG_KILLABLE = 0x10
FAULT_FLAG_TRIED = 0x20
FAULT_FLAG_USER = 0x40
FAULT_FLAG_REMOTE = 0x80
FAULT_FLAG_INSTRUCTION = 0x100
FAULT_FLAG_INTERRUPTIBLE = 0x200
FAULT_FLAG_DEFAULT = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | FAULT_FLAG_INTERRUPTIBLE


@dataclass(slots=True, eq=False)
class vm_fault:
    """struct vm_fault: what one fault is about and what the handlers found so far."""

    pgdat: pglist_data
    vma: vm_area_struct
    address: int  # page-aligned, as __handle_mm_fault sets it
    flags: int
    pgoff: int
    gfp_mask: int
    real_address: int = 0  # model: the faulting byte (5.10 passes it separately)
    pmd: int = 0
    pud: int = 0
    orig_pte: int = 0
    pte: int | None = None  # the pte entry's address, or None (no pte table or pte_none)
    cow_page: Page | None = None
    page: Page | None = None
    prealloc_pte: Page | None = None  # a pte table allocated ahead (__do_fault, fault-around)
