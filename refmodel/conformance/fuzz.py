"""``refmodel fuzz``: run state machines for a time budget, keeping failures.

``--model`` runs the model's own state machines (today: the standalone-buddy and the
page-table state machines of tests/, which are ordinary Hypothesis tests) until the budget
is spent; ``--target T`` drives an implementation with the conformance runner. Both keep
found failures in Hypothesis' example database (a directory, ``--database``), so the next
run replays them first. docs/conformance.md shows how CI keeps that directory between runs
and how workers share one (a shared directory, or Hypothesis' Redis backend), and how to
run the same tests under HypoFuzz.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from refmodel.conformance.runner import Driver, conform
from refmodel.conformance.targets.base import Target

BATCH = 10  # examples per machine per turn: the machines take turns until the budget is spent


def _db(path: str | None) -> ExampleDatabase | None:
    return None if path is None else DirectoryBasedExampleDatabase(path)


def fuzz_target(driver: Driver, target: Target, args: argparse.Namespace,
                database: str | None) -> int:
    """Drive the implementation until the budget is spent or it fails."""
    from refmodel.conformance.scorecard import render_terminal, scorecard

    budget = args.minutes * 60
    t0 = time.perf_counter()
    rounds = 0
    total: Counter[str] = Counter()
    seqs = steps = 0
    seed = args.seed
    while True:
        rounds += 1
        result = conform(driver, 200, args.steps, None if seed is None else seed + rounds,
                         database=_db(database), command=args.command,
                         deadline_s=max(1.0, budget - (time.perf_counter() - t0)))
        total.update(result.tally)
        seqs += result.sequences
        steps += result.steps
        if not args.json:
            print(f"\rfuzz {target.name}: {seqs} sequences, {steps} steps, "
                  f"{time.perf_counter() - t0:.0f}/{budget:.0f} s", end="", file=sys.stderr,
                  flush=True)
        if result.status or time.perf_counter() - t0 >= budget:
            break
    if not args.json:
        print(file=sys.stderr)
    result.tally = total
    result.sequences, result.steps = seqs, steps
    result.seconds = time.perf_counter() - t0
    card = scorecard(result, target)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        render_terminal(card)
    return result.status


def fuzz_model(minutes: float, database: str | None, as_json: bool, seed: int | None) -> int:
    """Run the model's own state machines (buddy, page tables) until the budget is spent."""
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    from refmodel.conformance.model_machines import load_machines

    machines = load_machines()
    if not machines:
        # An installed package has no tests/: drive the installed whole-system driver
        # (refmodel.specs.system) with a seeded PRNG instead, every invariant after each step.
        return fuzz_system(minutes, as_json, seed)
    budget = minutes * 60
    t0 = time.perf_counter()
    runs: Counter[str] = Counter()
    failure: tuple[str, str] | None = None
    db = _db(database)
    while time.perf_counter() - t0 < budget and failure is None:
        for name, machine in machines.items():
            s = settings(max_examples=BATCH, stateful_step_count=50, deadline=None,
                         database=db, suppress_health_check=list(HealthCheck),
                         print_blob=True, derandomize=False)
            try:
                run_state_machine_as_test(machine, settings=s)
            except Exception as e:  # a failing example: Hypothesis already printed it
                failure = (name, f"{type(e).__name__}: {e}")
                break
            runs[name] += BATCH
            if not as_json:
                done = ", ".join(f"{k} {v}" for k, v in runs.items())
                print(f"\rfuzz --model: {done} examples, {time.perf_counter() - t0:.0f}/"
                      f"{budget:.0f} s", end="", file=sys.stderr, flush=True)
            if time.perf_counter() - t0 >= budget:
                break
    if not as_json:
        print(file=sys.stderr)
    doc = {"ok": failure is None, "examples": dict(runs),
           "seconds": round(time.perf_counter() - t0, 1), "database": database,
           "failure": None if failure is None else {"machine": failure[0],
                                                    "error": failure[1][:2000]}}
    if as_json:
        print(json.dumps(doc, indent=2))
    elif failure is None:
        print(f"no failure in {doc['seconds']} s: " + ", ".join(
            f"{k} {v} examples" for k, v in runs.items()))
    else:
        print(f"FAILURE in {failure[0]}:\n{failure[1]}")
    return 0 if failure is None else 1


def fuzz_system(minutes: float, as_json: bool, seed: int | None) -> int:
    """The whole-system driver of refmodel.specs.system for a time budget: fresh systems of
    200 random steps each, seeds counting up from ``seed``; the first failure is reported
    with the seed that replays it."""
    import random

    from refmodel.specs.system import System, random_steps

    budget = minutes * 60
    t0 = time.perf_counter()
    seed0 = seed or 0
    n = 0
    steps = 0
    failure: str | None = None
    while time.perf_counter() - t0 < budget:
        s = System()
        try:
            random_steps(s, random.Random(seed0 + n), 200)
        except AssertionError as e:
            failure = f"seed {seed0 + n}, step {s.steps}: {e}"
            break
        n += 1
        steps += s.steps
        if not as_json:
            print(f"\rfuzz --model (system driver): {n} systems, {steps} checked steps, "
                  f"{time.perf_counter() - t0:.0f}/{budget:.0f} s", end="", file=sys.stderr,
                  flush=True)
    if not as_json:
        print(file=sys.stderr)
    doc = {"ok": failure is None, "systems": n, "steps": steps,
           "seconds": round(time.perf_counter() - t0, 1), "failure": failure}
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"no failure in {doc['seconds']} s ({steps} checked steps)" if failure is None
              else f"FAILURE: {failure}")
    return 0 if failure is None else 1
