"""mmap's user ABI and the flag translations of include/linux/mman.h (5.10, x86-64).

PROT_* and MAP_* values are include/uapi/asm-generic/mman-common.h and the x86 mman.h;
calc_vm_prot_bits / calc_vm_flag_bits turn them into VM_* bits. ``vm_globals`` gathers the
machine-wide values mm/ reads as globals (sysctls, totalram_pages, vm_committed_as): one per
Machine, shared by its mm_structs, so two Machines never interfere.
"""

from __future__ import annotations

from dataclasses import dataclass

# include/linux/mm.h:PAGE_ALIGN, one definition: the one proofs/pagetable.py proves.
from refmodel.arch.x86.pgtable_types import PAGE_ALIGN as PAGE_ALIGN
from refmodel.mm.vm_flags import (
    VM_DENYWRITE,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_LOCKED,
    VM_PKEY_BIT0,
    VM_PKEY_BIT1,
    VM_PKEY_BIT2,
    VM_PKEY_BIT3,
    VM_READ,
    VM_SYNC,
    VM_WRITE,
)
from refmodel.trace import kernel

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ((1 << 64) - 1) & ~(PAGE_SIZE - 1)
ULONG_MAX = (1 << 64) - 1

# include/uapi/asm-generic/mman-common.h
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_32BIT = 0x40  # x86 only
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
MAP_FIXED_NOREPLACE = 0x100000
MAP_UNINITIALIZED = 0x4000000
MAP_HUGE_SHIFT = 26
MAP_HUGE_MASK = 0x3F
MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT
MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT

# include/linux/mman.h: what MAP_SHARED (as opposed to MAP_SHARED_VALIDATE) accepts.
LEGACY_MAP_MASK = (
    MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE
    | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE
    | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB | MAP_32BIT | MAP_HUGE_2MB | MAP_HUGE_1GB
)

# include/uapi/linux/personality.h
READ_IMPLIES_EXEC = 0x0400000
ADDR_COMPAT_LAYOUT = 0x0200000

# include/uapi/asm-generic/resource.h
RLIMIT_DATA = 2
RLIMIT_STACK = 3
RLIMIT_MEMLOCK = 8
RLIMIT_AS = 9
RLIM_NLIMITS = 16
RLIM_INFINITY = ULONG_MAX

# include/uapi/linux/mman.h: vm.overcommit_memory
OVERCOMMIT_GUESS = 0
OVERCOMMIT_ALWAYS = 1
OVERCOMMIT_NEVER = 2

DEFAULT_MAX_MAP_COUNT = 65530  # include/linux/mm.h: USHRT_MAX - MAPCOUNT_ELF_CORE_MARGIN
CONFIG_DEFAULT_MMAP_MIN_ADDR = 65536  # Kconfig default is 4096; x86 distributions set 65536
_STACK_GUARD_GAP = 256 << PAGE_SHIFT  # mm/mmap.c: stack_guard_gap, 1 MiB


@dataclass(slots=True)
class rlimit:
    """struct rlimit."""

    rlim_cur: int
    rlim_max: int


def default_rlimits() -> list[rlimit]:
    """A login shell's limits on a distribution kernel: 8 MiB stack, 64 KiB memlock (the
    5.10 default MLOCK_LIMIT), everything else unlimited."""
    out = [rlimit(RLIM_INFINITY, RLIM_INFINITY) for _ in range(RLIM_NLIMITS)]
    out[RLIMIT_STACK] = rlimit(8 << 20, RLIM_INFINITY)
    out[RLIMIT_MEMLOCK] = rlimit(64 << 10, 64 << 10)
    return out


@dataclass(slots=True)
class vm_globals:
    """The machine-wide globals of mm/ that the VMA layer reads (model-only grouping).

    ``mmap_min_addr`` = ``dac_mmap_min_addr`` = CONFIG_DEFAULT_MMAP_MIN_ADDR (65536, as x86
    distributions configure it; no LSM raises it). ``vm_committed_as`` is the overcommit
    counter of mm/util.c, in pages.
    """

    sysctl_max_map_count: int = DEFAULT_MAX_MAP_COUNT
    mmap_min_addr: int = CONFIG_DEFAULT_MMAP_MIN_ADDR
    dac_mmap_min_addr: int = CONFIG_DEFAULT_MMAP_MIN_ADDR
    stack_guard_gap: int = _STACK_GUARD_GAP
    sysctl_overcommit_memory: int = OVERCOMMIT_GUESS
    sysctl_overcommit_ratio: int = 50
    sysctl_legacy_va_layout: int = 0
    ignore_rlimit_data: bool = False
    totalram_pages: int = 1 << 30
    total_swap_pages: int = 0
    vm_committed_as: int = 0


# calc_vm_prot_bits / calc_vm_flag_bits run on every mmap and mprotect: their bit
# translations are tabulated once here (5.10's _calc_vm_trans is resolved at compile time too).
_PROT_RWX = PROT_READ | PROT_WRITE | PROT_EXEC
_PROT_TO_VM = tuple((VM_READ if p & PROT_READ else 0) | (VM_WRITE if p & PROT_WRITE else 0)
                    | (VM_EXEC if p & PROT_EXEC else 0) for p in range(_PROT_RWX + 1))
_PKEY_TO_VM = tuple((VM_PKEY_BIT0 if k & 1 else 0) | (VM_PKEY_BIT1 if k & 2 else 0)
                    | (VM_PKEY_BIT2 if k & 4 else 0) | (VM_PKEY_BIT3 if k & 8 else 0)
                    for k in range(16))
_MAP_VM_FLAG_BITS = MAP_GROWSDOWN | MAP_DENYWRITE | MAP_LOCKED | MAP_SYNC


@kernel("include/linux/mman.h")
def vm_acct_memory(g: vm_globals, pages: int) -> None:
    """Models include/linux/mman.h:vm_acct_memory: vm_committed_as += pages (the model
    passes the machine's globals that hold it)."""
    g.vm_committed_as += pages


@kernel("include/linux/mman.h")
def vm_unacct_memory(g: vm_globals, pages: int) -> None:
    vm_acct_memory(g, -pages)


@kernel("include/linux/mman.h")
def calc_vm_prot_bits(prot: int, pkey: int) -> int:
    """Models include/linux/mman.h:calc_vm_prot_bits: PROT_READ/WRITE/EXEC to VM_READ/WRITE/
    EXEC, plus the protection key as VM_PKEY_BIT0..3 (arch_calc_vm_prot_bits on x86)."""
    vm = _PROT_TO_VM[prot & _PROT_RWX]
    if pkey & 15:
        vm |= _PKEY_TO_VM[pkey & 15]
    return vm


@kernel("include/linux/mman.h")
def calc_vm_flag_bits(flags: int) -> int:
    """Models include/linux/mman.h:calc_vm_flag_bits (x86 adds nothing)."""
    if not flags & _MAP_VM_FLAG_BITS:
        return 0
    vm = 0
    if flags & MAP_GROWSDOWN:
        vm |= VM_GROWSDOWN
    if flags & MAP_DENYWRITE:
        vm |= VM_DENYWRITE
    if flags & MAP_LOCKED:
        vm |= VM_LOCKED
    if flags & MAP_SYNC:
        vm |= VM_SYNC
    return vm



def offset_in_page(x: int) -> int:
    return x & (PAGE_SIZE - 1)
