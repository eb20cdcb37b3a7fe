"""A state machine that maps, remaps, re-protects and unmaps random user addresses in both
paging modes, checking every buddy and page-table invariant after every step, and tearing
everything down at the end to check that nothing leaked.

Each mapped page stands for a one-page VMA: unmapping frees its page and then the tables
its range no longer needs, with the neighbouring mappings as floor and ceiling, the way
unmap_region bounds free_pgtables by the previous and next VMA.
"""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from refmodel.arch.x86.pgtable import (
    mk_pte,
    pgd_free,
    pte_modify,
    pte_pfn,
    pte_write,
    ptep_get_and_clear,
    ptep_set_wrprotect,
    read_entry,
    set_pte_at,
)
from refmodel.arch.x86.pgtable_demo import populate_pte
from refmodel.arch.x86.pgtable_types import (
    P4D_SIZE,
    PAGE_SIZE,
    PGDIR_SIZE,
    PMD_SIZE,
    PUD_SIZE,
    TASK_SIZE_MAX,
    vm_get_page_prot,
)
from refmodel.arch.x86.walk import walk
from refmodel.mm import gfp as G
from refmodel.mm.memory import free_pgd_range
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mmu_gather import tlb_finish_mmu, tlb_gather_mmu
from refmodel.mm.page_alloc import __free_pages as free_pages_of_page
from refmodel.mm.page_alloc import alloc_pages
from refmodel.mm.types import Page
from refmodel.mm.vm_flags import VM_EXEC, VM_READ, VM_SHARED, VM_WRITE
from refmodel.specs.buddy import check_buddy
from refmodel.specs.pagetable import check_pagetables
from tests.pgtable_helpers import machine, new_mm

FULL = (1 << 64) - 1
USER_PAGE_GFP = G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO  # outside the class: no mangling
VM_COMBOS = st.sampled_from(
    [VM_READ, VM_READ | VM_WRITE, VM_READ | VM_EXEC, VM_READ | VM_WRITE | VM_SHARED,
     VM_READ | VM_WRITE | VM_EXEC | VM_SHARED, 0, VM_WRITE, VM_EXEC])


def _boundaries(levels: int) -> list[int]:
    top = TASK_SIZE_MAX(levels)
    out = {0, PAGE_SIZE, top, top - PAGE_SIZE, 0x7FFFF7FFE000}
    for size in (PMD_SIZE, PUD_SIZE, P4D_SIZE, PGDIR_SIZE(levels)):
        for k in (1, 2, 255, 256):
            for a in (k * size - PAGE_SIZE, k * size):
                if 0 <= a <= top:
                    out.add(a)
    return sorted(out)


def _addresses(levels: int) -> st.SearchStrategy[int]:
    pages = TASK_SIZE_MAX(levels) // PAGE_SIZE
    return st.one_of(st.sampled_from(_boundaries(levels)),
                     st.integers(0, pages).map(lambda p: p * PAGE_SIZE))


_ADDR: dict[int, st.SearchStrategy[int]] = {4: _addresses(4), 5: _addresses(5)}


