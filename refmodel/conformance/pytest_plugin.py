"""A pytest plugin: run the conformance kit inside an implementer's own test run.

Registered as the ``refmodel`` pytest11 entry point, so once refmodel is installed::

    pytest --refmodel-target buddy --refmodel-impl "./mybuddy"
    pytest --refmodel-target pagetable --refmodel-python mypkg.pt:PageTable --refmodel-mode strict

adds one test item per run, ``refmodel-conform[buddy]``, which fails with the scorecard
(the minimal counterexample, the model's answers and call trace) when the implementation
does not conform or cannot be driven. The number of sequences and their length come from the
active Hypothesis profile (``max_examples``, ``stateful_step_count``) unless given, so
``HYPOTHESIS_PROFILE=ci`` and the like are honoured. The ``refmodel_conform`` fixture runs
the kit from a test function instead::

    def test_my_allocator_conforms(refmodel_conform):
        result = refmodel_conform("buddy", ["./mybuddy"], mode="invariant")
        assert result.status == 0
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from refmodel.conformance.protocol import JSON
from refmodel.conformance.runner import RunResult


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("refmodel", "refmodel conformance kit")
    g.addoption("--refmodel-target", help="check an implementation of this target "
                "(buddy, pagetable, vma, mm, slab)")
    g.addoption("--refmodel-impl", help="the implementation's command line (shell-quoted)")
    g.addoption("--refmodel-python", help="an in-process implementation, MODULE:CLASS")
    g.addoption("--refmodel-mode", default="invariant", choices=("invariant", "strict"))
    g.addoption("--refmodel-config", action="append", default=[], metavar="KEY=VALUE")
    g.addoption("--refmodel-sequences", type=int, default=None,
                help="default: the Hypothesis profile's max_examples")
    g.addoption("--refmodel-steps", type=int, default=None,
                help="default: the Hypothesis profile's stateful_step_count")
    g.addoption("--refmodel-seed", type=int, default=0)
    g.addoption("--refmodel-timeout", type=float, default=5.0)


def run_conformance(target_name: str, command: Sequence[str] = (), python: str | None = None,
                    mode: str = "invariant", config: dict[str, JSON] | None = None,
                    sequences: int | None = None, steps: int | None = None, seed: int = 0,
                    timeout: float = 5.0) -> RunResult:
    """Run the kit once; sequences and steps default to the active Hypothesis profile."""
    from hypothesis import settings

    from refmodel.conformance.cli import _target, make_driver
    from refmodel.conformance.runner import conform

    target = _target(target_name)
    cfg = target.validate_config(dict(config or {}))
    prof = settings()  # the active profile
    driver = make_driver(target, cfg, mode, list(command), python, timeout, 1)
    return conform(driver, sequences or prof.max_examples, steps or prof.stateful_step_count,
                   seed, command=list(command) or [f"--python {python}"])


class ConformanceFailed(Exception):
    pass


class ConformanceItem(pytest.Item):
    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def runtest(self) -> None:
        from refmodel.conformance.scorecard import render_markdown, scorecard
        from refmodel.conformance.targets.base import parse_config_items as parse_config

        opt = self.config.getoption
        impl = opt("--refmodel-impl")
        result = run_conformance(
            self.target, shlex.split(impl) if impl else (), opt("--refmodel-python"),
            opt("--refmodel-mode"), parse_config(opt("--refmodel-config")),
            opt("--refmodel-sequences"), opt("--refmodel-steps"), opt("--refmodel-seed"),
            opt("--refmodel-timeout"))
        from refmodel.conformance.cli import _target

        card = scorecard(result, _target(self.target))
        self.user_properties.append(("scorecard", card))
        if result.status:
            raise ConformanceFailed(render_markdown(card))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: str | None = None) -> str:
        if isinstance(excinfo.value, ConformanceFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "refmodel-conform", None, f"refmodel conform --target {self.target}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    target = config.getoption("--refmodel-target")
    if not target:
        return
    if not config.getoption("--refmodel-impl") and not config.getoption("--refmodel-python"):
        raise pytest.UsageError("--refmodel-target needs --refmodel-impl or --refmodel-python")
    items.append(ConformanceItem.from_parent(session, name=f"refmodel-conform[{target}]",
                                             target=target))


@pytest.fixture
def refmodel_conform() -> Iterator[Callable[..., RunResult]]:
    """``refmodel_conform(target, command=(), python=None, mode=..., config=...)`` runs the
    kit and returns its RunResult (``.status`` 0/1/2, ``.counterexample``)."""
    yield run_conformance
