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

Speed comes from never building a ``Point``: each column is converted once with numpy
(integral floats become Python ints so ``%s`` prints them without ``.0``), rows are
grouped by which optional values they carry (usually one or two groups), and each group
is rendered with one ``%``-template applied in C via ``map(template.__mod__, zip(...))``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeGuard, cast

import numpy as np

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
    """One rendered column: template snippet, per-row values and presence."""

    is_field: bool
    snippet: str  # e.g. ",device=%s" or "hr=%s" (fields are joined with commas later)
    values: np.ndarray | None  # object array of per-row values, None when constant
    present: np.ndarray | None  # bool mask, None when present in every row


def encode_lines(
    measurement: str,
    time_ns: np.ndarray | Sequence[int] | None,
    tags: Mapping[str, TagColumn] | None = None,
    fields: Mapping[str, FieldColumn] | None = None,
) -> list[str]:
    """Render rows of columns as line-protocol lines (rows without fields are dropped).

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
    list of str
        One line per row that has at least one field, in row order.
    """
    tags = tags or {}
    fields = fields or {}
    meas = escape_measurement(measurement)
    if not meas or meas.startswith("#"):
        raise ValueError(f"invalid measurement name {measurement!r}")
    n = _row_count(time_ns, tags, fields)
    tag_parts = [p for k in sorted(tags) if (p := _tag_part(k, tags[k])) is not None]
    field_parts = [_field_part(k, fields[k]) for k in sorted(fields)]
    if n == 0 or not field_parts:
        return []
    times = None if time_ns is None else np.asarray(time_ns, dtype=np.int64).astype(object)
    parts = tag_parts + field_parts
    optional = [p for p in parts if p.present is not None]
    if optional:
        groups, inverse = _presence_groups(
            [p.present for p in optional if p.present is not None], n
        )
    else:
        groups, inverse = np.zeros((1, 0), dtype=bool), np.zeros(n, dtype=np.intp)
    out = np.empty(n, dtype=object)
    keep = np.ones(n, dtype=bool)
    for g, flags in enumerate(groups):
        present = {id(p) for p, flag in zip(optional, flags, strict=True) if flag}
        has = [p for p in parts if p.present is None or id(p) in present]
        rows = None if len(groups) == 1 else np.flatnonzero(inverse == g)
        if not any(p.is_field for p in has):
            keep[slice(None) if rows is None else rows] = False
            continue
        rendered = _render(meas, has, times, rows, n)
        if rows is None:
            out[:] = rendered
        else:
            out[rows] = rendered
    return out[keep].tolist()


def encode(
    measurement: str,
    time_ns: np.ndarray | Sequence[int] | None,
    tags: Mapping[str, TagColumn] | None = None,
    fields: Mapping[str, FieldColumn] | None = None,
) -> bytes:
    """:func:`encode_lines` joined by ``\\n`` as UTF-8 bytes (empty if no row has a field)."""
    return "\n".join(encode_lines(measurement, time_ns, tags, fields)).encode()


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
) -> tuple[np.ndarray, np.ndarray]:
    """Escaped per-row strings (object array) and the mask of rows that carry a value.

    Each distinct value is escaped once; rows gather from the small table by code.
    """
    if is_dictionary(col):
        uniques: list[Any] = list(col.values)
        codes = np.asarray(col.codes)
    else:
        arr = np.asarray(col, dtype=object)
        uniques = list(dict.fromkeys(arr.tolist()))
        index = {v: i for i, v in enumerate(uniques)}
        codes = np.fromiter(map(index.__getitem__, arr.tolist()), dtype=np.intp, count=arr.size)
    table = np.empty(len(uniques), dtype=object)
    table[:] = ["" if v is None else escape(str(v)) for v in uniques]
    valid = np.array([v is not None for v in uniques], dtype=bool)
    if drop_empty:
        valid &= table != ""
    if not uniques:
        return np.empty(0, dtype=object), np.zeros(0, dtype=bool)
    return table[codes], valid[codes]


def _tag_part(key: str, col: TagColumn) -> _Part | None:
    ekey = escape_key(key)
    if not ekey:
        return None  # Point drops tags with an empty key
    if isinstance(col, str):
        value = escape_tag_value(col)
        return _Part(False, f",{ekey}={value}".replace("%", "%%"), None, None) if value else None
    values, present = _strings(col, escape_tag_value, drop_empty=True)
    return _Part(False, f",{ekey.replace('%', '%%')}=%s", values, _optional(present))


