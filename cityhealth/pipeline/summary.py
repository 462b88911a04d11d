"""The ``cityhealth up`` summary: pure functions from what a run observed to its JSON.

Shape (docs/RUNNING.md lists every field)::

    {"published": int, "ingested": int, "dead_lettered": int,
     "published_by_channel": {"family/channel": int},
     "stored": {"<database>/<measurement>": int},
     "raw_channels": {"family/channel": "<database>/<measurement>"},
     "alerts": {"total": int, "by_type": {type: int}, ...},
     "truth": {"events": int, "alerted": int, "by_type": {type: {"events", "alerted"}}, ...},
     "alert_latency_s": {"p50": float, "p99": float, ..., "by_type": {type: {"p50", ...}}},
     "influx": {"url": str, "api": "v1" | "v2"}, ...}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from cityhealth.pipeline.truth import Tolerance, match_truth

REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "published": int,
    "ingested": int,
    "dead_lettered": int,
    "published_by_channel": dict,
    "stored": dict,
    "raw_channels": dict,
    "alerts": dict,
    "truth": dict,
    "alert_latency_s": dict,
    "influx": dict,
}


def percentiles(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """p50/p99 (linear interpolation between order statistics, NumPy's default) and count.

    Empty input gives ``None`` percentiles: a latency that was never observed is unknown,
    not zero.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    p50, p99 = np.percentile(arr, [50.0, 99.0])
    return {
        "p50": round(float(p50), 6),
        "p99": round(float(p99), 6),
        "max": round(float(arr.max()), 6),
        "count": int(arr.size),
    }


def alert_key(alert: Mapping[str, Any]) -> str:
    """The alert's deterministic id, or (type, subject, sensor time) if it has none."""
    if alert.get("id") is not None:
        return str(alert["id"])
    return f"{alert.get('type')}|{alert.get('subject')}|{alert.get('sensor_ts')}"


def unique_alerts(
    alerts: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], int, int]:
    """First record of each alert id, plus counts of the other records of a known id.

    An id is a hash of (type, subject, start of the condition), so a later record with the
    same id is either an **update** of an ongoing episode (new sensor time or severity) or
    a **duplicate**: the same (id, sensor time, severity) published again, which is what a
    replay after a crash would produce.

    Returns
    -------
    (first records, updates, duplicates)
    """
    first, updates, repeated = split_alerts(alerts)
    return first, updates, len(repeated)


def split_alerts(
    alerts: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], int, list[Mapping[str, Any]]]:
    """:func:`unique_alerts` with the duplicate records themselves."""
    seen: set[str] = set()
    exact: set[tuple[str, object, object]] = set()
    out = []
    repeated: list[Mapping[str, Any]] = []
    updates = 0
    for alert in alerts:
        key = alert_key(alert)
        content = (key, alert.get("sensor_ts"), alert.get("severity"))
        if content in exact:
            repeated.append(alert)
        elif key in seen:
            updates += 1
        else:
            seen.add(key)
            out.append(alert)
        exact.add(content)
    return out, updates, repeated


#: Alerts about an absence (docs/ALERTS.md): no sample triggers them. Their ``sensor_ts``
#: is the *last* sample, ``offline_after_s`` (300 s) or ``inactivity_after_s`` before the
#: condition holds; their latency runs from ``start``, the moment the silence reached
#: its threshold.
ABSENCE_TYPES = frozenset({"device_offline", "station_offline", "inactivity"})


def alert_latencies(alerts: Iterable[Mapping[str, Any]]) -> list[float]:
    """Kafka record time of each alert minus the sensor time of its triggering sample
    (for :data:`ABSENCE_TYPES`: minus ``start``).

    Each alert dict carries ``kafka_ts`` (the record timestamp, seconds) added by the
    consumer; alerts without a numeric origin are skipped.
    """
    out = []
    for alert in alerts:
        origin = alert.get("start" if alert.get("type") in ABSENCE_TYPES else "sensor_ts")
        emitted = alert.get("kafka_ts")
        if isinstance(origin, int | float) and isinstance(emitted, int | float):
            out.append(float(emitted) - float(origin))
    return out


