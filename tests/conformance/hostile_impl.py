"""A deliberately hostile buddy implementation for the runner's robustness tests.

``python hostile_impl.py BEHAVIOUR [PIDFILE]``: answers correctly (the model behind the
Python adapter) until request number 3 after the hello, then misbehaves as told.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from refmodel.conformance.adapter import make_handler
from refmodel.conformance.reference import ModelBuddy


def out(s: str | bytes) -> None:
    sys.stdout.buffer.write(s.encode() if isinstance(s, str) else s)
    sys.stdout.buffer.flush()


def main() -> None:
    how = sys.argv[1]
    if how == "crash_start":
        sys.exit(3)
    if how == "grandchild":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open(sys.argv[2], "w") as f:
            f.write(str(child.pid))
    if how == "stderr_flood":
        sys.stderr.write("x" * 300_000 + "\n")
    handler = None
    n = 0
    for line in sys.stdin.buffer:
        m = json.loads(line)
        if m.get("op") == "quit":
            return
        if m.get("op") == "hello":
            if how == "no_hello":
                time.sleep(120)
            if how == "bad_hello_json":
                out("hello there\n")
                continue
            version = 2 if how == "wrong_version" else 1
            handler = make_handler("buddy", ModelBuddy, m["config"])
            out(json.dumps({"id": 0, "protocol": "refmodel-conform", "version": version,
                            "target": "buddy", "observations": ["free_lists"]}) + "\n")
            if how == "close_stdout":
                os.close(1)
                time.sleep(120)
            continue
        n += 1
        assert handler is not None
        answer = handler(m)
        if n >= 3:
            if how == "crash_mid":
                os.abort()
            if how in ("hang_mid", "grandchild"):
                time.sleep(120)
            if how == "garbage_mid":
                out("this is not json\n")
                continue
            if how == "oversized":
                out(b"7" * (3 << 20))
                time.sleep(120)
            if how == "oversized_line":
                out('{"id": 1, "x": "' + "y" * (2 << 20) + '"}\n')
                continue
            if how == "wrong_id":
                answer["id"] = 999
            if how == "extra_answer":
                out(json.dumps(answer) + "\n")
            if how == "nan":
                out('{"id": ' + str(m["id"]) + ', "pfn": NaN}\n')
                continue
            if how == "bad_type" and m["op"] == "alloc_pages":
                answer["pfn"] = str(answer["pfn"])
            if how == "deep_json":
                out("[" * 100_000 + "]" * 100_000 + "\n")
                continue
            if how == "exit_clean":
                sys.exit(0)
        out(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
