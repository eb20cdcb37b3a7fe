"""The child process of kernel-diff: performs mmap/munmap/mprotect on the live kernel.

Protocol: one JSON request per line on stdin, one JSON response per line on stdout.
  {"op": "window", "size": N}          -> {"base": addr, "kernel": release}
  {"op": "mmap", "addr", "len", "prot", "flags"} -> {"ret": addr or -errno, "maps": [...]}
  {"op": "munmap", "addr", "len"}      -> {"ret": 0 or -errno, "maps": [...]}
  {"op": "mprotect", "addr", "len", "prot"} -> {"ret": 0 or -errno, "maps": [...]}
  {"op": "reset"}                      -> the window unmapped: {"ret": 0, "maps": []}
"maps" lists the lines of /proc/self/maps inside the window. A mapping the kernel placed
outside the window (an unhonoured hint) is unmapped at once and reported as "outside".
Only this process's own address space is touched, and only inside the window.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys

from refmodel.kerneldiff.maps import find_free_window, parse_maps

PREFERRED_WINDOW = 0x100000000000  # 16 TiB: far below the host's mmap_base, far above brk


def main() -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    window = (0, 0)

    def maps() -> list[str]:
        with open("/proc/self/maps") as f:
            text = f.read()
        return [f"{e.start:x}-{e.end:x} {e.perms}" for e in parse_maps(text, window)]

    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "window":
            with open("/proc/self/maps") as f:
                base = find_free_window(parse_maps(f.read()), req["size"], PREFERRED_WINDOW)
            window = (base, base + req["size"])
            resp: dict[str, object] = {"base": base, "kernel": os.uname().release}
        elif op == "mmap":
            ctypes.set_errno(0)
            r = libc.mmap(req["addr"], req["len"], req["prot"], req["flags"], -1, 0)
            ret = r if r is not None else 0
            if ret == (1 << 64) - 1 or ret == -1:
                ret = -ctypes.get_errno()
            outside = ret >= 0 and not (window[0] <= ret < window[1])
            if outside:
                libc.munmap(ret, req["len"])
            resp = {"ret": "outside" if outside else ret, "maps": maps()}
        elif op == "munmap":
            r = libc.munmap(req["addr"], req["len"])
            resp = {"ret": -ctypes.get_errno() if r else 0, "maps": maps()}
        elif op == "reset":  # a fresh window: unmap everything inside it
            r = libc.munmap(window[0], window[1] - window[0])
            resp = {"ret": -ctypes.get_errno() if r else 0, "maps": maps()}
        elif op == "mprotect":
            r = libc.mprotect(req["addr"], req["len"], req["prot"])
            resp = {"ret": -ctypes.get_errno() if r else 0, "maps": maps()}
        else:
            resp = {"error": f"unknown op {op!r}"}
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
