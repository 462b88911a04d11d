"""Per-district, per-minute aggregates (AQI, devices online, readings, alerts) and AQI alerts.

Rows are upserts of the public ``district``, ``district_stream`` (readings per stream
channel) and ``district_alert`` (alerts per type) measurements (docs/DATA_MODEL.md):
counts per district only - no device, station, room or subject - so general operations
dashboards read person streams without the sensitive database.

**One series per source partition.** Every row carries the Kafka partition it was
computed from as the tag ``partition``, so several worker processes never overwrite
each other's rows; readers sum the counts across the tag (docs/DASHBOARDS.md). This is
exact because

* a device's readings of every stream are keyed by its pseudonymous id, and the four
  stream topics have the same partition count, so they all land on the same partition
  *number* (ingest.batch.builder);
* Faust assigns topics with the same partition count and the same subscribers
  *co-partitioned* (``faust.assignor.PartitionAssignor``: partition ``p`` of every stream
  goes to one worker), so one process's board sees every stream of partition ``p``: the
  devices online of ``(p, district, minute)`` are the union over the streams, and the
  device sets of different partitions are disjoint;
* air stations are keyed by *district* (docs/INGEST.md), so one partition holds every
  station of a district: the district's AQI maximum/mean, heat index maximum and the
  AQI category-change alert are computed where all its stations are.

**Checkpointed.** Each open ``(partition, district, minute)`` keeps one part per stream
(devices, readings, alerts, stations). A stream's part is exported with that stream's
commit step as the checkpoint record ``<stream>:<partition>:minute:<district>:<minute>``
(:meth:`DistrictBoard.take_records`), in the same transaction as the device state it
matches (streams/runner.py; offsets are committed after it), and restored by the
partition's next owner, so a restart or rebalance resumes a minute's totals instead of
rewriting them partial. The AQI category of each district is checkpointed the same way
(``aqi-category``), and its change alerts are raised in the air stream's commit step and
published at its cut, ahead of that checkpoint (streams/ahead.py).

Processors report through a *view* (:meth:`DistrictBoard.view`) that names their stream
and partition; the worker's timer writes every partition's touched minutes
(:meth:`DistrictBoard.flush`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np
from numba import njit

from kernels.aqi import CATEGORY_NAMES
from kernels.aqi import category as aqi_category
from streams.alerts import TYPES, Alert

if TYPE_CHECKING:
    from streams.devices import DeviceIndex
    from streams.output import Output

# A minute's counts stay in memory while it is still being touched: its rows are upserts
# of whole-minute totals, so a minute forgotten and touched again would overwrite the
# stored totals with a partial count. Minutes go when idle this long (wall clock; late
# data of a lagging partition or a replayed backlog arrives well within it), or, past
# _MAX_BUCKETS, least recently touched first (bounded memory during a fast replay).
_KEEP_IDLE_S = 300.0
_MAX_BUCKETS = 50_000
_CATEGORY_SEVERITY = ("info", "info", "warning", "warning", "critical", "critical")
#: ``scope`` tag of ``district_alert``: person alerts (sensitive mirror) or public ones.
_SCOPE = {"sensitive": "person", "public": "public"}
#: The stream whose stations give a district its AQI (and checkpoints its category).
STATION_STREAM = "airq"
#: Checkpoint record names (after ``<stream>:<partition>:``).
MINUTE_RECORD = "minute"
CATEGORY_RECORD = "aqi-category"
_RECORD_VERSION = 1

#: ``(partition, district, minute)``
Bucket = tuple[int, str, int]


class BoardRecordError(ValueError):
    """A district checkpoint record that cannot be restored."""


def _pair_counts(code: np.ndarray, minute: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``code << 32 | minute`` keys (ascending) and their counts; a batch spans a
    few districts and minutes, so one compiled count over that box replaces the sort of
    ``np.unique`` (which remains the path for a batch spread over a wide box)."""
    code = np.ascontiguousarray(code, dtype=np.int64)
    minute = np.ascontiguousarray(minute, dtype=np.int64)
    keys = np.empty(code.size, np.int64)
    counts = np.empty(code.size, np.int64)
    k = _box_counts(code, minute, keys, counts)
    if k < 0:
        return np.unique(code << 32 | minute, return_counts=True)
    return keys[:k], counts[:k]


