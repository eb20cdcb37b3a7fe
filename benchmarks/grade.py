"""grade.*: grading a class of copies of the C buddy example (--jobs 2)."""

from __future__ import annotations

import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path

from refmodel.conformance.grade import grade
from refmodel.conformance.grade_config import parse_config


def _examples() -> Path:
    here = Path(str(resources.files("refmodel"))).resolve().parent
    return here / "examples"


def run(quick: bool = False) -> dict[str, float]:
    """A class of 20 copies (4 with --quick) of examples/buddy_c, graded with the example
    configuration (its default sequence counts) and two jobs."""
    ex = _examples()
    if shutil.which("cc") is None or not (ex / "buddy_c").is_dir():
        return {}
    n = 4 if quick else 20
    cfg = parse_config((ex / "grading" / "grading.toml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        for i in range(n):
            shutil.copytree(ex / "buddy_c", subs / f"student{i:02d}",
                            ignore=shutil.ignore_patterns("Makefile", "buddy", "buddy_*"))
        t0 = time.perf_counter()
        results = grade(subs, cfg, Path(tmp) / "out", jobs=2)
        secs = time.perf_counter() - t0
    assert all(r["status"] == "graded" for r in results)
    return {"grade.submissions_per_min": round(n * 60 / secs, 1)}
