"""fork (kernel/fork.c dup_mm → dup_mmap → copy_page_range) and exit (kernel/exit.c,
mm/mmap.c exit_mmap): sharing, counts, and every page back in the allocator."""

from __future__ import annotations

import pytest

from refmodel.arch.x86.pgtable import pte_pfn
from refmodel.arch.x86.pgtable_types import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW
from refmodel.errno import Errno
from refmodel.mm.memory import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES
from refmodel.mm.mman import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE
from refmodel.mm.mmzone import pfn_to_page
from refmodel.scenarios import trace_scenario
from refmodel.specs.call_chains import ANON_WRITE_FAULT, COW_WRITE_FAULT, EXIT, FORK
from refmodel.task import Task
from refmodel.trace import CallNode, Tracer, lookup
from tests.fault_helpers import all_violations, assert_invariants, pte_of, small_machine

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def _starts_chain(node: CallNode, names: list[str]) -> bool:
    if node.name != names[0]:
        return False
    return len(names) == 1 or any(_starts_chain(c, names[1:]) for c in node.children)


def _has_chain(node: CallNode, names: list[str]) -> bool:
    return _starts_chain(node, names) or any(_has_chain(c, names) for c in node.children)


def _chain_in(root: CallNode, chain: tuple[tuple[str, str], ...]) -> None:
    """The trace contains the chain as direct calls, each function in its 5.10 file."""
    assert _has_chain(root, [name for name, _ in chain]), chain
    for name, file in chain:
        kf = lookup(name)
        assert kf is not None and kf.file == file, (name, kf)


def test_cow_trace_matches_the_5_10_chain_down_to_rmqueue() -> None:
    t = trace_scenario("cow")
    assert t.roots[0].name == "exc_page_fault"
    _chain_in(t.roots[0], COW_WRITE_FAULT)


def test_anon_write_fault_trace_matches_the_5_10_chain() -> None:
    m = small_machine()
    task = m.spawn()
    assert task.mm is not None
    a = m.mmap(task.mm, 0, 0x1000, RW, ANON)
    with Tracer() as tr:
        m.write(task, a, b"x")
    _chain_in(tr.roots[0], ANON_WRITE_FAULT)


def test_fork_and_exit_traces_match_the_5_10_chains() -> None:
    t = trace_scenario("fork-exit")
    names = [r.name for r in t.roots]
    fork_root = t.roots[names.index("dup_mm")]
    exit_root = t.roots[names.index("do_exit")]
    _chain_in(fork_root, FORK)
    _chain_in(exit_root, EXIT)
    assert exit_root.find("free_pgtables") is not None and exit_root.find("pgd_free") is not None


def test_fork_shares_anon_pages_write_protected_and_counted() -> None:
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    a = m.mmap(p.mm, 0, 0x3000, RW, ANON)
    for i in range(3):
        m.write(p, a + i * 0x1000, b"p")
    c = m.fork(p)
    assert isinstance(c, Task) and c.mm is not None
    for i in range(3):
        pp, cp = pte_of(m, p, a + i * 0x1000), pte_of(m, c, a + i * 0x1000)
        assert pte_pfn(pp) == pte_pfn(cp)
        assert not pp & _PAGE_RW and not cp & _PAGE_RW
        assert cp & _PAGE_DIRTY and not cp & _PAGE_ACCESSED  # the child's pte is old
        page = pfn_to_page(m.pgdat, pte_pfn(pp))
        assert page._refcount == 2 and page._mapcount == 1
    assert c.mm.rss_stat[MM_ANONPAGES] == 3 and c.mm.total_vm == p.mm.total_vm
    assert c.mm.mmap is not None and p.mm.mmap is not None
    assert c.mm.mmap.anon_vma is not None and c.mm.mmap.anon_vma is not p.mm.mmap.anon_vma
    assert c.mm.mmap.anon_vma.root is p.mm.mmap.anon_vma  # anon_vma_fork: same root
    assert_invariants(m)


def test_fork_shares_shared_mappings_writable_and_clean() -> None:
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    a = m.mmap(p.mm, 0, 0x1000, RW, MAP_SHARED | MAP_ANONYMOUS)
    m.write(p, a, b"s")
    m.mmap(p.mm, 0, 0x1000, RW, ANON)  # (shmem VMAs have no anon_vma: ...)
    assert p.mm.mmap is not None
    c = m.fork(p)
    assert isinstance(c, Task) and c.mm is not None
    # copy_page_range skips the shmem VMA (no anon_vma): the child faults it in
    assert pte_of(m, c, a) == 0
    assert m.read(c, a, 1) == b"s"
    assert c.mm.rss_stat[MM_SHMEMPAGES] == 1 and p.mm.rss_stat[MM_SHMEMPAGES] == 1
    assert pte_of(m, p, a) & _PAGE_RW
    assert_invariants(m)


