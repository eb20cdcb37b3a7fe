"""The LSM hooks mmap calls (security/security.c, 5.10) with only the capability module.

No LSM (SELinux, AppArmor, ...) is stacked: each hook is the capability module's answer, or
0 where that module has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refmodel.security.commoncap import cap_mmap_addr
from refmodel.trace import kernel

if TYPE_CHECKING:
    from refmodel.fs import file
    from refmodel.mm.mm_types import mm_struct


@kernel("security/security.c")
def security_mmap_addr(mm: mm_struct, addr: int) -> int:
    """Models security/security.c:security_mmap_addr: cap_mmap_addr, the only module."""
    return cap_mmap_addr(mm, addr)


@kernel("security/security.c")
def security_mmap_file(file: file | None, prot: int, flags: int) -> int:
    """Models security/security.c:security_mmap_file: no module has an mmap_file hook (and
    IMA is off), so 0."""
    return 0
