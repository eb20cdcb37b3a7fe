"""Page faults (arch/x86/mm/fault.c, mm/memory.c, 5.10): what each fault maps, counts and
signals. Each test is named for what 5.10 does."""

from __future__ import annotations

import pytest

from refmodel.arch.x86.cpu import X86_PF_INSTR, X86_PF_PROT, X86_PF_USER, X86_PF_WRITE
from refmodel.arch.x86.fault import (
    BUS_ADRERR,
    SEGV_ACCERR,
    SEGV_MAPERR,
    SI_KERNEL,
    SIGBUS,
    SIGSEGV,
    SigInfo,
    access_error,
)
from refmodel.arch.x86.pgtable import pte_pfn
from refmodel.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_NX,
    _PAGE_RW,
    _PAGE_SPECIAL,
)
from refmodel.machine import Machine
from refmodel.mm.memory import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, ZERO_PFN
from refmodel.mm.mm_types import vm_area_struct
from refmodel.mm.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_GROWSDOWN,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from refmodel.mm.mmzone import pfn_to_page
from refmodel.mm.types import PageAnon
from refmodel.mm.vm_flags import VM_READ, VM_WRITE
from refmodel.task import Task
from refmodel.trace import CallNode, Tracer, lookup
from tests.fault_helpers import assert_invariants, pte_of, small_machine

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def _setup(length: int = 0x4000, prot: int = RW,
           flags: int = ANON) -> tuple[Machine, Task, int]:
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    addr = m.mmap(t.mm, 0, length, prot, flags)
    assert addr > 0
    return m, t, addr


def _page_tables_only(m: Machine) -> bool:
    return set(m.pgdat.allocated) == set(m.pgdat.pgtables)


# --------------------------------------------------------------------------------------------
# Anonymous memory


def test_read_fault_on_fresh_anon_maps_zero_page() -> None:
    m, t, a = _setup()
    assert m.read(t, a + 5, 3) == b"\0\0\0"
    pte = pte_of(m, t, a)
    assert pte_pfn(pte) == ZERO_PFN
    assert pte & _PAGE_SPECIAL and not pte & _PAGE_RW and pte & _PAGE_NX
    assert t.mm is not None and t.mm.rss_stat == [0, 0, 0, 0]
    assert _page_tables_only(m)  # only the pud, pmd and pte tables were allocated
    assert pfn_to_page(m.pgdat, ZERO_PFN)._mapcount == -1  # no rmap for the zero page
    assert t.mm.mmap is not None and t.mm.mmap.anon_vma is None  # no anon_vma_prepare
    assert_invariants(m)


def test_first_write_replaces_zero_page_with_a_private_zeroed_page() -> None:
    m, t, a = _setup()
    m.read(t, a, 1)
    assert m.write(t, a + 10, b"x") == 1
    pte = pte_of(m, t, a)
    pfn = pte_pfn(pte)
    assert pfn != ZERO_PFN
    assert pte & _PAGE_RW and pte & _PAGE_DIRTY and not pte & _PAGE_SPECIAL
    page = pfn_to_page(m.pgdat, pfn)
    assert PageAnon(page) and page._mapcount == 0 and page._refcount == 1
    assert t.mm is not None and t.mm.rss_stat[MM_ANONPAGES] == 1
    assert m.read(t, a, 12) == bytes(10) + b"x\0"
    assert_invariants(m)


def test_write_fault_on_fresh_anon_maps_a_writable_dirty_page() -> None:
    m, t, a = _setup()
    assert m.write(t, a, b"abc") == 3
    pte = pte_of(m, t, a)
    want = _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED
    assert pte & want == want
    assert m.read(t, a, 3) == b"abc"
    assert_invariants(m)


def test_write_after_fork_copies_in_the_writer_and_reuses_in_the_last_sharer() -> None:
    m, parent, a = _setup()
    m.write(parent, a, b"parent")
    old = pte_pfn(pte_of(m, parent, a))
    child = m.fork(parent)
    assert isinstance(child, Task)
    page = pfn_to_page(m.pgdat, old)
    # copy_present_pte: shared, counted twice, write-protected in both
    assert page._refcount == 2 and page._mapcount == 1
    assert not pte_of(m, parent, a) & _PAGE_RW and not pte_of(m, child, a) & _PAGE_RW
    assert_invariants(m)
    # the child writes: page_count is 2, so do_wp_page copies (wp_page_copy)
    m.write(child, a, b"CHILD")
    new = pte_pfn(pte_of(m, child, a))
    assert new != old and pte_of(m, child, a) & _PAGE_RW
    assert page._refcount == 1 and page._mapcount == 0
    # the parent is now the last sharer: page_count 1, mapcount 1 → wp_page_reuse, same page
    m.write(parent, a, b"P")
    assert pte_pfn(pte_of(m, parent, a)) == old and pte_of(m, parent, a) & _PAGE_RW
    assert m.read(parent, a, 6) == b"Parent" and m.read(child, a, 6) == b"CHILDt"
    assert_invariants(m)


def test_fork_skips_vmas_without_anon_vma_in_copy_page_range() -> None:
    m, parent, a = _setup()
    m.read(parent, a, 1)  # the zero page: no anon_vma is prepared for a read fault
    child = m.fork(parent)
    assert isinstance(child, Task)
    assert pte_of(m, child, a) == 0  # 5.10 leaves it to a fault in the child
    assert m.read(child, a, 1) == b"\0"
    assert_invariants(m)


