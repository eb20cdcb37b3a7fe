"""reclaim.*: page reclaim and swap under memory pressure (issue 10).

- reclaim.pages_per_s: a task whose anonymous working set (12,000 pages) is larger than
  RAM (a 48 MiB machine with a 64 MiB swap area) reads every page back in order: each
  read swaps a page in (do_swap_page, swap cluster readahead) while direct reclaim and
  kswapd swap others out (shrink_page_list → add_to_swap → try_to_unmap → pageout →
  swap_writepage). Pages swapped in plus pages swapped out, per second, tracing off.
- fuzz.pressure_steps_per_s: the whole-system checked walk (refmodel.specs.system) on the
  small pressure machine with swap, with "stress" steps (64-512 pages touched each) mixed
  in: checked steps per second.
Each figure is the best of a few runs.
"""

from __future__ import annotations

import random
import time

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from refmodel.specs.system import PRESSURE, System, random_steps

P = 4096





def reclaim_pages_per_s(npages: int) -> float:
    m = Machine(MachineConfig(memory=48 * MiB, swap=64 * MiB))
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, npages * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(npages):
        m.write(t, a + i * P, bytes((i & 0xFF,)))
    ev = m.pgdat.vm_events
    before = ev.get("PSWPIN", 0) + ev.get("PSWPOUT", 0)
    t0 = time.perf_counter()
    for i in range(npages):
        if m.read(t, a + i * P, 1) != bytes((i & 0xFF,)):
            raise AssertionError(f"page {i} came back wrong")
    dt = time.perf_counter() - t0
    return (ev.get("PSWPIN", 0) + ev.get("PSWPOUT", 0) - before) / dt


def pressure_steps_per_s(nsteps: int, seed: int) -> float:
    s = System(PRESSURE)
    t0 = time.perf_counter()
    random_steps(s, random.Random(seed), nsteps, check=True, stress_weight=20)
    dt = time.perf_counter() - t0
    s.teardown()
    return nsteps / dt


def run(quick: bool) -> dict[str, float]:
    reps = 1 if quick else 3
    return {
        "reclaim.pages_per_s": max(reclaim_pages_per_s(12000) for _ in range(reps)),
        "fuzz.pressure_steps_per_s": max(pressure_steps_per_s(200 if quick else 600, 3 + i)
                                         for i in range(reps)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
