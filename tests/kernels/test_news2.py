"""NEWS2 (RCP 2017): every boundary of every parameter, bands, partial scores, reference."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import news2
from tests.reference import news2 as ref

NORMAL = {
    "resp_rate": 16.0,
    "spo2": 98.0,
    "on_oxygen": False,
    "temp_c": 37.0,
    "systolic_bp": 120.0,
    "heart_rate": 70.0,
    "consciousness_alert": True,
}
COLUMN = {name: i for i, name in enumerate(news2.SUBSCORE_COLUMNS)}


def subscore(param: str, value, **overrides) -> int:
    """The subscore of ``param`` with every other parameter normal (scoring 0)."""
    kwargs = {**NORMAL, **overrides, param: value}
    result = news2.score(**kwargs)
    column = {"consciousness_alert": "consciousness"}.get(param, param)
    assert int(result.total) == int(result.subscores[COLUMN[column]]) + (
        2 if kwargs["on_oxygen"] and param != "on_oxygen" else 0
    )
    return int(result.subscores[COLUMN[column]])


# "value:expected subscore" on both sides of every boundary of RCP NEWS2 Chart 1, then
# non-integer values that round (half up) across a boundary, then extremes.
BOUNDARY_TEXT = {
    "resp_rate": "8:3 9:1 11:1 12:0 20:0 21:2 24:2 25:3 8.49:3 8.5:1 11.5:0 20.49:0 20.5:2 "
    "24.5:3 0:3 60:3",
    "systolic_bp": "90:3 91:2 100:2 101:1 110:1 111:0 219:0 220:3 90.5:2 110.49:1 110.5:0 "
    "219.5:3 0:3 300:3",
    "heart_rate": "40:3 41:1 50:1 51:0 90:0 91:1 110:1 111:2 130:2 131:3 40.5:1 90.4:0 90.5:1 "
    "130.5:3 0:3",
    "temp_c": "35.0:3 35.1:1 36.0:1 36.1:0 38.0:0 38.1:1 39.0:1 39.1:2 35.04:3 35.05:1 "
    "36.04:1 36.05:0 38.05:1 39.05:2 -5.0:3 42.0:2",
    "spo2": "91:3 92:2 93:2 94:1 95:1 96:0 100:0 91.5:2 93.5:1 95.49:1 95.5:0 0:3",
    "spo2_scale2_oxygen": "83:3 84:2 85:2 86:1 87:1 88:0 92:0 93:1 94:1 95:2 96:2 97:3 100:3 "
    "92.5:1 87.5:0",
    "spo2_scale2_air": "83:3 84:2 85:2 86:1 87:1 88:0 92:0 93:0 97:0 100:0",
}


def cases(key: str) -> list[tuple[float, int]]:
    return [(float(v), int(e)) for v, e in (item.split(":") for item in BOUNDARY_TEXT[key].split())]


BOUNDARIES = {k: cases(k) for k in ("resp_rate", "systolic_bp", "heart_rate", "temp_c", "spo2")}
SPO2_SCALE2_OXYGEN = cases("spo2_scale2_oxygen")
SPO2_SCALE2_AIR = cases("spo2_scale2_air")


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [(p, v, e) for p, cases in BOUNDARIES.items() for v, e in cases],
)
def test_every_boundary_scale1(param, value, expected):
    assert subscore(param, value) == expected


@pytest.mark.parametrize(("value", "expected"), SPO2_SCALE2_OXYGEN)
def test_spo2_scale2_on_oxygen(value, expected):
    assert subscore("spo2", value, on_oxygen=True, spo2_scale=2) == expected


@pytest.mark.parametrize(("value", "expected"), SPO2_SCALE2_AIR)
def test_spo2_scale2_on_air(value, expected):
    assert subscore("spo2", value, on_oxygen=False, spo2_scale=2) == expected


def test_air_or_oxygen_and_consciousness():
    assert subscore("on_oxygen", True) == 2
    assert subscore("on_oxygen", False) == 0
    assert subscore("consciousness_alert", True) == 0
    assert subscore("consciousness_alert", False) == 3
    # Scale 1 ignores oxygen for the SpO2 score (oxygen scores in its own row).
    assert subscore("spo2", 97, on_oxygen=True) == 0


def _bands(**overrides) -> tuple[int, str]:
    r = news2.score(**{**NORMAL, **overrides})
    return int(r.total), str(r.band)


def test_band_rules():
    assert _bands() == (0, "low")
    assert _bands(heart_rate=131) == (3, "low_medium")  # single red score
    assert _bands(heart_rate=131, temp_c=38.5) == (4, "low_medium")
    assert _bands(resp_rate=21, systolic_bp=95) == (4, "low")  # 4 without a red score
    assert _bands(resp_rate=21, systolic_bp=95, heart_rate=100) == (5, "medium")
    assert _bands(heart_rate=131, resp_rate=21) == (5, "medium")  # red and 5 -> medium
    assert _bands(heart_rate=131, resp_rate=21, temp_c=38.5) == (6, "medium")
    assert _bands(heart_rate=131, resp_rate=25, temp_c=38.5) == (7, "high")
    worst = _bands(
        resp_rate=5,
        spo2=80,
        on_oxygen=True,
        temp_c=34,
        systolic_bp=80,
        heart_rate=150,
        consciousness_alert=False,
    )
    assert worst == (20, "high")  # NEWS2 maximum


def test_partial_scores_cover_present_parameters():
    nan = math.nan
    r = news2.score(
        resp_rate=[25, 16],
        spo2=[nan, 97],
        on_oxygen=[False, nan],
        temp_c=[37.0, 37.0],
        systolic_bp=[nan, 120],
        heart_rate=[131, 70],
        consciousness_alert=[nan, True],
    )
    assert r.total.tolist() == [6, 0]
    assert r.partial.tolist() == [True, True]
    assert r.band.tolist() == ["medium", "low"]
    missing = dict(zip(news2.SUBSCORE_COLUMNS, r.missing[0].tolist(), strict=True))
    assert [k for k, v in missing.items() if v] == ["spo2", "systolic_bp", "consciousness"]
    assert r.missing[1].tolist() == [False, False, True, False, False, False, False]
    # Negative and infinite readings are missing too; SpO2 above 100 % is impossible.
    bad = news2.score(**{**NORMAL, "heart_rate": -1, "spo2": 101, "resp_rate": math.inf})
    assert bad.partial and int(bad.total) == 0
    assert bad.missing.tolist() == [True, True, False, False, True, False, False]


def test_shapes_broadcasting_and_errors():
    r = news2.score(**{**NORMAL, "heart_rate": np.array([[40, 70, 131]])})
    assert r.total.shape == (1, 3) and r.subscores.shape == (1, 3, 7)
    assert r.total.tolist() == [[3, 0, 3]]
    assert r.subscores.dtype == np.int8 and r.total.dtype == np.int64
    mixed = news2.score(**{**NORMAL, "spo2": [86, 86], "spo2_scale": [1, 2]})
    assert mixed.subscores[:, COLUMN["spo2"]].tolist() == [3, 1]
    empty = news2.score(**{**NORMAL, "heart_rate": np.empty(0)})
    assert empty.total.shape == (0,)
    with pytest.raises(ValueError, match="spo2_scale"):
        news2.score(**NORMAL, spo2_scale=3)
    with pytest.raises(ValueError, match="broadcast"):
        news2.score(**{**NORMAL, "heart_rate": [1, 2], "spo2": [1, 2, 3]})
    with pytest.raises(ValueError, match="numeric"):
        news2.score(**{**NORMAL, "heart_rate": ["fast"]})


# ------------------------------------------------------------------ reference equality
vital = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-5.0, 260.0),
    st.integers(0, 250).map(float),
    st.integers(300, 420).map(lambda v: v / 10),  # temperatures near the 0.1 °C grid
    st.integers(0, 2600).map(lambda v: v / 10 + 0.05),  # exact half-way decimals
)
flag = st.sampled_from([0.0, 1.0, math.nan])


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(vital, vital, flag, vital, vital, vital, flag, st.sampled_from([1, 2])),
        min_size=1,
        max_size=25,
    )
)
def test_kernel_equals_reference(rows):
    cols = list(zip(*rows, strict=True))
    names = list(inspect.signature(news2.score).parameters)  # the contract's order
    result = news2.score(**{n: np.array(c) for n, c in zip(names, cols, strict=True)})
    for i, row in enumerate(rows):
        total, sub, band, partial = ref.score_one(*row)
        assert int(result.total[i]) == total
        assert result.subscores[i].tolist() == sub
        assert str(result.band[i]) == band
        assert bool(result.partial[i]) == partial


def test_signature_is_the_contract():
    params = inspect.signature(news2.score).parameters
    assert " ".join(params) == (
        "resp_rate spo2 on_oxygen temp_c systolic_bp heart_rate consciousness_alert spo2_scale"
    )
    assert params["spo2_scale"].default == 1


@settings(max_examples=20, deadline=None)
@given(hr=st.lists(vital, min_size=1, max_size=40), cut=st.integers(0, 40))
def test_chunked_equals_one_shot(hr, cut):
    # Stateless: any split of a batch scores exactly like the whole batch.
    whole = news2.score(**{**NORMAL, "heart_rate": np.array(hr)})
    parts = [news2.score(**{**NORMAL, "heart_rate": np.array(p)}) for p in (hr[:cut], hr[cut:])]
    assert np.concatenate([p.total for p in parts]).tolist() == whole.total.tolist()
    assert np.concatenate([p.subscores for p in parts]).tolist() == whole.subscores.tolist()


def test_bench_numpy_baseline_agrees():
    from cityhealth.bench import kernels as bench

    rng = np.random.default_rng(5)
    n = 3000
    v = {
        "resp_rate": rng.uniform(-2, 40, n),
        "spo2": rng.uniform(75, 102, n),
        "on_oxygen": rng.choice([0.0, 1.0, math.nan], n),
        "temp_c": rng.uniform(33, 42, n).round(2),
        "systolic_bp": rng.uniform(60, 240, n),
        "heart_rate": rng.uniform(20, 160, n),
        "consciousness_alert": rng.choice([0.0, 1.0, math.nan], n),
        "spo2_scale": rng.choice([1.0, 2.0], n),
    }
    v["heart_rate"][::7] = math.nan
    assert bench.news2_numpy(v).tolist() == news2.score(**v).total.tolist()


# Which values count as missing, per parameter (module docstring): value -> missing?
MISSING_RULES = {
    "resp_rate": {-1.0: True, -0.0: False, math.inf: True, math.nan: True, 1e-300: False},
    "spo2": {-1.0: True, 100.0: False, 100.5: True, math.inf: True, math.nan: True},
    "systolic_bp": {-1.0: True, math.inf: True, -math.inf: True, math.nan: True, 0.0: False},
    "heart_rate": {-1.0: True, math.inf: True, math.nan: True, 0.0: False},
    # Any finite temperature is scored, negative ones included (hypothermia scores 3).
    "temp_c": {-5.0: False, -40.0: False, math.inf: True, -math.inf: True, math.nan: True},
    # Flags: only NaN is missing; any other value is a reading (non-zero = on O2 / Alert).
    "on_oxygen": {math.nan: True, -1.0: False, 0.0: False, math.inf: False},
    "consciousness_alert": {math.nan: True, -1.0: False, 0.0: False, math.inf: False},
}


@pytest.mark.parametrize(
    ("param", "value", "missing"),
    [(p, v, m) for p, rules in MISSING_RULES.items() for v, m in rules.items()],
)
def test_which_values_count_as_missing(param, value, missing):
    result = news2.score(**{**NORMAL, param: value})
    column = COLUMN[{"consciousness_alert": "consciousness"}.get(param, param)]
    assert bool(result.missing[column]) is missing
    assert bool(result.partial) is missing
    assert int(result.missing.sum()) == int(missing)


def test_negative_temperature_is_scored_not_missing():
    result = news2.score(**{**NORMAL, "temp_c": [-5.0, -0.04, 34.9]})
    assert result.subscores[:, COLUMN["temp_c"]].tolist() == [3, 3, 3]
    assert result.total.tolist() == [3, 3, 3]
    assert not result.partial.any()
