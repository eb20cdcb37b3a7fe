"""buddy.*: the allocator's speed against a minimal buddy, and the cost of booting 16 GiB."""

from __future__ import annotations

import gc
import random
import subprocess
import sys
import time

from refmodel.config import GiB, MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.page_alloc import __free_pages as free_pages_of_page
from refmodel.mm.page_alloc import alloc_pages
from refmodel.mm.types import Page


def workload(n: int, seed: int = 5) -> list[tuple[str, int, int]]:
    """A mixed alloc/free sequence of orders 0-3: ('a', order, 0) or ('f', index, 0), where
    index picks a live block (index modulo the number of live blocks)."""
    rng = random.Random(seed)
    ops: list[tuple[str, int, int]] = []
    live = 0
    for _ in range(n):
        if live and (live > 2000 or rng.random() < 0.5):
            ops.append(("f", rng.randrange(1 << 30), 0))
            live -= 1
        else:
            ops.append(("a", rng.choice((0, 0, 0, 1, 2, 3)), 0))
            live += 1
    return ops


def run_model(ops: list[tuple[str, int, int]]) -> float:
    m = Machine(MachineConfig(memory=1 * GiB))
    pgdat = m.pgdat
    # Each side keeps the handle its allocator returns: the model a struct page, the
    # baseline a pfn.
    live: list[tuple[Page, int]] = []
    gfp = G.GFP_KERNEL
    t0 = time.perf_counter()
    for kind, x, _ in ops:
        if kind == "a":
            page = alloc_pages(pgdat, gfp, x)
            if page is not None:
                live.append((page, x))
        else:
            i = x % len(live)
            live[i], live[-1] = live[-1], live[i]
            page, order = live.pop()
            free_pages_of_page(pgdat, page, order)
    return len(ops) / (time.perf_counter() - t0)


class MinimalBuddy:
    """The baseline: a dict of free lists (order -> list of pfns) with merging; nothing else.
    What a first buddy allocator in a course looks like: the buddy is looked up in its list."""

    def __init__(self, nr_pages: int, max_order: int = 11) -> None:
        self.max_order = max_order
        self.free: dict[int, list[int]] = {o: [] for o in range(max_order)}
        top = max_order - 1
        for pfn in range(0, nr_pages - (nr_pages % (1 << top)), 1 << top):
            self.free[top].append(pfn)

    def alloc(self, order: int) -> int | None:
        for o in range(order, self.max_order):
            lst = self.free[o]
            if lst:
                pfn = lst.pop()
                while o > order:
                    o -= 1
                    self.free[o].append(pfn + (1 << o))
                return pfn
        return None

    def release(self, pfn: int, order: int) -> None:
        while order < self.max_order - 1:
            buddy = pfn ^ (1 << order)
            lst = self.free[order]
            if buddy not in lst:
                break
            lst.remove(buddy)
            pfn &= buddy
            order += 1
        self.free[order].append(pfn)


def run_baseline(ops: list[tuple[str, int, int]]) -> float:
    b = MinimalBuddy((1 * GiB) // 4096)
    live: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    for kind, x, _ in ops:
        if kind == "a":
            pfn = b.alloc(x)
            if pfn is not None:
                live.append((pfn, x))
        else:
            i = x % len(live)
            live[i], live[-1] = live[-1], live[i]
            pfn, order = live.pop()
            b.release(pfn, order)
    return len(ops) / (time.perf_counter() - t0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def boot_16g() -> tuple[float, float]:
    """Boot time and the resident memory the booted machine adds, measured in a fresh
    interpreter (in a long-lived one, a warm heap hides the growth)."""
    out = subprocess.run(
        [sys.executable, "-c", "from refmodel.benchmarks.buddy import _boot_16g_here as f; f()"],
        capture_output=True, text=True, check=True, timeout=120)
    secs, added = out.stdout.split()
    return float(secs), float(added)


def _boot_16g_here() -> None:
    import refmodel.mm.page_alloc_init  # noqa: F401  (imports are not the machine's cost)

    gc.collect()
    before = _rss_bytes()
    t0 = time.perf_counter()
    m = Machine(MachineConfig(memory=16 * GiB))
    secs = time.perf_counter() - t0
    gc.collect()
    added = (_rss_bytes() - before) / MiB
    assert m.pgdat.totalram_pages > 0
    print(secs, added)


def run(quick: bool = False) -> dict[str, float]:
    ops = workload(20_000 if quick else 200_000)
    # Best of a few interleaved runs of each, so that a busy machine hurts both alike.
    model = baseline = 0.0
    for _ in range(1 if quick else 3):
        model = max(model, run_model(ops))
        baseline = max(baseline, run_baseline(ops))
    secs, mb = boot_16g()
    return {
        "buddy.ops_per_s": round(model),
        "buddy.baseline_ops_per_s": round(baseline),
        "buddy.ratio_to_baseline": round(model / baseline, 3),
        "buddy.boot_16g_s": round(secs, 4),
        "buddy.rss_16g_mb": round(mb, 2),
    }
