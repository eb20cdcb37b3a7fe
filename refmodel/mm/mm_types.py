"""struct mm_struct (include/linux/mm_types.h, 5.10): the page-table part.

Only what the page-table code reads and writes is here; the VMA fields come with mmap.
``pgd`` is the pfn of the PGD page (5.10 keeps ``pgd_t *pgd``, the page's direct-map address;
the model's table pointers are physical, see refmodel.arch.x86.pgtable). ``paging_levels``
is model-only: 5.10 reads the paging mode from a boot-time global (pgtable_l5_enabled()).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from refmodel.fs import file
from refmodel.mm.mman import default_rlimits, rlimit, vm_globals
from refmodel.mm.vma_index import VmaIndex

if TYPE_CHECKING:
    from refmodel.mm.mmzone import pglist_data


# enum of include/linux/mm_types_task.h: the rss_stat counters
MM_FILEPAGES = 0
MM_ANONPAGES = 1
MM_SWAPENTS = 2
MM_SHMEMPAGES = 3
NR_MM_COUNTERS = 4


# mm->flags bits (include/linux/sched/coredump.h, 5.10): bit numbers, as test_bit takes them.
MMF_OOM_SKIP = 21  # the OOM killer ignores this mm (reaped, or cannot be reaped)
MMF_UNSTABLE = 22  # the OOM reaper has unmapped memory: user copies may see zeros
MMF_OOM_VICTIM = 25  # the mm of an OOM victim (mark_oom_victim)
MMF_OOM_REAP_QUEUED = 26  # already handed to the OOM reaper (wake_oom_reaper)
# MMF_INIT_MASK: what mm_init copies from the parent's flags (dumpable, the coredump filter,
# MMF_DISABLE_THP); none of the OOM bits.
MMF_INIT_MASK = 0x3 | (0x1FF << 2) | (1 << 24)


@dataclass(slots=True, eq=False)
class mm_struct:
    """The fields of struct mm_struct the page-table code uses."""

    paging_levels: int = 4
    pgd: int = 0  # pfn of the PGD page; 0 before pgd_alloc
    pgtables_bytes: int = 0  # PTE + PMD + PUD pages, in bytes (mm_inc_nr_ptes & co.)
    mm_users: int = 1
    mm_count: int = 1
    # The VMA part (mm/mmap.c). ``mm_rb`` stands in for the augmented rbtree; ``mmap`` and
    # each VMA's vm_next/vm_prev are the sorted list, as in 5.10.
    mmap: vm_area_struct | None = None
    mm_rb: VmaIndex = field(default_factory=VmaIndex)
    get_unmapped_area: Callable[..., int] | None = None
    mmap_base: int = 0
    mmap_legacy_base: int = 0
    task_size: int = 0
    highest_vm_end: int = 0
    map_count: int = 0
    total_vm: int = 0
    locked_vm: int = 0
    data_vm: int = 0
    exec_vm: int = 0
    stack_vm: int = 0
    def_flags: int = 0
    start_brk: int = 0
    brk: int = 0
    start_data: int = 0
    end_data: int = 0
    # Model-only: what 5.10 reads from ``current`` (one task per mm) and from mm/ globals.
    vm_globals: vm_globals = field(default_factory=vm_globals)
    rlim: list[rlimit] = field(default_factory=default_rlimits)
    personality: int = 0
    cap_sys_rawio: bool = False
    cap_ipc_lock: bool = False
    pgdat: pglist_data | None = None  # the node whose allocator backs the page tables
    # rss_stat.count[NR_MM_COUNTERS] (MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES);
    # 5.10 batches updates per task (SPLIT_RSS_COUNTING), the model adds them at once.
    rss_stat: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    hiwater_rss: int = 0
    # mm->flags, a bitmap of MMF_* bit numbers (include/linux/sched/coredump.h); only the OOM
    # bits below are modelled (no dumpable / coredump-filter bits).
    flags: int = 0

    def __repr__(self) -> str:
        return f"mm_struct(pgd={self.pgd:#x}, pgtables_bytes={self.pgtables_bytes})"


@dataclass(slots=True, eq=False)
class anon_vma:
    """struct anon_vma (include/linux/rmap.h), as much as VMA merging observes: identity."""

    root: anon_vma | None = None
    refcount: int = 1
    degree: int = 1
    parent: anon_vma | None = None  # anon_vma_fork: the parent process's anon_vma
    # rb_root: the interval tree of anon_vma_chain entries, i.e. every VMA linked to this
    # anon_vma; rmap_walk_anon visits them in vm_pgoff order (the tree's order).
    rb_root: list[vm_area_struct] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"anon_vma@{id(self):#x}"


@dataclass(slots=True, eq=False)
class vm_area_struct:
    """struct vm_area_struct (include/linux/mm_types.h, 5.10): the fields mmap observes.

    ``anon_vma_chain`` lists the anon_vmas this VMA is linked to (the same_vma list of
    anon_vma_chain entries); its length decides list_is_singular() in VMA merging.
    ``vm_ops`` names the operations table (None for anonymous private memory).
    """

    vm_start: int = 0
    vm_end: int = 0
    vm_next: vm_area_struct | None = None
    vm_prev: vm_area_struct | None = None
    vm_page_prot: int = 0
    vm_flags: int = 0
    vm_mm: mm_struct | None = None
    anon_vma_chain: list[anon_vma] = field(default_factory=list)
    anon_vma: anon_vma | None = None
    vm_ops: str | None = None
    vm_pgoff: int = 0
    vm_file: file | None = None

    def __repr__(self) -> str:
        f = f", file={self.vm_file.name}" if self.vm_file is not None else ""
        a = ", anon_vma" if self.anon_vma is not None else ""
        return (f"vma[{self.vm_start:#x}-{self.vm_end:#x} flags={self.vm_flags:#x} "
                f"pgoff={self.vm_pgoff:#x}{f}{a}]")
