"""What every conformance target provides: operations, checks, and a model session.

A sequence is a list of abstract :class:`Op` s (what Hypothesis generates and shrinks). A
:class:`Session` turns each op into a concrete protocol request at the moment it is sent
(``plan``), possibly using earlier answers (a free of "the third live block" needs the pfn
the implementation returned), and checks each answer and observation against the model when
it arrives (``check`` / ``check_observation``), counting passed checks and returning failed
ones. ``needs_sync`` tells the runner which ops must wait until the answers they depend on
have arrived, so that everything else can be pipelined.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from refmodel.conformance.protocol import JSON, Message

MODES = ("strict", "invariant")


@dataclass(frozen=True, slots=True)
class Op:
    """One abstract operation: a name and small integer arguments (indices into the
    session's state, orders, address choices). Its JSON form is ``[name, *args]``."""

    name: str
    args: tuple[int, ...] = ()

    def to_json(self) -> list[JSON]:
        return [self.name, *self.args]

    @staticmethod
    def from_json(v: JSON) -> Op:
        if (not isinstance(v, list) or not v or not isinstance(v[0], str)
                or not all(isinstance(a, int) and not isinstance(a, bool) for a in v[1:])):
            raise ValueError(f"not an op: {v!r}")
        return Op(v[0], tuple(a for a in v[1:] if isinstance(a, int)))

    def __str__(self) -> str:
        return f"{self.name}({', '.join(map(str, self.args))})"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One named check of a target: what it verifies, in which modes, and the observation
    it needs (None: it checks answers to requests)."""

    name: str
    description: str
    modes: tuple[str, ...] = MODES
    observation: str | None = None


@dataclass(slots=True)
class Failure:
    """A failed check at one step: the model's expectation and the implementation's answer."""

    check: str
    message: str
    expected: JSON = None
    actual: JSON = None

    def to_json(self) -> dict[str, JSON]:
        return {"check": self.check, "message": self.message, "expected": self.expected,
                "actual": self.actual}


@dataclass(slots=True)
class Outcome:
    """The result of checking one answer: the model's expected answer and the failures."""

    expected: JSON = None
    failures: list[Failure] = field(default_factory=list)


class Session(ABC):
    """One sequence against the model: plans requests, checks answers and observations."""

    def __init__(self, tally: Counter[str]) -> None:
        self.tally = tally

    def ok(self, check: str) -> None:
        self.tally[check] += 1

    @abstractmethod
    def needs_sync(self, op: Op) -> bool:
        """Whether ``plan(op)`` needs every earlier answer that informs planning."""

    @abstractmethod
    def plan(self, op: Op) -> Message | None:
        """The request for ``op`` (without its id), or None if it does not apply now."""

    def informs_plan(self, request: Message) -> bool:
        """Whether the answer to this request changes what later ops plan."""
        return False

    @abstractmethod
    def check(self, request: Message, response: Message) -> Outcome:
        """Check one answer; raise ProtocolError if it is not a well-formed answer."""

    @abstractmethod
    def check_observation(self, what: str, response: Message) -> Outcome:
        """Check one observation taken after the latest checked step."""

    def trace(self, steps: list[tuple[Message, Message]], failing: int) -> tuple[str, JSON]:
        """The model's call trace of step ``failing`` after replaying the earlier steps
        (request, answer) as the implementation answered them, and what the model itself
        answers there. Default: no trace."""
        return "", None


class Target(ABC):
    """A part of the model that implementations are checked against."""

    name: str = ""
    description: str = ""
    observations: tuple[str, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    refs_in_strict_vectors: bool = False
    """Whether strict vectors also write requests as references to earlier answers (true
    where addresses are the implementation's own, as in the slab target)."""

    @abstractmethod
    def default_config(self) -> dict[str, JSON]: ...

    @abstractmethod
    def validate_config(self, config: dict[str, JSON]) -> dict[str, JSON]:
        """The full configuration (defaults filled in); ValueError if it is invalid."""

    @abstractmethod
    def ops(self, config: dict[str, JSON]) -> st.SearchStrategy[Op]:
        """The Hypothesis strategy of one abstract op."""

    @abstractmethod
    def session(self, config: dict[str, JSON], mode: str, observations: frozenset[str],
                tally: Counter[str]) -> Session: ...

    @abstractmethod
    def random_op(self, config: dict[str, JSON], rng: random.Random) -> Op:
        """One op from a plain PRNG, for deterministic vectors (same spread as ``ops``)."""

    def vector_refs(self, requests: list[Message],
                    responses: list[Message]) -> list[dict[str, JSON] | None]:
        """For invariant vectors: request fields that refer to earlier answers, per step
        (e.g. ``{"pfn": {"ref": 3, "add": 1}}``). Default: none."""
        return [None] * len(requests)

    def check_names(self, mode: str) -> list[CheckSpec]:
        return [c for c in self.checks if mode in c.modes]


def op_builder(name: str) -> Callable[..., Op]:
    """A constructor of ``Op(name, args)`` for ``st.builds``."""
    return lambda *args: Op(name, tuple(args))


def parse_config_items(items: Sequence[str]) -> dict[str, JSON]:
    """``KEY=VALUE`` strings (``--config``, a grading task's config) as a config dict: an
    int where the value reads as one, else JSON, else the string itself."""
    out: dict[str, JSON] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--config wants KEY=VALUE, got {item!r}")
        try:
            out[key] = int(raw, 0)
        except ValueError:
            try:
                out[key] = json.loads(raw)
            except ValueError:
                out[key] = raw
    return out


def config_int(config: dict[str, JSON], key: str, lo: int, hi: int) -> int:
    """An integer configuration value inside [lo, hi]; ValueError otherwise."""
    v = config.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"config {key} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


class PagingLevelsConfig:
    """The configuration of the targets that run on one address space: ``paging_levels``
    (4 or 5), nothing else. Mixed into the pagetable, vma and mm targets."""

    name: str

    def default_config(self) -> dict[str, JSON]:
        return {"paging_levels": 4}

    def validate_config(self, config: dict[str, JSON]) -> dict[str, JSON]:
        full = {**self.default_config(), **config}
        unknown = set(full) - {"paging_levels"}
        if unknown:
            raise ValueError(f"unknown {self.name} config key(s): {', '.join(sorted(unknown))}")
        if full["paging_levels"] not in (4, 5):
            raise ValueError("config paging_levels must be 4 or 5")
        config_int(full, "paging_levels", 4, 5)
        return full


def tuple_ops(bounds: tuple[int, ...], decode: Callable[[tuple[int, ...]], Op]
              ) -> st.SearchStrategy[Op]:
    """Ops drawn as a tuple of integers in [0, bound) each, decoded by the target."""
    return st.tuples(*(st.integers(0, b - 1) for b in bounds)).map(decode)


def random_tuple_op(bounds: tuple[int, ...], decode: Callable[[tuple[int, ...]], Op],
                    rng: random.Random) -> Op:
    """The same op space as :func:`tuple_ops`, drawn with a seeded PRNG (vectors)."""
    return decode(tuple(rng.randrange(b) for b in bounds))
