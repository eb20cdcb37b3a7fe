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
