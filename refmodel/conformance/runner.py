"""The runner: drive sequences against an implementation, check them, shrink failures.

:class:`Driver` runs one sequence of abstract ops with pipelining: every op whose request does
not depend on an outstanding answer is written at once (up to a window), and answers are
checked in order as they arrive. :func:`conform` lets Hypothesis generate the sequences and
shrink the first divergence, then :mod:`refmodel.conformance.shrink` minimises it further,
and the model's call trace of the failing step is added.
"""

from __future__ import annotations

import collections
import gc
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase
from hypothesis.errors import Flaky, HypothesisException

from refmodel.conformance.protocol import JSON, Message, ProtocolError
from refmodel.conformance.targets.base import Failure, Op, Session, Target
from refmodel.conformance.transport import DriveError, Hello, Transport

WINDOW = 512


class BadOp(ValueError):
    """A replayed op its target cannot plan (wrong arguments)."""


@dataclass(slots=True)
class Observation:
    what: str
    response: Message | None = None
    expected: JSON = None
    failures: list[Failure] = field(default_factory=list)


@dataclass(slots=True)
class Step:
    """One executed step: the op, its request and answer, what the model expected."""

    op: Op
    request: Message
    response: Message | None = None
    expected: JSON = None
    failures: list[Failure] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # filled with record_checks

    def to_json(self) -> dict[str, JSON]:
        req = {k: v for k, v in self.request.items() if k != "id"}
        resp = None if self.response is None else {
            k: v for k, v in self.response.items() if k != "id"}
        d: dict[str, JSON] = {"op": self.op.to_json(), "request": req, "response": resp,
                              "expected": self.expected}
        if self.observations:
            d["observations"] = {
                o.what: {"response": None if o.response is None else {
                    k: v for k, v in o.response.items() if k != "id"},
                    "expected": o.expected} for o in self.observations}
        if self.failures or any(o.failures for o in self.observations):
            d["failures"] = [f.to_json() for f in self.all_failures()]
        return d

    def all_failures(self) -> list[Failure]:
        return [*self.failures, *(f for o in self.observations for f in o.failures)]


@dataclass(slots=True)
class SequenceResult:
    steps: list[Step]
    failing: int | None = None  # index into steps
    session: Session | None = None

    @property
    def failures(self) -> list[Failure]:
        return [] if self.failing is None else self.steps[self.failing].all_failures()


