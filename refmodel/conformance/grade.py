"""Grading a class: build and run every submission against the oracle, safely.

Each submission is copied to its own private directory, built and run by
``refmodel.conformance.sandbox`` (resource limits, a new session, a new network namespace,
and, when the grader runs as root, a user id of its own), with a wall-clock timeout for the
build and for each conformance run. Every process of that user id is killed afterwards. The
results are deterministic: the same submissions and configuration give byte-identical
per-student files (no times, no temporary paths).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from refmodel.conformance.grade_config import GradingConfig, Limits, Task

JSON = dict[str, object]
UID_BASE = 20000
VOLATILE = ("seconds", "requests_per_s", "elapsed", "time")


@dataclass(slots=True)
class StudentResult:
    name: str
    score: float
    max_score: float
    status: str  # graded | build-failed | not-driven
    reason: str
    lines: list[JSON] = field(default_factory=list)
    tasks: list[JSON] = field(default_factory=list)

    def to_json(self) -> JSON:
        return {"student": self.name, "score": self.score, "max_score": self.max_score,
                "status": self.status, "reason": self.reason, "rubric": self.lines,
                "tasks": self.tasks}


def _drive_reason(de: object) -> str:
    """A scorecard's drive_error ({"kind", "message", ...}) in words."""
    if isinstance(de, dict):
        return f"{de.get('kind', 'error')}: {de.get('message', '')}"
    return str(de)


def _attr(text: str) -> str:
    """Text for a double-quoted XML attribute."""
    return escape(text, {'"': "&quot;"})


def students_of(submissions: Path, out: Path | None = None) -> list[str]:
    """The subfolders of the submissions directory, sorted (the order is the class order),
    leaving out the results directory if it lies there."""
    skip = None if out is None else out.resolve()
    return sorted(p.name for p in submissions.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.resolve() != skip)


def shard_of(students: list[str], shard: tuple[int, int] | None) -> list[str]:
    """Shard I of N gets every N-th student of the sorted class, starting at I - 1."""
    if shard is None:
        return students
    i, n = shard
    return [s for k, s in enumerate(students) if k % n == i - 1]


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (fork, drop to the uid, kill(-1))."""
    if os.geteuid() != 0:
        return
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _run(cmd: list[str], cwd: Path, timeout: float, log: Path, log_kb: int,
         stderr_too: bool = True) -> tuple[int | None, str]:
    """Run with output to a file (a flood cannot block us), then kill the whole session.
    Returns (exit status or None on timeout, the first log_kb of the output)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT if stderr_too else subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
    with open(log, "rb") as f:
        head = f.read(log_kb * 1024)
    return code, head.decode("utf-8", "replace")


def sandbox_cmd(limits: Limits, uid: int | None, cwd: Path, command: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "refmodel.conformance.sandbox", "--cpu", str(limits.cpu_s),
           "--mem", str(limits.memory_mb), "--nproc", str(limits.nproc),
           "--fsize", str(limits.fsize_mb), "--nofile", str(limits.nofile), "--no-net",
           "--cwd", str(cwd)]
    if uid is not None:
        cmd += ["--uid", str(uid)]
    return [*cmd, "--", *command]


def network_isolation() -> str:
    """Whether a new network namespace can be made here (checked once, reported)."""
    r = subprocess.run([sys.executable, "-c",
                        "from refmodel.conformance.sandbox import unshare_net as u; "
                        "import sys; w = u(); print(w or 'ok')"],
                       capture_output=True, text=True, timeout=30)
    out = r.stdout.strip()
    return "new network namespace" if out == "ok" else f"not isolated ({out or r.stderr.strip()})"


def _scrub(card: JSON, workdir: Path) -> JSON:
    """Drop timings and temporary paths, so results are byte-identical between runs."""
    def fix(v: object) -> object:
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items() if k not in VOLATILE}
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, str):
            return v.replace(str(workdir), "<submission>")
        return v
    out = fix(card)
    assert isinstance(out, dict)
    return out


