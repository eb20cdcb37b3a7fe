"""reclaim.*: page reclaim and swap under memory pressure (issue 10).

- reclaim.pages_per_s: a task whose anonymous working set (12,000 pages) is larger than
  RAM (a 48 MiB machine with a 64 MiB swap area) reads every page back in order: each
  read swaps a page in (do_swap_page, swap cluster readahead) while direct reclaim and
  kswapd swap others out (shrink_page_list → add_to_swap → try_to_unmap → pageout →
  swap_writepage). Pages swapped in plus pages swapped out, per second, tracing off.
- fuzz.pressure_steps_per_s: the whole-system checked walk (refmodel.specs.system) with
  pressure on: the ordinary step mix of fuzz.steps_per_s on the small pressure machine with
  swap, plus "stress" steps at weight 1 (about one step in 95 maps and touches 64-512
  pages), while the idle init holds 1,400 pages of ballast, so that kswapd, direct reclaim
  and swap run throughout the walk. Checked steps per second (every invariant after every
  step, through refmodel.specs.incremental as in fuzz.steps_per_s); fuzz.pressure_pages_swapped
  is how many pages went out to or came in from swap during the measured run (the proof
  that pressure was on).
- fuzz.stress_steps_per_s: the same walk with stress steps at weight 20 (a sixth of the
  steps, each one as many as 512 page writes, so one such step is hundreds of ordinary
  ones): checked steps per second, for information.
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
BALLAST = 1400  # pages; the pressure machine has about 1,700 free after boot





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


def pressure_steps_per_s(nsteps: int, seed: int, stress_weight: int) -> tuple[float, int]:
    """Checked steps per second, and pages swapped in plus out during the run."""
    s = System(PRESSURE)
    # Ballast (not timed): the idle init, which the walk never exits and the OOM killer
    # never picks, writes BALLAST pages, so that the walk runs at the watermarks throughout.
    m, init = s.m, s.init
    assert init.mm is not None
    addr = m.mmap(init.mm, 0, BALLAST * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(BALLAST):
        m.write(init, addr + i * P, b"ballast")
    ev = s.m.pgdat.vm_events
    before = ev.get("PSWPIN", 0) + ev.get("PSWPOUT", 0)
    t0 = time.perf_counter()
    random_steps(s, random.Random(seed), nsteps, check=True, stress_weight=stress_weight)
    dt = time.perf_counter() - t0
    swapped = ev.get("PSWPIN", 0) + ev.get("PSWPOUT", 0) - before
    s.teardown()
    return nsteps / dt, swapped


def run(quick: bool) -> dict[str, float]:
    reps = 1 if quick else 3
    pressure = [pressure_steps_per_s(300 if quick else 1000, 3 + i, 1) for i in range(reps)]
    best = max(pressure)
    return {
        "reclaim.pages_per_s": max(reclaim_pages_per_s(12000) for _ in range(reps)),
        "fuzz.pressure_steps_per_s": best[0],
        "fuzz.pressure_pages_swapped": best[1],
        "fuzz.stress_steps_per_s": max(pressure_steps_per_s(100 if quick else 300, 3 + i, 20)[0]
                                       for i in range(reps)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
