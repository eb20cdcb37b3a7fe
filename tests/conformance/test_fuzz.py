"""``refmodel fuzz``: a short budget against an implementation keeps its failure in the
example database; ``--model`` runs the model's own state machines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refmodel.cli import main


def test_fuzz_target_finds_and_keeps_a_failure(buddy_bins: dict[str, Path], tmp_path: Path,
                                               capsys: object) -> None:
    db = tmp_path / "db"
    rc = main(["fuzz", "--target", "buddy", "--minutes", "0.05", "--database", str(db),
               "--json", "--", str(buddy_bins["buddy_wrong_buddy"])])
    card = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert rc == 1 and card["verdict"] == "not conforming"
    assert any(db.rglob("*")), "the failing example is saved in the database"


def test_fuzz_model_runs_the_state_machines(tmp_path: Path, capsys: object) -> None:
    rc = main(["fuzz", "--model", "--minutes", "0.01", "--database", str(tmp_path / "db"),
               "--json", "--seed", "1"])
    doc = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert rc == 0 and doc["ok"] and sum(doc["examples"].values()) >= 10


def test_fuzz_usage_errors() -> None:
    assert main(["fuzz", "--minutes", "1"]) == 2
    assert main(["fuzz", "--model", "--target", "buddy"]) == 2


def test_fuzz_model_without_a_checkout_uses_the_installed_system_driver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from refmodel.conformance.fuzz import fuzz_model

    monkeypatch.setenv("REFMODEL_SOURCE", str(tmp_path))  # nothing to import there
    monkeypatch.setattr("refmodel.conformance.model_machines._SOURCES",
                        {"no_such_module_here": ()})
    assert fuzz_model(0.02, None, True, 7) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["systems"] >= 1 and doc["steps"] >= 200