def _field_part(key: str, col: FieldColumn) -> _Part:
    ekey = escape_key(key)
    if not ekey:
        raise ValueError("empty field key")
    k = ekey.replace("%", "%%")
    if is_dictionary(col):
        values, present = _strings(col, escape_string_field, drop_empty=False)
        return _Part(True, f'{k}="%s"', values, _optional(present))
    arr = np.asarray(col)
    kind = arr.dtype.kind
    if kind == "f":
        values, finite = _float_objects(arr.astype(np.float64, copy=False))
        return _Part(True, f"{k}=%s", values, _optional(finite))
    if kind == "b":
        values = np.where(arr, "true", "false").astype(object)
        return _Part(True, f"{k}=%s", values, None)
    if kind in "iu":
        return _Part(True, f"{k}=%si", arr.astype(object), None)
    if kind in "UOT":
        values, present = _strings(arr, escape_string_field, drop_empty=False)
        return _Part(True, f'{k}="%s"', values, _optional(present))
    raise ValueError(f"field {key!r}: unsupported dtype {arr.dtype}")


def _optional(present: np.ndarray) -> np.ndarray | None:
    """``None`` when every row carries the value (the common case: no grouping needed)."""
    return None if bool(present.all()) else present


def _float_objects(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``str`` of Point's float text (object array); and the finite mask.

    Sensor values repeat a lot (quantised heart rates, one-decimal SpO2), so each distinct
    bit pattern is formatted once and rows gather from that table: the sort behind
    ``np.unique`` is C, the ``repr`` calls are per *distinct* value. Bit patterns rather
    than values, so ``-0.0`` and ``0.0`` stay distinct.
    """
    finite = np.isfinite(col)
    bits, inverse = np.unique(col.view(np.int64), return_inverse=True)
    return _float_texts(bits.view(np.float64))[inverse.reshape(-1)], finite


def _float_texts(values: np.ndarray) -> np.ndarray:
    """``str(v)`` minus a trailing ``.0``, as ``Point`` writes floats (object array).

    Integral values below 1e16 print as their integer (``repr(72.0)[:-2] == str(72)``);
    ``-0.0`` prints as ``-0``; everything else is ``repr`` (shortest round-trip).
    """
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        integral = finite & (np.abs(values) < _INT_SAFE) & (values == np.trunc(values))
    texts = np.empty(values.size, dtype=object)
    texts[:] = list(map(repr, values.tolist()))
    if integral.any():
        texts[integral] = list(map(str, values[integral].astype(np.int64).tolist()))
        texts[(values == 0) & np.signbit(values)] = "-0"  # int(-0.0) lost the sign
    return texts


def _presence_groups(masks: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct presence patterns (rows of bools) and each row's pattern index."""
    matrix = np.stack(masks, axis=1)
    if matrix.shape[1] <= 62:
        weights = np.left_shift(np.int64(1), np.arange(matrix.shape[1], dtype=np.int64))
        packed = matrix.astype(np.int64) @ weights
        uniq, inverse = np.unique(packed, return_inverse=True)
        groups = ((uniq[:, None] >> np.arange(matrix.shape[1])) & 1).astype(bool)
        return groups, inverse.reshape(n)
    groups, inverse = np.unique(matrix, axis=0, return_inverse=True)
    return groups, inverse.reshape(n)


def _render(
    meas: str,
    has: list[_Part],
    times: np.ndarray | None,
    rows: np.ndarray | None,
    n: int,
) -> list[str]:
    tag_snips = "".join(p.snippet for p in has if not p.is_field)
    field_snips = ",".join(p.snippet for p in has if p.is_field)
    template = f"{meas.replace('%', '%%')}{tag_snips} {field_snips}"
    columns = [p.values for p in has if p.values is not None]
    if times is not None:
        template += " %s"
        columns.append(times)
    count = n if rows is None else rows.size
    if not columns:
        return [template.replace("%%", "%")] * count
    if rows is not None:
        columns = [c[rows] for c in columns]
    return list(map(template.__mod__, zip(*columns, strict=True)))
