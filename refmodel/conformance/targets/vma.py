"""The ``vma`` target: one process's VMAs through mmap/munmap/mprotect and find_vma.

Operations (the syscall ABI, anonymous memory only): ``mmap(addr, length, prot, flags)`` →
``{"ret": address}`` or ``{"ret": -errno}``; ``munmap(addr, length)`` and
``mprotect(addr, length, prot)`` → ``{"ret": 0 | -errno}``; ``find_vma(addr)`` →
``{"vma": [start, end, perms] | null}`` (the first VMA ending above addr). Observation
``vmas``: ``[[start, end, perms], ...]`` by address, perms as /proc/PID/maps writes them
(``rw-p``, ``r--s``). The model is :class:`~refmodel.machine.Machine`'s syscall layer on a
fresh ``new_mm()`` (top-down layout, mmap_base 0x7ffff7fff000, mmap_min_addr 65536).

Fixed in both modes: every errno; the result of a MAP_FIXED or MAP_FIXED_NOREPLACE mmap, of
munmap and mprotect (including mprotect's partial effect before a hole); the VMA list after
every step given the placements made so far (so how VMAs merge and split, including the
invisible VM_ACCOUNT that keeps a once-writable private VMA from merging with a never-written
one, and the separate shmem file of each shared anonymous mapping); find_vma. Free in
invariant mode: where a mapping without MAP_FIXED lands (hinted or not): any page-aligned
range inside [mmap_min_addr, TASK_SIZE) that overlaps no VMA; the model follows the choice.
Strict mode fixes the placement too (5.10's top-down search and hint rules).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from hypothesis import strategies as st

from refmodel.config import MachineConfig, MiB
from refmodel.conformance.protocol import JSON, Message, ProtocolError, is_int
from refmodel.conformance.targets.base import (
    CheckSpec,
    Failure,
    Op,
    Outcome,
    PagingLevelsConfig,
    Session,
    Target,
    random_tuple_op,
    tuple_ops,
)
from refmodel.machine import Machine
from refmodel.mm import mman as M
from refmodel.mm.mm_types import mm_struct, vm_area_struct
from refmodel.mm.mmap import find_vma
from refmodel.mm.vm_flags import VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE
from refmodel.specs.vma import vmas as vma_list
from refmodel.trace import Tracer

PAGE = M.PAGE_SIZE
ERRNO = {1: "EPERM", 12: "ENOMEM", 13: "EACCES", 17: "EEXIST", 22: "EINVAL"}

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("mmap_errno", "an mmap the model refuses is refused with the same errno"),
    CheckSpec("mmap_fixed_result", "MAP_FIXED / MAP_FIXED_NOREPLACE give the model's result"),
    CheckSpec("mmap_placement_aligned", "a placed mapping starts on a page boundary",
              ("invariant",)),
    CheckSpec("mmap_placement_in_range", "a placed mapping lies inside [mmap_min_addr, "
              "TASK_SIZE)", ("invariant",)),
    CheckSpec("mmap_placement_free", "a placed mapping overlaps no existing VMA",
              ("invariant",)),
    CheckSpec("mmap_result_exact", "an unfixed mmap lands where 5.10 puts it", ("strict",)),
    CheckSpec("munmap_result", "munmap returns the model's 0 or -errno"),
    CheckSpec("mprotect_result", "mprotect returns the model's 0 or -errno"),
    CheckSpec("find_vma_matches_model", "find_vma returns the model's VMA (or none)"),
    CheckSpec("vmas_sorted_disjoint", "the VMA list is sorted, page-aligned, non-empty and "
              "non-overlapping", observation="vmas"),
    CheckSpec("vmas_match_model", "the VMA list equals the model's (merges and splits "
              "included)", observation="vmas"),
)


def perms(v: vm_area_struct) -> str:
    """/proc/PID/maps' permission column."""
    f = v.vm_flags
    return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + (
        "x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")


def describe(ret: int) -> str:
    return f"-{ERRNO.get(-ret, str(-ret))}" if ret < 0 else hex(ret)


