"""Speed and memory benchmarks, run by ``refmodel bench``. Installed as refmodel.benchmarks.

Each module exposes ``run(quick: bool) -> dict[str, float]``; keys are dotted figure names
such as ``buddy.ops_per_s``. Benchmarks may use a seeded PRNG to build workloads; the model
itself never does.
"""

from __future__ import annotations

BENCH_MODULES: tuple[str, ...] = ("buddy", "vma", "conform", "slab", "fault", "reclaim", "grade")
