"""Columnar micro-batch records: numpy arrays inside one msgpack map (docs/BATCH_FORMAT.md).

A record carries many readings of one stream as columns, so a worker turns it into numpy
arrays with ``np.frombuffer`` (zero copy) and hands them to a kernel in one call: no
Python runs per reading. Strings are dictionary-encoded (unique values + ``int32`` codes)
and accelerometer windows are ragged (``offsets`` + concatenated sample arrays, the layout
Apache Arrow uses for list arrays).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from ingest.batch.schema import SAMPLE_COLUMNS, STREAMS, StreamSchema

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({FORMAT_VERSION})

#: Only fixed-width little-endian numeric dtypes travel; never ``object`` (pickle).
_ALLOWED_DTYPES = frozenset({"<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "|u1"})
_CODE_DTYPE = np.dtype("<i4")
_OFFSET_DTYPE = np.dtype("<i8")
_SAMPLE_DTYPE = np.dtype("<f8")


class BatchFormatError(ValueError):
    """A micro-batch record could not be decoded or is inconsistent.

    The message says what is wrong (version, field, length); the bytes are never echoed.
    """


@dataclass(frozen=True, eq=False)
class DictColumn:
    """A dictionary-encoded string column: ``values[codes[i]]`` is row ``i``.

    Workers map the few unique ``values`` (e.g. pseudonymous device ids) to kernel device
    indices once per batch and then index with ``codes``: ``index_of[codes]``.
    """

    values: tuple[str, ...]
    codes: np.ndarray

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> DictColumn:
        """Encode a sequence of strings (first-seen order of unique values)."""
        lookup: dict[str, int] = {}
        codes = [lookup.setdefault(s, len(lookup)) for s in strings]
        return cls(tuple(lookup), np.asarray(codes, dtype=_CODE_DTYPE))

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def decoded(self) -> np.ndarray:
        """Row values as an ``object`` array of ``str`` (for tests and slow paths)."""
        table = np.empty(len(self.values), dtype=object)
        table[:] = self.values
        return table[self.codes]

    def equals(self, other: DictColumn) -> bool:
        """Same row values (the dictionary order may differ)."""
        return len(self) == len(other) and bool(np.all(self.decoded() == other.decoded()))


@dataclass(frozen=True, eq=False)
class Ragged:
    """Variable-length sample windows: window ``i`` is ``[offsets[i], offsets[i+1])``.

    Attributes
    ----------
    offsets
        ``int64`` array of length ``count + 1``, starting at 0, non-decreasing.
    columns
        ``t`` (seconds since the epoch), ``x``, ``y``, ``z`` (m/s²), ``float64``, each of
        length ``offsets[-1]``.
    """

    offsets: np.ndarray
    columns: Mapping[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def lengths(self) -> np.ndarray:
        """Samples per window."""
        return np.diff(self.offsets)


@dataclass(frozen=True, eq=False)
class ColumnarBatch:
    """Readings of one stream as columns; validated on construction.

    Attributes
    ----------
    stream
        One of ``vitals``, ``motion``, ``home``, ``airq``.
    producer
        Id of the bridge that built the batch.
    created
        Seconds since the epoch when the batch was sealed.
    columns
        Per-reading numeric arrays (``ts`` plus the stream's measurement and flag columns).
    strings
        Per-reading dictionary-encoded string columns (``device``, ``district``, ...).
    ragged
        Accelerometer sample windows (``motion`` stream), else ``None``.
    version
        Format version the record was written with.
    """

    stream: str
    producer: str
    created: float
    columns: Mapping[str, np.ndarray]
    strings: Mapping[str, DictColumn]
    ragged: Ragged | None = None
    version: int = FORMAT_VERSION
    count: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", _validate(self))

    @property
    def schema(self) -> StreamSchema:
        """Column layout of this batch's stream."""
        return STREAMS[self.stream]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def equals(self, other: ColumnarBatch) -> bool:
        """Same content, NaN equal to NaN (dictionary order may differ)."""
        if (self.stream, self.producer, self.version, self.count) != (
            other.stream,
            other.producer,
            other.version,
            other.count,
        ) or not _same_float(self.created, other.created):
            return False
        if set(self.columns) != set(other.columns) or set(self.strings) != set(other.strings):
            return False
        if not all(_same_array(a, other.columns[k]) for k, a in self.columns.items()):
            return False
        if not all(c.equals(other.strings[k]) for k, c in self.strings.items()):
            return False
        if (self.ragged is None) != (other.ragged is None):
            return False
        if self.ragged is None or other.ragged is None:
            return True
        return _same_array(self.ragged.offsets, other.ragged.offsets) and all(
            _same_array(self.ragged[k], other.ragged[k]) for k in SAMPLE_COLUMNS
        )


def encode(batch: ColumnarBatch) -> bytes:
    """Serialise a batch to one msgpack map (layout in docs/BATCH_FORMAT.md)."""
    record: dict[str, Any] = {
        "v": batch.version,
        "stream": batch.stream,
        "producer": batch.producer,
        "created": float(batch.created),
        "count": batch.count,
        "columns": {name: _pack_array(a) for name, a in batch.columns.items()},
        "strings": {
            name: {"values": list(c.values), "codes": _pack_array(c.codes)}
            for name, c in batch.strings.items()
        },
    }
    if batch.ragged is not None:
        record["ragged"] = {
            "offsets": _pack_array(batch.ragged.offsets),
            "columns": {k: _pack_array(batch.ragged[k]) for k in SAMPLE_COLUMNS},
        }
    return msgpack.packb(record, use_bin_type=True)


def decode(data: bytes | bytearray | memoryview) -> ColumnarBatch:
    """Parse a record produced by :func:`encode`; arrays are read-only zero-copy views.

    Raises
    ------
    BatchFormatError
        For anything but a well-formed record of a supported version: truncated or
        corrupt bytes, an unknown version or stream, missing columns, wrong dtypes or
        lengths, out-of-range dictionary codes or offsets.
    """
    try:
        record = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BatchFormatError(f"not a msgpack micro-batch record: {type(exc).__name__}") from None
    if not isinstance(record, dict):
        raise BatchFormatError(f"record must be a map, got {type(record).__name__}")
    version = record.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise BatchFormatError(
            f"unsupported micro-batch format version {version!r} "
            f"(this reader knows {sorted(SUPPORTED_VERSIONS)})"
        )
    stream = _typed(record, "stream", str)
    if stream not in STREAMS:
        raise BatchFormatError(f"unknown stream {stream!r} (known: {sorted(STREAMS)})")
    count = _typed(record, "count", int)
    strings = {
        name: DictColumn(
            tuple(_string_list(name, _typed(spec, "values", list, name))),
            _unpack_array(_typed(spec, "codes", dict, name), name),
        )
        for name, spec in _typed(record, "strings", dict).items()
    }
    ragged = None
    if record.get("ragged") is not None:
        spec = _typed(record, "ragged", dict)
        ragged = Ragged(
            _unpack_array(_typed(spec, "offsets", dict, "ragged"), "ragged.offsets"),
            {
                k: _unpack_array(v, f"ragged.{k}")
                for k, v in _typed(spec, "columns", dict, "ragged").items()
            },
        )
    batch = ColumnarBatch(
        stream=stream,
        producer=_typed(record, "producer", str),
        created=float(_typed(record, "created", (float, int))),
        columns={
            name: _unpack_array(spec, name)
            for name, spec in _typed(record, "columns", dict).items()
        },
        strings=strings,
        ragged=ragged,
        version=version,
    )
    if batch.count != count:
        raise BatchFormatError(f"header count {count} != column length {batch.count}")
    return batch


# -- helpers ----------------------------------------------------------------------------


def _pack_array(a: np.ndarray) -> dict[str, Any]:
    arr = np.ascontiguousarray(a)
    return {"dtype": arr.dtype.str, "data": arr.tobytes()}


def _unpack_array(spec: Any, where: str) -> np.ndarray:
    if not isinstance(spec, dict):
        raise BatchFormatError(f"{where}: array spec must be a map")
    dtype = _typed(spec, "dtype", str, where)
    data = _typed(spec, "data", bytes, where)
    if dtype not in _ALLOWED_DTYPES:
        raise BatchFormatError(f"{where}: dtype {dtype!r} not allowed")
    dt = np.dtype(dtype)
    if len(data) % dt.itemsize:
        raise BatchFormatError(f"{where}: {len(data)} bytes is not a multiple of {dt.itemsize}")
    return np.frombuffer(data, dtype=dt)


def _typed(
    mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str = "record"
) -> Any:
    if not isinstance(mapping, dict):
        raise BatchFormatError(f"{where}: expected a map, got {type(mapping).__name__}")
    if key not in mapping:
        raise BatchFormatError(f"{where}: missing {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BatchFormatError(f"{where}: {key!r} has type {type(value).__name__}")
    return value


def _string_list(where: str, values: Sequence[Any]) -> list[str]:
    try:  # one C-level pass: join refuses anything but str (msgpack gives exact str)
        "".join(values)
    except TypeError:
        raise BatchFormatError(f"{where}: dictionary values must be strings") from None
    return list(values)


def _validate(batch: ColumnarBatch) -> int:
    """Check a batch against its stream schema; returns the row count."""
    if batch.version not in SUPPORTED_VERSIONS:
        raise BatchFormatError(f"unsupported micro-batch format version {batch.version!r}")
    schema = STREAMS.get(batch.stream)
    if schema is None:
        raise BatchFormatError(f"unknown stream {batch.stream!r} (known: {sorted(STREAMS)})")
    ts = batch.columns.get("ts")
    if ts is None or ts.ndim != 1:
        raise BatchFormatError("missing or non-1-D column 'ts'")
    count = int(ts.shape[0])
    for name, dtype in schema.numeric_dtypes.items():
        col = batch.columns.get(name)
        if col is None:
            raise BatchFormatError(f"stream {schema.name!r}: missing column {name!r}")
        if col.dtype.str != dtype:
            raise BatchFormatError(f"column {name!r}: dtype {col.dtype.str} != {dtype}")
    for name, col in batch.columns.items():
        if col.ndim != 1 or col.shape[0] != count:
            raise BatchFormatError(f"column {name!r}: length {col.shape} != count {count}")
        if col.dtype.str not in _ALLOWED_DTYPES:
            raise BatchFormatError(f"column {name!r}: dtype {col.dtype.str} not allowed")
    for name in schema.string_columns:
        if name not in batch.strings:
            raise BatchFormatError(f"stream {schema.name!r}: missing string column {name!r}")
    for name, sc in batch.strings.items():
        codes = sc.codes
        if codes.dtype != _CODE_DTYPE or codes.ndim != 1 or codes.shape[0] != count:
            raise BatchFormatError(f"string column {name!r}: codes must be int32[{count}]")
        if count and (int(codes.min()) < 0 or int(codes.max()) >= len(sc.values)):
            raise BatchFormatError(f"string column {name!r}: code out of range")
    _validate_ragged(schema, batch.ragged, count)
    return count


def _validate_ragged(schema: StreamSchema, ragged: Ragged | None, count: int) -> None:
    if not schema.ragged:
        if ragged is not None:
            raise BatchFormatError(f"stream {schema.name!r} carries no sample windows")
        return
    if ragged is None:
        raise BatchFormatError(f"stream {schema.name!r}: missing ragged sample windows")
    off = ragged.offsets
    if off.dtype != _OFFSET_DTYPE or off.ndim != 1 or off.shape[0] != count + 1:
        raise BatchFormatError(f"ragged offsets must be int64[{count + 1}]")
    if off[0] != 0 or bool(np.any(np.diff(off) < 0)):
        raise BatchFormatError("ragged offsets must start at 0 and never decrease")
    total = int(off[-1])
    for k in SAMPLE_COLUMNS:
        col = ragged.columns.get(k)
        if col is None:
            raise BatchFormatError(f"ragged: missing sample column {k!r}")
        if col.dtype != _SAMPLE_DTYPE or col.ndim != 1 or col.shape[0] != total:
            raise BatchFormatError(f"ragged column {k!r} must be float64[{total}]")


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    )


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
