"""The pytest plugin, run as an implementer would: one extra test item that passes for the
correct example and fails with the scorecard for a broken one; the fixture form too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pytest(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "test_theirs.py").write_text("def test_their_own():\n    assert True\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "HYPOTHESIS_PROFILE": "ci"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p",
                           "refmodel.conformance.pytest_plugin", "-q", "-p", "no:cacheprovider",
                           *args], cwd=tmp, capture_output=True, text=True, timeout=300,
                          env=env)


def test_plugin_passes_a_conforming_implementation(buddy_bins: dict[str, Path],
                                                   tmp_path: Path) -> None:
    p = _pytest(tmp_path, "--refmodel-target", "buddy", "--refmodel-impl",
                str(buddy_bins["buddy"]), "--refmodel-sequences", "20")
    assert p.returncode == 0, p.stdout[-3000:]
    assert "2 passed" in p.stdout


def test_plugin_fails_a_broken_one_with_the_counterexample(buddy_bins: dict[str, Path],
                                                           tmp_path: Path) -> None:
    p = _pytest(tmp_path, "--refmodel-target", "buddy", "--refmodel-impl",
                str(buddy_bins["buddy_double_free"]))
    assert p.returncode == 1
    assert "refmodel-conform[buddy]" in p.stdout and "Minimal counterexample" in p.stdout


def test_fixture_form(buddy_bins: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "test_fixture.py").write_text(
        "def test_mine(refmodel_conform):\n"
        f"    r = refmodel_conform('buddy', [{str(buddy_bins['buddy'])!r}], sequences=10)\n"
        "    assert r.status == 0\n")
    p = _pytest(tmp_path)
    assert p.returncode == 0, p.stdout[-3000:]
