"""Exceptions for what the kernel treats as a bug: the model is loud where 5.10 is undefined.

Each exception names the kernel check it models (``bad_page``, ``VM_BUG_ON_PAGE``, ...), so a
user reading a failure can find the same check in the 5.10 source.
"""


class KernelBug(Exception):
    """A condition 5.10 reports as a bug (BUG_ON, VM_BUG_ON, bad_page, ...)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


class BadPage(KernelBug):
    """mm/page_alloc.c:bad_page: a page in a state that must not be freed or allocated."""

    def __init__(self, message: str, check: str = "bad_page") -> None:
        super().__init__(check, message)


class KernelWarning(KernelBug):
    """A WARN_ON that 5.10 prints before refusing the request; raised so nobody misses it."""


class KernelPanic(KernelBug):
    """kernel/panic.c:panic: 5.10 stops the machine (e.g. out_of_memory's "System is
    deadlocked on memory" when nothing is left to kill); the model raises."""

    def __init__(self, message: str) -> None:
        super().__init__("panic", message)
