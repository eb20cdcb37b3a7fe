"""The ``pagetable`` target: x86-64 page tables of one address space, 4- or 5-level.

Operations: ``map(address, pfn, flags)`` writes the leaf entry ``pfn_pte(pfn, flags)``
(allocating the tables on the way, as __handle_mm_fault's p4d_alloc..pte_alloc do, then
set_pte_at); ``unmap(address)`` clears it (ptep_get_and_clear; tables stay, as 5.10 frees
them only in free_pgtables); ``protect(address, flags)`` changes the protection of a mapped
entry (pte_modify, as change_pte_range does); ``translate(address)`` is the MMU's walk of
any address; observations ``entries`` (every non-empty leaf entry) and ``tables`` (how many
table pages each level has).

Fixed in both modes: which addresses are mapped to which pfn, the access rights a walk
yields (present, writable, user, executable), the fault kind of an unmapped, PROT_NONE or
non-canonical address, the P/RW/US/NX/PROTNONE bits and the pfn of every entry, and which
requests are refused (an address that is not a page-aligned user address, flags that carry
pfn bits or are neither present nor PROT_NONE, protecting an address with no entry).
Free in invariant mode: the other PTE bits (accessed, dirty, global, cache, software bits,
and whether a PROT_NONE entry stores its pfn inverted against L1TF), which physical pages
hold the tables, and how many there are. Strict mode fixes the exact entry values and the
table counts as 5.10 has them.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import strategies as st

from refmodel.arch.x86.pgtable import (
    pfn_pte,
    pgd_alloc,
    pte_modify,
    pte_none,
    pte_pfn,
    ptep_get_and_clear,
    read_entry,
    set_pte_at,
)
from refmodel.arch.x86.pgtable_demo import populate_pte
from refmodel.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_RW,
    _PAGE_USER,
    PAGE_SIZE,
    PFN_BITS,
    PTE_PFN_MASK,
    protection_map,
    vaddr_bits,
)
from refmodel.arch.x86.walk import walk
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
)
from refmodel.machine import Machine
from refmodel.mm.mm_types import mm_struct
from refmodel.specs.pagetable import user_table_tree
from refmodel.trace import Tracer

MASK64 = (1 << 64) - 1
# The bits invariant mode compares (besides the pfn): what the MMU's access check reads.
RIGHTS_MASK = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_NX

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("map_accepts_user_address", "map of a page-aligned user address succeeds"),
    CheckSpec("map_rejects_bad_address", "map of a non-canonical, kernel-half or unaligned "
              "address is refused"),
    CheckSpec("map_rejects_bad_flags", "map with pfn bits in flags, a pfn beyond 2**40, or "
              "flags neither present nor PROT_NONE is refused"),
    CheckSpec("unmap_accepts_user_address", "unmap of a page-aligned user address succeeds"),
    CheckSpec("unmap_rejects_bad_address", "unmap of a bad address is refused"),
    CheckSpec("protect_accepts_mapped", "protect of a mapped address succeeds"),
    CheckSpec("protect_rejects_unmapped", "protect of an address without an entry (or a bad "
              "address or flags) is refused"),
    CheckSpec("translate_matches_model", "a walk gives the model's pfn, physical address and "
              "rights, or the model's fault kind"),
    CheckSpec("translate_pte_exact", "a walk reads 5.10's exact leaf entry", ("strict",)),
    CheckSpec("entries_match_model", "the non-empty leaf entries are the model's addresses, "
              "with its pfns and P/RW/US/NX/PROTNONE bits", observation="entries"),
    CheckSpec("entries_exact", "every leaf entry equals 5.10's, bit for bit", ("strict",),
              "entries"),
    CheckSpec("tables_exact", "the number of table pages per level is 5.10's", ("strict",),
              "tables"),
)


def candidate_addresses(levels: int) -> list[int]:
    """Addresses where page-table bugs show: every power of two (so a wrong shift or mask at
    any level makes two of them collide), the pages just below them, the top user page."""
    top = 1 << (vaddr_bits(levels) - 1)
    out = {0, PAGE_SIZE, top - PAGE_SIZE, 0x7FFFF7FFE000 % top}
    for b in range(12, vaddr_bits(levels) - 1):
        out.add(1 << b)
        out.add((1 << b) - PAGE_SIZE)
        out.add((1 << b) + (1 << (b - 1)) if b > 12 else 3 * PAGE_SIZE)
    return sorted(a for a in out if 0 <= a < top)


def _prots() -> list[int]:
    seen: list[int] = []
    for p in (*protection_map, protection_map[3] | _PAGE_DIRTY, protection_map[15]
              | _PAGE_DIRTY | _PAGE_RW, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER,
              _PAGE_PRESENT | _PAGE_RW | _PAGE_GLOBAL | _PAGE_ACCESSED):
        if p not in seen:
            seen.append(p)
    return seen


PROTS = _prots()
BAD_ADDRESS_KINDS = 4  # non-canonical, kernel half, unaligned, just above the user half


class PageTableModel:
    """The 5.10 model of one address space's page tables."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.m = Machine(MachineConfig(memory=64 * MiB, paging_levels=levels))
        self.pgdat = self.m.pgdat
        self.mm = mm_struct(paging_levels=levels)
        if pgd_alloc(self.pgdat, self.mm) is None:
            raise MemoryError("pgd_alloc failed")
        self.top = 1 << (vaddr_bits(levels) - 1)

    def address_error(self, addr: int) -> str | None:
        if not 0 <= addr <= MASK64:
            return "EINVAL: not a 64-bit address"
        if addr % PAGE_SIZE:
            return "EINVAL: not page-aligned"
        if addr >= self.top:
            return "EINVAL: not a user address"
        return None

    def flags_error(self, pfn: int, flags: int) -> str | None:
        if not 0 <= flags <= MASK64 or flags & PTE_PFN_MASK:
            return "EINVAL: flags carry pfn bits"
        if not 0 <= pfn < 1 << PFN_BITS:
            return "EINVAL: pfn out of range"
        if not flags & (_PAGE_PRESENT | _PAGE_PROTNONE):
            return "EINVAL: flags neither present nor PROT_NONE"
        return None

    def _ptep(self, addr: int) -> int | None:
        w = walk(self.pgdat, self.mm.pgd, addr)
        if w.steps and w.steps[-1].level == "pte":
            return w.steps[-1].entry_addr
        return None

    def map(self, addr: int, pfn: int, flags: int) -> str | None:
        err = self.address_error(addr) or self.flags_error(pfn, flags)
        if err:
            return err
        ptep = populate_pte(self.pgdat, self.mm, addr)
        if ptep is None:
            return "ENOMEM"
        ptep_get_and_clear(self.pgdat, self.mm, addr, ptep)
        set_pte_at(self.pgdat, self.mm, addr, ptep, pfn_pte(pfn, flags))
        return None

    def unmap(self, addr: int) -> str | None:
        err = self.address_error(addr)
        if err:
            return err
        ptep = self._ptep(addr)
        if ptep is not None:
            ptep_get_and_clear(self.pgdat, self.mm, addr, ptep)
        return None

    def protect(self, addr: int, flags: int) -> str | None:
        err = self.address_error(addr) or self.flags_error(0, flags)
        if err:
            return err
        ptep = self._ptep(addr)
        if ptep is None or pte_none(read_entry(self.pgdat, ptep)):
            return "ENOENT: nothing mapped there"
        old = ptep_get_and_clear(self.pgdat, self.mm, addr, ptep)  # ptep_modify_prot_start
        set_pte_at(self.pgdat, self.mm, addr, ptep, pte_modify(old, flags))
        return None

    def translate(self, addr: int) -> dict[str, JSON]:
        w = walk(self.pgdat, self.mm.pgd, addr & MASK64)
        if w.stop != "mapped":
            return {"fault": w.stop}
        return {"pfn": w.pfn, "phys": w.phys, "writable": w.writable, "user": w.user,
                "executable": w.executable, "pte": w.steps[-1].value}

    def entries(self) -> list[list[int]]:
        """Every non-empty leaf entry as [address, pte], by address (PROT_NONE entries
        included: pte_present counts them)."""
        return [[a, p] for a, p in sorted(user_table_tree(self.pgdat, self.mm).leaves)]

    def tables(self) -> dict[str, int]:
        tree = user_table_tree(self.pgdat, self.mm)
        counts = {"pgd": 0, "p4d": 0, "pud": 0, "pmd": 0, "pte": 0}
        for level in tree.tables.values():
            counts[level] += 1
        if self.levels == 4:
            del counts["p4d"]
        return counts

    def apply(self, req: Message) -> dict[str, JSON]:
        """Run one request on the model; its answer as the protocol writes it."""
        op = req["op"]
        addr = req.get("address")
        assert isinstance(addr, int)
        if op == "translate":
            return self.translate(addr)
        if op == "map":
            pfn, flags = req["pfn"], req["flags"]
            assert isinstance(pfn, int) and isinstance(flags, int)
            err = self.map(addr, pfn, flags)
        elif op == "unmap":
            err = self.unmap(addr)
        else:
            flags = req["flags"]
            assert isinstance(flags, int)
            err = self.protect(addr, flags)
        return {"ok": True} if err is None else {"error": err}


