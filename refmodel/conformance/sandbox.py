"""Run one command of a submission under limits: ``python -m refmodel.conformance.sandbox``.

    python -m refmodel.conformance.sandbox --cpu 30 --mem 512 --nproc 64 --fsize 16 \\
        --nofile 64 [--uid 20001] [--no-net] [--cwd DIR] -- COMMAND [ARGS...]

Sets the resource limits (CPU seconds, address space, processes, file size, open files),
starts a new session (so the caller can kill the whole process group), enters a new network
namespace when asked and permitted, drops to ``--uid`` when running as root, and execs the
command. When a step cannot be applied it says so on stderr (``sandbox: ...``) and goes on:
the grader records what isolation was in force.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import resource
import sys

CLONE_NEWNET = 0x40000000


def unshare_net() -> str | None:
    """Enter a new, empty network namespace (loopback down): None, or why it failed."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            return os.strerror(ctypes.get_errno())
    except OSError as e:
        return str(e)
    return None


def apply_limits(cpu: int, mem_mb: int, nproc: int, fsize_mb: int, nofile: int) -> None:
    def lim(what: int, value: int) -> None:
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError) as e:
            print(f"sandbox: could not set limit {what}: {e}", file=sys.stderr)

    lim(resource.RLIMIT_CPU, cpu)
    lim(resource.RLIMIT_AS, mem_mb << 20)
    lim(resource.RLIMIT_NPROC, nproc)
    lim(resource.RLIMIT_FSIZE, fsize_mb << 20)
    lim(resource.RLIMIT_NOFILE, nofile)
    lim(resource.RLIMIT_CORE, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="refmodel.conformance.sandbox")
    p.add_argument("--cpu", type=int, default=60)
    p.add_argument("--mem", type=int, default=1024)
    p.add_argument("--nproc", type=int, default=64)
    p.add_argument("--fsize", type=int, default=64)
    p.add_argument("--nofile", type=int, default=64)
    p.add_argument("--uid", type=int, default=None)
    p.add_argument("--no-net", action="store_true")
    p.add_argument("--cwd", default=None)
    p.add_argument("--setsid", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        print("sandbox: no command", file=sys.stderr)
        return 2
    if args.setsid:
        try:
            os.setsid()
        except OSError:
            pass  # already a session leader
    if args.no_net:
        why = unshare_net()
        if why is not None:
            print(f"sandbox: network not isolated: {why}", file=sys.stderr)
    if args.cwd:
        os.chdir(args.cwd)
    if args.uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(args.uid)
        os.setuid(args.uid)
    # Limits last: RLIMIT_NPROC counts the uid's processes, and root is exempt from it.
    apply_limits(args.cpu, args.mem, args.nproc, args.fsize, args.nofile)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.getcwd(),
           "TMPDIR": os.getcwd(), "LANG": "C.UTF-8"}
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as e:
        print(f"sandbox: cannot run {cmd[0]!r}: {e}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main())
