"""Files as the VMA layer sees them (include/linux/fs.h, 5.10): just enough to map one.

A ``file`` has a name, a size (the inode's i_size), an open mode and the mmap-related
operations of its filesystem. Pages of file mappings come later, with faults; the page
cache, writeback and permissions beyond the open mode are out of scope.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def __repr__(self) -> str:
        return f"file({self.name!r}, size={self.size:#x})"


def get_file(f: file) -> file:
    """include/linux/fs.h:get_file."""
    f.f_count += 1
    return f


def fput(f: file) -> None:
    """fs/file_table.c:fput (the final release is not modelled)."""
    f.f_count -= 1