class VmaModel:
    """The model's process: a Machine and one fresh mm."""

    def __init__(self, levels: int) -> None:
        self.m = Machine(MachineConfig(memory=64 * MiB, paging_levels=levels))
        self.mm: mm_struct = self.m.new_mm()

    def vmas(self) -> list[list[JSON]]:
        return [[v.vm_start, v.vm_end, perms(v)] for v in vma_list(self.mm)]

    def apply(self, req: Message) -> dict[str, JSON]:
        op = req["op"]
        a = {k: v for k, v in req.items() if isinstance(v, int)}
        if op == "mmap":
            return {"ret": self.m.mmap(self.mm, a["addr"], a["length"], a["prot"],
                                       a["flags"])}
        if op == "munmap":
            return {"ret": self.m.munmap(self.mm, a["addr"], a["length"])}
        if op == "mprotect":
            return {"ret": self.m.mprotect(self.mm, a["addr"], a["length"], a["prot"])}
        v = find_vma(self.mm, a["addr"] & ((1 << 64) - 1))
        return {"vma": None if v is None else [v.vm_start, v.vm_end, perms(v)]}


def _fixed(flags: int) -> bool:
    return bool(flags & (M.MAP_FIXED | M.MAP_FIXED_NOREPLACE))


LENGTHS = (1, 1, 2, 3, 4, 8, 16, 256)
PROTS = (M.PROT_READ | M.PROT_WRITE, M.PROT_READ, M.PROT_NONE,
         M.PROT_READ | M.PROT_WRITE | M.PROT_EXEC, M.PROT_READ | M.PROT_EXEC, M.PROT_WRITE)


