"""The ``buddy`` target: the standalone buddy allocator over pfns [0, nr_pages).

Operations (named after 5.10): ``alloc_pages(order)`` → a block's first pfn or null;
``free_pages(pfn, order)`` → ok, or an error for a bad free; observation ``free_lists``: for
each order below max_order, the pfns of the free blocks from list head to tail.

What the specification fixes and leaves free (docs/conformance.md has the full list):

* fixed: the set of free pages (the complement of the live blocks) and therefore the free
  lists as sets, because a buddy system that always merges (up to order max_order-1) keeps
  the free pages in their unique decomposition into maximal aligned blocks; that an
  allocation fails only when no free block of that order or larger exists; that a returned
  block is aligned, inside [0, nr_pages) and free; that every bad free (double free, wrong
  order, misaligned, out of range, interior page, order ≥ max_order) is refused and
  changes nothing.
* free (invariant mode): which free block an allocation returns, and the order of the
  blocks within one free list. The model follows the implementation's choice.
* strict mode fixes those too: the exact pfn and list order of 5.10
  (:class:`~refmodel.machine.StandaloneBuddy` is the oracle).

Invariant mode checks against an abstract state (the live blocks and the canonical free
blocks), kept in step with the implementation; the 5.10 model is run only to show its call
trace at a failing step, following the implementation's earlier choices with
:func:`alloc_block_at` (a test helper, not a kernel function).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

from hypothesis import strategies as st

from refmodel.bugs import KernelBug
from refmodel.config import BuddyConfig
from refmodel.conformance.protocol import JSON, Message, ProtocolError, is_int
from refmodel.conformance.targets.base import (
    CheckSpec,
    Failure,
    Op,
    Outcome,
    Session,
    Target,
    config_int,
)
from refmodel.machine import StandaloneBuddy
from refmodel.mm.mmzone import MIGRATE_MOVABLE, pglist_data
from refmodel.mm.page_alloc import (
    add_to_free_list,
    del_page_from_free_list,
    prep_new_page,
    set_buddy_order,
)
from refmodel.mm.types import Page, PageState, PageType, set_page_state
from refmodel.trace import Tracer

_PG_buddy = int(PageType.PG_buddy)

# The kernel check 5.10 (and the model) hits for each kind of bad free; tests check these
# against the exceptions StandaloneBuddy raises.
BAD_FREE_CHECKS: dict[str, str] = {
    "out_of_range": "VM_BUG_ON_PAGE(bad_range(zone, page))",
    "bad_order": "VM_BUG_ON(order >= MAX_ORDER)",
    "misaligned": "VM_BUG_ON_PAGE(pfn & ((1 << order) - 1))",
    "double_free": "VM_BUG_ON_PAGE(page_ref_count(page) == 0)",
    "interior": "VM_BUG_ON_PAGE(page_ref_count(page) == 0)",
    "wrong_order": "bad_page (model: order mismatch)",
}

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("alloc_block_aligned", "an allocated block's pfn is a multiple of 2**order"),
    CheckSpec("alloc_block_in_range", "an allocated block lies inside [0, nr_pages)"),
    CheckSpec("alloc_block_was_free", "an allocated block overlaps no live block"),
    CheckSpec("alloc_fails_only_when_no_block",
              "an allocation fails only when no free block of that order or larger exists"),
    CheckSpec("alloc_rejects_bad_order", "an allocation of order >= max_order fails"),
    CheckSpec("alloc_pfn_exact", "the allocated pfn is the one 5.10 returns", ("strict",)),
    CheckSpec("free_accepts_live_block", "freeing a live block with its order succeeds"),
    CheckSpec("free_rejects_double_free", "freeing a block that is already free is refused"),
    CheckSpec("free_rejects_wrong_order", "freeing a live block with another order is refused"),
    CheckSpec("free_rejects_misaligned", "freeing a pfn not aligned to the order is refused"),
    CheckSpec("free_rejects_out_of_range", "freeing outside [0, nr_pages) is refused"),
    CheckSpec("free_rejects_interior", "freeing a page inside a live block is refused"),
    CheckSpec("free_rejects_bad_order", "freeing with order >= max_order is refused"),
    CheckSpec("free_blocks_aligned", "every free block is aligned to its order",
              observation="free_lists"),
    CheckSpec("free_blocks_in_range", "every free block lies inside [0, nr_pages) and has an "
              "order below max_order", observation="free_lists"),
    CheckSpec("free_blocks_disjoint", "no page is in two free blocks, or free and live",
              observation="free_lists"),
    CheckSpec("pages_conserved", "free pages + live pages = nr_pages",
              observation="free_lists"),
    CheckSpec("no_unmerged_buddies", "no two free blocks of one order are buddies "
              "(below max_order-1): the allocator always merges", observation="free_lists"),
    CheckSpec("free_lists_match_model", "each free list holds the model's blocks (as a set)",
              observation="free_lists"),
    CheckSpec("free_lists_exact", "each free list equals 5.10's, in list order",
              ("strict",), "free_lists"),
)


# At most this many free blocks after boot: nr_pages >> (max_order - 1).
MAX_BOOT_BLOCKS = 1 << 16

def canonical_blocks(start: int, end: int, max_order: int) -> list[tuple[int, int]]:
    """[start, end) as memblock releases it: the largest aligned blocks, ascending (pfn 0
    counts as aligned to every order, as in the model's __free_pages_memory)."""
    out = []
    top = max_order - 1
    while start < end:
        order = top if start == 0 else min(top, (start & -start).bit_length() - 1)
        while start + (1 << order) > end:
            order -= 1
        out.append((start, order))
        start += 1 << order
    return out


class BuddySet:
    """The abstract buddy state: live blocks and the canonical free blocks per order."""

    def __init__(self, nr_pages: int, max_order: int) -> None:
        self.nr_pages = nr_pages
        self.max_order = max_order
        self.free: list[set[int]] = [set() for _ in range(max_order)]
        self.live: dict[int, int] = {}
        self.live_pages = 0
        for pfn, order in canonical_blocks(0, nr_pages, max_order):
            self.free[order].add(pfn)

    def containing_free(self, pfn: int, order: int) -> tuple[int, int] | None:
        """The free block that contains the aligned block (pfn, order), if any."""
        for o in range(order, self.max_order):
            head = pfn & ~((1 << o) - 1)
            if head in self.free[o]:
                return head, o
        return None

    def has_free_block(self, order: int) -> bool:
        return any(self.free[o] for o in range(max(order, 0), self.max_order))

    def take(self, pfn: int, order: int, head: int, o: int) -> None:
        """Allocate (pfn, order) out of the free block (head, o), splitting as needed."""
        self.free[o].discard(head)
        while o > order:
            o -= 1
            upper = head + (1 << o)
            if pfn >= upper:
                self.free[o].add(head)
                head = upper
            else:
                self.free[o].add(upper)
        self.live[pfn] = order
        self.live_pages += 1 << order

    def release(self, pfn: int, order: int) -> None:
        """Free a live block, merging with free buddies up to max_order-1."""
        del self.live[pfn]
        self.live_pages -= 1 << order
        top = self.max_order - 1
        free = self.free
        while order < top:
            buddy = pfn ^ (1 << order)
            if buddy not in free[order]:
                break
            free[order].remove(buddy)
            pfn &= buddy
            order += 1
        free[order].add(pfn)

    def classify_free(self, pfn: int, order: int) -> str:
        """"ok" for a valid free, else the kind of bad free, in the order 5.10's checks
        (and StandaloneBuddy.free) find them."""
        if not 0 <= pfn < self.nr_pages:
            return "out_of_range"
        if self.live.get(pfn) == order:
            return "ok"
        if not 0 <= order < self.max_order:
            return "bad_order"
        if pfn + (1 << order) > self.nr_pages:
            return "out_of_range"
        if pfn & ((1 << order) - 1):
            return "misaligned"
        if pfn in self.live:
            return "wrong_order"
        return "interior" if self.live_block_containing(pfn) is not None else "double_free"

    def live_block_containing(self, pfn: int) -> tuple[int, int] | None:
        for o in range(self.max_order):
            head = pfn & ~((1 << o) - 1)
            if self.live.get(head) == o:
                return head, o
        return None

    def lists_as_sets(self) -> list[list[int]]:
        return [sorted(s) for s in self.free]


def alloc_block_at(pgdat: pglist_data, pfn: int, order: int) -> Page:
    """Test helper (not 5.10): allocate exactly the block (pfn, order) from the standalone
    buddy, splitting the free block that contains it the way expand() splits (each split-off
    half to the head of its list), so the model can follow an implementation's choice."""
    zone = pgdat.node_zones[2]
    mem_map = pgdat.mem_map
    for o in range(order, pgdat.max_order):
        head = pfn & ~((1 << o) - 1)
        page = mem_map.get(head)
        if page is not None and page.page_type & _PG_buddy and page.private == o:
            break
    else:
        raise ValueError(f"no free block contains pfn {pfn:#x} order {order}")
    mt = page.index
    del_page_from_free_list(page, zone, o)
    zone.nr_free_pages -= 1 << order
    while o > order:
        o -= 1
        upper = head + (1 << o)
        keep, give = (upper, head) if pfn >= upper else (head, upper)
        gp = mem_map.get(give)
        if gp is None:
            gp = mem_map[give] = Page(give, zone.zone_idx)
        set_page_state(gp, PageState.BUDDY)
        add_to_free_list(gp, zone, o, mt)
        set_buddy_order(gp, o)
        head = keep
    target = mem_map.get(pfn)
    if target is None:
        target = mem_map[pfn] = Page(pfn, zone.zone_idx)
    target.index = mt
    prep_new_page(pgdat, target, order, 0, 0)
    return target


def model_free_lists(b: StandaloneBuddy) -> list[list[int]]:
    zone = b.pgdat.node_zones[2]
    return [list(zone.free_area[o].free_list[MIGRATE_MOVABLE])
            for o in range(b.pgdat.max_order)]


def _model_alloc(b: StandaloneBuddy, order: int) -> int | None:
    try:
        return b.alloc(order)
    except KernelBug:  # WARN_ON_ONCE(order >= MAX_ORDER): 5.10 returns NULL
        return None


def _model_free(b: StandaloneBuddy, pfn: int, order: int) -> str | None:
    """None if the model accepts the free, else the kernel check it names."""
    try:
        b.free(pfn, order)
    except KernelBug as e:
        return e.check
    return None


def _answer_pfn(response: Message) -> tuple[bool, int | None]:
    """(refused with an error, pfn or None) of an alloc_pages answer."""
    if "error" in response:
        if not isinstance(response["error"], str):
            raise ProtocolError(f"'error' must be a string: {response!r}")
        return True, None
    if "pfn" not in response:
        raise ProtocolError(f"an alloc_pages answer needs 'pfn' (an integer or null) or "
                            f"'error': {response!r}")
    pfn = response["pfn"]
    if pfn is None:
        return False, None
    if not is_int(pfn):
        raise ProtocolError(f"'pfn' must be an integer or null: {response!r}")
    assert isinstance(pfn, int)
    return False, pfn


def _answer_ok(response: Message) -> bool:
    """True if a free_pages answer accepts the free, False if it refuses it."""
    if "error" in response:
        if not isinstance(response["error"], str):
            raise ProtocolError(f"'error' must be a string: {response!r}")
        return False
    if response.get("ok") is not True:
        raise ProtocolError(f"a free_pages answer must be {{\"ok\": true}} or carry "
                            f"'error': {response!r}")
    return True


class BuddySession(Session):
    def __init__(self, nr_pages: int, max_order: int, mode: str,
                 observations: frozenset[str], tally: Counter[str]) -> None:
        super().__init__(tally)
        self.nr_pages = nr_pages
        self.max_order = max_order
        self.mode = mode
        self.state = BuddySet(nr_pages, max_order)
        self.strict = mode == "strict"
        self.model = StandaloneBuddy(BuddyConfig(nr_pages, max_order)) if self.strict else None
        # Planning state: live blocks in allocation order, recently freed blocks.
        self.p_live: list[tuple[int, int]] = []
        self.p_live_map: dict[int, int] = {}
        self.p_freed: list[tuple[int, int]] = []

    # ---------------------------------------------------------------------------------------
    def needs_sync(self, op: Op) -> bool:
        return op.name not in ("alloc", "free_out_of_range")

    def informs_plan(self, request: Message) -> bool:
        return request["op"] == "alloc_pages"

    def plan(self, op: Op) -> Message | None:
        a = op.args
        name = op.name
        if name == "alloc":
            return {"op": "alloc_pages", "order": a[0]}
        live = self.p_live
        if name == "free_out_of_range":
            return self._free(self.nr_pages + a[0], 0)
        if name == "double_free":
            if not self.p_freed:
                return None
            pfn, order = self.p_freed[-1 - a[0] % len(self.p_freed)]
            return self._free(pfn, order)
        if not live:
            return None
        if name == "free":  # index 0 is the latest block: shrinking favours LIFO frees
            pfn, order = live[-1 - a[0] % len(live)]
            return self._free(pfn, order)
        if name == "free_wrong_order":
            pfn, order = live[a[0] % len(live)]
            new = order + 1 if a[1] or order == 0 else order - 1
            return self._free(pfn, min(new, self.max_order - 1)) if new != order else None
        if name == "free_bad_order":
            pfn, order = live[a[0] % len(live)]
            return self._free(pfn, self.max_order)
        big = [b for b in live if b[1] > 0]
        if not big:
            return None
        pfn, order = big[a[0] % len(big)]
        if name == "free_misaligned":
            return self._free(pfn + 1, order)
        if name == "free_interior":
            return self._free(pfn + (1 << order) - 1, 0)
        raise ValueError(f"unknown buddy op {op}")

    def _free(self, pfn: int, order: int) -> Message:
        if self.p_live_map.get(pfn) == order:
            del self.p_live_map[pfn]
            self.p_live.remove((pfn, order))
            self.p_freed.append((pfn, order))
            if len(self.p_freed) > 16:
                del self.p_freed[0]
        return {"op": "free_pages", "pfn": pfn, "order": order}

    # ---------------------------------------------------------------------------------------
    def check(self, request: Message, response: Message) -> Outcome:
        if request["op"] == "alloc_pages":
            order = request["order"]
            assert isinstance(order, int)
            return self._check_alloc(order, response)
        pfn, order = request["pfn"], request["order"]
        assert isinstance(pfn, int) and isinstance(order, int)
        return self._check_free(pfn, order, response)

    def _check_alloc(self, order: int, response: Message) -> Outcome:
        refused, pfn = _answer_pfn(response)
        st_ = self.state
        out = Outcome()
        model_pfn: int | None = None
        if self.model is not None:
            model_pfn = _model_alloc(self.model, order)
            out.expected = {"pfn": model_pfn}
        actual: JSON = {"error": response["error"]} if refused else {"pfn": pfn}
        if not 0 <= order < self.max_order:
            if pfn is None:
                self.ok("alloc_rejects_bad_order")
            else:
                out.expected = out.expected or {"pfn": None}
                out.failures.append(Failure(
                    "alloc_rejects_bad_order", f"alloc_pages(order={order}) with max_order "
                    f"{self.max_order} returned pfn {pfn} instead of failing", out.expected,
                    actual))
            return out
        if pfn is None:
            if st_.has_free_block(order):
                free = [(p, o) for o in range(order, self.max_order) for p in sorted(st_.free[o])]
                out.expected = out.expected or {"pfn": f"a free order-{order} block"}
                out.failures.append(Failure(
                    "alloc_fails_only_when_no_block",
                    f"alloc_pages(order={order}) failed, but free blocks of order >= {order} "
                    f"exist: {_blocks(free)}", out.expected, actual))
            else:
                self.ok("alloc_fails_only_when_no_block")
            if self.model is not None:
                if model_pfn is None:
                    self.ok("alloc_pfn_exact")
                elif not out.failures:
                    out.failures.append(Failure("alloc_pfn_exact",
                                                f"5.10 returns pfn {model_pfn}", out.expected,
                                                actual))
            return out
        if out.expected is None:
            out.expected = {"pfn": f"any free order-{order} block"}
        size = 1 << order
        if pfn & (size - 1):
            out.failures.append(Failure("alloc_block_aligned", f"pfn {pfn} is not aligned to "
                                        f"order {order}", out.expected, actual))
        else:
            self.ok("alloc_block_aligned")
        if not (0 <= pfn and pfn + size <= self.nr_pages):
            out.failures.append(Failure("alloc_block_in_range", f"[{pfn}, {pfn + size}) is not "
                                        f"inside [0, {self.nr_pages})", out.expected, actual))
        else:
            self.ok("alloc_block_in_range")
        if out.failures:
            return out
        holder = st_.containing_free(pfn, order)
        if holder is None:
            over = [(p, o) for p, o in st_.live.items() if p < pfn + size and pfn < p + (1 << o)]
            out.failures.append(Failure(
                "alloc_block_was_free", f"block {pfn}/order {order} overlaps live block(s) "
                f"{_blocks(sorted(over))}", out.expected, actual))
            return out
        self.ok("alloc_block_was_free")
        if self.model is not None:
            if model_pfn != pfn:
                out.failures.append(Failure("alloc_pfn_exact", f"5.10 returns pfn {model_pfn}",
                                            out.expected, actual))
                return out
            self.ok("alloc_pfn_exact")
        st_.take(pfn, order, *holder)
        self.p_live.append((pfn, order))
        self.p_live_map[pfn] = order
        return out

    def _check_free(self, pfn: int, order: int, response: Message) -> Outcome:
        accepted = _answer_ok(response)
        kind = self.state.classify_free(pfn, order)
        out = Outcome()
        check: str | None = None
        if self.model is not None:
            check = _model_free(self.model, pfn, order)
        elif kind != "ok":
            check = BAD_FREE_CHECKS[kind]
        out.expected = {"ok": True} if kind == "ok" else {"error": check}
        actual: JSON = {"ok": True} if accepted else {"error": response["error"]}
        if kind == "ok":
            self.state.release(pfn, order)
            if accepted:
                self.ok("free_accepts_live_block")
            else:
                out.failures.append(Failure(
                    "free_accepts_live_block", f"free_pages(pfn={pfn}, order={order}) of a "
                    "live block was refused", out.expected, actual))
            return out
        name = f"free_rejects_{kind}"
        if accepted:
            out.failures.append(Failure(
                name, f"free_pages(pfn={pfn}, order={order}) must be refused: "
                f"{_describe_bad_free(self.state, kind, pfn, order)}; the model raises {check}",
                out.expected, actual))
        else:
            self.ok(name)
        return out

    # ---------------------------------------------------------------------------------------
    def check_observation(self, what: str, response: Message) -> Outcome:
        obs = response.get("free_lists")
        if not isinstance(obs, list):
            raise ProtocolError(f"'free_lists' must be a list of lists of integers: "
                                f"{str(response)[:200]}")
        st_ = self.state
        free = st_.free
        mo = self.max_order
        out = Outcome()
        # The fast path: every list holds exactly the model's blocks (as a set).
        fast = len(obs) <= mo
        if fast:
            for o, lst in enumerate(obs):
                if (not isinstance(lst, list) or len(lst) != len(free[o])
                        or not free[o].issuperset(lst)):
                    fast = False
                    break
            else:
                fast = all(not free[o] for o in range(len(obs), mo))
        if fast:
            tally = self.tally
            for c in ("free_blocks_aligned", "free_blocks_in_range", "free_blocks_disjoint",
                      "pages_conserved", "no_unmerged_buddies", "free_lists_match_model"):
                tally[c] += 1
        else:
            if not all(isinstance(lst, list) and all(is_int(p) for p in lst) for lst in obs):
                raise ProtocolError(f"'free_lists' must be a list of lists of integers: "
                                    f"{str(response)[:200]}")
            out.expected = [list[JSON](sorted(s)) for s in free]
            self._diagnose(obs, out)  # type: ignore[arg-type]
        if self.model is not None:
            exact = model_free_lists(self.model)
            padded = [*obs[:mo], *([[]] * (mo - len(obs)))]
            if padded == exact and not any(obs[mo:]):
                self.ok("free_lists_exact")
            else:
                out.expected = [list[JSON](lst) for lst in exact]
                diff = [o for o in range(max(mo, len(obs)))
                        if (obs[o] if o < len(obs) else []) != (exact[o] if o < mo else [])]
                out.failures.append(Failure("free_lists_exact",
                                            f"free lists differ from 5.10's at order(s) {diff}",
                                            out.expected, obs))
        return out

    def _diagnose(self, obs: list[list[int]], out: Outcome) -> None:
        st_ = self.state
        n, mo = self.nr_pages, self.max_order
        actual: JSON = obs  # type: ignore[assignment]
        blocks = [(p, o) for o, lst in enumerate(obs) for p in lst]

        def fail(check: str, msg: str) -> None:
            out.failures.append(Failure(check, msg, out.expected, actual))

        bad = [(p, o) for p, o in blocks if p & ((1 << o) - 1)]
        if bad:
            fail("free_blocks_aligned", f"free block(s) not aligned to their order: "
                 f"{_blocks(bad)}")
        else:
            self.ok("free_blocks_aligned")
        bad = [(p, o) for p, o in blocks if o >= mo or p < 0 or p + (1 << o) > n]
        if bad:
            fail("free_blocks_in_range", f"free block(s) outside [0, {n}) or of order >= "
                 f"{mo}: {_blocks(bad)}")
        else:
            self.ok("free_blocks_in_range")
        iv = sorted([(p, p + (1 << o), f"free {p}/order {o}") for p, o in blocks]
                    + [(p, p + (1 << o), f"live {p}/order {o}") for p, o in st_.live.items()])
        over = [f"{a[2]} and {b[2]}" for a, b in itertools.pairwise(iv) if b[0] < a[1]]
        if over:
            fail("free_blocks_disjoint", "overlapping blocks: " + "; ".join(over[:5]))
        else:
            self.ok("free_blocks_disjoint")
        free_pages = sum(1 << o for _, o in blocks)
        if free_pages + st_.live_pages != n:
            fail("pages_conserved", f"free lists hold {free_pages} pages and {st_.live_pages} "
                 f"are live: {free_pages + st_.live_pages}, not {n}")
        else:
            self.ok("pages_conserved")
        sets = [set(lst) for lst in obs]
        unmerged = [(p, o) for o, s in enumerate(sets[:mo - 1]) for p in sorted(s)
                    if not p & (1 << o) and (p | (1 << o)) in s]
        if unmerged:
            fail("no_unmerged_buddies", "free buddies left unmerged: " + ", ".join(
                f"{p} and {p | (1 << o)} (order {o})" for p, o in unmerged[:5]))
        else:
            self.ok("no_unmerged_buddies")
        missing = [(p, o) for o in range(mo) for p in sorted(st_.free[o])
                   if o >= len(sets) or p not in sets[o]]
        extra = [(p, o) for o, s in enumerate(sets) for p in sorted(s)
                 if o >= mo or p not in st_.free[o]]
        dups = sum(len(lst) for lst in obs) - sum(len(s) for s in sets)
        if missing or extra or dups:
            parts = []
            if missing:
                parts.append(f"missing {_blocks(missing)}")
            if extra:
                parts.append(f"unexpected {_blocks(extra)}")
            if dups:
                parts.append(f"{dups} duplicate entries")
            fail("free_lists_match_model", "free lists differ from the model's: "
                 + "; ".join(parts))
        else:
            self.ok("free_lists_match_model")

    # ---------------------------------------------------------------------------------------
    def trace(self, steps: list[tuple[Message, Message]], failing: int) -> tuple[str, JSON]:
        b = StandaloneBuddy(BuddyConfig(self.nr_pages, self.max_order))
        shadow = BuddySet(self.nr_pages, self.max_order)
        for req, resp in steps[:failing]:
            order = req["order"]
            assert isinstance(order, int)
            if req["op"] == "alloc_pages":
                pfn = resp.get("pfn")
                if is_int(pfn) and 0 <= order < self.max_order:
                    assert isinstance(pfn, int)
                    holder = shadow.containing_free(pfn, order)
                    if holder is not None and not pfn & ((1 << order) - 1):
                        alloc_block_at(b.pgdat, pfn, order)
                        shadow.take(pfn, order, *holder)
            else:
                pfn = req["pfn"]
                assert isinstance(pfn, int)
                if shadow.classify_free(pfn, order) == "ok":
                    shadow.release(pfn, order)
                    b.free(pfn, order)
        req = steps[failing][0]
        order = req["order"]
        assert isinstance(order, int)
        answer: JSON
        with Tracer() as t:
            if req["op"] == "alloc_pages":
                answer = {"pfn": _model_alloc(b, order)}
            else:
                pfn = req["pfn"]
                assert isinstance(pfn, int)
                err = _model_free(b, pfn, order)
                answer = {"ok": True} if err is None else {"error": err}
        text = t.render(show_files=False, max_depth=8)
        if isinstance(answer, dict) and "error" in answer:
            text += f"\n!! the model refuses the call: {answer['error']}"
        return text, answer


def _describe_bad_free(st_: BuddySet, kind: str, pfn: int, order: int) -> str:
    if kind == "double_free":
        return f"pfn {pfn} is free"
    if kind == "interior":
        head = st_.live_block_containing(pfn)
        return f"pfn {pfn} is inside live block {head[0]}/order {head[1]}" if head else kind
    if kind == "wrong_order":
        return f"pfn {pfn} was allocated with order {st_.live[pfn]}"
    if kind == "misaligned":
        return f"pfn {pfn} is not aligned to order {order}"
    if kind == "bad_order":
        return f"order {order} is not below max_order {st_.max_order}"
    return f"the block is not inside [0, {st_.nr_pages})"


def _blocks(blocks: list[tuple[int, int]], limit: int = 8) -> str:
    s = ", ".join(f"{p}/order {o}" for p, o in blocks[:limit])
    return s + (f", ... ({len(blocks)} in all)" if len(blocks) > limit else "")


_BAD_KINDS = ("double_free", "free_wrong_order", "free_misaligned", "free_interior",
              "free_out_of_range", "free_bad_order", "alloc_bad")


def _decode(t: tuple[int, int, int, int], max_order: int) -> Op:
    kind, order, i, flag = t
    if kind < 40:
        return Op("alloc", (order,))
    if kind < 80:
        return Op("free", (i,))
    bad = _BAD_KINDS[(kind - 80) % len(_BAD_KINDS)]
    if bad == "alloc_bad":
        return Op("alloc", (max_order,))
    if bad == "free_wrong_order":
        return Op(bad, (i, flag & 1))
    if bad == "free_out_of_range":
        return Op(bad, (flag,))
    return Op(bad, (i,))


class BuddyTarget(Target):
    name = "buddy"
    description = "the standalone buddy allocator over pfns [0, nr_pages)"
    observations = ("free_lists",)
    checks = CHECKS

    def default_config(self) -> dict[str, JSON]:
        return {"nr_pages": 42, "max_order": 4}

    def validate_config(self, config: dict[str, JSON]) -> dict[str, JSON]:
        full = {**self.default_config(), **config}
        unknown = set(full) - {"nr_pages", "max_order"}
        if unknown:
            raise ValueError(f"unknown buddy config key(s): {', '.join(sorted(unknown))}")
        n = config_int(full, "nr_pages", 1, 1 << 20)
        mo = config_int(full, "max_order", 1, 16)
        if n >> (mo - 1) > MAX_BOOT_BLOCKS:
            # every observation lists every free block: a million of them per step made a
            # run of 20 sequences take minutes and a gigabyte
            raise ValueError(f"nr_pages={n} with max_order={mo} starts with more than "
                             f"{MAX_BOOT_BLOCKS} free blocks; raise max_order or lower "
                             f"nr_pages")
        return full

    def ops(self, config: dict[str, JSON]) -> st.SearchStrategy[Op]:
        mo = config["max_order"]
        assert isinstance(mo, int)
        # (kind, order, index, flag): 40% allocations, 40% frees of live blocks, 20% bad
        # calls; everything shrinks towards alloc(0) and the latest block.
        return st.tuples(st.integers(0, 99), st.integers(0, mo - 1), st.integers(0, 15),
                         st.integers(0, 3)).map(lambda t: _decode(t, mo))

    def random_op(self, config: dict[str, JSON], rng: random.Random) -> Op:
        mo = config["max_order"]
        assert isinstance(mo, int)
        return _decode((rng.randrange(100), rng.randrange(mo), rng.randrange(16),
                        rng.randrange(4)), mo)

    def vector_refs(self, requests: list[Message],
                    responses: list[Message]) -> list[dict[str, JSON] | None]:
        """A free's pfn as "the pfn answered at step k, plus d" where step k allocated the
        block the pfn lies in (the latest such step); literal when there is none."""
        out: list[dict[str, JSON] | None] = []
        for i, req in enumerate(requests):
            ref: dict[str, JSON] | None = None
            if req["op"] == "free_pages":
                pfn = req["pfn"]
                assert isinstance(pfn, int)
                for k in range(i - 1, -1, -1):
                    q, o = responses[k].get("pfn"), requests[k].get("order")
                    if (requests[k]["op"] == "alloc_pages" and isinstance(q, int)
                            and isinstance(o, int) and q <= pfn < q + (1 << o)):
                        ref = {"pfn": {"ref": k, "add": pfn - q}}
                        break
            out.append(ref)
        return out

    def session(self, config: dict[str, JSON], mode: str, observations: frozenset[str],
                tally: Counter[str]) -> Session:
        n, mo = config["nr_pages"], config["max_order"]
        assert isinstance(n, int) and isinstance(mo, int)
        return BuddySession(n, mo, mode, observations, tally)
