"""argparse types for the command line: numbers that must be in range, refused with a
usage error (exit status 2) instead of a traceback or a silently odd run."""

from __future__ import annotations

import argparse
import math


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_int(text: str) -> int:
    """An int of at least 1."""
    n = _int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def non_negative_int(text: str) -> int:
    """An int of at least 0."""
    n = _int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {n}")
    return n


def seconds(text: str) -> float:
    """A finite time above 0 of at most a day (selectors and sandboxes take no more)."""
    x = _float(text)
    if not math.isfinite(x) or not 0 < x <= 86400:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 86400, not {text}")
    return x


def minutes(text: str) -> float:
    """A finite number of minutes above 0 (at most a week)."""
    x = _float(text)
    if not math.isfinite(x) or not 0 < x <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 10080, not {text}")
    return x
