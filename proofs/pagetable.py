"""Proofs of the x86-64 page-table arithmetic in refmodel.arch.x86, for both paging modes.

Each proof runs the model's own functions (pgd_index ... pte_index, pgtable_address,
__canonical_address, PAGE_ALIGN, pfn_pte / pte_pfn, pgd_offset ... pte_offset_map) on 64-bit
z3 bit-vectors and compares them with an independent statement written with z3's own
operators (LShR, SignExt, Extract, unsigned comparisons):

  * index_bijection: the indices of a canonical address recompose to it, and every tuple
    of in-range indices and page offset composes to a canonical address with those indices;
  * canonical_is_sign_extension: the canonical check holds exactly when bits 63..47 (63..56)
    are copies of bit 47 (56), and __canonical_address is that sign extension;
  * index_is_shift_and_mask: each *_index is the logical shift of its level and mask;
  * page_align_least_multiple: PAGE_ALIGN is the least page multiple at or above its input
    unless the input is above the last page, which is exactly when overflow is reported;
  * pte_pfn_roundtrip: pte_pfn(pfn_pte(pfn, prot)) == pfn for every 40-bit pfn and every
    non-zero protection without pfn bits (PROT_NONE's inverted pfn included), and the pte's
    flag bits are exactly the checked protection (no pfn bit in the flags, no flag in the pfn);
  * walk_lands_on_entry: over arbitrary table contents, pgd_offset → p4d_offset → pud_offset
    → pmd_offset → pte_offset_map reaches, at every level, the entry the address's index
    names in the table the entry above points to.

Found by z3 on the way (and kept as a precondition of pte_pfn_roundtrip): pfn_pte with a
protection of 0 and a non-zero pfn gives a non-present, non-zero pte, which pte_pfn reads
inverted — exactly what 5.10's pgtable-invert.h does with such a pte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import z3

from refmodel.arch.x86.pgtable import (
    entry_ptr,
    p4d_index,
    p4d_offset,
    pfn_pte,
    pgd_index,
    pgd_offset,
    pgtable_address,
    pmd_index,
    pmd_offset,
    pmd_page_vaddr,
    pte_index,
    pte_offset_map,
    pte_pfn,
    pud_index,
    pud_offset,
    read_entry,
)
from refmodel.arch.x86.pgtable_types import (
    MASK64,
    P4D_SHIFT,
    PAGE_ALIGN,
    PAGE_SHIFT,
    PAGE_SIZE,
    PFN_BITS,
    PGDIR_SHIFT,
    PMD_SHIFT,
    PTE_FLAGS_MASK,
    PTE_PFN_MASK,
    PTRS_PER_P4D,
    PUD_SHIFT,
    BitOps,
    PAGE_ALIGN_overflows,
    __canonical_address,
    check_pgprot,
    is_canonical_address,
    vaddr_bits,
)
from refmodel.mm.mm_types import mm_struct
from refmodel.proofs import Proof
from refmodel.proofs.z3util import bv, counterexample

MODES = (4, 5)

def _as_bv(x: object) -> object:
    return z3.BitVecVal(x, 64) if isinstance(x, int) else x


def _z3_ite(c: object, a: object, b: object) -> object:
    return z3.If(c, _as_bv(a), _as_bv(b))


Z3_OPS = BitOps(
    ite=_z3_ite,  # type: ignore[arg-type]
    ult=z3.ULT,
    and_=z3.And,
    not_=z3.Not,
)


def _z(x: object) -> z3.BitVecRef:
    """A model function's result seen as the bit-vector it is when given bit-vectors."""
    return cast(z3.BitVecRef, x)


def _f(fn: Callable[..., object], *args: object) -> z3.BitVecRef:
    return _z(fn(*args))


# --------------------------------------------------------------------------------------------
# index extraction and recomposition

Indices = Callable[[z3.BitVecRef, int], tuple[z3.BitVecRef, ...]]
Compose = Callable[[int, tuple[z3.BitVecRef, ...], z3.BitVecRef], z3.BitVecRef]