def _entry_key(pte: int) -> tuple[int, int, bool]:
    """What invariant mode compares of an entry: pfn, rights bits, PROT_NONE-ness."""
    protnone = not pte & _PAGE_PRESENT and bool(pte & _PAGE_PROTNONE)
    return pte_pfn(pte), pte & RIGHTS_MASK, protnone


class PageTableSession(Session):
    def __init__(self, levels: int, mode: str, observations: frozenset[str],
                 tally: Counter[str]) -> None:
        super().__init__(tally)
        self.levels = levels
        self.mode = mode
        self.strict = mode == "strict"
        self.model = PageTableModel(levels)
        self.candidates = candidate_addresses(levels)
        self.top = self.model.top
        self.p_mapped: list[int] = []  # planning: mapped addresses, in mapping order

    def needs_sync(self, op: Op) -> bool:
        return False

    def _addr(self, k: int) -> int:
        return self.candidates[k % len(self.candidates)]

    def _mapped(self, i: int) -> int | None:
        return self.p_mapped[i % len(self.p_mapped)] if self.p_mapped else None

    def plan(self, op: Op) -> Message | None:
        a = op.args
        if op.name == "map":
            addr = self._addr(a[0])
            prot = PROTS[a[2] % len(PROTS)]
            if addr not in self.p_mapped:
                self.p_mapped.append(addr)
            return {"op": "map", "address": addr, "pfn": a[1], "flags": prot}
        if op.name == "map_page":  # any user page
            addr = (a[0] * PAGE_SIZE) % self.top
            if addr not in self.p_mapped:
                self.p_mapped.append(addr)
            return {"op": "map", "address": addr, "pfn": a[1], "flags": PROTS[a[2] % len(PROTS)]}
        if op.name == "map_bad_flags":
            addr = self._addr(a[0])
            flags = [PTE_PFN_MASK & (1 << 12), _PAGE_RW | _PAGE_USER, _PAGE_PRESENT][a[1] % 3]
            pfn = 1 << PFN_BITS if a[1] % 3 == 2 else 1
            return {"op": "map", "address": addr, "pfn": pfn, "flags": flags}
        if op.name in ("map_bad_address", "unmap_bad_address"):
            addr = self._bad_address(a[0])
            if op.name == "unmap_bad_address":
                return {"op": "unmap", "address": addr}
            return {"op": "map", "address": addr, "pfn": 1, "flags": PROTS[1]}
        if op.name == "unmap":
            target = self._mapped(a[0])
            if target is None:
                return None
            self.p_mapped.remove(target)
            return {"op": "unmap", "address": target}
        if op.name == "protect":
            target = self._mapped(a[0]) if a[2] == 0 else self._addr(a[0])
            if target is None:
                return None
            return {"op": "protect", "address": target, "flags": PROTS[a[1] % len(PROTS)]}
        if op.name == "translate":
            base = self._mapped(a[0]) if a[2] == 0 else self._addr(a[0])
            if base is None:
                base = self._addr(a[0])
            return {"op": "translate", "address": base + a[1]}
        if op.name == "translate_non_canonical":
            return {"op": "translate", "address": self._non_canonical(a[0])}
        raise ValueError(f"unknown pagetable op {op}")

    def _non_canonical(self, k: int) -> int:
        bits = vaddr_bits(self.levels)
        return [1 << (bits - 1), 1 << 63, (1 << 63) | (1 << (bits - 2)), 1 << bits][k % 4]

    def _bad_address(self, k: int) -> int:
        return [self._non_canonical(0), MASK64 & ~(PAGE_SIZE - 1), PAGE_SIZE + 8, self.top][
            k % BAD_ADDRESS_KINDS]

    # ---------------------------------------------------------------------------------------
    def check(self, request: Message, response: Message) -> Outcome:
        op = request["op"]
        expected = self.model.apply(request)
        out = Outcome(expected)
        if op == "translate":
            self._check_translate(request, expected, response, out)
            return out
        if "error" in response:
            if not isinstance(response["error"], str):
                raise ProtocolError(f"'error' must be a string: {response}")
            accepted = False
        elif response.get("ok") is True:
            accepted = True
        else:
            raise ProtocolError(f"a {op} answer must be {{\"ok\": true}} or carry 'error': "
                                f"{response}")
        want_ok = "error" not in expected
        err = str(expected.get("error", ""))
        if op == "map":
            name = ("map_accepts_user_address" if want_ok else
                    "map_rejects_bad_address" if "address" in err or "aligned" in err
                    else "map_rejects_bad_flags")
        elif op == "unmap":
            name = "unmap_accepts_user_address" if want_ok else "unmap_rejects_bad_address"
        else:
            name = "protect_accepts_mapped" if want_ok else "protect_rejects_unmapped"
        if accepted == want_ok:
            self.ok(name)
        else:
            actual: JSON = {"ok": True} if accepted else {"error": response["error"]}
            what = "refused" if want_ok else f"accepted (the model refuses: {err})"
            out.failures.append(Failure(name, f"{op}({_args(request)}) was {what}",
                                        expected, actual))
        return out

    def _check_translate(self, request: Message, expected: dict[str, JSON],
                         response: Message, out: Outcome) -> None:
        if "fault" in response:
            if not isinstance(response["fault"], str):
                raise ProtocolError(f"'fault' must be a string: {response}")
            got: dict[str, JSON] = {"fault": response["fault"]}
        else:
            got = {}
            for k in ("pfn", "phys"):
                if not is_int(response.get(k)):
                    raise ProtocolError(f"a translate answer needs integer {k!r} (or 'fault'): "
                                        f"{response}")
                got[k] = response[k]
            for k in ("writable", "user", "executable"):
                if not isinstance(response.get(k), bool):
                    raise ProtocolError(f"a translate answer needs boolean {k!r}: {response}")
                got[k] = response[k]
            if "pte" in response:
                if not is_int(response["pte"]):
                    raise ProtocolError(f"'pte' must be an integer: {response}")
                got["pte"] = response["pte"]
        want = {k: v for k, v in expected.items() if k != "pte"}
        have = {k: v for k, v in got.items() if k != "pte"}
        if want == have:
            self.ok("translate_matches_model")
        else:
            out.failures.append(Failure(
                "translate_matches_model", f"translate({_hex(request['address'])}) differs from "
                f"the model's walk", expected, got))
            return
        if self.strict and "pte" in expected:
            if got.get("pte") == expected["pte"]:
                self.ok("translate_pte_exact")
            elif "pte" in got:
                out.failures.append(Failure(
                    "translate_pte_exact", f"leaf entry {_hex(got['pte'])}, 5.10 writes "
                    f"{_hex(expected['pte'])}", expected, got))

    def check_observation(self, what: str, response: Message) -> Outcome:
        if what == "tables":
            return self._check_tables(response)
        raw = response.get("entries")
        if not isinstance(raw, list) or not all(
                isinstance(e, list) and len(e) == 2 and is_int(e[0]) and is_int(e[1])
                for e in raw):
            raise ProtocolError(f"'entries' must be a list of [address, pte] pairs: "
                                f"{str(response)[:200]}")
        got = {int(e[0]): int(e[1]) for e in raw}  # type: ignore[index, arg-type]
        want = {a: p for a, p in self.model.entries()}
        out = Outcome([[a, p] for a, p in sorted(want.items())])
        actual: JSON = raw
        if len(got) != len(raw):
            out.failures.append(Failure("entries_match_model", "an address is listed twice",
                                        out.expected, actual))
            return out
        bad = [a for a in sorted(set(want) | set(got))
               if a not in want or a not in got or _entry_key(want[a]) != _entry_key(got[a])]
        if bad:
            desc = []
            for a in bad[:4]:
                w = f"{_hex(want[a])}" if a in want else "nothing"
                g = f"{_hex(got[a])}" if a in got else "nothing"
                desc.append(f"at {_hex(a)} the model has {w}, the implementation {g}")
            out.failures.append(Failure("entries_match_model", "; ".join(desc),
                                        out.expected, actual))
        else:
            self.ok("entries_match_model")
        if self.strict:
            diff = [a for a in sorted(want) if got.get(a) != want[a]]
            if diff or len(got) != len(want):
                if not bad:
                    a = diff[0]
                    out.failures.append(Failure(
                        "entries_exact", f"entry at {_hex(a)} is {_hex(got.get(a, 0))}, 5.10 "
                        f"writes {_hex(want[a])}", out.expected, actual))
            else:
                self.ok("entries_exact")
        return out

    def _check_tables(self, response: Message) -> Outcome:
        got = response.get("tables")
        if not isinstance(got, dict) or not all(is_int(v) for v in got.values()):
            raise ProtocolError(f"'tables' must map level names to counts: {response}")
        want = self.model.tables()
        out = Outcome(dict(want))
        if not self.strict:
            return out
        if {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}:
            self.ok("tables_exact")
        else:
            out.failures.append(Failure("tables_exact", "table pages per level differ from "
                                        "5.10's", out.expected, dict(got)))
        return out

    def trace(self, steps: list[tuple[Message, Message]], failing: int) -> tuple[str, JSON]:
        model = PageTableModel(self.levels)
        for req, _ in steps[:failing]:
            model.apply(req)
        with Tracer() as t:
            answer = model.apply(steps[failing][0])
        return t.render(show_files=False, max_depth=6), answer


