"""Run the same mmap/munmap/mprotect sequences on the live kernel and on the model.

The host side is a child process (refmodel.kerneldiff.child) that works only inside a private
window of its own address space, far from anything else it maps. The model side replays the
same calls on a fresh model address space at the same addresses. After every step the return
values (errno included) and the VMAs inside the window (start, end, rwx, private/shared) are
compared. A divergence is shrunk to a minimal sequence that still diverges.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from refmodel.kerneldiff.deltas import HOST_DELTAS, Delta

PAGE = 4096
WINDOW_PAGES = 256

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE = 0x01, 0x02
MAP_FIXED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x10, 0x20, 0x100000

Op = dict[str, int | str]


@dataclass(slots=True)
class StepResult:
    ret: int | str
    maps: list[str]
    flags: list[int] = field(default_factory=list)  # the model's vm_flags per entry


@dataclass(slots=True)
class Divergence:
    """A minimal sequence and the first step where host and model differ."""

    steps: list[Op]
    index: int
    host: StepResult
    model: StepResult
    trace: str = ""

    def to_json(self) -> dict[str, object]:
        return {"steps": self.steps, "diverging_step": self.index,
                "host": {"ret": self.host.ret, "vmas": self.host.maps},
                "model": {"ret": self.model.ret, "vmas": self.model.maps},
                "model_trace": self.trace}


@dataclass(slots=True)
class Report:
    sequences: int = 0
    steps: int = 0
    agreed: int = 0
    diverged: int = 0
    deltas_applied: dict[str, int] = field(default_factory=dict)
    host_kernel: str = ""
    counterexamples: list[Divergence] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "sequences": self.sequences, "steps": self.steps, "agreed": self.agreed,
            "diverged": self.diverged, "deltas_applied": sum(self.deltas_applied.values()),
            "deltas_by_name": dict(self.deltas_applied), "host_kernel": self.host_kernel,
            "steps_per_s": round(self.steps / self.seconds, 1) if self.seconds else None,
            "counterexamples": [c.to_json() for c in self.counterexamples],
        }


class HostSide:
    """The child process holding the window; restarted for every sequence."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.base = 0
        self.kernel = ""

    def start(self) -> None:
        self.stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refmodel.kerneldiff.child"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1)
        resp = self._call({"op": "window", "size": WINDOW_PAGES * PAGE})
        self.base = int(resp["base"])  # type: ignore[call-overload]
        self.kernel = str(resp["kernel"])

    def _call(self, req: dict[str, object]) -> dict[str, object]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("kernel-diff child died")
        out: dict[str, object] = json.loads(line)
        return out

    def apply(self, op: Op) -> StepResult:
        req: dict[str, object] = dict(op)
        req["addr"] = self.base + int(op["addr"]) if op.get("rel", 1) else int(op["addr"])
        req.pop("rel", None)
        resp = self._call(req)
        ret = resp["ret"]
        if isinstance(ret, int) and ret >= 0 and ret != 0:
            ret = ret - self.base
        maps = [_rebase(m, self.base) for m in resp["maps"]]  # type: ignore[attr-defined]
        return StepResult(ret if isinstance(ret, int | str) else str(ret), maps)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _rebase(line: str, base: int) -> str:
    rng, perms = line.split()
    lo, hi = rng.split("-")
    return f"{int(lo, 16) - base:#x}-{int(hi, 16) - base:#x} {perms}"


ModelRunner = Callable[[list[Op], int, bool], tuple[list[StepResult], str]]


def gen_sequence(rng: random.Random, steps: int) -> list[Op]:
    """A random sequence of calls inside the window (addresses relative to its base)."""
    ops: list[Op] = []
    prots = [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
             PROT_READ | PROT_WRITE | PROT_EXEC, PROT_WRITE]
    for _ in range(steps):
        off = rng.randrange(WINDOW_PAGES - 16) * PAGE
        length = rng.choice((1, 1, 2, 3, 4, 8, 16)) * PAGE
        if rng.random() < 0.05:
            length = rng.choice((0, length - 100, length + 1))
        if rng.random() < 0.05:
            off += rng.choice((1, 100, 2048))
        kind = rng.random()
        if kind < 0.45:
            placement = rng.random()
            if placement < 0.5:
                extra = MAP_FIXED
            elif placement < 0.8:
                extra = MAP_FIXED_NOREPLACE
            else:
                extra = 0  # a hint only
            share = MAP_SHARED if rng.random() < 0.1 else MAP_PRIVATE
            ops.append({"op": "mmap", "addr": off, "len": length,
                        "prot": rng.choice(prots), "flags": share | MAP_ANONYMOUS | extra})
        elif kind < 0.7:
            ops.append({"op": "munmap", "addr": off, "len": length})
        else:
            ops.append({"op": "mprotect", "addr": off, "len": length, "prot": rng.choice(prots)})
    return ops


