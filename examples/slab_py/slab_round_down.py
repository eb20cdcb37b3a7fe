"""A deliberately broken variant of slab.py: kmalloc picks its size class by rounding the
size down to a power of two (kmalloc(17) gets a 16-byte object).

``refmodel conform --target slab`` shows the object too small for what was asked: its
ksize is below the size, and two such objects overlap.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slab import SlabAllocator


class RoundDownSlabAllocator(SlabAllocator):
    def kmalloc_index(self, size: int) -> int:
        return max(3, size.bit_length() - 1)
