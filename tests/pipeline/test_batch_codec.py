"""Columnar micro-batch codec: round trips, and clear errors for bad bytes."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.batch import (
    FORMAT_VERSION,
    STREAMS,
    BatchFormatError,
    ColumnarBatch,
    DictColumn,
    Ragged,
    decode,
    encode,
)

_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_labels = st.text(max_size=12)


@st.composite
def batches(draw: st.DrawFn) -> ColumnarBatch:
    """Any valid batch of any stream (NaN/inf values, unicode strings, empty windows)."""
    schema = STREAMS[draw(st.sampled_from(sorted(STREAMS)))]
    n = draw(st.integers(0, 25))
    columns = {}
    for name, dtype in schema.numeric_dtypes.items():
        if dtype == "<f8":
            values = draw(st.lists(_floats, min_size=n, max_size=n))
        else:
            values = draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=n, max_size=n))
        columns[name] = np.asarray(values, dtype=np.dtype(dtype))
    strings = {
        name: DictColumn.from_strings(draw(st.lists(_labels, min_size=n, max_size=n)))
        for name in schema.string_columns
    }
    ragged = None
    if schema.ragged:
        lengths = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        total = int(offsets[-1])
        ragged = Ragged(
            offsets,
            {
                k: np.asarray(draw(st.lists(_floats, min_size=total, max_size=total)), "<f8")
                for k in "txyz"
            },
        )
    return ColumnarBatch(
        stream=schema.name,
        producer=draw(_labels),
        created=draw(st.floats(0, 4e9)),
        columns=columns,
        strings=strings,
        ragged=ragged,
    )


@settings(max_examples=60, deadline=None)
@given(batches())
def test_encode_decode_round_trip(batch: ColumnarBatch) -> None:
    data = encode(batch)
    back = decode(data)
    assert back.equals(batch)
    assert back.count == batch.count
    assert back.version == FORMAT_VERSION
    for name, col in back.columns.items():
        assert col.dtype == batch.columns[name].dtype
    for name, sc in back.strings.items():
        assert list(sc.decoded()) == list(batch.strings[name].decoded())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_truncated_or_corrupt_bytes_raise_format_error(
    batch: ColumnarBatch, data: st.DataObject
) -> None:
    raw = bytearray(encode(batch))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(BatchFormatError):
        decode(bytes(raw[:cut]))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4)
    )
    for pos, value in flips:
        raw[pos] = value
    try:
        back = decode(bytes(raw))
    except BatchFormatError as exc:
        assert str(exc)  # a message, not a crash
    else:
        assert isinstance(back, ColumnarBatch)


def _record(stream: str = "vitals") -> dict:
    rng = np.random.default_rng(1)
    batch = ColumnarBatch(
        stream=stream,
        producer="p",
        created=1.0,
        columns={
            name: (rng.normal(size=3) if dtype == "<f8" else np.zeros(3)).astype(dtype)
            for name, dtype in STREAMS[stream].numeric_dtypes.items()
        },
        strings={
            n: DictColumn.from_strings(["a", "b", "a"]) for n in STREAMS[stream].string_columns
        },
    )
    return msgpack.unpackb(encode(batch))


def _decode_record(record: dict) -> ColumnarBatch:
    return decode(msgpack.packb(record, use_bin_type=True))


def test_unknown_version_is_rejected_with_clear_error() -> None:
    record = _record()
    record["v"] = 99
    with pytest.raises(BatchFormatError, match=r"unsupported micro-batch format version 99"):
        _decode_record(record)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(stream="weather"), "unknown stream"),
        (lambda r: r["columns"].pop("heart_rate"), "missing column 'heart_rate'"),
        (lambda r: r["columns"]["spo2"].update(dtype="|O"), "not allowed"),
        (lambda r: r["columns"]["spo2"].update(data=b"\0" * 7), "not a multiple"),
        (lambda r: r["columns"]["spo2"].update(data=b"\0" * 16), "length"),
        (lambda r: r["columns"]["ts"].update(dtype="<i8"), "dtype"),
        (lambda r: r["strings"]["device"].update(values=["a"]), "code out of range"),
        (lambda r: r["strings"]["device"].update(values=[1, 2]), "must be strings"),
        (lambda r: r["strings"].pop("district"), "missing string column 'district'"),
        (lambda r: r.update(count=4), "header count 4"),
        (lambda r: r.update(ragged={"offsets": {}, "columns": {}}), "missing 'dtype'"),
        (lambda r: r.update(strings=[1]), "has type list"),
    ],
)
def test_inconsistent_records_are_rejected(mutate, message: str) -> None:
    record = _record()
    mutate(record)
    with pytest.raises(BatchFormatError, match=message):
        _decode_record(record)


def test_motion_requires_consistent_windows() -> None:
    cols = {n: np.zeros(2, dtype=d) for n, d in STREAMS["motion"].numeric_dtypes.items()}
    strings = {n: DictColumn.from_strings(["a", "a"]) for n in STREAMS["motion"].string_columns}
    samples = {k: np.zeros(3) for k in "txyz"}
    with pytest.raises(BatchFormatError, match="missing ragged"):
        ColumnarBatch("motion", "p", 0.0, cols, strings)
    with pytest.raises(BatchFormatError, match="never decrease"):
        ColumnarBatch("motion", "p", 0.0, cols, strings, Ragged(np.array([0, 2, 1]), samples))
    with pytest.raises(BatchFormatError, match=r"float64\[3\]"):
        bad = dict(samples, z=np.zeros(2))
        ColumnarBatch("motion", "p", 0.0, cols, strings, Ragged(np.array([0, 1, 3]), bad))
    ok = ColumnarBatch("motion", "p", 0.0, cols, strings, Ragged(np.array([0, 1, 3]), samples))
    assert list(decode(encode(ok)).ragged.lengths) == [1, 2]


def test_decoded_arrays_are_zero_copy_views() -> None:
    back = _decode_record(_record())
    assert not back["heart_rate"].flags.owndata
    assert not back["heart_rate"].flags.writeable
    assert back.strings["device"].codes.dtype == np.int32


def test_not_a_map_and_garbage() -> None:
    with pytest.raises(BatchFormatError, match="must be a map"):
        decode(msgpack.packb([1, 2]))
    with pytest.raises(BatchFormatError, match="not a msgpack"):
        decode(b"\xc1")


_JUNK = [None, 1, -1, 2**40, 1.5, "x", b"x", b"\0" * 8, [], {}, [1, 2], True, "<f8", "|i1"]
_JUNK += [{"dtype": "<f8", "data": b""}, {"dtype": "|O", "data": b"\0" * 8}, float("nan")]


def _paths(node, prefix=()):
    if isinstance(node, dict | list):
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))


def _small_batch(stream: str) -> ColumnarBatch:
    schema = STREAMS[stream]
    return ColumnarBatch(
        stream,
        "p",
        1.0,
        {k: np.zeros(3, dtype=d) for k, d in schema.numeric_dtypes.items()},
        {k: DictColumn.from_strings(["a", "b", "a"]) for k in schema.string_columns},
        Ragged(np.array([0, 1, 2, 4]), {k: np.zeros(4) for k in "txyz"}) if schema.ragged else None,
    )


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_every_field_replaced_or_deleted_gives_format_error_or_valid_batch(stream: str) -> None:
    """A systematic sweep of structural damage: replace every node of the record with junk
    of every type, or delete it; decoding must raise BatchFormatError or succeed."""
    record = msgpack.unpackb(encode(_small_batch(stream)))
    outcomes = {"error": 0, "ok": 0}
    for path in _paths(record):
        for junk in [*_JUNK, KeyError]:  # KeyError: delete the node
            damaged = msgpack.unpackb(encode(_small_batch(stream)))
            parent = damaged
            for key in path[:-1]:
                parent = parent[key]
            if junk is KeyError:
                del parent[path[-1]]
            else:
                parent[path[-1]] = junk
            try:
                back = _decode_record(damaged)
            except BatchFormatError as exc:
                assert str(exc)
                outcomes["error"] += 1
            else:
                assert isinstance(back, ColumnarBatch)
                outcomes["ok"] += 1
    assert outcomes["error"] > 100
