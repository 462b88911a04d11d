"""Accumulate validated readings into per-partition columnar micro-batches.

The bridge appends each validated (and pseudonymised) reading; the builder keeps one
column buffer per Kafka partition of the reading's stream and seals a buffer into an
encoded record when it reaches ``max_count`` readings or about ``max_bytes``, or when its
oldest reading is ``max_age_s`` old (:meth:`MicroBatcher.poll`). Partitions follow
Kafka's default partitioner (murmur2 of the device key), so a device always lands on the
same partition and its kernel state stays with one worker. Air stations are keyed by their
district instead (``StreamSchema.partition_key``): one partition holds a district's
stations, so its AQI is computed in one place (docs/BATCH_FORMAT.md).

Readings may be pydantic models or plain mappings: fields are read by the contract names
of docs/ARCHITECTURE.md (``ts``, ``heart_rate``, ``t0``, ``rate_hz``, ``x``, ...).
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from aiokafka.partitioner import murmur2

from ingest.batch.codec import ColumnarBatch, DictColumn, Ragged, encode
from ingest.batch.schema import (
    COMMON_STRINGS,
    SAMPLE_COLUMNS,
    STREAMS,
    TIME_COLUMN,
    StreamSchema,
    stream_for,
)

_NAN = math.nan
_RECORD_OVERHEAD = 256  # msgpack map keys, header and dtype strings, roughly


@dataclass(frozen=True)
class BatchLimits:
    """When a partition buffer is sealed (whichever comes first)."""

    max_count: int = 1000
    max_bytes: int = 1 << 20
    max_age_s: float = 0.05

    def __post_init__(self) -> None:
        if self.max_count < 1 or self.max_bytes < 1 or not self.max_age_s >= 0:
            raise ValueError(f"invalid batch limits {self}")


@dataclass(frozen=True)
class SealedBatch:
    """An encoded record ready for Kafka, with the opaque tokens of its readings.

    The bridge passes e.g. MQTT message ids as tokens and acknowledges them once Kafka
    acknowledged ``payload``.
    """

    stream: str
    partition: int
    payload: bytes
    count: int
    tokens: list[Any] = field(repr=False)


def field_of(reading: Any, name: str) -> Any:
    """Contract field ``name`` of a mapping or attribute object (``None`` if absent)."""
    return fields_of(reading)(name)


def fields_of(reading: Any) -> Callable[[str], Any]:
    """A getter of contract fields for one reading (the type is checked once, not per field)."""
    if isinstance(reading, Mapping):
        return reading.get
    return lambda name: getattr(reading, name, None)


@lru_cache(maxsize=65536)
def kafka_partition(key: str, partitions: int) -> int:
    """Kafka's default partition of a string key (Java ``DefaultPartitioner``).

    ``toPositive(murmur2(utf8(key))) % partitions``, the same mapping the Java and
    aiokafka producers use for keyed records.
    """
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class Route(NamedTuple):
    """Buffer key, schema and provenance strings of one source (see :meth:`MicroBatcher.route`)."""

    key: tuple[str, int]
    schema: StreamSchema
    provenance: tuple[str, str, str, str]  # device, district, family, channel


class _Buffer:
    """Column lists of one (stream, partition) being filled."""

    def __init__(self, schema: StreamSchema, started: float) -> None:
        self.schema = schema
        self.started = started
        self.numbers: dict[str, list[float]] = {k: [] for k in schema.numeric_dtypes}
        self.lookups: dict[str, dict[str, int]] = {k: {} for k in schema.string_columns}
        self.codes: dict[str, list[int]] = {k: [] for k in schema.string_columns}
        # C doubles, not lists of Python floats: array.fromlist converts a window at ~20 ns
        # per value, a list extend plus np.asarray at seal at ~50 (the motion stream's cost).
        self.samples: dict[str, array] = {k: array("d") for k in SAMPLE_COLUMNS}
        self.offsets: list[int] = [0]
        self.implicit: list[tuple[int, float, float]] = []  # (window, t0, rate_hz)
        self.tokens: list[Any] = []
        self.count = 0
        self.nbytes = _RECORD_OVERHEAD
        self._row_bytes = 8 * len(schema.floats) + 8 + len(schema.flags)
        self._row_bytes += 4 * len(schema.string_columns) + (8 if schema.ragged else 0)
        # Per-buffer plans so add() runs no schema lookups per reading (the bridge's
        # decoder process spends most of its Python time here).
        self._common = tuple((self.lookups[k], self.codes[k].append) for k in COMMON_STRINGS)
        self._floats = tuple((name, self.numbers[name].append) for name in schema.floats)
        self._flags = tuple((name, self.numbers[name].append) for name in schema.flags)
        self._ts = self.numbers[TIME_COLUMN].append

    def add_string(self, name: str, value: str) -> None:
        lookup = self.lookups[name]
        code = lookup.get(value)
        if code is None:
            code = lookup[value] = len(lookup)
            self.nbytes += len(value) + 2
        self.codes[name].append(code)

    def add(self, reading: Any, provenance: tuple[str, ...], token: Any) -> None:
        """Append one reading; on any error nothing of it stays (see :meth:`_rollback`)."""
        nbytes = self.nbytes
        try:
            self._add(reading, provenance, token)
        except BaseException:
            self._rollback(nbytes)
            raise

    def _rollback(self, nbytes: int) -> None:
        """Cut every column back to the rows counted: a reading that failed half-way (a
        bad window) must not leave the columns misaligned, or the next seal of this
        buffer would fail and lose every reading in it. A string it added to a lookup
        stays there unused (harmless)."""
        n = self.count
        for codes in self.codes.values():
            del codes[n:]
        for numbers in self.numbers.values():
            del numbers[n:]
        del self.tokens[n:]
        del self.offsets[n + 1 :]
        end = self.offsets[-1]
        for samples in self.samples.values():
            del samples[end:]
        while self.implicit and self.implicit[-1][0] >= n:
            self.implicit.pop()
        self.nbytes = nbytes

    def _add(self, reading: Any, provenance: tuple[str, ...], token: Any) -> None:
        schema = self.schema
        for (lookup, append_code), text in zip(self._common, provenance, strict=True):
            code = lookup.get(text)  # add_string, inlined: four calls per reading
            if code is None:
                code = lookup[text] = len(lookup)
                self.nbytes += len(text) + 2
            append_code(code)
        get: Callable[[str], Any] = reading.get if type(reading) is dict else fields_of(reading)
        for name in schema.strings:
            self.add_string(name, get(name) or "")
        for name, append in self._floats:
            value = get(name)
            append(_NAN if value is None else float(value))
        for name, append in self._flags:
            value = get(name)
            append(-1 if value is None else int(bool(value)))
        ts = self._add_window(get) if schema.ragged else get("ts")
        self._ts(float(ts))
        self.tokens.append(token)
        self.count += 1
        self.nbytes += self._row_bytes

    def _add_window(self, get: Callable[[str], Any]) -> float:
        """Append one accelerometer window; returns its start time."""
        x, y, z = get("x"), get("y"), get("z")
        n = len(x)
        if len(y) != n or len(z) != n or n == 0:
            raise ValueError(
                f"window axes must be equal-length and non-empty: {n}/{len(y)}/{len(z)}"
            )
        t = get("t")
        samples = self.samples
        if t is not None:
            if len(t) != n:
                raise ValueError(f"window has {len(t)} timestamps for {n} samples")
            _extend(samples["t"], t)
            start = float(t[0])
        else:
            start = float(get("t0"))
            self.implicit.append((self.count, start, float(get("rate_hz"))))
            samples["t"].fromlist([_NAN] * n)  # filled vectorised in seal()
        _extend(samples["x"], x)
        _extend(samples["y"], y)
        _extend(samples["z"], z)
        self.offsets.append(self.offsets[-1] + n)
        self.nbytes += 32 * n
        return start

    def seal(self, producer: str) -> ColumnarBatch:
        schema = self.schema
        columns = {
            name: np.asarray(values, dtype=np.dtype(schema.numeric_dtypes[name]))
            for name, values in self.numbers.items()
        }
        strings = {
            name: DictColumn(tuple(self.lookups[name]), np.asarray(codes, dtype=np.int32))
            for name, codes in self.codes.items()
        }
        ragged = None
        if schema.ragged:
            offsets = np.asarray(self.offsets, dtype=np.int64)
            sample_cols = {k: np.frombuffer(v, dtype=np.float64) for k, v in self.samples.items()}
            _fill_implicit_times(sample_cols["t"], offsets, self.implicit)
            ragged = Ragged(offsets, sample_cols)
        return ColumnarBatch(
            stream=schema.name,
            producer=producer,
            created=time.time(),
            columns=columns,
            strings=strings,
            ragged=ragged,
        )


def _extend(column: array, values: Sequence[float]) -> None:
    """Append a window's samples (a list from the contract model, or any float sequence)."""
    if type(values) is list:
        column.fromlist(values)
    else:
        column.extend(float(v) for v in values)


