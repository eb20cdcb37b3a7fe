"""slab.*: kmalloc/kfree speed, fast paths and refills included."""

from __future__ import annotations

import random
import time

from refmodel.config import MachineConfig, MiB
from refmodel.machine import Machine
from refmodel.mm import gfp as G
from refmodel.mm.slub import kfree, kmalloc, kmem_cache_init


def run(quick: bool = False) -> dict[str, float]:
    """A seeded mix of kmalloc (sizes 8 to 4096) and kfree, holding about 2,000 objects."""
    n = 30_000 if quick else 300_000
    rng = random.Random(3)
    sizes = [rng.choice((8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096))
             - rng.randrange(4) for _ in range(n)]
    choices = [rng.random() for _ in range(n)]
    picks = [rng.randrange(1 << 30) for _ in range(n)]
    kmem = kmem_cache_init(Machine(MachineConfig(memory=1024 * MiB)).pgdat)
    live: list[int] = []
    gfp = G.GFP_KERNEL
    t0 = time.perf_counter()
    for i in range(n):
        if live and (len(live) > 2000 or choices[i] < 0.5):
            j = picks[i] % len(live)
            live[j], live[-1] = live[-1], live[j]
            kfree(kmem, live.pop())
        else:
            live.append(kmalloc(kmem, sizes[i], gfp))
    secs = time.perf_counter() - t0
    return {"slab.ops_per_s": round(n / secs)}
