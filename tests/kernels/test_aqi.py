"""US EPA AQI (TAD May 2024), NowCast and categories: exact tables and reference equality."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import aqi
from tests.reference import aqi as ref

# Every boundary of Table 6 (EPA-454/B-24-002), from the reference's own transcription
# of the table (text, independent of the kernel's): pollutant -> (resolution, rows).
BOUNDARIES: dict[str, tuple[float, list[tuple[float, float, int, int]]]] = {
    pollutant: (
        float(ref.TABLE_6[pollutant][0]),
        [(float(lo), float(hi), i_lo, i_hi) for lo, hi, i_lo, i_hi in ref.rows(pollutant)],
    )
    for pollutant in ref.TABLE_6
}


def test_boundary_table_matches_hand_check():
    # Spot values read off the printed table, so a transcription slip cannot hide.
    assert BOUNDARIES["pm25"][1][1] == (9.1, 35.4, 51, 100)
    assert BOUNDARIES["pm25"][1][-1] == (225.5, 325.4, 301, 500)
    assert BOUNDARIES["o3_8h"][1][-1] == (0.106, 0.200, 201, 300)
    assert BOUNDARIES["o3_1h"][1][0] == (0.125, 0.164, 101, 150)
    assert BOUNDARIES["no2"][1][-1] == (1250, 2049, 301, 500)
    assert sorted(BOUNDARIES) == sorted(aqi.POLLUTANTS)


BOUNDARY_CASES = [
    (pollutant, res, row) for pollutant, (res, rows) in BOUNDARIES.items() for row in rows
]


def one(pollutant: str, c: float) -> int:
    return int(aqi.us_epa(pollutant, np.array([c]))[0])


@pytest.mark.parametrize(("pollutant", "res", "row"), BOUNDARY_CASES)
def test_every_breakpoint_both_sides(pollutant, res, row):
    c_lo, c_hi, i_lo, i_hi = row
    # At the breakpoints themselves.
    assert one(pollutant, c_lo) == i_lo
    assert one(pollutant, c_hi) == i_hi
    # Inside the row, just above the lower breakpoint and just below the upper one.
    assert one(pollutant, np.nextafter(c_lo, math.inf)) == i_lo
    assert one(pollutant, c_hi + 0.9 * res) == i_hi  # truncated back to C_hi
    next_grid = round(c_hi + res, 6)  # the decimal next grid value, as its nearest double
    assert one(pollutant, np.nextafter(next_grid, -math.inf)) == i_hi
    # The previous grid value belongs to the previous row (its I_hi).
    below = round(c_lo - res, 6)
    if below >= 0:
        prev = [r for r in BOUNDARIES[pollutant][1] if r[1] == pytest.approx(below)]
        expected = prev[0][3] if prev else aqi.INVALID
        assert one(pollutant, below) == expected
        assert one(pollutant, np.nextafter(c_lo, -math.inf)) == expected


def test_published_examples_and_half_up_rounding():
    # PM2.5 35.9 µg/m³: 49/19.9 * 0.4 + 101 = 101.98 -> 102.
    assert one("pm25", 35.9) == 102
    # 8-h O3 0.078 ppm: 49/14 * 7 + 101 = 125.5 -> 126 (round half up).
    assert one("o3_8h", 0.078) == 126
    # Values that are exactly x.5 with x even: banker's rounding would go down.
    assert one("o3_8h", 0.072) == 105  # 104.5
    assert one("co", 1.1) == 13  # 12.5
    # CO 8.4 ppm: 49/4.9 * 3.9 + 51 = 90.
    assert one("co", 8.4) == 90
    # 1-h O3 0.162 ppm: 49/0.039 * 0.037 + 101 = 147.49 -> 147.
    assert one("o3_1h", 0.162) == 147


def test_truncation_before_lookup():
    assert one("pm25", 9.09) == 50  # 9.0
    assert one("pm25", 35.49) == 100  # 35.4
    assert one("pm10", 54.99) == 50  # 54
    assert one("o3_8h", 0.0709) == 100  # 0.070
    assert one("co", 4.49) == 50  # 4.4
    assert one("so2", 35.9) == 50  # 35
    assert one("no2", 53.999) == 50  # 53


def test_invalid_and_undefined_give_minus_one():
    for pollutant in aqi.POLLUTANTS:
        out = aqi.us_epa(pollutant, [-0.001, -1e300, math.nan, math.inf, -math.inf])
        assert out.tolist() == [-1] * 5
    assert one("o3_8h", 0.201) == -1  # no 8-h index above 0.200 ppm
    assert one("o3_8h", 0.2009) == 300  # truncates to 0.200
    assert one("o3_1h", 0.124) == -1  # no 1-h index below 0.125 ppm
    assert one("o3_1h", 0.1249) == -1


def test_above_table_extrapolates_top_segment_and_saturates():
    # PM2.5 500 µg/m³: 199/99.9 * (500 - 225.5) + 301 = 847.8 -> 848.
    assert one("pm25", 500.0) == 848
    assert one("pm25", 325.5) == 500  # 500.2 -> 500
    assert one("pm25", 325.6) == 500  # 500.398
    assert one("pm25", 325.7) == 501  # 500.598
    assert one("pm10", 605) == 501  # 199/179 * 180 + 301 = 501.1
    assert one("no2", 2050) == 500  # 500.25
    assert one("so2", 1005) == 500  # 199/399 * 400 + 301 = 500.499
    assert one("co", 50.5) == 501  # 199/19.9 * 20 + 301 = 501
    assert one("o3_1h", 0.605) == 501
    assert one("pm25", 1e6) == aqi.AQI_CEILING
    assert one("pm25", 1e300) == aqi.AQI_CEILING


def test_shapes_dtypes_and_errors():
    grid = np.array([[0.0, 9.0], [35.5, math.nan]])
    out = aqi.us_epa("pm25", grid)
    assert out.shape == (2, 2)
    assert out.dtype == np.int64
    assert out.tolist() == [[0, 50], [101, -1]]
    assert aqi.us_epa("pm25", 12.0).shape == ()
    assert aqi.us_epa("pm25", []).shape == (0,)
    assert aqi.us_epa("pm25", np.array([9.0], dtype=np.float32)).tolist() == [50]
    # A non-contiguous view gives the same result as its copy.
    wide = np.arange(0, 100, 0.5)
    assert aqi.us_epa("pm25", wide[::3]).tolist() == aqi.us_epa("pm25", wide[::3].copy()).tolist()
    with pytest.raises(ValueError, match="unknown pollutant"):
        aqi.us_epa("pm1", [1.0])
    with pytest.raises(ValueError, match="numeric"):
        aqi.us_epa("pm25", ["a"])


def test_ozone_combines_averaging_periods():
    out = aqi.us_epa_ozone([0.078, 0.250, 0.050, math.nan], [0.130, 0.250, math.nan, 0.100])
    # max(126, 1-h 0.130 -> 107); 8-h undefined -> 1-h; 1-h missing -> 8-h; neither -> -1.
    assert out.tolist() == [126, one("o3_1h", 0.250), 46, -1]


# ---------------------------------------------------------------------------- NowCast
def test_nowcast_pm_worked_example():
    # EPA "Computing the NowCast" example: oldest..newest 50 80 75 90 82 53 64 74 21 10 16 13,
    # range 80 / max 90 -> w = 0.11 -> floored to 0.5; published result 17.4 µg/m³.
    newest_first = [13, 16, 10, 21, 74, 64, 53, 82, 90, 75, 80, 50]
    expected = sum(0.5**h * c for h, c in enumerate(newest_first)) / sum(0.5**h for h in range(12))
    got = float(aqi.nowcast("pm25", newest_first))
    assert got == pytest.approx(expected, rel=1e-12)
    assert math.floor(got * 10) / 10 == 17.4
    oldest_first = newest_first[::-1]
    assert float(aqi.nowcast("pm10", oldest_first, most_recent="last")) == pytest.approx(got)


def test_nowcast_ozone_worked_example_with_missing_hour():
    # AirNow-Tech (2016) ozone NowCast example, ppb, newest first, hour 5 missing:
    # range 80 - 22 = 58, w = 1 - 58/80 = 0.275 (no 0.5 floor for ozone).
    hours = [63, 69, 80, 74, 60, math.nan, 35, 22]
    w = 0.275
    valid = [(h, c) for h, c in enumerate(hours) if not math.isnan(c)]
    expected = sum(w**h * c for h, c in valid) / sum(w**h for h, _ in valid)
    got = float(aqi.nowcast("o3", hours))
    assert got == pytest.approx(expected, rel=1e-12)
    assert math.floor(got) == 65
    # Extra older hours are ignored: only the most recent 8 count.
    assert float(aqi.nowcast("o3", [*hours, 500.0, 500.0])) == pytest.approx(got)


def test_nowcast_missing_hour_rule_and_edges():
    nan = math.nan
    rows = np.array(
        [
            [nan, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],  # 2 of 3 recent -> valid
            [nan, nan, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],  # 1 of 3 -> NaN
            [10, nan, nan, 10, 10, 10, 10, 10, 10, 10, 10, 10],  # 1 of 3 -> NaN
            [0.0] * 12,  # all zero -> 0
            [5, -1, 5, np.inf, 5, 5, 5, 5, 5, 5, 5, 5],  # negative/inf are missing
        ]
    )
    out = aqi.nowcast("pm25", rows)
    assert out[0] == pytest.approx(10.0)
    assert math.isnan(out[1]) and math.isnan(out[2])
    assert out[3] == 0.0
    assert out[4] == pytest.approx(5.0)
    # Fewer columns than hours: older hours count as missing.
    assert float(aqi.nowcast("pm25", [8.0, 12.0])) == pytest.approx(
        (8 + 12 * 0.6667) / 1.6667, rel=1e-3
    )
    # Ozone has no weight floor: an hour at 0 gives w = 0, and the limit of the formula
    # is the newest valid hour (here hour 1, since hour 0 is missing).
    assert float(aqi.nowcast("o3", [nan, 0.0, 1.0])) == 0.0
    assert float(aqi.nowcast("o3", [nan, 3.0, 0.0])) == 3.0
    # Leading dimensions are kept.
    assert aqi.nowcast("o3", np.ones((3, 4, 8))).shape == (3, 4)
    with pytest.raises(ValueError, match="unknown NowCast"):
        aqi.nowcast("co", [1.0, 2.0])
    with pytest.raises(ValueError, match="hours"):
        aqi.nowcast("pm25", np.empty((3, 0)))
    with pytest.raises(ValueError, match="most_recent"):
        aqi.nowcast("pm25", [1.0], most_recent="middle")  # type: ignore[arg-type]


# -------------------------------------------------------------------------- categories
def test_category_boundaries_names_and_colors():
    values = [0, 50, 51, 100, 101, 150, 151, 200, 201, 300, 301, 500, 848, -1, math.nan]
    cat = aqi.category(values)
    assert cat.index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, -1, -1]
    assert cat.name.tolist()[::2] == [
        "Good",
        "Moderate",
        "Unhealthy for Sensitive Groups",
        "Unhealthy",
        "Very Unhealthy",
        "Hazardous",
        "Hazardous",
        "",
    ]
    assert list(aqi.CATEGORY_COLORS) == [
        "#00E400",
        "#FFFF00",
        "#FF7E00",
        "#FF0000",
        "#8F3F97",
        "#7E0023",
    ]
    assert cat.color[0] == "#00E400" and cat.color[-1] == ""
    assert aqi.category(np.array([[50.4, 50.5]])).index.tolist() == [[0, 1]]


# ------------------------------------------------------------------ reference equality
def _grid_neighbours(pollutant: str) -> list[float]:
    """Every breakpoint, its neighbouring floats and half-steps: the adversarial cases."""
    res = float(ref.TABLE_6[pollutant][0])
    out: list[float] = []
    for c_lo, c_hi, _, _ in ref.rows(pollutant):
        for c in (float(c_lo), float(c_hi), float(c_hi) + res / 2):
            out += [c, np.nextafter(c, math.inf), np.nextafter(c, -math.inf)]
    return out


@pytest.mark.parametrize("pollutant", aqi.POLLUTANTS)
def test_kernel_equals_reference_on_boundaries(pollutant):
    values = _grid_neighbours(pollutant)
    assert aqi.us_epa(pollutant, values).tolist() == ref.aqi_many(pollutant, values)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
scaled = st.builds(lambda m, e: m * 10.0**e, st.floats(-1.0, 10.0), st.integers(-4, 4))
concentrations = st.lists(st.one_of(finite_or_not, scaled), max_size=40)


@settings(max_examples=60, deadline=None)
@given(pollutant=st.sampled_from(aqi.POLLUTANTS), values=concentrations)
def test_kernel_equals_reference_random(pollutant, values):
    assert aqi.us_epa(pollutant, values).tolist() == ref.aqi_many(pollutant, values)


@settings(max_examples=40, deadline=None)
@given(
    pollutant=st.sampled_from(aqi.POLLUTANTS),
    values=st.lists(st.floats(0.0, 3000.0), min_size=2, max_size=30),
)
def test_aqi_is_monotone_in_concentration(pollutant, values):
    ordered = sorted(values)
    out = aqi.us_epa(pollutant, ordered)
    defined = out[out >= 0]
    assert np.all(np.diff(defined) >= 0)


hour_value = st.one_of(st.floats(0.0, 500.0), st.just(math.nan), st.floats(-5.0, -0.1))


@settings(max_examples=60, deadline=None)
@given(
    pollutant=st.sampled_from(tuple(aqi.NOWCAST_POLLUTANTS)),
    rows=st.lists(st.lists(hour_value, min_size=1, max_size=14), min_size=1, max_size=6),
)
def test_nowcast_equals_reference(pollutant, rows):
    width = max(len(r) for r in rows)
    padded = [r + [math.nan] * (width - len(r)) for r in rows]
    hours, w_floor = aqi.NOWCAST_POLLUTANTS[pollutant]
    got = aqi.nowcast(pollutant, np.array(padded))
    expected = [ref.nowcast(r, hours, w_floor) for r in padded]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-10, 2000), st.just(math.nan)), max_size=30))
def test_category_equals_reference(values):
    assert aqi.category(values).index.tolist() == [ref.category_index(v) for v in values]


@settings(max_examples=20, deadline=None)
@given(values=concentrations, cut=st.integers(0, 40))
def test_chunked_equals_one_shot(values, cut):
    # Stateless: any split of a batch gives exactly the whole batch's result.
    whole = aqi.us_epa("pm25", np.array(values, dtype=np.float64))
    parts = [
        aqi.us_epa("pm25", np.array(p, dtype=np.float64)) for p in (values[:cut], values[cut:])
    ]
    assert np.concatenate(parts).tolist() == whole.tolist()


# ---------------------------------------------------------------------- NowCast stream
def test_stream_matches_batch_nowcast_and_handles_gaps():
    stream = aqi.NowCastStream(2, "pm25")
    hours = np.arange(100, 112)
    values = np.array([50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13], dtype=float)
    out = stream.update(np.zeros(12, np.int64), hours, values)
    assert out[-1] == pytest.approx(float(aqi.nowcast("pm25", values, most_recent="last")))
    # The first hour alone: 1 of 3 recent hours valid -> NaN; the second makes 2 of 3.
    assert math.isnan(out[0]) and not math.isnan(out[1])
    # A gap of 2 hours: the skipped hours are missing, so only 1 of 3 recent is valid.
    assert math.isnan(stream.update([0], [114], [20.0])[0])
    # The same hour again replaces its value (a correction).
    first = stream.update([0], [115], [30.0])[0]
    again = stream.update([0], [115], [31.0])[0]
    assert again > first
    # A late hour is skipped and leaves the state alone.
    before = stream.export_state([0])
    assert math.isnan(stream.update([0], [110], [999.0])[0])
    after = stream.export_state([0])
    np.testing.assert_array_equal(before["window"], after["window"])
    # Station 1 is independent.
    assert math.isnan(stream.update([1], [115], [5.0])[0])


def test_stream_validates_before_changing_state():
    stream = aqi.NowCastStream(2, "o3")
    stream.update([0, 0], [1, 2], [0.05, 0.06])
    snapshot = stream.export_state([0, 1])
    for args in (
        ([0, 5], [3, 3], [1.0, 1.0]),  # station out of range
        ([-1, 0], [3, 3], [1.0, 1.0]),  # negative station (int64: the one-pass check)
        ([0], [3, 4], [1.0, 1.0]),  # length mismatch
        ([0], [3.5], [1.0]),  # not a whole hour
        ([0], [2**60], [1.0]),  # beyond the exact range
        ([0], np.array([1e300]), [1.0]),  # a float the int64 cast would wrap
        ([0], np.array([-(2**63)], dtype=np.int64), [1.0]),  # np.abs(int64 min) < 0
        ([0], np.array([2**63], dtype=np.uint64), [1.0]),  # wraps to the sentinel
        ([0], ["x"], [1.0]),  # not a number
    ):
        with pytest.raises(ValueError):
            stream.update(*args)
    np.testing.assert_array_equal(stream.export_state([0, 1])["window"], snapshot["window"])
    with pytest.raises(ValueError, match="unknown NowCast"):
        aqi.NowCastStream(1, "co")  # type: ignore[arg-type]


def test_stream_checkpoint_and_grow():
    a = aqi.NowCastStream(3)
    a.update([0, 1, 2, 0, 1], [1, 1, 1, 2, 2], [10.0, 20.0, 30.0, 12.0, 22.0])
    b = aqi.NowCastStream(1)
    b.import_state([0, 1, 2], a.export_state([0, 1, 2]))  # grows to 3 stations
    assert b.n_devices == 3
    np.testing.assert_array_equal(
        a.update([2, 0], [2, 3], [33.0, 14.0]), b.update([2, 0], [2, 3], [33.0, 14.0])
    )


def test_stream_ring_rows_stay_on_cache_lines():
    # Speed only (3 lines per 24-double row instead of 4), but grow() replaces the array,
    # so check that the layout survives construction, grow and a growing import.
    a = aqi.NowCastStream(3)
    assert a._state["ring"].ctypes.data % 64 == 0
    a.update([0, 1], [1, 1], [10.0, 20.0])
    a.grow(1001)
    assert a._state["ring"].ctypes.data % 64 == 0
    a.import_state([2000], a.export_state([0]))
    assert a._state["ring"].ctypes.data % 64 == 0
    assert a.export_state([2000])["window"][0, 0] == 10.0


def test_stream_import_rejects_lossy_casts_and_keeps_state():
    a = aqi.NowCastStream(2)
    a.update([0, 1], [5, 5], [10.0, 20.0])
    good = a.export_state([0, 1])
    before = a.export_state([0, 1])
    for last_hour in (
        np.array([np.nan, 5.0]),  # a float checkpoint: NaN would become int64 min
        np.array([5.5, 5.0]),  # not a whole hour
    ):
        with pytest.raises(ValueError, match="last_hour"):
            a.import_state([0, 1], {**good, "last_hour": last_hour})
        for key in before:
            np.testing.assert_array_equal(a.export_state([0, 1])[key], before[key])
    # An exact float copy (e.g. a JSON checkpoint) is fine.
    a.import_state([0, 1], {**good, "last_hour": good["last_hour"].astype(np.float64)})
    np.testing.assert_array_equal(a.export_state([0, 1])["last_hour"], [5, 5])


stream_rows = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from([0, 1, 1, 2, 10, -1]),  # same hour, next, gaps, a late hour
        st.one_of(hour_value, st.just(math.inf)),
    ),
    max_size=60,
)


@settings(max_examples=50, deadline=None)
@given(rows=stream_rows, cuts=st.lists(st.integers(0, 60), max_size=4))
def test_stream_equals_reference_and_is_chunk_invariant(rows, cuts):
    clock = [0, 0, 0, 0]
    station, hour, value = [], [], []
    for s, step, v in rows:
        clock[s] += step
        station.append(s)
        hour.append(clock[s])
        value.append(v)
    reference = ref.ReferenceNowCastStream(8, 0.0)
    expected = [reference.step(s, h, v) for s, h, v in zip(station, hour, value, strict=True)]
    whole = aqi.NowCastStream(4, "o3").update(station, hour, value)
    np.testing.assert_allclose(whole, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    chunked = aqi.NowCastStream(4, "o3")
    bounds = [0, *sorted(c % (len(rows) + 1) for c in cuts), len(rows)]
    parts = [
        chunked.update(station[a:b], hour[a:b], value[a:b]) for a, b in itertools.pairwise(bounds)
    ]
    np.testing.assert_array_equal(np.concatenate([np.empty(0), *parts]), whole)


# ------------------------------------------------- the bench's NumPy baselines agree
def test_bench_numpy_aqi_and_nowcast_agree_with_kernels():
    from cityhealth.bench import kernels as bench

    for pollutant in aqi.POLLUTANTS:
        values = np.array([*_grid_neighbours(pollutant), -1.0, math.nan, math.inf, 1e300, 5e3])
        np.testing.assert_array_equal(
            bench.aqi_numpy(pollutant, values), aqi.us_epa(pollutant, values)
        )
    rng = np.random.default_rng(3)
    hourly = rng.lognormal(2.0, 1.0, (200, 12))
    hourly[rng.random(hourly.shape) < 0.3] = math.nan
    hourly[:5] = 0.0
    for pollutant, (hours, w_floor) in aqi.NOWCAST_POLLUTANTS.items():
        np.testing.assert_allclose(
            bench.nowcast_numpy(hourly[:, :hours], w_floor),
            aqi.nowcast(pollutant, hourly),
            rtol=1e-12,
            equal_nan=True,
        )


def test_stream_import_stores_missing_hours_as_nan():
    # Older checkpoints kept negative and infinite hours as given; both are missing hours.
    raw = aqi.NowCastStream(1)
    raw.import_state(
        [0],
        {"window": np.array([[10.0, -3.0, np.inf, 12.0, *[np.nan] * 8]]), "last_hour": [5]},
    )
    clean = aqi.NowCastStream(1)
    clean.import_state(
        [0],
        {"window": np.array([[10.0, np.nan, np.nan, 12.0, *[np.nan] * 8]]), "last_hour": [5]},
    )
    exported = raw.export_state([0])["window"]
    np.testing.assert_array_equal(exported, clean.export_state([0])["window"])
    np.testing.assert_array_equal(raw.update([0], [6], [11.0]), clean.update([0], [6], [11.0]))
    assert not math.isnan(clean.update([0], [7], [13.0])[0])


def _reference_window(reference: ref.ReferenceNowCastStream, station: int) -> list[float]:
    """The reference's window of ``station`` as a checkpoint holds it (missing -> NaN)."""
    history = reference.seen.get(station, {})
    if not history:
        return [math.nan] * reference.hours
    newest = max(history)
    window = [history.get(newest - h, math.nan) for h in range(reference.hours)]
    return [v if math.isfinite(v) and v >= 0 else math.nan for v in window]


