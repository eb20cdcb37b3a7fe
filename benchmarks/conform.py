"""conform.*: the conformance kit's throughput on the C buddy example.

``conform.ops_per_s``: allocator operations per second when the runner drives the C example
(examples/buddy_c, built with ``cc`` into a temporary directory) through the subprocess
protocol in invariant mode, with pipelining, the free lists observed and checked after every
step, model and checks included. ``conform.requests_per_s`` counts the observe requests too.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from refmodel.conformance.runner import Driver
from refmodel.conformance.targets.base import Op
from refmodel.conformance.targets.buddy import BuddyTarget
from refmodel.conformance.transport import SubprocessTransport

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "buddy_c"


def workload(n: int, max_order: int, seed: int = 8) -> list[Op]:
    """Bursts of allocations (orders 0-3) then bursts of frees, about 48 blocks live, with
    a bad call now and then: what a long conformance sequence looks like, in a shape that
    pipelines (a burst of frees needs the answers to the allocations before it)."""
    rng = random.Random(seed)
    ops: list[Op] = []
    live = 0
    while len(ops) < n:
        burst = rng.randrange(8, 32)
        ops += [Op("alloc", (rng.choice((0, 0, 0, 1, 2, 3)) % max_order,))
                for _ in range(burst)]
        live += burst
        frees = min(live, burst + rng.randrange(-4, 5) + (live - 48) // 4)
        ops += [Op("free", (rng.randrange(16),)) for _ in range(max(frees, 0))]
        live -= max(frees, 0)
        if rng.random() < 0.3:
            ops.append(Op(rng.choice(("double_free", "free_interior", "free_misaligned")),
                          (rng.randrange(16),)))
    return ops[:n]


def build(out: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("benchmark conform needs a C compiler (cc)")
    exe = out / "buddy"
    subprocess.run([cc, "-O2", "-o", str(exe), str(EXAMPLE / "harness.c"),
                    str(EXAMPLE / "buddy.c")], check=True)
    return exe


def run(quick: bool = False) -> dict[str, float]:
    target = BuddyTarget()
    config = target.validate_config({"nr_pages": 1024, "max_order": 11})
    ops = workload(10_000 if quick else 100_000, 11)
    with tempfile.TemporaryDirectory() as d:
        exe = build(Path(d))
        driver = Driver(SubprocessTransport([str(exe)], "buddy", "invariant", config),
                        target, config, "invariant")
        driver.start()
        try:
            t0 = time.perf_counter()
            res = driver.run(ops, Counter())
            secs = time.perf_counter() - t0
        finally:
            driver.close()
    if res.failing is not None:
        raise RuntimeError(f"the C example failed its own benchmark: {res.failures}")
    return {
        "conform.ops_per_s": round(len(res.steps) / secs),
        "conform.requests_per_s": round(driver.requests / secs),
    }
