"""Small helpers for running model functions on z3 bit-vectors."""

from __future__ import annotations

from typing import cast

import z3


def bv(name: str, width: int = 64) -> z3.BitVecRef:
    return cast(z3.BitVecRef, z3.BitVec(name, width))


def counterexample(
    claim: z3.BoolRef, assumptions: list[z3.BoolRef], *shown: z3.ExprRef
) -> str | None:
    """None if ``assumptions ⇒ claim`` holds for all values; else the values z3 found."""
    s = z3.Solver()
    s.add(*assumptions)
    s.add(z3.Not(claim))
    r = s.check()
    if r == z3.unsat:
        return None
    if r != z3.sat:
        return f"z3 returned {r}"
    m = s.model()
    return ", ".join(f"{e}={m.eval(e, model_completion=True)}" for e in shown)