@settings(max_examples=50, deadline=None)
@given(
    pollutant=st.sampled_from(tuple(aqi.NOWCAST_POLLUTANTS)),
    rows=stream_rows,
    start=st.integers(-30, 30),
    cut=st.integers(0, 60),
)
def test_stream_checkpoint_is_the_window_and_resumes(pollutant, rows, start, cut):
    # The state is a ring inside; a checkpoint is the window newest first (any hour,
    # negative ones included), and a stream restored from it continues identically.
    hours, w_floor = aqi.NOWCAST_POLLUTANTS[pollutant]
    clock = [start] * 4
    samples = []
    for s, step, v in rows:
        clock[s] += step
        samples.append((s, clock[s], v))
    cut = min(cut, len(samples))
    reference = ref.ReferenceNowCastStream(hours, w_floor)
    for s, h, v in samples[:cut]:
        reference.step(s, h, v)
    columns = [np.array(c) for c in zip(*samples, strict=True)] or [np.empty(0)] * 3
    a = aqi.NowCastStream(4, pollutant)
    a.update(*(c[:cut] for c in columns))
    saved = a.export_state([0, 1, 2, 3])
    expected = [_reference_window(reference, s) for s in range(4)]
    np.testing.assert_array_equal(saved["window"], np.array(expected).reshape(4, hours))
    b = aqi.NowCastStream(1, pollutant)
    b.import_state([3, 2, 1, 0], {k: v[::-1] for k, v in saved.items()})
    np.testing.assert_array_equal(b.export_state([0, 1, 2, 3])["window"], saved["window"])
    rest = [c[cut:] for c in columns]
    np.testing.assert_array_equal(a.update(*rest), b.update(*rest))


