"""Per-district, per-minute aggregates (AQI, devices online, readings, alerts) and AQI alerts.

Districts cut across Kafka partitions and streams (a district's wearables, homes and
stations hash to different partitions), so the board is shared by every processor of a
worker process: processors report what they saw per unique device/station and minute,
and the worker's timer flushes the minutes touched since the last flush as upserts of
the public ``district``, ``district_stream`` (readings per stream channel) and
``district_alert`` (alerts per type) measurements (docs/DATA_MODEL.md). These carry
counts per district only — no device, station, room or subject — so general operations
dashboards read person streams without the sensitive database. Known limit: with several worker
processes each one writes the district rows of what *it* saw; see docs/STREAMS.md.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

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


class DistrictBoard:
    """Thread-safe minute buckets per district (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, int], set[str]] = defaultdict(set)
        self._stations: dict[tuple[str, int], dict[str, tuple[float, float]]] = defaultdict(dict)
        self._alerts: dict[tuple[str, int], int] = defaultdict(int)
        self._readings: dict[tuple[str, int], Counter[tuple[str, str]]] = defaultdict(Counter)
        self._alert_types: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
        self._dirty: set[tuple[str, int]] = set()
        self._touched: dict[tuple[str, int], float] = {}  # bucket -> last touch (monotonic)
        #: Minutes touched again after being forgotten (their rows were rewritten partial).
        self.late_rewrites = 0
        self._forgotten: set[tuple[str, int]] = set()
        self._category: dict[str, int] = {}

    def devices_seen(self, index: DeviceIndex, dev: np.ndarray, minute: np.ndarray) -> None:
        """Count devices online per district minute (per unique pair, not per reading)."""
        key = np.unique(dev.astype(np.int64) << 32 | minute)
        now = time.monotonic()
        with self._lock:
            for k in key.tolist():
                d, minute = k >> 32, k & 0xFFFFFFFF
                bucket = (index.districts[int(index.district_code[d])], int(minute))
                self._devices[bucket].add(index.ids[d])
                self._touch(bucket, now)

    def station_seen(
        self, district: str, minute: int, station: str, aqi: float, heat_index: float
    ) -> None:
        """Latest NowCast overall AQI and heat index of a station in a minute (NaN: none)."""
        with self._lock:
            bucket = (district, minute)
            old = self._stations[bucket].get(station, (np.nan, np.nan))
            self._stations[bucket][station] = (
                aqi if np.isfinite(aqi) else old[0],
                heat_index if np.isfinite(heat_index) else old[1],
            )
            self._touch(bucket, time.monotonic())

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
        with self._lock:
            for k, n in zip(uniq.tolist(), counts.tolist(), strict=True):
                bucket = (districts[k >> 32], k & 0xFFFFFFFF)
                self._readings[bucket][(stream, channel)] += n
                self._touch(bucket, now)

    def alert_raised(self, alert: Alert) -> None:
        with self._lock:
            bucket = (alert.district, alert.minute)
            self._alerts[bucket] += 1
            self._alert_types[bucket][alert.type] += 1
            self._touch(bucket, time.monotonic())

    def _touch(self, bucket: tuple[str, int], now: float) -> None:
        """Mark ``bucket`` for the next flush (caller holds the lock)."""
        if bucket not in self._touched and bucket in self._forgotten:
            self._forgotten.discard(bucket)
            self.late_rewrites += 1
        self._dirty.add(bucket)
        self._touched[bucket] = now

    def flush(self, out: Output) -> int:
        """Write the touched minutes; raise AQI-category changes; returns rows written."""
        with self._lock:
            buckets = sorted(self._dirty, key=lambda b: (b[1], b[0]))
            self._dirty.clear()
            rows: list[tuple[float, ...]] = [self._row(b) for b in buckets]
            changes = self._category_changes(buckets)
            readings = [(b, *k, n) for b in buckets for k, n in self._readings[b].items()]
        for alert in changes:
            out.alert(alert)
            self.alert_raised(alert)  # its minute is rewritten at the next flush too
        with self._lock:  # after the category alerts: they count in this flush already
            types = [(b, t, n) for b in buckets for t, n in self._alert_types[b].items()]
            self._forget_idle(time.monotonic() - _KEEP_IDLE_S)
        if rows:
            self._write(out, buckets, rows)
        self._write_counts(out, readings, types)
        return len(rows)

    def _forget_idle(self, before: float) -> None:
        """Drop minutes last touched before ``before`` (monotonic seconds) and, past
        ``_MAX_BUCKETS``, the least recently touched; never one awaiting its write
        (caller holds the lock)."""
        idle = [b for b, t in self._touched.items() if t < before and b not in self._dirty]
        excess = len(self._touched) - len(idle) - _MAX_BUCKETS
        if excess > 0:
            keep = sorted(
                (t, b) for b, t in self._touched.items() if t >= before and b not in self._dirty
            )
            idle += [b for _, b in keep[:excess]]
        if not idle:
            return
        tables = (self._devices, self._stations, self._alerts, self._readings, self._alert_types)
        for b in idle:
            del self._touched[b]
            for table in tables:
                table.pop(b, None)
        self._forgotten.update(idle)
        if len(self._forgotten) > 4 * _MAX_BUCKETS:  # only a diagnostic: keep it bounded
            self._forgotten.clear()

    def _row(self, bucket: tuple[str, int]) -> tuple[float, float, int, int, int, float]:
        stations = self._stations.get(bucket, {})
        aqi = np.array([v[0] for v in stations.values()] or [np.nan])
        heat = np.array([v[1] for v in stations.values()] or [np.nan])
        ok = np.isfinite(aqi)
        return (
            float(aqi[ok].max()) if ok.any() else np.nan,
            float(aqi[ok].mean()) if ok.any() else np.nan,
            len(stations),
            len(self._devices.get(bucket, ())),
            self._alerts.get(bucket, 0),
            float(np.nanmax(heat)) if np.isfinite(heat).any() else np.nan,
        )

    def _category_changes(self, buckets: list[tuple[str, int]]) -> list[Alert]:
        """One alert when a district's worst-station NowCast AQI changes category.

        A district's first category after start only alerts from "Unhealthy for
        Sensitive Groups" up (no alert storm of "Good" at start-up).
        """
        alerts = []
        for district, minute in buckets:
            stations = self._stations.get((district, minute), {})
            values = [v[0] for v in stations.values() if np.isfinite(v[0])]
            if not values:
                continue
            worst = max(values)
            cat = int(aqi_category(worst).index)
            prev = self._category.get(district)
            self._category[district] = cat
            if cat == prev or (prev is None and cat < 2):
                continue
            alerts.append(
                Alert(
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
                        "stations": sorted(stations),
                    },
                )
            )
        return alerts

    def _write(
        self, out: Output, buckets: list[tuple[str, int]], rows: list[tuple[float, ...]]
    ) -> None:
        cols = np.array(rows, dtype=np.float64).T
        aqi_max, aqi_mean, stations, online, alerts, heat = cols
        has_aqi = np.isfinite(aqi_max)
        time_ns = np.array([m * 60_000_000_000 for _, m in buckets], dtype=np.int64)
        districts = [d for d, _ in buckets]
        for mask in (has_aqi, ~has_aqi):  # aqi_max is an integer field: absent, never NaN
            if not mask.any():
                continue
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
                {"district": [d for d, k in zip(districts, mask, strict=True) if k]},
                fields,
            )

    def _write_counts(
        self,
        out: Output,
        readings: list[tuple[tuple[str, int], str, str, int]],
        types: list[tuple[tuple[str, int], str, int]],
    ) -> None:
        """``district_stream`` and ``district_alert`` rows: whole-minute totals (upserts)."""
        if readings:
            out.write(
                out.dbs.public,
                "district_stream",
                np.array([b[1] * 60_000_000_000 for b, *_ in readings], dtype=np.int64),
                {
                    "district": [b[0] for b, *_ in readings],
                    "stream": [r[1] for r in readings],
                    "channel": [r[2] for r in readings],
                },
                {"readings": np.array([r[3] for r in readings], dtype=np.int64)},
            )
        if types:
            out.write(
                out.dbs.public,
                "district_alert",
                np.array([b[1] * 60_000_000_000 for b, _, _ in types], dtype=np.int64),
                {
                    "district": [b[0] for b, _, _ in types],
                    "type": [t for _, t, _ in types],
                    "scope": [_SCOPE[TYPES[t]] for _, t, _ in types],
                },
                {"alerts": np.array([n for _, _, n in types], dtype=np.int64)},
            )
