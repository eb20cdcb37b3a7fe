"""The conformance targets, by name: ``buddy``, ``pagetable``, ``vma``, ``mm``, ``slab``. Each
is a :class:`~refmodel.conformance.targets.base.Target`."""

from __future__ import annotations

import importlib

from refmodel.conformance.targets.base import Target


def get_target(name: str) -> Target:
    """The target called ``name``; KeyError if there is none."""
    return all_targets()[name]


def all_targets() -> dict[str, Target]:
    from refmodel.conformance.targets.buddy import BuddyTarget
    from refmodel.conformance.targets.pagetable import PageTableTarget

    targets: list[Target] = [BuddyTarget(), PageTableTarget()]
    # vma needs the VMA layer, mm the fault handler, fork and exit: present as they land
    for mod, cls in (("vma", "VmaTarget"), ("mm", "MmTarget"), ("slab", "SlabTarget")):
        try:
            m = importlib.import_module(f"refmodel.conformance.targets.{mod}")
        except ImportError:
            continue
        targets.append(getattr(m, cls)())
    return {t.name: t for t in targets}
