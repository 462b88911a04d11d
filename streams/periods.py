"""Running per-series aggregates over fixed periods (second, minute, hour), in arrays.

Per-minute anomaly maxima, per-second activity statistics and hourly pollutant averages
all need the same thing: group a batch's samples by ``(series, period)`` and merge the
group of a series' *current* period with what earlier batches accumulated. A period is
written to InfluxDB when it **closes** (a later period of the series arrives) and, while
open, at each commit step (:meth:`PeriodStats.flush`, an upsert: same series and period
start overwrite). So a period is written about once per commit, not once per batch, and
its final write holds the whole period however the samples were split into batches.

Inputs must be in time order per series (the worker drops readings at or before a
device's watermark), so a series' periods never go back. The per-sample merge is one
compiled pass in arrival order (no sort), like the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from kernels._state import DeviceStateArrays

_NO_PERIOD = np.iinfo(np.int64).min
_FIELDS = ("count", "total", "total_sq", "peak", "at_peak", "last", "t_last")


@dataclass(frozen=True)
class PeriodGroups:
    """One row per ``(series, period)``: the period's aggregate so far."""

    series: np.ndarray  # int64
    period: np.ndarray  # int64 period index (e.g. floor(t / 60))
    count: np.ndarray  # int64 samples in the period
    total: np.ndarray  # sum of values
    total_sq: np.ndarray  # sum of squared values
    peak: np.ndarray  # max value
    at_peak: np.ndarray  # payload of the (first) sample with the max value
    last: np.ndarray  # payload of the latest sample
    t_last: np.ndarray  # time of the latest sample

    @property
    def size(self) -> int:
        return int(self.series.size)

    @property
    def mean(self) -> np.ndarray:
        """Mean value per group."""
        return self.total / self.count

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per group (rounding below 0 clipped)."""
        mean = self.mean
        return np.sqrt(np.maximum(self.total_sq / self.count - mean * mean, 0.0))

    @staticmethod
    def concat(parts: list[PeriodGroups]) -> PeriodGroups:
        names = ("series", "period", *_FIELDS)
        return PeriodGroups(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})


@njit(cache=True)
def _accumulate(
    series: np.ndarray,
    period: np.ndarray,
    t: np.ndarray,
    value: np.ndarray,
    payload: np.ndarray,
    s_period: np.ndarray,
    s_count: np.ndarray,
    s_total: np.ndarray,
    s_sq: np.ndarray,
    s_peak: np.ndarray,
    s_at: np.ndarray,
    s_last: np.ndarray,
    s_t: np.ndarray,
    s_dirty: np.ndarray,
    out_series: np.ndarray,
    out_period: np.ndarray,
    out: np.ndarray,
) -> int:
    k = 0
    for i in range(series.size):
        s = series[i]
        p = period[i]
        if s_period[s] != p:
            if s_period[s] != _NO_PERIOD and s_dirty[s]:  # the open period closes
                out_series[k] = s
                out_period[k] = s_period[s]
                out[0, k] = s_count[s]
                out[1, k] = s_total[s]
                out[2, k] = s_sq[s]
                out[3, k] = s_peak[s]
                out[4, k] = s_at[s]
                out[5, k] = s_last[s]
                out[6, k] = s_t[s]
                k += 1
            s_period[s] = p
            s_count[s] = 0
            s_total[s] = 0.0
            s_sq[s] = 0.0
            s_peak[s] = -np.inf
            s_at[s] = np.nan
        v = value[i]
        s_count[s] += 1
        s_total[s] += v
        s_sq[s] += v * v
        if v > s_peak[s]:  # strict: an earlier sample wins ties
            s_peak[s] = v
            s_at[s] = payload[i]
        s_last[s] = payload[i]
        s_t[s] = t[i]
        s_dirty[s] = 1
    return k


class PeriodStats(DeviceStateArrays):
    """Count, sum, sum of squares, max (with a payload at the max), last payload and time
    of the current period of each series; checkpointable like every kernel state."""

    def _initial_state(self, n_devices: int) -> dict[str, np.ndarray]:
        zeros = np.zeros(n_devices)
        return {
            "period": np.full(n_devices, _NO_PERIOD, dtype=np.int64),
            "count": np.zeros(n_devices, dtype=np.int64),
            "total": zeros.copy(),
            "total_sq": zeros.copy(),
            "peak": np.full(n_devices, -np.inf),
            "at_peak": np.full(n_devices, np.nan),
            "last": np.full(n_devices, np.nan),
            "t_last": np.full(n_devices, np.nan),
            "dirty": np.zeros(n_devices, dtype=np.int8),  # changed since the last flush
        }

    def _rows(self, series: np.ndarray) -> PeriodGroups:
        st = self._state
        return PeriodGroups(series, st["period"][series], *(st[k][series] for k in _FIELDS))

    def update(
        self,
        series: np.ndarray,
        period: np.ndarray,
        t: np.ndarray,
        value: np.ndarray,
        payload: np.ndarray | None = None,
    ) -> PeriodGroups:
        """Absorb samples (finite ``value`` only); return the periods this batch closed.

        One pass in arrival order (compiled): a sample whose period differs from its
        series' current one closes the current period (emitted if it changed since the
        last flush) and opens its own.
        """
        payload = value if payload is None else payload
        n = series.size
        st = self._state
        cols = np.empty((len(_FIELDS), n))
        ser = np.empty(n, np.int64)
        per = np.empty(n, np.int64)
        k = _accumulate(
            np.ascontiguousarray(series, dtype=np.int64),
            np.ascontiguousarray(period, dtype=np.int64),
            np.ascontiguousarray(t, dtype=np.float64),
            np.ascontiguousarray(value, dtype=np.float64),
            np.ascontiguousarray(payload, dtype=np.float64),
            st["period"], st["count"], st["total"], st["total_sq"], st["peak"],
            st["at_peak"], st["last"], st["t_last"], st["dirty"], ser, per, cols,
        )  # fmt: skip
        return PeriodGroups(
            ser[:k], per[:k], cols[0, :k].astype(np.int64), *(cols[j, :k] for j in range(1, 7))
        )

    def flush(self) -> PeriodGroups:
        """The open periods changed since the last flush (upserts), and forget the marks."""
        dirty = np.flatnonzero(self._state["dirty"] == 1)
        self._state["dirty"][dirty] = 0
        return self._rows(dirty)
