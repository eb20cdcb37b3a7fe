"""Real traffic against the documented JSON Schemas: every request the runner writes and every
answer the examples give validates; the schema validator itself rejects what it must."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from refmodel.conformance.adapter import in_process
from refmodel.conformance.protocol import Message, ProtocolError, check_hello, decode_line
from refmodel.conformance.runner import Driver, conform
from refmodel.conformance.schema import (
    COMMON,
    TARGETS,
    schema_for,
    schema_for_observation,
    schemas,
    validate,
)
from refmodel.conformance.targets.base import Target
from refmodel.conformance.targets.buddy import BuddyTarget
from refmodel.conformance.targets.pagetable import PageTableTarget
from refmodel.conformance.transport import Hello, SubprocessTransport, Transport

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Recording:
    """A transport that keeps every request and answer."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.hello = inner.hello
        self.sent: list[Message] = []
        self.got: list[Message] = []

    def start(self) -> Hello:
        self.hello = self.inner.start()
        return self.hello

    def send(self, msgs: Sequence[Message]) -> None:
        self.sent += [dict(m) for m in msgs]
        self.inner.send(msgs)

    def receive(self, at_least: int) -> list[Message]:
        out = self.inner.receive(at_least)
        self.got += out
        return out

    def restart(self) -> None:
        self.inner.restart()

    def close(self) -> None:
        self.inner.close()


def check_traffic(target: Target, rec: Recording) -> None:
    by_id = {m["id"]: m for m in rec.sent}
    assert len(rec.got) == len(rec.sent)
    for m in rec.sent:
        s = schema_for(target.name, m, answer=False)
        assert s is not None, m
        assert validate(m, s) == [], (m, validate(m, s))
    for a in rec.got:
        req = by_id[a["id"]]
        if req["op"] == "observe":
            what = req["what"]
            assert isinstance(what, str)
            s = schema_for_observation(target.name, what)
        else:
            s = schema_for(target.name, req, answer=True)
        assert s is not None, req
        assert validate(a, s) == [], (req, a, validate(a, s))


def test_c_buddy_traffic_matches_the_schemas(buddy_bins: dict[str, Path]) -> None:
    t = BuddyTarget()
    cfg = t.validate_config({})
    rec = Recording(SubprocessTransport([str(buddy_bins["buddy"])], "buddy", "strict", cfg))
    r = conform(Driver(rec, t, cfg, "strict"), 20, 30, 0)
    assert r.status == 0
    check_traffic(t, rec)


def test_python_pagetable_traffic_matches_the_schemas() -> None:
    from refmodel.conformance.adapter import load_class

    t = PageTableTarget()
    cfg = t.validate_config({"paging_levels": 5})
    cls = load_class(f"{EXAMPLES / 'pagetable_py' / 'pagetable.py'}:PageTable")
    rec = Recording(in_process("pagetable", cls, cfg))
    r = conform(Driver(rec, t, cfg, "strict"), 20, 30, 0)
    assert r.status == 0
    check_traffic(t, rec)


def test_hello_messages_and_their_schemas() -> None:
    good: Message = {"id": 0, "protocol": "refmodel-conform", "version": 1,
                     "target": "buddy", "observations": ["free_lists"], "reset": True}
    assert validate(good, COMMON["hello answer"]) == []
    assert check_hello(good, "buddy") == (["free_lists"], True, "")
    cases: list[tuple[Message, str]] = [
        ({**good, "version": 2}, "version"), ({**good, "target": "vma"}, "target"),
        ({**good, "id": 3}, "id"), ({"id": 0, "error": "no"}, "refused")]
    for bad, why in cases:
        assert validate(bad, COMMON["hello answer"]) or why in ("refused", "target")
        try:
            check_hello(bad, "buddy")
        except ProtocolError as e:
            assert why in str(e)
        else:
            raise AssertionError(f"accepted a hello with a wrong {why}")


def test_validator_rejects_what_it_must() -> None:
    s = TARGETS["buddy"]["alloc_pages answer"]
    assert validate({"id": 1, "pfn": None}, s) == []
    assert validate({"id": 1, "pfn": 4}, s) == []
    assert validate({"id": 1, "error": "x"}, s) == []
    assert validate({"id": 1, "pfn": "4"}, s)
    assert validate({"id": 1, "pfn": True}, s)
    assert validate({"id": 1}, s)
    assert validate({"id": 1, "pfn": 1, "extra": 2}, s)


def test_decode_line_refuses_non_json() -> None:
    for line in (b"NaN", b'{"a": NaN}', b"[1]", b"\xff\xfe", b"{", b"[" * 50_000):
        try:
            decode_line(line)
        except ProtocolError:
            continue
        raise AssertionError(line)


def test_schema_document_names_every_target_operation() -> None:
    doc = schemas()
    targets = doc["targets"]
    assert isinstance(targets, dict) and set(targets) == {"buddy", "pagetable", "vma", "mm",
                                                              "slab"}
    ops: set[str] = set()
    for s in TARGETS["buddy"].values():
        props = s.get("properties")
        op = props.get("op") if isinstance(props, dict) else None
        if isinstance(op, dict) and isinstance(op.get("const"), str):
            ops.add(str(op["const"]))
    assert {"alloc_pages", "free_pages"} <= ops


def test_committed_schema_document_is_current() -> None:
    import json

    doc = json.loads((EXAMPLES.parent / "docs" / "conformance-schema.json").read_text())
    assert doc == json.loads(json.dumps(schemas())), \
        "docs/conformance-schema.json is stale: refmodel conform schema > it"
