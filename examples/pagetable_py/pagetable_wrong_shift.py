"""A deliberately broken variant of pagetable.py: the pmd index uses shift 20, not 21.

Addresses that differ only in bit 29 (or 20) then share page-table slots; ``refmodel
conform --target pagetable`` finds two such addresses within a few steps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pagetable import PageTable


class WrongShiftPageTable(PageTable):
    SHIFTS: ClassVar[dict[int, tuple[int, ...]]] = {4: (39, 30, 20, 12),
                                                    5: (48, 39, 30, 20, 12)}
