"""Naive pure-Python reference of :mod:`kernels.anomaly` (one sample at a time, dicts).

Written from the method description, not from the compiled loop: per-device state is a
dict of named floats, and each step is spelled out. It must agree with the Numba kernel
to the last bit (same IEEE operations in the same order), which the property tests check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from kernels.anomaly import DEFAULTS, THRESHOLD


@dataclass
class _Device:
    n: int = 0
    t_last: float = math.nan
    weight: float = 0.0
    level: float = 0.0
    scale: float = 0.0
    cadence: float = 0.0
    quantum: float = math.inf
    x_last: float = math.nan
    tail_u: float = DEFAULTS["u_min"]
    tail_beta: float = DEFAULTS["beta_min"]
    tail_run: float = 0.0  # peak z of the current run above tail_u


@dataclass
class ReferenceAnomalyScorer:
    """Slow, obvious twin of ``kernels.anomaly.AnomalyScorer`` (default parameters)."""

    params: dict[str, float] = field(default_factory=lambda: dict(DEFAULTS))
    devices: dict[int, _Device] = field(default_factory=dict)

    def update(self, device: Iterable[int], t: Iterable[float], x: Iterable[float]) -> list[float]:
        """Score each sample in order, updating that device's state."""
        return [
            self.step(int(d), float(ti), float(xi)) for d, ti, xi in zip(device, t, x, strict=True)
        ]

    def update_with_level(
        self, device: Iterable[int], t: Iterable[float], x: Iterable[float]
    ) -> tuple[list[float], list[float]]:
        """Scores and the level each sample was compared with."""
        pairs = [
            self.step_with_level(int(d), float(ti), float(xi))
            for d, ti, xi in zip(device, t, x, strict=True)
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def step(self, device: int, t: float, x: float) -> float:
        """Score one sample and absorb it."""
        return self.step_with_level(device, t, x)[0]

    def step_with_level(self, device: int, t: float, x: float) -> tuple[float, float]:
        """Score one sample and absorb it; also the device's level before it (the
        expected value; a device's first sample is its own level, rejected ones NaN)."""
        p = self.params
        dev = self.devices.setdefault(device, _Device(tail_u=p["u_min"], tail_beta=p["beta_min"]))
        if not (math.isfinite(x) and math.isfinite(t)) or abs(x) > 1e100 or abs(t) > 1e15:
            return math.nan, math.nan  # rejected: state untouched
        if dev.n == 0:
            dev.n, dev.t_last, dev.weight, dev.level, dev.scale, dev.x_last = 1, t, 1.0, x, 0.0, x
            return 0.0, x
        dt = t - dev.t_last
        if dt <= 0.0:
            return math.nan, math.nan  # already seen (t <= t_last: replay or backwards)
        expected = dev.level

        # memory: tau seconds, or n_memory sampling intervals if the series is sparse
        tau_eff = p["tau"]
        if dev.cadence > 0.0:
            tau_eff = max(tau_eff, p["n_memory"] * dev.cadence)
        history = dev.weight * math.exp(-dt / tau_eff)

        # scale floor: resolution of the series and a fraction of its level
        floor = p["rel_floor"] * abs(dev.level)
        if math.isfinite(dev.quantum):
            floor = max(floor, dev.quantum)
        floor = max(floor, 1e-300)
        spread = max(dev.scale, floor)
        resid = x - dev.level

        if history >= p["n_warmup"]:
            z = abs(resid) / (spread * math.sqrt(1.0 + dt / tau_eff))
            u, beta, tail_p = dev.tail_u, dev.tail_beta, p["tail_p"]
            if z >= u:
                exceed = tail_p * math.exp(-(z - u) / beta)
            else:
                exceed = math.exp(math.log(tail_p) * z / u)
            result = 1.0 - exceed
            # running mean until tail_memory × history samples, then exponential forgetting
            memory = max(min(p["tail_memory"] * history, dev.n), p["tail_prior"])
            gain_p = 1.0 / (memory * tail_p)
            if z > u:  # inside a run above u: remember its peak
                dev.tail_run = max(dev.tail_run, z)
            else:
                if dev.tail_run > 0.0:  # a run just ended: fit its peak, capped at the alarm
                    alarm_excess = math.log(tail_p / (1.0 - THRESHOLD))
                    excess = min(dev.tail_run - u, alarm_excess * beta)
                    beta = beta + gain_p * (excess - beta)
                    u = u + gain_p * beta * (1.0 - tail_p)
                    dev.tail_run = 0.0
                u = u - gain_p * beta * tail_p
            dev.tail_u = max(u, p["u_min"])
            dev.tail_beta = max(beta, p["beta_min"])
        else:
            result = 0.0  # warming up

        weight = history + 1.0
        alpha = 1.0 / weight
        if dev.n < p["n_warmup"]:
            dev.level = dev.level + alpha * resid
            dev.scale = dev.scale + alpha * (abs(resid) - dev.scale)
        else:
            clip = p["huber_k"] * spread
            dev.level = dev.level + alpha * min(max(resid, -clip), clip)
            # the scale forgets more slowly than the level (scale_memory × longer)
            scale_gain = alpha * (1.0 / p["scale_memory"])
            dev.scale = dev.scale + scale_gain * (min(abs(resid), clip) - dev.scale)

        step = p["cadence_step"]  # dt > 0 here: streaming median of the intervals
        if dev.cadence <= 0.0:
            dev.cadence = dt
        elif dt > dev.cadence:
            dev.cadence = dev.cadence * math.exp(step)
        elif dt < dev.cadence:
            dev.cadence = dev.cadence * math.exp(-step)
        change = abs(x - dev.x_last)
        if 0.0 < change < dev.quantum:
            dev.quantum = change
        dev.n += 1
        dev.t_last, dev.weight, dev.x_last = t, weight, x
        return result, expected
