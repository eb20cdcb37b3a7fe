"""Static test vectors: op sequences with the model's answers, for implementers who cannot
run Python in their loop (``refmodel vectors --target T --out DIR``).

Layout (documented in docs/conformance.md)::

    DIR/manifest.json                       {"format": "refmodel-vectors", ...}
    DIR/<target>/strict/<NNNN>.json          exact requests, answers and observations
                                             (slab: requests refer to earlier answers)
    DIR/<target>/invariant/<NNNN>.json       requests (some referring to earlier answers)
                                             and the checks each step is subject to

Vectors are generated deterministically from ``--seed`` with :class:`random.Random` (not
Hypothesis, whose choices may change between versions), so regenerating them gives the same
bytes; CI regenerates the committed set under ``vectors/`` and compares.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from refmodel import __version__
from refmodel.conformance.adapter import in_process
from refmodel.conformance.protocol import JSON
from refmodel.conformance.reference import REFERENCE
from refmodel.conformance.runner import Driver, RunResult, Step, make_counterexample
from refmodel.conformance.targets.base import MODES, Op, Target
from refmodel.conformance.transport import DriveError


@dataclass(slots=True)
class Replayable:
    """One sequence to replay: from a counterexample file or a vector file."""

    target: str
    mode: str
    config: dict[str, JSON]
    ops: list[Op]
    name: str


def _ops(v: JSON) -> list[Op]:
    if not isinstance(v, list):
        raise ValueError("'ops' must be a list")
    return [Op.from_json(o) for o in v]


def load_replayable(path: Path) -> list[Replayable]:
    """Every sequence in a counterexample file, a vector file, or a vector directory."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.name != "manifest.json")
        return [r for p in files for r in load_replayable(p)]
    try:
        doc = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") not in (
            "refmodel-counterexample", "refmodel-vector"):
        raise ValueError(f"{path} is neither a counterexample nor a vector file")
    target, mode, config = doc.get("target"), doc.get("mode"), doc.get("config")
    if not isinstance(target, str) or not isinstance(mode, str) or not isinstance(config, dict):
        raise ValueError(f"{path} lacks target, mode or config")
    if mode not in MODES:
        raise ValueError(f"{path}: mode {mode!r} is not one of {', '.join(MODES)}")
    return [Replayable(target, mode, config, _ops(doc.get("ops")), str(path))]


def replay_vectors(driver: Driver, items: Sequence[Replayable],
                   command: Sequence[str]) -> RunResult:
    """Run every sequence once, in order; stop at the first that fails."""
    import time

    result = RunResult(driver.target.name, driver.mode, dict(driver.config), list(command),
                       driver.hello, Counter())
    t0 = time.perf_counter()
    try:
        driver.start()
        result.hello = driver.hello
        for it in items:
            res = driver.run(it.ops, result.tally)
            result.sequences += 1
            result.steps += len(res.steps)
            if res.failing is not None:
                result.first_failure = res.failures
                result.counterexample = make_counterexample(driver, res)
                result.note = f"failing vector: {it.name}"
                break
    except DriveError as e:
        result.drive_error = e
    finally:
        result.requests = driver.requests
        driver.close()
    result.seconds = time.perf_counter() - t0
    return result


def generate_ops(target: Target, config: dict[str, JSON], rng: random.Random,
                 steps: int) -> list[Op]:
    return [target.random_op(config, rng) for _ in range(steps)]


def _strip(m: JSON) -> JSON:
    return {k: v for k, v in m.items() if k != "id"} if isinstance(m, dict) else m


def _vector(target: Target, config: dict[str, JSON], mode: str, name: str,
            steps: list[Step]) -> dict[str, JSON]:
    refs = target.vector_refs([s.request for s in steps], [s.response or {} for s in steps])
    out_steps: list[JSON] = []
    for i, s in enumerate(steps):
        d: dict[str, JSON] = {"op": s.op.to_json(), "request": _strip(s.request)}
        ref = refs[i]
        if ref and (mode != "strict" or target.refs_in_strict_vectors):
            req = d["request"]
            assert isinstance(req, dict)
            d["request"] = {**req, **ref}
        if mode == "strict":
            d["answer"] = _strip(s.response)
            d["observations"] = {o.what: (o.response or {}).get(o.what)
                                 for o in s.observations}
        else:
            d["checks"] = list[JSON](s.checks)
        out_steps.append(d)
    return {"format": "refmodel-vector", "version": 1, "name": name, "target": target.name,
            "mode": mode, "config": dict(config), "ops": [s.op.to_json() for s in steps],
            "steps": out_steps}


def dump_vector(doc: dict[str, JSON]) -> str:
    """A vector as text: the header keys one per line, each op and each step on one line
    (diffable, and readable without a JSON viewer)."""
    lines = ["{"]
    items = list(doc.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if k in ("ops", "steps") and isinstance(v, list):
            inner = ",\n".join(f"  {json.dumps(x)}" for x in v)
            lines.append(f" {json.dumps(k)}: [\n{inner}\n ]{comma}")
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}{comma}")
    return "\n".join(lines) + "\n}\n"


def write_vectors(target: Target, config: dict[str, JSON], out: Path, modes: Sequence[str],
                  count: int, steps: int, seed: int) -> list[Path]:
    """Generate ``count`` vectors per mode into ``out`` (see the module docstring)."""
    cls = REFERENCE[target.name]
    written: list[Path] = []
    manifest: dict[str, JSON] = {"format": "refmodel-vectors", "version": 1,
                                 "generator": f"refmodel {__version__}"}
    files: dict[str, JSON] = {}
    for mode in modes:
        rng = random.Random(f"{target.name}/{mode}/{seed}")
        driver = Driver(in_process(target.name, cls, config), target, config, mode,
                        record_checks=True)
        driver.start()
        names: list[JSON] = []
        d = out / target.name / mode
        d.mkdir(parents=True, exist_ok=True)
        for k in range(count):
            ops = generate_ops(target, config, rng, steps)
            res = driver.run(ops, Counter())
            if res.failing is not None:  # the model disagrees with itself: a kit bug
                raise RuntimeError(f"the model fails its own {mode} checks: "
                                   f"{res.failures[0].message}")
            name = f"{k:04d}.json"
            doc = _vector(target, config, mode, f"{target.name}-{mode}-{k:04d}", res.steps)
            p = d / name
            p.write_text(dump_vector(doc))
            written.append(p)
            names.append(f"{target.name}/{mode}/{name}")
        driver.close()
        files[mode] = names
    entry: dict[str, JSON] = {"config": dict(config), "seed": seed, "count": count,
                              "steps": steps, "files": files}
    mpath = out / "manifest.json"
    old: dict[str, JSON] = {}
    if mpath.exists():
        try:
            loaded = json.loads(mpath.read_text())
            if isinstance(loaded, dict) and isinstance(loaded.get("targets"), dict):
                old = loaded["targets"]
        except ValueError:
            pass
    manifest["targets"] = {**old, target.name: entry}
    mpath.write_text(json.dumps(manifest, indent=1) + "\n")
    written.append(mpath)
    return written
