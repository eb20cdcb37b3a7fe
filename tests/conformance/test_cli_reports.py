"""``refmodel conform`` end to end: exit statuses, the scorecard as JSON, Markdown and JUnit,
saving a counterexample and replaying it, the subprocess form of the Python adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from refmodel.cli import main

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def test_conforming_run_json_scorecard(buddy_bins: dict[str, Path],
                                       capsys: object) -> None:
    rc = main(["conform", "--target", "buddy", "--sequences", "20", "--json", "--",
               str(buddy_bins["buddy"])])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    card = json.loads(out)
    assert rc == 0 and card["verdict"] == "conforming" and card["exit_status"] == 0
    statuses = {c["name"]: c["status"] for c in card["checks"]}
    assert statuses["alloc_pfn_exact"] == "not run"  # strict-only check in invariant mode
    assert statuses["free_lists_match_model"] == "passed"
    assert card["counterexample"] is None


def test_failing_run_reports_save_and_replay(buddy_bins: dict[str, Path], tmp_path: Path,
                                             capsys: object) -> None:
    ce, md, xml = tmp_path / "ce.json", tmp_path / "card.md", tmp_path / "card.xml"
    rc = main(["conform", "--target", "buddy", "--mode", "strict", "--save", str(ce),
               "--markdown", str(md), "--junit", str(xml), "--",
               str(buddy_bins["buddy_no_merge"])])
    term = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 1
    assert "NOT CONFORMING" in term and "minimal counterexample" in term
    assert "__free_one_page" in term  # the model's call trace of the failing step
    doc = json.loads(ce.read_text())
    assert doc["format"] == "refmodel-counterexample" and len(doc["ops"]) <= 10
    assert "no_unmerged_buddies" in {f["check"] for f in doc["failures"]}
    text = md.read_text()
    assert "not conforming" in text and "| # | request | model expects" in text
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite is not None and int(suite.get("failures", "0")) >= 1
    failed = [tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert "no_unmerged_buddies" in failed
    skipped = [tc for tc in suite.iter("testcase") if tc.find("skipped") is not None]
    assert skipped, "checks that were not run are reported as skipped, never passed"
    # replay: still failing against the broken build, fixed by the correct one
    assert main(["conform", "replay", str(ce), "--", str(buddy_bins["buddy_no_merge"])]) == 1
    assert main(["conform", "replay", str(ce), "--", str(buddy_bins["buddy"])]) == 0
    capsys.readouterr()  # type: ignore[attr-defined]


def test_python_adapter_over_the_subprocess_protocol() -> None:
    spec = f"{REPO / 'examples' / 'pagetable_py' / 'pagetable.py'}:PageTable"
    p = subprocess.run([sys.executable, "-m", "refmodel.cli", "conform", "--target",
                        "pagetable", "--sequences", "10", "--json", "--", sys.executable, "-m",
                        "refmodel.conformance.adapter", "--target", "pagetable", spec],
                       capture_output=True, text=True, timeout=120, env=ENV)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert json.loads(p.stdout)["verdict"] == "conforming"


def test_in_process_python_option(capsys: object) -> None:
    spec = f"{REPO / 'examples' / 'pagetable_py' / 'pagetable_wrong_shift.py'}" \
           ":WrongShiftPageTable"
    assert main(["conform", "--target", "pagetable", "--python", spec, "--json"]) == 1
    card = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert len(card["counterexample"]["steps"]) <= 10


def test_schema_subcommand(capsys: object) -> None:
    assert main(["conform", "schema", "--target", "pagetable"]) == 0
    doc = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert "translate request" in doc["targets"]["pagetable"]


MODEL_BUDDY = "refmodel.conformance.reference:ModelBuddy"


def test_replay_refuses_what_it_cannot_replay_faithfully(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    # found by an audit: a directory of both modes was replayed in the first file's mode
    # only (a strict failure passed), an op with too few arguments ended in an IndexError
    # traceback, and an unknown mode was accepted
    v = tmp_path / "v"
    assert main(["vectors", "--target", "buddy", "--out", str(v), "--count", "2"]) == 0
    capsys.readouterr()
    assert main(["conform", "replay", str(v), "--python", MODEL_BUDDY, "--no-progress"]) == 2
    assert "modes invariant and strict" in capsys.readouterr().err
    assert main(["conform", "replay", str(v / "buddy" / "strict"), "--python", MODEL_BUDDY,
                 "--no-progress", "--json"]) == 0
    capsys.readouterr()
    doc = json.loads(sorted((v / "buddy" / "strict").glob("0*.json"))[0].read_text())
    for key, value, fragment in (("ops", [["alloc"]], "does not fit"),
                                 ("mode", "foo", "mode 'foo'")):
        bad = {**doc, key: value}
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(bad))
        assert main(["conform", "replay", str(f), "--python", MODEL_BUDDY,
                     "--no-progress"]) == 2
        assert fragment in capsys.readouterr().err


def test_a_python_implementation_that_exits_or_fails_to_import_is_not_conforming(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # sys.exit(0) inside a --python class ended the whole run with status 0 and no output
    impl = tmp_path / "exits.py"
    impl.write_text("import sys\nclass B:\n    def __init__(self, nr_pages, max_order): pass\n"
                    "    def alloc_pages(self, order): sys.exit(0)\n"
                    "    def free_pages(self, pfn, order): pass\n")
    assert main(["conform", "--target", "buddy", "--python", f"{impl}:B", "--sequences", "2",
                 "--no-progress", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["verdict"] != "conforming"
    boom = tmp_path / "boom.py"
    boom.write_text("raise RuntimeError('at import')\n")
    assert main(["conform", "--target", "buddy", "--python", f"{boom}:B",
                 "--no-progress"]) == 2
    assert "RuntimeError: at import" in capsys.readouterr().err
