"""Columnar batches built straight from numpy, for tests and the throughput measurement.

Not a simulator (simulators/ publishes realistic devices over MQTT): these are plain,
deterministic signals in exactly the micro-batch layout of docs/BATCH_FORMAT.md, so a
worker can be fed known input without running the bridge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingest.batch import STREAMS, ColumnarBatch, DictColumn, Ragged, encode
from ingest.batch.schema import COMMON_STRINGS

G = 9.80665


def _strings(
    devices: Sequence[str], codes: np.ndarray, district: str, family: str, channel: str
) -> dict[str, DictColumn]:
    n = codes.size
    const = np.zeros(n, dtype=np.int32)
    values = {"district": district, "family": family, "channel": channel}
    out = {"device": DictColumn(tuple(devices), codes.astype(np.int32))}
    out.update({k: DictColumn((values[k],), const) for k in COMMON_STRINGS if k != "device"})
    return out


def batch(
    stream: str,
    devices: Sequence[str],
    codes: np.ndarray,
    ts: np.ndarray,
    *,
    district: str = "north",
    family: str = "wearable",
    channel: str = "vitals",
    ragged: Ragged | None = None,
    strings: dict[str, DictColumn] | None = None,
    **columns: np.ndarray,
) -> bytes:
    """Encode one batch; columns the stream needs but not given are NaN / -1 / ""."""
    schema = STREAMS[stream]
    n = ts.size
    cols: dict[str, np.ndarray] = {"ts": np.asarray(ts, dtype=np.float64)}
    for name in schema.floats:
        cols[name] = np.asarray(columns.get(name, np.full(n, np.nan)), dtype=np.float64)
    for name in schema.flags:
        cols[name] = np.asarray(columns.get(name, np.full(n, -1)), dtype=np.int8)
    strs = _strings(devices, codes, district, family, channel)
    for name in schema.strings:
        strs[name] = DictColumn(("",), np.zeros(n, dtype=np.int32))
    strs.update(strings or {})
    return encode(
        ColumnarBatch(
            stream=stream, producer="synthetic", created=0.0, columns=cols, strings=strs,
            ragged=ragged,
        )
    )  # fmt: skip


def vitals_batches(
    devices: Sequence[str],
    t0: float,
    seconds: int,
    per_batch: int = 1000,
    *,
    district: str = "north",
    seed: int = 0,
    spikes: Sequence[tuple[int, float, float]] = (),
) -> list[bytes]:
    """Every device reports all vitals once a second for ``seconds`` seconds.

    ``spikes``: ``(device number, time offset s, heart rate)`` replaces one reading's
    heart rate (an anomaly). Rows are time-major (all devices at t, then t + 1, ...).
    """
    rng = np.random.default_rng(seed)
    n_dev = len(devices)
    codes = np.tile(np.arange(n_dev), seconds)
    ts = t0 + np.repeat(np.arange(seconds, dtype=np.float64), n_dev)
    n = ts.size
    hr = np.round(70 + 3 * rng.standard_normal(n))
    spo2 = np.round(97 + 0.5 * rng.standard_normal(n), 1)
    temp = np.round(36.8 + 0.1 * rng.standard_normal(n), 2)
    rr = np.round(15 + rng.standard_normal(n))
    steps = np.zeros(n)
    for dev, offset, value in spikes:
        hr[int(offset) * n_dev + dev] = value
    out = []
    for lo in range(0, n, per_batch):
        sl = slice(lo, lo + per_batch)
        out.append(
            batch(
                "vitals", devices, codes[sl], ts[sl], district=district,
                heart_rate=hr[sl], spo2=spo2[sl], body_temp=temp[sl],
                respiration_rate=rr[sl], steps=steps[sl],
            )
        )  # fmt: skip
    return out


def fall_signal(rate_hz: float, seconds: float, fall_at: float | None) -> np.ndarray:
    """``(n, 3)`` acceleration: upright at rest, optionally falling at ``fall_at`` s.

    The fall: 0.4 s free fall (0.2 g), a 3.5 g impact, then lying still on the side
    (gravity moved from z to x: a 90° orientation change).
    """
    n = round(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    a = np.zeros((n, 3))
    a[:, 2] = G
    a += 0.05 * np.sin(7 * t)[:, None]  # a little deterministic movement
    if fall_at is not None:
        ff = (t >= fall_at - 0.4) & (t < fall_at)
        a[ff] = [0.0, 0.0, 0.2 * G]
        hit = (t >= fall_at) & (t < fall_at + 0.06)
        a[hit] = [2.5 * G, 0.0, 2.5 * G]
        lying = t >= fall_at + 0.06
        a[lying] = [G, 0.0, 0.0]
    return a


def motion_batches(
    devices: Sequence[str],
    t0: float,
    seconds: int,
    *,
    rate_hz: float = 50.0,
    window_s: float = 1.0,
    windows_per_batch: int = 20,
    falls: dict[int, float] | None = None,
    district: str = "north",
    family: str = "wearable",
) -> list[bytes]:
    """One ``window_s`` window per device per window period, time-major.

    ``falls`` maps a device number to the time offset (s) of its fall.
    """
    falls = falls or {}
    n_dev = len(devices)
    per = round(window_s * rate_hz)
    signals = [fall_signal(rate_hz, seconds, falls.get(d)) for d in range(n_dev)]
    n_win = int(seconds / window_s)
    rows = [(w, d) for w in range(n_win) for d in range(n_dev)]
    out = []
    channel = "accel" if family == "wearable" else "pendant"
    for lo in range(0, len(rows), windows_per_batch):
        chunk = rows[lo : lo + windows_per_batch]
        codes = np.array([d for _, d in chunk], dtype=np.int32)
        starts = np.array([t0 + w * window_s for w, _ in chunk])
        xyz = np.concatenate([signals[d][w * per : (w + 1) * per] for w, d in chunk])
        t = np.concatenate([s + np.arange(per) / rate_hz for s in starts])
        offsets = np.arange(len(chunk) + 1, dtype=np.int64) * per
        ragged = Ragged(offsets, {"t": t, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
        out.append(
            batch(
                "motion", devices, codes, starts, district=district, family=family,
                channel=channel, ragged=ragged, rate_hz=np.full(codes.size, rate_hz),
            )
        )  # fmt: skip
    return out
