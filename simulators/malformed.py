"""Deliberately invalid messages for dead-letter tests (``--malformed-rate R``).

Each malformed message is derived from a valid message of the same tick (which is still
published unchanged) by one of :data:`KINDS`; the contract's ``decode`` rejects every one.
They are drawn from their own random stream, so the valid messages and the ground truth of a
seed do not depend on the rate. The number per tick is ``Binomial(n_valid, R / (1 - R))``, so
malformed messages make up a fraction ``R`` of everything published on average.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

KINDS = ("bad_json", "out_of_range", "wrong_type", "missing_field", "future_ts", "bad_topic")

#: channel -> (field, implausible value) for ``out_of_range``.
_OUT_OF_RANGE: dict[str, tuple[str, Any]] = {
    "vitals": ("heart_rate", 400),
    "accel": ("x", [500.0]),
    "pendant": ("x", [500.0]),
    "status": ("battery", 150.0),
    "air": ("pm25", -5.0),
    "motion": ("ts", -5.0),
    "door": ("ts", -5.0),
    "bed": ("ts", -5.0),
    "chair": ("ts", -5.0),
    "panic": ("ts", -5.0),
}
#: channel -> (field, value of the wrong JSON type) for ``wrong_type``.
_WRONG_TYPE: dict[str, tuple[str, Any]] = {
    "vitals": ("heart_rate", "72"),
    "accel": ("x", "fast"),
    "pendant": ("x", "fast"),
    "status": ("battery", "full"),
    "air": ("pm25", "12"),
    "motion": ("motion", "yes"),
    "door": ("open", 1),
    "bed": ("occupied", "true"),
    "chair": ("occupied", "true"),
    "panic": ("pressed", "true"),
}
#: channel -> fields removed for ``missing_field`` (what remains is invalid).
_MISSING: dict[str, tuple[str, ...]] = {
    "vitals": ("heart_rate", "spo2", "body_temp", "respiration_rate", "steps"),
    "accel": ("z",),
    "pendant": ("z",),
    "status": ("battery",),
    "air": ("lat",),
    "motion": ("room",),
    "door": ("open",),
    "bed": ("occupied",),
    "chair": ("occupied",),
    "panic": ("pressed",),
}
_BAD_TOPICS = (
    "city/Not_A_District/{family}/{device}/{channel}",
    "city/{district}/toaster/{device}/{channel}",
    "city/{district}/{family}/{device}/ecg",
    "city/{district}/{family}/{device}/{channel}/extra",
    "city/{district}/{family}/bad.device.id/{channel}",
    "city/{district}/{family}",
)


class Malformer:
    """Derives invalid messages from valid ones (see the module docstring)."""

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"--malformed-rate must be in [0, 1), got {rate}")
        self.p = rate / (1.0 - rate)
        self.rng = rng

    def draw(self, messages: list[tuple[str, bytes]]) -> list[tuple[str, bytes, str]]:
        """Malformed ``(topic, payload, kind)`` derived from this tick's ``messages``."""
        if self.p <= 0 or not messages:
            return []
        k = int(self.rng.binomial(len(messages), min(self.p, 1.0)))
        out = []
        for j in self.rng.integers(0, len(messages), k).tolist():
            topic, payload = messages[j]
            kind = KINDS[int(self.rng.integers(0, len(KINDS)))]
            out.append((*self._make(kind, topic, payload), kind))
        return out

    def _make(self, kind: str, topic: str, payload: bytes) -> tuple[str, bytes]:
        parts = topic.split("/")
        district, family, device, channel = parts[1], parts[2], parts[3], parts[4]
        if kind == "bad_topic":
            tpl = _BAD_TOPICS[int(self.rng.integers(0, len(_BAD_TOPICS)))]
            bad = tpl.format(district=district, family=family, device=device, channel=channel)
            return bad, payload
        if kind == "bad_json" or payload[:1] == b"[":
            # SenML packs are arrays: only truncation applies (then it is bad JSON)
            return topic, payload[: max(1, len(payload) // 2)]
        data: dict[str, Any] = orjson.loads(payload)
        if kind == "out_of_range":
            field, value = _OUT_OF_RANGE[channel]
            if isinstance(value, list):  # one sample of a window beyond 16 g
                data[field][0] = value[0]
            else:
                data[field] = value
        elif kind == "wrong_type":
            field, value = _WRONG_TYPE[channel]
            data[field] = value
        elif kind == "missing_field":
            for field in _MISSING[channel]:
                data.pop(field, None)
        elif kind == "future_ts":
            key = "t0" if "t0" in data else "ts"
            data[key] = data[key] + 3600.0
        return topic, orjson.dumps(data)