def test_fork_of_a_file_mapping_with_an_anon_vma_copies_file_ptes() -> None:
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    f = m.create_file("f", b"abcdefgh" * 1024)
    a = m.mmap(p.mm, 0, 0x2000, RW, MAP_PRIVATE, f, 0)
    m.read(p, a, 1)
    m.write(p, a + 0x1000, b"X")  # page 1 private copy: the VMA gets an anon_vma
    c = m.fork(p)
    assert isinstance(c, Task) and c.mm is not None
    assert c.mm.rss_stat[MM_FILEPAGES] == 1 and c.mm.rss_stat[MM_ANONPAGES] == 1
    assert m.read(c, a, 2) == b"ab" and m.read(c, a + 0x1000, 2) == b"Xb"
    assert_invariants(m)


def test_exit_returns_every_page_and_table_to_the_allocator() -> None:
    m = small_machine()
    free_before = {z.name: z.nr_free_pages + z.pageset.count for z in m.pgdat.node_zones}
    p = m.spawn()
    assert p.mm is not None
    a = m.mmap(p.mm, 0, 0x40000, RW, ANON)
    for i in range(0, 0x40000, 0x3000):
        m.write(p, a + i, b"data")
    kids = []
    for _ in range(3):
        c = m.fork(p)
        assert isinstance(c, Task)
        kids.append(c)
        m.write(c, a, b"kid")
    for c in kids:
        m.exit(c)
        assert not all_violations(m)
    m.exit(p)
    assert not m.pgdat.allocated and not m.pgdat.pgtables
    free_after = {z.name: z.nr_free_pages + z.pageset.count for z in m.pgdat.node_zones}
    assert free_after == free_before
    assert m.vm_globals.vm_committed_as == 0


def test_parent_exit_first_leaves_the_child_sole_owner_of_shared_pages() -> None:
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    a = m.mmap(p.mm, 0, 0x1000, RW, ANON)
    m.write(p, a, b"mine")
    c = m.fork(p)
    assert isinstance(c, Task)
    pfn = pte_pfn(pte_of(m, c, a))
    m.exit(p)
    page = pfn_to_page(m.pgdat, pfn)
    assert page._refcount == 1 and page._mapcount == 0
    m.write(c, a, b"M")  # the last sharer reuses the page
    assert pte_pfn(pte_of(m, c, a)) == pfn and m.read(c, a, 4) == b"Mine"
    assert_invariants(m)
    m.exit(c)
    assert not m.pgdat.allocated


def test_vm_area_dup_copies_every_field_but_the_links_and_the_chain() -> None:
    """vm_area_dup (kernel/fork.c) builds its copy positionally: each field lands in place."""
    from dataclasses import fields

    from refmodel.fs import file
    from refmodel.kernel.fork import vm_area_dup
    from refmodel.mm.mm_types import anon_vma, mm_struct, vm_area_struct

    mm = mm_struct()
    orig = vm_area_struct(vm_start=0x1000, vm_end=0x5000, vm_page_prot=0x25, vm_flags=0x73,
                          vm_mm=mm, anon_vma_chain=[anon_vma()], anon_vma=anon_vma(),
                          vm_ops="generic_file_vm_ops", vm_pgoff=7, vm_file=file("f", 4096))
    orig.vm_next = orig.vm_prev = vm_area_struct()
    new = vm_area_dup(orig)
    for f in fields(vm_area_struct):
        if f.name in ("vm_next", "vm_prev"):
            assert getattr(new, f.name) is None
        elif f.name == "anon_vma_chain":
            assert new.anon_vma_chain == [] and new.anon_vma_chain is not orig.anon_vma_chain
        else:
            assert getattr(new, f.name) is getattr(orig, f.name), f.name


# --------------------------------------------------------------------------------------------
# The registered helpers 5.10's fork and zap paths call appear on the trace


def _kids(node: CallNode | None) -> list[str]:
    assert node is not None
    return [c.name for c in node.children]


