"""mm/util.c (5.10): vm_mmap_pgoff, the common entry of mmap(2) into do_mmap, which
populates MAP_POPULATE / MAP_LOCKED mappings (mm_populate, include/linux/mm.h)."""

from __future__ import annotations

from refmodel.fs import file
from refmodel.mm import gup as _gup
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmap import do_mmap
from refmodel.security import security_mmap_file
from refmodel.trace import kernel

F = "mm/util.c"


@kernel("include/linux/mm.h")
def mm_populate(mm: mm_struct, addr: int, len: int) -> None:
    """Models include/linux/mm.h:mm_populate = __mm_populate(addr, len, 1) (mm/gup.c):
    fault the range in, ignoring errors."""
    _gup.__mm_populate(mm, addr, len, 1)


@kernel(F)
def vm_mmap_pgoff(mm: mm_struct, file: file | None, addr: int, len: int, prot: int, flag: int,
                  pgoff: int) -> int:
    """Models mm/util.c:vm_mmap_pgoff: security_mmap_file, do_mmap under the mmap lock
    (not modelled), then populate what do_mmap asked for."""
    ret = security_mmap_file(file, prot, flag)
    if not ret:
        ret, populate = do_mmap(mm, file, addr, len, prot, flag, pgoff)
        if populate:
            mm_populate(mm, ret, populate)
    return ret
