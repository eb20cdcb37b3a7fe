"""The grading configuration (TOML): targets, commands, rubric, seeds and limits.

A bad configuration is rejected before anything runs, with the line and the reason.
See docs/grading.md and examples/grading/grading.toml.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from refmodel.conformance.targets.base import Target

TARGETS = ("buddy", "pagetable", "vma", "mm", "slab")
MODES = ("strict", "invariant")


class ConfigError(Exception):
    """A configuration problem: ``line`` is 1-based (0 when unknown)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    build_timeout_s: int = 120
    run_timeout_s: int = 300
    request_timeout_s: float = 5.0
    cpu_s: int = 120
    memory_mb: int = 1024
    nproc: int = 64
    fsize_mb: int = 64
    nofile: int = 64
    log_kb: int = 64


@dataclass(frozen=True, slots=True)
class Task:
    """One conformance run per submission."""

    name: str
    target: str
    mode: str
    run: str
    sequences: int
    steps: int
    seed: int
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RubricLine:
    name: str
    points: float
    task: str
    checks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GradingConfig:
    build: str
    tasks: tuple[Task, ...]
    rubric: tuple[RubricLine, ...]
    limits: Limits = field(default_factory=Limits)

    @property
    def max_points(self) -> float:
        return sum(r.points for r in self.rubric)


def _line_of(text: str, key: str, after: int = 0) -> int:
    m = re.search(rf"^\s*{re.escape(key)}\s*=", text[after:], re.M)
    if m is None:
        m = re.search(rf"^\s*\[+\s*{re.escape(key)}\s*\]+", text[after:], re.M)
    return text.count("\n", 0, after + (m.start() if m else 0)) + 1 if m else 0


def _expect(d: dict[str, object], key: str, kind: type, text: str, where: str,
            default: object = None) -> object:
    if key not in d:
        if default is None:
            raise ConfigError(_line_of(text, where) if where else 0,
                              f"missing key {key!r} in [{where}]" if where else f"missing {key!r}")
        return default
    v = d[key]
    ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        ok = True
    if not ok:
        raise ConfigError(_line_of(text, key), f"{key!r} must be {kind.__name__}, not "
                          f"{type(v).__name__}")
    return v


_MAX_LIMIT = 10_000_000  # any limit in whole units (seconds, MiB, KiB, files, processes)


def _target(name: str) -> Target:
    from refmodel.conformance.targets import get_target

    return get_target(name)


def _check_task_config(target: str, task: str, cfg: dict[str, object], text: str) -> None:
    """A task's [task.config] as the grader will pass it (``--config KEY=VALUE``), checked
    against the target now rather than failing every submission later."""
    from refmodel.conformance.targets.base import parse_config_items

    for k, v in cfg.items():
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise ConfigError(_line_of(text, str(k)), f"task {task!r}: config {k!r} must be "
                              f"an integer or a string")
    try:
        _target(target).validate_config(parse_config_items([f"{k}={v}" for k, v in cfg.items()]))
    except ValueError as e:
        where = _line_of(text, str(next(iter(cfg)))) if cfg else 0
        raise ConfigError(where, f"task {task!r}: {e}") from None