class Driver:
    """Runs sequences against one started implementation."""

    def __init__(self, transport: Transport, target: Target, config: dict[str, JSON],
                 mode: str, observe_every: int = 1, window: int = WINDOW,
                 record_checks: bool = False) -> None:
        self.transport = transport
        self.target = target
        self.config = config
        self.mode = mode
        self.observe_every = observe_every
        self.window = window
        self.record_checks = record_checks
        self.hello = Hello()
        self.observations: frozenset[str] = frozenset()
        self._next_id = 1
        self._fresh = False
        self.requests = 0

    def start(self) -> Hello:
        self.hello = self.transport.start()
        self.observations = frozenset(o for o in self.hello.observations
                                      if o in self.target.observations)
        self._fresh = True
        return self.hello

    def close(self) -> None:
        self.transport.close()

    def recover(self) -> bool:
        """Restart the implementation after it misbehaved; False if it cannot restart."""
        try:
            self.transport.restart()
        except DriveError:
            return False
        self._fresh = True
        return True

    def _id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def run(self, ops: Sequence[Op], tally: Counter[str]) -> SequenceResult:
        """Run one sequence from the initial state. DriveError if the implementation could
        not be driven."""
        # A long sequence keeps every step for its report: acyclic objects that the cyclic
        # collector would otherwise scan again and again.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(ops, tally)
        finally:
            if was_enabled:
                gc.enable()

    def _run(self, ops: Sequence[Op], tally: Counter[str]) -> SequenceResult:
        session = self.target.session(self.config, self.mode, self.observations, tally)
        steps: list[Step] = []
        result = SequenceResult(steps, None, session)
        # outstanding: (request id, step index, observation or None, informs planning)
        outstanding: collections.deque[tuple[int, int, Observation | None, bool]] = (
            collections.deque())
        first: list[Message] = []
        if not self._fresh:
            if self.hello.reset:
                rid = self._id()
                first.append({"id": rid, "op": "reset"})
                outstanding.append((rid, -1, None, False))
            else:
                self.transport.restart()
        self._fresh = False
        observe = sorted(self.observations)
        every = self.observe_every
        i = 0
        n_ops = len(ops)
        informing = 0
        failed = False
        transport = self.transport
        while True:
            batch = first
            first = []
            while not failed and i < n_ops and len(outstanding) < self.window:
                op = ops[i]
                if informing and session.needs_sync(op):
                    break
                i += 1
                try:
                    req = session.plan(op)
                except (IndexError, KeyError, TypeError, ValueError) as e:
                    # only a replayed file can hold such an op: generated ones always fit
                    raise BadOp(f"op {op} does not fit the {self.target.name} target "
                                f"({type(e).__name__}: {e})") from None
                if req is None:
                    continue
                rid = self._id()
                req["id"] = rid
                informs = session.informs_plan(req)
                informing += informs
                steps.append(Step(op, req))
                batch.append(req)
                si = len(steps) - 1
                outstanding.append((rid, si, None, informs))
                if observe and (len(steps) % every == 0 or i == n_ops):
                    for what in observe:
                        oid = self._id()
                        new_ob = Observation(what)
                        steps[si].observations.append(new_ob)
                        batch.append({"id": oid, "op": "observe", "what": what})
                        outstanding.append((oid, si, new_ob, False))
            if batch:
                self.requests += len(batch)
                transport.send(batch)
            if not outstanding:
                break
            try:
                got = transport.receive(1)
            except DriveError:
                if not failed:
                    raise
                # It misbehaved after diverging: keep the divergence, start afresh.
                if not self.recover():
                    raise
                break
            for resp in got:
                if not outstanding:
                    raise DriveError("protocol", "an answer arrived with no request "
                                     "outstanding", seen=str(resp)[:200])
                rid, si, ob, informs = outstanding.popleft()
                informing -= informs
                if resp.get("id") != rid:
                    raise DriveError("protocol", f"answer id {resp.get('id')!r}, expected "
                                     f"{rid} (answers must come in request order)",
                                     seen=str(resp)[:200])
                if failed:
                    continue
                try:
                    if si < 0:
                        if resp.get("ok") is not True:
                            raise ProtocolError(f"reset must answer {{\"ok\": true}}: {resp}")
                        continue
                    step = steps[si]
                    before = tally.copy() if self.record_checks else None
                    if ob is None:
                        step.response = resp
                        out = session.check(step.request, resp)
                        step.expected = out.expected
                        step.failures = out.failures
                    else:
                        ob.response = resp
                        if "error" in resp:
                            raise ProtocolError(f"observe {ob.what!r} was refused although "
                                                f"the hello offered it: {resp}")
                        out = session.check_observation(ob.what, resp)
                        ob.expected = out.expected
                        ob.failures = out.failures
                    if before is not None:
                        step.checks += [k for k in tally if tally[k] != before.get(k, 0)]
                except ProtocolError as e:
                    raise DriveError("protocol", str(e), seen=str(resp)[:200]) from None
                if out.failures:
                    failed = True
                    result.failing = si
        if result.failing is not None:
            del steps[result.failing + 1:]
            steps[-1].observations = [o for o in steps[-1].observations
                                      if o.response is not None]
        return result


@dataclass(slots=True)
class Counterexample:
    """A minimal failing sequence, replayable, with the model's side at the failing step."""

    target: str
    mode: str
    config: dict[str, JSON]
    steps: list[Step]
    trace: str = ""
    model_answer: JSON = None

    @property
    def failures(self) -> list[Failure]:
        return self.steps[-1].all_failures() if self.steps else []

    def to_json(self) -> dict[str, JSON]:
        return {
            "format": "refmodel-counterexample", "version": 1, "target": self.target,
            "mode": self.mode, "config": dict(self.config),
            "ops": [s.op.to_json() for s in self.steps],
            "steps": [s.to_json() for s in self.steps],
            "failing_step": len(self.steps) - 1,
            "failures": [f.to_json() for f in self.failures],
            "model_answer": self.model_answer,
            "trace": self.trace,
        }


@dataclass(slots=True)
class RunResult:
    target: str
    mode: str
    config: dict[str, JSON]
    command: list[str]
    hello: Hello
    tally: Counter[str]
    sequences: int = 0
    steps: int = 0
    requests: int = 0
    seconds: float = 0.0
    seed: int | None = None
    counterexample: Counterexample | None = None
    first_failure: list[Failure] = field(default_factory=list)
    drive_error: DriveError | None = None
    drive_error_ops: list[Op] = field(default_factory=list)
    note: str = ""

    @property
    def status(self) -> int:
        """0 conforming, 1 not conforming, 2 could not be driven."""
        if self.drive_error is not None:
            return 2
        return 1 if self.counterexample is not None else 0


class _Abort(BaseException):
    """Stops Hypothesis at once (a DriveError is not something to shrink)."""


class _Divergence(Exception):
    pass


Progress = Callable[[int, int], None]


def sequences_strategy(target: Target, config: dict[str, JSON],
                       steps: int) -> st.SearchStrategy[list[Op]]:
    """Sequences of 1..steps ops, every length equally likely (st.lists alone favours
    short ones); shrinking the length truncates the sequence, and the greedy pass of
    :mod:`refmodel.conformance.shrink` deletes steps from the middle."""
    op = target.ops(config)
    return st.integers(1, max(1, steps)).flatmap(
        lambda n: st.lists(op, min_size=n, max_size=n))