def test_fork_copies_zero_page_ptes_when_the_vma_has_an_anon_vma() -> None:
    m, parent, a = _setup()
    m.write(parent, a, b"x")
    m.read(parent, a + 0x1000, 1)  # zero page in the same (now anon_vma'd) VMA
    child = m.fork(parent)
    assert isinstance(child, Task)
    assert pte_pfn(pte_of(m, child, a + 0x1000)) == ZERO_PFN  # special pte copied, no ref
    assert child.mm is not None and child.mm.rss_stat[MM_ANONPAGES] == 1
    m.write(child, a + 0x1000, b"z")  # zero page: wp_page_copy allocates a zeroed page
    assert m.read(child, a + 0x1000, 2) == b"z\0" and m.read(parent, a + 0x1000, 1) == b"\0"
    assert_invariants(m)


# --------------------------------------------------------------------------------------------
# Signals


def test_access_to_a_hole_is_sigsegv_maperr() -> None:
    m, t, a = _setup()
    assert m.read(t, 0x10000, 1) == SigInfo(SIGSEGV, SEGV_MAPERR, 0x10000)
    assert m.write(t, a + 0x4000, b"x") == SigInfo(SIGSEGV, SEGV_MAPERR, a + 0x4000)
    assert_invariants(m)


def test_write_to_a_read_only_mapping_is_sigsegv_accerr() -> None:
    m, t, a = _setup(prot=PROT_READ)
    assert m.write(t, a, b"x") == SigInfo(SIGSEGV, SEGV_ACCERR, a)
    assert m.read(t, a, 1) == b"\0"  # reading maps the zero page
    assert m.write(t, a, b"x") == SigInfo(SIGSEGV, SEGV_ACCERR, a)  # now X86_PF_PROT too
    assert_invariants(m)


def test_read_of_prot_none_is_sigsegv_accerr() -> None:
    m, t, a = _setup(prot=PROT_NONE)
    assert m.read(t, a, 1) == SigInfo(SIGSEGV, SEGV_ACCERR, a)


def test_instruction_fetch_from_a_non_exec_mapping_faults_in_then_accerr() -> None:
    m, t, a = _setup()
    m.write(t, a, b"\xc3")
    assert m.fetch(t, a, 1) == SigInfo(SIGSEGV, SEGV_ACCERR, a)  # NX pte: PROT|INSTR
    m2, t2, b = _setup(prot=PROT_READ | PROT_EXEC)
    assert m2.fetch(t2, b, 1) == b"\0"


def test_user_access_to_a_kernel_address_is_sigsegv_maperr() -> None:
    m, t, _ = _setup()
    kaddr = 0xFFFF888000000000
    assert m.read(t, kaddr, 1) == SigInfo(SIGSEGV, SEGV_MAPERR, kaddr)


def test_non_canonical_address_is_a_general_protection_fault() -> None:
    m, t, _ = _setup()
    assert m.read(t, 0x0000800000000000, 1) == SigInfo(SIGSEGV, SI_KERNEL, 0)


def test_access_error_follows_5_10() -> None:
    v = vm_area_struct(vm_flags=VM_READ)
    w = X86_PF_USER | X86_PF_WRITE
    assert access_error(w, v)
    assert not access_error(w, vm_area_struct(vm_flags=VM_WRITE))
    assert access_error(X86_PF_USER | X86_PF_PROT, v)  # read of a present page: always
    assert not access_error(X86_PF_USER | X86_PF_INSTR, v)  # fetch: any access flag
    assert access_error(X86_PF_USER, vm_area_struct(vm_flags=0))


def test_growsdown_stack_expands_on_a_fault_below_it() -> None:
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    top = 0x7F0000000000
    a = m.mmap(t.mm, top - 0x2000, 0x2000, RW, ANON | MAP_GROWSDOWN | MAP_FIXED)
    assert a == top - 0x2000
    assert m.write(t, a - 0x3000, b"s") == 1  # expand_stack → expand_downwards
    assert t.mm.mmap is not None and t.mm.mmap.vm_start == a - 0x3000
    assert m.read(t, a - 0x3000, 1) == b"s"
    assert_invariants(m)


# --------------------------------------------------------------------------------------------
# Files and shared memory


def test_sigbus_past_the_end_of_a_file() -> None:
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("f", b"a" * 5000)  # two pages
    a = m.mmap(t.mm, 0, 0x3000, PROT_READ, MAP_PRIVATE, f, 0)
    assert m.read(t, a + 0x1000, 4) == b"a" * 4
    assert m.read(t, a + 0x1390, 4) == b"\0" * 4  # past EOF inside the last page: zeros
    assert m.read(t, a + 0x2000, 1) == SigInfo(SIGBUS, BUS_ADRERR, a + 0x2000)
    assert_invariants(m)


