"""A deliberately broken variant of slab.py: kfree and kmem_cache_free do not notice that an
object is already free, and push it on its slab's free list a second time.

``refmodel conform --target slab`` shows the double free being accepted (and, had it gone
on, the same object handed out twice).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slab import SlabAllocator


class DoubleFreeSlabAllocator(SlabAllocator):
    CHECK_DOUBLE_FREE = False
