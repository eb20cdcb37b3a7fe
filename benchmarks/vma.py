"""vma.*: mmap/munmap/mprotect speed on a large address space against a small one.

The workload is a seeded mix on one mm already holding ``n`` VMAs (alternating read-only
and read-write anonymous mappings, so none merge), kept near n VMAs: see run_ops. It runs on
10,000 and on 100 VMAs; the cost per operation should grow with log n, not n. Each figure is
the best of a few runs (the machine may be busy).
"""

from __future__ import annotations

import random
import time

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
)

P = 4096
PROTS = (PROT_READ, PROT_READ | PROT_WRITE)


def populated(m: Machine, n: int) -> mm_struct:
    """A fresh mm holding n one-page VMAs just below mmap_base, alternately read-only and
    read-write so that none merge."""
    mm = m.new_mm()
    for i in range(n):
        m.mmap(mm, 0, P, PROTS[i & 1], MAP_PRIVATE | MAP_ANONYMOUS)
    assert mm.map_count == n
    return mm


def run_ops(m: Machine, n: int, n_ops: int, seed: int = 10) -> float:
    """ops/s of the mixed workload on an mm kept near n VMAs: 40% mmap (half free, a
    quarter hinted, a quarter MAP_FIXED), 30% munmap, 30% mprotect, of 1-4 pages at random
    places in the populated region; when the VMA count drifts 5% off n, the mix leans to
    mmap or munmap to bring it back."""
    mm = populated(m, n)
    base = mm.mmap_base
    rng = random.Random(seed)
    rand, randrange = rng.random, rng.randrange
    mmap, munmap, mprotect = m.mmap, m.munmap, m.mprotect
    anon = MAP_PRIVATE | MAP_ANONYMOUS
    lo_count, hi_count = n * 95 // 100, n * 105 // 100
    t0 = time.perf_counter()
    for _ in range(n_ops):
        first = mm.mmap
        span = (base - first.vm_start) // P if first is not None else 1
        addr = base - randrange(1, span + 1) * P
        ln = randrange(1, 5) * P
        prot = PROTS[randrange(2)]
        r = rand()
        if mm.map_count < lo_count:
            r *= 0.4
        elif mm.map_count > hi_count:
            r = 0.4 + r * 0.3
        if r < 0.2:
            mmap(mm, 0, ln, prot, anon)
        elif r < 0.3:
            mmap(mm, addr, ln, prot, anon)
        elif r < 0.4:
            mmap(mm, addr, ln, prot, anon | MAP_FIXED)
        elif r < 0.7:
            munmap(mm, addr, ln)
        else:
            mprotect(mm, addr, ln, prot)
    secs = time.perf_counter() - t0
    return n_ops / secs


def _best(m: Machine, n: int, n_ops: int, runs: int) -> float:
    return max(run_ops(m, n, n_ops) for _ in range(runs))


def run(quick: bool = False) -> dict[str, float]:
    m = Machine(MachineConfig(memory=64 * MiB))
    n_ops, runs = (10_000, 2) if quick else (40_000, 3)
    big = _best(m, 10_000, n_ops, runs)
    small = _best(m, 100, n_ops, runs)
    return {
        "vma.ops_per_s": round(big),
        "vma.ops_per_s_100": round(small),
        "vma.ratio_10k_to_100": round(small / big, 3),
    }


if __name__ == "__main__":
    print(run(quick=True))