def test_map_shared_file_write_is_seen_by_every_mapper_and_written_back() -> None:
    m = small_machine()
    t = m.spawn()
    u = m.spawn("other")
    assert t.mm is not None and u.mm is not None
    f = m.create_file("f", b"0123456789" * 1000)
    a = m.mmap(t.mm, 0, 0x2000, RW, MAP_SHARED, f, 0)
    b = m.mmap(u.mm, 0, 0x2000, PROT_READ, MAP_SHARED, f, 0)
    assert m.read(u, b, 4) == b"0123"
    assert m.write(t, a + 1, b"AB") == 2  # do_wp_page → wp_page_shared (page_mkwrite)
    assert m.read(u, b, 4) == b"0AB3"
    assert t.mm.rss_stat[MM_FILEPAGES] >= 1 and t.mm.rss_stat[MM_ANONPAGES] == 0
    assert_invariants(m)
    m.exit(t)
    m.exit(u)
    m.release_file(f)
    assert bytes(f.data[:4]) == b"0AB3"  # written back when the cache went
    assert not m.pgdat.allocated


def test_private_file_write_copies_the_page_and_leaves_the_file_alone() -> None:
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("f", b"hello world")
    a = m.mmap(t.mm, 0, 0x1000, RW, MAP_PRIVATE, f, 0)
    assert m.read(t, a, 5) == b"hello"
    assert t.mm.rss_stat[MM_FILEPAGES] == 1
    m.write(t, a, b"J")  # wp_page_copy of a file page: MM_FILEPAGES → MM_ANONPAGES
    assert t.mm.rss_stat[MM_FILEPAGES] == 0 and t.mm.rss_stat[MM_ANONPAGES] == 1
    assert m.read(t, a, 5) == b"Jello"
    cached = f.f_mapping.i_pages[0]
    assert m.pgdat.page_data[cached.pfn][:5] == b"hello"
    assert_invariants(m)


def test_private_file_write_fault_on_an_unmapped_page_is_do_cow_fault() -> None:
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("f", b"hello world")
    a = m.mmap(t.mm, 0, 0x1000, RW, MAP_PRIVATE, f, 0)
    with Tracer() as tr:
        m.write(t, a, b"J")
    assert tr.roots[0].find("do_cow_fault") is not None
    assert t.mm.rss_stat == [0, 1, 0, 0] and m.read(t, a, 5) == b"Jello"
    assert f.f_mapping.i_pages[0]._refcount == 1  # only the cache holds the file page
    assert_invariants(m)


def test_fault_around_maps_cached_neighbours_read_only() -> None:
    m = small_machine()
    t = m.spawn()
    u = m.spawn()
    assert t.mm is not None and u.mm is not None
    f = m.create_file("f", bytes(range(256)) * 64)  # four pages
    a = m.mmap(t.mm, 0, 0x4000, PROT_READ, MAP_SHARED, f, 0)
    for i in range(4):
        m.read(t, a + i * 0x1000, 1)  # fills the cache
    b = m.mmap(u.mm, 0, 0x4000, PROT_READ, MAP_SHARED, f, 0)
    m.read(u, b + 0x2000, 1)  # do_fault_around maps all four cached pages at once
    assert u.mm.rss_stat[MM_FILEPAGES] == 4
    assert_invariants(m)


def test_shared_anonymous_memory_is_shmem_and_shared_across_fork() -> None:
    m, t, a = _setup(flags=MAP_SHARED | MAP_ANONYMOUS)
    m.write(t, a, b"shared")
    c = m.fork(t)
    assert isinstance(c, Task) and c.mm is not None and t.mm is not None
    assert t.mm.rss_stat[MM_SHMEMPAGES] == 1
    m.write(c, a, b"SH")
    assert m.read(t, a, 6) == b"SHared"
    assert_invariants(m)
    m.exit(t)
    m.exit(c)
    assert not m.pgdat.allocated  # the shmem object went with its last mapping


# --------------------------------------------------------------------------------------------
# munmap, mprotect


def test_munmap_zaps_pages_and_frees_page_tables() -> None:
    m, t, a = _setup()
    for i in range(4):
        m.write(t, a + i * 0x1000, b"x")
    assert m.munmap(t.mm, a, 0x4000) == 0  # type: ignore[arg-type]
    assert t.mm is not None and t.mm.rss_stat == [0, 0, 0, 0]
    assert set(m.pgdat.allocated) == {t.mm.pgd}  # only the pgd is left
    assert_invariants(m)


def test_munmap_of_part_of_a_vma_zaps_only_that_part() -> None:
    m, t, a = _setup()
    for i in range(4):
        m.write(t, a + i * 0x1000, bytes([65 + i]))
    assert t.mm is not None
    assert m.munmap(t.mm, a + 0x1000, 0x2000) == 0
    assert t.mm.rss_stat[MM_ANONPAGES] == 2
    assert m.read(t, a, 1) == b"A" and m.read(t, a + 0x3000, 1) == b"D"
    assert m.read(t, a + 0x1000, 1) == SigInfo(SIGSEGV, SEGV_MAPERR, a + 0x1000)
    assert_invariants(m)


