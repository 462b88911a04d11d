"""Where a ``bench pipeline`` run's sensor-to-alert latency goes, stage by stage.

For every alert with a ``sensor_ts`` (docs/ALERTS.md), the first Kafka stream record
holding its subject's sample at that time is found, which splits the latency into:

``to_bridge_batch``
    ``batch.created - sensor_ts``: the device's own window wait (accelerometer windows),
    the simulator's lateness, MQTT, the bridge's decoding and batching (up to its
    batch-age bound) -- and any queue in front of the bridge;
``bridge_to_kafka``
    record timestamp - ``batch.created``: the bridge's produce request;
``kafka_to_step``
    ``emitted_ts`` - record timestamp: the worker's fetch, processing and commit step;
``step_to_alert``
    alert record timestamp - ``emitted_ts``: the step's alert producer and transaction.

The four add up to the latency ``cityhealth up`` reports (alert record time minus sensor
time). Alerts whose sample is not found (e.g. district alerts built from many devices)
count in ``unmatched``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ingest.batch.codec import ColumnarBatch

STAGES = ("to_bridge_batch", "bridge_to_kafka", "kafka_to_step", "step_to_alert")
#: Sensor times are written with millisecond precision (docs/GATEWAYS.md).
_MATCH_S = 2e-3


@dataclass(frozen=True)
class Sighting:
    """The first stream record that held a sample: its record time and seal time."""

    kafka_ts: float
    sealed: float


def sample_times(batch: ColumnarBatch, rows: np.ndarray) -> np.ndarray:
    """Times of the readings ``rows`` of ``batch``; for accelerometer windows, every
    sample's time (an alert's ``sensor_ts`` is a sample, not the window start)."""
    if batch.ragged is None:
        return np.asarray(batch["ts"][rows], dtype=np.float64)
    offsets, t = batch.ragged.offsets, batch.ragged["t"]
    parts = [t[offsets[i] : offsets[i + 1]] for i in rows.tolist()]
    return np.concatenate(parts) if parts else np.empty(0)


def first_sightings(
    records: Iterable[tuple[float, ColumnarBatch]], wanted: Mapping[str, Sequence[float]]
) -> dict[tuple[str, float], Sighting]:
    """For each ``(device, sensor_ts)`` of ``wanted``, the earliest record holding it."""
    found: dict[tuple[str, float], Sighting] = {}
    for kafka_ts, batch in records:
        devices = batch.strings["device"]
        for code, name in enumerate(devices.values):
            times = wanted.get(name)
            if not times:
                continue
            rows = np.flatnonzero(devices.codes == code)
            have = sample_times(batch, rows)
            if have.size == 0:
                continue
            for ts in times:
                if not np.any(np.abs(have - ts) < _MATCH_S):
                    continue
                old = found.get((name, ts))
                if old is None or kafka_ts < old.kafka_ts:
                    found[(name, ts)] = Sighting(kafka_ts, batch.created)
    return found


def stage_split(
    alerts: Sequence[Mapping[str, Any]], sightings: Mapping[tuple[str, float], Sighting]
) -> dict[str, Any]:
    """Per-stage percentiles over the alerts (``kafka_ts`` = alert record time), the
    slowest alerts with their split, and how many alerts had no sighting."""
    from cityhealth.pipeline.summary import percentiles

    rows: list[tuple[str, float, float, float, float, float]] = []
    unmatched = 0
    for alert in alerts:
        ts, emitted, done = alert.get("sensor_ts"), alert.get("emitted_ts"), alert["kafka_ts"]
        if not isinstance(ts, int | float) or not isinstance(emitted, int | float):
            unmatched += 1
            continue
        seen = sightings.get((str(alert.get("subject")), ts))
        if seen is None:
            unmatched += 1
            continue
        rows.append(
            (
                str(alert.get("type")),
                done - ts,
                seen.sealed - ts,
                seen.kafka_ts - seen.sealed,
                emitted - seen.kafka_ts,
                done - emitted,
            )
        )
    out: dict[str, Any] = {
        name: percentiles([float(r[2 + i]) for r in rows]) for i, name in enumerate(STAGES)
    }
    out["unmatched"] = unmatched
    out["slowest"] = [
        {"type": r[0], "total_s": round(r[1], 3)}
        | {name: round(float(r[2 + i]), 3) for i, name in enumerate(STAGES)}
        for r in sorted(rows, key=lambda r: -r[1])[:10]
    ]
    return out


async def _chunks(
    kafka: Mapping[str, Any], topic: str, committed: bool
) -> AsyncIterator[list[Any]]:
    """Every record now in ``topic``, partition by partition, one fetch at a time (a full
    ``district`` run's streams hold gigabytes: they are never all in memory)."""
    from aiokafka import TopicPartition

    from streams.checkpoint import committed_reader

    consumer = committed_reader(kafka, "read_committed" if committed else "read_uncommitted")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            while await consumer.position(tp) < end[tp]:
                batch = (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
                yield [r for r in batch if r.offset < end[tp]]
    finally:
        await consumer.stop()


async def _measure(kafka: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    import json

    from cityhealth.pipeline.summary import unique_alerts
    from ingest.batch.codec import decode

    records = []
    async for chunk in _chunks(kafka, prefix + "alerts", committed=True):
        for rec in chunk:
            alert = json.loads(rec.value)
            alert["kafka_ts"] = rec.timestamp / 1000.0
            records.append(alert)
    alerts, _, _ = unique_alerts(records)  # the first record of each alert, as `up` counts
    wanted: dict[str, list[float]] = {}
    for a in alerts:
        if isinstance(a.get("sensor_ts"), int | float):
            wanted.setdefault(str(a.get("subject")), []).append(float(a["sensor_ts"]))
    sightings: dict[tuple[str, float], Sighting] = {}
    for stream in ("vitals", "motion", "home"):
        if not wanted:
            break
        async for chunk in _chunks(kafka, prefix + stream, committed=False):
            decoded = ((r.timestamp / 1000.0, decode(r.value)) for r in chunk)
            for key, seen in first_sightings(decoded, wanted).items():
                if key not in sightings or seen.kafka_ts < sightings[key].kafka_ts:
                    sightings[key] = seen
    return stage_split(alerts, sightings)


def latency_stages(kafka: Mapping[str, Any], topic_prefix: str) -> dict[str, Any]:
    """:func:`stage_split` of the alerts under ``topic_prefix`` (module docstring)."""
    return asyncio.run(_measure(kafka, topic_prefix))
