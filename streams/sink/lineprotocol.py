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

Speed comes from never building a ``Point`` and never formatting in Python per row:
each column becomes a table of rendered texts plus int64 per-row codes, ``-1`` where a
row has no value. Dictionary columns already are one (escaped once per distinct value,
or not at all when no value holds a special character); floats and ints are rendered
per row by the Numba kernels of :mod:`streams.sink._numbers`; the Numba kernel
:func:`streams.sink._assemble.assemble` copies the bytes of every row into one buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol, TypeGuard, cast

import numpy as np

from streams.sink._assemble import assemble
from streams.sink._numbers import FALLBACK, render_floats, render_ints

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"}
)
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
#: Characters that make a tag value (or key) / a string field value need escaping.
_TAG_SPECIAL = ",= \n\t\r\\"
_STRING_SPECIAL = '"\\'
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


_ESCAPERS: dict[str, Callable[[str], str]] = {
    _TAG_SPECIAL: escape_tag_value,
    _STRING_SPECIAL: escape_string_field,
}


@dataclass(eq=False)
class _Part:
    """One column as the kernel sees it: constant text around a per-row table lookup."""

    is_field: bool
    prefix: str  # ",key=" for a tag, "key=" or 'key="' for a field
    suffix: str  # '"' for a string field, "i" for an integer field, else ""
    blob: np.ndarray  # uint8: the rendered texts back to back
    offsets: np.ndarray  # int64[m + 1]: text t is blob[offsets[t]:offsets[t + 1]]
    codes: np.ndarray  # int64[n]: index of the row's text, -1 where the row has no value


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


def encode_body(
    measurement: str,
    time_ns: np.ndarray | Sequence[int] | None,
    tags: Mapping[str, TagColumn] | None = None,
    fields: Mapping[str, FieldColumn] | None = None,
) -> tuple[bytes, int]:
    """:func:`encode` and the number of lines (points) it wrote."""
    out, starts = _assemble_rows(measurement, time_ns, tags or {}, fields or {})
    return out.tobytes(), starts.size - 1


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
    first = np.zeros(len(parts), dtype=np.int64)  # id of each part's first shared text
    text_off = [np.zeros(1, np.int64)]
    base = 0  # byte offset of the part's blob in the shared buffer
    for j, part in enumerate(parts):
        codes[j] = part.codes
        text_off.append(part.offsets[1:] + base)
        if j + 1 < len(parts):
            first[j + 1] = first[j] + part.offsets.size - 1
        base += part.blob.size
    times = np.zeros(n, np.int64) if time_ns is None else np.asarray(time_ns, dtype=np.int64)
    return assemble(
        np.frombuffer(meas.encode(), dtype=np.uint8),
        np.array([p.is_field for p in parts], dtype=np.bool_),
        *_buffer([p.prefix.encode() for p in parts]),
        *_buffer([p.suffix.encode() for p in parts]),
        np.concatenate([p.blob for p in parts]),
        np.concatenate(text_off),
        codes,
        first,
        times,
        time_ns is not None,
    )