def test_mprotect_read_only_write_protects_present_ptes() -> None:
    m, t, a = _setup()
    m.write(t, a, b"x")
    assert t.mm is not None
    pfn = pte_pfn(pte_of(m, t, a))
    assert m.mprotect(t.mm, a, 0x1000, PROT_READ) == 0
    assert not pte_of(m, t, a) & _PAGE_RW
    assert m.write(t, a, b"y") == SigInfo(SIGSEGV, SEGV_ACCERR, a)
    # back to read-write: pte_modify with PAGE_COPY keeps the pte read-only; the next write
    # is a write-protect fault that reuses the page (page_count 1)
    assert m.mprotect(t.mm, a, 0x1000, RW) == 0
    assert not pte_of(m, t, a) & _PAGE_RW
    assert m.write(t, a, b"z") == 1
    assert pte_pfn(pte_of(m, t, a)) == pfn and pte_of(m, t, a) & _PAGE_RW
    assert_invariants(m)


def test_mprotect_prot_none_keeps_the_page_and_protnone_pte() -> None:
    m, t, a = _setup()
    m.write(t, a, b"keep")
    assert t.mm is not None
    assert m.mprotect(t.mm, a, 0x4000, PROT_NONE) == 0
    assert m.read(t, a, 1) == SigInfo(SIGSEGV, SEGV_ACCERR, a)
    assert t.mm.rss_stat[MM_ANONPAGES] == 1
    assert m.mprotect(t.mm, a, 0x4000, PROT_READ) == 0
    assert m.read(t, a, 4) == b"keep"
    assert_invariants(m)


# --------------------------------------------------------------------------------------------
# Errata: the seed's names and files


def test_do_page_fault_is_the_pre_5_8_name_of_exc_page_fault() -> None:
    kf = lookup("do_page_fault")
    assert kf is not None and kf.name == "exc_page_fault"
    assert kf.file == "arch/x86/mm/fault.c"


def test_alloc_pages_vma_is_in_mempolicy_and_maps_nothing() -> None:
    kf = lookup("alloc_pages_vma")
    assert kf is not None and kf.file == "mm/mempolicy.c"
    hmf = lookup("handle_mm_fault")
    assert hmf is not None and hmf.file == "mm/memory.c"


def test_the_fault_entry_calls_handle_mm_fault_not_the_reverse() -> None:
    m, t, a = _setup()
    with Tracer() as tr:
        m.write(t, a, b"x")
    root = tr.roots[0]
    assert root.name == "exc_page_fault"
    assert root.path_to("handle_mm_fault") == [
        "exc_page_fault", "handle_page_fault", "do_user_addr_fault", "handle_mm_fault"]
    hmf = root.find("handle_mm_fault")
    assert hmf is not None and "exc_page_fault" not in hmf.names()
    # __handle_mm_fault allocates the missing levels; the pte table comes in the handler
    inner = root.find("__handle_mm_fault")
    assert inner is not None
    kids = [c.name for c in inner.children if c.name in (
        "pgd_offset", "p4d_alloc", "pud_alloc", "pmd_alloc", "handle_pte_fault")]
    assert kids == ["pgd_offset", "p4d_alloc", "pud_alloc", "pmd_alloc", "handle_pte_fault"]
    dap = root.find("do_anonymous_page")
    assert dap is not None and dap.find("pte_alloc") is not None
    assert dap.path_to("alloc_pages_vma") == [
        "do_anonymous_page", "alloc_zeroed_user_highpage_movable",
        "__alloc_zeroed_user_highpage", "alloc_page_vma", "alloc_pages_vma"]
    sp = dap.find("set_pte_at")
    apv = dap.find("alloc_pages_vma")
    assert sp is not None and apv is not None and apv.find("set_pte_at") is None


@pytest.mark.parametrize("levels", [4, 5])
def test_faults_work_with_both_paging_modes(levels: int) -> None:
    from refmodel.config import MachineConfig, MiB

    m = Machine(MachineConfig(memory=64 * MiB, paging_levels=levels))
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, 0x2000, RW, ANON)
    m.write(t, a, b"5lvl")
    c = m.fork(t)
    assert isinstance(c, Task)
    m.write(c, a, b"C")
    assert m.read(t, a, 4) == b"5lvl" and m.read(c, a, 4) == b"Clvl"
    assert_invariants(m)
    m.exit(c)
    m.exit(t)
    assert not m.pgdat.allocated


def test_handle_mm_fault_takes_regs_and_returns_vm_fault_bits() -> None:
    import inspect

    from refmodel.mm.memory_fault import handle_mm_fault
    from refmodel.mm.vm_fault import FAULT_FLAG_USER, FAULT_FLAG_WRITE, VM_FAULT_WRITE

    assert list(inspect.signature(handle_mm_fault).parameters)[-4:] == [
        "vma", "address", "flags", "regs"]
    m, parent, a = _setup()
    m.write(parent, a, b"x")
    child = m.fork(parent)
    assert isinstance(child, Task) and child.mm is not None and child.mm.mmap is not None
    ret = handle_mm_fault(m.pgdat, child.mm.mmap, a, FAULT_FLAG_WRITE | FAULT_FLAG_USER, None)
    assert ret == VM_FAULT_WRITE  # a vm_fault_t: wp_page_copy's VM_FAULT_WRITE
    assert_invariants(m)


