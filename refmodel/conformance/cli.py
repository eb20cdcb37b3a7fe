"""``refmodel conform``, ``refmodel conform replay``, ``refmodel vectors``, ``refmodel fuzz``.

Exit status of ``conform``: 0 conforming, 1 not conforming, 2 the implementation could not
be driven (did not start, bad handshake, crash, hang, protocol violation) or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from refmodel.argtypes import minutes, seconds
from refmodel.conformance.protocol import JSON
from refmodel.conformance.targets.base import MODES, Op, Target
from refmodel.conformance.targets.base import parse_config_items as parse_config

if TYPE_CHECKING:
    from refmodel.conformance.runner import Driver, RunResult


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # conform takes its arguments verbatim (so that "replay" and "-- COMMAND ..." reach
    # its own parsers untouched); help comes from those parsers.
    c = sub.add_parser("conform", help="check an implementation against the model "
                       "(refmodel conform --help)", add_help=False, prefix_chars="\x00")
    c.add_argument("argv", nargs=argparse.REMAINDER)
    c.set_defaults(fn=cmd_conform)

    v = sub.add_parser("vectors", help="write static test vectors for a target")
    v.add_argument("--target", required=True)
    v.add_argument("--out", required=True, help="directory to write")
    v.add_argument("--mode", choices=[*MODES, "both"], default="both")
    v.add_argument("--count", type=int, default=20, help="vectors per mode (default 20)")
    v.add_argument("--steps", type=int, default=20, help="ops per vector (default 20)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--json", action="store_true")
    v.set_defaults(fn=cmd_vectors)

    f = sub.add_parser("fuzz", help="run the state machines for a time budget "
                       "(the model's own, or a target against an implementation)")
    f.add_argument("--target", help="fuzz this target against COMMAND (or --python)")
    f.add_argument("--model", action="store_true", help="fuzz the model's own state machines")
    f.add_argument("--minutes", type=minutes, default=1.0)
    f.add_argument("--mode", choices=MODES, default="invariant")
    f.add_argument("--steps", type=int, default=50)
    f.add_argument("--seed", type=int, default=None,
                   help="with --target: a fixed generation seed (default: a new one per run)")
    f.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    f.add_argument("--timeout", type=seconds, default=5.0)
    f.add_argument("--python", metavar="SPEC")
    f.add_argument("--database", metavar="DIR", default=".hypothesis/examples",
                   help="Hypothesis example database directory (default .hypothesis/examples;"
                        " 'none' for none)")
    f.add_argument("--json", action="store_true")
    f.add_argument("command", nargs="*", help="the implementation, after --")
    f.set_defaults(fn=cmd_fuzz)


# ------------------------------------------------------------------------------------------
def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refmodel conform",
        description="Drive an implementation with generated sequences and check it against "
                    "the model. Exit status: 0 conforming, 1 not conforming, 2 could not be "
                    "driven or bad usage. 'refmodel conform replay FILE -- COMMAND' replays a "
                    "saved counterexample or a vector file or directory; 'refmodel conform "
                    "schema' prints the JSON Schema of every protocol message.",
        epilog="example: refmodel conform --target buddy -- ./examples/buddy_c/buddy")
    p.add_argument("--target", required=True, help="buddy, pagetable, vma, mm, slab")
    _common(p)
    p.add_argument("--sequences", type=int, default=100, help="sequences to run (default 100)")
    p.add_argument("--steps", type=int, default=30, help="ops per sequence, at most (default 30)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="target configuration, e.g. nr_pages=128 (repeatable)")
    p.add_argument("--no-shrink", action="store_true", help="skip the extra shrinking pass")
    return p


def _replay_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refmodel conform replay",
        description="Replay a saved counterexample (--save), a vector file, or a vector "
                    "directory against an implementation.")
    p.add_argument("file", help="counterexample JSON, vector JSON, or vector directory")
    _common(p, mode_default=None)
    return p


def _common(p: argparse.ArgumentParser, mode_default: str | None = "invariant") -> None:
    p.add_argument("--mode", choices=MODES, default=mode_default,
                   help="strict: exactly 5.10's answers; invariant (default): what the "
                        "specification fixes")
    p.add_argument("--timeout", type=seconds, default=5.0,
                   help="seconds without progress before an answer counts as a hang")
    p.add_argument("--observe-every", type=int, default=1, metavar="N",
                   help="observe after every N-th step (default 1)")
    p.add_argument("--python", metavar="SPEC", help="an in-process Python implementation, "
                   "MODULE:CLASS or FILE.py:CLASS, instead of COMMAND")
    p.add_argument("--json", action="store_true", help="print the scorecard as JSON")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML")
    p.add_argument("--markdown", metavar="FILE", help="also write Markdown")
    p.add_argument("--save", metavar="FILE", help="write the counterexample (replayable)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("command", nargs="*", help="the implementation, after --")


def _usage(msg: str) -> int:
    print(f"refmodel: {msg}", file=sys.stderr)
    return 2


def cmd_conform(args: argparse.Namespace) -> int:
    argv: list[str] = list(args.argv)
    if argv and argv[0] == "replay":
        return cmd_replay(_replay_parser().parse_args(argv[1:]))
    if argv and argv[0] == "schema":
        p = argparse.ArgumentParser(prog="refmodel conform schema",
                                    description="print the JSON Schema of every message")
        p.add_argument("--target", default=None)
        a = p.parse_args(argv[1:])
        from refmodel.conformance.schema import TARGETS, schemas

        if a.target is not None and a.target not in TARGETS:
            return _usage(f"no schemas for target {a.target!r}")
        print(json.dumps(schemas(a.target), indent=2))
        return 0
    return cmd_run(_run_parser().parse_args(argv))


def _target(name: str) -> Target:
    from refmodel.conformance.targets import all_targets

    targets = all_targets()
    if name not in targets:
        raise ValueError(f"unknown target {name!r} (known: {', '.join(sorted(targets))})")
    return targets[name]


def make_driver(target: Target, config: dict[str, JSON], mode: str, command: Sequence[str],
                python: str | None, timeout: float, observe_every: int) -> Driver:
    """A Driver over a subprocess (COMMAND) or an in-process class (--python)."""
    from refmodel.conformance.runner import Driver
    from refmodel.conformance.transport import SubprocessTransport, Transport

    transport: Transport
    if python:
        from refmodel.conformance.adapter import in_process, load_class

        if command:
            raise ValueError("give either --python SPEC or a COMMAND, not both")
        transport = in_process(target.name, load_class(python), config)
    else:
        if not command:
            raise ValueError("no implementation: give a COMMAND after -- (or --python SPEC)")
        transport = SubprocessTransport(command, target.name, mode, config, timeout=timeout)
    return Driver(transport, target, config, mode, observe_every=observe_every)


def _progress(enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    prog = Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(file=sys.stderr), transient=True)
    task = prog.add_task("sequences", total=None)
    prog.start()

    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    return update, prog.stop


def cmd_run(args: argparse.Namespace) -> int:
    from refmodel.conformance.runner import conform

    try:
        target = _target(args.target)
        config = target.validate_config(parse_config(args.config))
        if args.sequences < 1 or args.steps < 1 or args.observe_every < 1:
            raise ValueError("--sequences, --steps and --observe-every must be at least 1")
        driver = make_driver(target, config, args.mode, args.command, args.python,
                             args.timeout, args.observe_every)
    except ValueError as e:
        return _usage(str(e))
    update, stop = _progress(not args.no_progress and not args.json)
    try:
        result = conform(driver, args.sequences, args.steps, args.seed, progress=update,
                         use_shrinker=not args.no_shrink,
                         command=args.command or [f"--python {args.python}"])
    finally:
        stop()
        driver.close()
    return _report(result, target, args)


def _report(result: RunResult, target: Target, args: argparse.Namespace) -> int:
    from refmodel.conformance.scorecard import (
        render_junit,
        render_markdown,
        render_terminal,
        scorecard,
    )

    card = scorecard(result, target)
    status = result.status
    try:
        if args.junit:
            Path(args.junit).write_text(render_junit(card))
        if args.markdown:
            Path(args.markdown).write_text(render_markdown(card))
        if args.save and result.counterexample is not None:
            Path(args.save).write_text(json.dumps(result.counterexample.to_json(), indent=1)
                                       + "\n")
    except OSError as e:  # the run is still shown; the exit status says what went wrong
        print(f"refmodel: cannot write a report: {e}", file=sys.stderr)
        status = 2
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        render_terminal(card)
    return status


def cmd_replay(args: argparse.Namespace) -> int:
    from refmodel.conformance.runner import BadOp, replay
    from refmodel.conformance.vectors import load_replayable, replay_vectors

    try:
        items = load_replayable(Path(args.file))
        if not items:
            raise ValueError(f"{args.file} holds nothing to replay")
        target = _target(items[0].target)
        if any(it.target != target.name for it in items):
            raise ValueError("all replayed sequences must be for one target")
        modes = sorted({it.mode for it in items})
        if args.mode is None and len(modes) > 1:
            raise ValueError(f"{args.file} holds sequences for modes {' and '.join(modes)}: "
                             f"replay each mode's files on their own, or give --mode")
        if any(it.config != items[0].config for it in items):
            raise ValueError(f"{args.file} holds sequences for more than one config: replay "
                             f"each config's files on their own")
        mode = args.mode or items[0].mode
        config = target.validate_config(items[0].config)
        driver = make_driver(target, config, mode, args.command, args.python, args.timeout,
                             args.observe_every)
    except (ValueError, OSError) as e:
        return _usage(str(e))
    command = args.command or [f"--python {args.python}"]
    try:
        if len(items) == 1 and items[0].config == config:
            result = replay(driver, items[0].ops, command)
        else:
            result = replay_vectors(driver, items, command)
    except BadOp as e:  # replay and replay_vectors close the driver themselves
        return _usage(str(e))
    return _report(result, target, args)


def cmd_vectors(args: argparse.Namespace) -> int:
    from refmodel.conformance.vectors import write_vectors

    try:
        target = _target(args.target)
        config = target.validate_config(parse_config(args.config))
        if args.count < 1 or args.steps < 1:
            raise ValueError("--count and --steps must be at least 1")
    except ValueError as e:
        return _usage(str(e))
    modes = list(MODES) if args.mode == "both" else [args.mode]
    try:
        written = write_vectors(target, config, Path(args.out), modes, args.count, args.steps,
                                args.seed)
    except OSError as e:
        return _usage(f"cannot write vectors under {args.out}: {e}")
    if args.json:
        print(json.dumps({"out": args.out, "target": target.name,
                          "files": [str(p) for p in written]}, indent=2))
    else:
        print(f"wrote {len(written)} vector files for {target.name} under {args.out}")
    return 0


def cmd_fuzz(args: argparse.Namespace) -> int:
    from refmodel.conformance.fuzz import fuzz_model, fuzz_target

    if bool(args.model) == bool(args.target):
        return _usage("fuzz wants exactly one of --model or --target T")
    if args.minutes <= 0:
        return _usage("--minutes must be positive")
    db = None if args.database == "none" else args.database
    if args.model:
        return fuzz_model(args.minutes, db, args.json, args.seed)
    try:
        target = _target(args.target)
        config = target.validate_config(parse_config(args.config))
        driver = make_driver(target, config, args.mode, args.command, args.python,
                             args.timeout, 1)
    except ValueError as e:
        return _usage(str(e))
    return fuzz_target(driver, target, args, db)


def ops_from_json(v: JSON) -> list[Op]:
    if not isinstance(v, list):
        raise ValueError("'ops' must be a list")
    return [Op.from_json(o) for o in v]
