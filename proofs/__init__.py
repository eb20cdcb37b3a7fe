"""z3 proofs over refmodel's own arithmetic. Installed as ``refmodel.proofs``.

Each proof runs a model function on z3 bit-vectors (not a second copy of its formula) and
asks z3 for a counterexample to the property. Each also has a deliberately broken variant
that must yield a counterexample, so a proof that cannot fail is caught.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Proof:
    """A named property; ``check`` returns None when proved, else a counterexample text.
    ``broken`` runs the same property on a deliberately wrong function and must fail."""

    name: str
    check: Callable[[], str | None]
    broken: Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class ProofResult:
    name: str
    proved: bool
    counterexample: str | None
    broken_caught: bool
    broken_counterexample: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.proved and self.broken_caught

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "result": "proved" if self.proved else "counterexample",
            "counterexample": self.counterexample,
            "broken_variant": "caught" if self.broken_caught else "NOT caught",
            "broken_counterexample": self.broken_counterexample,
            "seconds": round(self.seconds, 4),
        }


def run_proof(p: Proof) -> ProofResult:
    t0 = time.perf_counter()
    cex = p.check()
    broken = p.broken()
    return ProofResult(p.name, cex is None, cex, broken is not None, broken,
                       time.perf_counter() - t0)


def all_proofs() -> list[Proof]:
    """Every proof of every module listed in PROOF_MODULES."""
    import importlib

    out: list[Proof] = []
    for mod in PROOF_MODULES:
        m = importlib.import_module(f"refmodel.proofs.{mod}")
        out.extend(m.PROOFS)
    return out


PROOF_MODULES: tuple[str, ...] = ("buddy", "pagetable")