def _fill_implicit_times(
    t: np.ndarray, offsets: np.ndarray, implicit: list[tuple[int, float, float]]
) -> None:
    """Sample ``i`` of a ``(t0, rate_hz)`` window is at ``t0 + i / rate_hz`` (vectorised)."""
    if not implicit:
        return
    windows = np.asarray([w for w, _, _ in implicit], dtype=np.int64)
    t0 = np.asarray([s for _, s, _ in implicit])
    rate = np.asarray([r for _, _, r in implicit])
    lengths = offsets[windows + 1] - offsets[windows]
    owner = np.repeat(np.arange(windows.size), lengths)
    within = np.arange(owner.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    t[offsets[windows][owner] + within] = t0[owner] + within / rate[owner]


class MicroBatcher:
    """Route readings to per-stream, per-partition buffers and seal them into records.

    Parameters
    ----------
    partitions
        Partition count per stream (one int for all streams, or a mapping by stream).
    producer
        Id written in every batch header (e.g. ``ingest-<host>-<pid>``).
    limits
        Count/bytes/age bounds of one record.
    clock
        Monotonic clock for ages (injectable so tests need no sleeping).
    """

    def __init__(
        self,
        partitions: int | Mapping[str, int],
        producer: str,
        limits: BatchLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(partitions, int):
            partitions = dict.fromkeys(STREAMS, partitions)
        if any(partitions.get(s, 0) < 1 for s in STREAMS):
            raise ValueError(f"need >= 1 partition for every stream {sorted(STREAMS)}")
        self._partitions = dict(partitions)
        self.producer = producer
        self.limits = limits or BatchLimits()
        self._clock = clock
        self._buffers: dict[tuple[str, int], _Buffer] = {}

    @property
    def pending(self) -> int:
        """Readings held in unsealed buffers."""
        return sum(b.count for b in self._buffers.values())

    def append(
        self,
        reading: Any,
        *,
        device: str,
        district: str,
        family: str,
        channel: str,
        token: Any = None,
    ) -> SealedBatch | None:
        """Add one validated reading; returns a record if this filled its buffer.

        ``device`` must already be pseudonymised (ingest.pseudonym) for personal devices.

        Raises
        ------
        KeyError
            If ``(family, channel)`` belongs to no stream.
        ValueError
            If an accelerometer window is inconsistent (the contract prevents this).
        """
        route = self.route(device=device, district=district, family=family, channel=channel)
        return self.append_routed(reading, route, token)

    def route(self, *, device: str, district: str, family: str, channel: str) -> Route:
        """Where a source's readings go; reusable for every reading of that source.

        Raises
        ------
        KeyError
            If ``(family, channel)`` belongs to no stream.
        """
        stream = stream_for(family, channel)
        schema = STREAMS[stream]
        by = district if schema.partition_key == "district" else device
        key = (stream, kafka_partition(by, self._partitions[stream]))
        return Route(key, schema, (device, district, family, channel))

    def append_routed(self, reading: Any, route: Route, token: Any = None) -> SealedBatch | None:
        """:meth:`append` with a :meth:`route` computed before (the bridge caches it per topic).

        Raises
        ------
        ValueError
            If an accelerometer window is inconsistent (the contract prevents this).
        """
        key = route.key
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = _Buffer(route.schema, self._clock())
        buf.add(reading, route.provenance, token)
        limits = self.limits
        if buf.count >= limits.max_count or buf.nbytes >= limits.max_bytes:
            return self._seal(key)
        return None

    def next_deadline(self) -> float | None:
        """Clock time at which the oldest buffer becomes due, or ``None`` if all empty."""
        if not self._buffers:
            return None
        return min(b.started for b in self._buffers.values()) + self.limits.max_age_s

    def poll(self) -> list[SealedBatch]:
        """Seal every buffer whose oldest reading is at least ``max_age_s`` old."""
        now = self._clock()
        age = self.limits.max_age_s
        due = [k for k, b in self._buffers.items() if now >= b.started + age]
        return [self._seal(k) for k in due]

    def flush(self) -> list[SealedBatch]:
        """Seal every non-empty buffer (shutdown)."""
        return [self._seal(k) for k in list(self._buffers)]

    def _seal(self, key: tuple[str, int]) -> SealedBatch:
        buf = self._buffers.pop(key)
        payload = encode(buf.seal(self.producer))
        return SealedBatch(key[0], key[1], payload, buf.count, buf.tokens)
