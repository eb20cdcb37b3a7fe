"""vma.*: mmap/munmap/mprotect speed on a large address space against a small one.

The workload is a fixed, seeded mix on one mm already holding ``n`` VMAs (alternating
read-only and read-write anonymous mappings, so none merge): 40% mmap (half placed freely,
a quarter at a hint, a quarter MAP_FIXED over existing mappings), 30% munmap and 30%
mprotect of ranges of 1-4 pages inside the populated region. The same operations, shifted,
run on 100 and on 10,000 VMAs; cost should grow with log n.
"""

from __future__ import annotations

import random
import time

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
)

P = 4096
PROTS = (PROT_READ, PROT_READ | PROT_WRITE)


def workload(n_ops: int, span_pages: int, seed: int = 10) -> list[tuple[int, int, int, int]]:
    """(kind, page offset below mmap_base, pages, prot index) tuples; kind 0 free mmap,
    1 hinted mmap, 2 fixed mmap, 3 munmap, 4 mprotect."""
    rng = random.Random(seed)
    ops = []
    for _ in range(n_ops):
        r = rng.random()
        kind = 0 if r < 0.2 else 1 if r < 0.3 else 2 if r < 0.4 else 3 if r < 0.7 else 4
        ops.append((kind, rng.randrange(4, span_pages), rng.randrange(1, 5), rng.randrange(2)))
    return ops


def populated(m: Machine, n: int) -> tuple[object, int]:
    mm = m.new_mm()
    for i in range(n):
        m.mmap(mm, 0, P, PROTS[i & 1], MAP_PRIVATE | MAP_ANONYMOUS)
    assert mm.map_count == n
    return mm, mm.mmap_base


def run_ops(m: Machine, n: int, ops: list[tuple[int, int, int, int]]) -> float:
    mm, base = populated(m, n)
    mmap, munmap, mprotect = m.mmap, m.munmap, m.mprotect
    anon = MAP_PRIVATE | MAP_ANONYMOUS
    t0 = time.perf_counter()
    for kind, off, pages, pi in ops:
        addr = base - off * P
        ln = pages * P
        if kind == 0:
            mmap(mm, 0, ln, PROTS[pi], anon)  # type: ignore[arg-type]
        elif kind == 1:
            mmap(mm, addr, ln, PROTS[pi], anon)  # type: ignore[arg-type]
        elif kind == 2:
            mmap(mm, addr, ln, PROTS[pi], anon | MAP_FIXED)  # type: ignore[arg-type]
        elif kind == 3:
            munmap(mm, addr, ln)  # type: ignore[arg-type]
        else:
            mprotect(mm, addr, ln, PROTS[pi])  # type: ignore[arg-type]
    secs = time.perf_counter() - t0
    return len(ops) / secs


def run(quick: bool = False) -> dict[str, float]:
    m = Machine(MachineConfig(memory=64 * MiB))
    n_ops = 20_000 if quick else 100_000
    big = run_ops(m, 10_000, workload(n_ops, 10_000))
    small = run_ops(m, 100, workload(n_ops, 100))
    return {
        "vma.ops_per_s": round(big),
        "vma.ops_per_s_100": round(small),
        "vma.ratio_10k_to_100": round(small / big, 3),
    }


if __name__ == "__main__":
    print(run(quick=True))
