"""One Machine: boots physical memory, owns the allocator, tasks, files and syscalls.

Kernel functions named with a leading ``__`` are imported under other names here: Python
mangles such names inside class bodies."""

from __future__ import annotations

from refmodel.arch.x86.fault import SigInfo
from refmodel.arch.x86.mmap import setup_new_exec_layout
from refmodel.arch.x86.pgtable import pgd_alloc
from refmodel.arch.x86.sys_x86_64 import sys_mmap
from refmodel.bugs import KernelBug
from refmodel.config import BuddyConfig, MachineConfig
from refmodel.errno import Errno
from refmodel.fs import address_space, file, fput
from refmodel.kernel.exit import do_exit, release_task
from refmodel.kernel.fork import dup_mm, mmput
from refmodel.mm.filemap import filemap_write_and_wait
from refmodel.mm.mm_types import mm_struct
from refmodel.mm.mman import vm_globals
from refmodel.mm.mmap import MAX_LFS_FILESIZE, sys_brk, sys_munmap
from refmodel.mm.mmzone import pfn_to_page, pglist_data
from refmodel.mm.mprotect import sys_mprotect
from refmodel.mm.oom_kill import oom_control, out_of_memory, tsk_is_oom_victim
from refmodel.mm.page_alloc import __free_pages as _free_pages_of_page
from refmodel.mm.page_alloc import alloc_pages
from refmodel.mm.page_alloc_init import boot_node, boot_standalone
from refmodel.mm.swap_slots import enable_swap_slots_cache
from refmodel.mm.swapfile import setup_swap_map_and_extents
from refmodel.mm.truncate import truncate_inode_pages_final
from refmodel.mm.types import Page
from refmodel.mm.vmscan import kswapd, try_to_free_pages, wakeup_kswapd
from refmodel.task import Task, user_read, user_write