@njit(cache=True, nogil=True)
def _box_counts(code: np.ndarray, minute: np.ndarray, keys: np.ndarray, counts: np.ndarray) -> int:
    """Counts per ``(code, minute)`` cell of the box the values span, written ascending
    to ``keys``/``counts``; returns how many, or -1 when the box is too wide (more than
    ``4 n + 64`` cells) to count in."""
    n = code.size
    lo = minute[0]
    hi = minute[0]
    top = code[0]
    for i in range(n):
        lo = min(lo, minute[i])
        hi = max(hi, minute[i])
        top = max(top, code[i])
    # in floats first: a NaN time's minute (int64 min) would overflow the integer box
    if (float(top) + 1.0) * (float(hi) - float(lo) + 1.0) > 4 * n + 64:
        return -1
    span = hi - lo + 1
    box = (top + 1) * span
    cells = np.zeros(box, np.int64)
    for i in range(n):
        cells[code[i] * span + (minute[i] - lo)] += 1
    k = 0
    for cell in range(box):
        if cells[cell]:
            keys[k] = (cell // span) << 32 | (cell % span + lo)
            counts[k] = cells[cell]
            k += 1
    return k


@dataclass
class _Minute:
    """One ``(partition, district, minute)``: a part per reporting stream."""

    devices: dict[str, set[str]] = field(default_factory=dict)  # stream -> device ids
    stations: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    readings: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, channel)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, type)
    touched: float = 0.0  # last touch (monotonic)
    saved: set[str] = field(default_factory=set)  # streams with a checkpoint record

    def row(self) -> tuple[float, float, int, int, int, float]:
        """``aqi_max, aqi_mean, stations_reporting, devices_online, alerts, heat_index_max``."""
        aqi = np.array([v[0] for v in self.stations.values()] or [np.nan])
        heat = np.array([v[1] for v in self.stations.values()] or [np.nan])
        ok = np.isfinite(aqi)
        online = set().union(*self.devices.values()) if self.devices else set()
        return (
            float(aqi[ok].max()) if ok.any() else np.nan,
            float(aqi[ok].mean()) if ok.any() else np.nan,
            len({name for _, name in self.stations}),
            len(online),
            sum(self.alerts.values()),
            float(np.nanmax(heat)) if np.isfinite(heat).any() else np.nan,
        )

    def part(self, stream: str) -> dict[str, Any]:
        """What ``stream`` contributed (a checkpoint record's body)."""
        return {
            "devices": sorted(self.devices.get(stream, ())),
            "stations": {n: list(v) for (s, n), v in self.stations.items() if s == stream},
            "readings": {c: k for (s, c), k in self.readings.items() if s == stream},
            "alerts": {t: k for (s, t), k in self.alerts.items() if s == stream},
        }

    def load(self, stream: str, part: dict[str, Any]) -> None:
        """Replace ``stream``'s part by a record's (:meth:`part`)."""
        self.drop(stream)
        if part["devices"]:
            self.devices[stream] = {str(d) for d in part["devices"]}
        for name, (aqi, heat) in part["stations"].items():
            self.stations[(stream, str(name))] = (float(aqi), float(heat))
        self.readings.update({(stream, str(c)): int(k) for c, k in part["readings"].items()})
        self.alerts.update({(stream, str(t)): int(k) for t, k in part["alerts"].items()})

    def drop(self, stream: str) -> None:
        self.devices.pop(stream, None)
        for table in (self.stations, self.readings, self.alerts):
            for key in [k for k in table if k[0] == stream]:
                del table[key]

    @property
    def empty(self) -> bool:
        return not (self.devices or self.stations or self.readings or self.alerts)


