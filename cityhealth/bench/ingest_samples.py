"""Deterministic device messages for the ingest benchmark and the bridge tests.

A fixed mix of every stream (wearable vitals as native JSON and as SenML, accelerometer
windows, elder-care home sensors, air-quality stations), each reading at a distinct time per
device, so a consumer can check "every (device, ts) arrived" exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ingest.contract import to_senml_json
from ingest.contract.models import Vitals


@dataclass
class SampleSet:
    """Messages to publish and what they must become."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    #: Readings expected per stream.
    by_stream: dict[str, int] = field(default_factory=dict)
    #: ``(family, raw device id, ts)`` of every reading.
    keys: set[tuple[str, str, float]] = field(default_factory=set)
    #: Raw ids of personal (pseudonymised) devices.
    personal_ids: set[str] = field(default_factory=set)
    #: Raw ids of air-quality stations (kept in clear).
    station_ids: set[str] = field(default_factory=set)

    def add(self, topic: str, payload: object, stream: str, family: str, device: str, ts: float):
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.messages.append((topic, raw))
        self.by_stream[stream] = self.by_stream.get(stream, 0) + 1
        self.keys.add((family, device, ts))
        (self.station_ids if family == "airq" else self.personal_ids).add(device)


def sample_messages(
    n: int, *, now: float, prefix: str = "", devices: int = 40, district: str = "north"
) -> SampleSet:
    """``n`` valid messages cycling through every stream, timestamps in ``[now - n/100, now)``.

    Device ids look like ``W0007`` / ``E0003`` / ``AQ0001`` so tests can search the Kafka
    bytes for them.
    """
    out = SampleSet()
    root = f"{prefix}city/{district}"
    t0 = now - n / 100.0 - 1.0
    for i in range(n):
        ts = round(t0 + i / 100.0, 3)
        d = i % devices
        kind = i % 10
        if kind <= 3:
            dev = f"W{d:04d}"
            topic = f"{root}/wearable/{dev}/vitals"
            if kind == 3:
                payload: object = to_senml_json(
                    Vitals(ts=ts, heart_rate=60.0 + d % 40, spo2=97.0), base_name=f"{dev}:"
                )
            else:
                payload = {"ts": ts, "heart_rate": 60.0 + d % 40, "spo2": 97.0}
            out.add(topic, payload, "vitals", "wearable", dev, ts)
        elif kind == 4:
            dev = f"W{d:04d}"
            samples = 25
            axis = [0.1 * (k % 5) for k in range(samples)]
            payload = {"t0": ts, "rate_hz": 50.0, "x": axis, "y": axis, "z": [9.81] * samples}
            out.add(f"{root}/wearable/{dev}/accel", payload, "motion", "wearable", dev, ts)
        elif kind in (5, 6):
            dev = f"E{d:04d}"
            payload = {"ts": ts, "room": "kitchen", "motion": bool(i % 2)}
            out.add(f"{root}/eldercare/{dev}/motion", payload, "home", "eldercare", dev, ts)
        elif kind == 7:
            dev = f"E{d:04d}"
            payload = {"ts": ts, "door": "front", "open": bool(i % 3)}
            out.add(f"{root}/eldercare/{dev}/door", payload, "home", "eldercare", dev, ts)
        else:
            dev = f"AQ{d % 8:04d}"
            payload = {"ts": ts, "lat": 52.5, "lon": 13.4, "pm25": 8.0 + d % 7, "no2": 20.0}
            out.add(f"{root}/airq/{dev}/air", payload, "airq", "airq", dev, ts)
    return out


def malformed_messages(prefix: str = "", district: str = "north") -> list[tuple[str, bytes, str]]:
    """``(topic, payload, expected first rule)`` for payloads that break the contract."""
    root = f"{prefix}city/{district}"
    return [
        (f"{root}/wearable/W9001/vitals", b"not json at all", "payload_shape"),
        (f"{root}/wearable/W9002/vitals", b'{"ts": 1, "heart_rate": 70', "json"),
        (f"{root}/wearable/W9003/vitals", b"\xff\xfe{binary", "encoding"),
        (f"{root}/wearable/W9004/teleport", b'{"ts": 1}', "channel"),
        (f"{root}/wearable/W9005/vitals", b"", "empty"),
    ]