class Machine:
    """A booted x86-64 machine (one node, one CPU). Two Machines never share state."""

    def __init__(self, config: MachineConfig | None = None) -> None:
        self.config = config or MachineConfig()
        self.pgdat: pglist_data = boot_node(self.config)
        # mm/'s machine-wide globals (sysctls, vm_committed_as), shared by this Machine's mms
        self.vm_globals = vm_globals(totalram_pages=self.pgdat.totalram_pages)
        # Tasks by pid (live ones only) and the files the machine has created and not
        # released (the creator's reference).
        self.tasks: dict[int, Task] = {}
        self.next_pid = 1
        self.files: list[file] = []
        # ``current``: the task whose system call or memory access is running (None between
        # operations, or for an mm no task owns). Kernel code reaches it only through the
        # hooks Machine wires (DESIGN: current is a parameter, never a global).
        self.current: Task | None = None
        # The OOM killer: the allocator and the fault path reach out_of_memory and current's
        # signal / victim state through the node's hooks. last_oom records the most recent
        # out_of_memory decision (candidates, victim) for specs.oom.
        self.last_oom: oom_control | None = None
        hooks = self.pgdat.hooks
        hooks.out_of_memory = self._out_of_memory
        hooks.fatal_signal_pending = self._current_fatal_signal_pending
        hooks.tsk_is_oom_victim = self._current_is_oom_victim
        # Reclaim: swapon at boot, direct reclaim and kswapd's wake-ups from the allocator.
        pgdat = self.pgdat
        if self.config.swap:
            setup_swap_map_and_extents(pgdat, self.config.swap_pages)
            enable_swap_slots_cache(pgdat)
            self.vm_globals.total_swap_pages = pgdat.total_swap_pages
        hooks.try_to_free_pages = lambda gfp_mask, order: try_to_free_pages(
            pgdat, order, gfp_mask)
        hooks.wakeup_kswapd = lambda zone, order, hz: wakeup_kswapd(pgdat, zone, 0, order, hz)

    # Every task operation runs between _enter and _leave; _after_op is the deterministic
    # point where what 5.10 does asynchronously (kswapd, the death of OOM-killed tasks)
    # happens in the model.
    def _enter(self, task: Task | None) -> None:
        self.current = task

    def _leave(self) -> None:
        self.current = None
        self._after_op()

    def _after_op(self) -> None:
        """Runs after every task operation (see docs/scope.md, "Deterministic points"):
        OOM-killed tasks exit, then a woken kswapd runs until it sleeps again."""
        for t in self.tasks.values():  # mostly nobody was killed: no pid sort then
            if t.sigkill_pending:
                self._exit_killed_tasks()
                break
        if self.pgdat.kswapd_woken:
            kswapd(self.pgdat)

    # The OOM killer's side of the Machine: hooks (current is this Machine's) and the death
    # of killed tasks.
    def _out_of_memory(self, gfp_mask: int, order: int) -> bool:
        oc = oom_control(gfp_mask=gfp_mask, order=order)
        self.last_oom = oc
        return out_of_memory(self.pgdat, oc, self.current, self.tasks.values())

    def _current_fatal_signal_pending(self) -> bool:
        # fatal_signal_pending(current), read directly: the user access loop asks after
        # every fault, and the check should not clutter traces
        return self.current is not None and self.current.sigkill_pending

    def _current_is_oom_victim(self) -> bool:
        return self.current is not None and tsk_is_oom_victim(self.current)

    def _exit_killed_tasks(self) -> None:
        """Tasks with SIGKILL pending exit, in pid order (5.10: each dies on its way back
        to user mode, do_group_exit → do_exit; the model does it once the operation that
        killed them is over)."""
        for pid in sorted(self.tasks):
            t = self.tasks.get(pid)
            if t is None or not t.sigkill_pending or t.mm is None:
                continue
            self.current = t
            try:
                self._exit_task(t)
            finally:
                self.current = None

    def _enter_mm(self, mm: mm_struct) -> None:
        """_enter with the task whose address space ``mm`` is (None for a bare mm). An mm
        already torn down (its last user exited) is refused: no syscall can reach it."""
        if mm.mm_users <= 0:
            raise ValueError(f"{mm} was torn down when its last user exited")
        for t in self.tasks.values():
            if t.mm is mm:
                self.current = t
                return
        self.current = None

    # The allocator, by pfn, for tools and tests.
    def alloc_pages(self, gfp_mask: int, order: int) -> Page | None:
        return alloc_pages(self.pgdat, gfp_mask, order)

    def free_pages(self, pfn: int, order: int) -> None:
        _free_pages_of_page(self.pgdat, pfn_to_page(self.pgdat, pfn), order)

    # Address spaces and the mmap syscalls. Arguments are taken as the C ABI takes them
    # (unsigned long; negative Python ints wrap); results are an address or -errno, never an
    # exception for bad user input.
    def new_mm(self) -> mm_struct:
        """A fresh process address space as exec leaves it for mmap: a PGD, no VMAs,
        task_size and the top-down layout (mmap_base 0x7ffff7fff000 with an 8 MiB stack)."""
        mm = mm_struct(paging_levels=self.config.paging_levels, vm_globals=self.vm_globals,
                       pgdat=self.pgdat)
        if pgd_alloc(self.pgdat, mm) is None:
            raise MemoryError("pgd_alloc failed for a new mm")
        setup_new_exec_layout(mm)
        return mm

    # Tasks: spawn (a fresh process as exec leaves it), fork, exit.
    def spawn(self, comm: str = "init") -> Task:
        """A new task with a fresh address space (new_mm). Its page-table allocation may
        wake kswapd or get another task OOM-killed: like every task operation, spawn ends at
        the deterministic point where those run (with no current task: exec's caller is
        not modelled)."""
        self._enter(None)
        try:
            mm = self.new_mm()
        finally:
            self._leave()
        t = Task(self.next_pid, comm, mm)
        self.next_pid += 1
        self.tasks[t.pid] = t
        return t

    def fork(self, task: Task) -> Task | int:
        """fork(2) for the memory side: the child's mm is dup_mm(parent's); the child task
        or -errno. A parent killed (the OOM killer's SIGKILL) while its memory is copied
        gets no child, as in 5.10's copy_process: if dup_mmap sees the signal before a VMA
        it stops with -EINTR, dup_mm fails and copy_mm reports -ENOMEM; if the signal came
        after the last VMA was copied, copy_mm succeeds and copy_process's later
        fatal_signal_pending check cancels the fork with -EINTR, dropping the copied mm
        (mmput)."""
        if task.mm is None:
            raise ValueError(f"{task} has exited")
        self._enter(task)
        try:
            mm = dup_mm(task.mm)
            if mm is not None and task.sigkill_pending:
                mmput(mm)  # bad_fork_cleanup_mm
                return -int(Errno.EINTR)
        finally:
            self._leave()
        if mm is None:
            return -12
        # copy_signal: the child inherits oom_score_adj
        child = Task(self.next_pid, task.comm, mm, oom_score_adj=task.oom_score_adj)
        self.next_pid += 1
        self.tasks[child.pid] = child
        return child

    def set_oom_score_adj(self, task: Task, value: int) -> int:
        """Write /proc/PID/oom_score_adj (fs/proc/base.c:oom_score_adj_write): 0, -EINVAL
        outside [OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX], or -ESRCH once the task is gone
        (get_proc_task finds no task)."""
        from refmodel.mm.oom_kill import OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MIN

        if not OOM_SCORE_ADJ_MIN <= value <= OOM_SCORE_ADJ_MAX:
            return -22
        if self.tasks.get(task.pid) is not task:
            return -int(Errno.ESRCH)
        task.oom_score_adj = value
        return 0

    def exit(self, task: Task) -> None:
        """exit(2): do_exit tears the address space down; the task is gone."""
        if task.mm is None:
            raise ValueError(f"{task} has exited")
        self._enter(task)
        try:
            self._exit_task(task)
        finally:
            self._leave()

    def _exit_task(self, task: Task) -> None:
        """do_exit for ``task`` (current), then release_task: the task is gone."""
        assert task.mm is not None
        mm, task.mm = task.mm, None
        do_exit(mm)
        self.tasks.pop(task.pid, None)
        release_task(task)

    # User memory, through the page tables: bytes, or the signal the access raised.
    def read(self, task: Task, addr: int, n: int) -> bytes | SigInfo:
        """Load n bytes at addr as the task would (faults taken on the way)."""
        mm = task.mm
        if mm is None:
            raise ValueError(f"{task} has exited")
        self.current = task  # _enter and _leave, written out: every load comes here
        try:
            return user_read(self.pgdat, mm, addr & _ULONG, n)
        finally:
            self.current = None
            self._after_op()

    def write(self, task: Task, addr: int, data: bytes) -> int | SigInfo:
        """Store data at addr as the task would: the bytes stored, or the signal."""
        mm = task.mm
        if mm is None:
            raise ValueError(f"{task} has exited")
        self.current = task  # _enter and _leave, written out: every store comes here
        try:
            return user_write(self.pgdat, mm, addr & _ULONG, data)
        finally:
            self.current = None
            self._after_op()

    def fetch(self, task: Task, addr: int, n: int) -> bytes | SigInfo:
        """An instruction fetch of n bytes at addr (X86_PF_INSTR faults)."""
        if task.mm is None:
            raise ValueError(f"{task} has exited")
        self._enter(task)
        try:
            return user_read(self.pgdat, task.mm, addr & _ULONG, n, instr=True)
        finally:
            self._leave()

    def access(self, task: Task, addr: int, n: int = 1, write: bool = False,
               data: bytes | None = None) -> bytes | int | SigInfo:
        """Read n bytes, or write ``data`` (write=True), as the task would."""
        if write:
            return self.write(task, addr, data if data is not None else bytes(max(n, 0)))
        return self.read(task, addr, n)

    # Files: contents on the model's "disk", a page cache filled on fault.
    def create_file(self, name: str, data: bytes, size: int | None = None) -> file:
        """A regular file holding ``data`` (size defaults to len(data)). The machine keeps
        one reference until release_file; the page cache goes when the last one does."""
        if size is not None and not 0 <= size <= MAX_LFS_FILESIZE:
            raise ValueError(f"file size {size} is outside [0, MAX_LFS_FILESIZE]")
        f = file(name, len(data) if size is None else size, data=bytearray(data))
        pgdat = self.pgdat

        def evict(mapping: address_space) -> None:  # iput_final: write back, then evict
            filemap_write_and_wait(pgdat, f)
            truncate_inode_pages_final(pgdat, mapping)

        f.f_mapping.evict = evict
        self.files.append(f)
        return f

    def release_file(self, f: file) -> None:
        """Drop the machine's reference (close + unlink): once no VMA maps the file either,
        its dirty pages are written back and its page cache is freed."""
        held = [i for i, x in enumerate(self.files) if x is f]
        if not held:
            raise ValueError(f"{f} is not a file this machine holds (released already?)")
        del self.files[held[0]]
        fput(f)

    def mmap(self, mm: mm_struct, addr: int, length: int, prot: int, flags: int,
             fd: int | file = -1, offset: int = 0) -> int:
        """mmap(2): the mapped address or -errno. ``fd`` is an in-model ``file`` (or an int,
        which has no file behind it)."""
        if isinstance(fd, int):
            fd = _s32(fd)
        elif fd.f_count <= 0:
            return -int(Errno.EBADF)  # released: its descriptor is closed, the inode gone
        u = _ULONG
        self._enter_mm(mm)
        try:
            ret = sys_mmap(mm, addr & u, length & u, prot & u, flags & u, fd, offset & u)
        finally:
            self._leave()
        return _syscall_ret(ret)

    def munmap(self, mm: mm_struct, addr: int, length: int) -> int:
        """munmap(2): 0 or -errno."""
        self._enter_mm(mm)
        try:
            return _syscall_ret(sys_munmap(mm, addr & _ULONG, length & _ULONG))
        finally:
            self._leave()

    def brk(self, mm: mm_struct, addr: int) -> int:
        """brk(2): the new program break, or the old one if the request is refused.
        ``mm.start_brk``/``mm.brk`` must have been set (exec's job; no ELF loader here)."""
        self._enter_mm(mm)
        try:
            return sys_brk(mm, addr & _ULONG)
        finally:
            self._leave()

    def mprotect(self, mm: mm_struct, addr: int, length: int, prot: int) -> int:
        """mprotect(2): 0 or -errno (prot is an unsigned long in 5.10)."""
        self._enter_mm(mm)
        try:
            return _syscall_ret(sys_mprotect(mm, addr & _ULONG, length & _ULONG,
                                             prot & _ULONG))
        finally:
            self._leave()


