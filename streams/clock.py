"""The worker's notion of "now" for timers: sensor time that keeps running when data stops.

Offline and inactivity timers compare sensor timestamps with "now". Wall-clock time would
flag every device of a replayed recording as offline at once; pure sensor time would stop
when every device stops (and then nothing is ever offline). So "now" is the newest
sensor time seen plus the wall time elapsed since it was seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StreamClock:
    """Newest sensor time seen, advanced by wall time since then (thread-safe)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._sensor = float("-inf")
        self._seen_at = 0.0

    def observe(self, sensor_ts: float) -> None:
        """Note a batch's newest sensor time."""
        with self._lock:
            if sensor_ts > self._sensor:
                self._sensor = sensor_ts
                self._seen_at = self._wall()

    def now(self) -> float:
        """Sensor "now"; ``-inf`` before any sensor time was seen (timers then wait)."""
        with self._lock:
            if self._sensor == float("-inf"):
                return self._sensor
            return self._sensor + (self._wall() - self._seen_at)
