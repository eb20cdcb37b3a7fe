"""``refmodel kernel-diff``: the subcommand's arguments and output."""

from __future__ import annotations

import argparse
import json
import sys

from refmodel.kerneldiff.deltas import HOST_DELTAS


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    k = sub.add_parser("kernel-diff", help="compare the VMA model with the live kernel")
    k.add_argument("--sequences", type=int, default=50)
    k.add_argument("--steps", type=int, default=30)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--host-deltas", action="store_true",
                   help="apply the documented 5.10-versus-host deltas (docs/kernel-diff.md)")
    k.add_argument("--json", action="store_true")
    k.set_defaults(fn=cmd_kernel_diff)


def cmd_kernel_diff(args: argparse.Namespace) -> int:
    from refmodel.kerneldiff.driver import kernel_diff
    from refmodel.kerneldiff.model_side import run_model

    if args.sequences < 1 or args.steps < 1:
        print("kernel-diff: --sequences and --steps must be at least 1", file=sys.stderr)
        return 2
    try:
        open("/proc/self/maps").close()
    except OSError:
        print("kernel-diff: this system has no /proc/self/maps", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\r{done}/{total} sequences", end="", file=sys.stderr, flush=True)

    rep = kernel_diff(run_model, args.sequences, args.steps, args.seed, args.host_deltas,
                      progress)
    if not args.json:
        print(file=sys.stderr)
    doc = rep.to_json()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0 if rep.diverged == 0 else 1
    print(f"host kernel {rep.host_kernel}; {rep.sequences} sequences of {args.steps} steps "
          f"({rep.steps} steps, {doc['steps_per_s']} steps/s)")
    print(f"agreed {rep.agreed}, diverged {rep.diverged}, steps explained by host deltas "
          f"{doc['deltas_applied']}")
    for name, n in rep.deltas_applied.items():
        d = next(x for x in HOST_DELTAS if x.name == name)
        print(f"  delta {name} ({d.since}): {n} step(s) — {d.change}")
    for i, c in enumerate(rep.counterexamples):
        print(f"\ncounterexample {i + 1}: {len(c.steps)} steps, diverging at step {c.index}")
        for j, op in enumerate(c.steps):
            mark = "=>" if j == c.index else "  "
            print(f" {mark} {j}: {op}")
        print(f"  host : ret={c.host.ret} vmas={c.host.maps}")
        print(f"  model: ret={c.model.ret} vmas={c.model.maps}")
        if c.trace:
            print("  model trace of the diverging step:")
            print("    " + c.trace.replace("\n", "\n    "))
    return 0 if rep.diverged == 0 else 1
