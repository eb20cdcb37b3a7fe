"""Known differences between Linux 5.10 and newer host kernels, for ``--host-deltas``.

Each delta names the kernel change behind it and recognises exactly the steps it explains;
kernel-diff counts those steps separately from agreement and divergence. Everything no delta
explains counts as a model bug. Found by running kernel-diff on the host (docs/kernel-diff.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Result(Protocol):
    ret: int | str
    maps: list[str]
    flags: list[int]


Op = dict[str, int | str]

VM_ACCOUNT = 0x00100000


@dataclass(frozen=True, slots=True)
class Delta:
    name: str
    since: str
    change: str
    explains: Callable[[Op, Result, Result], bool]


def _coalesce(maps: list[str], flags: list[int] | None, ignore: int) -> list[tuple[int, int, str]]:
    """Join adjacent entries with equal permissions. With ``flags`` (the model's vm_flags per
    entry) only entries whose flags differ in nothing but ``ignore`` are joined."""
    out: list[tuple[int, int, str, int]] = []
    for i, line in enumerate(maps):
        rng, perms = line.split()
        lo, hi = (int(x, 16) for x in rng.split("-"))
        f = flags[i] if flags is not None else 0
        if out and out[-1][1] == lo and out[-1][2] == perms and (
                flags is None or (out[-1][3] | ignore) == (f | ignore)):
            out[-1] = (out[-1][0], hi, perms, out[-1][3])
        else:
            out.append((lo, hi, perms, f))
    return [(a, b, c) for a, b, c, _ in out]


def _unaccount_on_mprotect(op: Op, host: Result, model: Result) -> bool:
    """The host merged VMAs that 5.10 keeps apart because exactly one of them is VM_ACCOUNT.

    5.10's mprotect_fixup sets VM_ACCOUNT when a private mapping becomes writable and never
    clears it ("cannot reduce our commit if we make it unwritable again"), so an anonymous
    VMA that was once writable stays unmergeable with one that never was. Newer kernels clear
    VM_ACCOUNT (and unaccount the memory) when an unfaulted anonymous VMA (no anon_vma) loses
    VM_WRITE, and then merge the two."""
    if host.ret != model.ret:
        return False
    return _coalesce(host.maps, None, 0) == _coalesce(model.maps, model.flags, VM_ACCOUNT)


HOST_DELTAS: list[Delta] = [
    Delta(
        "mprotect-unaccounts-unfaulted-anon",
        "mainline 2024 (\"mm/mprotect: allow unfaulted VMAs to be unaccounted on mprotect()\"),"
        " after 6.6",
        "mprotect_fixup clears VM_ACCOUNT on an anonymous VMA without anon_vma that loses "
        "VM_WRITE, so it merges with never-writable neighbours that 5.10 keeps separate",
        _unaccount_on_mprotect,
    ),
]
