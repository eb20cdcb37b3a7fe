"""Parsing /proc/PID/maps lines into comparable VMA records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MapsEntry:
    """One VMA as /proc/PID/maps shows it: [start, end), "rwxp"/"rwxs", offset, path."""

    start: int
    end: int
    perms: str
    offset: int
    path: str

    @property
    def shared(self) -> bool:
        return self.perms[3] == "s"

    def key(self) -> tuple[int, int, str]:
        """What kernel-diff compares: range, permissions and private/shared."""
        return self.start, self.end, self.perms

    def __str__(self) -> str:
        return f"{self.start:#x}-{self.end:#x} {self.perms}"


def parse_maps_line(line: str) -> MapsEntry:
    """Parse one line; ValueError on anything that is not a maps line."""
    parts = line.split(None, 5)
    if len(parts) < 5:
        raise ValueError(f"not a /proc/PID/maps line: {line!r}")
    rng, perms, offset = parts[0], parts[1], parts[2]
    lo, sep, hi = rng.partition("-")
    if not sep or len(perms) != 4 or any(c not in "rwxps-" for c in perms):
        raise ValueError(f"not a /proc/PID/maps line: {line!r}")
    start, end = int(lo, 16), int(hi, 16)
    if start >= end:
        raise ValueError(f"empty range in maps line: {line!r}")
    path = parts[5].strip() if len(parts) == 6 else ""
    return MapsEntry(start, end, perms, int(offset, 16), path)


def parse_maps(text: str, window: tuple[int, int] | None = None) -> list[MapsEntry]:
    """All entries, or those inside ``window`` (clipped entries are kept whole)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        e = parse_maps_line(line)
        if window is None or (e.start < window[1] and e.end > window[0]):
            out.append(e)
    return out


def find_free_window(maps: list[MapsEntry], size: int, preferred: int) -> int:
    """A free, page-aligned [base, base + size) at or above ``preferred`` that no mapping
    touches (with a one-page gap each side, so nothing can merge into the window)."""
    base = preferred
    for e in sorted(maps, key=lambda m: m.start):
        if e.end + 4096 <= base:
            continue
        if e.start >= base + size + 4096:
            break
        base = (e.end + 4096 + 0xFFFFF) & ~0xFFFFF
    return base