@pytest.mark.parametrize("pollutant", tuple(aqi.NOWCAST_POLLUTANTS))
def test_stream_long_interleaved_run_equals_reference(pollutant):
    # Longer than the kernel's blocks (they are filled and scored in two passes), with
    # stations repeating inside a block, gaps, corrections, late hours, bad values.
    rng = np.random.default_rng(7)
    n = 3000
    station = rng.integers(0, 7, n)
    step = rng.choice([0, 1, 1, 1, 1, 2, 5, 13, -1], n)
    hour = np.empty(n, dtype=np.int64)
    clock = rng.integers(-40, 40, 7)
    for i in range(n):
        clock[station[i]] += step[i]
        hour[i] = clock[station[i]]
    value = rng.lognormal(2.0, 1.0, n)
    value[rng.random(n) < 0.05] = math.nan
    value[rng.random(n) < 0.02] = -1.0
    value[rng.random(n) < 0.01] = math.inf
    value[rng.random(n) < 0.02] = 0.0
    hours, w_floor = aqi.NOWCAST_POLLUTANTS[pollutant]
    reference = ref.ReferenceNowCastStream(hours, w_floor)
    expected = [
        reference.step(int(s), int(h), float(v))
        for s, h, v in zip(station, hour, value, strict=True)
    ]
    whole = aqi.NowCastStream(7, pollutant).update(station, hour, value)
    np.testing.assert_allclose(whole, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    chunked = aqi.NowCastStream(7, pollutant)
    bounds = [0, 1, 127, 128, 129, 1000, 1001, n]
    parts = [
        chunked.update(station[a:b], hour[a:b], value[a:b]) for a, b in itertools.pairwise(bounds)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