def grade_student(name: str, src: Path, cfg: GradingConfig, work: Path, uid: int | None,
                  python: str = sys.executable) -> tuple[StudentResult, dict[str, JSON], str]:
    """Build and run one submission; returns its result, each task's scorecard, build log."""
    lim = cfg.limits
    wd = work / name
    shutil.copytree(src, wd, symlinks=True)
    if uid is not None:
        for root, dirs, files in os.walk(wd):
            for p in (root, *(os.path.join(root, d) for d in dirs),
                      *(os.path.join(root, f) for f in files)):
                os.lchown(p, uid, uid)
        os.chmod(wd, 0o700)
    logs = work / f".{name}.logs"
    logs.mkdir(mode=0o700)
    try:
        code, build_log = _run(sandbox_cmd(lim, uid, wd, ["sh", "-c", cfg.build]), wd,
                               lim.build_timeout_s, logs / "build.log", lim.log_kb)
        if uid is not None:
            _kill_uid(uid)
        if code != 0:
            why = "timed out" if code is None else f"exit status {code}"
            res = StudentResult(name, 0.0, cfg.max_points, "build-failed",
                                f"the build failed ({why})")
            res.lines = [{"name": r.name, "points": 0.0, "max_points": r.points,
                          "status": "failed", "reason": "the build failed"} for r in cfg.rubric]
            return res, {}, build_log
        cards: dict[str, JSON] = {}
        for task in cfg.tasks:
            cards[task.name] = _run_task(task, cfg, wd, logs, uid, python)
            if uid is not None:
                _kill_uid(uid)
        return _score(name, cfg, cards), cards, build_log
    finally:
        if uid is not None:
            _kill_uid(uid)


def _run_task(task: Task, cfg: GradingConfig, wd: Path, logs: Path, uid: int | None,
              python: str) -> JSON:
    lim = cfg.limits
    cmd = [python, "-m", "refmodel.cli", "conform", "--target", task.target, "--mode", task.mode,
           "--sequences", str(task.sequences), "--steps", str(task.steps), "--seed",
           str(task.seed), "--timeout", str(lim.request_timeout_s), "--json", "--no-progress"]
    for k, v in task.config:
        cmd += ["--config", f"{k}={v}"]
    cmd += ["--", *sandbox_cmd(lim, uid, wd, ["sh", "-c", f"exec {task.run}"])]
    code, text = _run(cmd, wd, lim.run_timeout_s, logs / f"{task.name}.json", 1 << 20,
                      stderr_too=False)
    try:
        card = json.loads(text)
        assert isinstance(card, dict)
    except (ValueError, AssertionError):
        why = "the run timed out" if code is None else f"no scorecard (exit status {code})"
        card = {"verdict": "not driven", "drive_error": why, "checks": []}
    if code is None:
        card["drive_error"] = f"the whole run exceeded {lim.run_timeout_s} s"
    return _scrub(card, wd)


def _score(name: str, cfg: GradingConfig, cards: dict[str, JSON]) -> StudentResult:
    lines: list[JSON] = []
    total = 0.0
    for r in cfg.rubric:
        raw = cards.get(r.task, {}).get("checks", [])
        checks = {c.get("name"): c for c in (raw if isinstance(raw, list) else [])
                  if isinstance(c, dict)}
        missing = [c for c in r.checks if c not in checks]
        failed = [c for c in r.checks if c in checks and checks[c].get("status") == "failed"]
        not_run = [c for c in r.checks if c in checks and checks[c].get("status") == "not run"]
        if missing:
            status, reason = "not run", f"unknown check(s) {', '.join(missing)}"
        elif failed:
            desc = checks[failed[0]].get("description", "")
            status, reason = "failed", f"{failed[0]} failed: {desc}"
        elif not_run:
            status = "not run"
            reason = f"{not_run[0]} was not run: {checks[not_run[0]].get('reason', '')}"
        else:
            status, reason = "passed", ""
        pts = r.points if status == "passed" else 0.0
        total += pts
        lines.append({"name": r.name, "task": r.task, "points": pts, "max_points": r.points,
                      "status": status, "reason": reason})
    drive = [f"{t}: {_drive_reason(c.get('drive_error'))}" for t, c in cards.items()
             if c.get("drive_error")]
    verdicts = [str(c.get("verdict", "")) for c in cards.values()]
    status = "not-driven" if drive else "graded"
    reason = "; ".join(drive) if drive else ", ".join(f"{t}: {v}" for t, v in
                                                      zip(cards, verdicts, strict=True))
    res = StudentResult(name, total, cfg.max_points, status, reason, lines)
    res.tasks = [{"task": t, "verdict": c.get("verdict"), "first_failure": c.get("first_failure"),
                  "drive_error": c.get("drive_error")} for t, c in cards.items()]
    return res


