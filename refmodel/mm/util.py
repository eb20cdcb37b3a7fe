"""mm/util.c (5.10): vm_mmap_pgoff, the common entry of mmap(2) into do_mmap."""

from __future__ import annotations

from refmodel.fs import file
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmap import do_mmap
from refmodel.security import security_mmap_file
from refmodel.trace import kernel

F = "mm/util.c"


@kernel(F)
def mm_populate(mm: mm_struct, addr: int, len: int) -> None:
    """Models include/linux/mm.h:mm_populate (__mm_populate): fault the range in.

    TODO(fault issue): pages come with handle_mm_fault; until then populating maps nothing,
    which leaves the VMA state (all this layer observes) exactly as 5.10 leaves it.
    """


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
