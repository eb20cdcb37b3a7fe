"""The refmodel command: every subcommand runs, and its --json output has what it promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refmodel.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_trace_shows_allocation_and_free_trees(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "trace", "alloc")
    assert code == 0
    for name in ("alloc_pages", "__alloc_pages_nodemask", "get_page_from_freelist",
                 "rmqueue_pcplist", "__rmqueue_smallest", "expand", "free_unref_page_commit",
                 "__free_pages_ok", "__free_one_page", "[mm/page_alloc.c]"):
        assert name in out


def test_trace_json_is_a_call_tree(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "trace", "first-alloc", "--json")
    assert code == 0
    doc = json.loads(out)
    root = doc["calls"][0]
    assert root["name"] == "alloc_pages" and root["children"][0]["name"] == "alloc_pages_current"


def test_trace_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "no-such-thing"]) == 2


@pytest.mark.parametrize("argv", [
    ["check", "--steps", "0"], ["check", "--steps", "-1"], ["trace", "--depth", "-1"],
    ["conform", "--target", "buddy", "--timeout", "inf", "--", "true"],
    ["conform", "--target", "buddy", "--timeout", "nan", "--", "true"],
    ["conform", "--target", "buddy", "--timeout", "0", "--", "true"],
    ["fuzz", "--model", "--minutes", "nan"], ["fuzz", "--model", "--minutes", "-1"],
    ["fuzz", "--target", "buddy", "--timeout", "1e308", "--", "true"],
])
def test_numbers_out_of_range_are_usage_errors(argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # each of these used to run oddly (0 steps, "-1 steps") or end in a traceback
    # (OverflowError from selectors for an infinite timeout)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_unwritable_outputs_exit_2_with_the_reason(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["vectors", "--target", "buddy", "--out", str(blocked / "v"),
                 "--count", "1"]) == 2
    assert "cannot write vectors" in capsys.readouterr().err
    assert main(["conform", "--target", "buddy", "--python",
                 "refmodel.conformance.reference:ModelBuddy", "--sequences", "2",
                 "--no-progress", "--junit", str(blocked / "x.xml")]) == 2
    assert "cannot write a report" in capsys.readouterr().err


def test_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "check", "--steps", "120", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and len(doc["runs"]) == 4
    assert {"no_unmerged_buddies", "check_cow", "check_reclaim"} <= set(doc["invariants"])
    pressure = doc["runs"][3]
    assert pressure["config"] == "system-pressure-24MiB" and pressure["steps"] == 60
    assert pressure["swapped"] > 0  # the pressure run really swapped


def test_prove_json_reports_each_proof(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "prove", "--json")
    assert code == 0
    doc = json.loads(out)
    names = {p["name"] for p in doc["proofs"]}
    assert {"buddy.alignment", "buddy.involution", "buddy.halves_of_parent"} <= names
    assert all(p["result"] == "proved" and p["broken_variant"] == "caught" for p in doc["proofs"])
    assert all(isinstance(p["seconds"], float) for p in doc["proofs"])


def test_bench_json_has_the_buddy_figures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "bench", "--json", "--quick", "--only", "buddy")
    assert code == 0
    doc = json.loads(out)
    for key in ("buddy.ops_per_s", "buddy.baseline_ops_per_s", "buddy.boot_16g_s"):
        assert doc[key] > 0
    assert 0 <= doc["buddy.rss_16g_mb"] < 64


@pytest.mark.parametrize("scenario", ["pagetable", "pagetable-5"])
def test_trace_pagetable_reaches_set_pte_at(capsys: pytest.CaptureFixture[str],
                                            scenario: str) -> None:
    code, out = run(capsys, "trace", scenario, "--json")
    assert code == 0
    names = [c["name"] for c in json.loads(out)["calls"]]
    assert names[0] == "pgd_alloc" and "set_pte_at" in names
    assert names.index("pud_alloc") < names.index("pmd_alloc") < names.index("pte_alloc")


def test_trace_oom_shows_out_of_memory_down_to___oom_kill_process(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "trace", "oom", "--json")
    assert code == 0
    calls = json.loads(out)["calls"]
    assert [c["name"] for c in calls] == ["exc_page_fault", "do_exit", "release_task"]

    def path(node: dict[str, object], name: str) -> list[str] | None:
        if node["name"] == name:
            return [name]
        kids = node["children"]
        assert isinstance(kids, list)
        for child in kids:
            sub = path(child, name)
            if sub is not None:
                return [str(node["name"]), *sub]
        return None

    to_kill = path(calls[0], "__oom_kill_process")
    assert to_kill is not None and to_kill[-5:] == [
        "__alloc_pages_slowpath", "__alloc_pages_may_oom", "out_of_memory", "oom_kill_process",
        "__oom_kill_process"]
    to_select = path(calls[0], "select_bad_process")
    assert to_select is not None and to_select[-3:] == [
        "__alloc_pages_may_oom", "out_of_memory", "select_bad_process"]
    code, text = run(capsys, "trace", "oom")
    assert code == 0 and "__oom_kill_process" in text and "[mm/oom_kill.c]" in text


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    # `refmodel trace reclaim | head -1`: no traceback when the reader goes away
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from refmodel.cli import main; "
         "sys.exit(main(['trace', 'reclaim']))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert first.startswith(b"# reclaim") and b"Traceback" not in err, err
