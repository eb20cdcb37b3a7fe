"""The whole system as plain, checked steps (the whole-system state machine's driver):
several tasks doing mmap / munmap / mprotect, fork, exit, file mappings, and reads and
writes of random bytes at random addresses, with every invariant of every issue so far
checked after each step and every read checked against the logical-memory oracle
(refmodel.specs.cow.LogicalMemory).

Each step takes small integers and maps them onto the current state (which task, which
VMA, which offset), so a Hypothesis failure prints as a replayable list of steps. The same
steps are driven by tests/test_system_state_machine.py (Hypothesis) and by a seeded
random loop, :func:`random_steps` (the fuzz.steps_per_s benchmark).
"""

from __future__ import annotations

import random

from refmodel.arch.x86.fault import SigInfo
from refmodel.config import MachineConfig, MiB
from refmodel.fs import file
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from refmodel.mm.vmscan import try_to_free_pages
from refmodel.specs import Violation
from refmodel.specs.buddy import check_buddy
from refmodel.specs.cow import LogicalMemory, check_cow, files_of
from refmodel.specs.incremental import IncrementalChecker
from refmodel.specs.oom import check_oom, no_killed_task_survives
from refmodel.specs.pagetable import PAGETABLE_INVARIANTS, user_table_tree
from refmodel.specs.reclaim import (
    check_reclaim,
    nothing_swapped_when_idle,
    orphaned_swap_cache,
)
from refmodel.specs.vma import check_vma
from refmodel.task import Task

PAGE = 4096
PROTS = (PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
         PROT_READ | PROT_WRITE | PROT_EXEC, PROT_WRITE)
MAX_TASKS = 4
MAX_FILES = 3


class OracleMismatch(AssertionError):
    pass


# Small machines for memory pressure (issue 10): about 1,700 free pages (24 MiB with a 4 MiB
# kernel image and most of ZONE_DMA reserved), with a 4 MiB swap area or none, so that
# "stress" steps make kswapd, direct reclaim, swap and the OOM killer run.
PRESSURE = MachineConfig(memory=24 * MiB, kernel_image=4 * MiB,
                         extra_reserved=((0x100, 0xE00),), swap=4 * MiB)
PRESSURE_NO_SWAP = MachineConfig(memory=24 * MiB, kernel_image=4 * MiB,
                                 extra_reserved=((0x100, 0xE00),))


