"""The simulated clock keeps every timestamp inside the contract's time window."""

from __future__ import annotations

import time

import pytest

from ingest.contract import DEFAULT_MAX_AGE_S, MAX_FUTURE_S, decode
from simulators.runner import simulated_start
from tests.simulators.helpers import run_inprocess


def test_start_rules() -> None:
    now = 1_780_000_000.0
    assert simulated_start(60, 1.0, now) == now
    assert simulated_start(60, 0.5, now) == now
    assert simulated_start(60, None, now) == now - 60
    assert simulated_start(100, 4.0, now) == now - 75  # 100 s in 25 wall s: catch up at end
    assert simulated_start(30 * 86400, None, now) == now - (DEFAULT_MAX_AGE_S - 3600)


@pytest.mark.parametrize("speed", [None, 50.0])
def test_fast_run_timestamps_are_valid_at_the_end(speed: float | None) -> None:
    """Worst case for the future limit: everything is checked at the moment the run ends
    (simulated time then equals the wall clock at the latest)."""
    duration = 10.0
    start = simulated_start(duration, speed)
    msgs, _, _ = run_inprocess(
        "smoke", seed=1, duration=duration, start=start, wearable=10, eldercare=3, airq=2
    )
    assert msgs
    now = time.time()
    newest = start + duration
    assert newest <= now + MAX_FUTURE_S
    for topic, payload in msgs:
        decode(topic, payload, now=now)  # raises ContractViolation if out of the window
