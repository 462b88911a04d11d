"""NEWS2 band escalations per reading (streams.escalation): decided at the reading that
raises the band, one alert per rise within an episode, stale signs missing, and any
chunking of the readings gives the one-shot result."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import news2
from streams.escalation import LATEST_STATE, NEWS2_STATE, Escalations, news2_escalations
from streams.state import Columns

T0 = 1_763_700_000.0
# heart rate, SpO2, body temperature, respiration rate (RCP 2017 Chart 1 subscores)
NORMAL = (70.0, 97.0, 36.7, 15.0)  # 0 -> low
RED = (135.0, 97.0, 36.7, 15.0)  # HR 3 -> low_medium (single red score)
MEDIUM = (115.0, 93.0, 38.5, 15.0)  # 2 + 2 + 1 = 5 -> medium
HIGH = (135.0, 93.0, 36.7, 22.0)  # 3 + 2 + 2 = 7 -> high
CLEAR_S = 10.0
BAND = {name: code for code, name in enumerate(news2.BANDS)}


class Residents:
    """The escalation state of ``n`` devices, as the vitals processor keeps it."""

    def __init__(self, n: int = 2) -> None:
        self.state = Columns(NEWS2_STATE, n)
        self.latest = Columns(LATEST_STATE, n * 4)

    def run(self, dev, t, values) -> Escalations:
        t = np.asarray(t, dtype=float)
        return news2_escalations(
            np.asarray(dev, dtype=np.int64),
            t,
            np.asarray(values, dtype=float).reshape(t.size, 4),
            {k: self.state[k] for k in NEWS2_STATE},
            {k: self.latest[k] for k in LATEST_STATE},
            CLEAR_S,
        )


def readings(*segments: tuple[tuple[float, ...], int]) -> tuple[np.ndarray, ...]:
    """One device at 1 Hz: ``(signs, seconds)`` segments in order."""
    values = np.concatenate([np.tile(v, (n, 1)) for v, n in segments])
    n = values.shape[0]
    return np.zeros(n, np.int64), T0 + np.arange(n, dtype=float), values


def test_the_reading_that_raises_the_band_alerts_and_a_rise_to_high_alerts_again() -> None:
    dev, t, v = readings((NORMAL, 5), (MEDIUM, 5), (HIGH, 5), (MEDIUM, 3), (HIGH, 3))
    ev = Residents().run(dev, t, v)
    assert ev.row.tolist() == [5, 10]  # the first medium and the first high reading
    assert ev.band.tolist() == [BAND["medium"], BAND["high"]]
    assert ev.previous.tolist() == [BAND["low"], BAND["medium"]]
    assert ev.total.tolist() == [5, 7]
    assert ev.partial.all()
    np.testing.assert_array_equal(ev.inputs, [MEDIUM, HIGH])


def test_low_medium_does_not_alert() -> None:
    dev, t, v = readings((NORMAL, 5), (RED, 30))
    assert Residents().run(dev, t, v).row.size == 0


def test_flicker_is_one_episode_and_a_new_one_after_clearing() -> None:
    flicker = [(MEDIUM, 2), (NORMAL, 3)] * 5  # below medium for 3 s < CLEAR_S at a time
    dev, t, v = readings((NORMAL, 5), *flicker, (NORMAL, 12), (MEDIUM, 2))
    ev = Residents().run(dev, t, v)
    assert ev.row.tolist() == [5, t.size - 2]
    assert ev.previous.tolist() == [BAND["low"], BAND["low"]]


def test_a_stale_sign_counts_as_missing() -> None:
    # MEDIUM's SpO2 (2) and temperature (1) stop coming: 61 s later only HR 2 is left
    v = np.array([MEDIUM, *[(115.0, np.nan, np.nan, 15.0)] * 61])
    t = T0 + np.arange(len(v), dtype=float)
    dev = np.zeros(len(v), np.int64)
    r = Residents()
    assert r.run(dev[:-1], t[:-1], v[:-1]).row.tolist() == [0]
    assert r.state["band"][0] == BAND["medium"]  # 60 s old: still counted
    r.run(dev[-1:], t[-1:], v[-1:])
    assert r.state["band"][0] == BAND["low"]
    # below medium for CLEAR_S closes the episode: the next rise alerts again
    quiet = T0 + 61 + np.arange(1.0, CLEAR_S + 1)
    calm = np.tile(NORMAL, (quiet.size, 1))
    assert r.run(np.zeros(quiet.size, np.int64), quiet, calm).row.size == 0
    assert r.state["alerted"][0] == -1
    assert r.run([0], [quiet[-1] + 1], [MEDIUM]).row.tolist() == [0]


def test_replayed_readings_change_nothing() -> None:
    dev, t, v = readings((NORMAL, 5), (HIGH, 5))
    r = Residents()
    assert r.run(dev, t, v).row.size == 1
    assert r.run(dev, t, v).row.size == 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from([NORMAL, RED, MEDIUM, HIGH, (np.nan, 93.0, np.nan, 22.0)]),
            st.sampled_from([0.5, 1.0, 4.0, 70.0]),
        ),
        max_size=150,
    ),
    st.lists(st.integers(1, 149), max_size=6),
)
def test_any_chunking_equals_one_shot(rows, cuts) -> None:
    n = len(rows)
    dev = np.array([r[0] for r in rows], dtype=np.int64)
    values = np.array([r[1] for r in rows], dtype=float).reshape(n, 4)
    t = T0 + np.cumsum([r[2] for r in rows])
    one = Residents(3)
    whole = one.run(dev, t, values)
    expected = [
        (int(dev[i]), float(t[i]), b, p, s)
        for i, b, p, s in zip(
            whole.row.tolist(),
            whole.band.tolist(),
            whole.previous.tolist(),
            whole.total.tolist(),
            strict=True,
        )
    ]
    chunked = Residents(3)
    got = []
    bounds = sorted({0, n, *(c for c in cuts if c < n)})
    for lo, hi in itertools.pairwise(bounds):
        ev = chunked.run(dev[lo:hi], t[lo:hi], values[lo:hi])
        rows_ = ev.row + lo
        got += [
            (int(dev[i]), float(t[i]), b, p, s)
            for i, b, p, s in zip(
                rows_.tolist(),
                ev.band.tolist(),
                ev.previous.tolist(),
                ev.total.tolist(),
                strict=True,
            )
        ]
    assert got == expected
    for mine, theirs in ((one.state, chunked.state), (one.latest, chunked.latest)):
        a, b = (
            mine.export_state(np.arange(mine.n_devices)),
            theirs.export_state(np.arange(theirs.n_devices)),
        )
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