class System:
    """A Machine, its oracle, and the steps the state machine and the fuzz benchmark run.

    Pid 1 is an idle init (unkillable, as the OOM killer treats init): the steps drive the
    other tasks, so that under pressure there is always someone the OOM killer may choose.
    A task the OOM killer kills leaves the oracle; its last access is not compared."""

    def __init__(self, config: MachineConfig | None = None, incremental: bool = True) -> None:
        self.m = Machine(config or MachineConfig(memory=64 * MiB))
        self.oracle = LogicalMemory()
        self.init = self.m.spawn("init")
        self.baseline = frozenset(self.m.pgdat.allocated)
        self.files: list[file] = []
        self.steps = 0
        self.oom_kills = 0
        self.spawn()
        # check() asks the incremental checker, which falls back on violations() (the
        # full check) for the wording and whenever a change is not one it follows.
        self.checker = (IncrementalChecker(self.m, self.files, self.baseline, self.violations)
                        if incremental else None)

    # ---------------------------------------------------------------- helpers
    def _tasks(self) -> list[Task]:
        return sorted((t for t in self.m.tasks.values() if t is not self.init),
                      key=lambda t: t.pid)

    def _reap(self) -> bool:
        """Tasks the OOM killer killed leave the oracle; whether any did."""
        gone = [pid for pid in self.oracle.pids() if pid not in self.m.tasks]
        for pid in gone:
            self.oracle.exit(pid)
            self.oom_kills += 1
        return bool(gone)

    def _task(self, i: int) -> Task | None:
        ts = self._tasks()
        return ts[i % len(ts)] if ts else None

    @staticmethod
    def _vmas(mm: mm_struct) -> list[vm_area_struct]:
        out = []
        v = mm.mmap
        while v is not None:
            out.append(v)
            v = v.vm_next
        return out

    def _addr(self, mm: mm_struct, sel: int, off: int) -> int:
        """An address chosen from the state: inside (or just around) a VMA, or a hole."""
        vmas = self._vmas(mm)
        if not vmas or sel % 8 == 7:
            return 0x10000 + (off % 64) * PAGE  # most likely a hole
        v = vmas[sel % len(vmas)]
        span = v.vm_end - v.vm_start + 2 * PAGE
        return v.vm_start - PAGE + off % span

    # ---------------------------------------------------------------- steps
    def spawn(self) -> None:
        if len(self._tasks()) >= MAX_TASKS:
            return
        t = self.m.spawn()
        self.oracle.spawn(t.pid)

    def fork(self, ti: int) -> None:
        t = self._task(ti)
        if t is None or len(self._tasks()) >= MAX_TASKS:
            return
        c = self.m.fork(t)
        if self._reap() and not isinstance(c, Task):
            return  # the OOM killer ran: the fork failed, or the parent died and cancelled it
        assert isinstance(c, Task), f"fork failed: {c}"
        self.oracle.fork(t.pid, c.pid)

    def exit(self, ti: int) -> None:
        t = self._task(ti)
        if t is None:
            return
        self.oracle.exit(t.pid)
        self.m.exit(t)
        self._reap()
        if not self._tasks():
            self.spawn()

    def create_file(self, npages: int, extra: int, seed: int) -> None:
        if len(self.files) >= MAX_FILES:
            return
        size = (npages % 4) * PAGE + extra % PAGE + 1
        data = bytes((seed + i * 7) & 0xFF for i in range(size))
        f = self.m.create_file(f"f{self.steps}", data)
        self.files.append(f)
        self.oracle.new_file(f)

    def release_file(self, fi: int) -> None:
        if not self.files:
            return
        f = self.files.pop(fi % len(self.files))
        self.m.release_file(f)

    def mmap(self, ti: int, npages: int, prot: int, kind: int, sel: int, off: int,
             fixed: bool) -> None:
        t = self._task(ti)
        if t is None or t.mm is None:
            return
        length = (npages % 8 + 1) * PAGE
        prot = PROTS[prot % len(PROTS)]
        flags = MAP_SHARED if kind % 4 == 1 else MAP_PRIVATE
        f: file | int = -1
        pgoff = 0
        if kind % 4 >= 2 and self.files:  # a file mapping
            f = self.files[sel % len(self.files)]
            pgoff = off % 3
        else:
            flags |= MAP_ANONYMOUS
        if (kind // 4) % 2:
            # MAP_POPULATE; not MAP_LOCKED: fork drops VM_LOCKED in the child without
            # merging, which 5.10 does too but specs.vma's "mergeable neighbours are
            # merged" cannot tell from a missed merge (tests/mm/test_fault.py covers it)
            flags |= MAP_POPULATE
        addr = 0
        if fixed:
            addr = self._addr(t.mm, sel, off) & ~(PAGE - 1)
            flags |= MAP_FIXED
        r = self.m.mmap(t.mm, addr, length, prot, flags, f, pgoff * PAGE)
        if self._reap():
            return
        if r >= 0:
            self.oracle.unmapped(t.pid, r, r + length)
            if flags & MAP_POPULATE and not isinstance(f, int) and prot & PROT_WRITE and (
                    flags & MAP_PRIVATE):
                self.oracle.copied(t.pid, t.mm, r, r + length)  # populated by write faults

    def munmap(self, ti: int, sel: int, off: int, npages: int) -> None:
        t = self._task(ti)
        if t is None or t.mm is None:
            return
        addr = self._addr(t.mm, sel, off) & ~(PAGE - 1)
        length = (npages % 6 + 1) * PAGE
        if self.m.munmap(t.mm, addr, length) == 0:
            self.oracle.unmapped(t.pid, addr, addr + length)
        self._reap()

    def mprotect(self, ti: int, sel: int, off: int, npages: int, prot: int) -> None:
        t = self._task(ti)
        if t is None or t.mm is None:
            return
        addr = self._addr(t.mm, sel, off) & ~(PAGE - 1)
        self.m.mprotect(t.mm, addr, (npages % 6 + 1) * PAGE, PROTS[prot % len(PROTS)])
        self._reap()

    def write(self, ti: int, sel: int, off: int, n: int, seed: int) -> None:
        t = self._task(ti)
        if t is None or t.mm is None:
            return
        addr = self._addr(t.mm, sel, off)
        data = bytes((seed + i) & 0xFF for i in range(n % 48 + 1))
        want = self.oracle.write(t.pid, t.mm, addr, data)
        got = self.m.write(t, addr, data)
        if self._reap():
            return
        if got != want:
            raise OracleMismatch(f"pid {t.pid} write {len(data)} at {addr:#x}: model {got}, "
                                 f"oracle {want}")

    def read(self, ti: int, sel: int, off: int, n: int) -> None:
        t = self._task(ti)
        if t is None or t.mm is None:
            return
        addr = self._addr(t.mm, sel, off)
        n = n % 48 + 1
        want = self.oracle.read(t.pid, t.mm, addr, n)
        got = self.m.read(t, addr, n)
        if self._reap():
            return
        if got != want:
            shown = got if isinstance(got, SigInfo) else got.hex()
            wshown = want if isinstance(want, SigInfo) else want.hex()
            raise OracleMismatch(f"pid {t.pid} read {n} at {addr:#x}: model {shown}, "
                                 f"oracle {wshown}")

    def stress(self, ti: int, size: int, seed: int) -> None:
        """Memory pressure: map 64 to 512 anonymous pages and write 8 bytes to each."""
        t = self._task(ti)
        if t is None or t.mm is None:
            return
        npages = 64 << (size % 4)
        r = self.m.mmap(t.mm, 0, npages * PAGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS)
        if self._reap() or r < 0:
            return
        self.oracle.unmapped(t.pid, r, r + npages * PAGE)
        for i in range(npages):
            data = bytes(((seed + i) & 0xFF,)) * 8
            want = self.oracle.write(t.pid, t.mm, r + i * PAGE, data)
            got = self.m.write(t, r + i * PAGE, data)
            if self._reap():
                return
            if got != want:
                raise OracleMismatch(f"pid {t.pid} stress write at {r + i * PAGE:#x}: "
                                     f"model {got}, oracle {want}")

    # ---------------------------------------------------------------- checks
    def violations(self) -> list[Violation]:
        m = self.m
        mms = [t.mm for t in sorted(m.tasks.values(), key=lambda t: t.pid)
               if t.mm is not None]  # init's too
        out = check_buddy(m.pgdat)
        trees = [user_table_tree(m.pgdat, mm) for mm in mms]  # one walk for both specs
        for inv in PAGETABLE_INVARIANTS:
            out += inv(m.pgdat, mms, trees)
        for mm, tree in zip(mms, trees, strict=True):
            # A tree with no malformed or doubly reached table (and no index a store never
            # makes) holds exactly the present ptes specs.vma would walk for, in order.
            clean = not tree.malformed and not tree.duplicates and not tree.slot_past_511
            out += check_vma(mm, tree.leaves if clean else None)
        out += check_cow(m.pgdat, mms, self.files, self.baseline,
                         leaves=[t.leaves for t in trees])
        out += check_reclaim(m.pgdat, mms, [f.f_mapping for f in files_of(mms, self.files)])
        out += no_killed_task_survives(m.tasks.values())
        if m.last_oom is not None:  # the latest OOM decision (a recorded snapshot)
            out += check_oom(m.last_oom)
        return out

    def check(self) -> None:
        v = self.checker.violations() if self.checker is not None else self.violations()
        if v:
            raise AssertionError("\n".join(str(x) for x in v))

    def teardown(self) -> None:
        """Every task exits, every file is released: every page is back (no leak)."""
        for t in self._tasks():
            self.oracle.exit(t.pid)
            self.m.exit(t)
        self._reap()
        if self.init.mm is not None:
            self.m.exit(self.init)
        v = nothing_swapped_when_idle(self.m.pgdat)
        assert not v, v
        # Orphaned swap-cache pages (copied on write after a swap-in) wait for reclaim in
        # 5.10; reclaim must be able to free them, so let it run (direct reclaim, as an
        # allocation would) before the leak check below.
        for _ in range(4):
            if not orphaned_swap_cache(self.m.pgdat):
                break
            try_to_free_pages(self.m.pgdat, 0, G.GFP_KERNEL)
        assert not orphaned_swap_cache(self.m.pgdat), "reclaim left orphaned swap cache"
        for f in list(self.files):
            self.files.remove(f)
            self.m.release_file(f)
        leaked = set(self.m.pgdat.allocated) - self.baseline
        assert not leaked, f"leaked after teardown: {sorted(hex(p) for p in leaked)}"
        assert not self.m.pgdat.pgtables
        assert self.m.vm_globals.vm_committed_as == 0
        v = check_buddy(self.m.pgdat)
        assert not v, v


STEP_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("read", 30), ("write", 30), ("mmap", 12), ("munmap", 5), ("mprotect", 6), ("fork", 4),
    ("exit", 3), ("spawn", 1), ("create_file", 2), ("release_file", 1), ("stress", 0),
)