def test_handle_mm_fault_allocates_missing_levels_and_leaves_the_pte_table_to_the_handler(
) -> None:
    m, t, a = _setup()
    with Tracer() as tr:
        m.read(t, a, 1)
    inner = tr.roots[0].find("__handle_mm_fault")
    assert inner is not None
    allocs = [c.name for c in inner.children if c.name in ("__pud_alloc", "__pmd_alloc")]
    pud = inner.find("pud_alloc")
    pmd = inner.find("pmd_alloc")
    assert pud is not None and pud.find("__pud_alloc") is not None
    assert pmd is not None and pmd.find("__pmd_alloc") is not None
    assert not allocs  # the slow paths sit below the inline pud_alloc / pmd_alloc
    hpf = inner.find("handle_pte_fault")
    assert hpf is not None and hpf.find("__pte_alloc") is not None  # in do_anonymous_page
    assert inner.find("do_anonymous_page") is not None


def test_alloc_pages_vma_returns_a_page_and_maps_nothing() -> None:
    from refmodel.mm import gfp as G
    from refmodel.mm.mempolicy import alloc_pages_vma
    from refmodel.mm.types import Page

    m, t, a = _setup()
    assert t.mm is not None and t.mm.mmap is not None
    with Tracer() as tr:
        page = alloc_pages_vma(m.pgdat, G.GFP_HIGHUSER_MOVABLE, 0, t.mm.mmap, a)
    assert isinstance(page, Page)
    assert tr.roots[0].find("set_pte_at") is None and pte_of(m, t, a) == 0


def test_a_fault_in_no_vma_is_bad_area_not_no_context() -> None:
    m, t, _ = _setup()
    with Tracer() as tr:
        sig = m.read(t, 0x20000, 1)
    assert sig == SigInfo(SIGSEGV, SEGV_MAPERR, 0x20000)
    root = tr.roots[0]
    assert root.path_to("force_sig_fault") == [
        "exc_page_fault", "handle_page_fault", "do_user_addr_fault", "bad_area", "__bad_area",
        "__bad_area_nosemaphore", "force_sig_fault"]
    assert root.find("no_context") is None


def test_vm_fault_oom_goes_to_pagefault_out_of_memory() -> None:
    """An OOM victim whose ALLOC_OOM attempt fails too gives up (nopage): the fault returns
    VM_FAULT_OOM, pagefault_out_of_memory leaves the dying task alone, and the access ends
    with the SIGKILL the OOM killer sent; the task is gone after it."""
    from refmodel.arch.x86.fault import SIGKILL
    from refmodel.mm import gfp as G

    m = small_machine()
    m.spawn("init")  # pid 1: never an OOM victim
    t = m.spawn()
    other = m.spawn()
    assert t.mm is not None and other.mm is not None
    a = m.mmap(t.mm, 0, 0x4000, RW, ANON)
    b = m.mmap(other.mm, 0, 0x1000, RW, ANON)
    assert m.write(t, a, bytes(0x2000)) == 0x2000  # 2 pages: the worse of the two
    assert m.write(other, b, b"o") == 1
    for order in range(10, -1, -1):  # take every free page, the reserves too
        while m.alloc_pages(G.GFP_NOWAIT | G.__GFP_MEMALLOC | G.__GFP_NOWARN, order):
            pass
    with Tracer() as tr:
        sig = m.write(t, a + 0x2000, b"y")
    assert sig == SigInfo(SIGKILL, SI_KERNEL, 0)
    root = tr.roots[0]
    assert root.path_to("pagefault_out_of_memory") == [
        "exc_page_fault", "handle_page_fault", "do_user_addr_fault", "mm_fault_error",
        "pagefault_out_of_memory"]
    pfoom = root.find("pagefault_out_of_memory")
    assert pfoom is not None and pfoom.find("out_of_memory") is None  # t is dying: no OOM
    # t was killed first; its two pages did not lift the min watermark, so the next OOM
    # killed other as well before t gave up
    assert m.last_oom is not None and m.last_oom.chosen is other
    assert t.pid not in m.tasks and other.pid not in m.tasks and t.mm is None


def test_map_populate_faults_every_page_in_at_mmap() -> None:
    from refmodel.mm.mman import MAP_LOCKED, MAP_POPULATE

    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, 0x3000, RW, ANON | MAP_POPULATE)
    # a private writable mapping is populated with write faults (COW broken now)
    assert t.mm.rss_stat[MM_ANONPAGES] == 3
    assert all(pte_of(m, t, a + i * 0x1000) & _PAGE_RW for i in range(3))
    b = m.mmap(t.mm, 0, 0x2000, PROT_READ, ANON | MAP_POPULATE)
    assert pte_pfn(pte_of(m, t, b)) == ZERO_PFN  # read faults: the zero page
    c = m.mmap(t.mm, 0, 0x2000, RW, ANON | MAP_LOCKED)
    assert t.mm.rss_stat[MM_ANONPAGES] == 5 and pte_of(m, t, c + 0x1000) & _PAGE_RW
    assert_invariants(m)


def test_mprotect_making_a_locked_private_mapping_writable_breaks_cow_at_once() -> None:
    from refmodel.mm.mman import MAP_LOCKED

    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    a = m.mmap(t.mm, 0, 0x2000, PROT_READ, ANON | MAP_LOCKED)
    assert pte_pfn(pte_of(m, t, a)) == ZERO_PFN
    assert m.mprotect(t.mm, a, 0x2000, RW) == 0
    assert t.mm.rss_stat[MM_ANONPAGES] == 2 and pte_of(m, t, a) & _PAGE_RW
    assert_invariants(m)


