"""What the vitals and air-quality processors share about anomaly series.

Both score series ``subject * k + signal`` with one :class:`kernels.anomaly.AnomalyScorer`
and write one row per series and minute (``anomaly``, ``air_anomaly``; docs/DATA_MODEL.md):
the minute's largest score, the reading that scored it (``streams.periods.PeriodStats``:
max with one payload) and the kernel's **level** at that reading, kept here as a second
payload under the same rule: a new period resets it, a strictly larger score replaces it
(the earlier sample wins ties, as in ``PeriodStats``).

The level's per-series state is three columns of a :class:`streams.state.Columns`
(:data:`PEAK_LEVEL`), not a state of its own: a ``Columns`` restores a checkpoint written
before a column existed with the column's default, so adding the level leaves older
checkpoints restorable. A level whose tracked peak is not the minute's peak (the minute
in progress when such an older checkpoint was restored) is left out (NaN), never wrong.

Alerts: a score at or above the enter threshold opens an episode (hysteresis,
``streams.episodes``) unless the series has too little history; the signs of one subject
that open at the same reading share one alert (the alert id is type, subject and start).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from kernels.anomaly import COLUMNS, AnomalyScorer
from streams.config import WorkerConfig
from streams.episodes import episode_starts
from streams.periods import PeriodGroups
from streams.state import Columns

_NO_PERIOD = np.iinfo(np.int64).min
_N = COLUMNS.index("n")

#: Per-series columns of the level at the open period's peak (add to a ``Columns`` spec).
PEAK_LEVEL: dict[str, tuple[str, float]] = {
    "peak_period": ("i8", float(_NO_PERIOD)),
    "peak_score": ("f8", -np.inf),
    "peak_level": ("f8", np.nan),
}


@dataclass(frozen=True)
class ClosedLevels:
    """Periods a batch closed, with the peak and the level at it."""

    series: np.ndarray  # int64
    period: np.ndarray  # int64
    peak: np.ndarray  # float64
    level: np.ndarray  # float64


@njit(cache=True, nogil=True)
def _track(
    series: np.ndarray,
    period: np.ndarray,
    score: np.ndarray,
    level: np.ndarray,
    s_period: np.ndarray,
    s_peak: np.ndarray,
    s_level: np.ndarray,
    c_series: np.ndarray,
    c_period: np.ndarray,
    c_peak: np.ndarray,
    c_level: np.ndarray,
) -> int:
    """One pass in arrival order (``PeriodStats``'s peak rule); returns the periods closed."""
    k = 0
    for i in range(series.size):
        s = series[i]
        p = period[i]
        if s_period[s] != p:
            if s_period[s] != _NO_PERIOD:
                c_series[k] = s
                c_period[k] = s_period[s]
                c_peak[k] = s_peak[s]
                c_level[k] = s_level[s]
                k += 1
            s_period[s] = p
            s_peak[s] = -np.inf
            s_level[s] = np.nan
        if score[i] > s_peak[s]:
            s_peak[s] = score[i]
            s_level[s] = level[i]
    return k


class PeakLevels:
    """The kernel's level at each open period's peak score, per series (in ``columns``,
    which must hold :data:`PEAK_LEVEL`)."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns

    def update(
        self, series: np.ndarray, period: np.ndarray, score: np.ndarray, level: np.ndarray
    ) -> ClosedLevels:
        """Absorb the samples given to ``PeriodStats.update`` (same order, finite scores)."""
        n = series.size
        c = self.columns
        out_s, out_p = np.empty(n, np.int64), np.empty(n, np.int64)
        out_peak, out_level = np.empty(n), np.empty(n)
        k = _track(
            series, period, score, level, c["peak_period"], c["peak_score"], c["peak_level"],
            out_s, out_p, out_peak, out_level,
        )  # fmt: skip
        return ClosedLevels(out_s[:k], out_p[:k], out_peak[:k], out_level[:k])

    def levels(self, groups: PeriodGroups, closed: ClosedLevels | None = None) -> np.ndarray:
        """Level at the peak of each group: open periods from the columns, periods the
        batch closed from ``closed``; NaN where the tracked peak is not the group's."""
        c = self.columns
        s = groups.series
        out = np.full(groups.size, np.nan)
        now = (c["peak_period"][s] == groups.period) & (c["peak_score"][s] == groups.peak)
        out[now] = c["peak_level"][s[now]]
        if closed is not None and closed.series.size:
            # a series closes a period once (periods never go back): match on (series, period)
            key = closed.series << 32 | (closed.period - closed.period.min())
            want = s << 32 | (groups.period - closed.period.min())
            order = np.argsort(key)
            pos = np.minimum(np.searchsorted(key[order], want), order.size - 1)
            hit = order[pos]
            ok = ~now & (key[hit] == want) & (closed.peak[hit] == groups.peak)
            out[ok] = closed.level[hit[ok]]
        return out


def minute_fields(groups: PeriodGroups, level: np.ndarray) -> dict[str, np.ndarray]:
    """Fields of an ``anomaly`` / ``air_anomaly`` row (docs/DATA_MODEL.md)."""
    return {
        "score_max": groups.peak,
        "value_at_max": groups.at_peak,
        "level": level,
        "readings": groups.count,
    }


def episode_alerts(
    scorer: AnomalyScorer,
    opened: np.ndarray,
    series: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    score: np.ndarray,
    level: np.ndarray | None,
    *,
    type_: str,
    signals: tuple[str, ...],
    config: WorkerConfig,
    hold: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Alerts of the samples that open an anomaly episode, as ``(subject, fields)``.

    Series are ``subject * len(signals) + signal``; hysteresis ``config.anomaly_enter`` /
    ``anomaly_exit``. Held back (and no episode opened): series with fewer than
    ``config.anomaly_min_samples`` readings, and the starts ``hold`` (given the
    start indices) marks. Signals of one subject that open at the same reading share one
    alert (the highest score's; docs/ALERTS.md). ``level``: the kernel's level at each
    sample (``update_with_level``; NaN in the evidence when not given).
    """
    enter = config.anomaly_enter
    starts = episode_starts(series, score, enter, config.anomaly_exit, opened)
    if starts.size == 0:
        return []
    held = scorer.export_state(series[starts])["state"][:, _N] < config.anomaly_min_samples
    if hold is not None:
        held |= hold(starts)
    opened[series[starts[held]]] = 0
    k = len(signals)
    groups: dict[tuple[int, float], list[int]] = {}
    for i in starts[~held].tolist():
        groups.setdefault((int(series[i]) // k, float(t[i])), []).append(i)
    alerts = []
    for (subject, ts), group in groups.items():
        i = max(group, key=lambda j: float(score[j]))
        name, value = signals[int(series[i]) % k], float(x[i])
        expected = math.nan if level is None else float(level[i])
        alerts.append(
            (
                subject,
                {
                    "type": type_,
                    "severity": "warning",
                    "start": ts,
                    "sensor_ts": ts,
                    "message": f"unusual {name} {value:g} (expected {expected:.3g})",
                    "value": value,
                    "evidence": {
                        "signal": name,
                        "value": value,
                        "score": float(score[i]),
                        "threshold": enter,
                        "level": expected,
                        "signals": [signals[int(series[j]) % k] for j in group],
                    },
                },
            )
        )
    return alerts