def test_fork_copy_path_calls_5_10s_pte_tests_and_pte_alloc_map_lock() -> None:
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    a = m.mmap(p.mm, 0, 0x2000, RW, ANON)
    m.write(p, a, b"p")  # page 0 present, page 1 none
    with Tracer() as tr:
        c = m.fork(p)
    assert isinstance(c, Task)
    root = tr.roots[0]
    cpr = root.find("copy_page_range")
    # is_cow_mapping(src_vma->vm_flags) after the early skip, before the walk
    assert _kids(cpr)[:2] == ["is_cow_mapping", "pgd_offset"]
    # copy_pte_range: pte_alloc_map_lock (not pte_alloc_map); pte_none for every pte,
    # pte_present for the one that is not none; add_mm_rss_vec → add_mm_counter (anon only)
    cpte = root.find("copy_pte_range")
    assert _kids(cpte) == ["pte_alloc_map_lock", "pte_offset_map", "pte_none", "pte_present",
                           "copy_present_pte", "pte_none", "add_mm_rss_vec"]
    assert cpte is not None and _kids(cpte.children[-1]) == ["add_mm_counter"]
    # copy_present_pte: vm_normal_page (pte_pfn, pte_special), copy_present_page
    # (is_cow_mapping first), then is_cow_mapping(vm_flags) && pte_write(pte)
    cpp = root.find("copy_present_pte")
    assert _kids(cpp) == ["vm_normal_page", "copy_present_page", "get_page", "page_dup_rmap",
                          "mm_counter", "is_cow_mapping", "pte_write", "ptep_set_wrprotect",
                          "pte_wrprotect", "pte_mkold", "set_pte_at"]
    assert _kids(root.find("vm_normal_page")) == ["pte_pfn", "pte_special"]
    assert _kids(root.find("copy_present_page")) == ["is_cow_mapping"]
    assert_invariants(m)


def test_exit_zaps_through_pte_offset_map_lock_and_the_fullmm_clear() -> None:
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    a = m.mmap(p.mm, 0, 0x2000, RW, ANON)
    m.write(p, a, b"p")
    with Tracer() as tr:
        m.exit(p)
    root = tr.roots[0]
    zpmd = root.find("zap_pmd_range")
    # 5.10's zap walk tests pmd_none_or_trans_huge_or_clear_bad, not pmd_none_or_clear_bad
    assert "pmd_none_or_trans_huge_or_clear_bad" in _kids(zpmd)
    assert zpmd is not None and "pmd_none_or_clear_bad" not in zpmd.names()
    zpte = root.find("zap_pte_range")
    assert _kids(zpte) == [
        "pte_offset_map_lock", "pte_none", "pte_present", "vm_normal_page",
        "ptep_get_and_clear_full", "mm_counter", "page_remove_rmap", "__tlb_remove_page_size",
        "pte_none", "add_mm_rss_vec"]
    assert zpte is not None and "pte_dirty" not in zpte.names()  # an anon page: not asked
    # exit_mmap's gather is fullmm: the local clear, no xchg
    assert zpte.path_to("native_set_pte") == [
        "zap_pte_range", "ptep_get_and_clear_full", "native_local_ptep_get_and_clear",
        "native_pte_clear", "native_set_pte"]
    assert not m.pgdat.allocated


def test_munmap_of_a_file_mapping_zaps_with_ptep_get_and_clear_and_reads_dirty_young() -> None:
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("f", b"abcdefgh" * 1024)
    a = m.mmap(t.mm, 0, 0x1000, RW, MAP_SHARED, f, 0)
    m.write(t, a, b"W")
    with Tracer() as tr:
        assert m.munmap(t.mm, a, 0x1000) == 0
    zpte = tr.roots[0].find("zap_pte_range")
    kids = _kids(zpte)
    # a file page: pte_dirty and pte_young of the cleared pte, as 5.10 (not for anon pages)
    assert kids[:7] == ["pte_offset_map_lock", "pte_none", "pte_present", "vm_normal_page",
                        "ptep_get_and_clear_full", "pte_dirty", "set_page_dirty"]
    assert "pte_young" in kids
    assert zpte is not None and zpte.path_to("native_ptep_get_and_clear") == [
        "zap_pte_range", "ptep_get_and_clear_full", "ptep_get_and_clear",
        "native_ptep_get_and_clear"]
    assert_invariants(m)


def test_zapping_a_swap_pte_clears_it_with_pte_clear_not_present_full() -> None:
    from refmodel.config import MachineConfig, MiB
    from refmodel.machine import Machine
    from refmodel.mm import gfp as G
    from refmodel.mm.mmzone import LRU_INACTIVE_ANON
    from refmodel.mm.swapops import is_swap_pte
    from refmodel.mm.vmscan import DEF_PRIORITY, scan_control, shrink_inactive_list

    m = Machine(MachineConfig(memory=64 * MiB, swap=4 * MiB))
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, 0x1000, RW, ANON)
    m.write(t, a, b"s")
    sc = scan_control(nr_to_reclaim=32, gfp_mask=G.GFP_KERNEL, reclaim_idx=3,
                      priority=DEF_PRIORITY, may_writepage=1, may_unmap=1, may_swap=1)
    for _ in range(2):  # the first pass may only age the page
        shrink_inactive_list(m.pgdat, 1, m.pgdat.node_lruvec, sc, LRU_INACTIVE_ANON)
    assert is_swap_pte(pte_of(m, t, a))
    with Tracer() as tr:
        m.exit(t)
    zpte = tr.roots[0].find("zap_pte_range")
    kids = _kids(zpte)
    assert kids[:3] == ["pte_offset_map_lock", "pte_none", "pte_present"]
    assert "free_swap_and_cache" in kids and "ptep_get_and_clear_full" not in kids
    assert zpte is not None and zpte.path_to("native_set_pte") == [
        "zap_pte_range", "pte_clear_not_present_full", "pte_clear", "native_pte_clear",
        "native_set_pte"]