def _indices(addr: z3.BitVecRef, levels: int) -> tuple[z3.BitVecRef, ...]:
    return (_f(pgd_index, addr, levels), _f(p4d_index, addr, levels), _f(pud_index, addr),
            _f(pmd_index, addr), _f(pte_index, addr))


def _compose(levels: int, idx: tuple[z3.BitVecRef, ...], offset: z3.BitVecRef) -> z3.BitVecRef:
    return _f(pgtable_address, levels, *idx, offset)


def _broken_compose(levels: int, idx: tuple[z3.BitVecRef, ...],
                    offset: z3.BitVecRef) -> z3.BitVecRef:
    # the classic mistake: forget to sign-extend, so kernel-half addresses come out wrong
    g, p, u, m, t = idx
    return ((g << PGDIR_SHIFT(levels)) | (p << P4D_SHIFT) | (u << PUD_SHIFT) | (m << PMD_SHIFT)
            | (t << PAGE_SHIFT) | offset)


def check_index_bijection(indices: Indices, compose: Compose) -> str | None:
    for levels in MODES:
        addr = bv("addr")
        canon_b = cast(z3.BoolRef, is_canonical_address(addr, levels))
        back = compose(levels, indices(addr, levels), addr & (PAGE_SIZE - 1))
        cex = counterexample(back == addr, [canon_b], addr)
        if cex:
            return f"{levels}-level: recompose(indices(addr)) != addr for {cex}"
        names = ("pgd_i", "p4d_i", "pud_i", "pmd_i", "pte_i")
        idx = tuple(bv(n) for n in names)
        off = bv("offset")
        limits = [512, PTRS_PER_P4D(levels), 512, 512, 512]
        pre = [z3.ULT(i, lim) for i, lim in zip(idx, limits, strict=True)]
        pre.append(z3.ULT(off, PAGE_SIZE))
        a = compose(levels, idx, off)
        got = indices(a, levels)
        claim = z3.And(*(g == i for g, i in zip(got, idx, strict=True)),
                       a & (PAGE_SIZE - 1) == off,
                       cast(z3.BoolRef, is_canonical_address(a, levels)))
        cex = counterexample(claim, pre, *idx, off)
        if cex:
            return f"{levels}-level: indices(compose(...)) differ for {cex}"
    return None


# --------------------------------------------------------------------------------------------
# canonical addresses

CanonFn = Callable[[z3.BitVecRef, int], z3.BitVecRef]


def _canonical(addr: z3.BitVecRef, bits: int) -> z3.BitVecRef:
    return _f(__canonical_address, addr, bits)


def _broken_canonical(addr: z3.BitVecRef, bits: int) -> z3.BitVecRef:
    return _f(__canonical_address, addr, bits + 1)  # sign bit one too high


def check_canonical(canon: CanonFn) -> str | None:
    for levels in MODES:
        bits = vaddr_bits(levels)
        addr = bv("addr")
        sext = z3.SignExt(64 - bits, z3.Extract(bits - 1, 0, addr))
        top = z3.Extract(63, bits - 1, addr)
        all_same = z3.Or(top == 0, top == (1 << (65 - bits)) - 1)
        claim = z3.And(canon(addr, bits) == sext, (canon(addr, bits) == addr) == all_same)
        cex = counterexample(claim, [], addr)
        if cex:
            return f"{levels}-level: {cex}"
    return None


# --------------------------------------------------------------------------------------------
# *_index == shift and mask

IndexFns = dict[str, Callable[[z3.BitVecRef], z3.BitVecRef]]


def _index_fns(levels: int) -> IndexFns:
    return {"pgd": lambda a: _f(pgd_index, a, levels), "p4d": lambda a: _f(p4d_index, a, levels),
            "pud": lambda a: _f(pud_index, a), "pmd": lambda a: _f(pmd_index, a),
            "pte": lambda a: _f(pte_index, a)}


def _broken_index_fns(levels: int) -> IndexFns:
    fns = _index_fns(levels)
    fns["pmd"] = lambda a: (a >> 20) & 511  # off-by-one shift
    return fns