def random_steps(s: System, rng: random.Random, n: int, check: bool = True,
                 stress_weight: int = 0) -> None:
    """Run n steps drawn from STEP_WEIGHTS (plus "stress" steps with ``stress_weight``)
    with a seeded PRNG, checking every invariant after each step when ``check``."""
    names = [name for name, _ in STEP_WEIGHTS]
    weights = [w if name != "stress" else stress_weight for name, w in STEP_WEIGHTS]
    _random_steps(s, rng, n, check, names, weights)


def _random_steps(s: System, rng: random.Random, n: int, check: bool, names: list[str],
                  weights: list[int]) -> None:
    ri = rng.randrange
    for _ in range(n):
        name = rng.choices(names, weights)[0]
        s.steps += 1
        if name == "read":
            s.read(ri(16), ri(16), ri(1 << 20), ri(64))
        elif name == "write":
            s.write(ri(16), ri(16), ri(1 << 20), ri(64), ri(256))
        elif name == "mmap":
            s.mmap(ri(16), ri(16), ri(16), ri(16), ri(16), ri(1 << 20), ri(4) == 0)
        elif name == "munmap":
            s.munmap(ri(16), ri(16), ri(1 << 20), ri(16))
        elif name == "mprotect":
            s.mprotect(ri(16), ri(16), ri(1 << 20), ri(16), ri(16))
        elif name == "fork":
            s.fork(ri(16))
        elif name == "exit":
            s.exit(ri(16))
        elif name == "spawn":
            s.spawn()
        elif name == "create_file":
            s.create_file(ri(16), ri(1 << 20), ri(256))
        elif name == "stress":
            s.stress(ri(16), ri(16), ri(256))
        else:
            s.release_file(ri(16))
        if check:
            s.check()
