"""Vectors: generated deterministically; the committed set under vectors/ is exactly what the
generator writes today; the kit replays a vector directory against an implementation."""

from __future__ import annotations

import json
from pathlib import Path

from refmodel.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "vectors"
# How the committed set was made (see vectors/manifest.json and docs/conformance.md).
COMMANDS = [["--target", "buddy", "--count", "5", "--steps", "12"],
            ["--target", "pagetable", "--count", "5", "--steps", "12"],
            ["--target", "vma", "--count", "5", "--steps", "12"],
            ["--target", "slab", "--count", "5", "--steps", "30"]]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.json"))}


def test_committed_vectors_are_what_the_generator_writes(tmp_path: Path,
                                                         capsys: object) -> None:
    for argv in COMMANDS:
        assert main(["vectors", *argv, "--out", str(tmp_path)]) == 0
    capsys.readouterr()  # type: ignore[attr-defined]
    fresh, committed = _tree(tmp_path), _tree(COMMITTED)
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"vectors/ is stale; regenerate it (docs/conformance.md): {stale}"


def test_vector_files_are_self_describing() -> None:
    manifest = json.loads((COMMITTED / "manifest.json").read_text())
    assert manifest["format"] == "refmodel-vectors"
    for target, entry in manifest["targets"].items():
        for mode, files in entry["files"].items():
            for name in files:
                doc = json.loads((COMMITTED / name).read_text())
                assert doc["target"] == target and doc["mode"] == mode
                assert len(doc["ops"]) == len(doc["steps"]) or len(doc["steps"]) <= len(
                    doc["ops"])
                for step in doc["steps"]:
                    assert ("answer" in step) == (mode == "strict")
                    assert ("checks" in step) == (mode == "invariant")


def test_replaying_vectors(buddy_bins: dict[str, Path], capsys: object) -> None:
    good, broken = str(buddy_bins["buddy"]), str(buddy_bins["buddy_no_merge"])
    for mode in ("strict", "invariant"):
        assert main(["conform", "replay", str(COMMITTED / "buddy" / mode), "--", good]) == 0
    assert main(["conform", "replay", str(COMMITTED / "buddy" / "invariant"), "--",
                 broken]) == 1
    spec = f"{REPO / 'examples' / 'pagetable_py' / 'pagetable.py'}:PageTable"
    assert main(["conform", "replay", str(COMMITTED / "pagetable" / "strict"), "--python",
                 spec]) == 0
    vma = f"{REPO / 'examples' / 'vma_py' / 'vma.py'}:VmaManager"
    for mode in ("strict", "invariant"):
        assert main(["conform", "replay", str(COMMITTED / "vma" / mode), "--python", vma]) == 0
    slab = REPO / "examples" / "slab_py"
    assert main(["conform", "replay", str(COMMITTED / "slab" / "invariant"), "--python",
                 f"{slab / 'slab.py'}:SlabAllocator"]) == 0
    # 30 steps a vector are enough for the committed set to catch both broken allocators
    for broken_slab in ("slab_double_free.py:DoubleFreeSlabAllocator",
                        "slab_round_down.py:RoundDownSlabAllocator"):
        assert main(["conform", "replay", str(COMMITTED / "slab" / "invariant"), "--python",
                     f"{slab / broken_slab}"]) == 1
    capsys.readouterr()  # type: ignore[attr-defined]
