"""On-device impact triggering: flush the accelerometer window on an impact, then burst.

A wearable or pendant normally sends one window per second of samples, once the second is
recorded (:class:`simulators.base.HeldWindows`). A fall alert is decided on a sample 2 s
after the impact (``kernels.fall``: ``settle_s + still_s``), and with 1-s windows that
sample waits 0-1 s on the device before it even leaves. Fall pendants avoid that wait the
way their accelerometers are built for: the part raises an interrupt when ``|a|`` crosses
a wake-up/impact threshold, and an activity/inactivity engine tells when the wearer has
gone still (e.g. ST's LIS2DW12, Bosch's BMA400); the firmware then reads its FIFO in short
bursts instead of once per second. The simulated device does the same, from its own
samples only (never the ground truth):

1. **Trigger**: a sample with ``|a| >= trigger_g`` (1.45 g).
2. **Flush**: if the device was not already bursting, the partial window up to and
   including that sample is sent at once.
3. **Burst**: for ``burst_s`` (4 s) after the *latest* trigger sample (each further
   trigger extends it), the window is cut every ``window_s`` (0.2 s: ten 50-Hz or five
   25-Hz samples, on the device's 1-s grid) **if the ``quiet_s`` (0.8 s) before that
   piece were still**: total standard deviation of the acceleration vector below
   ``quiet_g`` (0.14 g). Otherwise the window grows to the next 0.2-s boundary.
4. Then the device goes back to 1-s windows (the rest of the current second is one window).

Why these values (``tests/simulators/test_burst.py`` keeps them tied to ``kernels.fall``):

* ``trigger_g`` = 1.45 g is the fall detector's lowest impact threshold (``soft_impact_g``
  of its default ``balanced`` preset; ``impact_g`` is 1.6 g): it never considers an impact
  without a sample at or above it, so every fall it can detect starts a burst. A more
  typical on-device threshold of 2-3 g would miss the soft impacts it accepts: in the clip
  bank falls peak as low as 1.41 g (wrist slump), 1.59 g (pocket slump) and 1.87 g
  (pocket lateral fall). Brisk walking, stairs, jogging and jumping cross 1.45 g too.
* The stillness test is what keeps that cheap: strides are never still for 0.8 s (of the
  0.8-s stretches of rendered clips 0-7 % of walking and none of stairs or jogging pass),
  so gait costs one flush per burst, not five windows a second. It never holds back a
  fall decision: the detector decides on the first sample ``D`` at or after
  ``t_imp + settle_s + still_s`` and only if the ``still_s`` (1 s) before it had a total
  standard deviation below ``still_g`` (0.12 g). The 0.2-s piece holding ``D`` starts
  after ``D - 0.2``, so the 0.8 s before it lie inside that 1 s; the variance of a subset
  of ``m`` of ``N`` samples is at most ``N / m`` times theirs, so its standard deviation is
  below ``sqrt(1 / 0.8) x 0.12 = 0.134 g`` <= ``quiet_g``: the piece is cut and sent.
* ``burst_s`` = 4 s covers the decision at impact + 2.0 s (``settle_s`` + ``still_s``) and
  the later one at + 3.0 s that a hard impact not yet still gets (``late_still_s``), with
  0.8 s of margin beyond its 0.2-s window.
* ``window_s`` = 0.2 s: two 0.1-s simulator ticks, so every burst window ends on a tick
  and is published at its end; the decision sample waits at most 0.2 s (0.1 s on average)
  instead of up to 1 s.

``quiet_g`` 0 switches the stillness test off (every 0.2 s of a burst is sent);
``trigger_g`` 0 switches triggering off (1-s windows only). Everything is vectorised over
the devices of a tick: the trigger test is one pass over the ``(k, 3, n)`` windows, and
only devices that trigger or burst in that second take the path that cuts their second
into several windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from simulators.base import HeldWindows, Message
from simulators.encode import accel_payloads, dumps
from simulators.motion import G0

#: Impact pre-trigger (g): ``kernels.fall`` DEFAULTS min(impact_g, soft_impact_g).
TRIGGER_G = 1.45
#: Seconds of short windows after the latest trigger sample.
BURST_S = 4.0
#: Length of a burst window (s).
BURST_WINDOW_S = 0.2
#: Stillness test before each burst window (total standard deviation, g, over ``QUIET_S``).
QUIET_G = 0.14
QUIET_S = 0.8


@dataclass(frozen=True)
class BurstConfig:
    """On-device trigger settings: scenario keys ``burst_trigger_g``, ``burst_s``,
    ``burst_window_s``, ``burst_quiet_g`` and ``burst_quiet_s`` of the ``[wearable]`` and
    ``[eldercare]`` tables (module docstring)."""

    trigger_g: float = TRIGGER_G
    burst_s: float = BURST_S
    window_s: float = BURST_WINDOW_S
    quiet_g: float = QUIET_G
    quiet_s: float = QUIET_S

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> BurstConfig:
        """Settings from a scenario table, with the defaults above."""
        cfg = cls(
            float(section.get("burst_trigger_g", TRIGGER_G)),
            float(section.get("burst_s", BURST_S)),
            float(section.get("burst_window_s", BURST_WINDOW_S)),
            float(section.get("burst_quiet_g", QUIET_G)),
            float(section.get("burst_quiet_s", QUIET_S)),
        )
        if min(cfg.trigger_g, cfg.burst_s, cfg.quiet_g) < 0 or min(cfg.window_s, cfg.quiet_s) <= 0:
            raise ValueError(f"invalid burst settings {cfg}")
        return cfg


class BurstWindows:
    """Trigger state of ``n`` devices and the cutting of their seconds into windows.

    Parameters
    ----------
    n
        Number of devices.
    rate_hz
        Sample rate; a device's second holds ``round(rate_hz)`` samples.
    config
        Trigger settings.

    Attributes
    ----------
    until
        float64[n]: end of each device's burst (epoch s; -inf when none).
    bursts
        Bursts started so far (triggers while not bursting).
    """

    def __init__(self, n: int, rate_hz: float, config: BurstConfig | None = None) -> None:
        self.config = cfg = config or BurstConfig()
        self.rate_hz = rate_hz
        self.chunk = max(1, round(cfg.window_s * rate_hz))
        self.thr2 = (cfg.trigger_g * G0) ** 2
        self.quiet2 = (cfg.quiet_g * G0) ** 2
        self.span = max(1, round(cfg.quiet_s / cfg.window_s))  # chunks per quiet test
        self.until = np.full(n, -np.inf)
        # per-axis sums and sums of squares of the last `span` chunks of each device's
        # previous second, and that second's start (the quiet test looks back across it)
        self.tail = np.zeros((n, 2, self.span, 3))
        self.tail_t0 = np.full(n, -np.inf)
        self.bursts = 0

    def cuts(self, idx: np.ndarray, t0: float, windows: np.ndarray) -> np.ndarray:
        """bool[k, n]: sample ``s`` of row ``i`` is the last one of a window.

        ``windows[i]`` (3 x n, m/s^2) are the samples of device ``idx[i]`` from ``t0`` on,
        exactly as they are sent; the devices' trigger state advances past them.
        """
        k, n = windows.shape[0], windows.shape[2]
        cut = np.zeros((k, n), dtype=bool)
        cut[:, -1] = True
        if k == 0 or self.config.trigger_g <= 0:
            return cut
        x, y, z = windows[:, 0], windows[:, 1], windows[:, 2]
        trig = x * x + y * y + z * z >= self.thr2
        prev = self.until[idx]
        busy = trig.any(axis=1) | (prev > t0 - 1.0 / self.rate_hz)
        if not busy.any():
            return cut
        rows = np.flatnonzero(busy)
        trig, prev = trig[rows], prev[rows]
        s = np.arange(n)
        ts = t0 + s / self.rate_hz
        last = np.maximum.accumulate(np.where(trig, s, -1), axis=1)
        trig_until = np.where(last >= 0, t0 + last / self.rate_hz + self.config.burst_s, -np.inf)
        until = np.maximum(prev[:, None], trig_until)
        active = ts < until
        before = np.empty_like(active)
        before[:, 0] = ts[0] - 1.0 / self.rate_hz < prev
        before[:, 1:] = active[:, :-1]
        flush = trig & ~before
        self.bursts += int(flush.sum())
        ends = np.zeros(n, dtype=bool)
        chunks = n // self.chunk
        ends[self.chunk - 1 : chunks * self.chunk : self.chunk] = True
        burst_cut = np.zeros_like(active)
        burst_cut[:, ends] = active[:, ends] & self._quiet(idx[rows], t0, windows[rows], chunks)
        cut[rows] |= flush | burst_cut
        self.until[idx[rows]] = until[:, -1]
        return cut

    def _quiet(self, dev: np.ndarray, t0: float, windows: np.ndarray, chunks: int) -> np.ndarray:
        """bool[k, chunks]: the ``quiet_s`` before each chunk of this second were still
        (total standard deviation below ``quiet_g``); keeps the last chunks for the next.
        """
        k, m, span = dev.size, self.chunk, self.span
        w = windows[:, :, : chunks * m].reshape(k, 3, chunks, m)
        cur = np.stack([w.sum(axis=3), np.square(w).sum(axis=3)], axis=1).transpose(0, 1, 3, 2)
        # (k, 2, span + chunks, 3): the previous second's tail (if it was the second just
        # before this one: NaN otherwise, which fails the test) then this second's chunks
        tail = self.tail[dev].copy()
        tail[np.abs(self.tail_t0[dev] - (t0 - 1.0)) > 1e-3] = np.nan
        both = np.concatenate([tail, cur], axis=2)
        self.tail[dev] = both[:, :, -span:]
        self.tail_t0[dev] = t0
        if self.config.quiet_g <= 0:
            return np.ones((k, chunks), dtype=bool)
        # sums over chunks j-span .. j-1 for each chunk j of this second
        tot = sliding_window_view(both, span, axis=2)[:, :, :chunks].sum(axis=4)
        count = span * m
        var = (tot[:, 1] / count - np.square(tot[:, 0] / count)).sum(axis=2)
        return var < self.quiet2

    def hold(
        self,
        held: HeldWindows,
        topics: Sequence[str],
        idx: np.ndarray,
        now: float,
        windows: np.ndarray,
        stamp: float | None = None,
    ) -> None:
        """Cut the seconds of devices ``idx`` into windows and hold each until its end.

        ``windows[i]`` (float64[3, n]) is device ``idx[i]``'s second starting at ``now``;
        ``topics[d]`` is device ``d``'s topic; ``stamp`` (default ``now``) is the ``t0``
        written in the payloads (a rounded ``now``). A device that neither triggers nor
        bursts sends one 1-s window, byte for byte what it sent before triggering existed.
        """
        if idx.size == 0:
            return
        n = windows.shape[2]
        t0 = now if stamp is None else stamp
        cut = self.cuts(idx, now, windows)
        whole = cut.sum(axis=1) == 1
        plain = np.flatnonzero(whole)
        rate = self.rate_hz
        if plain.size:
            block = windows[plain] if plain.size < whole.size else windows
            payloads = accel_payloads(t0, rate, block)
            held.hold(
                now + n / rate,
                list(zip([topics[i] for i in idx[plain].tolist()], payloads, strict=True)),
            )
        split = np.flatnonzero(~whole)
        if split.size == 0:
            return
        rows, stops = np.nonzero(cut[split])
        starts = np.zeros_like(stops)
        starts[1:] = stops[:-1] + 1
        starts[np.r_[True, rows[1:] != rows[:-1]]] = 0
        by_stop: dict[int, list[Message]] = {}
        devs = idx[split].tolist()
        wins = windows[split]
        for r, a, b in zip(rows.tolist(), starts.tolist(), (stops + 1).tolist(), strict=True):
            w = wins[r]
            by_stop.setdefault(b, []).append(
                (
                    topics[devs[r]],
                    dumps(
                        {
                            "t0": t0 + a / rate,
                            "rate_hz": rate,
                            "x": w[0, a:b],
                            "y": w[1, a:b],
                            "z": w[2, a:b],
                        }
                    ),
                )
            )
        for b in sorted(by_stop):
            held.hold(now + b / rate, by_stop[b])