def make_counterexample(driver: Driver, res: SequenceResult) -> Counterexample:
    steps = res.steps
    trace, answer = "", None
    if res.session is not None and steps:
        pairs = [(s.request, s.response or {}) for s in steps]
        try:
            trace, answer = res.session.trace(pairs, len(steps) - 1)
        except Exception as e:  # the trace is a courtesy; never lose the counterexample
            trace = f"(no trace: {type(e).__name__}: {e})"
    return Counterexample(driver.target.name, driver.mode, dict(driver.config), steps, trace,
                          answer)


def run_ops(driver: Driver, ops: Sequence[Op]) -> SequenceResult:
    return driver.run(ops, Counter())


def conform(driver: Driver, sequences: int, steps: int, seed_: int | None,
            progress: Progress | None = None, database: ExampleDatabase | None = None,
            use_shrinker: bool = True, command: Sequence[str] = (),
            deadline_s: float | None = None, hyp_shrink: bool = False) -> RunResult:
    """Run up to ``sequences`` generated sequences of up to ``steps`` ops; shrink the first
    failure. ``deadline_s`` stops generating new sequences after that many seconds.

    Hypothesis generates (deterministically for a seed) and stops at the first failure; the
    kit's own shrinker (:mod:`refmodel.conformance.shrink`) minimises it, re-running ops
    directly, which is much faster than Hypothesis' shrinker re-drawing every candidate and
    as good on these sequences. ``hyp_shrink=True`` runs Hypothesis' shrinker first too."""
    target = driver.target
    result = RunResult(target.name, driver.mode, dict(driver.config), list(command),
                       driver.hello, Counter(), seed=seed_)
    t0 = time.perf_counter()
    try:
        driver.start()
    except DriveError as e:
        driver.close()  # a failed handshake must not leave the implementation running
        result.drive_error = e
        return result
    result.hello = driver.hello
    tally = result.tally
    scratch: Counter[str] = Counter()
    found: list[SequenceResult] = []
    ops_strategy = sequences_strategy(target, driver.config, steps)

    def body(ops: list[Op]) -> None:
        if result.drive_error is not None:
            raise _Abort
        counting = not found
        if counting and deadline_s is not None and time.perf_counter() - t0 > deadline_s:
            return
        try:
            res = driver.run(ops, tally if counting else scratch)
        except DriveError as e:
            if found and driver.recover():
                return  # while shrinking: not this divergence; the next candidate, please
            result.drive_error = e
            result.drive_error_ops = list(ops)
            raise _Abort from None
        if counting:
            result.sequences += 1
            result.steps += len(res.steps)
            if progress is not None:
                progress(result.sequences, sequences)
        if res.failing is not None:
            if not found:
                result.first_failure = res.failures
            found.append(res)
            raise _Divergence

    test = given(ops_strategy)(body)
    test = settings(
        max_examples=sequences, database=database, deadline=None,
        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
        report_multiple_bugs=False, derandomize=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target,
                *([Phase.shrink] if hyp_shrink else [])],
    )(test)
    if seed_ is not None:
        test = seed(seed_)(test)
    try:
        test()
    except _Divergence:
        pass
    except _Abort:
        pass
    except (Flaky, HypothesisException) as e:
        if not found:
            raise
        result.note = f"Hypothesis: {type(e).__name__}: the implementation may not be " \
                      "deterministic (a sequence failed once and passed when replayed)"
    finally:
        result.requests = driver.requests
    if found and result.drive_error is None:
        best = min(found, key=lambda r: (len(r.steps), found.index(r)))
        if use_shrinker:
            from refmodel.conformance.shrink import shrink_ops

            try:
                best = shrink_ops(driver, [s.op for s in best.steps], best)
            except DriveError as e:
                result.drive_error = e
        if result.drive_error is None:
            result.counterexample = make_counterexample(driver, best)
    result.seconds = time.perf_counter() - t0
    driver.close()
    return result


def replay(driver: Driver, ops: Sequence[Op], command: Sequence[str] = ()) -> RunResult:
    """Run one saved sequence once (no generation, no shrinking)."""
    result = RunResult(driver.target.name, driver.mode, dict(driver.config), list(command),
                       driver.hello, Counter())
    t0 = time.perf_counter()
    try:
        driver.start()
        result.hello = driver.hello
        res = driver.run(ops, result.tally)
        result.sequences = 1
        result.steps = len(res.steps)
        if res.failing is not None:
            result.first_failure = res.failures
            result.counterexample = make_counterexample(driver, res)
    except DriveError as e:
        result.drive_error = e
        result.drive_error_ops = list(ops)
    finally:
        result.requests = driver.requests
        driver.close()
    result.seconds = time.perf_counter() - t0
    return result
