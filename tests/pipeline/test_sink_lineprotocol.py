"""Line protocol from arrays equals influxdb_client.Point.to_line_protocol() byte for byte."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point

from ingest.batch import DictColumn
from streams.sink._numbers import ABSENT, FALLBACK, render_floats, render_ints
from streams.sink.lineprotocol import encode, encode_lines

# Characters line protocol cares about, mixed with ordinary and non-ASCII text.
_nasty = st.text(
    alphabet=st.sampled_from(list(',= "\\\n\t\r%#éx1_'))
    | st.characters(exclude_categories=("Cs",)),
    max_size=8,
)
_keys = st.text(alphabet=st.sampled_from(list(',= "\\\n%kxé')), min_size=1, max_size=5)
_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e16, 9999999999999998.0, 1e15, 123456789.0, 1e-5, 0.1, -72.0, 5e-324, 1e300]
)
_ints = st.integers(-(2**63), 2**63 - 1)


def _point_lines(measurement, times, tags, fields, n):
    """Reference: one Point per row, exactly as a naive client would build it."""
    lines = []
    for i in range(n):
        p = Point(measurement)
        if times is not None:
            p.time(int(times[i]))
        for key, col in tags.items():
            p.tag(key, col if isinstance(col, str) else col[i])
        for key, col in fields.items():
            value = col[i]
            p.field(key, value.item() if isinstance(value, np.generic) else value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            line = p.to_line_protocol()
        if line:
            lines.append(line)
    return lines


@st.composite
def tables(draw: st.DrawFn):
    n = draw(st.integers(0, 12))
    measurement = draw(_nasty.filter(lambda m: m and not m.startswith("#")))
    tag_keys = draw(st.lists(_keys, max_size=3, unique=True))
    field_keys = draw(st.lists(_keys, min_size=1, max_size=4, unique=True))
    tags = {}
    for key in tag_keys:
        if draw(st.booleans()):
            tags[key] = draw(_nasty)
        else:
            tags[key] = np.array(
                draw(st.lists(st.none() | _nasty, min_size=n, max_size=n)), dtype=object
            )
    fields = {}
    for key in field_keys:
        kind = draw(st.sampled_from(["float", "int", "bool", "str"]))
        if kind == "float":
            fields[key] = np.array(
                draw(st.lists(_floats, min_size=n, max_size=n)), dtype=np.float64
            )
        elif kind == "int":
            fields[key] = np.array(draw(st.lists(_ints, min_size=n, max_size=n)), dtype=np.int64)
        elif kind == "bool":
            fields[key] = np.array(
                draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool
            )
        else:
            fields[key] = np.array(
                draw(st.lists(st.none() | _nasty, min_size=n, max_size=n)), dtype=object
            )
    times = draw(
        st.none() | st.just(np.array(draw(st.lists(_ints, min_size=n, max_size=n)), dtype=np.int64))
    )
    return measurement, times, tags, fields, n


@settings(max_examples=150, deadline=None)
@given(tables())
def test_equals_point_line_protocol(table) -> None:
    measurement, times, tags, fields, n = table
    if times is None and not any(not isinstance(c, str) for c in tags.values()) and not fields:
        return
    expected = _point_lines(measurement, times, tags, fields, n)
    assert encode_lines(measurement, times, tags, fields) == expected
    assert encode(measurement, times, tags, fields) == "\n".join(expected).encode()


@settings(max_examples=150, deadline=None)
@given(st.lists(_floats, min_size=1, max_size=30))
def test_float_text_matches_point(values) -> None:
    arr = np.array(values, dtype=np.float64)
    lines = encode_lines("m", np.arange(arr.size), fields={"v": arr})
    expected = _point_lines("m", np.arange(arr.size), {}, {"v": arr}, arr.size)
    assert lines == expected
    assert len(lines) == sum(math.isfinite(v) for v in values)


def test_dictionary_encoded_tags_and_string_fields() -> None:
    devices = DictColumn.from_strings(["p-a", "p b", "p-a", "p,c"])
    note = DictColumn.from_strings(['say "hi"', "x", "x", "back\\slash"])
    hr = np.array([72.0, np.nan, 61.5, np.nan])
    spo2 = np.array([97.0, np.nan, np.nan, 99.25])
    t = np.array([10, 20, 30, 40], dtype=np.int64)
    lines = encode_lines(
        "vitals",
        t,
        {"device": devices, "district": "north"},
        {"heart_rate": hr, "spo2": spo2, "note": note},
    )
    rows = {"device": devices.decoded()}
    expected = _point_lines(
        "vitals",
        t,
        {"device": rows["device"], "district": "north"},
        {"heart_rate": hr, "spo2": spo2, "note": note.decoded()},
        4,
    )
    assert lines == expected
    assert lines[1] == 'vitals,device=p\\ b,district=north note="x" 20'


def test_rows_without_fields_are_dropped_and_order_kept() -> None:
    hr = np.array([np.nan, 1.0, np.nan, 2.5, np.inf])
    assert encode_lines("m", np.arange(5), fields={"hr": hr}) == ["m hr=1 1", "m hr=2.5 3"]
    assert encode("m", np.arange(2), fields={"hr": np.array([np.nan, np.nan])}) == b""


def test_invalid_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        encode_lines("m", np.arange(3), fields={"v": np.zeros(2)})
    with pytest.raises(ValueError, match="invalid measurement"):
        encode_lines("#m", np.arange(1), fields={"v": np.zeros(1)})
    with pytest.raises(ValueError, match="unsupported dtype"):
        encode_lines("m", np.arange(1), fields={"v": np.zeros(1, dtype=complex)})
    with pytest.raises(ValueError, match="surrogates not allowed"):  # not encodable as UTF-8
        encode("m", np.arange(1), fields={"s": np.array(["\ud800"], dtype=object)})
    with pytest.raises(ValueError, match="empty field key"):
        encode_lines("m", np.arange(1), fields={"": np.zeros(1)})


# Sensor-like values: decimals of few digits (what the Numba renderer formats itself),
# scaled over the whole fixed-notation range, plus arbitrary doubles (left to repr).
_decimals = st.builds(
    lambda digits, scale, sign: sign * digits / 10.0**scale,
    st.integers(0, 10**15),
    st.integers(0, 19),
    st.sampled_from([1.0, -1.0]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_decimals | _floats | st.floats(1e-5, 1e16), min_size=1, max_size=40))
def test_numba_float_texts_equal_repr(values) -> None:
    """The kernel's texts are Point's (``repr`` minus ``.0``) or flagged for Python."""
    arr = np.array(values, dtype=np.float64)
    buf, off, status, _ = render_floats(arr)
    data = buf.tobytes()
    for i, v in enumerate(values):
        if status[i] == ABSENT:
            assert not math.isfinite(v)
        elif status[i] == i:
            expected = "-0" if v == 0 and math.copysign(1, v) < 0 else repr(v)
            if math.isfinite(v) and v == int(v) and abs(v) < 1e16 and expected != "-0":
                expected = str(int(v))
            assert data[off[i] : off[i + 1]].decode() == expected
        else:
            assert status[i] == FALLBACK and math.isfinite(v)


def _short(v: float) -> bool:
    """Fixed notation with at most 15 significant digits: the kernel must render it."""
    digits = repr(abs(v)).replace(".", "").lstrip("0").rstrip("0") if v else "0"
    return v == 0 or (1e-4 <= abs(v) < 1e15 and "e" not in repr(v) and len(digits) <= 15)


@settings(max_examples=300, deadline=None)
@given(st.lists(_decimals, min_size=1, max_size=40))
def test_sensor_like_floats_never_fall_back_to_python(values) -> None:
    _, _, status, _ = render_floats(np.array(values, dtype=np.float64))
    assert [status[i] == i for i in range(len(values))] == [
        _short(v) or (v == int(v) and abs(v) < 1e16) for v in values
    ]


def _kernel_texts(values: np.ndarray) -> tuple[list[str | None], int]:
    """Texts the kernel rendered (``None`` where it left the value to Python)."""
    buf, off, status, slow = render_floats(values)
    data = buf.tobytes()
    return [
        data[off[i] : off[i + 1]].decode() if status[i] == i else None for i in range(values.size)
    ], slow


def test_computed_floats_of_16_and_17_digits_are_rendered_as_repr() -> None:
    """Derived values (means, deviations, scores) need 16-17 significant digits: the
    kernel renders them itself (Dekker's exact product, streams.sink._numbers._long),
    each exactly as ``repr``; Python gets only the few too close to call or too small."""
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            np.sqrt(np.arange(1, 20_001, dtype=np.float64)),  # irrational: 17 digits
            rng.random(20_000) * 20,
            np.exp(rng.uniform(np.log(1e-3), np.log(1e14), 20_000)),
            np.float32(rng.random(20_000)).astype(np.float64) * 0.1,  # float32 times
            -(rng.normal(70, 10, 20_000)),
        ]
    )
    texts, slow = _kernel_texts(values)
    long = [t for v, t in zip(values.tolist(), texts, strict=True) if len(repr(v)) >= 18]
    assert len(long) > 50_000  # the sample is mostly 16-17-digit values
    assert slow < values.size // 100
    for v, text in zip(values.tolist(), texts, strict=True):
        if text is not None:
            assert text == (str(int(v)) if v == int(v) else repr(v))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(1e-4, 1e15, exclude_max=True), min_size=1, max_size=40))
def test_any_fixed_notation_float_is_repr_or_left_to_python(values) -> None:
    arr = np.array(values, dtype=np.float64)
    texts, _ = _kernel_texts(arr)
    for v, text in zip(values, texts, strict=True):
        if text is not None:
            assert text == (str(int(v)) if v == int(v) else repr(v))


@settings(max_examples=150, deadline=None)
@given(st.lists(_ints, min_size=1, max_size=40))
def test_numba_int_texts_equal_str(values) -> None:
    buf, off = render_ints(np.array(values, dtype=np.int64))
    data = buf.tobytes()
    assert [data[a:b].decode() for a, b in itertools.pairwise(off.tolist())] == list(
        map(str, values)
    )
