"""Injected events and their ground truth.

Every event a simulator injects is written as one JSON Lines record
``{"type", "device_id", "family", "district", "start", "end", ...}`` (start/end in simulated
epoch seconds, extra keys per type). Event starts are a Poisson process per device (or per
district for city-wide episodes): in a step of ``dt`` seconds over ``n`` eligible devices the
number of new events is ``Poisson(rate_per_hour / 3600 * n * dt)`` and the devices are drawn
uniformly without replacement, which keeps the cost per step independent of ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EventRate:
    """How often an event starts (per device or per district and hour) and how long it lasts."""

    rate_per_hour: float
    duration_s: tuple[float, float]


@dataclass(frozen=True)
class EventType:
    """A catalogue entry: which families it applies to, its scope and default rate."""

    families: tuple[str, ...]
    scope: str  # "device" or "district"
    rate_per_hour: float
    duration_s: tuple[float, float]
    description: str


_W, _E, _A = "wearable", "eldercare", "airq"

#: Every event type the built-in simulators inject (defaults: realistic, i.e. rare).
EVENT_TYPES: dict[str, EventType] = {
    "tachycardia": EventType((_W,), "device", 0.01, (120, 900), "heart rate 120-170 at rest"),
    "bradycardia": EventType((_W,), "device", 0.01, (120, 900), "heart rate 32-45"),
    "desaturation": EventType((_W,), "device", 0.01, (60, 600), "SpO2 falls to 80-88 %"),
    "fever": EventType((_W,), "device", 0.002, (3600, 14400), "body temperature +1.5-3 C"),
    "fall": EventType((_W, _E), "device", 0.002, (60, 900), "fall, then lying still"),
    "fall_like": EventType(
        (_W, _E), "device", 0.02, (10, 10), "sitting down hard, jumping, lying down on a bed"
    ),
    "inactivity": EventType((_E,), "device", 0.005, (7200, 14400), "no motion at home by day"),
    "panic": EventType((_E,), "device", 0.001, (0, 0), "panic button pressed"),
    "pm25_episode": EventType((_A,), "district", 0.01, (1800, 7200), "PM2.5 +80-250 ug/m3"),
    "no2_episode": EventType((_A,), "district", 0.005, (1800, 7200), "NO2 +80-200 ppb"),
    "o3_episode": EventType((_A,), "district", 0.005, (1800, 7200), "O3 +80-150 ppb"),
    "heat_episode": EventType((_A,), "district", 0.002, (7200, 28800), "temperature +6-10 C"),
    "stuck_value": EventType((_W, _E, _A), "device", 0.002, (300, 1800), "one field frozen"),
    "spikes": EventType((_W, _A), "device", 0.002, (60, 600), "isolated implausible jumps"),
    "dropout": EventType((_W, _E, _A), "device", 0.005, (60, 900), "one measurement missing"),
    "device_offline": EventType((_W, _E, _A), "device", 0.002, (300, 3600), "device silent"),
}


def truth_record(
    etype: str,
    device_id: str,
    family: str,
    district: str,
    start: float,
    end: float,
    **extra: Any,
) -> dict[str, Any]:
    """One ground-truth line (times rounded to the millisecond)."""
    rec: dict[str, Any] = {
        "type": etype,
        "device_id": device_id,
        "family": family,
        "district": district,
        "start": round(float(start), 3),
        "end": round(float(end), 3),
    }
    rec.update(extra)
    return rec


class EventClock:
    """Poisson event starts for one simulator, plus the guaranteed early ones.

    Parameters
    ----------
    family
        Which family's events to draw (types whose ``families`` contain it).
    rates
        The scenario's rates by type.
    rng
        Source of randomness (the simulator's own stream).
    guarantee_s, t_start
        With ``guarantee_s > 0``, each enabled type fires once at a random time in
        ``[t_start + 1, t_start + guarantee_s]`` regardless of the Poisson draws.
    """

    def __init__(
        self,
        family: str,
        rates: dict[str, EventRate],
        rng: np.random.Generator,
        scope: str = "device",
    ) -> None:
        self.rng = rng
        self.types = [
            t
            for t, spec in EVENT_TYPES.items()
            if family in spec.families and spec.scope == scope and rates[t].rate_per_hour > 0
        ]
        self.rates = rates
        self._forced: dict[str, float] = {}
        self._begun = False

    def guarantee(self, t_start: float, within_s: float) -> None:
        """Schedule one forced occurrence of each enabled type in the first ``within_s``.

        Only the first call counts (simulators call it on every tick).
        """
        if self._begun:
            return
        self._begun = True
        if within_s <= 0:
            return
        hi = max(within_s, 2.0)
        for t in self.types:
            self._forced[t] = t_start + float(self.rng.uniform(1.0, hi))

    def draw(
        self,
        now: float,
        candidates: np.ndarray,
        dt: float,
        types: tuple[str, ...] | None = None,
    ) -> list[tuple[str, np.ndarray]]:
        """Event starts in ``[now, now + dt)`` among ``candidates`` (device indices).

        Returns ``(type, devices)`` pairs in catalogue order; a device appears at most once
        per type. ``types`` restricts the draw (for types with their own eligibility).
        Forced (guaranteed) events pick one random candidate; with no candidate they stay
        pending.
        """
        out: list[tuple[str, np.ndarray]] = []
        n = candidates.size
        if n == 0:
            return out
        for t in self.types:
            if types is not None and t not in types:
                continue
            lam = self.rates[t].rate_per_hour / 3600.0 * n * dt
            k = int(self.rng.poisson(lam)) if lam > 0 else 0
            forced = self._forced.get(t)
            if forced is not None and forced < now + dt:
                del self._forced[t]
                k = max(k, 1)
            if k:
                k = min(k, n)
                out.append((t, self.rng.choice(candidates, size=k, replace=False)))
        return out

    def duration(self, etype: str, k: int) -> np.ndarray:
        """``k`` durations (s) drawn uniformly from the type's range."""
        lo, hi = self.rates[etype].duration_s
        return self.rng.uniform(lo, hi, k) if hi > lo else np.full(k, lo)