def check_index_shift_mask(fns_of: Callable[[int], IndexFns]) -> str | None:
    for levels in MODES:
        spec = {"pgd": (PGDIR_SHIFT(levels), 512), "p4d": (P4D_SHIFT, PTRS_PER_P4D(levels)),
                "pud": (PUD_SHIFT, 512), "pmd": (PMD_SHIFT, 512), "pte": (PAGE_SHIFT, 512)}
        fns = fns_of(levels)
        for name, (shift, n) in spec.items():
            addr = bv("addr")
            cex = counterexample(fns[name](addr) == z3.LShR(addr, shift) & (n - 1), [], addr)
            if cex:
                return f"{levels}-level {name}_index: {cex}"
    return None


# --------------------------------------------------------------------------------------------
# PAGE_ALIGN


def _broken_page_align(addr: z3.BitVecRef) -> z3.BitVecRef:
    return (addr + PAGE_SIZE) & (MASK64 & ~(PAGE_SIZE - 1))  # one page too far when aligned


def check_page_align(align: Callable[[z3.BitVecRef], z3.BitVecRef]) -> str | None:
    addr = bv("addr")
    r = align(addr)
    last_page = MASK64 & ~(PAGE_SIZE - 1)
    overflow = cast(z3.BoolRef, PAGE_ALIGN_overflows(addr, Z3_OPS))
    claim = z3.And(
        overflow == z3.UGT(addr, last_page),
        z3.Implies(z3.Not(overflow), z3.And(r & (PAGE_SIZE - 1) == 0, z3.UGE(r, addr),
                                            z3.ULT(r - addr, PAGE_SIZE))),
    )
    return counterexample(claim, [], addr, r)


# --------------------------------------------------------------------------------------------
# mk_pte / pte_pfn


def _pfn_pte(pfn: z3.BitVecRef, prot: z3.BitVecRef) -> z3.BitVecRef:
    return _z(pfn_pte(pfn, prot, Z3_OPS))


def _pte_pfn(pte: z3.BitVecRef) -> z3.BitVecRef:
    return _z(pte_pfn(pte, Z3_OPS))


def _broken_pte_pfn(pte: z3.BitVecRef) -> z3.BitVecRef:
    return z3.LShR(pte & ((1 << 52) - 1), PAGE_SHIFT)  # low flag bits leak into the pfn


def check_pte_roundtrip(mk: Callable[[z3.BitVecRef, z3.BitVecRef], z3.BitVecRef],
                        get: Callable[[z3.BitVecRef], z3.BitVecRef]) -> str | None:
    pfn, prot = bv("pfn"), bv("prot")
    pre = [z3.ULT(pfn, 1 << PFN_BITS), prot & PTE_PFN_MASK == 0, prot != 0]
    pte = mk(pfn, prot)
    checked = _z(check_pgprot(prot, Z3_OPS))
    claim = z3.And(get(pte) == pfn, pte & PTE_FLAGS_MASK == checked)
    return counterexample(claim, pre, pfn, prot)


# --------------------------------------------------------------------------------------------
# a walk through *_offset, over arbitrary table contents


class _Row:
    def __init__(self, mem: z3.FuncDeclRef, table: z3.BitVecRef) -> None:
        self.mem, self.table = mem, table

    def get(self, idx: z3.BitVecRef, default: int) -> z3.BitVecRef:
        return cast(z3.BitVecRef, self.mem(self.table, idx))

    def __getitem__(self, idx: z3.BitVecRef) -> z3.BitVecRef:  # the *_offset reads subscript
        return cast(z3.BitVecRef, self.mem(self.table, idx))


class _Tables:
    def __init__(self, mem: z3.FuncDeclRef) -> None:
        self.mem = mem

    def get(self, table: z3.BitVecRef, default: object) -> _Row:
        return _Row(self.mem, table)

    def __getitem__(self, table: z3.BitVecRef) -> _Row:  # every table exists: no KeyError
        return _Row(self.mem, table)


@dataclass
class _SymbolicNode:
    """Just enough of a pglist_data for the *_offset functions: the paging mode and table
    contents that are an uninterpreted function of (table pfn, index)."""

    paging_levels: int
    pgtables: _Tables