# --------------------------------------------------------------------------------------------
# The registered helpers 5.10's fault path calls appear on the trace (not written out in line)


def _kids(node: CallNode | None) -> list[str]:
    assert node is not None
    return [c.name for c in node.children]


def test_handle_mm_fault_tests_pud_none_and_pmd_none_as_5_10_does_without_thp() -> None:
    m, t, a = _setup()
    with Tracer() as tr:
        m.write(t, a, b"x")
    # 5.10: pud_none(*pud) && __transparent_hugepage_enabled(vma), and the same for the pmd:
    # the none tests run even with THP off
    assert _kids(tr.roots[0].find("__handle_mm_fault")) == [
        "linear_page_index", "__get_fault_gfp_mask", "pgd_offset", "p4d_alloc", "pud_alloc",
        "pud_none", "pmd_alloc", "pmd_none", "handle_pte_fault"]


def test_handle_pte_fault_tests_pmd_none_pte_none_pte_present_pte_write() -> None:
    m, t, a = _setup()
    with Tracer() as tr:
        m.write(t, a, b"x")  # a new pte table: the pmd is still none
    assert _kids(tr.roots[0].find("handle_pte_fault")) == [
        "pmd_none", "vma_is_anonymous", "do_anonymous_page"]
    with Tracer() as tr:
        m.write(t, a + 0x1000, b"x")  # the table is there, the pte is none
    assert _kids(tr.roots[0].find("handle_pte_fault")) == [
        "pmd_none", "pte_offset_map", "pte_none", "vma_is_anonymous", "do_anonymous_page"]
    c = m.fork(t)
    assert isinstance(c, Task)
    with Tracer() as tr:
        m.write(c, a, b"y")  # present, read-only after fork
    assert _kids(tr.roots[0].find("handle_pte_fault")) == [
        "pmd_none", "pte_offset_map", "pte_none", "pte_present", "pte_write", "do_wp_page"]
    assert_invariants(m)


def test_do_anonymous_page_rechecks_pte_none_under_pte_offset_map_lock_on_both_paths() -> None:
    m, t, a = _setup()
    with Tracer() as tr:
        m.write(t, a, b"x")
    assert _kids(tr.roots[0].find("do_anonymous_page")) == [
        "pte_alloc", "anon_vma_prepare", "alloc_zeroed_user_highpage_movable", "mk_pte",
        "pte_mkdirty", "pte_mkwrite", "pte_offset_map_lock", "pte_none",
        "check_stable_address_space", "inc_mm_counter", "page_add_new_anon_rmap",
        "lru_cache_add_inactive_or_unevictable", "set_pte_at"]
    with Tracer() as tr:
        m.read(t, a + 0x1000, 1)  # the zero page
    assert _kids(tr.roots[0].find("do_anonymous_page")) == [
        "pte_alloc", "my_zero_pfn", "pfn_pte", "pte_mkspecial", "pte_offset_map_lock",
        "pte_none", "check_stable_address_space", "set_pte_at"]


def test_wp_page_copy_tests_the_old_pfn_and_retakes_the_pte_before_replacing_it() -> None:
    m, t, a = _setup()
    m.write(t, a, b"x")
    m.read(t, a + 0x1000, 1)  # the zero page
    c = m.fork(t)
    assert isinstance(c, Task)
    with Tracer() as tr:
        m.write(c, a, b"y")
    wpc = tr.roots[0].find("wp_page_copy")
    assert _kids(wpc) == [
        "anon_vma_prepare", "pte_pfn", "is_zero_pfn", "alloc_page_vma", "cow_user_page",
        "pte_offset_map_lock", "mk_pte", "pte_mkdirty", "maybe_mkwrite", "ptep_clear_flush",
        "page_add_new_anon_rmap", "lru_cache_add_inactive_or_unevictable", "set_pte_at",
        "page_remove_rmap", "put_page", "put_page"]
    assert wpc is not None
    # ptep_clear_flush is mm/pgtable-generic.c's (x86 has none of its own)
    assert wpc.path_to("native_ptep_get_and_clear") == [
        "wp_page_copy", "ptep_clear_flush", "ptep_get_and_clear", "native_ptep_get_and_clear"]
    kf = lookup("ptep_clear_flush")
    assert kf is not None and kf.file == "mm/pgtable-generic.c"
    with Tracer() as tr:
        m.write(c, a + 0x1000, b"z")  # the zero page: is_zero_pfn(pte_pfn(orig_pte))
    wpc = tr.roots[0].find("wp_page_copy")
    assert _kids(wpc)[:5] == ["anon_vma_prepare", "pte_pfn", "is_zero_pfn",
                              "alloc_zeroed_user_highpage_movable", "pte_offset_map_lock"]
    assert wpc is not None and wpc.children[2].result == "True"
    assert_invariants(m)


