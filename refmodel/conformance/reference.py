"""The model itself as an implementation of each target (through the Python adapter).

Used to generate the strict vectors (the model's own answers), by the kit's self-test (the
model conforms to itself in strict mode), and as the baseline of the examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from refmodel.bugs import KernelBug
from refmodel.config import BuddyConfig
from refmodel.conformance.adapter import Fault, Refused, Signal, Translation
from refmodel.conformance.protocol import JSON
from refmodel.conformance.targets.buddy import model_free_lists
from refmodel.conformance.targets.pagetable import PageTableModel
from refmodel.conformance.targets.vma import VmaModel
from refmodel.machine import StandaloneBuddy


class ModelBuddy:
    """:class:`~refmodel.machine.StandaloneBuddy` behind the ``buddy`` adapter protocol."""

    def __init__(self, nr_pages: int, max_order: int) -> None:
        self.b = StandaloneBuddy(BuddyConfig(nr_pages, max_order))

    def alloc_pages(self, order: int) -> int | None:
        try:
            return self.b.alloc(order)
        except KernelBug:
            return None

    def free_pages(self, pfn: int, order: int) -> None:
        try:
            self.b.free(pfn, order)
        except KernelBug as e:
            raise Refused(e.check) from None

    def free_lists(self) -> Sequence[Sequence[int]]:
        return model_free_lists(self.b)


class ModelPageTable:
    """:class:`~refmodel.conformance.targets.pagetable.PageTableModel` behind the
    ``pagetable`` adapter protocol."""

    def __init__(self, paging_levels: int) -> None:
        self.m = PageTableModel(paging_levels)

    def _do(self, err: str | None) -> None:
        if err is not None:
            raise Refused(err)

    def map(self, address: int, pfn: int, flags: int) -> None:
        self._do(self.m.map(address, pfn, flags))

    def unmap(self, address: int) -> None:
        self._do(self.m.unmap(address))

    def protect(self, address: int, flags: int) -> None:
        self._do(self.m.protect(address, flags))

    def translate(self, address: int) -> Translation | Fault:
        t = self.m.translate(address)
        fault = t.get("fault")
        if isinstance(fault, str):
            return Fault(fault)
        pfn, phys, pte = t["pfn"], t["phys"], t["pte"]
        assert isinstance(pfn, int) and isinstance(phys, int) and isinstance(pte, int)
        return Translation(pfn, phys, bool(t["writable"]), bool(t["user"]),
                           bool(t["executable"]), pte)

    def entries(self) -> Sequence[tuple[int, int]]:
        return [(a, p) for a, p in self.m.entries()]

    def tables(self) -> Mapping[str, int]:
        return self.m.tables()


class ModelVma:
    """:class:`~refmodel.conformance.targets.vma.VmaModel` behind the ``vma`` adapter
    protocol."""

    def __init__(self, paging_levels: int) -> None:
        self.m = VmaModel(paging_levels)

    def _ret(self, req: dict[str, JSON]) -> int:
        ret = self.m.apply(req)["ret"]
        assert isinstance(ret, int)
        return ret

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        return self._ret({"op": "mmap", "addr": addr, "length": length, "prot": prot,
                          "flags": flags})

    def munmap(self, addr: int, length: int) -> int:
        return self._ret({"op": "munmap", "addr": addr, "length": length})

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self._ret({"op": "mprotect", "addr": addr, "length": length, "prot": prot})

    def find_vma(self, addr: int) -> tuple[int, int, str] | None:
        v = self.m.apply({"op": "find_vma", "addr": addr})["vma"]
        if not isinstance(v, list):
            return None
        s, e, p = v
        assert isinstance(s, int) and isinstance(e, int) and isinstance(p, str)
        return s, e, p

    def vmas_observed(self) -> Sequence[tuple[int, int, str]]:
        out = []
        for s, e, p in self.m.vmas():
            assert isinstance(s, int) and isinstance(e, int) and isinstance(p, str)
            out.append((s, e, p))
        return out


class ModelMm:
    """:class:`~refmodel.conformance.targets.mm.MmModel` behind the ``mm`` adapter
    protocol (pids are the model's)."""

    def __init__(self, paging_levels: int) -> None:
        from refmodel.conformance.targets.mm import MmModel

        self.m = MmModel(paging_levels)

    def _do(self, req: dict[str, JSON], pid: int | None = None) -> dict[str, JSON]:
        return self.m.apply(req, pid)

    def spawn(self) -> int:
        pid = self._do({"op": "spawn"})["pid"]
        assert isinstance(pid, int)
        return pid

    def fork(self, pid: int) -> int:
        out = self._do({"op": "fork"}, pid)
        child = out.get("pid", out.get("ret"))
        assert isinstance(child, int)
        return child

    def exit(self, pid: int) -> None:
        self._do({"op": "exit"}, pid)

    def _ret(self, req: dict[str, JSON], pid: int) -> int:
        ret = self._do(req, pid)["ret"]
        assert isinstance(ret, int)
        return ret

    def mmap(self, pid: int, addr: int, length: int, prot: int, flags: int) -> int:
        return self._ret({"op": "mmap", "addr": addr, "length": length, "prot": prot,
                          "flags": flags}, pid)

    def munmap(self, pid: int, addr: int, length: int) -> int:
        return self._ret({"op": "munmap", "addr": addr, "length": length}, pid)

    def mprotect(self, pid: int, addr: int, length: int, prot: int) -> int:
        return self._ret({"op": "mprotect", "addr": addr, "length": length, "prot": prot},
                         pid)

    def _signal(self, out: dict[str, JSON]) -> Signal:
        sig, code, addr = out["signal"], out["si_code"], out["addr"]
        assert isinstance(sig, str) and isinstance(code, str) and isinstance(addr, int)
        return Signal(sig, code, addr)

    def read(self, pid: int, addr: int, length: int) -> bytes | Signal:
        out = self._do({"op": "read", "addr": addr, "length": length}, pid)
        data = out.get("data")
        return bytes.fromhex(data) if isinstance(data, str) else self._signal(out)

    def write(self, pid: int, addr: int, data: bytes) -> Signal | None:
        out = self._do({"op": "write", "addr": addr, "data": data.hex()}, pid)
        return None if out.get("ok") is True else self._signal(out)

    def vmas_observed(self) -> Mapping[int, Sequence[tuple[int, int, str]]]:
        out: dict[int, list[tuple[int, int, str]]] = {}
        for pid, vs in self.m.vmas().items():
            out[pid] = []
            for s, e, p in vs:
                assert isinstance(s, int) and isinstance(e, int) and isinstance(p, str)
                out[pid].append((s, e, p))
        return out


class ModelSlab:
    """:class:`~refmodel.conformance.targets.slab.SlabModel` behind the ``slab`` adapter
    protocol (addresses are the model's direct-map addresses, ZERO_SIZE_PTR is 16)."""

    def __init__(self, slab_nomerge: bool = True) -> None:
        from refmodel.conformance.targets.slab import SlabModel

        self.m = SlabModel(slab_nomerge)

    def _do(self, req: dict[str, JSON]) -> dict[str, JSON]:
        out = self.m.apply(req)
        if "error" in out:
            raise Refused(str(out["error"]))
        return out

    def _addr(self, req: dict[str, JSON]) -> int | None:
        addr = self._do(req)["addr"]
        assert addr is None or isinstance(addr, int)
        return addr

    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> None:
        self._do({"op": "kmem_cache_create", "cache": name, "size": size, "align": align,
                  "flags": flags})

    def kmem_cache_destroy(self, name: str) -> None:
        self._do({"op": "kmem_cache_destroy", "cache": name})

    def kmem_cache_alloc(self, name: str) -> int | None:
        return self._addr({"op": "kmem_cache_alloc", "cache": name})

    def kmem_cache_free(self, name: str, addr: int) -> None:
        self._do({"op": "kmem_cache_free", "cache": name, "addr": addr})

    def kmalloc(self, size: int) -> int | None:
        return self._addr({"op": "kmalloc", "size": size})

    def kfree(self, addr: int) -> None:
        self._do({"op": "kfree", "addr": addr})

    def ksize(self, addr: int) -> int:
        size = self._do({"op": "ksize", "addr": addr})["size"]
        assert isinstance(size, int)
        return size

    def caches(self) -> Mapping[str, Mapping[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, g in self.m.geometries().items():
            out[name] = {k: v for k, v in g.items() if isinstance(v, int)}
        return out

    def slabs(self) -> Mapping[str, int]:
        return self.m.slab_counts()


REFERENCE: dict[str, type] = {"buddy": ModelBuddy, "pagetable": ModelPageTable,
                              "vma": ModelVma, "mm": ModelMm, "slab": ModelSlab}
