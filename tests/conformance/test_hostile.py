"""The runner against hostile implementations: every misbehaviour is reported (exit status 2)
with what was seen, the runner never hangs or shows a traceback, and no process is left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refmodel.conformance.runner import Driver, RunResult, conform
from refmodel.conformance.targets.buddy import BuddyTarget
from refmodel.conformance.transport import SubprocessTransport

HOSTILE = Path(__file__).with_name("hostile_impl.py")
REPO = Path(__file__).resolve().parents[2]
TARGET = BuddyTarget()
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def drive(command: list[str], timeout: float = 1.0, sequences: int = 5,
          start_timeout: float = 30.0) -> RunResult:
    # A generous start-up time: the hostile script imports refmodel, slow on a busy machine.
    cfg = TARGET.validate_config({})
    t = SubprocessTransport(command, "buddy", "invariant", cfg, timeout=timeout,
                            start_timeout=start_timeout)
    return conform(Driver(t, TARGET, cfg, "invariant"), sequences, 20, 0, command=command)


def hostile(how: str, *extra: str) -> list[str]:
    return [sys.executable, str(HOSTILE), how, *extra]


@pytest.mark.parametrize(("how", "kind", "seen"), [
    ("crash_start", "crash", "exited with status 3"),
    ("no_hello", "hang", "no answer within"),
    ("bad_hello_json", "handshake", "not a JSON line"),
    ("wrong_version", "version", "wrong protocol version 2"),
    ("crash_mid", "crash", "SIGABRT"),
    ("hang_mid", "hang", "no answer within"),
    ("garbage_mid", "garbage", "this is not json"),
    ("oversized", "oversized", "without a newline"),
    ("oversized_line", "oversized", "1048576"),
    ("wrong_id", "protocol", "answer id 999"),
    ("extra_answer", "protocol", "answer id"),
    ("nan", "garbage", "NaN"),
    ("bad_type", "protocol", "'pfn' must be an integer"),
    ("deep_json", "garbage", "RecursionError"),
    ("close_stdout", "crash", "closed its stdout"),
    ("exit_clean", "crash", "exited with status 0"),
])
def test_hostile_implementation_is_reported(how: str, kind: str, seen: str) -> None:
    t0 = time.monotonic()
    r = drive(hostile(how), start_timeout=3.0 if how == "no_hello" else 30.0)
    assert time.monotonic() - t0 < 40
    assert r.status == 2 and r.drive_error is not None
    assert r.drive_error.kind == kind, r.drive_error
    text = f"{r.drive_error.message} {r.drive_error.seen}"
    assert seen in text, text


def test_missing_and_unexecutable_commands(tmp_path: Path) -> None:
    r = drive(["/nonexistent/impl"])
    assert r.status == 2 and r.drive_error is not None and r.drive_error.kind == "start"
    f = tmp_path / "impl"
    f.write_text("#!/bin/sh\n")
    r = drive([str(f)])
    assert r.status == 2 and r.drive_error is not None and r.drive_error.kind == "start"


def test_noisy_stderr_is_harmless() -> None:
    r = drive(hostile("stderr_flood"), sequences=10)
    assert r.status == 0


def test_no_process_is_left_behind(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    r = drive(hostile("grandchild", str(pidfile)))
    assert r.status == 2 and r.drive_error is not None and r.drive_error.kind == "hang"
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # a zombie reparented to init disappears once reaped; give it a moment
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"grandchild {pid} is still running")


@pytest.mark.parametrize("how", ["crash_mid", "garbage_mid", "wrong_version"])
def test_cli_exit_status_2_without_traceback(how: str) -> None:
    p = subprocess.run([sys.executable, "-m", "refmodel.cli", "conform", "--target", "buddy",
                        "--timeout", "1", "--sequences", "3", "--", *hostile(how)],
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert p.returncode == 2
    assert "Traceback" not in p.stdout + p.stderr
    assert "could not be driven" in p.stdout.lower()


def test_cli_bad_usage_is_exit_status_2() -> None:
    for argv in (["conform", "--target", "nosuch", "--", "x"], ["conform", "--target", "buddy"],
                 ["conform", "--target", "buddy", "--config", "nr_pages=0", "--", "x"],
                 ["conform", "--bogus"]):
        p = subprocess.run([sys.executable, "-m", "refmodel.cli", *argv], capture_output=True,
                           text=True, timeout=60, env=ENV)
        assert p.returncode == 2, (argv, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr


def test_a_failed_handshake_leaves_no_process(tmp_path: Path) -> None:
    """An implementation that never answers the hello is killed, not left running."""
    r = drive(hostile("no_hello"), start_timeout=2.0)
    assert r.status == 2 and r.drive_error is not None and r.drive_error.kind == "hang"
    time.sleep(0.2)
    kids = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "args="],
                          capture_output=True, text=True).stdout
    assert "hostile_impl.py no_hello" not in kids