def _apply_deltas(op: Op, host: StepResult, model: StepResult,
                  use: bool) -> tuple[bool, Delta | None]:
    if host.ret == model.ret and host.maps == model.maps:
        return True, None
    if use:
        for d in HOST_DELTAS:
            if d.explains(op, host, model):
                return True, d
    return False, None


def run_host(host: HostSide, steps: list[Op]) -> list[StepResult]:
    """Run a sequence in a clean window (the child is started once and reset between runs)."""
    if host.proc is None or host.proc.poll() is not None:
        host.start()
    resp = host._call({"op": "reset"})
    if resp.get("ret") != 0 or resp.get("maps"):
        raise RuntimeError(f"kernel-diff child could not reset its window: {resp}")
    return [host.apply(op) for op in steps]


def first_divergence(steps: list[Op], host_res: list[StepResult], model_res: list[StepResult],
                     use_deltas: bool) -> tuple[int | None, dict[str, int]]:
    applied: dict[str, int] = {}
    for i, (op, h, m) in enumerate(zip(steps, host_res, model_res, strict=True)):
        ok, delta = _apply_deltas(op, h, m, use_deltas)
        if delta is not None:
            applied[delta.name] = applied.get(delta.name, 0) + 1
        if not ok:
            return i, applied
    return None, applied


def shrink(steps: list[Op], diverges: Callable[[list[Op]], bool]) -> list[Op]:
    """Delta debugging: drop chunks, then single steps, while the sequence still diverges."""
    cur = list(steps)
    chunk = max(1, len(cur) // 2)
    while chunk >= 1:
        i = 0
        changed = False
        while i < len(cur):
            cand = cur[:i] + cur[i + chunk:]
            if cand and diverges(cand):
                cur = cand
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return cur


def kernel_diff(model: ModelRunner, sequences: int, steps: int, seed: int, use_deltas: bool,
                progress: Callable[[int, int], None] | None = None) -> Report:
    rng = random.Random(seed)
    rep = Report()
    host = HostSide()
    t0 = time.perf_counter()
    for n in range(sequences):
        seq = gen_sequence(rng, steps)
        host_res = run_host(host, seq)
        rep.host_kernel = host.kernel
        model_res, _ = model(seq, host.base, False)
        idx, applied = first_divergence(seq, host_res, model_res, use_deltas)
        for k, v in applied.items():
            rep.deltas_applied[k] = rep.deltas_applied.get(k, 0) + v
        rep.sequences += 1
        rep.steps += len(seq)
        if idx is None:
            rep.agreed += 1
        else:
            rep.diverged += 1
            if len(rep.counterexamples) < 3:
                rep.counterexamples.append(_minimise(model, host, seq[: idx + 1], use_deltas))
        if progress is not None:
            progress(n + 1, sequences)
    rep.seconds = time.perf_counter() - t0
    host.stop()
    return rep


def _minimise(model: ModelRunner, host: HostSide, seq: list[Op], use_deltas: bool) -> Divergence:
    def diverges(cand: list[Op]) -> bool:
        h = run_host(host, cand)
        m, _ = model(cand, host.base, False)
        return first_divergence(cand, h, m, use_deltas)[0] is not None

    small = shrink(seq, diverges)
    h = run_host(host, small)
    m, _ = model(small, host.base, False)
    idx, _ = first_divergence(small, h, m, use_deltas)
    assert idx is not None
    small = small[: idx + 1]
    _, trace = model(small, host.base, True)
    return Divergence(small, idx, h[idx], m[idx], trace)