def test_ptep_set_access_flags_stores_through_set_pte_only_when_changed_and_dirty() -> None:
    from refmodel.arch.x86.pgtable import pte_mkclean
    from refmodel.arch.x86.walk import walk
    from refmodel.mm.memory_fault import ptep_set_access_flags

    m, t, a = _setup()
    m.write(t, a, b"x")
    assert t.mm is not None and t.mm.mmap is not None
    ptep = walk(m.pgdat, t.mm.pgd, a).steps[-1].entry_addr
    pte = pte_of(m, t, a)
    clean = pte_mkclean(pte)
    with Tracer() as tr:
        assert ptep_set_access_flags(m.pgdat, t.mm.mmap, a, ptep, pte, 1) is False
        assert ptep_set_access_flags(m.pgdat, t.mm.mmap, a, ptep, clean, 0)  # not stored
    assert pte_of(m, t, a) == pte
    with Tracer() as tr2:
        assert ptep_set_access_flags(m.pgdat, t.mm.mmap, a, ptep, clean, 1)
    assert [r.names() for r in tr.roots] == [["ptep_set_access_flags"]] * 2
    assert tr2.roots[0].names() == ["ptep_set_access_flags", "set_pte", "native_set_pte"]
    assert pte_of(m, t, a) == clean


def test_file_fault_path_tests_pmd_none_and_pte_none_as_5_10_does() -> None:
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("f", b"abcdefgh" * 1024)
    a = m.mmap(t.mm, 0, 0x2000, RW, MAP_SHARED, f, 0)
    with Tracer() as tr:
        m.read(t, a, 1)  # cold cache, no pte table yet
    r = tr.roots[0]
    assert _kids(r.find("do_fault_around")) == ["pmd_none", "pte_alloc_one", "filemap_map_pages"]
    assert _kids(r.find("__do_fault")) == ["pmd_none", "filemap_fault"]
    assert _kids(r.find("alloc_set_pte"))[:3] == ["pmd_none", "pte_alloc_one_map", "pte_none"]
    # pmd_none, then again under the pmd lock before the preallocated table goes in
    assert _kids(r.find("pte_alloc_one_map")) == [
        "pmd_none", "pmd_none", "mm_inc_nr_ptes", "pmd_populate", "pte_offset_map_lock"]
    with Tracer() as tr:
        m.write(t, a, b"Z")  # wp_page_shared → finish_mkwrite_fault → wp_page_reuse
    r = tr.roots[0]
    assert _kids(r.find("finish_mkwrite_fault")) == ["pte_offset_map_lock", "wp_page_reuse"]
    psaf = r.find("ptep_set_access_flags")
    assert psaf is not None and psaf.names() == [
        "ptep_set_access_flags", "set_pte", "native_set_pte"]
    assert_invariants(m)


def test_page_mkclean_one_clears_through_ptep_clear_flush() -> None:
    # 5.10: a dirty or writable pte is cleared with ptep_clear_flush, made pte_wrprotect and
    # pte_mkclean, and set back with set_pte_at; the next write faults again.
    from refmodel.mm.vmscan import clear_page_dirty_for_io

    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("f", b"0123456789" * 1000)
    a = m.mmap(t.mm, 0, 0x1000, RW, MAP_SHARED, f, 0)
    assert m.write(t, a, b"X") == 1
    page = pfn_to_page(m.pgdat, pte_pfn(pte_of(m, t, a)))
    with Tracer() as tr:
        assert clear_page_dirty_for_io(page)
    one = tr.roots[0].find("page_mkclean_one")
    assert one is not None
    names = [c.name for c in one.children]
    order = ["pte_dirty", "pte_pfn", "ptep_clear_flush", "pte_wrprotect", "pte_mkclean",
             "set_pte_at"]
    assert [n for n in names if n in order] == order
    assert not pte_of(m, t, a) & (_PAGE_DIRTY | _PAGE_RW)
    assert m.write(t, a, b"Y") == 1  # faults again (wp_page_shared) and dirties the page
    assert_invariants(m)


# --------------------------------------------------------------------------------------------
# mm/gup.c: populate walks with follow_page_mask and touches what it finds


def _all(node: CallNode, name: str) -> list[CallNode]:
    out = [node] if node.name == name else []
    for c in node.children:
        out += _all(c, name)
    return out


def test_populate_follows_the_page_tables_level_by_level_and_marks_pages_accessed() -> None:
    from refmodel.mm.mman import MAP_POPULATE
    from refmodel.mm.types import PageFlags

    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    plain = m.mmap(t.mm, 0, 0x1000, RW, ANON)
    m.write(t, plain, b"x")  # a fault alone does not set PG_referenced
    first = pfn_to_page(m.pgdat, pte_pfn(pte_of(m, t, plain)))
    assert not first.flags & PageFlags.PG_referenced
    with Tracer() as tr:
        a = m.mmap(t.mm, 0, 0x2000, RW, ANON | MAP_POPULATE)
    # FOLL_TOUCH: follow_page_pte → mark_page_accessed for every page populate found
    for i in range(2):
        page = pfn_to_page(m.pgdat, pte_pfn(pte_of(m, t, a + i * 0x1000)))
        assert page.flags & PageFlags.PG_referenced
    root = tr.roots[0]
    path = root.path_to("follow_page_pte")
    assert path is not None and path[-6:] == [
        "__get_user_pages", "follow_page_mask", "follow_p4d_mask", "follow_pud_mask",
        "follow_pmd_mask", "follow_page_pte"]
    found = [n for n in _all(root, "follow_page_pte") if n.find("vm_normal_page")]
    assert len(found) == 2
    # FOLL_WRITE: can_follow_write_pte's pte_write; FOLL_TOUCH|FOLL_WRITE: pte_dirty first
    assert _kids(found[0]) == ["pmd_bad", "pte_offset_map_lock", "pte_present", "pte_write",
                               "vm_normal_page", "pte_dirty", "mark_page_accessed"]
    assert _kids(root.find("follow_p4d_mask")) == ["p4d_offset", "p4d_none", "p4d_bad",
                                                   "follow_pud_mask"]
    assert_invariants(m)


