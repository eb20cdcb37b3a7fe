"""Hypothesis profiles: ``ci`` (deterministic), ``dev`` (default) and ``fuzz`` (long).

Select with HYPOTHESIS_PROFILE=ci|dev|fuzz. ``.ci/run`` uses ``ci``. Failing state-machine
examples print as a replayable list of steps (Hypothesis' stateful reproduction), plus a
blob for ``@reproduce_failure``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=25, stateful_step_count=30, deadline=None,
    print_blob=True, database=None, suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=100, stateful_step_count=40, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=5000, stateful_step_count=100, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
