"""Writes kept as columns until the commit step, then encoded once per measurement.

A worker writes a few measurements per micro-batch (~1,000 readings); encoding each
batch's rows on its own paid the line-protocol set-up (tag tables, part buffers, a
kernel call per column) ~200 times per commit step. :class:`PendingTables` keeps the
columns instead and, at the step, concatenates the writes of one measurement that share
a *layout* (the same tag and field keys, dtypes, constant tags and dictionary objects:
e.g. device tags coded into the partition's device index, whose list only grows) and
encodes them in one :func:`streams.sink.lineprotocol.encode_body` call.

Lines come out grouped by measurement instead of interleaved by batch. That is the same
data: points of different measurements never share a series, and the writes of one
measurement keep their order (a write whose layout differs from the measurement's last
one starts a new table after it), so an upsert written twice in a step still ends with
its latest value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest.batch import DictColumn
from streams.sink.lineprotocol import encode_body, is_dictionary

log = logging.getLogger(__name__)

#: Rows encoded per call at most: enough to make the per-call set-up negligible, few
#: enough that the call's arrays stay in the CPU caches (a whole 200-batch step in one
#: call was slower than batch by batch).
MAX_ROWS = 8192
#: How a column concatenates: ``None`` for a column that does not (a plain list of str).
_Layout = tuple[Any, ...] | None


@dataclass(frozen=True)
class Coded:
    """A dictionary-encoded column (``values[codes[i]]``), as the encoder reads one.

    ``values`` may be a list that only ever grows (a partition's device ids): writes of
    many batches then share it and concatenate.
    """

    values: Sequence[str | None]
    codes: np.ndarray

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def _column_layout(col: Any) -> tuple[Any, ...] | None:
    if isinstance(col, str):
        return ("s", col)
    if is_dictionary(col):
        return ("d", id(col.values))
    if isinstance(col, np.ndarray) and col.ndim == 1:
        return ("a", col.dtype.str)
    return None


def _scan(
    time_ns: np.ndarray, tags: Mapping[str, Any], fields: Mapping[str, Any]
) -> tuple[int, _Layout, dict[str, int]]:
    """Row count, layout and dictionary length per dictionary column, in one pass over
    the columns (a write costs a few microseconds of this per batch: it used to be three
    passes). Unequal column lengths raise here, at the write that caused them."""
    n = len(time_ns)
    parts: list[tuple[Any, ...]] | None = []
    sizes: dict[str, int] = {}
    for kind, cols in (("t", tags), ("f", fields)):
        for key in sorted(cols):
            col = cols[key]
            kind_of = type(col)
            if (
                kind_of is Coded
                or kind_of is DictColumn
                or (kind_of is not np.ndarray and kind_of is not str and is_dictionary(col))
            ):
                m = len(col.codes)
                sizes[key] = len(col.values)
                lay: tuple[Any, ...] | None = ("d", id(col.values))
            elif kind_of is str or isinstance(col, str):  # a constant (np.str_, StrEnum too)
                if parts is not None:
                    parts.append((kind, key, "s", col))
                continue
            else:
                m = len(col)
                lay = _column_layout(col)
            if m != n:
                raise ValueError(f"column {key!r} has {m} rows, time has {n}")
            if lay is None:
                parts = None
            elif parts is not None:
                parts.append((kind, key, *lay))
    return n, (None if parts is None else tuple(parts)), sizes


#: Dictionaries this long or shorter are encoded whole (compacting costs more than it saves).
_COMPACT_MIN = 256


def _snapshot(values: Sequence[str | None], size: int) -> Sequence[str | None]:
    """A list that may still grow (a device index's ids) cut to what the codes use; the
    slice is one atomic step even while another thread appends."""
    return values[:size] if isinstance(values, list) else values


@dataclass
class _Table:
    """Writes of one measurement and layout, in order."""

    database: str
    measurement: str
    layout: _Layout
    times: list[np.ndarray] = field(default_factory=list)
    tags: list[Mapping[str, Any]] = field(default_factory=list)
    fields: list[Mapping[str, Any]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # dictionary length per column
    rows: int = 0

    def add(
        self,
        time_ns: np.ndarray,
        tags: Mapping[str, Any],
        fields: Mapping[str, Any],
        sizes: Mapping[str, int],
    ) -> None:
        """Append a write (``sizes``: its dictionary lengths, from :func:`_scan`)."""
        self.times.append(time_ns)
        self.tags.append(tags)
        self.fields.append(fields)
        self.rows += len(time_ns)
        mine = self.sizes
        for key, size in sizes.items():
            if size > mine.get(key, 0):
                mine[key] = size

    def _merged(self, key: str, cols: list[Any]) -> Any:
        first = cols[0]
        if is_dictionary(first):
            codes = first.codes if len(cols) == 1 else np.concatenate([c.codes for c in cols])
            values = _snapshot(first.values, self.sizes[key])
            if len(values) > max(_COMPACT_MIN, 4 * codes.size) and codes.size and codes.min() >= 0:
                # a few rows against a partition's whole device index: the encoder's cost
                # is per distinct value, so hand it only the values these rows use
                used, codes = np.unique(codes, return_inverse=True)
                values = [values[i] for i in used.tolist()]
            return Coded(values, codes)
        if len(cols) == 1 or isinstance(first, str):
            return first
        return np.concatenate(cols)

    def encode(self) -> tuple[bytes, int]:
        """The table's line protocol and its number of lines."""
        tags = {k: self._merged(k, [t[k] for t in self.tags]) for k in self.tags[0]}
        fields = {k: self._merged(k, [f[k] for f in self.fields]) for k in self.fields[0]}
        times = self.times[0] if len(self.times) == 1 else np.concatenate(self.times)
        return encode_body(self.measurement, times, tags, fields)


class PendingTables:
    """Column writes per database until :meth:`encode` (see the module docstring)."""

    def __init__(self) -> None:
        self._tables: list[_Table] = []
        self._last: dict[tuple[str, str], _Table] = {}

    def __bool__(self) -> bool:
        return bool(self._tables)

    def add(
        self,
        database: str,
        measurement: str,
        time_ns: np.ndarray,
        tags: Mapping[str, Any],
        fields: Mapping[str, Any],
    ) -> None:
        """Queue rows (columns as :func:`streams.sink.encode` takes them, not copied:
        they must not change afterwards)."""
        n, layout, sizes = _scan(time_ns, tags, fields)
        if n == 0:
            return
        key = (database, measurement)
        table = self._last.get(key)
        if table is None or layout is None or table.layout != layout or table.rows + n > MAX_ROWS:
            table = _Table(database, measurement, layout)
            self._tables.append(table)
            self._last[key] = table
        table.add(np.asarray(time_ns, dtype=np.int64), tags, fields, sizes)

    def encode(self) -> tuple[dict[str, list[bytes]], int, int]:
        """Bodies per database, the points they hold, and the rows that could not be
        encoded (logged and left out, like points InfluxDB refuses); empties the queue."""
        tables, self._tables, self._last = self._tables, [], {}
        bodies: dict[str, list[bytes]] = {}
        points = failed = 0
        for table in tables:
            try:
                body, lines = table.encode()
            except ValueError as exc:
                log.error("%d %s rows not encoded: %s", table.rows, table.measurement, exc)
                failed += table.rows
                continue
            if lines:
                bodies.setdefault(table.database, []).append(body)
                points += lines
        return bodies, points, failed
