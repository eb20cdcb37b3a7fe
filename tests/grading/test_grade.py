"""refmodel grade end to end: a class of correct, partly correct and hostile submissions."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from refmodel.cli import main
from refmodel.conformance.grade_config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "buddy_c"
CONFIG = (ROOT / "examples" / "grading" / "grading.toml").read_text()
FAST = CONFIG.replace(
    "request_timeout_s = 5", "request_timeout_s = 2").replace(
    "run_timeout_s = 120", "run_timeout_s = 40").replace("cpu_s = 60", "cpu_s = 10")

HOSTILE_MAIN = {
    "crash": "int main(void) { volatile int *p = 0; return *p; }",
    "hang": "int main(void) { for (;;) {} }",
    "garbage": '#include <stdio.h>\nint main(void) { for (int i = 0; i < 50; i++) '
               'puts("%%% not json %%%"); fflush(stdout); for (;;) {} }',
    "flood": '#include <stdio.h>\nint main(void) { for (;;) fputs("xxxxxxxxxxxxxxxxxxxxxxxxxxx'
             'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n", stdout); }',
    "forkbomb": "#include <unistd.h>\nint main(void) { for (;;) fork(); }",
    "memhog": '#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { '
              'char *p = malloc(1 << 26); if (!p) return 3; memset(p, 1, 1 << 26); } }',
}


def make_class(root: Path) -> Path:
    subs = root / "subs"
    subs.mkdir()
    for name in ("good_alice", "good_bob"):
        shutil.copytree(EXAMPLE, subs / name, ignore=shutil.ignore_patterns("Makefile"))
    for name, flag in (("partial_nomerge", "BROKEN_NO_MERGE"),
                       ("partial_doublefree", "BROKEN_DOUBLE_FREE")):
        d = subs / name
        shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns("Makefile"))
        src = (d / "buddy.c").read_text()
        (d / "buddy.c").write_text(f"#define {flag} 1\n" + src)
    bad = subs / "build_fails"
    shutil.copytree(EXAMPLE, bad, ignore=shutil.ignore_patterns("Makefile"))
    (bad / "buddy.c").write_text("this is not C\n")
    for name, code in HOSTILE_MAIN.items():
        d = subs / f"hostile_{name}"
        d.mkdir()
        (d / "harness.c").write_text(code + "\n")
        (d / "buddy.c").write_text("int buddy_unused;\n")
    # Tries to change another student's files and the results, then behaves correctly.
    intruder = subs / "hostile_intruder"
    shutil.copytree(EXAMPLE, intruder, ignore=shutil.ignore_patterns("Makefile"))
    h = (intruder / "harness.c").read_text()
    h = h.replace("int main(void)\n{", 'int main(void)\n{\n    { FILE *f = fopen("../good_alice/'
                  'buddy.c", "w"); if (f) { fputs("pwned", f); fclose(f); } }\n'
                  '    { FILE *f = fopen("/tmp/../' + str(root / "out") + '/summary.csv", "w"); '
                  'if (f) { fputs("pwned", f); fclose(f); } }\n', 1)
    assert "pwned" in h, "the example harness changed: adapt the intruder"
    (intruder / "harness.c").write_text(h)
    return subs


def grade(subs: Path, out: Path, *extra: str) -> dict[str, dict[str, object]]:
    cfg = subs.parent / "grading.toml"
    cfg.write_text(FAST)
    code = main(["grade", str(subs), "--config", str(cfg), "--out", str(out), "--jobs", "2",
                 "--no-progress", *extra])
    assert code == 0
    doc = json.loads((out / "class.json").read_text())
    return {str(r["student"]): r for r in doc["results"]}


@pytest.fixture(scope="module")
def graded(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, dict[str, object]]]:
    if shutil.which("cc") is None:
        pytest.fail("a C compiler (cc) is needed to build the example submissions")
    root = tmp_path_factory.mktemp("class")
    subs = make_class(root)
    before = (subs / "good_alice" / "buddy.c").read_bytes()
    res = grade(subs, root / "out")
    assert (subs / "good_alice" / "buddy.c").read_bytes() == before
    return root, subs, res


def test_correct_submissions_get_full_marks(graded: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    _, _, res = graded
    for name in ("good_alice", "good_bob"):
        assert res[name]["score"] == 100 and res[name]["status"] == "graded"


def test_partly_correct_submissions_lose_the_right_lines(graded: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    _, _, res = graded
    nomerge = {line["name"]: line for line in res["partial_nomerge"]["rubric"]}
    assert nomerge["merging (free lists are the canonical decomposition)"]["status"] == "failed"
    assert res["partial_nomerge"]["score"] < 100
    dbl = {line["name"]: line for line in res["partial_doublefree"]["rubric"]}
    assert dbl["rejecting bad frees"]["status"] == "failed"
    assert "free_rejects_" in str(dbl["rejecting bad frees"]["reason"])


def test_a_build_failure_scores_zero_with_the_reason(graded: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    root, _, res = graded
    assert res["build_fails"]["status"] == "build-failed" and res["build_fails"]["score"] == 0
    log = (root / "out" / "students" / "build_fails" / "build.log").read_text()
    assert "error" in log


@pytest.mark.parametrize("name", sorted(HOSTILE_MAIN))
def test_hostile_submissions_are_reported_not_driven(graded: tuple[Path, Path, dict],  # type: ignore[type-arg]
                                                     name: str) -> None:
    _, _, res = graded
    r = res[f"hostile_{name}"]
    assert r["status"] == "not-driven" and r["score"] == 0, r
    assert r["reason"] and "{'kind'" not in str(r["reason"])  # in words, not a dict's repr


def test_an_intruder_cannot_touch_others_or_the_results(graded: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    root, subs, res = graded
    assert (subs / "good_alice" / "buddy.c").read_text() != "pwned"
    assert "pwned" not in (root / "out" / "summary.csv").read_text()
    assert res["hostile_intruder"]["status"] == "graded"


def test_every_student_has_scorecards_and_gradescope_results(
        graded: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    root, subs, _ = graded
    for s in subs.iterdir():
        d = root / "out" / "students" / s.name
        gs = json.loads((d / "results.json").read_text())
        assert set(gs) == {"score", "output", "tests"} and len(gs["tests"]) == 3
        assert (d / "scorecard.md").read_text().startswith(f"# {s.name}: ")
    assert (root / "out" / "students" / "partial_nomerge" / "counterexample-buddy.json").exists()
    md = (root / "out" / "students" / "partial_nomerge" / "scorecard.md").read_text()
    assert "refmodel conform replay" in md
    for f in ("summary.csv", "summary.md", "junit.xml"):
        assert (root / "out" / f).stat().st_size > 0


def test_grading_is_deterministic_and_shards_merge_to_the_same_summary(
        graded: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    root, subs, _ = graded
    keep = root / "subs2"
    keep.mkdir()
    for n in ("good_alice", "partial_nomerge", "build_fails", "hostile_crash"):
        shutil.copytree(subs / n, keep / n)
    one = root / "one"
    grade(keep, one)
    again = root / "again"
    grade(keep, again)
    s1, s2 = root / "s1", root / "s2"
    grade(keep, s1, "--shard", "1/2")
    grade(keep, s2, "--shard", "2/2")
    assert main(["grade", "merge", str(s1), str(s2), "--out", str(root / "merged")]) == 0
    for f in ("summary.csv", "summary.md", "junit.xml", "class.json"):
        assert (one / f).read_bytes() == (again / f).read_bytes()
        assert (one / f).read_bytes() == (root / "merged" / f).read_bytes()
    cmp = filecmp.dircmp(one / "students", again / "students")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for n in ("good_alice", "partial_nomerge"):
        assert (one / "students" / n / "scorecard.json").read_bytes() == (
            root / "merged" / "students" / n / "scorecard.json").read_bytes()


def test_no_process_is_left_behind(graded: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    out = subprocess.run(["ps", "-eo", "uid=,comm="], capture_output=True, text=True).stdout
    leftovers = [line for line in out.splitlines()
                 if line.split() and 20000 <= int(line.split()[0]) < 21000]
    assert not leftovers, leftovers
    children = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "pid=,comm="],
                              capture_output=True, text=True).stdout.split("\n")
    left = [c for c in children if c.strip() and "ps" not in c]
    assert not left, left


_T = "build = 'x'\n[[task]]\nname = 'a'\ntarget = 'buddy'\nrun = 'x'\n"
_R = "[[rubric]]\nname = 'r'\npoints = 1\nchecks = ['pages_conserved']\n"


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("build = 'x'\n[[task]]\nname = 'a'\ntarget = 'heap'\nrun = 'x'\n", 4, "target 'heap'"),
    ("build = 'x'\nbogus = 1\n", 2, "unknown key 'bogus'"),
    ("build = 'x'\n[[task]]\nname = 'a'\ntarget = 'buddy'\nrun = 'x'\nsequences = 'many'\n",
     6, "'sequences' must be int"),
    ("build = 'x'\n[[task\n", 2, "not valid TOML"),
    ("build = 'x'\n[[task]]\nname = 'a'\ntarget = 'buddy'\nrun = 'x'\n[[rubric]]\nname = 'r'\n"
     "points = 1\ntask = 'zzz'\nchecks = ['c']\n", 9, "unknown task 'zzz'"),
    # accepted once, then every student scored 0 (a config-extremes audit, session 7)
    (_T + "[[rubric]]\nname = 'r'\npoints = nan\nchecks = ['pages_conserved']\n", 8,
     "points must be a finite number"),
    (_T + "[[rubric]]\nname = 'r'\npoints = 1\nchecks = ['pages_conservd']\n", 9,
     "no check 'pages_conservd'"),
    (_T + "[task.config]\nnr_pages = {a = 1}\n", 7, "must be an integer or a string"),
    (_T + "[task.config]\nnr_pages = 0\n", 7, "nr_pages"),
    (_T + _R + "[limits]\nmemory_mb = 0.5\n", 11, "must be a whole number"),
    (_T + _R + "[limits]\nlog_kb = inf\n", 11, "must be a whole number"),
    (_T + _R + "[limits]\nrequest_timeout_s = inf\n", 11, "above 0 and at most 86400"),
])
def test_a_bad_config_is_rejected_with_line_and_reason(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert exc.value.line == line and fragment in exc.value.reason


def test_the_example_config_is_valid() -> None:
    cfg = parse_config(CONFIG)
    assert cfg.max_points == 100 and cfg.tasks[0].target == "buddy"


def test_merge_reads_and_checks_every_shard_before_writing(
        graded: tuple[Path, Path, dict], tmp_path: Path,  # type: ignore[type-arg]
        capsys: pytest.CaptureFixture[str]) -> None:
    # found by an audit: malformed class.json files ended in tracebacks, shards graded
    # with different rubrics merged into one summary, and --out could be a shard
    root, _, _ = graded
    good = json.loads((root / "out" / "class.json").read_text())
    shard = tmp_path / "s1"
    shard.mkdir()
    (shard / "class.json").write_text(json.dumps(good))
    out = tmp_path / "merged"
    cases = {"[]": "not written by refmodel grade",
             json.dumps({**good, "results": ["x"]}): "not written by refmodel grade",
             json.dumps({**good, "results": [{**r, "student": r["student"] + "2",
                                               "max_score": 7} for r in good["results"]]}):
             "rubrics worth different points"}
    for text, fragment in cases.items():
        other = tmp_path / "s2"
        other.mkdir(exist_ok=True)
        (other / "class.json").write_text(text)
        assert main(["grade", "merge", str(shard), str(other), "--out", str(out)]) == 2
        assert fragment in capsys.readouterr().err
        assert not out.exists()  # nothing written
    assert main(["grade", "merge", str(shard), "--out", str(shard)]) == 2
    assert "is one of the shards" in capsys.readouterr().err


def test_junit_and_markdown_escape_student_names(graded: tuple[Path, Path, dict],  # type: ignore[type-arg]
                                        tmp_path: Path) -> None:
    from xml.etree import ElementTree as ET

    from refmodel.conformance.grade import write_summary

    root, _, _ = graded
    doc = json.loads((root / "out" / "class.json").read_text())
    doc["results"][0]["student"] = 'q"uo<te|pipe'
    write_summary(tmp_path, doc["results"], doc["isolation"])
    cases = ET.parse(tmp_path / "junit.xml").getroot().findall("testcase")
    assert 'q"uo<te|pipe' in {c.get("classname") for c in cases}
    row = next(line for line in (tmp_path / "summary.md").read_text().splitlines()
               if "uo<te" in line)
    assert row.count(" | ") == 3  # the student's | is escaped: still four cells


def test_a_folder_name_that_is_not_utf8_is_refused_before_grading(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    os.mkdir(os.fsencode(subs) + b"/bad\xffname")
    cfg = tmp_path / "grading.toml"
    cfg.write_text(CONFIG)
    assert main(["grade", str(subs), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "must be UTF-8" in capsys.readouterr().err


def test_a_results_directory_inside_the_submissions_is_not_a_student(tmp_path: Path) -> None:
    from refmodel.conformance.grade import students_of

    subs = tmp_path / "subs"
    for name in ("alice", "results", ".git"):
        (subs / name).mkdir(parents=True)
    assert students_of(subs) == ["alice", "results"]
    assert students_of(subs, subs / "results") == ["alice"]
