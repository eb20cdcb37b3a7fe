"""The ``mm`` target: whole-process memory — processes, mappings, bytes, fork and exit.

Operations: ``spawn`` → ``{"pid": P}`` (a fresh exec'd address space); ``mmap``/``munmap``/
``mprotect`` with a ``pid`` (as the ``vma`` target); ``read(pid, addr, length)`` →
``{"data": HEX}`` or a signal ``{"signal": "SIGSEGV", "si_code": "SEGV_MAPERR", "addr": A}``;
``write(pid, addr, data)`` → ``{"ok": true}`` or a signal; ``fork(pid)`` → ``{"pid": C}`` or
``{"ret": -errno}``; ``exit(pid)`` → ``{"ok": true}``. Observation ``vmas``: every live
process's VMA list, ``{"PID": [[start, end, perms], ...]}``. The model is
:class:`~refmodel.machine.Machine` (spawn, fork, exit, read, write: the fault path, copy on
write, the zero page).

Fixed in both modes: the bytes every read returns (copy on write after fork: neither side
sees the other's writes to private memory; shared mappings stay shared), which accesses
fault and with which signal, code and address (and what a faulting write has stored by
then, as later reads show), the VMA lists, every errno. Free in invariant mode: pid
numbers (the runner uses the implementation's) and where an unhinted mmap lands (followed
as in the ``vma`` target). Strict mode fixes placement too.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import strategies as st

from refmodel.arch.x86 import fault as _fault
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
from refmodel.conformance.targets.vma import (
    LENGTHS,
    PAGE,
    PROTS,
    check_mmap,
    describe,
    perms,
)
from refmodel.machine import Machine
from refmodel.mm import mman as M
from refmodel.specs.vma import vmas as vma_list
from refmodel.task import Task
from refmodel.trace import Tracer

# mostly writable memory: copy on write needs writes to show
MM_PROTS = (M.PROT_READ | M.PROT_WRITE,) * 3 + (M.PROT_READ, M.PROT_NONE,
                                                M.PROT_READ | M.PROT_WRITE | M.PROT_EXEC)

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("spawn_gives_new_pid", "spawn answers with a pid not in use"),
    CheckSpec("fork_gives_new_pid", "fork answers with a pid not in use (or the model's "
              "-errno)"),
    CheckSpec("exit_accepted", "exit of a live process succeeds"),
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
    CheckSpec("read_matches_model", "a read returns the model's bytes (copy on write after "
              "fork included) or raises the model's signal"),
    CheckSpec("write_matches_model", "a write succeeds or raises the model's signal"),
    CheckSpec("vmas_match_model", "every process's VMA list equals the model's",
              observation="vmas"),
)


def signal_answer(sig: _fault.SigInfo) -> dict[str, JSON]:
    names: dict[int, str] = getattr(_fault, "_SIGNAMES", {})
    codes: dict[tuple[int, int], str] = getattr(_fault, "_CODENAMES", {})
    return {"signal": names.get(sig.signo, str(sig.signo)),
            "si_code": codes.get((sig.signo, sig.si_code), str(sig.si_code)), "addr": sig.addr}


class MmModel:
    """The model's machine; processes by the model's own pid."""

    def __init__(self, levels: int) -> None:
        self.m = Machine(MachineConfig(memory=64 * MiB, paging_levels=levels))

    def task(self, pid: int) -> Task:
        t = self.m.tasks.get(pid)
        if t is None or t.mm is None:
            raise KeyError(pid)
        return t

    def vmas(self) -> dict[int, list[list[JSON]]]:
        return {pid: [[v.vm_start, v.vm_end, perms(v)] for v in vma_list(t.mm)]
                for pid, t in sorted(self.m.tasks.items()) if t.mm is not None}

    def apply(self, req: Message, pid: int | None) -> dict[str, JSON]:
        """Run a request with the model's pid in place of the implementation's."""
        op = req["op"]
        a = {k: v for k, v in req.items() if isinstance(v, int)}
        m = self.m
        if op == "spawn":
            return {"pid": m.spawn().pid}
        assert pid is not None
        t = self.task(pid)
        assert t.mm is not None
        if op == "fork":
            child = m.fork(t)
            return {"ret": child} if isinstance(child, int) else {"pid": child.pid}
        if op == "exit":
            m.exit(t)
            return {"ok": True}
        if op == "mmap":
            return {"ret": m.mmap(t.mm, a["addr"], a["length"], a["prot"], a["flags"])}
        if op == "munmap":
            return {"ret": m.munmap(t.mm, a["addr"], a["length"])}
        if op == "mprotect":
            return {"ret": m.mprotect(t.mm, a["addr"], a["length"], a["prot"])}
        if op == "read":
            got = m.read(t, a["addr"], a["length"])
            return signal_answer(got) if isinstance(got, _fault.SigInfo) else {
                "data": got.hex()}
        data = req["data"]
        assert isinstance(data, str)
        res = m.write(t, a["addr"], bytes.fromhex(data))
        return signal_answer(res) if isinstance(res, _fault.SigInfo) else {"ok": True}


class MmSession(Session):
    def __init__(self, levels: int, mode: str, tally: Counter[str]) -> None:
        super().__init__(tally)
        self.levels = levels
        self.strict = mode == "strict"
        self.model = MmModel(levels)
        self.pids: dict[int, int] = {}  # implementation pid -> model pid, live processes
        self.order: list[int] = []  # live implementation pids, oldest first
        self.written: list[tuple[int, int]] = []  # (address, length) of every write

    def needs_sync(self, op: Op) -> bool:
        return True

    def informs_plan(self, request: Message) -> bool:
        return True

    def _pid(self, i: int) -> int | None:
        return self.order[i % len(self.order)] if self.order else None

    def _addr(self, pid: int, i: int, off: int) -> int:
        t = self.model.task(self.pids[pid])
        assert t.mm is not None
        vs = vma_list(t.mm)
        if not vs:
            return t.mm.mmap_base - 16 * PAGE + off
        v = vs[i % len(vs)]
        return v.vm_start + off

    def plan(self, op: Op) -> Message | None:
        a = op.args
        if op.name == "spawn" or not self.order:
            return {"op": "spawn"}
        pid = self._pid(a[0])
        assert pid is not None
        if op.name in ("fork", "exit"):
            if op.name == "exit" and len(self.order) == 1:
                return None  # keep one process around
            return {"op": op.name, "pid": pid}
        if op.name == "mmap":  # (proc, length, prot, kind, vma, offset)
            length = LENGTHS[a[1] % len(LENGTHS)] * PAGE
            kind = (0, 0, 0, 0, 1, 2, 3)[a[3] % 7]  # mostly private, unfixed
            flags = (M.MAP_SHARED if kind == 1 else M.MAP_PRIVATE) | M.MAP_ANONYMOUS
            addr = 0
            if kind >= 2:
                addr = self._addr(pid, a[4], (a[5] - 8) * PAGE)
                flags |= M.MAP_FIXED if kind == 2 else M.MAP_FIXED_NOREPLACE
            return {"op": "mmap", "pid": pid, "addr": addr, "length": length,
                    "prot": MM_PROTS[a[2] % len(MM_PROTS)], "flags": flags}
        if op.name in ("munmap", "mprotect"):  # (proc, vma, offset, length, prot)
            req: Message = {"op": op.name, "pid": pid,
                            "addr": self._addr(pid, a[1], (a[2] - 4) * PAGE),
                            "length": LENGTHS[a[3] % len(LENGTHS)] * PAGE}
            if op.name == "mprotect":
                req["prot"] = PROTS[a[4] % len(PROTS)]
            return req
        if op.name in ("read", "write"):  # (proc, vma, byte offset, length, value)
            # a few spots in the VMA's first page (so reads meet earlier writes), across
            # the page end, and just below the VMA (a fault)
            addr = self._addr(pid, a[1], (0, 1000, 2000, PAGE - 8, -PAGE)[a[2] % 5])
            n = 1 + a[3] % 16
            if op.name == "read":
                return {"op": "read", "pid": pid, "addr": addr, "length": n}
            data = bytes((a[4] + k) % 256 for k in range(n))
            self.written.append((addr, n))
            return {"op": "write", "pid": pid, "addr": addr, "data": data.hex()}
        if op.name == "read_back":  # (proc, k): read where the k-th latest write went
            if not self.written:
                return None
            addr, n = self.written[-1 - a[1] % len(self.written)]
            return {"op": "read", "pid": pid, "addr": addr, "length": n}
        raise ValueError(f"unknown mm op {op}")

    # ---------------------------------------------------------------------------------------
    def check(self, request: Message, response: Message) -> Outcome:
        op = request["op"]
        pid = request.get("pid")
        mpid = self.pids.get(pid) if isinstance(pid, int) else None
        if op in ("spawn", "fork"):
            return self._check_new_pid(request, response, mpid)
        if op == "exit":
            if response.get("ok") is not True:
                raise ProtocolError(f"exit answers {{\"ok\": true}}: {response}")
            assert isinstance(pid, int) and mpid is not None
            self.model.apply(request, mpid)
            del self.pids[pid]
            self.order.remove(pid)
            self.ok("exit_accepted")
            return Outcome({"ok": True})
        assert mpid is not None
        if op in ("mmap", "munmap", "mprotect"):
            ret = response.get("ret")
            if not is_int(ret):
                raise ProtocolError(f"a {op} answer needs an integer 'ret': {response}")
            assert isinstance(ret, int)
            if op == "mmap":
                t = self.model.task(mpid)
                assert t.mm is not None
                return check_mmap(self.ok, self.model.m, t.mm, request, ret, self.strict)
            expected = self.model.apply(request, mpid)
            out = Outcome(expected)
            if expected["ret"] == ret:
                self.ok(f"{op}_result")
            else:
                want = expected["ret"]
                assert isinstance(want, int)
                out.failures.append(Failure(f"{op}_result", f"{op} returned {describe(ret)}; "
                                            f"the model returns {describe(want)}", expected,
                                            {"ret": ret}))
            return out
        expected = self.model.apply(request, mpid)
        got = _access_answer(response, str(op))
        out = Outcome(expected)
        name = f"{op}_matches_model"
        if got == expected:
            self.ok(name)
        else:
            out.failures.append(Failure(name, f"{op}({_args(request)}) differs from the model",
                                        expected, got))
        return out

    def _check_new_pid(self, request: Message, response: Message, mpid: int | None
                       ) -> Outcome:
        op = request["op"]
        expected = self.model.apply(request, mpid)
        name = f"{op}_gives_new_pid"
        out = Outcome({"pid": "a pid not in use"} if "pid" in expected else expected)
        if "pid" not in expected:  # fork failed in the model
            if response.get("ret") == expected.get("ret"):
                self.ok(name)
            else:
                out.failures.append(Failure(name, "the model's fork fails", expected,
                                            dict(response)))
            return out
        new = response.get("pid")
        if not is_int(new):
            if "ret" in response or "error" in response:
                out.failures.append(Failure(name, f"{op} failed; the model's succeeds",
                                            out.expected, dict(response)))
                return out
            raise ProtocolError(f"a {op} answer needs an integer 'pid': {response}")
        assert isinstance(new, int)
        if new in self.pids:
            out.failures.append(Failure(name, f"pid {new} is already in use", out.expected,
                                        {"pid": new}))
            return out
        model_pid = expected["pid"]
        assert isinstance(model_pid, int)
        self.pids[new] = model_pid
        self.order.append(new)
        self.ok(name)
        return out

    def check_observation(self, what: str, response: Message) -> Outcome:
        raw = response.get("vmas")
        if not isinstance(raw, dict):
            raise ProtocolError(f"'vmas' must map pids to VMA lists: {str(response)[:200]}")
        model = self.model.vmas()
        want: dict[str, JSON] = {str(p): list[JSON](model[self.pids[p]]) for p in self.order}
        out = Outcome(want)
        if raw == want:
            self.ok("vmas_match_model")
        else:
            diff = sorted(set(raw) ^ set(want)) + [p for p in want if p in raw
                                                    and raw[p] != want[p]]
            out.failures.append(Failure("vmas_match_model", f"VMA lists differ for pid(s) "
                                        f"{', '.join(diff[:5])}", want, raw))
        return out

    def trace(self, steps: list[tuple[Message, Message]], failing: int) -> tuple[str, JSON]:
        replay = MmSession(self.levels, "invariant", Counter())
        for req, resp in steps[:failing]:
            replay.check(req, resp)
        req = steps[failing][0]
        pid = req.get("pid")
        mpid = replay.pids.get(pid) if isinstance(pid, int) else None
        with Tracer() as t:
            answer = replay.model.apply(req, mpid)
        return t.render(show_files=False, max_depth=4), answer


def _access_answer(response: Message, op: str) -> dict[str, JSON]:
    if "signal" in response:
        sig, code, addr = response.get("signal"), response.get("si_code"), response.get("addr")
        if not (isinstance(sig, str) and isinstance(code, str) and is_int(addr)):
            raise ProtocolError(f"a signal answer needs 'signal', 'si_code' and 'addr': "
                                f"{response}")
        return {"signal": sig, "si_code": code, "addr": addr}
    if op == "read":
        data = response.get("data")
        if not isinstance(data, str):
            raise ProtocolError(f"a read answer needs 'data' (hex) or a signal: {response}")
        return {"data": data.lower()}
    if response.get("ok") is not True:
        raise ProtocolError(f"a write answer is {{\"ok\": true}} or a signal: {response}")
    return {"ok": True}


def _args(req: Message) -> str:
    return ", ".join(f"{k}={v:#x}" if isinstance(v, int) and k == "addr" else f"{k}={v}"
                     for k, v in req.items() if k not in ("op", "id"))


def _decode(t: tuple[int, ...]) -> Op:
    kind, a, b, c, d, e = t
    if kind < 20:
        return Op("mmap", (a, b, c, d, e, e))
    if kind < 42:
        return Op("write", (a, d, e, b, c * 37 + 1))
    if kind < 52:
        return Op("read", (a, d, e, b, 0))
    if kind < 66:
        return Op("read_back", (a, b))
    if kind < 78:
        return Op("fork", (a,))
    if kind < 82:
        return Op("exit", (a,))
    if kind < 90:
        return Op("munmap", (a, d, e % 12, b, c))
    if kind < 98:
        return Op("mprotect", (a, d, e % 12, b, c))
    return Op("spawn", ())  # rarely: unrelated processes dilute fork's effects


class MmTarget(PagingLevelsConfig, Target):
    name = "mm"
    description = "whole-process memory: mmap/munmap/mprotect, read and write, fork, exit"
    observations = ("vmas",)
    checks = CHECKS

    # (kind, process, length/size, prot/kind, vma index, offset)
    bounds = (100, 8, 8, 6, 8, 24)

    def ops(self, config: dict[str, JSON]) -> st.SearchStrategy[Op]:
        return tuple_ops(self.bounds, _decode)

    def random_op(self, config: dict[str, JSON], rng: random.Random) -> Op:
        return random_tuple_op(self.bounds, _decode, rng)

    def session(self, config: dict[str, JSON], mode: str, observations: frozenset[str],
                tally: Counter[str]) -> Session:
        levels = config["paging_levels"]
        assert isinstance(levels, int)
        return MmSession(levels, mode, tally)
