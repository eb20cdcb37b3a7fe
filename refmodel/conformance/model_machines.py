"""The model's own state machines, for ``refmodel fuzz --model``.

They are the ordinary Hypothesis state-machine tests under ``tests/`` (the standalone and
full-machine buddy allocators, the allocator's fast path against its traced chain, 4- and
5-level page tables, the VMA machine, and the whole-system machine when it is there),
so ``pytest`` and HypoFuzz run exactly the same machines. They are loaded from a source
checkout (the current directory, or ``$REFMODEL_SOURCE``); an installed package without
``tests/`` has none to fuzz and says so.
"""

from __future__ import annotations

import importlib
import os
import sys

from hypothesis.stateful import RuleBasedStateMachine

_SOURCES: dict[str, tuple[str, ...]] = {
    "tests.mm.test_page_alloc_state_machine": ("StandaloneAllocator", "FullMachineAllocator"),
    # the allocator's untraced fast path in lockstep with the traced chain
    "tests.mm.test_page_alloc_fast": ("FastVsChainFull", "FastVsChainStandalone"),
    "tests.mm.test_pagetable_state_machine": ("FourLevel", "FiveLevel"),
    "tests.mm.test_vma_state_machine": (),
    "tests.test_system_state_machine": (),  # the whole-system machine
}


def load_machines() -> dict[str, type[RuleBasedStateMachine]]:
    """Every state machine of the model, by name; empty when there is no checkout."""
    root = os.environ.get("REFMODEL_SOURCE", os.getcwd())
    if root not in sys.path:
        sys.path.insert(0, root)
    out: dict[str, type[RuleBasedStateMachine]] = {}
    for mod_name, names in _SOURCES.items():
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        chosen = names or tuple(
            n for n, v in vars(mod).items() if isinstance(v, type)
            and issubclass(v, RuleBasedStateMachine) and v is not RuleBasedStateMachine
            and not n.startswith("_") and v.__module__ == mod.__name__)
        for n in chosen:
            cls = getattr(mod, n, None)
            if isinstance(cls, type) and issubclass(cls, RuleBasedStateMachine):
                out[n] = cls
    return out
