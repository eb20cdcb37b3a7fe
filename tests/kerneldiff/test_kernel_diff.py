"""kernel-diff: its machinery (maps parsing, the window, the shrinker, the deltas) and one
run against the live kernel that must agree fully once the documented deltas are applied."""

from __future__ import annotations

import json
import os
import random

import pytest

from refmodel.cli import main
from refmodel.kerneldiff.deltas import HOST_DELTAS
from refmodel.kerneldiff.driver import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    Op,
    StepResult,
    first_divergence,
    gen_sequence,
    kernel_diff,
    shrink,
)
from refmodel.kerneldiff.maps import MapsEntry, find_free_window, parse_maps, parse_maps_line
from refmodel.kerneldiff.model_side import run_model

HAVE_PROC_MAPS = os.path.exists("/proc/self/maps")


def test_parse_maps_line_reads_range_perms_and_path() -> None:
    e = parse_maps_line("7f0000000000-7f0000002000 rw-s 00001000 00:01 1234   /dev/zero (deleted)")
    assert (e.start, e.end, e.perms, e.offset) == (0x7F0000000000, 0x7F0000002000, "rw-s", 0x1000)
    assert e.shared and e.path == "/dev/zero (deleted)"
    anon = parse_maps_line("100000000000-100000001000 ---p 00000000 00:00 0")
    assert not anon.shared and anon.path == "" and str(anon) == "0x100000000000-0x100000001000 ---p"


@pytest.mark.parametrize("bad", ["", "zzzz", "1000-0500 rw-p 0 0:0 0", "1000-2000 rwzp 0 0:0 0"])
def test_parse_maps_line_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_maps_line(bad)


def test_parse_maps_keeps_only_entries_touching_the_window() -> None:
    text = "1000-2000 r--p 0 0:0 0\n5000-7000 rw-p 0 0:0 0\n9000-a000 r-xp 0 0:0 0\n"
    assert [e.start for e in parse_maps(text, (0x6000, 0x9000))] == [0x5000]


def test_find_free_window_skips_mappings_and_keeps_a_gap() -> None:
    maps = [MapsEntry(0x100000000000, 0x100000100000, "rw-p", 0, "")]
    base = find_free_window(maps, 0x100000, 0x100000000000)
    assert base >= 0x100000100000 + 4096 and base % 0x100000 == 0
    assert find_free_window([], 0x100000, 0x200000000000) == 0x200000000000


def test_shrink_finds_the_minimal_diverging_subsequence() -> None:
    steps: list[Op] = [{"op": "munmap", "addr": i * 4096, "len": 4096} for i in range(20)]

    def diverges(seq: list[Op]) -> bool:  # diverges iff steps 3 and 17 are both present
        addrs = {int(s["addr"]) for s in seq}
        return 3 * 4096 in addrs and 17 * 4096 in addrs

    small = shrink(steps, diverges)
    assert [int(s["addr"]) // 4096 for s in small] == [3, 17]


def test_gen_sequence_is_deterministic_for_a_seed() -> None:
    assert gen_sequence(random.Random(7), 50) == gen_sequence(random.Random(7), 50)
    assert gen_sequence(random.Random(7), 50) != gen_sequence(random.Random(8), 50)


def test_first_divergence_reports_the_step_and_applies_only_documented_deltas() -> None:
    op: Op = {"op": "mprotect", "addr": 0, "len": 8192, "prot": 0}
    host = StepResult(0, ["0x0-0x2000 ---p"])
    # 5.10 keeps the two halves apart: only the first carries VM_ACCOUNT.
    model = StepResult(0, ["0x0-0x1000 ---p", "0x1000-0x2000 ---p"], [0x100073, 0x73])
    assert first_divergence([op], [host], [model], use_deltas=False)[0] == 0
    idx, applied = first_divergence([op], [host], [model], use_deltas=True)
    assert idx is None and applied == {HOST_DELTAS[0].name: 1}
    # Not explained: the model's halves differ in more than VM_ACCOUNT.
    other = StepResult(0, model.maps, [0x100073, 0x8000073])
    assert first_divergence([op], [host], [other], use_deltas=True)[0] == 0


def test_model_side_reports_maps_relative_to_the_window() -> None:
    base = 0x100000000000
    seq: list[Op] = [
        {"op": "mmap", "addr": 0x4000, "len": 0x3000, "prot": 3,
         "flags": MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED},
        {"op": "mprotect", "addr": 0x5000, "len": 0x1000, "prot": 1},
        {"op": "munmap", "addr": 0x4000, "len": 0x1000},
    ]
    res, trace = run_model(seq, base, True)
    assert res[0].ret == 0x4000 and res[0].maps == ["0x4000-0x7000 rw-p"]
    assert res[1].maps == ["0x4000-0x5000 rw-p", "0x5000-0x6000 r--p", "0x6000-0x7000 rw-p"]
    assert res[2].maps == ["0x5000-0x6000 r--p", "0x6000-0x7000 rw-p"]
    assert "__do_munmap" in trace


@pytest.mark.skipif(not HAVE_PROC_MAPS, reason="this system has no /proc/self/maps")
def test_live_kernel_agrees_on_200_sequences_of_30_steps_with_deltas() -> None:
    rep = kernel_diff(run_model, sequences=200, steps=30, seed=2024, use_deltas=True)
    doc = rep.to_json()
    assert rep.steps == 6000 and rep.sequences == 200
    assert rep.diverged == 0, json.dumps(doc["counterexamples"], indent=1)[:4000]
    assert rep.agreed == 200


@pytest.mark.skipif(not HAVE_PROC_MAPS, reason="this system has no /proc/self/maps")
def test_cli_json_has_the_promised_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["kernel-diff", "--sequences", "3", "--steps", "10", "--seed", "1",
                 "--host-deltas", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("sequences", "steps", "agreed", "diverged", "deltas_applied", "host_kernel",
                "counterexamples"):
        assert key in doc
    assert doc["sequences"] == 3 and doc["steps"] == 30 and doc["host_kernel"] == os.uname().release


def test_cli_rejects_bad_counts() -> None:
    assert main(["kernel-diff", "--sequences", "0"]) == 2


@pytest.mark.skipif(not HAVE_PROC_MAPS, reason="this system has no /proc/self/maps")
def test_a_model_bug_is_caught_and_shrunk_to_a_short_replayable_sequence() -> None:
    def broken_model(steps: list[Op], base: int, trace: bool) -> tuple[list[StepResult], str]:
        res, tr = run_model(steps, base, trace)
        for r in res:  # a model that forgets to report PROT_EXEC
            r.maps = [f"{m.split()[0]} {m.split()[1][:2]}-{m.split()[1][3]}" for m in r.maps]
        return res, tr

    rep = kernel_diff(broken_model, sequences=20, steps=30, seed=3, use_deltas=True)
    assert rep.diverged > 0 and rep.counterexamples
    cex = rep.counterexamples[0]
    assert len(cex.steps) <= 3 and cex.index == len(cex.steps) - 1
    assert cex.host.maps != cex.model.maps and cex.trace
