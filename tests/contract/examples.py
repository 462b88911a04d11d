"""Valid native example payloads for every channel, relative to a reference time ``now``."""

from __future__ import annotations

import math
from typing import Any

NOW = 1_763_700_000.0  # 2025-11-21T04:40:00Z: a fixed clock keeps tests deterministic


def _window(t0: float, n: int, rate: float) -> dict[str, list[float]]:
    """A gentle walking-like signal with gravity on z."""
    return {
        "x": [round(0.8 * math.sin(2 * math.pi * 2.0 * i / rate), 4) for i in range(n)],
        "y": [round(0.3 * math.cos(2 * math.pi * 2.0 * i / rate), 4) for i in range(n)],
        "z": [round(9.81 + 1.5 * math.sin(2 * math.pi * 4.0 * i / rate), 4) for i in range(n)],
    }


def examples(now: float = NOW) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``(family, channel)`` -> valid native payloads (every form the channel accepts)."""
    ts = now - 1.5
    win_rate = {"t0": ts, "rate_hz": 50.0, **_window(ts, 50, 50.0)}
    win_t = {"t": [ts + i * 0.04 for i in range(25)], **_window(ts, 25, 25.0)}
    status = {"ts": ts, "battery": 87.5}
    return {
        ("wearable", "vitals"): [
            {
                "ts": ts,
                "heart_rate": 72.0,
                "spo2": 97.5,
                "body_temp": 36.8,
                "respiration_rate": 14.0,
                "steps": 5012,
            },
            {"ts": ts, "heart_rate": 64},
            {"ts": ts, "spo2": 95.0, "heart_rate": None},
            {
                "ts": [ts - 2.0, ts - 1.0, ts],
                "heart_rate": [70.0, 71.5, None],
                "spo2": [98.0, None, 97.0],
            },
        ],
        ("wearable", "accel"): [win_rate, win_t],
        ("wearable", "status"): [status],
        ("airq", "air"): [
            {
                "ts": ts,
                "lat": 52.3702,
                "lon": 4.8952,
                "pm25": 12.4,
                "pm10": 20.1,
                "o3": 31.0,
                "no2": 18.5,
                "so2": 2.1,
                "co": 0.4,
                "temperature": 14.2,
                "humidity": 71.0,
            },
            {"ts": ts, "lat": -33.8688, "lon": 151.2093, "pm25": 0.0},
        ],
        ("eldercare", "pendant"): [win_rate, win_t],
        ("eldercare", "motion"): [{"ts": ts, "room": "kitchen", "motion": True}],
        ("eldercare", "door"): [{"ts": ts, "door": "front", "open": False}],
        ("eldercare", "bed"): [{"ts": ts, "occupied": True}],
        ("eldercare", "chair"): [{"ts": ts, "occupied": False}],
        ("eldercare", "panic"): [{"ts": ts, "pressed": True}],
        ("eldercare", "status"): [status],
    }


def topic(family: str, channel: str, device_id: str = "dev-0001") -> str:
    """A valid topic for a channel."""
    return f"city/centre/{family}/{device_id}/{channel}"
