"""Named scenarios for ``refmodel trace``: small runs whose call trees explain 5.10.

Each scenario builds its machine untraced, then runs the steps worth seeing under the
tracer, so the tree starts at the kernel entry point the scenario is about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.page_alloc import free_pages, page_address
from refmodel.trace import Tracer


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    # prepare() returns the callable to trace
    prepare: Callable[[], Callable[[], object]]


def _alloc_and_free() -> Callable[[], object]:
    m = Machine(MachineConfig(memory=256 * MiB))
    pgdat = m.pgdat
    warm = m.alloc_pages(G.GFP_KERNEL, 0)  # the pcp list now holds a batch
    assert warm is not None

    def run() -> object:
        page0 = m.alloc_pages(G.GFP_KERNEL, 0)
        page2 = m.alloc_pages(G.GFP_KERNEL | G.__GFP_ZERO, 2)
        assert page0 is not None and page2 is not None
        free_pages(pgdat, page_address(pgdat, page0), 0)
        free_pages(pgdat, page_address(pgdat, page2), 2)
        return None

    return run


def _first_alloc_after_boot() -> Callable[[], object]:
    m = Machine(MachineConfig(memory=256 * MiB))
    return lambda: m.alloc_pages(G.GFP_KERNEL, 0)


def _populate(levels: int) -> Callable[[], Callable[[], object]]:
    def prepare() -> Callable[[], object]:
        from refmodel.arch.x86.pgtable_demo import demo_populate

        m = Machine(MachineConfig(memory=256 * MiB, paging_levels=levels))
        warm = m.alloc_pages(G.GFP_KERNEL, 0)  # fill the per-cpu list first: a shorter tree
        assert warm is not None
        return lambda: demo_populate(m.pgdat, levels)

    return prepare


def _mmap() -> Callable[[], object]:
    from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE

    m = Machine(MachineConfig(memory=64 * MiB))
    mm = m.new_mm()
    m.mmap(mm, 0, 0x4000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)

    def run() -> object:
        # a second anonymous mapping right below the first: merged into it (vma_merge)
        m.mmap(mm, 0, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        # a read-only one below that cannot merge: vm_area_alloc + vma_link
        return m.mmap(mm, 0, 0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)

    return run


def _munmap() -> Callable[[], object]:
    from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE

    m = Machine(MachineConfig(memory=64 * MiB))
    mm = m.new_mm()
    addr = m.mmap(mm, 0, 0x8000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    return lambda: m.munmap(mm, addr + 0x2000, 0x2000)  # the middle: split twice


def _mprotect() -> Callable[[], object]:
    from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE

    m = Machine(MachineConfig(memory=64 * MiB))
    mm = m.new_mm()
    addr = m.mmap(mm, 0, 0x8000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)

    def run() -> object:
        m.mprotect(mm, addr + 0x2000, 0x2000, PROT_READ)  # split in three
        return m.mprotect(mm, addr + 0x2000, 0x2000, PROT_READ | PROT_WRITE)  # merge back

    return run


SCENARIOS: dict[str, Scenario] = {
    "alloc": Scenario(
        "alloc",
        "an order-0 and an order-2 allocation and their frees (pcp fast path, buddy split "
        "and merge)",
        _alloc_and_free,
    ),
    "first-alloc": Scenario(
        "first-alloc",
        "the first GFP_KERNEL allocation after boot: migratetype fallback steals a whole "
        "block, rmqueue_bulk fills the per-cpu list",
        _first_alloc_after_boot,
    ),
    "pagetable": Scenario(
        "pagetable",
        "a new mm (pgd_alloc: one page, kernel half copied) and one anonymous page mapped "
        "down to set_pte_at, 4-level paging (p4d folded)",
        _populate(4),
    ),
    "pagetable-5": Scenario(
        "pagetable-5",
        "the same with 5-level paging (LA57): p4d_alloc allocates a real P4D table",
        _populate(5),
    ),
}


def register(s: Scenario) -> None:
    """Add a scenario (later parts of the model register theirs here)."""
    SCENARIOS[s.name] = s


def trace_scenario(name: str) -> Tracer:
    s = SCENARIOS[name]
    run = s.prepare()
    with Tracer() as t:
        run()
    return t


register(Scenario(
    "mmap",
    "two anonymous mmaps below an existing one: the first merges into it (vma_merge → "
    "__vma_adjust), the second gets a new VMA (vm_area_alloc, vma_link)",
    _mmap,
))
register(Scenario(
    "munmap",
    "munmap of the middle of a VMA: __split_vma twice, detach, unmap_region "
    "(free_pgtables), remove_vma_list",
    _munmap,
))
register(Scenario(
    "mprotect",
    "mprotect of the middle of a VMA (split in three), then back (vma_merge case 6 joins "
    "all three)",
    _mprotect,
))


def _kmalloc() -> Callable[[], object]:
    from refmodel.mm.slub import kfree, kmalloc, kmem_cache_init

    kmem = kmem_cache_init(Machine(MachineConfig(memory=256 * MiB)).pgdat)
    warm = kmalloc(kmem, 8, G.GFP_KERNEL)  # the page allocator's per-cpu list is warm
    kfree(kmem, warm)

    def run() -> object:
        x = kmalloc(kmem, 100, G.GFP_KERNEL)  # kmalloc-128 has no slab yet: a new one
        y = kmalloc(kmem, 100, G.GFP_KERNEL)  # the per-cpu free list: the fast path
        kfree(kmem, y)  # back to the per-cpu free list head
        kfree(kmem, x)
        return None

    return run


register(Scenario(
    "kmalloc",
    "kmalloc from an empty kmalloc-128 (slow path down to new_slab → allocate_slab → "
    "alloc_pages), then the fast path, then two kfree into the cpu slab",
    _kmalloc,
))


def _cow() -> Callable[[], object]:
    from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
    from refmodel.task import Task

    m = Machine(MachineConfig(memory=64 * MiB))
    parent = m.spawn()
    assert parent.mm is not None
    addr = m.mmap(parent.mm, 0, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    m.write(parent, addr, b"before fork")
    child = m.fork(parent)
    assert isinstance(child, Task)
    return lambda: m.write(child, addr, b"after")


register(Scenario(
    "cow",
    "a write after fork in the child: exc_page_fault → handle_page_fault → "
    "do_user_addr_fault → handle_mm_fault → __handle_mm_fault → handle_pte_fault → "
    "do_wp_page → wp_page_copy (page_count 2: copy) → alloc_page_vma → alloc_pages_vma → "
    "the buddy allocator's rmqueue",
    _cow,
))


def _fork_exit() -> Callable[[], object]:
    from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
    from refmodel.task import Task

    m = Machine(MachineConfig(memory=64 * MiB))
    parent = m.spawn()
    assert parent.mm is not None
    addr = m.mmap(parent.mm, 0, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    m.write(parent, addr, b"x")

    def run() -> object:
        child = m.fork(parent)
        assert isinstance(child, Task)
        m.exit(child)
        return None

    return run


register(Scenario(
    "fork-exit",
    "fork of a one-page process (dup_mm → dup_mmap → copy_page_range, the pte "
    "write-protected in both) and the child's exit (exit_mmap → unmap_vmas → zap_pte_range "
    "→ free_pgtables → pgd_free)",
    _fork_exit,
))


# A small machine for the OOM scenario: 20 MiB of RAM with 1-16 MiB reserved and no kernel
# image, about 1160 usable pages, so running out of memory takes a second, not minutes.
OOM_DEMO_CONFIG = MachineConfig(memory=20 * MiB, kernel_image=0,
                                extra_reserved=((0x100, 0x1000),))


def _oom() -> Callable[[], object]:
    from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
    from refmodel.task import Task

    rw, anon = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS

    def build() -> tuple[Machine, Task, int]:
        m = Machine(OOM_DEMO_CONFIG)
        m.spawn("init")
        hog = m.spawn("hog")
        grow = m.spawn("grow")
        m.set_oom_score_adj(grow, -1000)  # the allocating task is never a victim
        assert hog.mm is not None and grow.mm is not None
        a = m.mmap(hog.mm, 0, 0x8000, rw, anon)
        m.write(hog, a, bytes(0x8000))  # 8 pages
        m.mmap(grow.mm, 0, 4 * MiB, rw, anon)
        b = m.mmap(grow.mm, 0, 4 * MiB, rw, anon)  # right below: one 8 MiB VMA from b
        return m, grow, b

    # A dry run finds the page whose fault runs out of memory; the model is deterministic,
    # so a second identical machine reaches the same point and only that write is traced.
    m, grow, b = build()
    n = 0
    while m.last_oom is None:
        if n == 2048:
            raise RuntimeError("the oom scenario never ran out of memory")
        m.write(grow, b + n * 4096, b"g")
        n += 1
    m, grow, b = build()
    for i in range(n - 1):
        m.write(grow, b + i * 4096, b"g")
    return lambda: m.write(grow, b + (n - 1) * 4096, b"g")


register(Scenario(
    "oom",
    "a task protected by oom_score_adj -1000 touches one page too many: "
    "__alloc_pages_slowpath → __alloc_pages_may_oom → out_of_memory → select_bad_process "
    "chooses the 8-page hog, oom_kill_process → __oom_kill_process kills it and the OOM "
    "reaper (run synchronously) unmaps its pages; the fault's allocation then succeeds, "
    "and the hog exits when the operation ends (do_exit, release_task)",
    _oom,
))


def _reclaim() -> Callable[[], object]:
    from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE

    m = Machine(MachineConfig(memory=24 * MiB, kernel_image=4 * MiB,
                              extra_reserved=((0x100, 0xE00),), swap=4 * MiB))
    m.spawn("init")
    t = m.spawn("task")
    assert t.mm is not None
    n = 256
    a = m.mmap(t.mm, 0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(n):  # anonymous pages on the inactive list, their ptes young
        m.write(t, a + i * 4096, b"d")
    # Kernel allocations that never reclaim (GFP_NOWAIT) eat the free pages down to the
    # min watermark. They are not task operations, so kswapd (woken) does not run yet.
    while m.alloc_pages(G.GFP_NOWAIT | G.__GFP_NOWARN, 0) is not None:
        pass
    return lambda: m.alloc_pages(G.GFP_KERNEL, 0)


register(Scenario(
    "reclaim",
    "a GFP_KERNEL allocation on a machine at its min watermark: __alloc_pages_slowpath → "
    "__alloc_pages_direct_reclaim → __perform_reclaim → try_to_free_pages → "
    "do_try_to_free_pages → shrink_zones → shrink_node → shrink_lruvec → shrink_list → "
    "shrink_inactive_list → shrink_page_list (page_check_references, add_to_swap, "
    "try_to_unmap, pageout → swap_writepage, __remove_mapping), from DEF_PRIORITY down",
    _reclaim,
))