def _hex(v: JSON) -> str:
    return hex(v) if isinstance(v, int) else repr(v)


def _args(req: Message) -> str:
    return ", ".join(f"{k}={_hex(v)}" for k, v in req.items() if k not in ("op", "id"))


_OFFSETS = (0, 8, 0x123, PAGE_SIZE - 1)


def _decode_pt(t: tuple[int, int, int, int, int, int]) -> Op:
    kind, a, pfn, prot, small, page = t
    if kind < 30:
        return Op("map", (a, pfn, prot))
    if kind < 45:
        return Op("translate", (small, _OFFSETS[a % 4], 0))  # a mapped address
    if kind < 55:
        return Op("translate", (a, _OFFSETS[small % 4], 1))  # any candidate address
    if kind < 65:
        return Op("unmap", (small,))
    if kind < 75:
        return Op("protect", (small, prot, 0))
    if kind < 80:
        return Op("protect", (a, prot, 1))
    if kind < 86:
        return Op("map_page", (page, pfn, prot))
    if kind < 90:
        return Op("map_bad_address", (small % BAD_ADDRESS_KINDS,))
    if kind < 93:
        return Op("unmap_bad_address", (small % BAD_ADDRESS_KINDS,))
    if kind < 97:
        return Op("map_bad_flags", (a, small % 3))
    return Op("translate_non_canonical", (small % 4,))


