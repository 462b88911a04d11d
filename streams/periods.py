"""Running per-series aggregates over fixed periods (second, minute, hour), in arrays.

Per-minute anomaly maxima, per-second activity statistics and hourly pollutant averages
all need the same thing: group a batch's samples by ``(series, period)`` and merge the
group of a series' *current* period with what earlier batches accumulated. A period is
written to InfluxDB when it **closes** (a later period of the series arrives) and, while
open, at each commit step (:meth:`PeriodStats.flush`, an upsert: same series and period
start overwrite). So a period is written about once per commit, not once per batch, and
its final write holds the whole period however the samples were split into batches.

Inputs must be in time order per series (the worker drops readings at or before a
device's watermark), so a series' periods never go back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
        """Absorb samples (finite ``value`` only); return the periods this batch closed."""
        payload = value if payload is None else payload
        order = np.lexsort((period, series))  # stable: arrival order within a group
        s, p = series[order], period[order]
        v = value[order].astype(np.float64)
        w, tt = payload[order].astype(np.float64), t[order].astype(np.float64)
        n = s.size
        if n == 0:
            return self._rows(np.empty(0, np.int64))
        new = np.ones(n, dtype=bool)
        new[1:] = (s[1:] != s[:-1]) | (p[1:] != p[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], n)
        gid = np.cumsum(new) - 1
        count = ends - starts
        total = np.add.reduceat(v, starts)
        total_sq = np.add.reduceat(v * v, starts)
        peak = np.maximum.reduceat(v, starts)
        maxpos = np.flatnonzero(v == peak[gid])
        at_peak = w[maxpos[np.unique(gid[maxpos], return_index=True)[1]]]
        last, t_last = w[ends - 1], tt[ends - 1]
        gs, gp = s[starts], p[starts]
        st = self._state
        head = np.ones(gs.size, dtype=bool)  # first group of each series in the batch
        head[1:] = gs[1:] != gs[:-1]
        acc_period = st["period"][gs]
        same = head & (acc_period == gp)  # continues the period earlier batches started
        replaced = gs[head & ~same & (acc_period != _NO_PERIOD) & (st["dirty"][gs] == 1)]
        closed_before = self._rows(replaced)  # copies (fancy indexing) before overwriting
        if same.any():
            a = gs[same]
            count[same] += st["count"][a]
            total[same] += st["total"][a]
            total_sq[same] += st["total_sq"][a]
            keep_old = st["peak"][a] >= peak[same]  # an earlier sample wins ties
            at_peak[same] = np.where(keep_old, st["at_peak"][a], at_peak[same])
            peak[same] = np.maximum(peak[same], st["peak"][a])
        tail = np.append(gs[1:] != gs[:-1], True)  # last (still open) period of each series
        merged = PeriodGroups(gs, gp, count, total, total_sq, peak, at_peak, last, t_last)
        t_ser = gs[tail]
        st["period"][t_ser] = gp[tail]
        for k in _FIELDS:
            st[k][t_ser] = getattr(merged, k)[tail]
        st["dirty"][t_ser] = 1
        inner = ~tail
        closed_here = PeriodGroups(
            *(getattr(merged, k)[inner] for k in ("series", "period", *_FIELDS))
        )
        return PeriodGroups.concat([closed_before, closed_here])

    def flush(self) -> PeriodGroups:
        """The open periods changed since the last flush (upserts), and forget the marks."""
        dirty = np.flatnonzero(self._state["dirty"] == 1)
        self._state["dirty"][dirty] = 0
        return self._rows(dirty)
