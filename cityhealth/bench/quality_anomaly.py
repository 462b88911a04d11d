"""Quality of :mod:`kernels.anomaly`: precision/recall/F1 per scenario at ONE threshold.

Synthetic scenarios cover the series the scorer must serve with one default
configuration (circadian heart rate, SpO2, body temperature, PM2.5, infrastructure
metrics) and the behaviours it must survive (seasonality, level shifts, drifts, noise
bursts, flat/stuck values, spikes, dropouts, gaps). Every scenario is seeded, so the report
is deterministic. :func:`evaluate_truth` scores recorded series against the simulators'
ground-truth JSONL (``{"type", "device_id", "family", "start", "end", ...}`` per line).

Scoring rules (event-based, the way an operator experiences alerts)
- an *alert* is a run of samples with score >= threshold; runs closer than
  ``merge_s`` seconds are one alert;
- an event is *detected* when an alert sample falls in ``[start, end + grace_s]``;
- an alert is *true* when it overlaps such a window of any event, else it is false;
- precision = true alerts / alerts, recall = detected events / events; events of kinds
  the scorer does not claim to detect (``stuck``: a flat line is not a deviation) are
  reported but left out of precision/recall (their alerts count as neither true nor false).
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kernels.anomaly import THRESHOLD, score

DAY = 86400.0
#: Event kinds the scorer is not designed to flag (reported, not counted in P/R); the
#: simulators' names (``stuck_value``, ``device_offline``) included.
UNCLAIMED = frozenset({"stuck", "stuck_value", "dropout", "device_offline"})
#: Truth event types that belong to other kernels (falls, home activity, panic button).
NOT_ANOMALY_TYPES = ("fall", "fall_like", "inactivity", "panic")


@dataclass
class Event:
    """One labelled anomaly: ``kind`` over ``[start, end]`` seconds."""

    kind: str
    start: float
    end: float


@dataclass
class Series:
    """One labelled series: timestamps, values, events."""

    name: str
    family: str
    t: np.ndarray
    x: np.ndarray
    events: list[Event] = field(default_factory=list)


# -- building blocks ------------------------------------------------------------------------


def _clock(rng: np.random.Generator, period: float, days: float) -> np.ndarray:
    """Irregular timestamps: mean interval ``period`` with ±40 % jitter."""
    n = int(days * DAY / period)
    return np.cumsum(period * rng.uniform(0.6, 1.4, n))


def _ar1(rng: np.random.Generator, t: np.ndarray, corr_s: float, sigma: float) -> np.ndarray:
    """Ornstein-Uhlenbeck noise sampled at ``t`` (stationary std ``sigma``)."""
    phi = np.exp(-np.diff(t, prepend=t[0]) / corr_s)
    shocks = rng.standard_normal(t.size) * sigma * np.sqrt(1.0 - phi**2)
    out = np.empty(t.size)
    acc = rng.standard_normal() * sigma
    for i in range(t.size):  # generator, not a hot path
        acc = phi[i] * acc + shocks[i]
        out[i] = acc
    return out


def _circadian(t: np.ndarray, amplitude: float, peak_hour: float) -> np.ndarray:
    return amplitude * np.cos(2 * np.pi * (t / DAY - peak_hour / 24.0))


def _episodes(
    rng: np.random.Generator,
    t: np.ndarray,
    count: int,
    duration: tuple[float, float],
    margin: float = 3 * 3600.0,
) -> list[tuple[float, float]]:
    """``count`` non-overlapping windows, spaced so the scorer settles in between."""
    span = (t[-1] - margin) - (t[0] + margin)
    slots = np.linspace(t[0] + margin, t[0] + margin + span, count + 1)
    out = []
    for a, b in itertools.pairwise(slots):
        d = rng.uniform(*duration)
        s = rng.uniform(a, max(a, b - d - margin))
        out.append((s, s + d))
    return out


def _ramp(t: np.ndarray, start: float, end: float, rise_s: float) -> np.ndarray:
    """0 → 1 over ``rise_s`` from ``start``, 1 until ``end``, back to 0 over ``rise_s``."""
    up = np.clip((t - start) / rise_s, 0.0, 1.0)
    down = np.clip((end - t) / rise_s + 1.0, 0.0, 1.0)
    return np.minimum(up, down) * (t <= end + rise_s)


def _spikes(
    rng: np.random.Generator, s: Series, count: int, size: float, sign: float = 0.0
) -> None:
    """Single-sample spikes of ``size`` (random sign unless ``sign``), labelled."""
    idx = rng.choice(np.arange(200, s.t.size - 10), size=count, replace=False)
    for i in np.sort(idx):
        direction = sign or rng.choice([-1.0, 1.0])
        s.x[i] += direction * size * rng.uniform(1.0, 1.5)
        s.events.append(Event("spike", float(s.t[i]), float(s.t[i])))


# -- scenarios ----------------------------------------------------------------------------


def heart_rate(rng: np.random.Generator, days: float, anomalies: bool = True) -> Series:
    """Wearable HR every ~10 s: circadian baseline, AR noise, brady/tachycardia, artefacts."""
    t = _clock(rng, 10.0, days)
    x = 68 + _circadian(t, 8.0, 16.0) + _ar1(rng, t, 120.0, 3.0) + rng.normal(0, 1.0, t.size)
    s = Series("heart_rate", "wearable", t, x)
    if anomalies:
        for k, (a, b) in enumerate(_episodes(rng, t, int(3 * days), (600.0, 1800.0))):
            kind, delta = ("tachycardia", 45.0) if k % 2 == 0 else ("bradycardia", -28.0)
            s.x += delta * _ramp(t, a, b, 60.0)
            s.events.append(Event(kind, a, b))
        _spikes(rng, s, int(4 * days), 35.0)
    s.x = np.round(s.x)
    return s


def spo2(rng: np.random.Generator, days: float, anomalies: bool = True) -> Series:
    """Integer SpO2 every ~30 s near 97 %, desaturations, NaN dropouts and off-wrist gaps."""
    t = _clock(rng, 30.0, days)
    x = 97 + _ar1(rng, t, 300.0, 0.6) + rng.normal(0, 0.4, t.size)
    s = Series("spo2", "wearable", t, x)
    if anomalies:
        for a, b in _episodes(rng, t, int(4 * days), (180.0, 900.0)):
            s.x -= rng.uniform(8.0, 12.0) * _ramp(t, a, b, 60.0)
            s.events.append(Event("desaturation", a, b))
    s.x = np.minimum(np.round(s.x), 100.0)
    drop = rng.random(t.size) < 0.02
    s.x[drop] = np.nan  # dropouts: no reading
    gap_start = t[0] + 0.37 * (t[-1] - t[0])
    keep = (t < gap_start) | (t > gap_start + 4 * 3600.0)  # watch off for 4 h
    s.t, s.x = t[keep], s.x[keep]
    s.events = [e for e in s.events if not gap_start - 600 <= e.start <= gap_start + 4 * 3600]
    return s


def body_temperature(rng: np.random.Generator, days: float, anomalies: bool = True) -> Series:
    """Skin/core temperature every ~60 s at 0.1 °C resolution, circadian, fever episodes."""
    t = _clock(rng, 60.0, days)
    x = 36.8 + _circadian(t, 0.35, 18.0) + _ar1(rng, t, 900.0, 0.08)
    s = Series("body_temperature", "wearable", t, x)
    if anomalies:
        for a, b in _episodes(rng, t, max(1, int(days)), (4 * 3600.0, 8 * 3600.0), 5 * 3600):
            s.x += rng.uniform(1.5, 2.5) * _ramp(t, a, b, 5400.0)
            s.events.append(Event("fever", a, b))
    s.x = np.round(s.x, 1)
    return s


def pm25(rng: np.random.Generator, days: float, anomalies: bool = True) -> Series:
    """PM2.5 every ~60 s: rush-hour peaks, multiplicative noise, pollution episodes, spikes."""
    t = _clock(rng, 60.0, days)
    hour = (t / 3600.0) % 24.0
    traffic = 12 * np.exp(-(((hour - 8.0) / 1.2) ** 2)) + 9 * np.exp(-(((hour - 18.0) / 1.5) ** 2))
    x = (10 + traffic) * np.exp(_ar1(rng, t, 1800.0, 0.2) + rng.normal(0, 0.08, t.size))
    s = Series("pm25", "airq", t, x)
    if anomalies:
        for a, b in _episodes(rng, t, int(2 * days), (3600.0, 3 * 3600.0)):
            s.x += rng.uniform(60.0, 120.0) * _ramp(t, a, b, 300.0)
            s.events.append(Event("episode", a, b))
        _spikes(rng, s, int(3 * days), 80.0, sign=1.0)
    s.x = np.round(np.maximum(s.x, 0.0), 1)
    return s


def cpu(rng: np.random.Generator, days: float, anomalies: bool = True) -> Series:
    """Gateway CPU % every ~10 s: daily load, bursty noise; shifts, drift, noise burst, stuck."""
    t = _clock(rng, 10.0, days)
    x = 30 + _circadian(t, 10.0, 14.0) + _ar1(rng, t, 60.0, 3.0) + rng.gamma(1.5, 1.0, t.size)
    s = Series("cpu", "infrastructure", t, x)
    if anomalies:
        wins = _episodes(rng, t, 4 * max(1, int(days)), (1800.0, 3600.0))
        for k, (a, b) in enumerate(wins):
            kind = ("level_shift", "drift", "noise_burst", "stuck")[k % 4]
            if kind == "level_shift":  # a deployment: load steps up, the next one down
                s.x += (25.0 if k % 8 == 0 else -25.0) * (t >= a)
                s.events.append(Event(kind, a, a + 600.0))
            elif kind == "drift":  # a leak: +40 over the window, then restart
                s.x += 40.0 * np.clip((t - a) / (b - a), 0.0, 1.0) * (t <= b)
                s.events.append(Event(kind, a, b))
            elif kind == "noise_burst":
                s.x += rng.normal(0.0, 25.0, t.size) * ((t >= a) & (t <= b))
                s.events.append(Event(kind, a, b))
            else:  # stuck exporter: the last value repeats
                inside = (t >= a) & (t <= b)
                s.x[inside] = s.x[np.argmax(inside) - 1]
                s.events.append(Event(kind, a, b))
        _spikes(rng, s, int(4 * days), 50.0, sign=1.0)
    s.x = np.clip(s.x, 0.0, 100.0)
    return s


SCENARIOS: dict[str, Callable[[np.random.Generator, float, bool], Series]] = {
    "heart_rate": heart_rate,
    "spo2": spo2,
    "body_temperature": body_temperature,
    "pm25": pm25,
    "cpu": cpu,
}


# -- evaluation -----------------------------------------------------------------------------


def alert_runs(t: np.ndarray, flags: np.ndarray, merge_s: float) -> list[tuple[float, float]]:
    """Runs of flagged samples as ``(first_t, last_t)``, merging runs ``merge_s`` apart."""
    ft = t[flags]
    if ft.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(ft) > merge_s)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [ft.size - 1]])
    return [(float(ft[a]), float(ft[b])) for a, b in zip(starts, ends, strict=True)]


def evaluate(
    t: np.ndarray,
    scores: np.ndarray,
    events: Iterable[Event],
    threshold: float = THRESHOLD,
    *,
    grace_s: float = 300.0,
    merge_s: float = 300.0,
    neutral: Iterable[Event] = (),
) -> dict[str, Any]:
    """Event-based precision/recall/F1 of ``scores >= threshold`` (rules: module docstring).

    ``neutral`` events (e.g. a fever labelled on temperature, seen by the heart-rate
    series) make overlapping alerts count as neither true nor false.
    """
    events = list(events)
    flags = np.nan_to_num(scores, nan=0.0) >= threshold
    alerts = alert_runs(t, flags, merge_s)
    claimed = [e for e in events if e.kind not in UNCLAIMED]
    unclaimed = [e for e in events if e.kind in UNCLAIMED] + list(neutral)

    def hits(e: Event) -> bool:
        lo, hi = np.searchsorted(t, [e.start, e.end + grace_s], side="left")
        return bool(flags[lo : hi + 1][t[lo : hi + 1] <= e.end + grace_s].any())

    def overlaps(a: tuple[float, float], evs: list[Event]) -> bool:
        return any(a[0] <= e.end + grace_s and a[1] >= e.start for e in evs)

    true_alerts = sum(overlaps(a, claimed) for a in alerts)
    neutral_alerts = sum(overlaps(a, unclaimed) and not overlaps(a, claimed) for a in alerts)
    false_alerts = len(alerts) - true_alerts - neutral_alerts
    by_kind: dict[str, dict[str, int]] = {}
    for e in events:
        row = by_kind.setdefault(e.kind, {"events": 0, "detected": 0})
        row["events"] += 1
        row["detected"] += hits(e)
    detected = sum(hits(e) for e in claimed)
    days = max((t[-1] - t[0]) / DAY, 1e-9) if t.size else 1e-9
    return {
        "samples": int(t.size),
        "events": len(claimed),
        "detected": detected,
        "alerts": len(alerts),
        "true_alerts": true_alerts,
        "false_alerts": false_alerts,
        "false_alerts_per_day": false_alerts / days,
        **_prf(true_alerts, false_alerts, detected, len(claimed)),
        "by_kind": by_kind,
    }


def run_scenario(
    name: str, seed: int, days: float, anomalies: bool = True, threshold: float = THRESHOLD
) -> dict[str, Any]:
    """Generate one seeded scenario, score it with the defaults, evaluate it."""
    series = SCENARIOS[name](np.random.default_rng(seed), days, anomalies)
    result = evaluate(series.t, score(series.t, series.x), series.events, threshold)
    return {"scenario": name if anomalies else f"{name}_clean", "family": series.family, **result}


# -- ground truth from the simulators --------------------------------------------------------


def load_truth(path: str | Path, *, exclude_types: Iterable[str] = NOT_ANOMALY_TYPES) -> list[dict]:
    """Read a ground-truth JSONL (one ``{"type", "device_id", "family", "start", "end"}``
    object per line), dropping the event types the anomaly scorer is not meant for."""
    skip = set(exclude_types)
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("type") not in skip:
                rows.append(row)
    return rows


def evaluate_truth(
    truth: str | Path | Iterable[Mapping[str, Any]],
    recorded: Mapping[str, tuple[np.ndarray, np.ndarray]],
    threshold: float = THRESHOLD,
    *,
    steps: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Score recorded series against labelled events.

    Parameters
    ----------
    truth : path to a truth JSONL, or its rows
        Events ``{"type", "device_id", "family", "start", "end", ...}`` as the simulators
        write them; their optional ``"field"`` (``heart_rate``, ``pm25``, ...) and
        ``"channel"`` (``vitals``, ``air``) say which series an event is in. Rows given
        directly are used as they are (no type filter).
    recorded : mapping ``"device_id"`` or ``"device_id/field"`` → ``(t, x)``
        The recorded series (epoch seconds, values), one per key. An event applies to
        ``device_id/field`` when it names that field or channel, or names neither; the
        device's other events make overlapping alerts neutral (physiology couples fields:
        a fever raises heart rate).
    steps : optional mapping ``"device_id"`` -> ``(t, step counter)``
        When given, scores of the :data:`HELD_FIELDS` are set to 0 while the device's
        step counter advanced within the last :data:`ACTIVE_S` seconds: the stream layer
        holds those alerts back while the wearer is active (docs/ALERTS.md), so this
        measures the alerts the pipeline would send, not the kernel alone.

    Returns
    -------
    dict
        Per-series results (as :func:`evaluate`) and totals.
    """
    rows = list(load_truth(truth)) if isinstance(truth, str | Path) else list(truth)
    per_series = {}
    for key, (t, x) in recorded.items():
        device_id, _, field = key.partition("/")
        mine = [r for r in rows if str(r.get("device_id")) == device_id]
        events = [_event(r) for r in mine if _applies(r, field)]
        others = [_event(r) for r in mine if not _applies(r, field)]
        tt = np.asarray(t, dtype=float)
        scores = score(tt, x)
        if steps is not None and field in HELD_FIELDS and device_id in steps:
            scores[active_mask(tt, *steps[device_id])] = 0.0
        per_series[key] = evaluate(tt, scores, events, threshold, neutral=others)
    return {"threshold": threshold, "series": per_series, "total": _totals(per_series.values())}


