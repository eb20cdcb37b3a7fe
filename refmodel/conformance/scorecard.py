"""The scorecard of a conformance run: per check passed / failed / not run, the minimal
counterexample side by side with the model, and the model's call trace of the failing step.

One JSON document (:func:`scorecard`) is the source of every rendering: the terminal
(:func:`render_terminal`, with rich), Markdown (:func:`render_markdown`) and JUnit XML
(:func:`render_junit`).
"""

from __future__ import annotations

import json
import sys
from typing import TextIO
from xml.etree import ElementTree as ET

from refmodel import __version__
from refmodel.conformance.protocol import JSON
from refmodel.conformance.runner import RunResult
from refmodel.conformance.targets.base import Target

VERDICTS = {0: "conforming", 1: "not conforming", 2: "could not be driven"}


def scorecard(result: RunResult, target: Target) -> dict[str, JSON]:
    """The run as one JSON document (the format is documented in docs/conformance.md)."""
    ce = result.counterexample
    failed: dict[str, str] = {}
    if ce is not None:
        for f in ce.failures:
            failed.setdefault(f.check, f.message)
    offered = set(result.hello.observations)
    checks: list[JSON] = []
    for spec in target.checks:
        n = result.tally.get(spec.name, 0)
        reason = ""
        status: str
        if spec.name in failed:
            status = "failed"
            reason = failed[spec.name]
        elif result.mode not in spec.modes:
            status, reason = "not run", f"only in {' and '.join(spec.modes)} mode"
        elif spec.observation is not None and spec.observation not in offered:
            status = "not run"
            reason = f"the implementation offers no {spec.observation!r} observation"
        elif n == 0:
            status = "not run"
            reason = ("the run stopped before it was exercised"
                      if result.status else "no generated sequence exercised it")
        else:
            status = "passed"
        checks.append({"name": spec.name, "description": spec.description, "status": status,
                       "passed": n, "reason": reason})
    code = result.status
    return {
        "format": "refmodel-scorecard", "version": 1, "refmodel": __version__,
        "target": result.target, "mode": result.mode, "config": dict(result.config),
        "command": list(result.command), "implementation": result.hello.implementation,
        "observations": list(result.hello.observations), "seed": result.seed,
        "verdict": VERDICTS[code], "exit_status": code,
        "sequences": result.sequences, "steps": result.steps, "requests": result.requests,
        "seconds": round(result.seconds, 3),
        "checks": checks,
        "counterexample": None if ce is None else ce.to_json(),
        "first_failure": [f.to_json() for f in result.first_failure],
        "drive_error": None if result.drive_error is None else {
            **result.drive_error.to_json(),
            "ops": [o.to_json() for o in result.drive_error_ops]},
        "note": result.note,
    }


def _j(v: JSON) -> str:
    return json.dumps(v, separators=(", ", ": ")) if v is not None else "—"


def _checks(card: dict[str, JSON]) -> list[dict[str, JSON]]:
    out = card["checks"]
    assert isinstance(out, list)
    return [c for c in out if isinstance(c, dict)]


def _dict(v: JSON) -> dict[str, JSON]:
    return v if isinstance(v, dict) else {}


def _list(v: JSON) -> list[JSON]:
    return v if isinstance(v, list) else []


def counts(card: dict[str, JSON]) -> dict[str, int]:
    c = {"passed": 0, "failed": 0, "not run": 0}
    for chk in _checks(card):
        c[str(chk["status"])] += 1
    return c


# ------------------------------------------------------------------------------------------
def render_markdown(card: dict[str, JSON]) -> str:
    c = counts(card)
    lines = [
        f"# refmodel conform: `{card['target']}` ({card['mode']} mode) — **{card['verdict']}**",
        "",
        f"- implementation: `{' '.join(str(x) for x in _list(card['command']))}` "
        f"{card['implementation'] or ''}".rstrip(),
        f"- config: `{_j(card['config'])}`, seed {card['seed']}",
        f"- {card['sequences']} sequences, {card['steps']} steps, {card['requests']} requests "
        f"in {card['seconds']} s",
        f"- checks: {c['passed']} passed, {c['failed']} failed, {c['not run']} not run",
        "",
    ]
    de = card["drive_error"]
    if isinstance(de, dict):
        lines += [f"## The implementation could not be driven: {de['kind']}", "",
                  f"{de['message']}", ""]
        if de.get("seen"):
            lines += ["Seen on stdout:", "", "```", str(de["seen"]), "```", ""]
        if de.get("stderr"):
            lines += ["Its stderr (tail):", "", "```", str(de["stderr"]), "```", ""]
    lines += ["## Checks", "", "| check | status | passed | note |", "|---|---|---:|---|"]
    for chk in _checks(card):
        mark = {"passed": "✅ passed", "failed": "❌ failed", "not run": "➖ not run"}[
            str(chk["status"])]
        note = str(chk["reason"] or chk["description"]).replace("|", "\\|")
        lines.append(f"| `{chk['name']}` | {mark} | {chk['passed']} | {note} |")
    ce = card["counterexample"]
    if isinstance(ce, dict):
        steps = _list(ce["steps"])
        lines += ["", f"## Minimal counterexample ({len(steps)} steps)", "",
                  "| # | request | model expects | implementation answered |",
                  "|---:|---|---|---|"]
        for i, s in enumerate(steps):
            s = _dict(s)
            lines.append(f"| {i} | `{_j(s['request'])}` | `{_j(s['expected'])}` | "
                         f"`{_j(s['response'])}` |")
        lines += ["", "Failed at the last step:", ""]
        for f in _list(ce["failures"]):
            f = _dict(f)
            lines.append(f"- **{f['check']}**: {f['message']}")
        if ce.get("model_answer") is not None:
            lines += ["", f"The 5.10 model answers that step with `{_j(ce['model_answer'])}`."]
        if ce.get("trace"):
            lines += ["", "The model's call trace of the failing step:", "", "```",
                      str(ce["trace"]), "```"]
        lines += ["", "Replay with `refmodel conform replay FILE -- COMMAND` after saving the "
                  "counterexample (`--save FILE`). Ops:", "", "```json",
                  json.dumps(ce["ops"]), "```"]
    if card.get("note"):
        lines += ["", f"> {card['note']}"]
    return "\n".join(lines) + "\n"


