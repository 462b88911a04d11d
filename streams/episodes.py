"""Hysteresis over per-series scores: one alert per episode, not per sample.

An episode opens at the first sample with ``value >= enter`` and stays open until a
sample with ``value < exit`` (``exit <= enter``); samples in between neither open nor
close one. This is the classic two-threshold (Schmitt trigger) de-bouncing used by
alarm systems (e.g. IEC 60601-1-8 alarm latching), and it keeps a noisy score hovering
around the threshold from raising an alert on every sample.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _hysteresis(
    series: np.ndarray, value: np.ndarray, enter: float, leave: float, active: np.ndarray
) -> np.ndarray:
    out = np.empty(series.size, np.int64)
    k = 0
    for i in range(series.size):
        v = value[i]
        if v != v:  # NaN: no information
            continue
        s = series[i]
        if active[s]:
            if v < leave:
                active[s] = 0
        elif v >= enter:
            active[s] = 1
            out[k] = i
            k += 1
    return out[:k].copy()


def episode_starts(
    series: np.ndarray, value: np.ndarray, enter: float, leave: float, active: np.ndarray
) -> np.ndarray:
    """Positions (into the arrays) of samples that open an episode; updates ``active``.

    Parameters
    ----------
    series : int64[n]
        Series index of each sample (rows in time order per series).
    value : float64[n]
        Score per sample; NaN is ignored.
    enter, leave
        Opening and closing thresholds (``leave <= enter``).
    active : int8[n_series]
        Per-series open flag, read and written (part of the checkpointed state).
    """
    if series.size == 0:
        return np.empty(0, np.int64)
    return _hysteresis(
        np.ascontiguousarray(series, dtype=np.int64),
        np.ascontiguousarray(value, dtype=np.float64),
        float(enter),
        float(leave),
        active,
    )
