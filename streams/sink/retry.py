"""Exponential backoff with jitter up to a deadline (AWS Architecture Blog, "Exponential
Backoff And Jitter", 2015: the "equal jitter" variant, so a retry never fires at once)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from streams.sink.errors import RetryableError, SinkUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How long and how often to retry a transient failure.

    Attempt ``k`` (1-based) waits ``d/2 + uniform(0, d/2)`` with
    ``d = min(max_delay_s, initial_delay_s * multiplier**(k-1))``, or the server's
    ``Retry-After`` if larger; the call gives up when the next wait would pass
    ``deadline_s`` after the first attempt.
    """

    initial_delay_s: float = 0.1
    max_delay_s: float = 5.0
    multiplier: float = 2.0
    deadline_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int) -> float:
        """Jittered wait before retry number ``attempt`` (1-based)."""
        d = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (attempt - 1))
        return d / 2 + self.rng.uniform(0, d / 2)


@dataclass
class RetryStats:
    """Counters a sink exposes (tests and the live display read them)."""

    writes: int = 0
    points: int = 0
    bytes: int = 0
    retries: int = 0
    failures: int = 0


#: How often a retry wait polls ``give_up`` (s).
_GIVE_UP_POLL_S = 0.2


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    stats: RetryStats | None = None,
    on_retry: Callable[[int, float, str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    give_up: Callable[[], bool] | None = None,
) -> T:
    """Run ``fn``; on :class:`RetryableError` wait and retry until ``policy.deadline_s``.

    ``on_retry(attempt, wait_s, reason)`` is called before each wait (live displays, tests).
    ``give_up()`` is polled during each wait (every 0.2 s at most): once it is true the
    retrying ends at once (a worker giving its partition away must not sit out the
    deadline while InfluxDB is down; the next owner writes the same points).

    Raises
    ------
    SinkUnavailableError
        When the deadline would pass before the next attempt, or ``give_up()`` turned true.
    """
    start = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except RetryableError as exc:
            attempt += 1
            wait = max(policy.delay(attempt), exc.retry_after or 0.0)
            elapsed = time.monotonic() - start
            if elapsed + wait > policy.deadline_s:
                if stats is not None:
                    stats.failures += 1
                raise SinkUnavailableError(
                    f"{what}: InfluxDB unavailable after {attempt} attempts in {elapsed:.1f}s: "
                    f"{exc}"
                ) from None
            if stats is not None:
                stats.retries += 1
            log.warning("%s failed (%s); retry %d in %.2fs", what, exc, attempt, wait)
            if on_retry is not None:
                on_retry(attempt, wait, str(exc))
            if give_up is None:
                sleep(wait)
                continue
            until = time.monotonic() + wait
            while not give_up():
                left = until - time.monotonic()
                if left <= 0:
                    break
                sleep(min(left, _GIVE_UP_POLL_S))
            else:
                raise SinkUnavailableError(
                    f"{what}: given up after {attempt} attempts: {exc}"
                ) from None