def latency_by_type(alerts: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`percentiles` of :func:`alert_latencies` per alert type (falls wait for their
    decision window and the device's accelerometer window, so their tail differs)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for alert in alerts:
        groups.setdefault(str(alert.get("type")), []).append(alert)
    return {t: percentiles(alert_latencies(groups[t])) for t in sorted(groups)}


def alerts_section(alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"total", "by_type", "by_severity", "records", "updates", "duplicates"}``; totals
    count unique ids (see :func:`unique_alerts`)."""
    unique, updates, repeated = split_alerts(alerts)
    return {
        "total": len(unique),
        "by_type": dict(sorted(Counter(str(a.get("type")) for a in unique).items())),
        "by_severity": dict(sorted(Counter(str(a.get("severity")) for a in unique).items())),
        "records": len(alerts),
        "updates": updates,
        "duplicates": len(repeated),
        "duplicate_examples": [
            {k: a.get(k) for k in ("id", "type", "subject", "sensor_ts", "severity", "kafka_ts")}
            for a in repeated[:10]
        ],
    }


def build_summary(
    *,
    simulator: Mapping[str, Any],
    ingested: int,
    dead_lettered: int,
    dead_letter_reasons: Mapping[str, int],
    dead_letter_distinct: int | None = None,
    stored: Mapping[str, int],
    raw_channels: Mapping[str, str],
    alerts: Sequence[Mapping[str, Any]],
    truth_events: Sequence[Mapping[str, Any]],
    pseudonym: Callable[[str, str], str],
    influx_url: str,
    influx_api: str,
    tolerance: Tolerance | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the summary (see the module docstring).

    Parameters
    ----------
    simulator
        The simulator's own ``--summary-json`` (``published``,
        ``published_by_family_channel``, ``malformed``, ...).
    ingested
        Valid messages the bridges accepted (summed over bridge restarts).
    dead_lettered, dead_letter_reasons, dead_letter_distinct
        Records consumed from the dead-letter topic during the run, per broken rule, and
        how many distinct (MQTT topic, payload) they hold: QoS 1 re-delivers a message
        whose PUBACK a crashed bridge never sent, so dead letters are at-least-once too.
    stored, raw_channels
        Point counts queried from InfluxDB after the drain, and which measurement holds
        each channel's readings.
    alerts
        Every record consumed from the alerts topic during the run (decoded JSON plus
        ``kafka_ts``), duplicates included.
    truth_events, pseudonym, tolerance
        Ground truth with raw ids, the keyed pseudonymiser, and the matching slack.
    """
    by_channel = {k: int(v) for k, v in sorted(simulator["published_by_family_channel"].items())}
    unique, _, _ = unique_alerts(alerts)
    tolerance = tolerance or Tolerance()
    end = simulator.get("end")
    truth = match_truth(
        truth_events, alerts, pseudonym, tolerance, None if end is None else float(end)
    )
    truth["tolerance_s"] = {
        "before": tolerance.before_s,
        "after": tolerance.after_s,
        "settle": tolerance.settle_s,
    }
    lost = {
        c: n - int(stored.get(raw_channels[c], 0))
        for c, n in by_channel.items()
        if c in raw_channels
    }
    summary: dict[str, Any] = {
        "published": int(simulator["published"]),
        "ingested": int(ingested),
        "dead_lettered": int(dead_lettered),
        "dead_letter_distinct": int(
            dead_lettered if dead_letter_distinct is None else dead_letter_distinct
        ),
        "malformed_published": int(simulator.get("malformed", 0)),
        "dead_letter_reasons": dict(sorted(dead_letter_reasons.items())),
        "published_by_channel": by_channel,
        "stored": dict(sorted((k, int(v)) for k, v in stored.items())),
        "raw_channels": dict(raw_channels),
        "missing_by_channel": {c: n for c, n in lost.items() if n},
        "alerts": alerts_section(alerts),
        "truth": truth,
        "alert_latency_s": {
            **percentiles(alert_latencies(unique)),
            "by_type": latency_by_type(unique),
        },
        "influx": {"url": influx_url, "api": influx_api},
    }
    if extra:
        summary.update(extra)
    return summary


def check_shape(summary: Mapping[str, Any]) -> list[str]:
    """Problems with the contract fields of ``summary`` (empty when it conforms)."""
    problems = []
    for key, kind in REQUIRED_KEYS.items():
        if key not in summary:
            problems.append(f"missing {key}")
        elif not isinstance(summary[key], kind) or isinstance(summary[key], bool):
            problems.append(f"{key} is {type(summary[key]).__name__}")
    if problems:
        return problems
    for key in ("total", "by_type"):
        if key not in summary["alerts"]:
            problems.append(f"missing alerts.{key}")
    for key in ("events", "alerted", "by_type"):
        if key not in summary["truth"]:
            problems.append(f"missing truth.{key}")
    for key in ("p50", "p99"):
        value = summary["alert_latency_s"].get(key, "missing")
        if value is not None and not isinstance(value, float):
            problems.append(f"alert_latency_s.{key} is {value!r}")
    if summary["influx"].get("api") not in ("v1", "v2") or not summary["influx"].get("url"):
        problems.append("influx needs url and api v1|v2")
    for channel, target in summary["raw_channels"].items():
        if target.count("/") != 1:
            problems.append(f"raw_channels[{channel}] is not <database>/<measurement>")
    return problems