def parse_config(text: str) -> GradingConfig:
    """Parse and validate; raises ConfigError with the line and the reason."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(int(m.group(1)) if m else 0, f"not valid TOML: {e}") from None
    allowed = {"build", "task", "rubric", "limits"}
    for k in doc:
        if k not in allowed:
            raise ConfigError(_line_of(text, k), f"unknown key {k!r} (expected one of "
                              f"{', '.join(sorted(allowed))})")
    build = str(_expect(doc, "build", str, text, ""))
    raw_tasks = doc.get("task")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise ConfigError(_line_of(text, "task"), "at least one [[task]] is required")
    tasks: list[Task] = []
    for t in raw_tasks:
        if not isinstance(t, dict):
            raise ConfigError(_line_of(text, "task"), "[[task]] must be a table")
        unknown = set(t) - {"name", "target", "mode", "run", "sequences", "steps", "seed",
                            "config"}
        if unknown:
            k = sorted(unknown)[0]
            raise ConfigError(_line_of(text, k), f"unknown key {k!r} in [[task]]")
        name = str(_expect(t, "name", str, text, "task"))
        target = str(_expect(t, "target", str, text, "task"))
        if target not in TARGETS:
            raise ConfigError(_line_of(text, "target"),
                              f"target {target!r} is not one of {', '.join(TARGETS)}")
        mode = str(_expect(t, "mode", str, text, "task", "invariant"))
        if mode not in MODES:
            raise ConfigError(_line_of(text, "mode"), f"mode {mode!r} is not strict or invariant")
        run = str(_expect(t, "run", str, text, "task"))
        sequences = int(_expect(t, "sequences", int, text, "task", 100))  # type: ignore[call-overload]
        steps = int(_expect(t, "steps", int, text, "task", 30))  # type: ignore[call-overload]
        seed = int(_expect(t, "seed", int, text, "task", 0))  # type: ignore[call-overload]
        if not 1 <= sequences <= 100_000 or not 1 <= steps <= 10_000:
            raise ConfigError(_line_of(text, "sequences"), "sequences and steps must be positive")
        cfg = t.get("config", {})
        if not isinstance(cfg, dict):
            raise ConfigError(_line_of(text, "config"), "config must be a table")
        _check_task_config(target, name, cfg, text)
        if any(x.name == name for x in tasks):
            raise ConfigError(_line_of(text, "name"), f"two tasks are named {name!r}")
        tasks.append(Task(name, target, mode, run, sequences, steps, seed,
                          tuple(sorted((str(k), str(v)) for k, v in cfg.items()))))
    raw_rubric = doc.get("rubric")
    if not isinstance(raw_rubric, list) or not raw_rubric:
        raise ConfigError(_line_of(text, "rubric"), "at least one [[rubric]] line is required")
    rubric: list[RubricLine] = []
    for r in raw_rubric:
        if not isinstance(r, dict):
            raise ConfigError(_line_of(text, "rubric"), "[[rubric]] must be a table")
        unknown = set(r) - {"name", "points", "task", "checks"}
        if unknown:
            k = sorted(unknown)[0]
            raise ConfigError(_line_of(text, k), f"unknown key {k!r} in [[rubric]]")
        name = str(_expect(r, "name", str, text, "rubric"))
        points = float(_expect(r, "points", float, text, "rubric"))  # type: ignore[arg-type]
        if not math.isfinite(points) or points < 0:
            raise ConfigError(_line_of(text, "points"), "points must be a finite number, "
                              "not negative")
        task = str(_expect(r, "task", str, text, "rubric", tasks[0].name))
        owner = next((t for t in tasks if t.name == task), None)
        if owner is None:
            raise ConfigError(_line_of(text, "task"), f"rubric line {name!r} names unknown "
                              f"task {task!r}")
        checks = r.get("checks")
        if not (isinstance(checks, list) and checks and all(isinstance(c, str) for c in checks)):
            raise ConfigError(_line_of(text, "checks"),
                              f"rubric line {name!r}: checks must be a non-empty list of names")
        known = {c.name for c in _target(owner.target).check_names(owner.mode)}
        unknown_checks = [c for c in checks if c not in known]
        if unknown_checks:
            raise ConfigError(_line_of(text, "checks"),
                              f"rubric line {name!r}: no check {unknown_checks[0]!r} in "
                              f"{owner.mode} mode of task {task!r} (known: "
                              f"{', '.join(sorted(known))})")
        rubric.append(RubricLine(name, points, task, tuple(checks)))
    lim = doc.get("limits", {})
    if not isinstance(lim, dict):
        raise ConfigError(_line_of(text, "limits"), "[limits] must be a table")
    defaults = Limits()
    values: dict[str, float] = {}
    for k, v in lim.items():
        if not hasattr(defaults, k):
            raise ConfigError(_line_of(text, k), f"unknown limit {k!r}")
        if k == "request_timeout_s":  # seconds, as refmodel conform --timeout takes them
            if (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
                    or not 0 < v <= 86400):
                raise ConfigError(_line_of(text, k), f"limit {k!r} must be a number of "
                                  f"seconds above 0 and at most 86400")
        elif isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= _MAX_LIMIT:
            # whole units: the sandbox takes them as integers (setrlimit)
            raise ConfigError(_line_of(text, k), f"limit {k!r} must be a whole number "
                              f"from 1 to {_MAX_LIMIT}")
        values[k] = v
    limits = Limits(**values)  # type: ignore[arg-type]
    return GradingConfig(build, tuple(tasks), tuple(rubric), limits)
