"""The model's stand-in for mm->mm_rb: an ordered index of the VMAs with free-gap summaries.

5.10 keeps the VMAs in an augmented rbtree keyed by vm_start whose nodes carry
``rb_subtree_gap`` (the largest free gap below any VMA of the subtree), so that find_vma and
the vm_unmapped_area gap search are O(log n). The model gives the same answers with a blocked
sorted list: bisect on the blocks' first keys, then inside one block of at most
``_BLOCK_MAX`` VMAs. Every VMA's gap (vma_compute_gap) is stored beside it, each block keeps
its largest gap, and a max segment tree over the blocks finds the nearest block with a gap
that fits in O(log n). The gap below the lowest VMA is kept out of the block maxima: top-down
mmaps land there whenever no hole above fits, so it changes on most of them, and leaving it
out of the tree makes that update O(1); the searches try it last, as the walk would. The
``vm_next``/``vm_prev`` list and ``mm->mmap`` are kept by mm/mmap.c's own functions, as in
5.10; this index only answers ordered queries.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from typing import TYPE_CHECKING

from refmodel.mm.vm_flags import VM_GROWSDOWN

if TYPE_CHECKING:
    from refmodel.mm.mm_types import vm_area_struct

_BLOCK_MAX = 64
_BLOCK_MIN = 8
_STACK_GUARD_GAP = 256 << 12


class VmaIndex:
    """VMAs ordered by vm_start (model of mm_rb and its rb_subtree_gap augmentation).

    ``_gaps[b][j]`` is vma_compute_gap of the j-th VMA of block b (its vm_start_gap minus
    its predecessor's vm_end), kept current by every update; ``_gapmax[b]`` is the block's
    largest gap (block 0 leaving out the lowest VMA's, 0 if none is left); ``_tree`` is a
    max segment tree over ``_gapmax`` (leaves at ``_cap + b``), brought up to date by the
    gap search only: ``_stale`` lists the blocks whose maximum changed since, so that a hole
    made and filled again between two searches costs no tree walk.
    """

    __slots__ = ("_blocks", "_cap", "_count", "_firsts", "_gapmax", "_gaps", "_keys", "_stale",
                 "_tree", "guard")

    def __init__(self, guard: int = _STACK_GUARD_GAP) -> None:
        self._blocks: list[list[vm_area_struct]] = []
        self._keys: list[list[int]] = []
        self._gaps: list[list[int]] = []
        self._firsts: list[int] = []
        self._gapmax: list[int] = []
        self._tree: list[int] = [-1, -1]
        self._stale: list[int] = []
        self._cap = 1
        self._count = 0
        self.guard = guard  # stack_guard_gap, for vm_start_gap of VM_GROWSDOWN VMAs

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[vm_area_struct]:
        for blk in self._blocks:
            yield from blk

    def snapshot(self) -> list[vm_area_struct]:
        """Every VMA in address order."""
        return [v for blk in self._blocks for v in blk]

    # ---------------------------------------------------------------- look-ups
    # The hot paths below inline vm_start_gap and the position look-up: they run several
    # times per mmap/munmap/mprotect, and Python calls dominate their cost.
    def find(self, addr: int) -> vm_area_struct | None:
        """find_vma's answer: the first VMA with vm_end > addr."""
        firsts = self._firsts
        b = bisect_right(firsts, addr) - 1
        if b < 0:
            return self._blocks[0][0] if firsts else None
        blk = self._blocks[b]
        j = bisect_right(self._keys[b], addr)  # the VMA at j - 1 starts at or below addr
        v = blk[j - 1]
        if v.vm_end > addr:
            return v
        if j < len(blk):
            return blk[j]
        b += 1
        return self._blocks[b][0] if b < len(firsts) else None

    def _locate(self, start: int) -> tuple[int, int]:
        b = bisect_right(self._firsts, start) - 1
        j = bisect_right(self._keys[b], start) - 1
        return b, j

    def first(self) -> vm_area_struct | None:
        return self._blocks[0][0] if self._blocks else None

    def last(self) -> vm_area_struct | None:
        return self._blocks[-1][-1] if self._blocks else None

    # ---------------------------------------------------------------- gap summaries
    def _start_gap(self, v: vm_area_struct) -> int:
        """include/linux/mm.h:vm_start_gap."""
        s: int = v.vm_start
        if v.vm_flags & VM_GROWSDOWN:
            s -= self.guard
            if s < 0:
                s = 0
        return s

    def _rebuild(self) -> None:
        """Blocks were added, split, merged or dropped: rebuild the tree over them."""
        gapmax = self._gapmax
        nb = len(gapmax)
        cap = 1
        while cap < nb:
            cap <<= 1
        tree = [-1] * (2 * cap)
        tree[cap:cap + nb] = gapmax
        # level by level, over the nodes above real blocks only (the rest stay -1)
        lo, hi = cap, cap + nb
        while lo > 1:
            hi += hi & 1
            left, right = tree[lo:hi:2], tree[lo + 1:hi:2]
            lo >>= 1
            hi >>= 1
            tree[lo:hi] = [a if a > c else c for a, c in zip(left, right, strict=True)]
        self._tree = tree
        self._cap = cap
        self._stale.clear()

    def _sync_tree(self) -> None:
        """Carry the changed block maxima up the tree."""
        tree = self._tree
        cap = self._cap
        gapmax = self._gapmax
        for b in self._stale:
            g = gapmax[b]
            i = cap + b
            old = tree[i]
            if old == g:
                continue
            tree[i] = g
            if g > old:
                i >>= 1
                while i and tree[i] < g:
                    tree[i] = g
                    i >>= 1
            else:
                # going up from node i, whose value fell from old to g: its parent held old
                # and falls too unless i's sibling holds old (or more)
                while i > 1:
                    sib = tree[i ^ 1]
                    if sib >= old:
                        break
                    if sib > g:
                        g = sib
                    i >>= 1
                    tree[i] = g
        self._stale.clear()

    def _block_max(self, b: int) -> int:
        """What ``_gapmax[b]`` should be (block 0 leaves out the lowest VMA's gap)."""
        gaps = self._gaps[b]
        if b:
            return max(gaps)
        return max(gaps[1:]) if len(gaps) > 1 else 0

    def _set_gap(self, b: int, j: int) -> None:
        """Recompute vma_compute_gap of the VMA at (b, j) from its index predecessor."""
        blk = self._blocks[b]
        v = blk[j]
        if j:
            pe = blk[j - 1].vm_end
        elif b:
            pe = self._blocks[b - 1][-1].vm_end
        else:
            pe = 0
        g = v.vm_start
        if v.vm_flags & VM_GROWSDOWN:
            g -= self.guard
            if g < 0:
                g = 0
        g = g - pe if g > pe else 0
        gaps = self._gaps[b]
        old = gaps[j]
        if old == g:
            return
        gaps[j] = g
        if not (b or j):
            return  # the lowest VMA's gap is not in the maxima
        gapmax = self._gapmax
        gm = gapmax[b]
        if g > gm:  # (the tree learns a changed maximum at the next search)
            gapmax[b] = g
            self._stale.append(b)
        elif old == gm:
            m = max(gaps) if b else max(gaps[1:])
            if m != gm:
                gapmax[b] = m
                self._stale.append(b)

    # ---------------------------------------------------------------- updates
    def insert(self, vma: vm_area_struct) -> None:
        """Add ``vma`` (its range must not overlap any indexed VMA)."""
        start = vma.vm_start
        firsts = self._firsts
        if not firsts:
            self._blocks.append([vma])
            self._keys.append([start])
            self._gaps.append([0])
            firsts.append(start)
            self._gapmax.append(0)
            self._count = 1
            self._rebuild()
            self._set_gap(0, 0)
            return
        b = bisect_right(firsts, start) - 1
        if b < 0:
            b = 0
        ks = self._keys[b]
        blk = self._blocks[b]
        j = bisect_right(ks, start)
        ks.insert(j, start)
        blk.insert(j, vma)
        gaps = self._gaps[b]
        gaps.insert(j, 0)
        if j == 0:
            firsts[b] = start
        self._count += 1
        # The new VMA's gap, worked out here (_set_gap's work, less what its zeroed slot
        # makes needless): the block maximum can only rise. When the new VMA is the
        # lowest, the one it displaces joins the maxima through the _set_gap below, whose
        # update is right whatever that gap held before.
        pe = blk[j - 1].vm_end if j else self._blocks[b - 1][-1].vm_end if b else 0
        g = start if not vma.vm_flags & VM_GROWSDOWN else max(start - self.guard, 0)
        if g > pe:
            g -= pe
            gaps[j] = g
            if g > self._gapmax[b] and (b or j):
                self._gapmax[b] = g
                self._stale.append(b)
        n = len(blk)
        if j + 1 < n:
            self._set_gap(b, j + 1)
        elif b + 1 < len(firsts):
            self._set_gap(b + 1, 0)
        if n > _BLOCK_MAX:
            half = n // 2
            lo, hi = gaps[:half], gaps[half:]
            self._blocks[b:b + 1] = [blk[:half], blk[half:]]
            self._keys[b:b + 1] = [ks[:half], ks[half:]]
            self._gaps[b:b + 1] = [lo, hi]
            firsts[b:b + 1] = [ks[0], ks[half]]
            self._gapmax[b:b + 1] = [max(lo) if b else max(lo[1:]), max(hi)]
            self._rebuild()

    def _after_cut(self, b: int, j: int, cut: int) -> None:
        """VMAs whose largest gap was ``cut`` were taken out of block b at j, and the block
        is not empty: fix its head key, its maximum, and the gap of the VMA now after."""
        firsts = self._firsts
        if j == 0:
            firsts[b] = self._keys[b][0]
        gapmax = self._gapmax
        gm = gapmax[b]
        # the largest gap may have been cut out, or (cut from the lowest VMA on) the next
        # VMA's gap leaves the maxima; a largest gap of 0 (most blocks) cannot fall
        if gm and (cut == gm or not (b or j)):
            m = max(self._gaps[b]) if b else self._block_max(0)
            if m != gm:
                gapmax[b] = m
                self._stale.append(b)
        if j < len(self._blocks[b]):
            self._set_gap(b, j)
        elif b + 1 < len(firsts):
            self._set_gap(b + 1, 0)

    def remove(self, vma: vm_area_struct) -> None:
        """Drop ``vma``, found by its current vm_start; the gap below the VMA after it is
        brought up to date (vma_gap_update of the next VMA: callers need not ask)."""
        start = vma.vm_start
        firsts = self._firsts
        b = bisect_right(firsts, start) - 1
        ks = self._keys[b]
        j = bisect_right(ks, start) - 1
        blk = self._blocks[b]
        if j < 0 or blk[j] is not vma:
            raise KeyError(f"VMA [{vma.vm_start:#x}, {vma.vm_end:#x}) is not in the index")
        del blk[j]
        del ks[j]
        gaps = self._gaps[b]
        old = gaps.pop(j)
        self._count -= 1
        if not blk:
            del self._blocks[b], self._keys[b], self._gaps[b], firsts[b]
            del self._gapmax[b]
            if b == 0 and firsts:
                self._gapmax[0] = self._block_max(0)  # its first VMA is now the lowest
            self._rebuild()
            if b < len(firsts):
                self._set_gap(b, 0)
            return
        self._after_cut(b, j, old)
        if len(blk) < _BLOCK_MIN and b + 1 < len(firsts):
            nxt = self._blocks[b + 1]
            if len(blk) + len(nxt) <= _BLOCK_MAX:
                blk.extend(nxt)
                ks.extend(self._keys[b + 1])
                gaps.extend(self._gaps[b + 1])
                g2 = self._gapmax[b + 1]
                del self._blocks[b + 1], self._keys[b + 1], self._gaps[b + 1]
                del firsts[b + 1], self._gapmax[b + 1]
                if g2 > self._gapmax[b]:
                    self._gapmax[b] = g2
                self._rebuild()

    def remove_run(self, vmas: list[vm_area_struct]) -> None:
        """Drop VMAs that follow each other in the index, as ``remove`` on each would; a run
        inside one block that stays above ``_BLOCK_MIN`` is cut out at once."""
        n = len(vmas)
        if n > 1:
            start = vmas[0].vm_start
            firsts = self._firsts
            b = bisect_right(firsts, start) - 1
            ks = self._keys[b]
            j = bisect_right(ks, start) - 1
            blk = self._blocks[b]
            k = j + n
            # (not from the lowest VMA on: its gap is outside the maxima)
            if (b or j > 0) and len(blk) - n >= _BLOCK_MIN and blk[j:k] == vmas:
                del blk[j:k]
                del ks[j:k]
                gaps = self._gaps[b]
                cut = max(gaps[j:k])
                del gaps[j:k]
                self._count -= n
                self._after_cut(b, j, cut)
                return
        for v in vmas:
            self.remove(v)

    def rekey(self, vma: vm_area_struct, old_start: int, gap: bool = True) -> None:
        """``vma->vm_start`` changed from ``old_start`` without changing the order; the gap
        below it is brought up to date unless ``gap`` is false (the caller is about to
        insert the VMA that ends at its new start, and insert does it)."""
        b = bisect_right(self._firsts, old_start) - 1
        ks = self._keys[b]
        j = bisect_right(ks, old_start) - 1
        if j < 0 or self._blocks[b][j] is not vma:
            raise KeyError(f"no VMA at {old_start:#x} in the index")
        start = vma.vm_start
        ks[j] = start
        if j == 0:
            self._firsts[b] = start
        if gap:
            self._set_gap(b, j)

    def gap_changed(self, vma: vm_area_struct) -> None:
        """vma_gap_update: the gap below ``vma`` changed (its predecessor's vm_end moved)."""
        start = vma.vm_start
        b = bisect_right(self._firsts, start) - 1
        self._set_gap(b, bisect_right(self._keys[b], start) - 1)

    # ---------------------------------------------------------------- gap search
    def _rightmost_block_fitting(self, b0: int, length: int) -> int:
        """The highest block index <= b0 whose largest gap is >= length, or -1."""
        if self._stale:
            self._sync_tree()
        tree = self._tree
        if b0 < 0 or tree[1] < length:
            return -1
        cap = self._cap
        i = cap + b0
        # step left along the tree (up past left children) to the nearest fitting node
        while tree[i] < length:
            while not i & 1:
                i >>= 1
            if i == 1:
                return -1
            i -= 1
        # then down to its rightmost fitting leaf
        while i < cap:
            i = 2 * i + 1
            if tree[i] < length:
                i -= 1
        return i - cap

    def search_topdown(self, length: int, low_limit: int, high_limit: int
                       ) -> vm_area_struct | None:
        """The highest VMA whose gap below fits (unmapped_area_topdown's rbtree walk).

        ``low_limit``/``high_limit`` are already adjusted by the length as in 5.10: a gap
        [gap_start, gap_end) fits if gap_start <= high_limit, gap_end - gap_start >= length
        and gap_end >= low_limit; the walk ends at the first gap ending below low_limit.
        """
        # (b, j): the position of find(high_limit); the VMAs from there down all have
        # gap_start <= high_limit (the one at (b, j)'s predecessor ends at or below it)
        firsts = self._firsts
        b = bisect_right(firsts, high_limit) - 1
        if b < 0:
            if not firsts:
                return None
            b = j = 0
        else:
            j = bisect_right(self._keys[b], high_limit) - 1
            blk = self._blocks[b]
            if blk[j].vm_end <= high_limit:
                j += 1
                if j == len(blk):
                    b += 1
                    if b == len(firsts):
                        return None
                    j = 0
        gaps = self._gaps[b]
        lo = 0 if b else 1  # the lowest VMA's gap is tried last
        if (j < lo or self._gapmax[b] < length
                or (j + 1 < len(gaps) and max(gaps[lo:j + 1]) < length)):
            b = self._rightmost_block_fitting(b - 1, length)
            if b < 0:
                b = j = 0
                gaps = self._gaps[0]
                if gaps[0] < length:
                    return None
            else:
                gaps = self._gaps[b]
                j = len(gaps) - 1
        for k in range(j, -1, -1):
            if gaps[k] >= length:
                break
        v = self._blocks[b][k]
        # The walk stops at the first gap ending below low_limit; gap ends only fall as
        # it descends, so testing the first fitting gap is the same.
        g = v.vm_start
        if v.vm_flags & VM_GROWSDOWN:
            g -= self.guard
            if g < 0:
                g = 0
        return None if g < low_limit else v

    def search_bottomup(self, length: int, low_limit: int, high_limit: int
                        ) -> tuple[bool, vm_area_struct | None]:
        """The lowest VMA whose gap below fits (unmapped_area's rbtree walk).

        Returns (False, None) when the walk ends in -ENOMEM (a gap starting above
        high_limit), (True, vma) when a gap fits, (True, None) when only the gap above the
        last VMA remains to be tried.
        """
        w = self.find(low_limit)
        if w is None:
            return True, None
        b, j = self._locate(w.vm_start)
        blocks = self._blocks
        nb = len(blocks)
        while b < nb:
            blk = blocks[b]
            p0 = blk[j].vm_prev
            if (p0.vm_end if p0 is not None else 0) > high_limit:
                return False, None
            if j > 0 or self._gapmax[b] >= length or (b == 0 and self._gaps[0][0] >= length):
                gaps = self._gaps[b]
                n = len(blk)
                while j < n:
                    v = blk[j]
                    p = v.vm_prev
                    gap_start = p.vm_end if p is not None else 0
                    if gap_start > high_limit:
                        return False, None
                    if gaps[j] >= length and self._start_gap(v) >= low_limit:
                        return True, v
                    j += 1
            b += 1
            j = 0
        return True, None

    # ---------------------------------------------------------------- self-check
    def fingerprint(self) -> tuple[object, ...]:
        """A comparable copy of the whole index (VMAs by identity), for a checker that
        skips validate() while nothing in it changed."""
        return (self._cap, self._count, self.guard, self._firsts[:], self._gapmax[:],
                self._tree[:], self._stale[:], [b[:] for b in self._blocks],
                [k[:] for k in self._keys], [g[:] for g in self._gaps])

    def validate(self) -> list[str]:
        """validate_mm_rb's checks for this index: keys are the VMAs' starts in order, every
        stored gap is vma_compute_gap, block maxima and the tree over them are exact (but
        for the blocks waiting in ``_stale``)."""
        out: list[str] = []
        prev_end = 0
        prev_start = -1
        for b, blk in enumerate(self._blocks):
            if not blk:
                out.append(f"block {b} is empty")
                continue
            if self._firsts[b] != blk[0].vm_start:
                out.append(f"block {b}: head key {self._firsts[b]:#x} is stale")
            for j, v in enumerate(blk):
                if self._keys[b][j] != v.vm_start:
                    out.append(f"key of {v} is {self._keys[b][j]:#x}")
                if v.vm_start <= prev_start:
                    out.append(f"{v} is out of order")
                g = self._start_gap(v)
                g = g - prev_end if g > prev_end else 0
                if self._gaps[b][j] != g:
                    out.append(f"gap below {v} is {self._gaps[b][j]:#x}, should be {g:#x}")
                prev_end = v.vm_end
                prev_start = v.vm_start
            if self._gapmax[b] != self._block_max(b):
                out.append(f"block {b}: max gap {self._gapmax[b]:#x} is wrong")
            if self._tree[self._cap + b] != self._gapmax[b] and b not in self._stale:
                out.append(f"block {b}: tree leaf is stale")
        for i in range(1, self._cap):
            if self._tree[i] != max(self._tree[2 * i], self._tree[2 * i + 1]):
                out.append(f"tree node {i} is not the max of its children")
        if sum(len(blk) for blk in self._blocks) != self._count:
            out.append("count is wrong")
        return out