def _table(texts: Sequence[str], joined: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one UTF-8 uint8 blob plus int64 offsets (one C call when ASCII)."""
    if joined is None:
        joined = "".join(texts)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    if joined.isascii():
        np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=offsets[1:])
        return np.frombuffer(joined.encode("ascii"), dtype=np.uint8), offsets
    encoded = [t.encode() for t in texts]
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


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
    col: Dictionary | Sequence[Any] | np.ndarray, special: str, drop_empty: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Escaped distinct values as a table (blob, offsets) and int64 per-row codes (-1: no
    value).

    ``special`` names the escape rule by its special characters (:data:`_TAG_SPECIAL` or
    :data:`_STRING_SPECIAL`); each distinct value is escaped once, and values without
    any special character (the usual device ids and districts) are taken as they are
    after one C-level join and a substring scan per special character.
    ``None`` (and ``""`` when ``drop_empty``) is absent.
    """
    if is_dictionary(col):
        uniques: Sequence[Any] = col.values
        codes = np.asarray(col.codes, dtype=np.int64)
    else:
        arr = np.asarray(col, dtype=object).reshape(-1)
        uniques = list(dict.fromkeys(arr.tolist()))
        index = {v: i for i, v in enumerate(uniques)}
        codes = np.fromiter(map(index.__getitem__, arr.tolist()), dtype=np.int64, count=arr.size)
    if not uniques:
        return np.empty(0, np.uint8), np.zeros(1, np.int64), codes
    try:
        joined: str | None = "".join(uniques)  # TypeError: a None or a non-str among them
    except TypeError:
        joined = None
    if joined is not None and not any(c in joined for c in special):
        texts: Sequence[str] = uniques  # nothing to escape (no None either: join took them)
        blob, offsets = _table(texts, joined)
        if drop_empty and offsets.size > 1 and not np.all(offsets[1:] > offsets[:-1]):
            codes = np.where((offsets[1:] > offsets[:-1])[codes], codes, -1)
        return blob, offsets, codes
    escape = _ESCAPERS[special]
    texts = ["" if v is None else escape(str(v)) for v in uniques]
    valid = np.array(
        [v is not None and (t or not drop_empty) for v, t in zip(uniques, texts, strict=True)],
        dtype=bool,
    )
    return (*_table(texts), np.where(valid[codes], codes, -1))


def _tag_part(key: str, col: TagColumn, n: int) -> _Part | None:
    ekey = escape_key(key)
    if not ekey:
        return None  # Point drops tags with an empty key
    if isinstance(col, str):
        value = escape_tag_value(col)
        if not value:
            return None
        return _Part(False, f",{ekey}=", "", *_table([value]), np.zeros(n, dtype=np.int64))
    return _Part(False, f",{ekey}=", "", *_strings(col, _TAG_SPECIAL, drop_empty=True))


def _field_part(key: str, col: FieldColumn) -> _Part:
    ekey = escape_key(key)
    if not ekey:
        raise ValueError("empty field key")
    if is_dictionary(col):
        return _Part(True, f'{ekey}="', '"', *_strings(col, _STRING_SPECIAL, False))
    arr = np.asarray(col)
    kind = arr.dtype.kind
    if kind == "f":
        return _Part(True, f"{ekey}=", "", *_float_column(arr.astype(np.float64, copy=False)))
    if kind == "b":
        bools = _table(["false", "true"])
        return _Part(True, f"{ekey}=", "", *bools, arr.reshape(-1).astype(np.int64))
    if kind in "iu":
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) >= 2**63:
            values, inverse = np.unique(arr, return_inverse=True)  # beyond int64: Python ints
            table = _table(list(map(str, values.tolist())))
            return _Part(True, f"{ekey}=", "i", *table, inverse.reshape(-1).astype(np.int64))
        flat = arr.reshape(-1).astype(np.int64)
        return _Part(True, f"{ekey}=", "i", *render_ints(flat), np.arange(flat.size))
    if kind in "UOT":
        return _Part(True, f'{ekey}="', '"', *_strings(arr, _STRING_SPECIAL, False))
    raise ValueError(f"field {key!r}: unsupported dtype {arr.dtype}")


def _float_column(col: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point's text of each float (a table with one text per row, streams.sink._numbers)
    and int64 per-row codes (-1: NaN/inf). The rare value the kernel leaves to Python
    (a near-tie, a power of two of 16-17 digits, exponent notation, ``>= 1e15``) gets
    ``repr`` in an appended text."""
    flat = np.ascontiguousarray(col.reshape(-1), dtype=np.float64)
    blob, offsets, codes, slow = render_floats(flat)
    if slow:
        rows = np.flatnonzero(codes == FALLBACK)
        extra_blob, extra_off = _table(_float_texts(flat[rows]))
        codes[rows] = flat.size + np.arange(rows.size)
        blob = np.concatenate([blob, extra_blob])
        offsets = np.concatenate([offsets, extra_off[1:] + offsets[-1]])
    return blob, offsets, codes


def _float_texts(values: np.ndarray) -> list[str]:
    """``str(v)`` minus a trailing ``.0``, as ``Point`` writes floats (Python path).

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
