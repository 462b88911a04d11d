"""The fused compiled pass of streams.escalation equals a naive reference: per reading,
the latest signs (stale after ``MAX_AGE_S``), ``kernels.news2.score`` of them, and the
episode rules of docs/ALERTS.md, one reading at a time in Python."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import news2
from streams.escalation import LATEST_STATE, MAX_AGE_S, NEWS2_STATE, news2_escalations
from streams.state import Columns

CLEAR_S = 10.0
_MEDIUM = news2.BANDS.index("medium")
# values around the NEWS2 chart boundaries of each sign, and missing
_HR = st.sampled_from([math.nan, 40.0, 50.0, 70.0, 95.0, 115.0, 135.0])
_SPO2 = st.sampled_from([math.nan, 91.0, 93.0, 95.0, 97.0])
_TEMP = st.sampled_from([math.nan, 35.0, 36.7, 38.5, 39.5])
_RR = st.sampled_from([math.nan, 8.0, 10.0, 15.0, 22.0, 26.0])


def reference(dev: list[int], t: list[float], values: list[tuple[float, ...]]) -> list[tuple]:
    """(row, band, previous, total, partial, inputs) of each escalation, naively."""
    latest: dict[tuple[int, int], tuple[float, float]] = {}
    band_of: dict[int, int] = {}
    alerted: dict[int, int] = {}
    below: dict[int, float] = {}
    events = []
    for i, (d, ti, signs) in enumerate(zip(dev, t, values, strict=True)):
        inputs = []
        for s, v in enumerate(signs):
            if math.isfinite(v):
                latest[d, s] = (v, ti)
            value, at = latest.get((d, s), (math.nan, -math.inf))
            inputs.append(value if ti - at <= MAX_AGE_S else math.nan)
        hr, spo2, temp, rr = inputs
        nan = math.nan
        res = news2.score(rr, spo2, nan, temp, nan, hr, nan)
        band = int(res.band_code)
        previous = band_of.get(d, -1)
        if band >= _MEDIUM:
            below.pop(d, None)
            if band > alerted.get(d, -1):
                alerted[d] = band
                events.append((i, band, previous, int(res.total), bool(res.partial), inputs))
        elif alerted.get(d, -1) >= 0:
            if d not in below:
                below[d] = ti
            elif ti - below[d] >= CLEAR_S:
                alerted[d] = -1
                del below[d]
        band_of[d] = band
    return events


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2), st.sampled_from([1.0, 5.0, 30.0, 70.0]), _HR, _SPO2, _TEMP, _RR
        ),
        max_size=60,
    ),
    st.integers(1, 7),
)
def test_escalations_equal_the_naive_reference(readings, chunk) -> None:
    clock = [1_763_700_000.0] * 3  # each device's readings in time order
    dev, t, values = [], [], []
    for d, step, *signs in readings:
        clock[d] += step
        dev.append(d)
        t.append(clock[d])
        values.append(tuple(signs))
    want = reference(dev, t, values)

    state, latest = Columns(NEWS2_STATE, 3), Columns(LATEST_STATE, 12)
    got = []
    for a in range(0, len(dev), chunk):  # chunked: the state carries across calls
        ev = news2_escalations(
            np.array(dev[a : a + chunk], dtype=np.int64),
            np.array(t[a : a + chunk]),
            np.array(values[a : a + chunk]).reshape(-1, 4),
            {k: state[k] for k in NEWS2_STATE},
            {k: latest[k] for k in LATEST_STATE},
            CLEAR_S,
        )
        got += [
            (a + r, b, p, tot, part, inp)
            for r, b, p, tot, part, inp in zip(
                ev.row.tolist(),
                ev.band.tolist(),
                ev.previous.tolist(),
                ev.total.tolist(),
                ev.partial.tolist(),
                ev.inputs.tolist(),
                strict=True,
            )
        ]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g[:5] == w[:5]
        np.testing.assert_array_equal(g[5], w[5])