def test_populate_of_a_locked_vma_mlocks_through_follow_page_pte() -> None:
    from refmodel.mm.mman import MAP_LOCKED

    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    with Tracer() as tr:
        m.mmap(t.mm, 0, 0x1000, RW, ANON | MAP_LOCKED)
    fpp = [n for n in _all(tr.roots[0], "follow_page_pte") if n.find("vm_normal_page")]
    assert len(fpp) == 1
    assert _kids(fpp[0])[-3:] == ["mark_page_accessed", "lru_add_drain", "mlock_vma_page"]
    assert_invariants(m)


def test_populate_stops_with_eintr_once_current_has_a_fatal_signal() -> None:
    from refmodel.mm.mman import MAP_POPULATE

    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    t.sigkill_pending = True  # e.g. the OOM killer chose t
    with Tracer() as tr:
        a = m.mmap(t.mm, 0, 0x2000, RW, ANON | MAP_POPULATE)
    assert a > 0  # mm_populate ignores errors; mmap itself succeeded
    gup = tr.roots[0].find("__get_user_pages")
    assert gup is not None and _kids(gup) == ["check_vma_flags"]  # no follow_page_mask


def test_get_user_pages_moves_past_enoent_from_a_lock_on_fault_vma() -> None:
    from refmodel.mm.gup import FOLL_MLOCK, FOLL_TOUCH, __get_user_pages
    from refmodel.mm.vm_flags import VM_LOCKED, VM_LOCKONFAULT

    _m, t, a = _setup()
    assert t.mm is not None
    vma = t.mm.mmap
    assert vma is not None and vma.vm_start <= a < vma.vm_end
    vma.vm_flags |= VM_LOCKED | VM_LOCKONFAULT
    # populate_vma_page_range drops FOLL_POPULATE for VM_LOCKONFAULT: faultin_page answers
    # -ENOENT and 5.10 goes on with the next page, faulting nothing in
    assert __get_user_pages(t.mm, vma, vma.vm_start, 2, FOLL_TOUCH | FOLL_MLOCK) == 2
    assert t.mm.rss_stat[MM_ANONPAGES] == 0


def test_check_vma_flags_asks_is_cow_mapping_for_a_forced_write() -> None:
    from refmodel.mm.gup import FOLL_FORCE, FOLL_WRITE, check_vma_flags

    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    m.mmap(t.mm, 0, 0x1000, PROT_READ, ANON)
    vma = t.mm.mmap
    assert vma is not None
    with Tracer() as tr:
        assert check_vma_flags(vma, FOLL_WRITE | FOLL_FORCE) == 0
    assert _kids(tr.roots[0]) == ["is_cow_mapping"]


def test_a_file_read_fault_adds_the_page_with_get_page_after_a_filemap_c_alloc() -> None:
    """5.10: __add_to_page_cache_locked takes the cache's reference with get_page;
    __page_cache_alloc is mm/filemap.c's (CONFIG_NUMA), not the pagemap.h inline."""
    m = small_machine()
    t = m.spawn()
    assert t.mm is not None
    f = m.create_file("data", b"abc")
    a = m.mmap(t.mm, 0, 4096, PROT_READ, MAP_PRIVATE, f)
    with Tracer() as tr:
        assert m.read(t, a, 3) == b"abc"
    add = tr.roots[0].find("__add_to_page_cache_locked")
    assert add is not None and _kids(add) == ["get_page"]
    alloc = lookup("__page_cache_alloc")
    assert alloc is not None and alloc.file == "mm/filemap.c"
    assert f.f_mapping.i_pages[0]._refcount == 2  # the cache's and the mapping's


def test_machine_api_misuse_is_refused_with_a_reason() -> None:
    # a Machine-API audit: these ended in list.remove's or bytes()'s ValueError, or were
    # accepted although no inode can have them
    m = small_machine()
    f = m.create_file("f", b"abc")
    m.release_file(f)
    with pytest.raises(ValueError, match="released already"):
        m.release_file(f)
    for size in (-1, 1 << 63):
        with pytest.raises(ValueError, match="MAX_LFS_FILESIZE"):
            m.create_file("g", b"", size)
    t = m.spawn()
    assert m.access(t, 0x10000, -1, write=True) == m.write(t, 0x10000, b"") == 0
    assert m.access(t, 0x10000, -1) == m.read(t, 0x10000, -1) == b""
    assert t.mm is not None
    assert m.mmap(t.mm, 0, 4096, 1, 0x02, f) == -9  # a released file: -EBADF (fd closed)
    u = m.spawn()
    m.exit(u)
    assert m.set_oom_score_adj(u, 500) == -3  # -ESRCH: /proc/PID has no task any more
    assert m.set_oom_score_adj(t, 500) == 0 and t.oom_score_adj == 500
