"""The registry of modelled kernel functions and a call-tree tracer ("函数跳转关系").

Every modelled kernel function is decorated with :func:`kernel`, which records its kernel name
and the 5.10 file it models and returns the function unchanged, so a run with tracing off pays
nothing. :class:`Tracer` switches the interpreter's profiling hook on for the duration of a
``with`` block and records the nesting of registered functions only.

The registry is import-time metadata (filled once as modules load, never changed by a run), not
model state: two Machines in one process share it harmlessly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class KernelFunction:
    """One modelled kernel function: its 5.10 name, its file, and the Python object."""

    name: str
    file: str
    qualname: str
    aliases: tuple[str, ...] = ()


_BY_CODE: dict[CodeType, KernelFunction] = {}
_BY_NAME: dict[str, KernelFunction] = {}


def kernel(file: str, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a function as the model of kernel function ``name`` (default: its own name)."""

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        code = getattr(fn, "__code__", None)
        if not isinstance(code, CodeType):
            raise TypeError(f"{fn!r} is not a plain function")
        kname = name or fn.__name__
        kf = KernelFunction(kname, file, f"{fn.__module__}.{fn.__qualname__}")
        _BY_CODE[code] = kf
        _BY_NAME[kname] = kf
        return fn

    return register


def alias(old_name: str, of: str, why: str) -> None:
    """Record that the seed's ``old_name`` is 5.10's ``of`` (a rename or a wrapper)."""
    kf = _BY_NAME[of]
    new = KernelFunction(kf.name, kf.file, kf.qualname, (*kf.aliases, f"{old_name}: {why}"))
    _BY_NAME[of] = new
    _BY_NAME[old_name] = new
    for code, value in list(_BY_CODE.items()):
        if value.name == of:
            _BY_CODE[code] = new


def registry() -> list[KernelFunction]:
    """Every registered kernel function, sorted by file then name."""
    seen = {kf.name: kf for kf in _BY_CODE.values()}
    return sorted(seen.values(), key=lambda k: (k.file, k.name))


def lookup(name: str) -> KernelFunction | None:
    """The registered function of a kernel name or a recorded alias."""
    return _BY_NAME.get(name)


@dataclass(slots=True)
class CallNode:
    """One call in a traced run: the kernel function, a few scalar arguments, the result."""

    name: str
    file: str
    args: dict[str, str] = field(default_factory=dict)
    result: str | None = None
    children: list[CallNode] = field(default_factory=list)

    def names(self) -> list[str]:
        """Pre-order list of the kernel names in this subtree."""
        out = [self.name]
        for c in self.children:
            out.extend(c.names())
        return out

    def find(self, name: str) -> CallNode | None:
        """The first node (pre-order) with this kernel name."""
        if self.name == name:
            return self
        for c in self.children:
            hit = c.find(name)
            if hit is not None:
                return hit
        return None

    def path_to(self, name: str) -> list[str] | None:
        """The chain of names from this node down to the first ``name`` node."""
        if self.name == name:
            return [self.name]
        for c in self.children:
            sub = c.path_to(name)
            if sub is not None:
                return [self.name, *sub]
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "file": self.file,
            "args": dict(self.args),
            "result": self.result,
            "children": [c.to_json() for c in self.children],
        }


_SHOWN_ARGS = frozenset(
    {"order", "pfn", "gfp_mask", "migratetype", "addr", "address", "len", "start", "end",
     "prot", "flags", "current_order", "count", "fpi_flags", "alloc_flags", "vm_flags",
     "gfp_flags", "gfp", "start_migratetype", "start_type"}
)


_ARG_FORMATTERS: dict[str, Callable[[int], str]] = {}


def register_arg_formatter(param: str, fmt: Callable[[int], str]) -> None:
    """Show an int parameter of traced calls symbolically (e.g. GFP masks by macro name)."""
    _ARG_FORMATTERS[param] = fmt


def _fmt(v: object) -> str | None:
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, int):
        return hex(v) if abs(v) >= 4096 else str(v)
    return None


class Tracer:
    """Records the call tree of registered kernel functions while active.

    Use as ``with Tracer() as t: ...`` then read ``t.roots`` or ``t.render()``. Frames of
    unregistered functions are ignored, so helper functions do not clutter the tree.
    """

    def __init__(self, max_calls: int = 200_000) -> None:
        self.roots: list[CallNode] = []
        self._stack: list[tuple[FrameType, CallNode]] = []
        self._max = max_calls
        self._calls = 0
        self._prev: object = None

    def _hook(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            kf = _BY_CODE.get(frame.f_code)
            if kf is None or self._calls >= self._max:
                return
            self._calls += 1
            args: dict[str, str] = {}
            code = frame.f_code
            for pname in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
                if pname in _SHOWN_ARGS:
                    value = frame.f_locals.get(pname)
                    special = _ARG_FORMATTERS.get(pname)
                    if special is not None and isinstance(value, int):
                        args[pname] = special(value)
                        continue
                    shown = _fmt(value)
                    if shown is not None:
                        args[pname] = shown
            node = CallNode(kf.name, kf.file, args)
            if self._stack:
                self._stack[-1][1].children.append(node)
            else:
                self.roots.append(node)
            self._stack.append((frame, node))
        elif event == "return" and self._stack and self._stack[-1][0] is frame:
            _, node = self._stack.pop()
            node.result = _fmt(arg) if not hasattr(arg, "pfn") else f"page(pfn={_pfn_of(arg)})"

    def __enter__(self) -> Tracer:
        self._prev = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        self._stack.clear()

    def render(self, show_files: bool = True, max_depth: int | None = None) -> str:
        """The recorded calls as an indented tree, one kernel function per line."""
        return render_tree(self.roots, show_files, max_depth)


def _pfn_of(obj: object) -> str:
    v = getattr(obj, "pfn", None)
    return hex(v) if isinstance(v, int) else "?"


def _render(
    node: CallNode, prefix: str, last: bool, root: bool, out: list[str], show_files: bool,
    depth: int = 0, max_depth: int | None = None,
) -> None:
    args = ", ".join(f"{k}={v}" for k, v in node.args.items())
    res = f" → {node.result}" if node.result not in (None, "None") else ""
    loc = f"  [{node.file}]" if show_files else ""
    branch = "" if root else ("└─ " if last else "├─ ")
    out.append(f"{prefix}{branch}{node.name}({args}){res}{loc}")
    child_prefix = prefix if root else prefix + ("   " if last else "│  ")
    kids = node.children
    if max_depth is not None and depth >= max_depth:
        if kids:
            out.append(f"{child_prefix}└─ … {len(node.names()) - 1} call(s) below")
        return
    i = 0
    while i < len(kids):
        # Runs of siblings with the same shape (e.g. rmqueue_bulk's __rmqueue calls) are
        # shown once, with a count.
        j = i + 1
        while j < len(kids) and kids[j].names() == kids[i].names():
            j += 1
        is_last = j == len(kids)
        _render(kids[i], child_prefix, is_last and j - i == 1, False, out, show_files,
                depth + 1, max_depth)
        if j - i > 1:
            out.append(f"{child_prefix}{'└─ ' if is_last else '├─ '}… {j - i - 1} more "
                       f"{kids[i].name}() call(s) of the same shape")
        i = j


def render_tree(roots: list[CallNode], show_files: bool = True,
                max_depth: int | None = None) -> str:
    """Render call trees, cutting each below ``max_depth`` levels if given."""
    lines: list[str] = []
    for r in roots:
        _render(r, "", True, True, lines, show_files, 0, max_depth)
    return "\n".join(lines)
