"""The x86 page-fault entry (arch/x86/mm/fault.c, 5.10): exc_page_fault → handle_page_fault
→ do_user_addr_fault (→ handle_mm_fault) / do_kern_addr_fault.

A user fault ends in one of: the fault handled (None: the access is retried), SIGSEGV with
SEGV_MAPERR (no VMA, or a kernel address) or SEGV_ACCERR (the VMA forbids the access),
SIGBUS with BUS_ADRERR (VM_FAULT_SIGBUS, e.g. past the end of a file), or, for
VM_FAULT_OOM, pagefault_out_of_memory (then the access is retried, or the task dies of the
SIGKILL the OOM killer sent). Signals are returned as :class:`SigInfo` values, as
force_sig_fault would queue them. ``current`` is a parameter: the faulting task's mm.
Left out: kmmio, kprobes, vsyscall emulation, v8086, the mmap-lock retry dance (no
VM_FAULT_RETRY in the model), perf events, and kernel-mode faults (exception fixups).

The seed's ``do_page_fault`` is this entry's name before 5.8; it is recorded as an alias
of exc_page_fault.
"""

from __future__ import annotations

from dataclasses import dataclass

from refmodel.arch.x86.cpu import X86_PF_INSTR, X86_PF_PK, X86_PF_PROT, X86_PF_USER, X86_PF_WRITE
from refmodel.arch.x86.pgtable_types import TASK_SIZE_MAX
from refmodel.bugs import KernelBug
from refmodel.mm.memory_fault import handle_mm_fault
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mmap import find_vma
from refmodel.mm.mmap_stack import expand_stack
from refmodel.mm.mmzone import pglist_data
from refmodel.mm.vm_fault import (
    FAULT_FLAG_DEFAULT,
    FAULT_FLAG_INSTRUCTION,
    FAULT_FLAG_USER,
    FAULT_FLAG_WRITE,
    VM_FAULT_ERROR,
    VM_FAULT_HWPOISON,
    VM_FAULT_HWPOISON_LARGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_SIGSEGV,
)
from refmodel.mm.vm_flags import VM_EXEC, VM_GROWSDOWN, VM_READ, VM_WRITE
from refmodel.trace import alias, kernel

F = "arch/x86/mm/fault.c"
_TASK_SIZE_MAX_L4 = TASK_SIZE_MAX(4)  # the two values task_size_max takes at run time
_TASK_SIZE_MAX_L5 = TASK_SIZE_MAX(5)

SIGBUS = 7
SIGKILL = 9
SIGSEGV = 11
SEGV_MAPERR = 1
SEGV_ACCERR = 2
SEGV_PKUERR = 4
BUS_ADRERR = 2
SI_KERNEL = 0x80

