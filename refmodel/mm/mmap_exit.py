"""Tearing down a whole address space (mm/mmap.c, 5.10): exit_mmap.

Unmap every page of every VMA through one full-mm mmu_gather, free all user page tables,
then free the VMAs and give back their overcommit charge. (A module of its own beside
refmodel.mm.mmap, registered under mm/mmap.c; mm/mmap.c's helpers are reached through the
module object, since mm/mmap.py → kernel/fork.py → this module may be mid-import.)
An OOM victim's mm is first reaped (__oom_reap_task_mm) and hidden from the OOM killer, as
5.10 does. mlocked pages are left out.
"""

from __future__ import annotations

from refmodel.mm import mmap as _mmap
from refmodel.mm.memory import free_pgtables, unmap_vmas
from refmodel.mm.mm_types import MMF_OOM_SKIP, mm_struct, vm_area_struct
from refmodel.mm.mmu_gather import tlb_finish_mmu, tlb_gather_mmu
from refmodel.mm.swap import lru_add_drain
from refmodel.mm.vm_flags import VM_ACCOUNT
from refmodel.mm.vma_index import VmaIndex
from refmodel.trace import kernel

F = "mm/mmap.c"
ULONG_MAX = (1 << 64) - 1
FIRST_USER_ADDRESS = 0
USER_PGTABLES_CEILING = 0


@kernel(F)
def exit_mmap(mm: mm_struct) -> None:
    """Models mm/mmap.c:exit_mmap: unmap_vmas(0, -1) and free_pgtables over every VMA in
    one full-mm gather, tlb_finish_mmu, then remove_vma each and vm_unacct_memory.
    An OOM victim's mm is reaped first and marked MMF_OOM_SKIP (the reaper may not have
    run yet in 5.10; in the model it has, so this unmaps what was mapped since).
    The model also empties mm->mmap and the index (5.10 frees the mm right after)."""
    if _oom_kill.mm_is_oom_victim(mm):
        _oom_kill.__oom_reap_task_mm(mm)
        mm.flags |= 1 << MMF_OOM_SKIP
    vma = mm.mmap
    if vma is None:
        return
    pgdat = mm.pgdat
    assert pgdat is not None
    lru_add_drain(pgdat)
    tlb = tlb_gather_mmu(pgdat, mm, 0, ULONG_MAX)
    unmap_vmas(pgdat, tlb, vma, 0, ULONG_MAX)
    free_pgtables(pgdat, tlb, vma, FIRST_USER_ADDRESS, USER_PGTABLES_CEILING)
    tlb_finish_mmu(pgdat, tlb, 0, ULONG_MAX)
    nr_accounted = 0
    v: vm_area_struct | None = vma
    while v is not None:
        nxt = v.vm_next
        if v.vm_flags & VM_ACCOUNT:
            nr_accounted += _mmap.vma_pages(v)
        _mmap.remove_vma(v)
        v = nxt
    _mmap.vm_unacct_memory(mm.vm_globals, nr_accounted)
    mm.mmap = None
    mm.mm_rb = VmaIndex()
    mm.map_count = 0


# mm/oom_kill.py imports the fault path, which may be mid-import here: bind it last.
from refmodel.mm import oom_kill as _oom_kill  # noqa: E402