class PageTableMachine(RuleBasedStateMachine):
    levels = 4

    def __init__(self) -> None:
        super().__init__()
        self.m = machine(self.levels)
        self.pgdat = self.m.pgdat
        self.start_allocated = dict(self.pgdat.allocated)
        self.mms: list[mm_struct] = []
        # (mm index, address) -> the mapped page
        self.mapped: dict[tuple[int, int], Page] = {}

    @initialize(n=st.integers(1, 2))
    def make_mms(self, n: int) -> None:
        self.mms = [new_mm(self.pgdat) for _ in range(n)]

    def _ptep(self, mm_i: int, addr: int) -> int:
        ptep = populate_pte(self.pgdat, self.mms[mm_i], addr)
        assert ptep is not None, "out of memory in a 64 MiB machine"
        return ptep

    # ----------------------------------------------------------------------------------------
    @rule(mm_i=st.integers(0, 1), data=st.data(), flags=VM_COMBOS)
    def map_or_remap(self, mm_i: int, data: st.DataObject, flags: int) -> None:
        addr = data.draw(_ADDR[self.levels], label="addr")
        mm_i %= len(self.mms)
        mm = self.mms[mm_i]
        ptep = self._ptep(mm_i, addr)
        page = alloc_pages(self.pgdat, USER_PAGE_GFP, 0)
        assert page is not None
        old = ptep_get_and_clear(self.pgdat, mm, addr, ptep)
        set_pte_at(self.pgdat, mm, addr, ptep, mk_pte(page, vm_get_page_prot(flags)))
        prev = self.mapped.pop((mm_i, addr), None)
        if prev is not None:
            assert pte_pfn(old) == prev.pfn
            free_pages_of_page(self.pgdat, prev, 0)
        else:
            assert old == 0
        self.mapped[(mm_i, addr)] = page
        w = walk(self.pgdat, mm.pgd, addr)
        if flags & (VM_READ | VM_WRITE | VM_EXEC):
            assert w.stop == "mapped" and w.pfn == page.pfn
        else:
            assert w.stop == "not-present" and w.stop_level == "pte"  # PROT_NONE

    @precondition(lambda self: bool(self.mapped))
    @rule(data=st.data(), flags=VM_COMBOS)
    def change_protection(self, data: st.DataObject, flags: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.mapped, key=lambda k: (k[0], k[1]))))
        mm_i, addr = key
        mm = self.mms[mm_i]
        ptep = self._ptep(mm_i, addr)
        old = ptep_get_and_clear(self.pgdat, mm, addr, ptep)  # ptep_modify_prot_start
        new = pte_modify(old, vm_get_page_prot(flags))
        set_pte_at(self.pgdat, mm, addr, ptep, new)  # ptep_modify_prot_commit
        assert pte_pfn(new) == self.mapped[key].pfn

    @precondition(lambda self: bool(self.mapped))
    @rule(data=st.data())
    def wrprotect(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.mapped)))
        ptep = self._ptep(*key)
        ptep_set_wrprotect(self.pgdat, self.mms[key[0]], key[1], ptep)
        assert not pte_write(read_entry(self.pgdat, ptep))

    @precondition(lambda self: bool(self.mapped))
    @rule(data=st.data())
    def unmap(self, data: st.DataObject) -> None:
        mm_i, addr = data.draw(st.sampled_from(sorted(self.mapped)))
        mm = self.mms[mm_i]
        ptep = self._ptep(mm_i, addr)
        page = self.mapped.pop((mm_i, addr))
        assert pte_pfn(ptep_get_and_clear(self.pgdat, mm, addr, ptep)) == page.pfn
        free_pages_of_page(self.pgdat, page, 0)
        # free_pgtables for a one-page "vma", bounded by its neighbours (unmap_region)
        others = sorted(a for (i, a) in self.mapped if i == mm_i)
        floor = max((a + PAGE_SIZE for a in others if a < addr), default=0)
        ceiling = min((a for a in others if a > addr), default=0)
        tlb = tlb_gather_mmu(self.pgdat, mm, addr, addr + PAGE_SIZE)
        free_pgd_range(self.pgdat, tlb, addr, addr + PAGE_SIZE, floor, ceiling)
        tlb_finish_mmu(self.pgdat, tlb, addr, addr + PAGE_SIZE)
        for a in others:
            assert walk(self.pgdat, mm.pgd, a).steps[-1].level == "pte"

    # ----------------------------------------------------------------------------------------
    @invariant()
    def buddy_invariants_hold(self) -> None:
        assert check_buddy(self.pgdat) == []

    @invariant()
    def pagetable_invariants_hold(self) -> None:
        assert check_pagetables(self.pgdat, self.mms) == []

    def teardown(self) -> None:
        # exit_mmap: zap every pte, free the tables of the whole user half, free the pgd
        for (mm_i, addr), page in sorted(self.mapped.items(), key=lambda kv: kv[0]):
            ptep = self._ptep(mm_i, addr)
            ptep_get_and_clear(self.pgdat, self.mms[mm_i], addr, ptep)
            free_pages_of_page(self.pgdat, page, 0)
        self.mapped.clear()
        for mm in self.mms:
            tlb = tlb_gather_mmu(self.pgdat, mm, 0, FULL)
            free_pgd_range(self.pgdat, tlb, 0, TASK_SIZE_MAX(self.levels) + PAGE_SIZE, 0, 0)
            tlb_finish_mmu(self.pgdat, tlb, 0, FULL)
            assert mm.pgtables_bytes == 0
            assert check_pagetables(self.pgdat, self.mms) == []
            pgd_free(self.pgdat, mm, mm.pgd)
            mm.pgd = 0
        assert not self.pgdat.pgtables and not self.pgdat.pgd_list
        assert self.pgdat.allocated == self.start_allocated, "page tables or pages leaked"
        assert sum(self.pgdat.nr_pagetable.values()) == 0
        assert check_buddy(self.pgdat) == []




class FourLevel(PageTableMachine):
    levels = 4


class FiveLevel(PageTableMachine):
    levels = 5


TestPageTablesFourLevel = FourLevel.TestCase
TestPageTablesFiveLevel = FiveLevel.TestCase

# The active profile, capped at 30 examples of 30 steps so CI stays fast; the fuzz profile
# runs uncapped.
_profile = settings()
if os.environ.get("HYPOTHESIS_PROFILE") != "fuzz":
    _profile = settings(_profile, max_examples=min(_profile.max_examples, 30),
                        stateful_step_count=min(_profile.stateful_step_count, 30))
TestPageTablesFourLevel.settings = _profile
TestPageTablesFiveLevel.settings = _profile
