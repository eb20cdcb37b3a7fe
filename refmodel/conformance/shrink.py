"""A deterministic greedy shrinker, run after Hypothesis' own shrinking.

Hypothesis shrinks the failing sequence first; this pass re-runs the implementation to
delete chunks of steps (halves, quarters, ... single steps), then pairs of steps (an
allocation and the free that refers to it only disappear together), then lowers each op's
arguments towards zero, until nothing changes. It is deterministic (a fixed order of
attempts) and bounded by ``budget`` re-runs. A candidate on which the implementation cannot
be driven (a crash) does not count as failing the same way: it is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

from refmodel.conformance.runner import Driver, SequenceResult, run_ops
from refmodel.conformance.targets.base import Op
from refmodel.conformance.transport import DriveError


class _Budget:
    def __init__(self, n: int) -> None:
        self.left = n


def _fails(driver: Driver, ops: list[Op], budget: _Budget) -> SequenceResult | None:
    if not ops or budget.left <= 0:
        return None
    budget.left -= 1
    try:
        res = run_ops(driver, ops)
    except DriveError:
        if not driver.recover():
            raise
        return None
    return res if res.failing is not None else None


def _deletions(n: int) -> Iterator[tuple[int, ...]]:
    """Index sets to delete: chunks from n/2 down to 1, then pairs (later ones first)."""
    k = n // 2
    while k >= 1:
        for start in range(n - k, -1, -1):
            yield tuple(range(start, start + k))
        k //= 2
    if n <= 24:
        for j in range(n - 1, 0, -1):
            for i in range(j - 2, -1, -1):
                yield (i, j)


def shrink_ops(driver: Driver, ops: list[Op], best: SequenceResult,
               budget: int = 400) -> SequenceResult:
    """The smallest failing sequence found from ``ops`` (which fails as ``best``)."""
    b = _Budget(budget)
    changed = True
    while changed and b.left > 0:
        changed = False
        for drop in _deletions(len(ops)):
            if b.left <= 0:
                break
            cand = [op for i, op in enumerate(ops) if i not in drop]
            res = _fails(driver, cand, b)
            if res is not None:
                ops = [s.op for s in res.steps]
                best = res
                changed = True
                break
        if changed:
            continue
        for i in range(len(ops)):
            for j in range(len(ops[i].args)):
                for v in _smaller(ops[i].args[j]):
                    op = ops[i]
                    cand = [*ops[:i], Op(op.name, (*op.args[:j], v, *op.args[j + 1:])),
                            *ops[i + 1:]]
                    res = _fails(driver, cand, b)
                    if res is not None and len(res.steps) <= len(ops):
                        ops = [s.op for s in res.steps]
                        best = res
                        changed = True
                        break
                if changed:
                    break
            if changed:
                break
    return best


def _smaller(v: int) -> list[int]:
    if v <= 0:
        return []
    out = [0]
    if v > 1:
        out.append(v // 2)
    if v - 1 not in out:
        out.append(v - 1)
    return out