# --------------------------------------------------------------------------------------------
# Output files


def _gradescope(res: StudentResult, cards: dict[str, JSON]) -> JSON:
    tests = [{"name": str(line["name"]), "score": line["points"],
              "max_score": line["max_points"], "status": "passed" if line["status"] == "passed"
              else "failed", "output": str(line["reason"])} for line in res.lines]
    return {"score": res.score, "output": res.reason, "tests": tests}


def _replay_command(task: str, card: JSON) -> str:
    cex = card.get("counterexample")
    if not cex:
        return ""
    return (f"refmodel conform replay counterexample-{task}.json -- <your run command>")


def _markdown(res: StudentResult, cards: dict[str, JSON]) -> str:
    out = [f"# {res.name}: {res.score:g} / {res.max_score:g}", "", f"Status: {res.status}. "
           f"{res.reason}", "", "| rubric line | points | status | why |", "|---|---|---|---|"]
    for line in res.lines:
        out.append(f"| {line['name']} | {line['points']:g} / {line['max_points']:g} | "
                   f"{line['status']} | {str(line['reason']).replace('|', '/')} |")
    for task, card in cards.items():
        ff = card.get("first_failure")
        if ff:
            out += ["", f"## {task}: the first failure", "", f"{ff}"]
        cex = card.get("counterexample")
        if cex:
            out += ["", f"Minimal counterexample (`counterexample-{task}.json`), replay with:", "",
                    f"    {_replay_command(task, card)}", "", "```json",
                    json.dumps(cex, indent=1, sort_keys=True)[:20000], "```"]
        if card.get("drive_error"):
            out += ["", f"## {task}: could not be driven", "", str(card["drive_error"])]
    return "\n".join(out) + "\n"


def write_student(out: Path, res: StudentResult, cards: dict[str, JSON], build_log: str) -> None:
    d = out / "students" / res.name
    d.mkdir(parents=True, exist_ok=True)
    dump = {"result": res.to_json(), "scorecards": cards}
    (d / "scorecard.json").write_text(json.dumps(dump, indent=1, sort_keys=True) + "\n")
    (d / "scorecard.md").write_text(_markdown(res, cards))
    (d / "results.json").write_text(json.dumps(_gradescope(res, cards), indent=1,
                                               sort_keys=True) + "\n")
    (d / "build.log").write_text(build_log)
    for task, card in cards.items():
        if card.get("counterexample"):
            (d / f"counterexample-{task}.json").write_text(
                json.dumps(card["counterexample"], indent=1, sort_keys=True) + "\n")