#: Fields whose anomaly alerts the stream layer holds back while the wearer is active, and
#: how long after the step counter last advanced (``streams.limits.Timing.active_s``).
HELD_FIELDS = frozenset({"heart_rate", "spo2", "respiration_rate"})
ACTIVE_S = 60.0


def active_mask(
    t: np.ndarray, step_t: np.ndarray, step_count: np.ndarray, active_s: float = ACTIVE_S
) -> np.ndarray:
    """Whether the step counter ``(step_t, step_count)`` advanced within ``active_s``
    seconds before (or at) each time of ``t``: the stream layer's *active* rule."""
    step_t = np.asarray(step_t, dtype=float)
    count = np.asarray(step_count, dtype=float)
    advanced = step_t[1:][np.diff(count) > 0]
    last = np.searchsorted(advanced, t, side="right") - 1
    since = t - advanced[np.maximum(last, 0)] if advanced.size else np.full(t.size, np.inf)
    return (last >= 0) & (since <= active_s)


def _event(row: Mapping[str, Any]) -> Event:
    start = float(row["start"])
    return Event(str(row.get("type", "event")), start, float(row.get("end", start)))


def _applies(row: Mapping[str, Any], field: str) -> bool:
    """Whether a truth row concerns the series ``field`` of its device."""
    named = [row[k] for k in ("field", "channel") if row.get(k) is not None]
    return not field or not named or field in named