class PageTableTarget(PagingLevelsConfig, Target):
    name = "pagetable"
    description = "x86-64 page tables of one address space (4- or 5-level paging)"
    observations = ("entries", "tables")
    checks = CHECKS

    def ops(self, config: dict[str, JSON]) -> st.SearchStrategy[Op]:
        levels = config["paging_levels"]
        assert isinstance(levels, int)
        n = len(candidate_addresses(levels))
        # (kind, address choice, pfn, protection, small): decoded by _decode_pt; everything
        # shrinks towards map(0, pfn 0, PAGE_NONE).
        pfn = st.one_of(st.integers(0, 0xFFFF), st.integers(0, (1 << PFN_BITS) - 1))
        return st.tuples(st.integers(0, 99), st.integers(0, n - 1), pfn,
                         st.integers(0, len(PROTS) - 1), st.integers(0, 15),
                         st.integers(0, (1 << 36) - 1)).map(_decode_pt)

    def random_op(self, config: dict[str, JSON], rng: random.Random) -> Op:
        levels = config["paging_levels"]
        assert isinstance(levels, int)
        n = len(candidate_addresses(levels))
        pfn = rng.randrange(0x10000) if rng.random() < 0.5 else rng.randrange(1 << PFN_BITS)
        return _decode_pt((rng.randrange(100), rng.randrange(n), pfn, rng.randrange(len(PROTS)),
                           rng.randrange(16), rng.randrange(1 << 36)))

    def session(self, config: dict[str, JSON], mode: str, observations: frozenset[str],
                tally: Counter[str]) -> Session:
        levels = config["paging_levels"]
        assert isinstance(levels, int)
        return PageTableSession(levels, mode, observations, tally)
