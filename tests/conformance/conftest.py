"""Fixtures for the conformance kit's tests: the C examples built with ``cc`` at test time.

No compiler means the examples cannot be checked: that is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUDDY_C = REPO / "examples" / "buddy_c"
VARIANTS = {
    "buddy": [],
    "buddy_no_merge": ["-DBROKEN_NO_MERGE"],
    "buddy_wrong_buddy": ["-DBROKEN_WRONG_BUDDY"],
    "buddy_double_free": ["-DBROKEN_DOUBLE_FREE"],
}


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which(
        "clang")
    if cc is None:
        pytest.fail("no C compiler (cc, gcc or clang) found: the C examples of the "
                    "conformance kit cannot be built, and they must be checked")
    return cc


@pytest.fixture(scope="session")
def buddy_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The C buddy example and its broken variants, compiled into a temporary directory."""
    out = tmp_path_factory.mktemp("buddy_c")
    cc = compiler()
    bins = {}
    for name, flags in VARIANTS.items():
        exe = out / name
        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", *flags, "-o", str(exe),
                        str(BUDDY_C / "harness.c"), str(BUDDY_C / "buddy.c")], check=True)
        bins[name] = exe
    return bins