def write_summary(out: Path, results: list[JSON], isolation: str) -> None:
    """summary.csv, summary.md and junit.xml for the class, from the per-student results."""
    results = sorted(results, key=lambda r: str(r["student"]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", "score", "max_score", "status", "reason"])
    for r in results:
        w.writerow([r["student"], r["score"], r["max_score"], r["status"], r["reason"]])
    (out / "summary.csv").write_text(buf.getvalue())
    md = ["# Class summary", "", f"{len(results)} submissions; isolation: {isolation}.", "",
          "| student | score | status | reason |", "|---|---|---|---|"]
    for r in results:
        student = str(r["student"]).replace("|", "\\|")  # a | would end the cell
        md.append(f"| {student} | {r['score']:g} / {r['max_score']:g} | {r['status']} | "
                  f"{str(r['reason']).replace('|', '/')} |")
    (out / "summary.md").write_text("\n".join(md) + "\n")
    cases = []
    fails = 0
    for r in results:
        for line in r["rubric"]:  # type: ignore[attr-defined]
            name = _attr(f"{r['student']}: {line['name']}")
            cls = _attr(str(r["student"]))
            if line["status"] == "passed":
                cases.append(f'  <testcase classname="{cls}" name="{name}"/>')
            else:
                fails += 1
                msg = _attr(str(line["reason"]))
                cases.append(f'  <testcase classname="{cls}" name="{name}">'
                             f'<failure message="{msg}"/></testcase>')
    (out / "junit.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name="refmodel-grade" tests="{len(cases)}" failures="{fails}">\n'
        + "\n".join(cases) + "\n</testsuite>\n")
    (out / "class.json").write_text(json.dumps({"isolation": isolation, "results": results},
                                               indent=1, sort_keys=True) + "\n")


def grade(submissions: Path, cfg: GradingConfig, out: Path, jobs: int = 1,
          shard: tuple[int, int] | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> list[JSON]:
    """Grade every submission (of this shard); write per-student files and the summaries."""
    students = shard_of(students_of(submissions, out), shard)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    isolation = network_isolation()
    root = os.geteuid() == 0
    isolation += "; own user id per submission" if root else "; same user id (not root)"
    work = Path(tempfile.mkdtemp(prefix="refmodel-grade-"))
    os.chmod(work, 0o711)
    all_students = students_of(submissions, out)
    results: list[JSON] = []
    done = [0]

    def one(name: str) -> JSON:
        uid = UID_BASE + all_students.index(name) if root else None
        try:
            res, cards, log = grade_student(name, submissions / name, cfg, work, uid)
        except Exception as e:  # the grader never crashes on one student
            res, cards, log = StudentResult(name, 0.0, cfg.max_points, "grader-error",
                                            f"{type(e).__name__}: {e}"), {}, ""
        write_student(out, res, cards, log)
        done[0] += 1
        if progress is not None:
            progress(done[0], len(students), name)
        return res.to_json()

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
            results = list(ex.map(one, students))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_summary(out, results, isolation)
    return results


def merge(shard_dirs: Sequence[Path], out: Path) -> list[JSON]:
    """Combine shards' results into the summary one machine would have written. Every
    shard is read and checked before anything is written: ValueError for a class.json
    grade did not write, a student in two shards, shards graded against rubrics worth
    different points, or an --out that is one of the shards."""
    results: list[JSON] = []
    isolation = ""
    for d in shard_dirs:
        if out.resolve() == d.resolve():
            raise ValueError(f"--out {out} is one of the shards")
        try:
            doc = json.loads((d / "class.json").read_text())
        except ValueError as e:
            raise ValueError(f"{d}/class.json is not JSON: {e}") from None
        rs = doc.get("results") if isinstance(doc, dict) else None
        if (not isinstance(doc, dict) or not isinstance(doc.get("isolation"), str)
                or not isinstance(rs, list)
                or not all(isinstance(r, dict) and isinstance(r.get("student"), str)
                           and isinstance(r.get("max_score"), int | float)
                           and isinstance(r.get("rubric"), list) for r in rs)):
            raise ValueError(f"{d}/class.json was not written by refmodel grade")
        isolation = isolation or doc["isolation"]
        results.extend(rs)
    names = [str(r["student"]) for r in results]
    if len(names) != len(set(names)):
        raise ValueError("a student appears in more than one shard")
    if len({r["max_score"] for r in results}) > 1:
        raise ValueError("the shards were graded against rubrics worth different points")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for d in shard_dirs:
        src = d / "students"
        if src.is_dir():
            for s in src.iterdir():
                if s.is_dir():
                    shutil.copytree(s, out / "students" / s.name, dirs_exist_ok=True)
    write_summary(out, results, isolation)
    return results


def now() -> float:
    return time.perf_counter()