class _Shared:
    """The tables every view of one worker's board shares (guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[Bucket, _Minute] = {}
        self.dirty: set[Bucket] = set()  # to write at the next flush
        self.unscored: set[Bucket] = set()  # stations changed since the category check
        self.unsaved: dict[tuple[str, int], set[Bucket]] = {}  # (stream, p): to export
        self.tombstones: dict[tuple[str, int], set[tuple[str, int]]] = {}
        self.category: dict[tuple[int, str], int] = {}  # (partition, district) -> index
        self.category_unsaved: set[int] = set()
        self.late_rewrites = 0
        self.forgotten: set[Bucket] = set()
        self.flushed: list[Bucket] = []  # the last flush's minutes


class DistrictBoard:
    """Thread-safe minute buckets per partition and district (see the module docstring).

    ``DistrictBoard()`` is a worker's board; :meth:`view` gives a processor its stream's
    and partition's handle on the same tables. Reports made through the board itself
    count under stream ``""`` and partition 0 (processors run without a runner).
    """

    def __init__(self, stream: str = "", partition: int = 0, *, _shared: _Shared | None = None):
        self.stream = stream
        self.partition = partition
        self._s = _shared if _shared is not None else _Shared()

    def view(self, stream: str, partition: int) -> DistrictBoard:
        """The handle of ``stream``'s ``partition`` on this board's tables."""
        return DistrictBoard(stream, partition, _shared=self._s)

    @property
    def late_rewrites(self) -> int:
        """Minutes touched again after being forgotten (their rows were rewritten partial)."""
        return self._s.late_rewrites

    def open_minutes(self) -> list[Bucket]:
        """The ``(partition, district, minute)`` buckets held in memory, ascending."""
        with self._s.lock:
            return sorted(self._s.buckets)

    # -- reports (processors) -----------------------------------------------------------------
    def devices_seen(self, index: DeviceIndex, dev: np.ndarray, minute: np.ndarray) -> None:
        """Count devices online per district minute (per unique pair, not per reading)."""
        key = np.unique(dev.astype(np.int64) << 32 | minute)
        now = time.monotonic()
        with self._s.lock:
            for k in key.tolist():
                d, m = k >> 32, k & 0xFFFFFFFF
                district = index.districts[int(index.district_code[d])]
                bucket = self._touch(district, int(m), self.stream, now)
                bucket.devices.setdefault(self.stream, set()).add(index.ids[d])

    def station_seen(
        self, district: str, minute: int, station: str, aqi: float, heat_index: float
    ) -> None:
        """Latest NowCast overall AQI and heat index of a station in a minute (NaN: none)."""
        with self._s.lock:
            bucket = self._touch(district, minute, self.stream, time.monotonic())
            key = (self.stream, station)
            old = bucket.stations.get(key, (np.nan, np.nan))
            bucket.stations[key] = (
                aqi if np.isfinite(aqi) else old[0],
                heat_index if np.isfinite(heat_index) else old[1],
            )
            self._s.unscored.add((self.partition, district, minute))

    def readings_seen(
        self,
        stream: str,
        channel: str,
        districts: Sequence[str],
        code: np.ndarray,
        minute: np.ndarray,
    ) -> None:
        """Count readings of one channel per district minute (``code`` indexes
        ``districts``; one Python step per unique pair, not per reading)."""
        if code.size == 0:
            return
        uniq, counts = _pair_counts(code.astype(np.int64), minute.astype(np.int64))
        now = time.monotonic()
        with self._s.lock:
            for k, n in zip(uniq.tolist(), counts.tolist(), strict=True):
                bucket = self._touch(districts[k >> 32], k & 0xFFFFFFFF, stream, now)
                bucket.readings[(stream, channel)] += n

    def alert_raised(self, alert: Alert) -> None:
        with self._s.lock:
            self._count_alert(alert, time.monotonic())

    def _count_alert(self, alert: Alert, now: float) -> None:
        bucket = self._touch(alert.district, alert.minute, self.stream, now)
        bucket.alerts[(self.stream, alert.type)] += 1

    def _touch(self, district: str, minute: int, stream: str, now: float) -> _Minute:
        """The bucket, marked for the next flush and ``stream``'s next checkpoint (caller
        holds the lock)."""
        s = self._s
        key = (self.partition, district, minute)
        bucket = s.buckets.get(key)
        if bucket is None:
            if key in s.forgotten:
                s.forgotten.discard(key)
                s.late_rewrites += 1
            bucket = s.buckets[key] = _Minute()
        bucket.touched = now
        s.dirty.add(key)
        s.unsaved.setdefault((stream, self.partition), set()).add(key)
        return bucket

    # -- AQI category ---------------------------------------------------------------------------
    def category_alerts(self, out: Output) -> int:
        """Raise this partition's AQI category changes into ``out`` (the air stream's
        commit step: published at the step's cut, ahead of the checkpoint of the new
        category, streams/ahead.py); returns how many."""
        with self._s.lock:
            alerts = self._category_changes(self.partition)
        for alert in alerts:
            out.alert(alert)
        return len(alerts)

    def _category_changes(self, partition: int | None) -> list[Alert]:
        """One alert when a district's worst-station NowCast AQI changes category, per
        minute whose stations changed (ascending; ``partition`` None: every partition;
        caller holds the lock). The alerts count in their minute at once.

        A district's first category after start only alerts from "Unhealthy for
        Sensitive Groups" up (no alert storm of "Good" at start-up).
        """
        s = self._s
        due = sorted(
            (b for b in s.unscored if partition is None or b[0] == partition),
            key=lambda b: (b[2], b[0], b[1]),
        )
        s.unscored.difference_update(due)
        alerts = []
        now = time.monotonic()
        for p, district, minute in due:
            bucket = s.buckets.get((p, district, minute))
            if bucket is None:
                continue
            values = [v[0] for v in bucket.stations.values() if np.isfinite(v[0])]
            if not values:
                continue
            worst = max(values)
            cat = int(aqi_category(worst).index)
            prev = s.category.get((p, district))
            s.category[(p, district)] = cat
            s.category_unsaved.add(p)
            if cat == prev or (prev is None and cat < 2):
                continue
            alert = Alert(
                type="aqi_category",
                severity=_CATEGORY_SEVERITY[cat],  # type: ignore[arg-type]
                subject=district,
                subject_kind="district",
                district=district,
                start=minute * 60.0,
                sensor_ts=minute * 60.0,
                message=f"air quality now {CATEGORY_NAMES[cat]} (AQI {worst:.0f})",
                value=worst,
                evidence={
                    "aqi": worst,
                    "category": CATEGORY_NAMES[cat],
                    "previous_category": None if prev is None else CATEGORY_NAMES[prev],
                    "stations": sorted({name for _, name in bucket.stations}),
                },
            )
            self.view(self.stream, p)._count_alert(alert, now)
            alerts.append(alert)
        return alerts

    # -- checkpoint (runners) ---------------------------------------------------------------------
    def take_records(self) -> list[tuple[str, bytes | None]]:
        """Checkpoint records of this view's stream and partition changed since the last
        call: ``(name, body)``, body ``None`` for a minute forgotten since (a tombstone)."""
        s, stream, p = self._s, self.stream, self.partition
        out: list[tuple[str, bytes | None]] = []
        with s.lock:
            written: set[Bucket] = set()
            for key in sorted(s.unsaved.pop((stream, p), ()), key=lambda b: (b[2], b[1])):
                bucket = s.buckets.get(key)
                if bucket is None:  # forgotten meanwhile: see the tombstones
                    continue
                bucket.saved.add(stream)
                body = {"v": _RECORD_VERSION, "district": key[1], "minute": key[2]}
                body.update(bucket.part(stream))
                out.append((_minute_name(key[1], key[2]), _pack(body)))
                written.add(key)
            # A forgotten minute this stream touched again is superseded by the record just
            # written. One that only *another* stream re-created still holds this stream's
            # stale part in the checkpoint, and this stream has no part in the new bucket:
            # the tombstone must go out, or every restore would bring the stale part back.
            for district, minute in sorted(s.tombstones.pop((stream, p), ())):
                if (p, district, minute) not in written:
                    out.append((_minute_name(district, minute), None))
            if stream == STATION_STREAM and p in s.category_unsaved:
                s.category_unsaved.discard(p)
                cats = {d: c for (q, d), c in s.category.items() if q == p}
                out.append((CATEGORY_RECORD, _pack({"v": _RECORD_VERSION, "category": cats})))
        return out

    def has_tombstones(self) -> bool:
        """Minutes of this view's stream part forgotten but still in its checkpoint: a
        stream that gets no more data commits them on its timer (else a restore would
        bring back that part alone and rewrite its minute partial)."""
        with self._s.lock:
            return bool(self._s.tombstones.get((self.stream, self.partition)))

    def import_record(self, name: str, payload: bytes) -> None:
        """Restore one record of :meth:`take_records` into this view's stream part; its
        minute is written again at the next flush.

        Raises
        ------
        BoardRecordError
            If the record cannot be read.
        """
        try:
            body = msgpack.unpackb(payload, raw=False)
            if body.get("v") != _RECORD_VERSION:
                raise BoardRecordError(f"unsupported district record version {body.get('v')!r}")
            s = self._s
            with s.lock:
                if name == CATEGORY_RECORD:
                    for district, cat in body["category"].items():
                        s.category[(self.partition, str(district))] = int(cat)
                    return
                key = (self.partition, str(body["district"]), int(body["minute"]))
                bucket = s.buckets.setdefault(key, _Minute())
                bucket.load(self.stream, body)
                bucket.saved.add(self.stream)
                bucket.touched = time.monotonic()
                s.dirty.add(key)
        except BoardRecordError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, msgpack.UnpackException) as exc:
            raise BoardRecordError(f"bad district record {name!r}: {exc}") from None

    def drop(self) -> None:
        """Forget this view's stream part of its partition (the partition was revoked or
        its runner closed: the next owner restores the committed part)."""
        s, stream, p = self._s, self.stream, self.partition
        with s.lock:
            for key in [k for k in s.buckets if k[0] == p]:
                bucket = s.buckets[key]
                bucket.drop(stream)
                bucket.saved.discard(stream)
                if bucket.empty:
                    del s.buckets[key]
                    s.dirty.discard(key)
                    s.unscored.discard(key)
            s.unsaved.pop((stream, p), None)
            s.tombstones.pop((stream, p), None)
            if stream == STATION_STREAM:
                for key2 in [k for k in s.category if k[0] == p]:
                    del s.category[key2]
                s.category_unsaved.discard(p)

    # -- rows (the worker's timer) -----------------------------------------------------------
    def flush(self, out: Output, skip: Collection[int] = (), categories: bool = True) -> int:
        """Write the touched minutes; returns rows written.

        ``skip``: partitions not written now (their minutes stay due: e.g. a partition
        whose streams are not all restored yet would write a partial row).
        ``categories``: raise AQI-category changes here too (a board without runners;
        the worker's runners raise them in the air stream's commit step).
        """
        s = self._s
        changes: list[Alert] = []
        with s.lock:
            if categories:
                changes = self._category_changes(None)
            keys = sorted(
                (b for b in s.dirty if b[0] not in skip), key=lambda b: (b[2], b[0], b[1])
            )
            s.dirty.difference_update(keys)
            s.flushed = keys
            rows = [s.buckets[b].row() for b in keys]
            readings = [(b, *k, n) for b in keys for k, n in s.buckets[b].readings.items()]
            types: Counter[tuple[Bucket, str]] = Counter()
            for b in keys:
                for (_, t), n in s.buckets[b].alerts.items():
                    types[(b, t)] += n
            self._forget_idle(time.monotonic() - _KEEP_IDLE_S)
        for alert in changes:
            out.alert(alert)
        if rows:
            _write(out, keys, rows)
        _write_counts(out, readings, types)
        return len(rows)

    def unflush(self) -> None:
        """Mark the last flush's minutes (still held) for the next one: its write failed."""
        with self._s.lock:
            self._s.dirty.update(k for k in self._s.flushed if k in self._s.buckets)

    def _forget_idle(self, before: float) -> None:
        """Drop minutes last touched before ``before`` (monotonic seconds) and, past
        ``_MAX_BUCKETS``, the least recently touched; never one awaiting its write.
        Their checkpoint records get tombstones (caller holds the lock)."""
        s = self._s
        idle = [k for k, b in s.buckets.items() if b.touched < before and k not in s.dirty]
        excess = len(s.buckets) - len(idle) - _MAX_BUCKETS
        if excess > 0:
            keep = sorted(
                (b.touched, k)
                for k, b in s.buckets.items()
                if b.touched >= before and k not in s.dirty
            )
            idle += [k for _, k in keep[:excess]]
        for key in idle:
            bucket = s.buckets.pop(key)
            s.unscored.discard(key)
            for stream in bucket.saved:
                s.tombstones.setdefault((stream, key[0]), set()).add((key[1], key[2]))
        s.forgotten.update(idle)
        if len(s.forgotten) > 4 * _MAX_BUCKETS:  # only a diagnostic: keep it bounded
            s.forgotten.clear()


