"""The ``refmodel`` command: trace, check, prove, bench. Every command has ``--json``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

from refmodel import __version__
from refmodel.argtypes import non_negative_int, positive_int


def _out(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def cmd_trace(args: argparse.Namespace) -> int:
    from refmodel.scenarios import SCENARIOS, trace_scenario

    if args.list or args.scenario not in SCENARIOS:
        if not args.list:
            print(f"unknown scenario {args.scenario!r}", file=sys.stderr)
        for s in SCENARIOS.values():
            stream = sys.stdout if args.list else sys.stderr
            print(f"  {s.name:14} {s.description}", file=stream)
        return 0 if args.list else 2
    t = trace_scenario(args.scenario)
    if args.json:
        _out({"scenario": args.scenario, "calls": [r.to_json() for r in t.roots]})
    else:
        print(f"# {args.scenario}: {SCENARIOS[args.scenario].description}")
        print(t.render(show_files=not args.no_files, max_depth=args.depth))
    return 0


def _lcg(seed: int) -> Callable[[int], int]:
    state = [seed & 0xFFFFFFFF or 1]

    def nxt(n: int) -> int:
        state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return state[0] % n

    return nxt


def cmd_check(args: argparse.Namespace) -> int:
    """A short deterministic self-check: random-looking allocations and frees with every
    invariant after every step, on the full machine and on the standalone buddy."""
    from refmodel.config import BuddyConfig, MachineConfig, MiB
    from refmodel.machine import Machine, StandaloneBuddy
    from refmodel.mm import gfp as G
    from refmodel.specs.buddy import BUDDY_INVARIANTS, check_buddy

    gfps = [G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_DMA32, G.GFP_ATOMIC, G.GFP_DMA]
    rnd = _lcg(args.seed)
    results = []
    t0 = time.perf_counter()
    for name in ("full-64MiB", "standalone-3000"):
        if name.startswith("full"):
            m = Machine(MachineConfig(memory=64 * MiB))
            pgdat = m.pgdat

            def full_alloc(order: int, m: Machine = m) -> int | None:
                p = m.alloc_pages(gfps[rnd(len(gfps))], order)
                return None if p is None else p.pfn

            alloc: Callable[[int], int | None] = full_alloc
            free: Callable[[int, int], None] = m.free_pages
        else:
            b = StandaloneBuddy(BuddyConfig(3000))
            pgdat = b.pgdat
            alloc = b.alloc
            free = b.free
        live: list[tuple[int, int]] = []
        violations: list[str] = []
        for _ in range(args.steps):
            if live and rnd(3) == 0:
                pfn, order = live.pop(rnd(len(live)))
                free(pfn, order)
            else:
                order = rnd(6)
                got = alloc(order)
                if got is not None:
                    live.append((got, order))
            violations += [str(v) for v in check_buddy(pgdat)]
            if violations:
                break
        results.append({"config": name, "steps": args.steps, "live_blocks": len(live),
                        "violations": violations[:10]})
    results.append(_check_address_space(args.steps, args.seed))
    results.append(_check_system_under_pressure(max(1, args.steps // 2), args.seed))
    ok = all(not r["violations"] for r in results)
    from refmodel.specs.pagetable import PAGETABLE_INVARIANTS
    from refmodel.specs.vma import VMA_INVARIANTS

    names = [f.__name__ for f in (*BUDDY_INVARIANTS, *VMA_INVARIANTS, *PAGETABLE_INVARIANTS)]
    names += ["check_cow", "check_reclaim", "no_killed_task_survives", "check_oom",
              "nothing_swapped_when_idle (at teardown)"]
    summary = {"ok": ok, "invariants": names,
               "runs": results, "seconds": round(time.perf_counter() - t0, 3)}
    if args.json:
        _out(summary)
    else:
        for r in results:
            status = "ok" if not r["violations"] else "VIOLATED"
            extra = (f" ({r['swapped']} pages swapped, {r['oom_kills']} OOM kills)"
                     if "swapped" in r else "")
            print(f"check {r['config']}: {r['steps']} steps{extra}, every invariant after "
                  f"each step: {status}")
            for v in r["violations"]:
                print(f"  {v}")
        print(f"invariants: {', '.join(summary['invariants'])}")  # type: ignore[arg-type]
    return 0 if ok else 1


def _check_system_under_pressure(steps: int, seed: int) -> dict[str, object]:
    """The whole-system walk (processes, files, faults, fork, exit) on the small pressure
    machine with swap, "stress" steps mixed in so that kswapd, direct reclaim, swap and the
    OOM killer run, with every invariant and the oracle after every step, then teardown."""
    import random

    from refmodel.specs.system import PRESSURE, System, random_steps

    s = System(PRESSURE)
    violations: list[str] = []
    try:
        # Every step is checked incrementally (System.check); the full check once more at
        # the end cross-checks the two.
        random_steps(s, random.Random(seed), steps, check=True, stress_weight=10)
        violations += [str(v) for v in s.violations()]
        s.teardown()
    except AssertionError as e:  # an invariant, the oracle or teardown's leak check
        violations.append(str(e))
    ev = s.m.pgdat.vm_events
    return {"config": "system-pressure-24MiB", "steps": steps, "live_blocks": None,
            "swapped": ev.get("PSWPIN", 0) + ev.get("PSWPOUT", 0), "oom_kills": s.oom_kills,
            "violations": violations[:10]}


def _check_address_space(steps: int, seed: int) -> dict[str, object]:
    """Deterministic mmap/munmap/mprotect calls on one mm (hinted, fixed and free placement,
    partial overlaps), with the VMA, page-table and buddy invariants after every step."""
    from refmodel.config import MachineConfig, MiB
    from refmodel.machine import Machine
    from refmodel.specs.buddy import check_buddy
    from refmodel.specs.pagetable import check_pagetables
    from refmodel.specs.vma import check_vma

    rnd = _lcg(seed + 1)
    m = Machine(MachineConfig(memory=64 * MiB))
    mm = m.new_mm()
    base = 0x7FFFF0000000
    violations: list[str] = []
    for _ in range(steps):
        addr = base + rnd(256) * 4096
        length = (1 + rnd(8)) * 4096
        prot = (0, 1, 3, 5, 7)[rnd(5)]
        kind = rnd(5)
        if kind == 0:
            m.mmap(mm, 0, length, prot, 0x22)  # MAP_PRIVATE|MAP_ANONYMOUS
        elif kind == 1:
            m.mmap(mm, addr, length, prot, 0x22 | (0x10, 0x100000, 0)[rnd(3)])
        elif kind == 2:
            m.munmap(mm, addr, length)
        else:
            m.mprotect(mm, addr, length, prot)
        violations += [str(v) for v in check_vma(mm)]
        violations += [str(v) for v in check_pagetables(m.pgdat, [mm])]
        violations += [str(v) for v in check_buddy(m.pgdat)]
        if violations:
            break
    return {"config": "address-space-64MiB", "steps": steps, "vmas": mm.map_count,
            "violations": violations[:10]}


def cmd_prove(args: argparse.Namespace) -> int:
    from refmodel.proofs import all_proofs, run_proof

    t0 = time.perf_counter()
    results = [run_proof(p) for p in all_proofs()]
    total = time.perf_counter() - t0
    ok = all(r.ok for r in results)
    if args.json:
        _out({"ok": ok, "total_seconds": round(total, 3), "proofs": [r.to_json() for r in results]})
    else:
        for r in results:
            verdict = "proved" if r.proved else f"COUNTEREXAMPLE {r.counterexample}"
            broken = "broken variant caught" if r.broken_caught else "BROKEN VARIANT NOT CAUGHT"
            print(f"{r.name:40} {verdict:10} {broken:24} {r.seconds * 1000:8.1f} ms")
        print(f"{len(results)} proofs, {'all proved' if ok else 'FAILURES'}, {total:.2f} s")
    return 0 if ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from refmodel.benchmarks import BENCH_MODULES

    figures: dict[str, float] = {}
    for mod in BENCH_MODULES:
        if args.only and mod not in args.only:
            continue
        m = importlib.import_module(f"refmodel.benchmarks.{mod}")
        if not args.json:
            print(f"running {mod} ...", file=sys.stderr)
        figures.update(m.run(quick=args.quick))
    if args.json:
        _out(figures)
    else:
        for k, v in figures.items():
            print(f"{k:32} {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refmodel", description=__doc__)
    p.add_argument("--version", action="version", version=f"refmodel {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("trace", help="show the 5.10 call tree of a scenario")
    t.add_argument("scenario", nargs="?", default="alloc")
    t.add_argument("--list", action="store_true", help="list the scenarios")
    t.add_argument("--no-files", action="store_true", help="omit kernel file names")
    t.add_argument("--depth", type=non_negative_int, default=None,
                   help="cut each tree below N levels")
    t.add_argument("--json", action="store_true")
    t.set_defaults(fn=cmd_trace)

    c = sub.add_parser("check", help="a short self-check of every invariant")
    c.add_argument("--steps", type=positive_int, default=300)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--json", action="store_true")
    c.set_defaults(fn=cmd_check)

    pr = sub.add_parser("prove", help="run the z3 proofs")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_prove)

    b = sub.add_parser("bench", help="speed and memory figures")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quick", action="store_true", help="smaller workloads")
    b.add_argument("--only", action="append", help="run only this benchmark module")
    b.set_defaults(fn=cmd_bench)

    # Larger commands live beside what they drive; each module adds its own subparsers.
    for mod in SUBCOMMAND_MODULES:
        importlib.import_module(mod).add_subcommands(sub)
    return p


# Each module has add_subcommands(sub: argparse._SubParsersAction) -> None and sets
# ``fn`` (taking the Namespace, returning the exit status) on its parsers.
SUBCOMMAND_MODULES: tuple[str, ...] = ("refmodel.kerneldiff.cli", "refmodel.conformance.cli",
                                      "refmodel.conformance.grade_cli")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fn: Callable[[argparse.Namespace], int] = args.fn
    try:
        return fn(args)
    except BrokenPipeError:
        # the reader went away (`refmodel trace reclaim | head`): stop quietly, and keep
        # the interpreter's final flush from complaining about the closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
