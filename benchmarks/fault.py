"""fault.*, fork.*, fuzz.*: page faults, fork and the whole-system checked state machine.

- fault.per_s: write faults on fresh anonymous memory (Machine.write of one byte per page
  of a large private mapping: the CPU walk, #PF, exc_page_fault ... do_anonymous_page, the
  allocator, set_pte_at, and the retried access).
- fork.pages_per_s: Machine.fork of a process with a 64 MiB populated private anonymous
  mapping (dup_mm → dup_mmap → copy_page_range over 16,384 present ptes), pages per second.
- fuzz.steps_per_s: the whole-system state machine's steps (refmodel.specs.system) driven by
  a seeded random loop with every invariant (buddy, page tables, VMAs, COW/counts/leaks)
  checked after each step (by refmodel.specs.incremental, which reads what the step
  changed and falls back on the full check for anything else) and every access checked
  against the oracle; checked steps per second. (Hypothesis' own overhead under the ci
  profile is left out: the steps and checks are the same.)
Each figure is the best of a few runs.
"""

from __future__ import annotations

import random
import time

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from refmodel.specs.system import System, random_steps
from refmodel.task import Task

P = 4096


def fault_per_s(npages: int) -> float:
    m = Machine(MachineConfig(memory=256 * MiB))
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, npages * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    write = m.write
    one = b"x"
    t0 = time.perf_counter()
    for i in range(npages):
        write(t, a + i * P, one)
    dt = time.perf_counter() - t0
    assert t.mm.rss_stat[1] == npages
    return npages / dt


def fork_pages_per_s(npages: int) -> float:
    m = Machine(MachineConfig(memory=512 * MiB))
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, npages * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(npages):
        m.write(t, a + i * P, b"y")
    t0 = time.perf_counter()
    child = m.fork(t)
    dt = time.perf_counter() - t0
    assert isinstance(child, Task) and child.mm is not None
    assert child.mm.rss_stat[1] == npages
    return npages / dt


def fuzz_steps_per_s(nsteps: int, seed: int) -> float:
    s = System()
    t0 = time.perf_counter()
    random_steps(s, random.Random(seed), nsteps, check=True)
    dt = time.perf_counter() - t0
    s.teardown()
    return nsteps / dt


def run(quick: bool) -> dict[str, float]:
    reps = 2 if quick else 3
    return {
        "fault.per_s": max(fault_per_s(4096 if quick else 16384) for _ in range(reps)),
        "fork.pages_per_s": max(fork_pages_per_s(16384) for _ in range(1 if quick else 3)),
        "fuzz.steps_per_s": max(fuzz_steps_per_s(500 if quick else 3000, 7 + i)
                                for i in range(reps)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