def _minute_name(district: str, minute: int) -> str:
    return f"{MINUTE_RECORD}:{district}:{minute}"


def _pack(body: dict[str, Any]) -> bytes:
    return bytes(msgpack.packb(body, use_bin_type=True))


def _time_ns(keys: Sequence[Bucket]) -> np.ndarray:
    return np.array([k[2] * 60_000_000_000 for k in keys], dtype=np.int64)


def _write(out: Output, keys: list[Bucket], rows: Sequence[tuple[float, ...]]) -> None:
    cols = np.array(rows, dtype=np.float64).T
    aqi_max, aqi_mean, stations, online, alerts, heat = cols
    has_aqi = np.isfinite(aqi_max)
    time_ns = _time_ns(keys)
    for mask in (has_aqi, ~has_aqi):  # aqi_max is an integer field: absent, never NaN
        if not mask.any():
            continue
        picked = [k for k, m in zip(keys, mask, strict=True) if m]
        fields: dict[str, np.ndarray] = {
            "aqi_mean": aqi_mean[mask],
            "stations_reporting": stations[mask].astype(np.int64),
            "devices_online": online[mask].astype(np.int64),
            "alerts": alerts[mask].astype(np.int64),
            "heat_index_max": heat[mask],
        }
        if mask is has_aqi:
            fields["aqi_max"] = np.round(aqi_max[mask]).astype(np.int64)
        out.write(
            out.dbs.public,
            "district",
            time_ns[mask],
            {"district": [k[1] for k in picked], "partition": [str(k[0]) for k in picked]},
            fields,
        )


def _write_counts(
    out: Output,
    readings: list[tuple[Bucket, str, str, int]],
    types: Counter[tuple[Bucket, str]],
) -> None:
    """``district_stream`` and ``district_alert`` rows: whole-minute totals (upserts)."""
    if readings:
        out.write(
            out.dbs.public,
            "district_stream",
            _time_ns([r[0] for r in readings]),
            {
                "district": [r[0][1] for r in readings],
                "partition": [str(r[0][0]) for r in readings],
                "stream": [r[1] for r in readings],
                "channel": [r[2] for r in readings],
            },
            {"readings": np.array([r[3] for r in readings], dtype=np.int64)},
        )
    if types:
        items = list(types.items())
        out.write(
            out.dbs.public,
            "district_alert",
            _time_ns([b for (b, _), _ in items]),
            {
                "district": [b[1] for (b, _), _ in items],
                "partition": [str(b[0]) for (b, _), _ in items],
                "type": [t for (_, t), _ in items],
                "scope": [_SCOPE[TYPES[t]] for (_, t), _ in items],
            },
            {"alerts": np.array([n for _, n in items], dtype=np.int64)},
        )
