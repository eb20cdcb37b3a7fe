"""The *_addr_end walk steps: their plain-int fast path against the generic unsigned form.

pgd_addr_end … pmd_addr_end answer plain ints with comparisons that leave out the 64-bit
wrap-around arithmetic (0 standing for 2**64); any other BitOps takes the generic helper,
which writes the kernel's unsigned test ``boundary - 1 < end - 1`` with explicit masking.
The two must agree on every pair of unsigned longs."""

from __future__ import annotations

import operator
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from refmodel.arch.x86 import pgtable_types as T
from refmodel.arch.x86.pgtable import p4d_addr_end, pgd_addr_end, pmd_addr_end, pud_addr_end

# Python ints through the generic path: the same operations as PY_OPS, another object.
GENERIC = T.BitOps(lambda c, a, b: a if c else b, operator.lt, operator.and_, operator.not_)
TOP = 1 << 64
_SIZES = [T.PMD_SIZE, T.PUD_SIZE, T.P4D_SIZE, T.PGDIR_SIZE(4), T.PGDIR_SIZE(5)]
# Near 0, near the top and on either side of a boundary of every level.
_EDGES = sorted({x % TOP for s in _SIZES for k in (0, 1, 2, TOP // s - 1, TOP // s)
                 for x in (k * s - 1, k * s, k * s + 1)})
ulong = st.one_of(st.sampled_from(_EDGES), st.integers(0, TOP - 1))

STEPS: list[Callable[[int, int, T.BitOps], int]] = [
    lambda a, e, ops: pgd_addr_end(a, e, 4, ops),
    lambda a, e, ops: pgd_addr_end(a, e, 5, ops),
    lambda a, e, ops: p4d_addr_end(a, e, ops),
    lambda a, e, ops: pud_addr_end(a, e, ops),
    lambda a, e, ops: pmd_addr_end(a, e, ops),
]


@given(addr=ulong, end=ulong)
def test_fast_path_agrees_with_the_generic_unsigned_form(addr: int, end: int) -> None:
    for step in STEPS:
        assert step(addr, end, T.PY_OPS) == step(addr, end, GENERIC)


def test_the_last_step_below_the_top_ends_at_end_zero() -> None:
    # end 0 is 2**64: the walk of the top region stops at the boundary that wraps to 0
    addr = TOP - T.PMD_SIZE
    assert pmd_addr_end(addr, 0) == 0
    assert pmd_addr_end(addr - T.PMD_SIZE, 0) == addr
    assert pmd_addr_end(0x1000, 0x3000) == 0x3000
