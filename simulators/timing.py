"""Where a real-time run's lateness comes from: per-tick wall-clock figures, summarised.

A message generated for simulated time ``t`` carries ``t`` as its sensor timestamp, so in
real time every second the runner spends between ``t`` and the moment the message is on
the socket is latency a device would not add (a device samples and sends; it does not
simulate a thousand others first). The runner records, per tick:

* ``late`` -- wall time when the tick's publication returned minus the tick's target
  time: the simulator's own share of the sensor-to-alert latency of that tick's messages;
* ``generate`` -- wall time spent in the simulators' ``tick`` (models, events, JSON);
* ``publish`` -- wall time in ``publish_many``: encoding, socket writes, and waiting for
  PUBACKs while the in-flight window is full (a slow broker shows up here).

Values go into fixed 1-ms histograms (bounded memory whatever the run's length);
percentiles are read from them, so they are exact to the millisecond.
"""

from __future__ import annotations

import numpy as np

#: Histogram resolution and range: 1 ms bins up to 10 minutes (the last bin holds more).
BIN_S = 0.001
MAX_S = 600.0


class WallHistogram:
    """Counts of non-negative durations in :data:`BIN_S` bins, with the exact maximum."""

    def __init__(self) -> None:
        self.counts = np.zeros(int(MAX_S / BIN_S) + 1, dtype=np.int64)
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Record one duration (negative values count as 0)."""
        s = max(seconds, 0.0)
        self.counts[min(int(s / BIN_S), self.counts.size - 1)] += 1
        self.n += 1
        if s > self.max:
            self.max = s

    def percentile(self, q: float) -> float | None:
        """Upper edge of the bin holding the ``q``-th percentile (``None`` when empty)."""
        if self.n == 0:
            return None
        rank = max(int(np.ceil(q / 100.0 * self.n)), 1)
        b = int(np.searchsorted(np.cumsum(self.counts), rank))
        if b == self.counts.size - 1:  # the overflow bin: only the maximum is known
            return self.max
        return min((b + 1) * BIN_S, self.max)

    def summary(self) -> dict[str, float | None]:
        """``{"p50", "p99", "max"}`` in seconds, rounded to the millisecond."""
        if self.n == 0:
            return {"p50": None, "p99": None, "max": None}
        p50, p99 = self.percentile(50), self.percentile(99)
        return {
            "p50": round(p50, 3) if p50 is not None else None,
            "p99": round(p99, 3) if p99 is not None else None,
            "max": round(self.max, 3),
        }


class TickTimes:
    """Per-tick ``late``, ``generate`` and ``publish`` histograms (module docstring)."""

    def __init__(self) -> None:
        self.late = WallHistogram()
        self.generate = WallHistogram()
        self.publish = WallHistogram()

    def summary(self) -> dict[str, dict[str, float | None]]:
        return {
            "late_s": self.late.summary(),
            "generate_s": self.generate.summary(),
            "publish_s": self.publish.summary(),
        }
