"""Files as the VMA layer sees them (include/linux/fs.h, 5.10): just enough to map one.

A ``file`` has a name, a size (the inode's i_size), an open mode and the mmap-related
operations of its filesystem. Pages of file mappings come later, with faults; the page
cache, writeback and permissions beyond the open mode are out of scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from refmodel.mm.mm_types import vm_area_struct
    from refmodel.mm.mman import vm_globals
    from refmodel.mm.types import Page


@dataclass(slots=True, eq=False)
class address_space:
    """struct address_space (include/linux/fs.h): a file's page cache.

    ``i_pages`` is the xarray (page index -> page); ``nrpages`` its size. ``evict`` is the
    inode's final release (iput_final -> evict -> truncate_inode_pages_final), wired by
    whoever fills the cache first (mm/filemap.c, mm/shmem.c), so fput needs no import of
    mm/. ``swapbacked`` marks a shmem mapping (mapping_gfp_mask and PG_swapbacked pages).
    """

    i_pages: dict[int, Page] = field(default_factory=dict)
    nrpages: int = 0
    swapbacked: bool = False
    evict: Callable[[address_space], None] | None = None
    # i_mmap: the interval tree of the VMAs mapping this file (rmap_walk_file's list)
    i_mmap: list[vm_area_struct] = field(default_factory=list)
    host: file | None = None  # mapping->host (the model's file stands in for the inode)

    def __repr__(self) -> str:
        return f"address_space(nrpages={self.nrpages})"

FMODE_READ = 0x1
FMODE_WRITE = 0x2


@dataclass(slots=True, eq=False)
class file:
    """struct file (plus the few inode and mount facts mmap reads).

    ``shmem`` marks a tmpfs/shmem file (shmem_file_operations: it has its own
    get_unmapped_area and shmem_vm_ops); ``noexec`` is path_noexec() (a noexec mount);
    ``f_count`` is the reference count mmap takes with get_file and drops with fput.
    """

    name: str
    size: int = 0
    f_mode: int = FMODE_READ | FMODE_WRITE
    noexec: bool = False
    shmem: bool = False
    has_mmap: bool = True  # f_op->mmap exists (ENODEV otherwise)
    f_count: int = 1
    # shmem_acct_size: pages charged to vm_committed_as for this shmem object, given back
    # by shmem_unacct_size when the inode is evicted (shmem_evict_inode)
    shmem_acct: int = 0
    acct_to: vm_globals | None = None
    # The file's contents on "disk" (model-only; readpage copies from it, writeback to it)
    # and its page cache (f_mapping == inode->i_mapping: one per file object here).
    data: bytearray = field(default_factory=bytearray)
    f_mapping: address_space = field(default_factory=address_space)

    def __post_init__(self) -> None:
        self.f_mapping.host = self

    def __repr__(self) -> str:
        return f"file({self.name!r}, size={self.size:#x})"


def get_file(f: file) -> file:
    """include/linux/fs.h:get_file."""
    f.f_count += 1
    return f


def fput(f: file) -> None:
    """fs/file_table.c:fput. The final release evicts the inode (a shmem object's
    shmem_evict_inode gives back its overcommit charge)."""
    f.f_count -= 1
    if f.f_count == 0 and f.f_mapping.evict is not None:
        f.f_mapping.evict(f.f_mapping)  # the last reference: the inode goes, its cache too
