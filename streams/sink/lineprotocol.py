"""InfluxDB line protocol straight from columnar arrays, byte-identical to influxdb-client.

Implements the line-protocol syntax of InfluxDB 1.x/2.x
(https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/)
with exactly the choices of ``influxdb_client.Point.to_line_protocol()``:

* measurement escapes ``,`` and space (and ``\\n \\t \\r`` as two characters);
* tag keys, tag values and field keys also escape ``=``; a tag value that ends with a
  backslash gets a trailing space; ``None`` or empty tags are left out;
* tags and fields are sorted by key;
* float fields are ``str(float)`` with a trailing ``.0`` removed; NaN and ±inf are left
  out; integer fields get the ``i`` suffix; booleans are ``true``/``false``; string fields
  are double-quoted with ``"`` and ``\\`` escaped; ``None`` strings are left out;
* a row left with no field is dropped; timestamps are integers (nanoseconds).

Speed comes from never building a ``Point`` and never formatting a value twice: each
column becomes a small table of rendered distinct values (dictionary columns already are
one; floats and ints go through ``np.unique``) plus int64 per-row codes, ``-1`` where a
row has no value, and the Numba kernel :func:`streams.sink._assemble.assemble` copies
the bytes of every row into one buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol, TypeGuard, cast

import numpy as np

from streams.sink._assemble import assemble

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"}
)
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
_INT_SAFE = 1e16  # below this, repr() of an integral float is its integer digits + ".0"


class Dictionary(Protocol):
    """A dictionary-encoded string column (e.g. ``ingest.batch.DictColumn``)."""

    values: Sequence[str | None]
    codes: np.ndarray


TagColumn = str | Dictionary | Sequence[str | None] | np.ndarray
FieldColumn = np.ndarray | Dictionary | Sequence[Any]


def is_dictionary(col: object) -> TypeGuard[Dictionary]:
    """Whether ``col`` is dictionary-encoded (cheaper than a runtime Protocol check)."""
    return hasattr(col, "codes") and hasattr(col, "values") and not isinstance(col, np.ndarray)


def escape_measurement(name: str) -> str:
    """Escape a measurement name like ``Point`` does."""
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_key(key: str) -> str:
    """Escape a tag key, tag value or field key."""
    return key.translate(_ESCAPE_KEY)


@lru_cache(maxsize=1 << 16)
def escape_tag_value(value: str) -> str:
    """Escape a tag value; a trailing backslash would escape the separator, so add a space.

    Cached: the same device ids and districts come back in every batch.
    """
    out = value.translate(_ESCAPE_KEY)
    return out + " " if out.endswith("\\") else out


def escape_string_field(value: str) -> str:
    """Escape the body of a string field value (without the surrounding quotes)."""
    return value.translate(_ESCAPE_STRING)


@dataclass(eq=False)
class _Part:
    """One column as the kernel sees it: constant text around a per-row table lookup."""

    is_field: bool
    prefix: str  # ",key=" for a tag, "key=" or 'key="' for a field
    suffix: str  # '"' for a string field, "i" for an integer field, else ""
    texts: list[str]  # rendered distinct values
    codes: np.ndarray  # int64[n]: index into texts, -1 where the row has no value


def encode(
    measurement: str,
    time_ns: np.ndarray | Sequence[int] | None,
    tags: Mapping[str, TagColumn] | None = None,
    fields: Mapping[str, FieldColumn] | None = None,
) -> bytes:
    """Render rows of columns as line protocol: one line per row that has a field.

    Parameters
    ----------
    measurement
        Measurement name (non-empty, not starting with ``#``).
    time_ns
        ``int64`` nanoseconds since the epoch per row, or ``None`` for server time (then
        the row count comes from the first array column).
    tags
        Tag key -> a constant ``str``, a dictionary-encoded column (``.values``/``.codes``),
        or a per-row sequence/array of ``str`` (``None``/``""`` leave the tag out).
    fields
        Field key -> numpy array (float: NaN/inf left out; int: ``i`` suffix; bool; str
        or object of ``str``/``None``), or a dictionary-encoded string column.

    Returns
    -------
    bytes
        UTF-8 lines joined by ``\n`` in row order (empty if no row has a field).

    Raises
    ------
    ValueError
        Invalid measurement, empty field key, unequal column lengths, unsupported dtype,
        or text that is not encodable as UTF-8 (lone surrogates).
    """
    return _assemble_rows(measurement, time_ns, tags or {}, fields or {})[0].tobytes()


def encode_lines(
    measurement: str,
    time_ns: np.ndarray | Sequence[int] | None,
    tags: Mapping[str, TagColumn] | None = None,
    fields: Mapping[str, FieldColumn] | None = None,
) -> list[str]:
    """:func:`encode` as a list of lines (string fields may contain raw newlines)."""
    out, starts = _assemble_rows(measurement, time_ns, tags or {}, fields or {})
    data = out.tobytes()
    return [data[a : b - 1].decode() for a, b in pairwise(starts.tolist())]


def _assemble_rows(
    measurement: str,
    time_ns: np.ndarray | Sequence[int] | None,
    tags: Mapping[str, TagColumn],
    fields: Mapping[str, FieldColumn],
) -> tuple[np.ndarray, np.ndarray]:
    meas = escape_measurement(measurement)
    if not meas or meas.startswith("#"):
        raise ValueError(f"invalid measurement name {measurement!r}")
    n = _row_count(time_ns, tags, fields)
    parts = [p for k in sorted(tags) if (p := _tag_part(k, tags[k], n)) is not None]
    parts += [_field_part(k, fields[k]) for k in sorted(fields)]
    if n == 0 or not any(p.is_field for p in parts):
        return np.empty(0, np.uint8), np.zeros(1, np.int64)
    codes = np.empty((len(parts), n), dtype=np.int64)
    blobs: list[bytes] = []
    lengths: list[np.ndarray] = []
    first = 0  # id of the part's first text in the shared table
    for j, part in enumerate(parts):
        codes[j] = np.where(part.codes >= 0, part.codes + first, -1)
        blob, sizes = _utf8(part.texts)
        blobs.append(blob)
        lengths.append(sizes)
        first += len(part.texts)
    text_off = np.zeros(first + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lengths), out=text_off[1:])
    times = np.zeros(n, np.int64) if time_ns is None else np.asarray(time_ns, dtype=np.int64)
    return assemble(
        np.frombuffer(meas.encode(), dtype=np.uint8),
        np.array([p.is_field for p in parts], dtype=np.bool_),
        *_buffer([p.prefix.encode() for p in parts]),
        *_buffer([p.suffix.encode() for p in parts]),
        np.frombuffer(b"".join(blobs), dtype=np.uint8),
        text_off,
        codes,
        times,
        time_ns is not None,
    )


def _utf8(texts: list[str]) -> tuple[bytes, np.ndarray]:
    """Texts as one UTF-8 blob plus each text's byte length (one C call when ASCII)."""
    joined = "".join(texts)
    if joined.isascii():
        return joined.encode("ascii"), np.fromiter(map(len, texts), np.int64, len(texts))
    encoded = [t.encode() for t in texts]
    return b"".join(encoded), np.fromiter(map(len, encoded), np.int64, len(encoded))


def _buffer(chunks: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated bytes (uint8) and int64 offsets (``len(chunks) + 1``)."""
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    return np.frombuffer(b"".join(chunks), dtype=np.uint8), offsets


# -- columns ------------------------------------------------------------------------------


def _row_count(
    time_ns: Any, tags: Mapping[str, TagColumn], fields: Mapping[str, FieldColumn]
) -> int:
    lengths = set()
    if time_ns is not None:
        lengths.add(len(time_ns))
    for col in [*tags.values(), *fields.values()]:
        if isinstance(col, str):
            continue
        lengths.add(len(col.codes) if is_dictionary(col) else len(cast("Sized", col)))
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    if not lengths:
        raise ValueError("no per-row column given (need time_ns or an array column)")
    return lengths.pop()


def _strings(
    col: Dictionary | Sequence[Any] | np.ndarray, escape: Callable[[str], str], drop_empty: bool
) -> tuple[list[str], np.ndarray]:
    """Escaped distinct values and int64 per-row codes (-1: no value).

    Each distinct value is escaped once; ``None`` (and ``""`` when ``drop_empty``) is
    absent.
    """
    if is_dictionary(col):
        uniques: list[Any] = list(col.values)
        codes = np.asarray(col.codes, dtype=np.int64)
    else:
        arr = np.asarray(col, dtype=object).reshape(-1)
        uniques = list(dict.fromkeys(arr.tolist()))
        index = {v: i for i, v in enumerate(uniques)}
        codes = np.fromiter(map(index.__getitem__, arr.tolist()), dtype=np.int64, count=arr.size)
    texts = ["" if v is None else escape(str(v)) for v in uniques]
    valid = np.array(
        [v is not None and (t or not drop_empty) for v, t in zip(uniques, texts, strict=True)],
        dtype=bool,
    )
    if not uniques:
        return [], codes
    return texts, np.where(valid[codes], codes, -1)


def _tag_part(key: str, col: TagColumn, n: int) -> _Part | None:
    ekey = escape_key(key)
    if not ekey:
        return None  # Point drops tags with an empty key
    if isinstance(col, str):
        value = escape_tag_value(col)
        if not value:
            return None
        return _Part(False, f",{ekey}=", "", [value], np.zeros(n, dtype=np.int64))
    texts, codes = _strings(col, escape_tag_value, drop_empty=True)
    return _Part(False, f",{ekey}=", "", texts, codes)


def _field_part(key: str, col: FieldColumn) -> _Part:
    ekey = escape_key(key)
    if not ekey:
        raise ValueError("empty field key")
    if is_dictionary(col):
        return _Part(True, f'{ekey}="', '"', *_strings(col, escape_string_field, False))
    arr = np.asarray(col)
    kind = arr.dtype.kind
    if kind == "f":
        return _Part(True, f"{ekey}=", "", *_float_table(arr.astype(np.float64, copy=False)))
    if kind == "b":
        return _Part(True, f"{ekey}=", "", ["false", "true"], arr.astype(np.int64))
    if kind in "iu":
        values, inverse = np.unique(arr, return_inverse=True)
        texts = list(map(str, values.tolist()))
        return _Part(True, f"{ekey}=", "i", texts, inverse.reshape(-1).astype(np.int64))
    if kind in "UOT":
        return _Part(True, f'{ekey}="', '"', *_strings(arr, escape_string_field, False))
    raise ValueError(f"field {key!r}: unsupported dtype {arr.dtype}")


def _float_table(col: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Point's text of each distinct float and int64 per-row codes (-1: NaN/inf).

    Sensor values repeat a lot (quantised heart rates, one-decimal SpO2), so each distinct
    bit pattern is formatted once; the sort behind ``np.unique`` is C. Bit patterns rather
    than values, so ``-0.0`` and ``0.0`` stay distinct.
    """
    bits, inverse = np.unique(col.reshape(-1).view(np.int64), return_inverse=True)
    values = bits.view(np.float64)
    codes = inverse.reshape(-1).astype(np.int64)
    return _float_texts(values), np.where(np.isfinite(values)[codes], codes, -1)


def _float_texts(values: np.ndarray) -> list[str]:
    """``str(v)`` minus a trailing ``.0``, as ``Point`` writes floats.

    Integral values below 1e16 print as their integer (``repr(72.0)[:-2] == str(72)``);
    ``-0.0`` prints as ``-0``; everything else is ``repr`` (shortest round-trip).
    """
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(values) & (np.abs(values) < _INT_SAFE) & (values == np.trunc(values))
    texts = np.empty(values.size, dtype=object)
    texts[:] = list(map(repr, values.tolist()))
    if integral.any():
        texts[integral] = list(map(str, values[integral].astype(np.int64).tolist()))
        texts[(values == 0) & np.signbit(values)] = "-0"  # int(-0.0) lost the sign
    return list(texts)
