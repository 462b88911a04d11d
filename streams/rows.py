"""Compiled per-row bookkeeping of a batch: first row per device, replay watermarks,
last-seen times and the minutes each device was first seen in.

These used to be a dozen NumPy calls per batch (``np.unique`` sorts, ``ufunc.at``
scatters), each paying its set-up on ~1,000 rows; one pass each here, with exactly the
NumPy semantics they replace (noted per function).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Minute of a row whose time is NaN or infinite (NumPy's float -> int64 cast on x86).
_NO_MINUTE = np.iinfo(np.int64).min


@njit(cache=True, nogil=True)
def first_rows(codes: np.ndarray, m: int) -> np.ndarray:
    """int64[m]: the first row of each dictionary code (-1: unused); the rows of
    ``np.unique(codes, return_index=True)``, indexed by code."""
    first = np.full(m, -1, np.int64)
    for i in range(codes.size - 1, -1, -1):
        first[codes[i]] = i
    return first


@njit(cache=True, nogil=True)
def advance(
    series: np.ndarray,
    dev: np.ndarray,
    ts: np.ndarray,
    mark: np.ndarray,
    last_ts: np.ndarray,
    counted: np.ndarray,
    fresh: np.ndarray,
    new_minute: np.ndarray,
    minutes: np.ndarray,
) -> None:
    """Freshness and watermarks of one batch, in place.

    ``fresh[i]``: ``ts[i]`` after its series' watermark *as the batch found it*; then
    each watermark moves to its newest fresh row (``np.maximum.at(mark, series[fresh],
    ts[fresh])``) and each device's last-seen time to its newest row
    (``np.maximum.at(last_ts, dev, ts)``: NaN propagates). ``new_minute[i]``: the
    row's minute ``ts // 60`` is after the device's counted minute as the batch found
    it; counted minutes then move to the newest of those. ``minutes[i]``: the row's
    minute, ``(ts // 60).astype(np.int64)`` (``_NO_MINUTE`` where ``ts`` is not finite:
    what that cast gives on x86), so callers need no float division of their own.
    """
    n = ts.size
    for i in range(n):
        t = ts[i]
        fresh[i] = t > mark[series[i]]
        finite = np.isfinite(t)
        minutes[i] = np.int64(t // 60.0) if finite else _NO_MINUTE
        new_minute[i] = finite and minutes[i] > counted[dev[i]]
    for i in range(n):
        t = ts[i]
        if fresh[i] and t > mark[series[i]]:
            mark[series[i]] = t
        d = dev[i]
        v = last_ts[d]
        if v == v and (t != t or t > v):
            last_ts[d] = t
        if new_minute[i] and minutes[i] > counted[d]:
            counted[d] = minutes[i]
