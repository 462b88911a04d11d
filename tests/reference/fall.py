"""Naive pure-Python reference of :mod:`kernels.fall` (one sample at a time, dict state).

Written for clarity, not speed: every device has a plain dict, samples are handled in input
order with the same arithmetic (same formulas, same order of operations) as the compiled
kernel, so results must be *identical*. Benchmarks reuse :func:`detect_events` as the
naive baseline and :func:`make_inputs` for the batch layout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kernels.fall import G0, RING, resolve_params


def _acos(c: float) -> float:
    """Angle (rad) of a cosine, clamped against rounding just outside [-1, 1]."""
    return math.acos(min(1.0, max(-1.0, c)))


class ReferenceFallDetector:
    """Per-sample fall detector with the algorithm of :mod:`kernels.fall`."""

    def __init__(self, preset: str = "balanced", **params: float) -> None:
        self.p = resolve_params(preset, params)
        self.devices: dict[int, dict[str, Any]] = {}

    def _fresh(self) -> dict[str, Any]:
        return {
            "last_t": None,
            "g": [0.0, 0.0, 0.0],
            "drop_t": -math.inf,  # start of the latest free fall ...
            "drop": [0.0, 0.0, 0.0],  # ... and the gravity estimate then
            "next_snap": -math.inf,
            "last_low": -math.inf,
            "snapshots": [],  # (t, [gx, gy, gz], peak |a|^2 since the one before), <= RING
            "run_peak": 0.0,
            "candidate": None,
            "skipped_nonfinite": 0,
            "skipped_out_of_order": 0,
            "falls": 0,
        }

    @staticmethod
    def _snapshot(st: dict[str, Any], t_ref: float) -> tuple[float, list[float], float]:
        """The newest snapshot taken at or before ``t_ref`` (else the oldest kept)."""
        before = [s for s in st["snapshots"] if s[0] <= t_ref]
        return max(before, key=lambda s: s[0]) if before else st["snapshots"][0]

    def _pre_orientation(self, st: dict[str, Any], t_ref: float) -> list[float]:
        return list(self._snapshot(st, t_ref)[1])

    def _pre_time(self, st: dict[str, Any], t_ref: float) -> float:
        return float(self._snapshot(st, t_ref)[0])

    def _has_history(self, st: dict[str, Any], t_ref: float) -> bool:
        """A snapshot at or before ``t_ref`` taken at most ``pre_s`` before it (no start of
        the recording or long gap there): the orientation before is known."""
        before = [s[0] for s in st["snapshots"] if s[0] <= t_ref]
        return bool(before) and max(before) >= t_ref - self.p["pre_s"]

    def _hard(self, c: dict[str, Any]) -> bool:
        """An impact that may wait for stillness in later windows (``late_still_s``): at
        least ``late_still_g``, or a hard one that was hit again, more weakly, later."""
        p = self.p
        g2 = G0 * G0
        return p["late_still_s"] > 0 and (
            c["peak2"] >= p["late_still_g"] ** 2 * g2 or c["t_win"] == -math.inf
        )

    def _keeps(self, c: dict[str, Any]) -> bool:
        """A pending impact hard enough that a weaker later hit is part of its aftermath."""
        p = self.p
        g2 = G0 * G0
        keep = min(p["impact_g"], p["late_still_g"])
        return p["late_still_s"] > 0 and c["peak2"] >= keep**2 * g2

    @staticmethod
    def _prior_peak(st: dict[str, Any], lo: float, hi: float) -> float:
        """Largest |a|^2 recorded by the snapshots taken in ``(lo, hi]``."""
        return max([s[2] for s in st["snapshots"] if lo < s[0] <= hi], default=0.0)

    @staticmethod
    def _second_peak(st: dict[str, Any], lo: float, hi: float) -> float:
        """Second largest |a|^2 recorded by the snapshots taken in ``(lo, hi)`` (0 if
        fewer than two): ongoing gait is loud in two of them, a fall's stumble in one."""
        peaks = sorted((s[2] for s in st["snapshots"] if lo < s[0] < hi), reverse=True)
        return peaks[1] if len(peaks) > 1 else 0.0

    @staticmethod
    def _cos_angle(a: list[float], b: list[float]) -> float:
        norm = math.sqrt(
            (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]) * (b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
        )
        if norm == 0.0:
            return 1.0
        return (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / norm

    def _decide(self, c: dict[str, Any]) -> bool:
        """The fall rule: still, tilted, and a hard impact or a soft one after fast rotation."""
        p = self.p
        g2 = G0 * G0
        ns = c["n"]
        if ns == 0:
            return False
        mean = [c["sum"][k] / ns for k in range(3)]
        var = (
            (c["sq"][0] / ns - mean[0] * mean[0])
            + (c["sq"][1] / ns - mean[1] * mean[1])
            + (c["sq"][2] / ns - mean[2] * mean[2])
        )
        if var > p["still_g"] ** 2 * g2:
            return False  # not still
        turn = self._cos_angle(c["pre"], mean)
        if turn > math.cos(math.radians(p["angle_deg"])):
            return False  # not tilted enough
        if p["drop_frac"] > 0 and c["low_ok"] and c["peak2"] < p["drop_max_g"] ** 2 * g2:
            on = self._cos_angle(c["pre"], c["drop"])
            if _acos(on) > p["drop_frac"] * _acos(turn):
                return False  # turned first, then dropped: lowered, then dropped onto a seat
        lead = self._cos_angle(c["pre"], c["lead"])
        if c["peak2"] >= p["impact_g"] ** 2 * g2:  # hard impact (free fall if not strong)
            if p["hard_lead_frac"] > 0 and _acos(lead) > p["hard_lead_frac"] * _acos(turn):
                return False  # turned first, then struck: most of the turn came before
            if c["peak2"] < p["prior_ratio"] ** 2 * c["prior"]:
                return False  # no louder than gait that went on up to it (a stride)
            return c["peak2"] >= p["strong_impact_g"] ** 2 * g2 or c["low_ok"]
        if c["peak2"] < p["prior_ratio"] ** 2 * c["far"]:
            return False  # a soft impact no louder than recent gait
        # soft impact: no free fall before it (not a drop onto a seat) and the rotation
        # must not have started long before it (no slow, controlled descent)
        if p["soft_freefall_veto"] > 0 and c["low_ok"]:
            return False
        return lead >= math.cos(math.radians(p["lead_deg"]))

    def sample(self, d: int, t: float, x: float, y: float, z: float) -> float | None:
        """Feed one sample; return an impact time when a fall is decided at it."""
        p = self.p
        g2 = G0 * G0
        st = self.devices.setdefault(d, self._fresh())
        if not all(math.isfinite(v) for v in (t, x, y, z)):
            st["skipped_nonfinite"] += 1
            return None
        if st["last_t"] is not None and t <= st["last_t"]:
            st["skipped_out_of_order"] += 1
            return None
        m2 = x * x + y * y + z * z
        event = None
        c = st["candidate"]
        if c is not None and t >= c["t_decide"]:
            if self._decide(c):
                event = c["t_imp"]
                st["falls"] += 1
                st["candidate"] = c = None
            elif self._hard(c) and c["t_decide"] - c["t_imp"] < (
                p["settle_s"] + p["still_s"] + p["late_still_s"] - 0.5 * p["still_s"]
            ):
                # not still yet after a hard impact: try the next window
                c["t_settle"] = c["t_decide"]
                c["t_decide"] = c["t_decide"] + p["still_s"]
                c["sum"], c["sq"], c["n"] = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.0
            else:
                st["candidate"] = c = None
        g = st["g"]
        if st["last_t"] is None:
            g[0], g[1], g[2] = x, y, z
        else:
            dt = t - st["last_t"]
            alpha = dt / (p["gravity_tau_s"] + dt)
            g[0] += alpha * (x - g[0])
            g[1] += alpha * (y - g[1])
            g[2] += alpha * (z - g[2])
        st["run_peak"] = max(st["run_peak"], m2)
        if t >= st["next_snap"]:
            st["snapshots"].append((t, list(g), st["run_peak"]))
            st["run_peak"] = 0.0
            st["snapshots"] = st["snapshots"][-RING:]
            st["next_snap"] = t + p["snapshot_s"]
        crossing = m2 >= min(p["impact_g"], p["soft_impact_g"]) ** 2 * g2
        if crossing and c is not None and t > c["t_win"] and self._keeps(c) and m2 < c["peak2"]:
            crossing = False  # a weaker hit after a hard impact: motion of its aftermath
            c["t_win"] = -math.inf  # hit again: the impact window is closed for good
        if crossing:
            if c is not None and t <= c["t_win"]:
                if m2 > c["peak2"]:
                    c["peak2"], c["t_imp"] = m2, t
                    c["t_win"] = t + p["impact_window_s"]
                    c["t_settle"] = t + p["settle_s"]
                    c["t_decide"] = t + (p["settle_s"] + p["still_s"])
            elif self._has_history(st, t - p["pre_s"]):  # else no orientation before yet
                st["candidate"] = {
                    "t_win": t + p["impact_window_s"],
                    "t_imp": t,
                    "t_settle": t + p["settle_s"],
                    "t_decide": t + (p["settle_s"] + p["still_s"]),
                    "peak2": m2,
                    "pre": self._pre_orientation(st, t - p["pre_s"]),
                    "pre_t": self._pre_time(st, t - p["pre_s"]),
                    "lead": self._pre_orientation(st, t - p["lead_s"]),
                    "low_ok": t - st["last_low"] <= p["freefall_window_s"],
                    "far": self._prior_peak(st, t - p["pre_s"] - p["prior_s"], t - p["pre_s"]),
                    "sum": [0.0, 0.0, 0.0],
                    "sq": [0.0, 0.0, 0.0],
                    "n": 0.0,
                }
                c = st["candidate"]
                c["prior"] = min(c["far"], self._second_peak(st, t - p["near_s"], t))
                # where the segment pointed when the free fall began (no turn if none, or
                # if it began before the orientation "before" was taken)
                dropped = c["low_ok"] and st["drop_t"] >= c["pre_t"]
                c["drop"] = list(st["drop"]) if dropped else list(c["pre"])
        elif c is not None and t >= c["t_settle"]:
            for k, v in enumerate((x, y, z)):
                c["sum"][k] += v
                c["sq"][k] += v * v
            c["n"] += 1.0
        if m2 < p["freefall_g"] ** 2 * g2:
            if t - st["last_low"] > p["freefall_window_s"]:  # a free fall starts
                st["drop_t"], st["drop"] = t, list(g)
            st["last_low"] = t
        st["last_t"] = t
        return event


def detect_events(
    device: np.ndarray,
    t: np.ndarray,
    ax: np.ndarray,
    ay: np.ndarray,
    az: np.ndarray,
    detector: ReferenceFallDetector | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the reference over an interleaved batch; same return shape as the kernel."""
    det = detector if detector is not None else ReferenceFallDetector()
    ev_d: list[int] = []
    ev_t: list[float] = []
    for d, ti, x, y, z in zip(
        device.tolist(), t.tolist(), ax.tolist(), ay.tolist(), az.tolist(), strict=True
    ):
        e = det.sample(int(d), ti, x, y, z)
        if e is not None:
            ev_d.append(int(d))
            ev_t.append(e)
    return np.array(ev_d, dtype=np.int64), np.array(ev_t, dtype=np.float64)


def make_inputs(
    n_samples: int,
    n_devices: int,
    *,
    seed: int = 0,
    rate_hz: float = 50.0,
    block: int = 50,
    fall_fraction: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Benchmark batch: ``(device, t, ax, ay, az)`` laid out like the ingest bridge's.

    Each device sends messages of ``block`` consecutive samples (one MQTT accel payload);
    messages of all devices are interleaved in random order while each device's samples
    stay in time order. Signals are gravity in a random direction per device plus sensor
    noise and brief movements; a fraction ``fall_fraction`` of the messages starts with a
    4 g impact after which the device stays rotated, so candidates are created and
    decided (some as falls) and the slow paths are part of the measurement.
    """
    rng = np.random.default_rng(seed)
    n_msgs = max(n_samples // block, 1)
    owner = rng.integers(0, n_devices, n_msgs)
    # rank of each message among its device's messages = its place in that device's time
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=n_devices)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    seq = np.empty(n_msgs, np.int64)
    seq[order] = np.arange(n_msgs) - np.repeat(starts, counts)
    falls = rng.random(n_msgs) < fall_fraction
    # falls so far on the device (in device time) -> how often its axes were rotated
    fall_sorted = falls[order].astype(np.int64)
    cum = np.cumsum(fall_sorted) - np.repeat(
        np.cumsum(fall_sorted)[starts] - fall_sorted[starts], counts
    )
    turns = np.empty(n_msgs, np.int64)
    turns[order] = cum
    device = np.repeat(owner, block).astype(np.int64)
    k = np.tile(np.arange(block), n_msgs)
    t = (np.repeat(seq, block) * block + k) / rate_hz
    up = rng.standard_normal((n_devices, 3))
    up /= np.linalg.norm(up, axis=1, keepdims=True)
    a = G0 * up[device] + rng.normal(0.0, 0.2, (device.size, 3))
    moving = np.repeat(rng.random(n_msgs) < 0.3, block)
    a[moving] += rng.normal(0.0, 3.0, (int(moving.sum()), 3))
    a[np.flatnonzero(falls) * block] *= 4.0
    for r in (1, 2):  # rotate the axes of devices after their 1st, 2nd, 4th, ... fall
        rot = np.repeat(turns % 3 == r, block)
        a[rot] = np.roll(a[rot], r, axis=1)
    return device, t, a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy()