PteOffset = Callable[[object, z3.BitVecRef, z3.BitVecRef], z3.BitVecRef]


def _pte_offset(node: object, pmd: z3.BitVecRef, addr: z3.BitVecRef) -> z3.BitVecRef:
    return _f(pte_offset_map, node, pmd, addr)


def _broken_pte_offset(node: object, pmd: z3.BitVecRef, addr: z3.BitVecRef) -> z3.BitVecRef:
    pmdval = cast(z3.BitVecRef, read_entry(node, pmd))  # type: ignore[arg-type]
    return _f(entry_ptr, pmd_page_vaddr(pmdval), pmd_index(addr))


def check_walk(pte_off: PteOffset) -> str | None:
    for levels in MODES:
        mem = z3.Function("mem", z3.BitVecSort(64), z3.BitVecSort(64), z3.BitVecSort(64))
        node = _SymbolicNode(levels, _Tables(mem))
        addr, pgd_pfn = bv("addr"), bv("pgd_pfn")
        mm = mm_struct(paging_levels=levels, pgd=pgd_pfn)
        pgdp = _f(pgd_offset, mm, addr)
        p4dp = _f(p4d_offset, node, pgdp, addr)
        pudp = _f(pud_offset, node, p4dp, addr)
        pmdp = _f(pmd_offset, node, pudp, addr)
        ptep = pte_off(node, pmdp, addr)

        def lands(ptr: z3.BitVecRef, table_pfn: z3.BitVecRef, index: z3.BitVecRef) -> z3.BoolRef:
            return z3.And(z3.LShR(ptr, PAGE_SHIFT) == table_pfn,
                          z3.LShR(ptr & (PAGE_SIZE - 1), 3) == index)

        def below(ptr: z3.BitVecRef, mem: z3.FuncDeclRef = mem) -> z3.BitVecRef:
            # the pfn of the table the entry at ``ptr`` points to
            return z3.LShR(mem(z3.LShR(ptr, PAGE_SHIFT), z3.LShR(ptr & (PAGE_SIZE - 1), 3))
                           & PTE_PFN_MASK, PAGE_SHIFT)

        claims = [lands(pgdp, pgd_pfn, z3.LShR(addr, PGDIR_SHIFT(levels)) & 511)]
        if levels == 5:
            claims.append(lands(p4dp, below(pgdp), z3.LShR(addr, P4D_SHIFT) & 511))
        else:
            claims.append(p4dp == pgdp)  # the folded p4d is the pgd entry
        claims += [lands(pudp, below(p4dp), z3.LShR(addr, PUD_SHIFT) & 511),
                   lands(pmdp, below(pudp), z3.LShR(addr, PMD_SHIFT) & 511),
                   lands(ptep, below(pmdp), z3.LShR(addr, PAGE_SHIFT) & 511)]
        cex = counterexample(z3.And(*claims), [z3.ULT(pgd_pfn, 1 << PFN_BITS)], addr, pgd_pfn)
        if cex:
            return f"{levels}-level: {cex}"
    return None


PROOFS = [
    Proof("pagetable.index_bijection",
          lambda: check_index_bijection(_indices, _compose),
          lambda: check_index_bijection(_indices, _broken_compose)),
    Proof("pagetable.canonical_is_sign_extension",
          lambda: check_canonical(_canonical),
          lambda: check_canonical(_broken_canonical)),
    Proof("pagetable.index_is_shift_and_mask",
          lambda: check_index_shift_mask(_index_fns),
          lambda: check_index_shift_mask(_broken_index_fns)),
    Proof("pagetable.page_align_least_multiple",
          lambda: check_page_align(lambda a: _f(PAGE_ALIGN, a)),
          lambda: check_page_align(_broken_page_align)),
    Proof("pagetable.pte_pfn_roundtrip",
          lambda: check_pte_roundtrip(_pfn_pte, _pte_pfn),
          lambda: check_pte_roundtrip(_pfn_pte, _broken_pte_pfn)),
    Proof("pagetable.walk_lands_on_entry",
          lambda: check_walk(_pte_offset),
          lambda: check_walk(_broken_pte_offset)),
]