def _totals(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Pooled counts and precision/recall/F1 over several evaluated series."""
    results = list(results)
    keys = ("events", "detected", "alerts", "true_alerts", "false_alerts")
    sums = {k: sum(int(r[k]) for r in results) for k in keys}
    return {
        **sums,
        **_prf(sums["true_alerts"], sums["false_alerts"], sums["detected"], sums["events"]),
    }


def _prf(true_alerts: int, false_alerts: int, detected: int, events: int) -> dict[str, float]:
    """Precision over alerts, recall over events, and their F1 (1.0 when there is nothing)."""
    judged = true_alerts + false_alerts
    precision = true_alerts / judged if judged else 1.0
    recall = detected / events if events else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# -- the project's simulators ---------------------------------------------------------------

#: Event mix for :func:`simulated_series` (rate per device or district and hour, duration
#: range in s): frequent enough to count in a few hours, as long as in the real world.
SIM_EVENTS: dict[str, tuple[float, list[float]]] = {
    "tachycardia": (0.25, [300, 900]),
    "bradycardia": (0.25, [300, 900]),
    "desaturation": (0.25, [120, 600]),
    "fever": (0.06, [3600, 10800]),
    "spikes": (0.1, [60, 300]),
    "stuck_value": (0.05, [300, 1800]),
    "dropout": (0.1, [60, 900]),
    "device_offline": (0.03, [300, 1800]),
    "pm25_episode": (0.25, [1800, 5400]),
    "no2_episode": (0.15, [1800, 5400]),
    "o3_episode": (0.15, [1800, 5400]),
    "heat_episode": (0.0, [7200, 28800]),
    "fall": (0.0, [60, 900]),
    "fall_like": (0.0, [10, 10]),
    "inactivity": (0.0, [7200, 14400]),
    "panic": (0.0, [0, 0]),
}
SIM_FIELDS = {"vitals": ("heart_rate", "spo2", "body_temp"), "air": ("pm25", "no2", "o3")}


def _smoke_scenario() -> dict[str, Any]:
    from importlib import resources

    text = resources.files("simulators.scenarios").joinpath("smoke.toml").read_text("utf-8")
    return tomllib.loads(text)


#: The simulated runs' default start: 2023-11-14 22:13:20 UTC, 23:13 in the smoke city.
DEFAULT_START = 1.7e9


def simulated_start(local_hour: float | None) -> float:
    """Epoch start of a simulated run at ``local_hour`` in the smoke city (UTC+1), on the
    same day as :data:`DEFAULT_START` or the next; ``None`` gives the default."""
    if local_hour is None:
        return DEFAULT_START
    default_hour = (DEFAULT_START / 3600.0 + _smoke_scenario()["utc_offset_h"]) % 24.0
    return DEFAULT_START + ((local_hour - default_hour) % 24.0) * 3600.0


def simulated_series(
    hours: float = 6.0, wearables: int = 20, seed: int = 0, start: float = DEFAULT_START
) -> tuple[list[dict[str, Any]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Truth and recorded series of :func:`simulated_run` (without the step counters)."""
    truth, recorded, _ = simulated_run(hours, wearables, seed, start)
    return truth, recorded


def simulated_run(
    hours: float = 6.0, wearables: int = 20, seed: int = 0, start: float = DEFAULT_START
) -> tuple[
    list[dict[str, Any]],
    dict[str, tuple[np.ndarray, np.ndarray]],
    dict[str, tuple[np.ndarray, np.ndarray]],
]:
    """Run the project's wearable and air-quality simulators in-process (no MQTT).

    Uses the built-in ``smoke`` city (3 districts, 10 stations) with ``wearables``
    wearables, 1-s ticks, native JSON payloads and the :data:`SIM_EVENTS` mix.

    Returns
    -------
    truth, recorded, steps
        The simulators' ground-truth rows, ``{"device_id/field": (t, x)}`` for
        :data:`SIM_FIELDS` (vitals at 1 Hz, air quality every 5 s) and each wearable's step
        counter ``{"device_id": (t, steps)}``, ready for :func:`evaluate_truth`.

    The default ``start`` (1.7e9, 23:13 local time in the smoke city) puts a 6-hour run
    in the wearers' night.
    """
    from simulators.airq import AirQualitySimulator
    from simulators.scenario import parse_scenario
    from simulators.wearable import WearableSimulator

    data = _smoke_scenario()
    data.update(tick_s=1.0, guarantee_events_within_s=0)
    data.setdefault("wearable", {}).update(count=wearables, senml_fraction=0.0)
    data.setdefault("airq", {})["senml_fraction"] = 0.0
    data.setdefault("eldercare", {})["count"] = 0
    data["events"] = {k: {"rate_per_hour": r, "duration_s": d} for k, (r, d) in SIM_EVENTS.items()}
    scenario = parse_scenario(data, "anomaly-quality")
    rng = np.random.default_rng(seed)
    sims = [WearableSimulator(scenario, rng), AirQualitySimulator(scenario, rng)]
    columns: dict[str, tuple[list[float], list[float]]] = {}
    counters: dict[str, tuple[list[float], list[float]]] = {}
    for k in range(int(hours * 3600)):
        for sim in sims:
            for topic, payload in sim.tick(start + k):
                parts = topic.split("/")
                fields = SIM_FIELDS.get(parts[-1])
                if not fields:
                    continue
                msg = json.loads(payload)
                for f in fields:
                    if f in msg:
                        ts, xs = columns.setdefault(f"{parts[-2]}/{f}", ([], []))
                        ts.append(msg["ts"])
                        xs.append(msg[f])
                if "steps" in msg:
                    ts, xs = counters.setdefault(parts[-2], ([], []))
                    ts.append(msg["ts"])
                    xs.append(msg["steps"])
    recorded = {k: (np.array(ts), np.array(xs, dtype=float)) for k, (ts, xs) in columns.items()}
    steps = {k: (np.array(ts), np.array(xs, dtype=float)) for k, (ts, xs) in counters.items()}
    truth = [r for sim in sims for r in sim.truth()]
    return truth, recorded, steps


# -- the report ----------------------------------------------------------------------------


def anomaly_quality_report(
    seeds: Iterable[int] = (0, 1, 2),
    days: float = 3.0,
    threshold: float = THRESHOLD,
    truth: str | Path | None = None,
    recorded: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    simulated_hours: float = 0.0,
    simulated_wearables: int = 20,
    simulated_start: float = DEFAULT_START,
) -> dict[str, Any]:
    """Precision/recall/F1 of ``kernels.anomaly`` (default parameters) per scenario.

    Parameters
    ----------
    seeds : iterable of int
        One labelled series (and one anomaly-free twin) per scenario and seed.
    days : float
        Length of each synthetic series (episodes are spaced hours apart: use >= 1).
    threshold : float
        Alert threshold on the score (the documented :data:`kernels.anomaly.THRESHOLD`).
    truth, recorded : optional
        Ground-truth JSONL and the recorded series it labels (see :func:`evaluate_truth`);
        when both are given the report gains a ``"truth"`` section.
    simulated_hours, simulated_wearables : optional
        When ``simulated_hours > 0``, also run the project's simulators in-process
        (:func:`simulated_run`, seed = first seed) and add a ``"simulators"`` section
        pooled per field (about 15 s per simulated hour for 10 wearables): the kernel
        alone (``fields``, ``total``) and the alerts the pipeline would send, with
        heart-rate and SpO2 alerts held back while the wearer is active (``held``).
    simulated_start : float
        Epoch start of that run (:func:`simulated_start` turns a local hour into one);
        the default is the wearers' night.

    Returns
    -------
    dict
        JSON-serialisable: ``threshold``, ``scenarios`` (one row per scenario, seeds pooled,
        with ``by_kind`` detection counts), ``clean`` (false alerts per day on series
        without anomalies), ``total`` (pooled over labelled scenarios) and optionally
        ``truth``.
    """
    seeds = list(seeds)
    if days <= 0 or not seeds:
        raise ValueError(f"need days > 0 and at least one seed, got days={days}, seeds={seeds}")
    rows, clean = [], []
    for name in SCENARIOS:
        labelled = [run_scenario(name, s, days, True, threshold) for s in seeds]
        quiet = [run_scenario(name, s, days, False, threshold) for s in seeds]
        pooled = pool_by_field(
            {"series": {f"{s}/{name}": r for s, r in zip(seeds, labelled, strict=True)}}
        )
        rows.append({**pooled[0], "family": labelled[0]["family"]})
        quiet_days = len(seeds) * days
        false_alerts = sum(r["false_alerts"] for r in quiet)
        clean.append(
            {
                "scenario": name,
                "days": quiet_days,
                "false_alerts": false_alerts,
                "false_alerts_per_day": false_alerts / quiet_days,
                "samples": sum(r["samples"] for r in quiet),
            }
        )
    report: dict[str, Any] = {
        "kernel": "anomaly",
        "threshold": threshold,
        "seeds": seeds,
        "days": days,
        "scenarios": rows,
        "clean": clean,
        "total": _totals(rows),
    }
    if truth is not None and recorded is not None:
        report["truth"] = evaluate_truth(truth, recorded, threshold)
    if simulated_hours > 0:
        rows_sim, series, steps = simulated_run(
            simulated_hours, simulated_wearables, seeds[0], simulated_start
        )
        result = evaluate_truth(rows_sim, series, threshold)
        held = evaluate_truth(rows_sim, series, threshold, steps=steps)
        report["simulators"] = {
            "hours": simulated_hours,
            "wearables": simulated_wearables,
            "start": simulated_start,
            "fields": pool_by_field(result),
            "total": result["total"],
            "held": {"fields": pool_by_field(held), "total": held["total"]},
        }
    return report


def pool_by_field(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of :func:`evaluate_truth` pooled over devices, one per field (``.../field``)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for key, r in result["series"].items():
        groups.setdefault(key.partition("/")[2] or key, []).append(r)
    rows = []
    for field_name, rs in groups.items():
        by_kind: dict[str, dict[str, int]] = {}
        for r in rs:
            for kind, c in r["by_kind"].items():
                row = by_kind.setdefault(kind, {"events": 0, "detected": 0})
                row["events"] += c["events"]
                row["detected"] += c["detected"]
        rows.append({"scenario": field_name, **_totals(rs), "by_kind": by_kind})
    return rows


def format_report(report: Mapping[str, Any]) -> str:
    """Plain-text table of :func:`anomaly_quality_report` (for the CLI)."""
    lines = [f"anomaly scorer @ threshold {report['threshold']}"]
    head = ("events", "found", "alerts")
    lines.append(
        f"{'scenario':18} " + " ".join(f"{h:>6}" for h in head) + "     P     R    F1  kinds"
    )
    lines.extend(_table_rows(report["scenarios"], report["total"]))
    lines.append("false alerts per day on anomaly-free twins:")
    lines.extend(f"  {c['scenario']:16} {c['false_alerts_per_day']:.2f}" for c in report["clean"])
    if "simulators" in report:
        sim = report["simulators"]
        local = (sim.get("start", DEFAULT_START) / 3600.0 + _smoke_scenario()["utc_offset_h"]) % 24
        lines.append(
            f"project simulators ({sim['hours']} h from {int(local):02d}:"
            f"{int(local % 1 * 60):02d} local, {sim['wearables']} wearables):"
        )
        lines.extend(_table_rows(sim["fields"], sim["total"]))
        lines.append("... alerts the pipeline sends (HR, SpO2 held back while stepping):")
        lines.extend(_table_rows(sim["held"]["fields"], sim["held"]["total"]))
    return "\n".join(lines)


def _table_rows(rows: Iterable[Mapping[str, Any]], total: Mapping[str, Any]) -> list[str]:
    out = []
    for r in [*rows, {"scenario": "total", **total, "by_kind": {}}]:
        kinds = ", ".join(f"{k} {v['detected']}/{v['events']}" for k, v in r["by_kind"].items())
        out.append(
            f"{r['scenario']:18} {r['events']:>6} {r['detected']:>6} {r['alerts']:>6} "
            f"{r['precision']:>5.2f} {r['recall']:>5.2f} {r['f1']:>5.2f}  {kinds}".rstrip()
        )
    return out
