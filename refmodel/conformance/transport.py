"""Talking to an implementation: a subprocess over JSON lines, or a Python object in-process.

The implementation is hostile until proven otherwise. :class:`SubprocessTransport` runs it in
its own process group with non-blocking pipes and a selector loop, so the runner never
blocks on a full pipe in either direction (requests are pipelined), never waits longer than
the per-request timeout without the implementation making progress, refuses lines over
:data:`~refmodel.conformance.protocol.MAX_LINE`, and kills the whole process group when it is
done. Everything that goes wrong is a :class:`DriveError` carrying what was seen.
"""

from __future__ import annotations

import collections
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from refmodel.conformance.protocol import (
    JSON,
    MAX_LINE,
    Message,
    ProtocolError,
    check_hello,
    decode_line,
    encode,
    hello_request,
    preview,
)

STDERR_KEEP = 4096


@dataclass(slots=True)
class DriveError(Exception):
    """The implementation could not be driven. ``kind`` is one of: start, handshake,
    version, crash, hang, garbage, oversized, protocol."""

    kind: str
    message: str
    stderr: str = ""
    seen: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message, "seen": self.seen,
                "stderr": self.stderr}


@dataclass(slots=True)
class Hello:
    """What the implementation said about itself in the handshake."""

    observations: list[str] = field(default_factory=list)
    reset: bool = True
    implementation: str = ""


