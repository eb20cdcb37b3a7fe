"""A deliberately broken variant of vma.py: it never merges adjacent VMAs.

``refmodel conform --target vma`` shows two adjacent private mappings that Linux turns into
one VMA within a few steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vma import VmaManager


class NoMergeVmaManager(VmaManager):
    MERGES = False