def render_junit(card: dict[str, JSON]) -> str:
    checks = _checks(card)
    c = counts(card)
    de = card["drive_error"]
    suite = ET.Element("testsuite", {
        "name": f"refmodel.conform.{card['target']}.{card['mode']}",
        "tests": str(len(checks) + (1 if de else 0)),
        "failures": str(c["failed"]), "errors": "1" if de else "0",
        "skipped": str(c["not run"]), "time": str(card["seconds"])})
    ce = card["counterexample"]
    for chk in checks:
        tc = ET.SubElement(suite, "testcase", {
            "classname": f"refmodel.conform.{card['target']}", "name": str(chk["name"])})
        if chk["status"] == "failed":
            fail = ET.SubElement(tc, "failure", {"message": str(chk["reason"])})
            fail.text = json.dumps(ce, indent=2) if ce is not None else ""
        elif chk["status"] == "not run":
            ET.SubElement(tc, "skipped", {"message": str(chk["reason"])})
    if isinstance(de, dict):
        tc = ET.SubElement(suite, "testcase", {
            "classname": f"refmodel.conform.{card['target']}", "name": "drive_implementation"})
        err = ET.SubElement(tc, "error", {"type": str(de["kind"]), "message": str(de["message"])})
        err.text = f"seen: {de.get('seen', '')}\nstderr: {de.get('stderr', '')}"
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


# ------------------------------------------------------------------------------------------
def render_terminal(card: dict[str, JSON], file: TextIO | None = None) -> None:
    """The scorecard for a person at a terminal (colour when it is a tty)."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    out = file or sys.stdout
    con = Console(file=out, highlight=False, soft_wrap=False,
                  width=None if out.isatty() else 120)
    status = int(card["exit_status"])  # type: ignore[arg-type]
    colour = {0: "green", 1: "red", 2: "yellow"}[status]
    c = counts(card)
    head = Text.assemble(
        (f"{card['target']}", "bold"), f" ({card['mode']} mode): ",
        (str(card["verdict"]).upper(), f"bold {colour}"),
        f"   {card['sequences']} sequences, {card['steps']} steps, "
        f"{card['requests']} requests, {card['seconds']} s   "
        f"checks: {c['passed']} passed, {c['failed']} failed, {c['not run']} not run")
    con.print(head)
    cmd = " ".join(str(x) for x in _list(card["command"]))
    con.print(Text(f"implementation: {cmd} {card['implementation'] or ''}   "
                   f"config: {_j(card['config'])}   seed: {card['seed']}", style="dim"))
    de = card["drive_error"]
    if isinstance(de, dict):
        body = Text(f"{de['kind']}: {de['message']}")
        if de.get("seen"):
            body.append(f"\nseen on stdout: {de['seen']}")
        if de.get("stderr"):
            body.append(f"\nstderr (tail):\n{str(de['stderr']).rstrip()}")
        if de.get("ops"):
            body.append(f"\nwhile running ops: {json.dumps(de['ops'])[:400]}")
        con.print(Panel(body, title="the implementation could not be driven",
                        border_style="yellow"))
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("check")
    t.add_column("status")
    t.add_column("passed", justify="right")
    t.add_column("note", overflow="fold")
    styles = {"passed": "green", "failed": "bold red", "not run": "dim"}
    for chk in _checks(card):
        st = str(chk["status"])
        t.add_row(str(chk["name"]), Text(st, style=styles[st]), str(chk["passed"]),
                  Text(str(chk["reason"]), style="dim" if st != "failed" else ""))
    con.print(t)
    ce = card["counterexample"]
    if isinstance(ce, dict):
        steps = _list(ce["steps"])
        st_ = Table(title=f"minimal counterexample: {len(steps)} step(s)", box=None,
                    header_style="bold", title_justify="left")
        st_.add_column("#", justify="right")
        st_.add_column("request", overflow="fold")
        st_.add_column("model expects", overflow="fold")
        st_.add_column("implementation", overflow="fold")
        for i, s in enumerate(steps):
            s = _dict(s)
            last = i == len(steps) - 1
            st_.add_row(str(i), _j(s["request"]), _j(s["expected"]), Text(
                _j(s["response"]), style="bold red" if last else ""))
            if last:
                for what, ob in _dict(s.get("observations")).items():
                    ob = _dict(ob)
                    st_.add_row("", f"observe {what}", _j(ob.get("expected")),
                                Text(_j(ob.get("response")), style="bold red"))
        con.print(st_)
        for f in _list(ce["failures"]):
            f = _dict(f)
            con.print(Text.assemble(("✗ ", "bold red"), (str(f["check"]), "bold"), ": ",
                                    str(f["message"])))
        if ce.get("model_answer") is not None:
            con.print(f"the 5.10 model answers the failing step with {_j(ce['model_answer'])}")
        if ce.get("trace"):
            con.print(Panel(Text(str(ce["trace"])), title="the model's call trace of the "
                            "failing step", border_style="blue"))
        con.print(Text(f"ops: {json.dumps(ce['ops'])}", style="dim"))
    if card.get("note"):
        con.print(Text(str(card["note"]), style="yellow"))
