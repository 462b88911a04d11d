"""Per-tick wall-clock figures of the runner (simulators.timing) and the order of a
real-time tick: generated before its target time, published at it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulators.runner as runner_module
from simulators.base import Message
from simulators.publisher import NullPublisher
from simulators.runner import Runner
from simulators.timing import BIN_S, MAX_S, WallHistogram


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 5.0, allow_nan=False), min_size=1, max_size=300))
def test_histogram_percentiles_are_the_exact_ones_to_the_bin(values: list[float]) -> None:
    h = WallHistogram()
    for v in values:
        h.add(v)
    assert h.n == len(values)
    assert h.max == max(values)
    for q in (50.0, 99.0):
        exact = float(np.percentile(values, q, method="inverted_cdf"))
        # upper edge of the exact order statistic's bin, never above the maximum
        assert h.percentile(q) == min((int(exact / BIN_S) + 1) * BIN_S, max(values))


def test_histogram_empty_negative_and_beyond_range() -> None:
    h = WallHistogram()
    assert h.summary() == {"p50": None, "p99": None, "max": None}
    h.add(-0.5)  # a tick early is not late
    assert h.summary() == {"p50": 0.0, "p99": 0.0, "max": 0.0}
    h.add(MAX_S * 3)  # counted in the last bin, reported by its true maximum
    assert h.max == MAX_S * 3
    assert h.percentile(100.0) == MAX_S * 3


class _Recording:
    """A simulator that logs its ticks into a shared event list."""

    name = "rec"
    device_count = 1

    def __init__(self, events: list[tuple[str, float]]) -> None:
        self.events = events

    def tick(self, now: float) -> list[Message]:
        self.events.append(("tick", now))
        return [(f"city/d/rec/r-{int(now * 10)}/vitals", b'{"ts":%.3f}' % now)]

    def truth(self) -> list[dict[str, object]]:
        return []


class _LoggingPublisher(NullPublisher):
    def __init__(self, events: list[tuple[str, float]]) -> None:
        super().__init__()
        self.events = events

    def publish_many(self, messages):  # type: ignore[no-untyped-def]
        self.events.append(("publish", len(messages)))
        return super().publish_many(messages)


def test_real_time_tick_is_generated_before_its_wait_and_published_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[tuple[str, float]] = []
    # every target lies in the future: each tick waits, and the wait is logged, not slept
    monkeypatch.setattr(runner_module.time, "sleep", lambda s: events.append(("sleep", s)))
    r = Runner(
        [_Recording(events)],
        _LoggingPublisher(events),
        tick_s=0.1,
        duration=0.5,
        start=1000.0,
        speed=1e-6,
    )
    r.run()
    kinds = [k for k, _ in events]
    # tick 0's target is the start itself: nothing to wait for
    assert kinds == ["tick", "publish"] + ["tick", "sleep", "publish"] * 4
    assert [v for k, v in events if k == "tick"] == pytest.approx(
        [1000.0, 1000.1, 1000.2, 1000.3, 1000.4]
    )
    assert r.stats.published == 5
    summary = r.summary()
    assert set(summary["tick_wall_s"]) == {"late_s", "generate_s", "publish_s"}
    assert r.times.late.n == r.times.generate.n == r.times.publish.n == 5


def test_fast_runs_record_no_lateness() -> None:
    events: list[tuple[str, float]] = []
    r = Runner(
        [_Recording(events)], NullPublisher(), tick_s=0.1, duration=1.0, start=0.0, speed=None
    )
    r.run()
    assert r.times.generate.n == r.times.publish.n == 10
    assert r.times.late.n == 0
    assert r.summary()["tick_wall_s"]["late_s"] == {"p50": None, "p99": None, "max": None}
