"""The conformance protocol, version 1: JSON lines over an implementation's stdin/stdout.

One JSON object per line, UTF-8, ``\\n``-terminated. The runner speaks first:

1. ``{"id": 0, "op": "hello", "protocol": "refmodel-conform", "version": 1,
   "target": "buddy", "mode": "invariant", "config": {...}}`` and the implementation answers
   ``{"id": 0, "protocol": "refmodel-conform", "version": 1, "target": "buddy",
   "observations": [...], "reset": true, "implementation": "..."}``.
2. Then requests ``{"id": n, "op": NAME, ...params}``, each answered by exactly one line
   ``{"id": n, ...result}`` in request order. Any request may be refused with
   ``{"id": n, "error": "text"}``. Requests may be pipelined: the runner may write many
   before it reads any answer, so the implementation must not wait for anything but its
   stdin.
3. ``{"id": n, "op": "reset"}`` returns to the state right after the handshake (answer
   ``{"id": n, "ok": true}``); ``{"id": n, "op": "observe", "what": NAME}`` returns an
   observation named in the hello answer; ``{"op": "quit"}`` (no answer) asks it to exit.

The JSON Schema of every message is in :mod:`refmodel.conformance.schema`; the targets' own
operations are documented in ``docs/conformance.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final, TypeAlias

PROTOCOL: Final = "refmodel-conform"
VERSION: Final = 1

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
"""A JSON value as :func:`json.loads` returns it."""
Message: TypeAlias = dict[str, JSON]
"""One protocol message (a JSON object)."""

MAX_LINE: Final = 1 << 20
"""The longest line the runner accepts from an implementation (1 MiB)."""


class ProtocolError(Exception):
    """The implementation broke the protocol (garbage, a wrong id, a missing field). The
    message says what was seen, for the scorecard."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_ENCODER = json.JSONEncoder(separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def encode(msg: Mapping[str, JSON]) -> bytes:
    """One message as a protocol line."""
    return _ENCODER.encode(msg).encode() + b"\n"


def decode_line(line: bytes) -> Message:
    """Parse one line an implementation wrote; ProtocolError for anything but one JSON
    object (NaN and Infinity are not JSON; neither are invalid UTF-8 or deep nesting)."""
    try:
        obj = _DECODER.decode(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"not a JSON line ({type(e).__name__}): {preview(line)}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a JSON {type(obj).__name__}, not an object: {preview(line)}")
    return obj


def preview(data: bytes, limit: int = 200) -> str:
    """The start of some bytes, printable, for a report."""
    text = data[:limit].decode("utf-8", errors="replace")
    text = text.encode("unicode_escape").decode("ascii")
    return text + (f"... ({len(data)} bytes)" if len(data) > limit else "")


def is_int(v: JSON) -> bool:
    """A JSON integer (booleans are not integers here)."""
    return isinstance(v, int) and not isinstance(v, bool)


def hello_request(target: str, mode: str, config: Mapping[str, JSON]) -> Message:
    return {"id": 0, "op": "hello", "protocol": PROTOCOL, "version": VERSION,
            "target": target, "mode": mode, "config": dict(config)}


def check_hello(msg: Message, target: str) -> tuple[list[str], bool, str]:
    """Validate the implementation's hello answer: (observations it offers, whether it
    supports reset, its name). ProtocolError says what is wrong."""
    if "error" in msg:
        raise ProtocolError(f"the implementation refused the handshake: {msg['error']!r}")
    if msg.get("id") != 0:
        raise ProtocolError(f"hello answer has id {msg.get('id')!r}, not 0")
    if msg.get("protocol") != PROTOCOL:
        raise ProtocolError(f"hello answer names protocol {msg.get('protocol')!r}, "
                            f"not {PROTOCOL!r}")
    if msg.get("version") != VERSION:
        raise ProtocolError(f"wrong protocol version {msg.get('version')!r}: this runner "
                            f"speaks version {VERSION}")
    if msg.get("target") != target:
        raise ProtocolError(f"hello answer names target {msg.get('target')!r}, not {target!r}")
    obs = msg.get("observations", [])
    if not isinstance(obs, list) or not all(isinstance(o, str) for o in obs):
        raise ProtocolError(f"'observations' must be a list of names, got {obs!r}")
    reset = msg.get("reset", True)
    if not isinstance(reset, bool):
        raise ProtocolError(f"'reset' must be true or false, got {reset!r}")
    name = msg.get("implementation", "")
    return [str(o) for o in obs], reset, name if isinstance(name, str) else repr(name)