class VmaSession(Session):
    def __init__(self, levels: int, mode: str, tally: Counter[str]) -> None:
        super().__init__(tally)
        self.levels = levels
        self.strict = mode == "strict"
        self.model = VmaModel(levels)

    # every op may read the VMA list the earlier answers produced: plan one step at a time
    def needs_sync(self, op: Op) -> bool:
        return True

    def informs_plan(self, request: Message) -> bool:
        return True

    def _vma_addr(self, i: int, off: int) -> int:
        vs = vma_list(self.model.mm)
        if not vs:
            return self.model.mm.mmap_base - 16 * PAGE + off * PAGE
        v = vs[i % len(vs)]
        return v.vm_start + off * PAGE

    def plan(self, op: Op) -> Message | None:
        a = op.args
        if op.name == "mmap":  # (length idx, prot idx, kind, vma idx, offset)
            length = LENGTHS[a[0] % len(LENGTHS)] * PAGE
            prot = PROTS[a[1] % len(PROTS)]
            kind = a[2] % 6
            share = M.MAP_SHARED if kind == 1 else M.MAP_PRIVATE
            flags = share | M.MAP_ANONYMOUS
            addr = 0
            if kind in (2, 3, 4):
                addr = self._vma_addr(a[3], a[4] - 8)
                flags |= (M.MAP_FIXED, M.MAP_FIXED_NOREPLACE, 0)[kind - 2]
            elif kind == 5:  # a bad call
                addr, length, flags = [(0, 0, flags), (0, length, M.MAP_ANONYMOUS),
                                       (PAGE + 1, length, flags | M.MAP_FIXED),
                                       (PAGE, length, flags | M.MAP_FIXED),
                                       (0, 1 << 62, flags)][a[3] % 5]
            return {"op": "mmap", "addr": addr, "length": length, "prot": prot,
                    "flags": flags}
        if op.name == "munmap":  # (vma idx, offset, length idx)
            return {"op": "munmap", "addr": self._vma_addr(a[0], a[1] - 4),
                    "length": LENGTHS[a[2] % len(LENGTHS)] * PAGE}
        if op.name == "mprotect":  # (vma idx, offset, length idx, prot idx)
            return {"op": "mprotect", "addr": self._vma_addr(a[0], a[1] - 4),
                    "length": LENGTHS[a[2] % len(LENGTHS)] * PAGE,
                    "prot": PROTS[a[3] % len(PROTS)]}
        if op.name == "find_vma":
            return {"op": "find_vma", "addr": self._vma_addr(a[0], a[1] - 4)}
        if op.name == "bad":
            k = a[0] % 5
            base = self._vma_addr(a[1], 0)
            if k == 0:
                return {"op": "munmap", "addr": base + 1, "length": PAGE}
            if k == 1:
                return {"op": "munmap", "addr": base, "length": 0}
            if k == 2:
                return {"op": "mprotect", "addr": base + 1, "length": PAGE,
                        "prot": M.PROT_READ}
            if k == 3:
                return {"op": "mprotect", "addr": base, "length": PAGE,
                        "prot": M.PROT_READ | 0x10}
            return {"op": "mprotect", "addr": base, "length": PAGE,
                    "prot": M.PROT_READ | M.PROT_GROWSDOWN}
        raise ValueError(f"unknown vma op {op}")

    # ---------------------------------------------------------------------------------------
    def check(self, request: Message, response: Message) -> Outcome:
        op = request["op"]
        if op == "find_vma":
            return self._check_find(request, response)
        if "error" in response:
            raise ProtocolError(f"{op} answers with 'ret' (an address, 0 or -errno), not an "
                                f"error: {response}")
        ret = response.get("ret")
        if not is_int(ret):
            raise ProtocolError(f"a {op} answer needs an integer 'ret': {response}")
        assert isinstance(ret, int)
        actual: JSON = {"ret": ret}
        if op == "mmap":
            return self._check_mmap(request, ret, actual)
        expected = self.model.apply(request)
        out = Outcome(expected)
        name = f"{op}_result"
        if expected["ret"] == ret:
            self.ok(name)
        else:
            want = expected["ret"]
            assert isinstance(want, int)
            out.failures.append(Failure(name, f"{op}({_args(request)}) returned {describe(ret)};"
                                        f" the model returns {describe(want)}",
                                        expected, actual))
        return out

    def _check_mmap(self, request: Message, ret: int, actual: JSON) -> Outcome:
        return check_mmap(self.ok, self.model.m, self.model.mm, request, ret, self.strict)

    def _check_find(self, request: Message, response: Message) -> Outcome:
        v = response.get("vma", "missing")
        if v == "missing" or not (v is None or (
                isinstance(v, list) and len(v) == 3 and is_int(v[0]) and is_int(v[1])
                and isinstance(v[2], str))):
            raise ProtocolError(f"a find_vma answer needs 'vma': [start, end, perms] or null: "
                                f"{response}")
        expected = self.model.apply(request)
        out = Outcome(expected)
        if expected["vma"] == v:
            self.ok("find_vma_matches_model")
        else:
            out.failures.append(Failure("find_vma_matches_model", f"find_vma({_args(request)})",
                                        expected, {"vma": v}))
        return out

    def check_observation(self, what: str, response: Message) -> Outcome:
        raw = response.get("vmas")
        if not isinstance(raw, list) or not all(
                isinstance(e, list) and len(e) == 3 and is_int(e[0]) and is_int(e[1])
                and isinstance(e[2], str) for e in raw):
            raise ProtocolError(f"'vmas' must be a list of [start, end, perms]: "
                                f"{str(response)[:200]}")
        want = self.model.vmas()
        out = Outcome(list[JSON](want))
        got: list[list[JSON]] = raw  # type: ignore[assignment]
        bad = []
        prev_end = -1
        for s, e, _ in got:
            assert isinstance(s, int) and isinstance(e, int)
            if s % PAGE or e % PAGE or e <= s or s < prev_end:
                bad.append(f"[{s:#x}, {e:#x})")
            prev_end = e
        if bad:
            out.failures.append(Failure("vmas_sorted_disjoint", "misplaced VMA(s): "
                                        + ", ".join(bad[:4]), out.expected, raw))
        else:
            self.ok("vmas_sorted_disjoint")
        if got == want:
            self.ok("vmas_match_model")
        else:
            missing = [w for w in want if w not in got]
            extra = [g for g in got if g not in want]
            out.failures.append(Failure(
                "vmas_match_model", "the VMA list differs from the model's: missing "
                + (", ".join(_vma(x) for x in missing[:4]) or "none") + "; unexpected "
                + (", ".join(_vma(x) for x in extra[:4]) or "none"), out.expected, raw))
        return out

    def trace(self, steps: list[tuple[Message, Message]], failing: int) -> tuple[str, JSON]:
        replay = VmaSession(self.levels, "invariant", Counter())
        for req, resp in steps[:failing]:
            try:
                replay.check(req, resp)
            except ProtocolError:
                replay.model.apply(req)
        with Tracer() as t:
            answer = replay.model.apply(steps[failing][0])
        return t.render(show_files=False, max_depth=4), answer


