"""The compiled per-row passes of streams.rows equal the NumPy calls they replace, and the
district board's pair counts equal ``np.unique``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.district import _pair_counts
from streams.rows import advance, first_rows

_times = st.sampled_from([0.0, 30.0, 59.9, 60.0, 61.0, 125.0, -1.0, np.nan, np.inf])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=30), st.integers(0, 3))
def test_first_rows_are_those_of_np_unique(codes, extra) -> None:
    arr = np.array(codes, dtype=np.int32)
    m = (max(codes) + 1 if codes else 0) + extra
    first = first_rows(arr, m)
    used, rows = np.unique(arr, return_index=True)
    assert np.array_equal(np.flatnonzero(first >= 0), used)
    assert np.array_equal(first[used], rows)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), _times), max_size=25),
    st.lists(_times, min_size=8, max_size=8),
    st.lists(_times, min_size=4, max_size=4),
    st.lists(st.integers(-1, 3), min_size=4, max_size=4),
)
def test_advance_equals_the_numpy_scatters(rows, marks, last, counted) -> None:
    dev = np.array([r[0] for r in rows], dtype=np.int64)
    series = dev * 2 + np.array([r[1] for r in rows], dtype=np.int64)
    ts = np.array([r[2] for r in rows], dtype=np.float64)
    mark = np.array(marks)
    last_ts = np.array(last)
    minutes = np.array(counted, dtype=np.int64)
    # what the processor did with NumPy
    want_fresh = ts > mark[series]
    want_mark = mark.copy()
    np.maximum.at(want_mark, series[want_fresh], ts[want_fresh])
    want_last = last_ts.copy()
    with np.errstate(invalid="ignore"):
        np.maximum.at(want_last, dev, ts)
        minute = (ts // 60).astype(np.int64)
    want_new = np.isfinite(ts) & (minute > minutes[dev])
    want_counted = minutes.copy()
    np.maximum.at(want_counted, dev[want_new], minute[want_new])

    fresh = np.empty(ts.size, dtype=np.bool_)
    new = np.empty(ts.size, dtype=np.bool_)
    row_minute = np.empty(ts.size, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        advance(series, dev, ts, mark, last_ts, minutes, fresh, new, row_minute)
    assert np.array_equal(fresh, want_fresh)
    assert np.array_equal(mark, want_mark, equal_nan=True)
    assert np.array_equal(last_ts, want_last, equal_nan=True)
    assert np.array_equal(new, want_new)
    assert np.array_equal(minutes, want_counted)
    finite = np.isfinite(ts)
    assert np.array_equal(row_minute[finite], minute[finite])
    assert (row_minute[~finite] == np.iinfo(np.int64).min).all()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3000)), min_size=1, max_size=40),
    st.sampled_from([29_000_000, -5, np.iinfo(np.int64).min + 4000]),
    st.booleans(),
)
def test_pair_counts_equal_np_unique(pairs, base, nan_row) -> None:
    code = np.array([p[0] for p in pairs], dtype=np.int64)
    minute = np.array([p[1] for p in pairs], dtype=np.int64) + base
    if nan_row:  # a row without a finite time has minute int64 min (streams.rows)
        code = np.append(code, 1)
        minute = np.append(minute, np.iinfo(np.int64).min)
    keys, counts = _pair_counts(code, minute)
    want_keys, want_counts = np.unique(code << 32 | minute, return_counts=True)
    assert np.array_equal(keys, want_keys)
    assert np.array_equal(counts, want_counts)
