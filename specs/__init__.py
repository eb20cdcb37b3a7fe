"""Spec invariants: pure predicates over the model's state, each returning readable
violations (an empty list when the property holds). Installed as ``refmodel.specs``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: which property, and a sentence a grader can read."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"