_SIGNAMES = {SIGBUS: "SIGBUS", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV"}
_CODENAMES = {(SIGSEGV, SEGV_MAPERR): "SEGV_MAPERR", (SIGSEGV, SEGV_ACCERR): "SEGV_ACCERR",
              (SIGSEGV, SEGV_PKUERR): "SEGV_PKUERR", (SIGBUS, BUS_ADRERR): "BUS_ADRERR",
              (SIGSEGV, SI_KERNEL): "SI_KERNEL", (SIGKILL, SI_KERNEL): "SI_KERNEL"}


@dataclass(frozen=True, slots=True)
class SigInfo:
    """The signal a fault delivers (struct kernel_siginfo: si_signo, si_code, si_addr)."""

    signo: int
    si_code: int
    addr: int

    def __str__(self) -> str:
        name = _SIGNAMES.get(self.signo, str(self.signo))
        code = _CODENAMES.get((self.signo, self.si_code), str(self.si_code))
        return f"{name} ({code}) at {self.addr:#x}"


@kernel("kernel/signal.c")
def force_sig_fault(sig: int, code: int, addr: int) -> SigInfo:
    """Models kernel/signal.c:force_sig_fault: the signal is queued for current."""
    return SigInfo(sig, code, addr)


@kernel(F)
def __bad_area_nosemaphore(error_code: int, address: int, pkey: int,
                           si_code: int) -> SigInfo:
    """Models arch/x86/mm/fault.c:__bad_area_nosemaphore for a user-mode fault: SIGSEGV
    (prefetch and erratum-100 fixups left out)."""
    if not error_code & X86_PF_USER:
        raise KernelBug("model: kernel-mode faults (no_context) are not modelled",
                        f"address {address:#x}")
    return force_sig_fault(SIGSEGV, si_code, address)


@kernel(F)
def bad_area_nosemaphore(error_code: int, address: int) -> SigInfo:
    return __bad_area_nosemaphore(error_code, address, 0, SEGV_MAPERR)


@kernel(F)
def __bad_area(error_code: int, address: int, pkey: int, si_code: int) -> SigInfo:
    """Models arch/x86/mm/fault.c:__bad_area: drop the mmap lock, then the above."""
    return __bad_area_nosemaphore(error_code, address, pkey, si_code)


@kernel(F)
def bad_area(error_code: int, address: int) -> SigInfo:
    """Models arch/x86/mm/fault.c:bad_area: no VMA at the address → SEGV_MAPERR."""
    return __bad_area(error_code, address, 0, SEGV_MAPERR)


@kernel(F)
def bad_area_access_error(error_code: int, address: int, vma: vm_area_struct) -> SigInfo:
    """Models arch/x86/mm/fault.c:bad_area_access_error: SEGV_ACCERR (SEGV_PKUERR only for
    protection-key faults, which the model never has)."""
    return __bad_area(error_code, address, 0, SEGV_ACCERR)


@kernel(F)
def do_sigbus(error_code: int, address: int, fault: int) -> SigInfo:
    """Models arch/x86/mm/fault.c:do_sigbus: SIGBUS BUS_ADRERR (hwpoison out of scope)."""
    return force_sig_fault(SIGBUS, BUS_ADRERR, address)


@kernel("mm/oom_kill.c")
def pagefault_out_of_memory(pgdat: pglist_data) -> None:
    """Models mm/oom_kill.c:pagefault_out_of_memory: nothing for a task that is already
    dying (fatal_signal_pending(current), the 5.10.y stable fix "don't force global OOM for
    dying tasks"; 5.10.13 lacks it), else out_of_memory with gfp_mask 0 and order 0 (no
    memcg; oom_lock is always free). Both through the node's hooks (Machine wires them;
    without them nothing happens). Returns nothing: the faulting access is retried, or the
    task dies on its way back to user mode."""
    hooks = pgdat.hooks
    if hooks.fatal_signal_pending is not None and hooks.fatal_signal_pending():
        return
    if hooks.out_of_memory is not None:
        hooks.out_of_memory(0, 0)


@kernel(F)
def mm_fault_error(pgdat: pglist_data, error_code: int, address: int,
                   fault: int) -> SigInfo | None:
    """Models arch/x86/mm/fault.c:mm_fault_error for a user fault."""
    if fault & VM_FAULT_OOM:
        pagefault_out_of_memory(pgdat)
        return None
    if fault & (VM_FAULT_SIGBUS | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE):
        return do_sigbus(error_code, address, fault)
    if fault & VM_FAULT_SIGSEGV:
        return bad_area_nosemaphore(error_code, address)
    raise KernelBug("BUG", f"mm_fault_error with fault {fault:#x}")


@kernel(F)
def access_error(error_code: int, vma: vm_area_struct) -> bool:
    """Models arch/x86/mm/fault.c:access_error: a write needs VM_WRITE; a protection fault
    on a read or fetch is always an error (the pte was present); otherwise any of
    VM_READ|VM_EXEC|VM_WRITE will do (x86 has no write-only or exec-only pages)."""
    if error_code & X86_PF_PK:
        return True
    if error_code & X86_PF_WRITE:
        return not vma.vm_flags & VM_WRITE
    if error_code & X86_PF_PROT:
        return True
    return not vma.vm_flags & (VM_READ | VM_EXEC | VM_WRITE)


def _fault_flags(hw_error_code: int) -> int:
    """The FAULT_FLAG_* do_user_addr_fault starts with for a hardware error code."""
    flags = FAULT_FLAG_DEFAULT
    if hw_error_code & X86_PF_USER:
        flags |= FAULT_FLAG_USER
    if hw_error_code & X86_PF_WRITE:
        flags |= FAULT_FLAG_WRITE
    if hw_error_code & X86_PF_INSTR:
        flags |= FAULT_FLAG_INSTRUCTION
    return flags


# _fault_flags of every combination of the three bits it reads, worked out once: the table
# lookup replaces three tests on every fault
_FLAG_BITS = X86_PF_USER | X86_PF_WRITE | X86_PF_INSTR
_FAULT_FLAGS: tuple[int, ...] = tuple(_fault_flags(code) for code in range(_FLAG_BITS + 1))


@kernel(F)
def do_user_addr_fault(pgdat: pglist_data, mm: mm_struct, hw_error_code: int,
                       address: int) -> SigInfo | None:
    """Models arch/x86/mm/fault.c:do_user_addr_fault: find the VMA (growing a
    VM_GROWSDOWN stack down to the address), check the access, then handle_mm_fault."""
    flags = _FAULT_FLAGS[hw_error_code & _FLAG_BITS]
    vma = find_vma(mm, address)
    if vma is None:
        return bad_area(hw_error_code, address)
    if vma.vm_start > address:
        if not vma.vm_flags & VM_GROWSDOWN:
            return bad_area(hw_error_code, address)
        if expand_stack(vma, address):
            return bad_area(hw_error_code, address)
    if access_error(hw_error_code, vma):
        return bad_area_access_error(hw_error_code, address, vma)
    fault = handle_mm_fault(pgdat, vma, address, flags, None)
    if fault & VM_FAULT_ERROR:
        return mm_fault_error(pgdat, hw_error_code, address, fault)
    return None


@kernel(F)
def do_kern_addr_fault(pgdat: pglist_data, mm: mm_struct, hw_error_code: int,
                       address: int) -> SigInfo | None:
    """Models arch/x86/mm/fault.c:do_kern_addr_fault for a user-mode access to a kernel
    address: no vmalloc or spurious-fault fixup applies, so bad_area_nosemaphore
    (SIGSEGV, SEGV_MAPERR)."""
    return bad_area_nosemaphore(hw_error_code, address)


@kernel(F)
def fault_in_kernel_space(address: int, levels: int) -> bool:
    """Models arch/x86/mm/fault.c:fault_in_kernel_space: at or above TASK_SIZE_MAX
    (the vsyscall page is not modelled)."""
    return address >= (_TASK_SIZE_MAX_L5 if levels == 5 else _TASK_SIZE_MAX_L4)


@kernel(F)
def handle_page_fault(pgdat: pglist_data, mm: mm_struct, error_code: int,
                      address: int) -> SigInfo | None:
    """Models arch/x86/mm/fault.c:handle_page_fault (trace_page_fault_entries left out)."""
    if fault_in_kernel_space(address, mm.paging_levels):
        return do_kern_addr_fault(pgdat, mm, error_code, address)
    return do_user_addr_fault(pgdat, mm, error_code, address)


@kernel(F)
def exc_page_fault(pgdat: pglist_data, mm: mm_struct, error_code: int,
                   address: int) -> SigInfo | None:
    """Models arch/x86/mm/fault.c:exc_page_fault (DEFINE_IDTENTRY_RAW_ERRORCODE, 5.8+):
    address = read_cr2(), then handle_page_fault. None when the fault was handled (the
    instruction is restarted), else the signal delivered to the task."""
    return handle_page_fault(pgdat, mm, error_code, address)


@kernel("arch/x86/kernel/traps.c")
def exc_general_protection(address: int) -> SigInfo:
    """Models arch/x86/kernel/traps.c:exc_general_protection for user mode: a
    non-canonical address raises #GP, not #PF: SIGSEGV with SI_KERNEL and no address."""
    return force_sig_fault(SIGSEGV, SI_KERNEL, 0)


alias("do_page_fault", "exc_page_fault",
      "the x86 page-fault entry was do_page_fault until 5.7; 5.8 split it into "
      "exc_page_fault → handle_page_fault → do_user_addr_fault")
