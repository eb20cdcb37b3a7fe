"""security/commoncap.c (5.10): the capability module's mmap hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from refmodel.errno import Errno
from refmodel.trace import kernel

if TYPE_CHECKING:
    from refmodel.mm.mm_types import mm_struct


@kernel("security/commoncap.c")
def cap_mmap_addr(mm: mm_struct, addr: int) -> int:
    """Models security/commoncap.c:cap_mmap_addr: an address below dac_mmap_min_addr needs
    CAP_SYS_RAWIO (-EPERM without it). The task's capability is the model-only
    ``mm.cap_sys_rawio``; PF_SUPERPRIV is not modelled."""
    if addr < mm.vm_globals.dac_mmap_min_addr and not mm.cap_sys_rawio:
        return -int(Errno.EPERM)
    return 0
