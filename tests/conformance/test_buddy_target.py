"""The buddy target's own logic against the 5.10 model: the bad-free classification names the
check the model raises, the abstract state matches the model's free lists as sets, and
alloc_block_at lets the model follow any choice of block."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refmodel.bugs import KernelBug
from refmodel.config import BuddyConfig
from refmodel.conformance.targets.buddy import (
    BAD_FREE_CHECKS,
    BuddySet,
    alloc_block_at,
    canonical_blocks,
    model_free_lists,
)
from refmodel.machine import StandaloneBuddy
from refmodel.specs.buddy import check_buddy


@given(n=st.integers(1, 300), mo=st.integers(1, 11))
def test_canonical_blocks_are_how_the_model_boots(n: int, mo: int) -> None:
    b = StandaloneBuddy(BuddyConfig(n, mo))
    s = BuddySet(n, mo)
    assert [sorted(lst) for lst in model_free_lists(b)] == s.lists_as_sets()
    assert sum(1 << o for _, o in canonical_blocks(0, n, mo)) == n


@given(data=st.data(), n=st.integers(1, 64), mo=st.integers(1, 6))
def test_model_follows_any_choice_and_bad_frees_name_its_check(
        data: st.DataObject, n: int, mo: int) -> None:
    b = StandaloneBuddy(BuddyConfig(n, mo))
    s = BuddySet(n, mo)
    for _ in range(25):
        if data.draw(st.booleans(), label="alloc"):
            order = data.draw(st.integers(0, mo - 1), label="order")
            cands = [(p, o) for o in range(order, mo) for p in sorted(s.free[o])]
            if not cands:
                continue
            head, o = data.draw(st.sampled_from(cands), label="block")
            pfn = head + data.draw(st.integers(0, (1 << (o - order)) - 1)) * (1 << order)
            alloc_block_at(b.pgdat, pfn, order)
            holder = s.containing_free(pfn, order)
            assert holder is not None
            s.take(pfn, order, *holder)
        else:
            pfn = data.draw(st.integers(-1, n + 2), label="pfn")
            order = data.draw(st.integers(0, mo), label="order")
            kind = s.classify_free(pfn, order)
            try:
                b.free(pfn, order)
            except KernelBug as e:
                assert kind != "ok" and BAD_FREE_CHECKS[kind] == e.check, (kind, e.check)
            else:
                assert kind == "ok"
                s.release(pfn, order)
        assert check_buddy(b.pgdat) == []
        assert [sorted(lst) for lst in model_free_lists(b)] == s.lists_as_sets()


def test_configs_with_too_many_free_blocks_to_observe_are_refused() -> None:
    # nr_pages=2**20, max_order=1 was accepted: half a million free blocks in every
    # observation, minutes and a gigabyte for 20 sequences
    from refmodel.conformance.targets.buddy import MAX_BOOT_BLOCKS, BuddyTarget

    t = BuddyTarget()
    with pytest.raises(ValueError, match="free blocks"):
        t.validate_config({"nr_pages": 1 << 20, "max_order": 1})
    assert t.validate_config({"nr_pages": MAX_BOOT_BLOCKS, "max_order": 1})
    assert t.validate_config({"nr_pages": 1 << 20, "max_order": 5})