def check_mmap(ok: Callable[[str], None], machine: Machine, mm: mm_struct, request: Message,
               ret: int, strict: bool) -> Outcome:
    """Check an mmap answer against the model on ``mm`` and leave the model in step: the
    same errno; the same result for MAP_FIXED(_NOREPLACE) and in strict mode; otherwise a
    free, aligned, in-range placement, which the model then follows (it undoes its own
    choice and maps the implementation's range with MAP_FIXED_NOREPLACE)."""
    addr, length, prot, flags = (request[k] for k in ("addr", "length", "prot", "flags"))
    assert isinstance(addr, int) and isinstance(length, int)
    assert isinstance(prot, int) and isinstance(flags, int)
    want = machine.mmap(mm, addr, length, prot, flags)
    expected: dict[str, JSON] = {"ret": want}
    actual: JSON = {"ret": ret}
    out = Outcome(expected)
    fail = out.failures

    def f(check: str, msg: str) -> None:
        fail.append(Failure(check, f"mmap({_args(request)}) returned {describe(ret)}: {msg}",
                            out.expected, actual))

    if want < 0:
        if ret == want:
            ok("mmap_errno")
        else:
            f("mmap_errno", f"the model refuses it with {describe(want)}")
        return out
    if _fixed(flags) or strict:
        name = "mmap_fixed_result" if _fixed(flags) else "mmap_result_exact"
        if ret == want:
            ok(name)
        else:
            f(name, f"5.10 returns {describe(want)}")
        return out
    if ret < 0:
        f("mmap_errno", f"the model maps it (at {describe(want)})")
        return out
    out.expected = {"ret": f"any free range (5.10 picks {want:#x})"}
    machine.munmap(mm, want, length)
    page_len = -(-length // PAGE) * PAGE
    if ret % PAGE:
        f("mmap_placement_aligned", "not page-aligned")
    else:
        ok("mmap_placement_aligned")
    lo = mm.vm_globals.mmap_min_addr if mm.vm_globals else PAGE
    if not (lo <= ret and ret + page_len <= mm.task_size):
        f("mmap_placement_in_range", f"[{ret:#x}, {ret + page_len:#x}) leaves "
          f"[{lo:#x}, {mm.task_size:#x})")
    else:
        ok("mmap_placement_in_range")
    if fail:
        machine.mmap(mm, addr, length, prot, flags)  # the sequence stops here
        return out
    over = [v for v in vma_list(mm) if v.vm_start < ret + page_len and ret < v.vm_end]
    if over:
        f("mmap_placement_free", "overlaps " + ", ".join(
            f"[{v.vm_start:#x}, {v.vm_end:#x})" for v in over))
        machine.mmap(mm, addr, length, prot, flags)
        return out
    ok("mmap_placement_free")
    got = machine.mmap(mm, ret, length, prot, flags | M.MAP_FIXED_NOREPLACE)
    if got != ret:  # cannot happen for a free, in-range, aligned range
        f("mmap_placement_free", f"the model cannot follow it ({describe(got)})")
    return out


def _vma(x: list[JSON]) -> str:
    s, e, p = x
    return f"[{s:#x}, {e:#x}) {p}" if isinstance(s, int) and isinstance(e, int) else str(x)


def _args(req: Message) -> str:
    return ", ".join(f"{k}={v:#x}" if isinstance(v, int) and k != "prot" else f"{k}={v}"
                     for k, v in req.items() if k not in ("op", "id"))


def _decode(t: tuple[int, ...]) -> Op:
    kind, a, b, c, d, e = t
    if kind < 40:
        return Op("mmap", (a, b, c, d, e))
    if kind < 60:
        return Op("munmap", (d, e % 12, a))
    if kind < 80:
        return Op("mprotect", (d, e % 12, a, b))
    if kind < 90:
        return Op("find_vma", (d, e % 12))
    return Op("bad", (c, d))


class VmaTarget(PagingLevelsConfig, Target):
    name = "vma"
    description = "one process's VMAs: mmap, munmap, mprotect, find_vma"
    observations = ("vmas",)
    checks = CHECKS

    # (kind, length, prot, mmap kind / bad kind, vma index, offset in pages)
    bounds = (100, 8, 6, 6, 16, 24)

    def ops(self, config: dict[str, JSON]) -> st.SearchStrategy[Op]:
        return tuple_ops(self.bounds, _decode)

    def random_op(self, config: dict[str, JSON], rng: random.Random) -> Op:
        return random_tuple_op(self.bounds, _decode, rng)

    def session(self, config: dict[str, JSON], mode: str, observations: frozenset[str],
                tally: Counter[str]) -> Session:
        levels = config["paging_levels"]
        assert isinstance(levels, int)
        return VmaSession(levels, mode, tally)