_ULONG = (1 << 64) - 1  # arguments are masked to it: the C ABI's unsigned long


def _s32(x: int) -> int:
    """An int argument (fd) as C's 32-bit int."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


def _syscall_ret(ret: int) -> int:
    """A syscall's unsigned long result as the ABI reports it: -errno for the top 4095."""
    if ret >= (1 << 64) - 4095:
        return ret - (1 << 64)
    return ret


class StandaloneBuddy:
    """The plain buddy system over pfns [0, N): the same allocator code, configured as one
    zone with one migratetype and no per-cpu lists or watermarks."""

    def __init__(self, config: BuddyConfig) -> None:
        self.config = config
        self.pgdat: pglist_data = boot_standalone(config)

    def alloc(self, order: int) -> int | None:
        """Allocate a block of 2**order pages; its first pfn, or None if none is free."""
        page = alloc_pages(self.pgdat, 0, order)
        return None if page is None else page.pfn

    def free(self, pfn: int, order: int) -> None:
        """Free the block at ``pfn``; raises a KernelBug subclass for a bad free."""
        if not 0 <= pfn < self.config.nr_pages:
            raise KernelBug("VM_BUG_ON_PAGE(bad_range(zone, page))",
                            f"pfn {pfn:#x} is outside [0, {self.config.nr_pages:#x})")
        _free_pages_of_page(self.pgdat, pfn_to_page(self.pgdat, pfn), order)
