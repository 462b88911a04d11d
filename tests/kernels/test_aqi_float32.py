"""US EPA AQI of float32/float16 input: truncation on the input dtype's own grid."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import aqi
from tests.reference import aqi as ref

BOUNDARY_CASES = [
    (pollutant, Decimal(ref.TABLE_6[pollutant][0]), row)
    for pollutant in ref.TABLE_6
    for row in ref.rows(pollutant)
]


def one32(pollutant: str, c: Decimal | float) -> int:
    return int(aqi.us_epa(pollutant, np.array([str(c)]).astype(np.float32))[0])


@pytest.mark.parametrize(("pollutant", "res", "row"), BOUNDARY_CASES)
def test_float32_every_breakpoint_both_sides(pollutant, res, row):
    c_lo, c_hi, i_lo, i_hi = row
    # float32(0.055) < 0.055 (double): it must still read as 0.055 ppm -> 51, not 50.
    assert one32(pollutant, c_lo) == i_lo
    assert one32(pollutant, c_hi) == i_hi
    assert one32(pollutant, c_hi + res * Decimal("0.9")) == i_hi  # truncated back to C_hi
    lo32 = np.float32(str(c_lo))
    hi_next32 = np.float32(str(c_hi + res))
    below32 = np.nextafter(lo32, np.float32(-np.inf))  # the float32 just below C_lo
    above32 = np.nextafter(lo32, np.float32(np.inf))
    assert aqi.us_epa(pollutant, np.array([above32]))[0] == i_lo
    assert aqi.us_epa(pollutant, np.array([np.nextafter(hi_next32, np.float32(0))]))[0] == i_hi
    prev = [r for r in ref.rows(pollutant) if r[1] == c_lo - res]
    expected = prev[0][3] if prev else aqi.INVALID
    if c_lo - res >= 0:
        assert one32(pollutant, c_lo - res) == expected
        assert aqi.us_epa(pollutant, np.array([below32]))[0] == expected
    values = np.array([lo32, below32, above32, np.float32(str(c_hi)), hi_next32])
    assert aqi.us_epa(pollutant, values).tolist() == ref.aqi_many(pollutant, values)


def test_float32_issue_example_and_float64_unchanged():
    assert aqi.us_epa("o3_8h", np.array([0.055], dtype=np.float32)).tolist() == [51]
    assert aqi.us_epa("o3_8h", np.array([0.055], dtype=np.float16)).tolist() == [51]
    assert aqi.us_epa("pm25", np.array([9.1, 35.4, 35.5], dtype=np.float32)).tolist() == [
        51,
        100,
        101,
    ]
    # float64: the double just below 0.055 is below the grid value, so it truncates down.
    assert aqi.us_epa("o3_8h", np.array([np.nextafter(0.055, 0.0)])).tolist() == [50]
    assert aqi.us_epa("o3_8h", np.array([0.055])).tolist() == [51]


@pytest.mark.parametrize("scale", [1, 10, 1000])
def test_float32_grid_has_no_double_rounding(scale):
    # The kernel rounds the double k / scale on to float32: it must equal the float32
    # nearest to the decimal k / scale (parsed from text) for every grid value below 2e5,
    # beyond the saturation (AQI 9999) of every table.
    k = np.arange(0, 200_000)
    via_double = (k / float(scale)).astype(np.float32)
    decimals = np.array([str(Decimal(int(i)) / scale) for i in k]).astype(np.float32)
    assert np.array_equal(via_double, decimals)


floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
scaled32 = st.builds(
    lambda m, e: float(np.float32(m * 10.0**e)), st.floats(0.0, 10.0), st.integers(-3, 3)
)


@settings(max_examples=60, deadline=None)
@given(
    pollutant=st.sampled_from(aqi.POLLUTANTS),
    values=st.lists(st.one_of(floats32, scaled32), max_size=40),
)
def test_float32_kernel_equals_reference(pollutant, values):
    arr = np.array(values, dtype=np.float32)
    assert aqi.us_epa(pollutant, arr).tolist() == ref.aqi_many(pollutant, arr)


def test_float32_nowcast_stays_on_the_float32_grid():
    # Twelve float32 hours of 0.055 ppm (ozone uses 8): the NowCast is float32(0.055),
    # which us_epa reads as 0.055 -> 51 (float64 0.0549999997 would truncate to 50).
    hourly = np.full((1, 8), 0.055, dtype=np.float32)
    nc = aqi.nowcast("o3", hourly)
    assert nc.dtype == np.float32
    assert nc.tolist() == [np.float32(0.055)]
    assert aqi.us_epa("o3_8h", nc).tolist() == [51]
    pm = aqi.nowcast("pm25", np.full((2, 12), 35.5, dtype=np.float32))
    assert aqi.us_epa("pm25", pm).tolist() == [101, 101]
    assert aqi.nowcast("pm25", np.full((1, 12), 35.5)).dtype == np.float64


@settings(max_examples=40, deadline=None)
@given(
    pollutant=st.sampled_from(tuple(aqi.NOWCAST_POLLUTANTS)),
    rows=st.lists(
        st.lists(
            st.one_of(st.floats(0.0, 500.0, width=32), st.just(np.nan)), min_size=12, max_size=12
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_float32_nowcast_is_the_float64_nowcast_rounded_once(pollutant, rows):
    arr = np.array(rows, dtype=np.float32)
    got = aqi.nowcast(pollutant, arr)
    hours, w_floor = aqi.NOWCAST_POLLUTANTS[pollutant]
    expected = np.array(
        [ref.nowcast([float(v) for v in r], hours, w_floor) for r in arr], dtype=np.float64
    )
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(
        got, aqi.nowcast(pollutant, arr.astype(np.float64)).astype(np.float32)
    )