def test_dup_mmap_stops_with_eintr_before_the_next_vma_once_current_is_killed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """kernel/fork.c:dup_mmap checks fatal_signal_pending(current) before each VMA it
    copies: a parent OOM-killed while its first VMA's page tables are copied copies no
    second VMA; dup_mm fails, so copy_mm reports -ENOMEM and there is no child. The
    half-built mm is dropped and the parent exits once the operation ends."""
    import refmodel.kernel.fork as fork_mod

    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    a = m.mmap(p.mm, 0, 0x1000, RW, ANON)
    b = m.mmap(p.mm, 0, 0x1000, PROT_READ, ANON)  # another protection: a second VMA
    m.write(p, a, b"p")
    assert p.mm.map_count == 2 and b != a
    baseline = set(m.pgdat.allocated)
    from refmodel.mm.memory import copy_page_range as real_copy_page_range

    def copy_then_killed(*args: object, **kwargs: object) -> int:
        ret = real_copy_page_range(*args, **kwargs)  # type: ignore[arg-type]
        p.sigkill_pending = True  # as mark_oom_victim + do_send_sig_info would
        return ret

    monkeypatch.setattr(fork_mod, "copy_page_range", copy_then_killed)
    pids = set(m.tasks)
    with Tracer() as tr:
        assert m.fork(p) == -int(Errno.ENOMEM)
    dup = tr.roots[0].find("dup_mmap")
    assert dup is not None
    assert [c.name for c in dup.children].count("vm_area_dup") == 1
    assert tr.roots[0].find("mmput") is not None  # dup_mm's free_pt
    assert set(m.tasks) == pids - {p.pid}
    assert set(m.pgdat.allocated) <= baseline
    assert all_violations(m) == []


def test_dup_mmap_copies_nothing_when_the_signal_is_already_pending() -> None:
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    m.mmap(p.mm, 0, 0x1000, RW, ANON)
    p.sigkill_pending = True
    with Tracer() as tr:
        assert m.fork(p) == -int(Errno.ENOMEM)
    dup = tr.roots[0].find("dup_mmap")
    assert dup is not None and dup.find("vm_area_dup") is None


def test_dup_mmap_puts_the_childs_file_vma_right_after_the_parents_in_i_mmap() -> None:
    """5.10's dup_mmap inserts the copy with vma_interval_tree_insert_after(tmp, mpnt) in
    line (no __vma_link_file): a second fork's VMA comes before the first fork's."""
    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    f = m.create_file("lib", bytes(4096))
    m.mmap(p.mm, 0, 4096, PROT_READ, MAP_PRIVATE, f)
    with Tracer() as tr:
        c1 = m.fork(p)
    assert tr.roots[0].find("__vma_link_file") is None
    c2 = m.fork(p)
    assert isinstance(c1, Task) and isinstance(c2, Task)
    assert [v.vm_mm for v in f.f_mapping.i_mmap] == [p.mm, c2.mm, c1.mm]


def test_dup_mmap_refused_charge_goes_through_fail_nomem(monkeypatch: pytest.MonkeyPatch) -> None:
    """security_vm_enough_memory_mm failing: dup_mmap's fail_nomem, vm_unacct_memory(0)."""
    from refmodel.mm import mmap as mmap_mod

    m = small_machine()
    p = m.spawn()
    assert p.mm is not None
    m.mmap(p.mm, 0, 4096, RW, ANON)
    monkeypatch.setattr(mmap_mod, "security_vm_enough_memory_mm", lambda mm, pages: -12)
    with Tracer() as tr:
        assert m.fork(p) == -int(Errno.ENOMEM)
    dup = tr.roots[0].find("dup_mmap")
    assert dup is not None and [c.name for c in dup.children] == ["vm_unacct_memory"]


def test_exit_mm_does_not_read_the_rss() -> None:
    """5.10's exit_mm: mmgrab, mmput; the hiwater read is do_exit's (signal->maxrss)."""
    m = small_machine()
    p = m.spawn()
    with Tracer() as tr:
        m.exit(p)
    exit_mm = tr.roots[0].find("exit_mm")
    assert exit_mm is not None and [c.name for c in exit_mm.children] == ["mmgrab", "mmput"]
