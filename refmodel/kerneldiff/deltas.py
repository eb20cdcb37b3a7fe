"""Known differences between Linux 5.10 and newer host kernels, for ``--host-deltas``.

Each delta names the kernel change behind it and recognises exactly the steps it explains;
kernel-diff reports the steps a delta explains separately from agreement and divergence.
Everything not explained by a delta counts as a model bug.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Op = dict[str, int | str]
Pred = Callable[[Op, "int | str", "int | str", list[str], list[str]], bool]


@dataclass(frozen=True, slots=True)
class Delta:
    name: str
    since: str
    change: str
    explains: Pred


HOST_DELTAS: list[Delta] = []
