"""Real Linux 5.10 call chains, held as data, that the model's traces are checked against.

Each chain is the path, caller first, that a traced run of the model must contain (every
adjacent pair a direct call), with the 5.10 file of each function. Where the seed document
claims a different chain, ``SEED_CLAIMS`` records it for docs/errata.md.
"""

from __future__ import annotations

# A write fault after fork, in the process that writes first (x86-64, 5.10): from the
# exception entry down to the buddy allocator's rmqueue.
COW_WRITE_FAULT: tuple[tuple[str, str], ...] = (
    ("exc_page_fault", "arch/x86/mm/fault.c"),
    ("handle_page_fault", "arch/x86/mm/fault.c"),
    ("do_user_addr_fault", "arch/x86/mm/fault.c"),
    ("handle_mm_fault", "mm/memory.c"),
    ("__handle_mm_fault", "mm/memory.c"),
    ("handle_pte_fault", "mm/memory.c"),
    ("do_wp_page", "mm/memory.c"),
    ("wp_page_copy", "mm/memory.c"),
    ("alloc_page_vma", "include/linux/gfp.h"),
    ("alloc_pages_vma", "mm/mempolicy.c"),
    ("__alloc_pages_nodemask", "mm/page_alloc.c"),
    ("get_page_from_freelist", "mm/page_alloc.c"),
    ("rmqueue", "mm/page_alloc.c"),
)

# A write fault on fresh anonymous memory.
ANON_WRITE_FAULT: tuple[tuple[str, str], ...] = (
    ("exc_page_fault", "arch/x86/mm/fault.c"),
    ("handle_page_fault", "arch/x86/mm/fault.c"),
    ("do_user_addr_fault", "arch/x86/mm/fault.c"),
    ("handle_mm_fault", "mm/memory.c"),
    ("__handle_mm_fault", "mm/memory.c"),
    ("handle_pte_fault", "mm/memory.c"),
    ("do_anonymous_page", "mm/memory.c"),
    ("alloc_zeroed_user_highpage_movable", "include/linux/highmem.h"),
    ("__alloc_zeroed_user_highpage", "arch/x86/include/asm/page.h"),
    ("alloc_page_vma", "include/linux/gfp.h"),
    ("alloc_pages_vma", "mm/mempolicy.c"),
    ("__alloc_pages_nodemask", "mm/page_alloc.c"),
)

# fork and exit, down to the page-table work.
FORK: tuple[tuple[str, str], ...] = (
    ("dup_mm", "kernel/fork.c"),
    ("dup_mmap", "kernel/fork.c"),
    ("copy_page_range", "mm/memory.c"),
    ("copy_p4d_range", "mm/memory.c"),
    ("copy_pud_range", "mm/memory.c"),
    ("copy_pmd_range", "mm/memory.c"),
    ("copy_pte_range", "mm/memory.c"),
    ("copy_present_pte", "mm/memory.c"),
)
EXIT: tuple[tuple[str, str], ...] = (
    ("do_exit", "kernel/exit.c"),
    ("exit_mm", "kernel/exit.c"),
    ("mmput", "kernel/fork.c"),
    ("__mmput", "kernel/fork.c"),
    ("exit_mmap", "mm/mmap.c"),
    ("unmap_vmas", "mm/memory.c"),
    ("unmap_single_vma", "mm/memory.c"),
    ("unmap_page_range", "mm/memory.c"),
    ("zap_p4d_range", "mm/memory.c"),
    ("zap_pud_range", "mm/memory.c"),
    ("zap_pmd_range", "mm/memory.c"),
    ("zap_pte_range", "mm/memory.c"),
)

# The OOM killer, from the allocator's slow path (x86-64, 5.10): out_of_memory first selects
# (select_bad_process), then kills (oom_kill_process); the two are siblings.
OOM_SELECT: tuple[tuple[str, str], ...] = (
    ("__alloc_pages_slowpath", "mm/page_alloc.c"),
    ("__alloc_pages_may_oom", "mm/page_alloc.c"),
    ("out_of_memory", "mm/oom_kill.c"),
    ("select_bad_process", "mm/oom_kill.c"),
    ("oom_evaluate_task", "mm/oom_kill.c"),
    ("oom_badness", "mm/oom_kill.c"),
)
OOM_KILL: tuple[tuple[str, str], ...] = (
    ("__alloc_pages_slowpath", "mm/page_alloc.c"),
    ("__alloc_pages_may_oom", "mm/page_alloc.c"),
    ("out_of_memory", "mm/oom_kill.c"),
    ("oom_kill_process", "mm/oom_kill.c"),
    ("__oom_kill_process", "mm/oom_kill.c"),
    ("wake_oom_reaper", "mm/oom_kill.c"),
    ("oom_reap_task", "mm/oom_kill.c"),
    ("oom_reap_task_mm", "mm/oom_kill.c"),
    ("__oom_reap_task_mm", "mm/oom_kill.c"),
    ("unmap_page_range", "mm/memory.c"),
)

# What the seed (chapter 2) claims instead.
SEED_CLAIMS: dict[str, tuple[str, ...]] = {
    "page fault": ("handle_mm_fault", "do_page_fault"),  # reversed, and do_page_fault is gone
    "anonymous page": ("handle_mm_fault", "alloc_pages_vma", "set_pte_at"),
    # chapter 5: "oom_kill_process() 调用 select_bad_process()"
    "oom": ("oom_kill_process", "select_bad_process"),
}
