"""Detection events for the ``{topic_prefix}alerts`` topic (JSON) and their InfluxDB mirror.

docs/ALERTS.md documents every type, its severity and the shape of its evidence. Alerts
are rare, so building one is plain Python; the decisions that raise them are vectorised
in the processors.

The ``id`` is a hash of ``type``, ``subject`` and ``start`` (the sensor time at which the
condition began): a replayed batch or a re-run timer that raises the same alert again
produces the same id, so consumers can recognise duplicates, and the worker's
transactional checkpoint protocol (docs/STREAMS.md) keeps it from publishing one twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Severity = Literal["info", "warning", "critical"]
SubjectKind = Literal["device", "station", "district"]

#: Alert type -> database class of its InfluxDB mirror (docs/DATA_MODEL.md, ``alert``).
TYPES: dict[str, Literal["sensitive", "public"]] = {
    "fall": "sensitive",
    "anomaly": "sensitive",
    "news2": "sensitive",
    "inactivity": "sensitive",
    "device_offline": "sensitive",
    "panic": "sensitive",
    # clinical limit rules of the vitals processor (streams.limits.RULES)
    "tachycardia": "sensitive",
    "bradycardia": "sensitive",
    "desaturation": "sensitive",
    "fever": "sensitive",
    "hypothermia": "sensitive",
    "tachypnoea": "sensitive",
    "bradypnoea": "sensitive",
    "aqi_category": "public",
    "heat_episode": "public",
    "station_offline": "public",
    "air_anomaly": "public",  # a pollutant series of a station (streams.processors.airq)
}


def alert_id(type_: str, subject: str, start: float) -> str:
    """Deterministic id: the first 24 hex digits of SHA-256 over type, subject, start."""
    text = f"{type_}|{subject}|{start!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _clean(value: Any) -> Any:
    """JSON-safe evidence: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Alert:
    """One detection event (see docs/ALERTS.md for the JSON shape)."""

    type: str
    severity: Severity
    subject: str
    subject_kind: SubjectKind
    district: str
    start: float
    sensor_ts: float
    message: str
    value: float = math.nan
    end: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    emitted_ts: float = 0.0

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown alert type {self.type!r}")
        self.start = float(self.start)
        self.sensor_ts = float(self.sensor_ts)

    @property
    def id(self) -> str:
        return alert_id(self.type, self.subject, self.start)

    @property
    def minute(self) -> int:
        """Sensor minute of the triggering sample (district alert counts)."""
        return int(self.sensor_ts // 60)

    def to_dict(self) -> dict[str, Any]:
        return _clean(
            {
                "id": self.id,
                "type": self.type,
                "severity": self.severity,
                "subject": self.subject,
                "subject_kind": self.subject_kind,
                "district": self.district,
                "start": self.start,
                "end": self.end,
                "sensor_ts": self.sensor_ts,
                "emitted_ts": self.emitted_ts,
                "message": self.message,
                "value": self.value,
                "evidence": self.evidence,
            }
        )

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()


def mirror_columns(alerts: Sequence[Alert]) -> dict[str, Any]:
    """Columns of the ``alert`` measurement for ``alerts`` (all of one database class)."""
    return {
        "time_ns": np.round(np.array([a.sensor_ts for a in alerts]) * 1e9).astype(np.int64),
        "tags": {
            "type": [a.type for a in alerts],
            "severity": [a.severity for a in alerts],
            "district": [a.district for a in alerts],
            "device": [a.subject if a.subject_kind == "device" else None for a in alerts],
            "station": [a.subject if a.subject_kind == "station" else None for a in alerts],
        },
        "fields": {
            "message": np.array([a.message for a in alerts], dtype=object),
            "value": np.array([a.value for a in alerts], dtype=np.float64),
            "latency_s": np.array([a.emitted_ts - a.sensor_ts for a in alerts]),
        },
    }
