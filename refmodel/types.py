"""Address-space types, so that a signature says which space it speaks."""

from typing import NewType

Pfn = NewType("Pfn", int)
"""A page frame number: physical address >> PAGE_SHIFT."""

PhysAddr = NewType("PhysAddr", int)
"""A physical address."""

VirtAddr = NewType("VirtAddr", int)
"""A virtual address (user or kernel)."""
