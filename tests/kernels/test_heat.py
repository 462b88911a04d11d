"""NWS heat index: the published NWS chart, both adjustments, the simple formula, reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import heat
from tests.reference import heat as ref

# NWS heat index chart (°F), rows of air temperature, columns RH 40, 45, ..., 100 %.
NWS_CHART = """
110: 136
108: 130 137
106: 124 130 137
104: 119 124 131 137
102: 114 119 124 130 137
100: 109 114 118 124 129 136
98: 105 109 113 117 123 128 134
96: 101 104 108 112 116 121 126 132
94: 97 100 102 106 110 114 119 124 129 136
92: 94 96 99 101 105 108 112 116 121 126 131
90: 91 93 95 97 100 103 106 109 113 117 122 127 132
88: 88 89 91 93 95 98 100 103 106 110 113 117 121
86: 85 87 88 89 91 93 95 97 100 102 105 108 112
84: 83 84 85 86 88 89 90 92 94 96 98 100 103
82: 81 82 83 84 84 85 86 88 89 90 91 93 95
80: 80 80 81 81 82 82 83 84 84 85 86 86 87
"""
CHART_CELLS = [
    (float(t), 40.0 + 5.0 * j, int(v))
    for line in NWS_CHART.strip().splitlines()
    for t, values in [line.split(":")]
    for j, v in enumerate(values.split())
]
TOLERANCE_F = 1.0  # chart values are rounded °F; the regression is quoted at ±1.3 °F


def f_to_c(f: float) -> float:
    return (f - 32.0) / 1.8


def hi_f(t_f: float, rh: float) -> float:
    return float(heat.heat_index(f_to_c(t_f), rh)) * 1.8 + 32.0


def high_humidity_adjustment(t_f: float, rh: float) -> float:
    return ((rh - 85) / 10) * ((87 - t_f) / 5) if rh > 85 and 80 <= t_f <= 87 else 0.0


@pytest.mark.parametrize(("t_f", "rh", "chart"), CHART_CELLS)
def test_matches_nws_chart(t_f, rh, chart):
    # The chart (Steadman's table) predates the NWS high-humidity adjustment, which moves
    # the 80-87 °F / RH > 85 % cells by up to 2.1 °F; there the kernel must equal the
    # regression plus exactly that adjustment, and the regression must match the chart.
    got = hi_f(t_f, rh)
    assert abs(got - high_humidity_adjustment(t_f, rh) - chart) <= TOLERANCE_F


def test_chart_agreement_summary():
    worst = max(abs(hi_f(t, rh) - high_humidity_adjustment(t, rh) - v) for t, rh, v in CHART_CELLS)
    assert worst < 0.95  # measured 0.89 °F (94 °F, 50 %)


# Rothfusz (1990) coefficients of 1, T, R, TR, T², R², T²R, TR², T²R² (WPC page).
ROTHFUSZ = (-42.379, 2.04901523, 10.14333127, -0.22475541, -6.83783e-3, -5.481717e-2)
ROTHFUSZ += (1.22874e-3, 8.5282e-4, -1.99e-6)


def rothfusz(t: float, r: float) -> float:
    terms = (1.0, t, r, t * r, t * t, r * r, t * t * r, t * r * r, t * t * r * r)
    return math.fsum(c * x for c, x in zip(ROTHFUSZ, terms, strict=True))


def test_low_humidity_adjustment():
    # 100 °F, RH 10 %: Rothfusz minus ((13 - 10) / 4) * sqrt((17 - |100 - 95|) / 17).
    expected = rothfusz(100.0, 10.0) - 0.75 * math.sqrt(12 / 17)
    assert heat.heat_index_f(100.0, 10.0) == pytest.approx(expected, abs=1e-9)
    assert hi_f(100.0, 10.0) == pytest.approx(expected, abs=1e-9)
    # Outside 80-112 °F, and at RH >= 13 %, no adjustment.
    assert heat.heat_index_f(113.0, 10.0) == pytest.approx(rothfusz(113.0, 10.0), abs=1e-9)
    assert heat.heat_index_f(100.0, 13.0) == pytest.approx(rothfusz(100.0, 13.0), abs=1e-9)


def test_high_humidity_adjustment():
    # 85 °F, RH 95 %: plus ((95 - 85) / 10) * ((87 - 85) / 5) = 0.4.
    assert heat.heat_index_f(85.0, 95.0) == pytest.approx(rothfusz(85.0, 95.0) + 0.4, abs=1e-9)
    assert heat.heat_index_f(88.0, 95.0) == pytest.approx(rothfusz(88.0, 95.0), abs=1e-9)
    assert heat.heat_index_f(85.0, 85.0) == pytest.approx(rothfusz(85.0, 85.0), abs=1e-9)


def test_simple_formula_below_80f():
    # 70 °F, 50 %: simple = 0.5 * (70 + 61 + 2.4 + 4.7) = 69.05; (69.05 + 70) / 2 < 80.
    assert hi_f(70.0, 50.0) == pytest.approx(69.05, abs=1e-9)
    # 20 °C / 50 % -> 19.36 °C.
    assert float(heat.heat_index(20.0, 50.0)) == pytest.approx(f_to_c(66.85), abs=1e-9)
    # The switch: 79 °F / 60 % uses the simple formula, 81 °F / 60 % the regression.
    assert hi_f(79.0, 60.0) == pytest.approx(0.5 * (79 + 61 + 11 * 1.2 + 60 * 0.094))
    assert hi_f(81.0, 60.0) == pytest.approx(heat.heat_index_f(81.0, 60.0), abs=1e-9)


def test_cold_air_heat_index_is_the_air_temperature():
    # NWS calculator (Anderson, Bell & Peng 2013, Fig. 1): T <= 40 °F -> HI = T. The simple
    # formula alone gave -46.6 °C at -40 °C, below the air temperature.
    temps = np.array([-40.0, -10.0, 0.0, 4.0, 4.4, -273.15])
    for rh in (0.0, 50.0, 100.0):
        assert heat.heat_index(temps, rh).tolist() == temps.tolist()
    assert heat.heat_index_f(-40.0, 50.0) == -40.0
    assert heat.heat_index_f(40.0, 100.0) == 40.0
    # Just above 40 °F the simple formula applies again (4.5 °C = 40.1 °F).
    assert hi_f(40.1, 50.0) == pytest.approx(0.5 * (40.1 + 61 + (40.1 - 68) * 1.2 + 4.7))
    # Invalid humidity is still NaN in the cold.
    assert np.isnan(heat.heat_index([-40.0, -40.0, 0.0], [-1.0, 101.0, math.nan])).all()
    assert heat.heat_index(-40.0, 50.0) == ref.heat_index_c(-40.0, 50.0) == -40.0


def test_invalid_input_gives_nan_and_shapes():
    out = heat.heat_index(
        [30.0, math.nan, math.inf, 30.0, 30.0, -math.inf], [50, 50, 50, -1, 101, 5]
    )
    assert not math.isnan(out[0])
    assert np.isnan(out[1:]).all()
    grid = heat.heat_index(np.array([[25.0], [35.0]]), np.array([40.0, 60.0, 80.0]))
    assert grid.shape == (2, 3)
    assert np.all(np.diff(grid, axis=1) > 0)  # hotter with more humidity at 35 °C
    assert heat.heat_index([], []).shape == (0,)
    assert heat.heat_index(30, 50).shape == ()
    with pytest.raises(ValueError, match="broadcast"):
        heat.heat_index([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="numeric"):
        heat.heat_index(["hot"], [50.0])


@settings(max_examples=80, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.one_of(st.floats(-60, 70), st.floats(allow_nan=True, allow_infinity=True)),
            st.one_of(st.floats(-5, 105), st.floats(allow_nan=True, allow_infinity=True)),
        ),
        max_size=40,
    )
)
def test_kernel_equals_reference(pairs):
    t = np.array([p[0] for p in pairs], dtype=np.float64)
    rh = np.array([p[1] for p in pairs], dtype=np.float64)
    expected = [ref.heat_index_c(a, b) for a, b in pairs]
    np.testing.assert_allclose(heat.heat_index(t, rh), expected, rtol=1e-12, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(t=st.lists(st.floats(-50, 60), min_size=1, max_size=40), cut=st.integers(0, 40))
def test_chunked_equals_one_shot(t, cut):
    # Stateless: any split of a batch gives exactly the whole batch's result.
    rh = np.linspace(0, 100, len(t))
    whole = heat.heat_index(np.array(t), rh)
    parts = [heat.heat_index(np.array(t[s]), rh[s]) for s in (slice(0, cut), slice(cut, None))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_bench_numpy_baseline_agrees():
    from cityhealth.bench import kernels as bench

    t = np.tile(np.linspace(-40, 60, 401), 3)
    rh = np.repeat([0.0, 10.0, 95.0], 401)
    t[::50] = math.nan
    assert (t * 1.8 + 32.0 <= 40.0).sum() > 100  # the cold-air rule is exercised too
    np.testing.assert_allclose(
        bench.heat_numpy(t, rh), heat.heat_index(t, rh), rtol=1e-12, equal_nan=True
    )