class Transport(Protocol):
    """A started implementation: send requests (pipelined), receive answers in order."""

    hello: Hello

    def start(self) -> Hello: ...

    def send(self, msgs: Sequence[Message]) -> None: ...

    def receive(self, at_least: int) -> list[Message]:
        """Every answer available, at least ``at_least`` of them (waiting for them)."""
        ...

    def restart(self) -> None:
        """A fresh instance in the handshake state (for implementations without reset)."""
        ...

    def close(self) -> None: ...


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class SubprocessTransport:
    """An implementation as a child process speaking JSON lines on stdin/stdout."""

    def __init__(self, command: Sequence[str], target: str, mode: str,
                 config: Mapping[str, JSON], timeout: float = 5.0,
                 start_timeout: float = 10.0, cwd: str | None = None) -> None:
        self.command = list(command)
        self.target = target
        self.mode = mode
        self.config = config
        self.timeout = timeout
        self.start_timeout = max(start_timeout, timeout)
        self.cwd = cwd
        self.hello = Hello()
        self.proc: subprocess.Popen[bytes] | None = None
        self._sel: selectors.DefaultSelector | None = None
        self._wbuf = bytearray()
        self._rbuf = bytearray()
        self._lines: collections.deque[Message] = collections.deque()
        self._stderr = bytearray()
        self._eof = False
        self.bytes_read = 0

    # ---------------------------------------------------------------------------------------
    def start(self) -> Hello:
        if not self.command:
            raise DriveError("start", "no command given")
        try:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, close_fds=True, cwd=self.cwd)
        except OSError as e:
            raise DriveError("start", f"could not start {self.command[0]!r}: "
                             f"{e.strerror or e}") from None
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            os.set_blocking(f.fileno(), False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
        self._sel.register(self.proc.stderr, selectors.EVENT_READ, "err")
        self._wbuf.clear()
        self._rbuf.clear()
        self._lines.clear()
        self._eof = False
        self.send([hello_request(self.target, self.mode, self.config)])
        try:
            msgs = self._receive(1, self.start_timeout, "the hello answer")
        except DriveError as e:
            if e.kind in ("garbage", "protocol"):
                e.kind = "handshake"
            raise
        msg = msgs[0]
        try:
            obs, reset, name = check_hello(msg, self.target)
        except ProtocolError as e:
            kind = "version" if "version" in str(e) else "handshake"
            raise DriveError(kind, str(e), self.stderr_tail(), preview(encode(msg))) from None
        if self._lines:
            raise DriveError("protocol", "more than one line answered the hello",
                             self.stderr_tail(), preview(encode(self._lines[0])))
        self.hello = Hello(obs, reset, name)
        return self.hello

    def restart(self) -> None:
        self.close()
        self.start()

    def send(self, msgs: Sequence[Message]) -> None:
        for m in msgs:
            self._wbuf += encode(m)
        self._pump(0.0)

    def receive(self, at_least: int) -> list[Message]:
        return self._receive(at_least, self.timeout, "an answer")

    def stderr_tail(self) -> str:
        return self._stderr[-STDERR_KEEP:].decode("utf-8", errors="replace")

    # ---------------------------------------------------------------------------------------
    def _receive(self, at_least: int, timeout: float, what: str) -> list[Message]:
        last_progress = time.monotonic()
        while len(self._lines) < at_least:
            if self._eof:
                self._crashed(what)
            before = self.bytes_read
            remaining = timeout - (time.monotonic() - last_progress)
            if remaining <= 0:
                raise DriveError("hang", f"no answer within {timeout:g} s while waiting for "
                                 f"{what}", self.stderr_tail(), preview(bytes(self._rbuf)))
            self._pump(remaining)
            if self.bytes_read != before:
                last_progress = time.monotonic()
        out = list(self._lines)
        self._lines.clear()
        return out

    def _crashed(self, what: str) -> None:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        how = describe_exit(code)
        msg = (f"closed its stdout while the runner waited for {what} (it {how})"
               if code is None else f"the implementation {how} while the runner waited "
               f"for {what}")
        raise DriveError("crash", msg, self.stderr_tail(), preview(bytes(self._rbuf)))

    def _pump(self, timeout: float) -> None:
        """One round of the selector loop: write what can be written, read what is there."""
        assert self.proc is not None and self._sel is not None
        stdin = self.proc.stdin
        assert stdin is not None
        if self._wbuf and not stdin.closed:
            try:
                self._sel.modify(stdin, selectors.EVENT_WRITE, "in")
            except KeyError:
                self._sel.register(stdin, selectors.EVENT_WRITE, "in")
        elif not stdin.closed:
            try:
                self._sel.unregister(stdin)
            except KeyError:
                pass
        events = self._sel.select(timeout)
        for key, _ in events:
            if key.data == "in":
                try:
                    n = os.write(stdin.fileno(), self._wbuf[:1 << 16])
                    del self._wbuf[:n]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    self._wbuf.clear()
                    self._eof = True  # it stopped reading: it will be reported as a crash
            elif key.data == "out":
                self._read_stdout()
            else:
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    self._sel.unregister(key.fileobj)
                self._stderr += chunk
                if len(self._stderr) > 4 * STDERR_KEEP:
                    del self._stderr[:-STDERR_KEEP]

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self._sel is not None
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._eof = True
            self._sel.unregister(self.proc.stdout)
            return
        self.bytes_read += len(chunk)
        self._rbuf += chunk
        start = 0
        buf = self._rbuf
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(buf[start:nl])
            start = nl + 1
            if len(line) > MAX_LINE:
                self._oversized(len(line), line)
            if not line.strip():
                continue
            try:
                self._lines.append(decode_line(line))
            except ProtocolError as e:
                raise DriveError("garbage", str(e), self.stderr_tail(), preview(line)) from None
        del buf[:start]
        if len(buf) > MAX_LINE:
            self._oversized(len(buf), bytes(buf))

    def _oversized(self, n: int, data: bytes) -> None:
        raise DriveError("oversized", f"a line of more than {MAX_LINE} bytes ({n} bytes "
                         "read so far without a newline)" if n == len(self._rbuf) else
                         f"a line of {n} bytes (the limit is {MAX_LINE})",
                         self.stderr_tail(), preview(data))

    # ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Ask it to quit, then kill its whole process group and reap it. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        try:
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    os.write(proc.stdin.fileno(), b'{"op":"quit"}\n')
                except OSError:
                    pass
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # grandchildren too
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
            pass
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        if self._sel is not None:
            self._sel.close()
            self._sel = None


Handler = Callable[[Message], Message]


class InProcessTransport:
    """A Python implementation called directly: ``make()`` builds a handler that turns one
    request into one answer (see :mod:`refmodel.conformance.adapter`). Exceptions that
    escape the handler are reported as a crash, as for a subprocess."""

    def __init__(self, make: Callable[[], Handler], observations: Sequence[str],
                 name: str) -> None:
        self._make = make
        self._handler: Handler | None = None
        self._out: list[Message] = []
        self.hello = Hello(list(observations), True, name)

    def start(self) -> Hello:
        try:
            self._handler = self._make()
        except (Exception, SystemExit) as e:  # sys.exit() in a --python class is a crash too
            raise DriveError("start", f"could not construct the implementation: "
                             f"{type(e).__name__}: {e}") from None
        return self.hello

    def restart(self) -> None:
        self.start()

    def send(self, msgs: Sequence[Message]) -> None:
        assert self._handler is not None
        for m in msgs:
            try:
                self._out.append(self._handler(m))
            except DriveError:
                raise
            except (Exception, SystemExit) as e:  # sys.exit() must not end the whole run
                raise DriveError("crash", f"the implementation raised {type(e).__name__}: {e} "
                                 f"on {m!r}") from None

    def receive(self, at_least: int) -> list[Message]:
        if len(self._out) < at_least:
            raise DriveError("protocol", "the adapter produced fewer answers than requests")
        out, self._out = self._out, []
        return out

    def close(self) -> None:
        self._handler = None
        self._out = []
