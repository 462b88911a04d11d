"""``cityhealth bench kernels``: throughput of every kernel with in-run baselines.

Each kernel is timed (best of ``--repeat`` after a warm-up call) on ``--samples`` values
spread over ``--devices`` devices, single-threaded, so the rate is per core. Three ratios
are measured in the same run, all as *kernel rate / baseline rate* (> 1: kernel faster):

* **vs naive**: the pure-Python reference from ``tests/reference`` timed on a subset
  (``--naive-samples`` values; whole devices for the stateful kernels) and scaled per
  value; the subset size is reported.
* **vs NumPy**: a vectorised NumPy version with the same semantics (its agreement with the
  kernel is checked and reported), where one makes sense; the stateful fall and anomaly
  kernels are sequential per device, so they have none.
* **vs np.copy**: ``np.copy`` of the kernel's input arrays, the memory-bandwidth floor
  (a ratio of 0.5 means the kernel takes twice as long as copying its inputs once).

Every rate is best-of (wall clock; the naive reference best of at most 3), and the load
average is reported: on a shared machine the best run is the one least disturbed.

The JIT-cache check imports every kernel module and calls each public kernel once in three
fresh processes (see :func:`jit_cache_check`); with a warm Numba cache that must take well
under a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDARDS_GOAL = 50e6
GOALS = {"fall": 50e6, "anomaly": 20e6, "anomaly_parallel": 20e6}
NAIVE_REPEAT = 3  # the naive references take seconds: best of at most this many


class UnavailableError(Exception):
    """A kernel (or its reference) cannot be imported or built: reported, not fatal."""


@dataclass
class Case:
    """One kernel to time, with its baselines."""

    name: str
    unit: str  # what one counted value is
    values: int  # values processed by one kernel call
    setup: Callable[[], Any]  # fresh state for a call (excluded from the timing)
    run: Callable[[Any], Any]
    inputs: tuple[np.ndarray, ...]  # what np.copy copies
    naive: Callable[[], Any]
    naive_values: int
    numpy: Callable[[], Any] | None = None
    agrees: Callable[[Any, Any], bool] | None = None
    note: str = ""
    single_thread: bool = True  # False: no per-thread CPU rate (work on other threads)


@dataclass
class Result:
    """Measured figures of one kernel (rates in values per second)."""

    name: str
    available: bool
    unit: str = ""
    values: int = 0
    kernel_rate: float = 0.0
    kernel_cpu_rate: float | None = None  # values per CPU-second of the calling thread
    ratio_vs_naive_cpu: float | None = None  # the same ratio in CPU time of the thread
    naive_rate: float = 0.0
    naive_values: int = 0
    numpy_rate: float | None = None
    numpy_agrees: bool | None = None
    copy_rate: float = 0.0
    ratio_vs_naive: float = 0.0
    ratio_vs_numpy: float | None = None
    ratio_vs_copy: float = 0.0
    goal: float = 0.0
    goal_met: bool = False
    note: str = ""


@dataclass
class Report:
    """Everything one run measured."""

    samples: int
    devices: int
    repeat: int
    cpu_count: int | None
    load_avg_1m: float | None
    results: list[Result] = field(default_factory=list)
    jit_cache: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- timing
def _best(
    setup: Callable[[], Any],
    run: Callable[[Any], Any],
    repeat: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    best = np.inf
    for _ in range(repeat):
        state = setup()
        t0 = clock()
        run(state)
        best = min(best, clock() - t0)
    return float(best)


def _none() -> None:
    return None


def measure(case: Case, repeat: int, goal: float) -> Result:
    """Time ``case`` and its baselines; the first kernel call is the warm-up."""
    case.run(case.setup())  # warm-up: JIT compile or cache load, page faults
    kernel_s = _best(case.setup, case.run, repeat)
    # CPU time of this thread: what one core spent, whatever else the machine ran meanwhile
    # (the wall-clock rate stays the headline figure and the one the goal is judged on).
    cpu_s = _best(case.setup, case.run, repeat, time.thread_time) if case.single_thread else None
    copy_s = _best(_none, lambda _: [np.copy(a) for a in case.inputs], repeat)
    naive_s = _best(_none, lambda _: case.naive(), min(repeat, NAIVE_REPEAT))
    naive_cpu_s = _best(_none, lambda _: case.naive(), 1, time.thread_time) if cpu_s else None
    rate = case.values / kernel_s
    res = Result(
        name=case.name,
        available=True,
        unit=case.unit,
        values=case.values,
        kernel_rate=rate,
        kernel_cpu_rate=None if cpu_s is None else case.values / cpu_s,
        naive_rate=case.naive_values / naive_s,
        naive_values=case.naive_values,
        copy_rate=case.values / copy_s,
        goal=goal,
        goal_met=rate >= goal,
        note=case.note,
    )
    res.ratio_vs_naive = rate / res.naive_rate
    if cpu_s is not None and naive_cpu_s:
        res.ratio_vs_naive_cpu = (naive_cpu_s / case.naive_values) / (cpu_s / case.values)
    res.ratio_vs_copy = rate / res.copy_rate
    if case.numpy is not None:
        numpy_fn = case.numpy
        expected = numpy_fn()
        numpy_s = _best(_none, lambda _: numpy_fn(), repeat)
        res.numpy_rate = case.values / numpy_s
        res.ratio_vs_numpy = rate / res.numpy_rate
        if case.agrees is not None:
            res.numpy_agrees = bool(case.agrees(case.run(case.setup()), expected))
    return res


# ------------------------------------------------------------------- NumPy baselines
def _truncate_np(c: np.ndarray, scale: float) -> np.ndarray:
    """Vectorised form of the kernels' decimal truncation to a 1/scale grid."""
    k = np.floor(c * scale)
    k = np.where((k + 1.0) / scale <= c, k + 1.0, k)
    return np.where(k / scale > c, k - 1.0, k)


def aqi_numpy(pollutant: str, conc: np.ndarray) -> np.ndarray:
    """US EPA AQI with NumPy array operations (same semantics as ``kernels.aqi.us_epa``)."""
    from kernels import aqi

    tab = aqi._COMPILED[pollutant]
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (conc >= 0) & (conc < np.inf)
        c = np.where(ok, conc, 0.0)
        huge = c * tab.scale > 1e12
        k = _truncate_np(np.where(huge, 0.0, c), tab.scale)
        r = np.minimum(np.searchsorted(tab.hi_k, k, side="left"), tab.lo_k.size - 1)
        num = (tab.i_hi[r] - tab.i_lo[r]) * (k - tab.lo_k[r])
        den = tab.hi_k[r] - tab.lo_k[r]
        value = np.minimum(tab.i_lo[r] + np.floor((2 * num + den) / (2 * den)), aqi.AQI_CEILING)
        undefined = (k < tab.lo_k[r]) | ((k > tab.hi_k[r]) & (not tab.extrapolate))
        value = np.where(huge, aqi.AQI_CEILING if tab.extrapolate else -1, value)
        return np.where(ok & (huge | ~undefined), value, -1).astype(np.int64)


def nowcast_numpy(hourly: np.ndarray, w_floor: float) -> np.ndarray:
    """NowCast of ``(stations, hours)`` (newest first) with NumPy reductions."""
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = (hourly >= 0) & (hourly < np.inf)
        c_min = np.where(valid, hourly, np.inf).min(axis=1)
        c_max = np.where(valid, hourly, -np.inf).max(axis=1)
        w = np.maximum(np.where(c_max > 0, c_min / c_max, 1.0), w_floor)
        first = np.argmax(valid, axis=1)
        expo = np.maximum(np.arange(hourly.shape[1]) - first[:, None], 0)
        weight = np.where(valid, w[:, None] ** expo, 0.0)
        out = (weight * np.where(valid, hourly, 0.0)).sum(axis=1) / weight.sum(axis=1)
        return np.where(valid[:, :3].sum(axis=1) >= 2, out, np.nan)


# Rothfusz (1990) coefficients of 1, T, RH, T·RH, T², RH², T²·RH, T·RH², T²·RH².
_ROTHFUSZ: tuple[float, ...] = (-42.379, 2.04901523, 10.14333127, -0.22475541, -6.83783e-3)
_ROTHFUSZ += (-5.481717e-2, 1.22874e-3, 8.5282e-4, -1.99e-6)


def heat_numpy(temp_c: np.ndarray, rh: np.ndarray) -> np.ndarray:
    """NWS heat index (°C) with NumPy array operations."""
    t = temp_c * 1.8 + 32.0
    with np.errstate(invalid="ignore"):
        simple = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094)
        terms = (1.0, t, rh, t * rh, t * t, rh * rh, t * t * rh, t * rh * rh, t * t * rh * rh)
        full = sum(c * x for c, x in zip(_ROTHFUSZ, terms, strict=True))
        dry = (rh < 13) & (t >= 80) & (t <= 112)
        full = full - np.where(
            dry, (13 - rh) / 4 * np.sqrt(np.maximum(17 - np.abs(t - 95), 0) / 17), 0.0
        )
        humid = (rh > 85) & (t >= 80) & (t <= 87)
        full = full + np.where(humid, (rh - 85) / 10 * (87 - t) / 5, 0.0)
        hi = np.where((simple + t) / 2 < 80, simple, full)
        ok = (rh >= 0) & (rh <= 100) & (temp_c >= -273.15) & (temp_c <= 1000)
        # Cold air (<= 40 °F) has no heat index: the air temperature itself, as the kernel.
        hi_c = np.where(t <= 40.0, temp_c, (hi - 32.0) / 1.8)
        return np.where(ok, hi_c, np.nan)


def news2_numpy(v: dict[str, np.ndarray]) -> np.ndarray:
    """NEWS2 totals with NumPy (bins via searchsorted on the kernel's chart cuts)."""
    from kernels import news2

    def binned(x: np.ndarray, table: int) -> np.ndarray:
        idx = np.searchsorted(news2.CUTS[table], x, side="right")  # cuts <= x
        return news2.POINTS[table][np.minimum(idx, news2.POINTS.shape[1] - 1)].astype(np.int64)

    with np.errstate(invalid="ignore"):
        oxygen = ~np.isnan(v["on_oxygen"]) & (v["on_oxygen"] != 0)
        spo2_ok = (v["spo2"] >= 0) & (v["spo2"] <= 100)
        scale2 = v["spo2_scale"] == 2
        spo2 = np.where(
            scale2,
            np.where(oxygen, binned(v["spo2"], 3), binned(v["spo2"], 2)),
            binned(v["spo2"], 1),
        )
        total = np.where(spo2_ok, spo2, 0) + 2 * oxygen
        for name, table in (("resp_rate", 0), ("systolic_bp", 4), ("heart_rate", 5)):
            x = v[name]
            total = total + np.where((x >= 0) & (x < np.inf), binned(x, table), 0)
        t = v["temp_c"]
        total = total + np.where(np.isfinite(t), binned(t, 6), 0)
        alert = v["consciousness_alert"]
        return total + np.where(~np.isnan(alert) & (alert == 0), 3, 0)


# ------------------------------------------------------------------------ the cases
def _reference(module: str) -> Any:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        return __import__(f"tests.reference.{module}", fromlist=["_"])
    except Exception as exc:  # any import-time failure of a reference in progress
        raise UnavailableError(f"tests.reference.{module}: {type(exc).__name__}: {exc}") from exc


def _kernel(module: str) -> Any:
    try:
        return __import__(f"kernels.{module}", fromlist=["_"])
    except Exception as exc:  # a kernel being written may not import yet
        raise UnavailableError(f"kernels.{module}: {type(exc).__name__}: {exc}") from exc


def _require(module: Any, *attrs: str) -> None:
    for attr in attrs:
        if not hasattr(module, attr):
            raise UnavailableError(f"{module.__name__} has no {attr}")


def _stateful_inputs(
    rng: np.random.Generator, n: int, devices: int, naive_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interleaved ``(device, t)`` and the mask of the whole devices the naive run gets."""
    device, t = _interleaved_times(rng, n, devices)
    return device, t, _device_subset(device, devices, naive_n)


def _interleaved_times(rng: np.random.Generator, n: int, devices: int) -> tuple[Any, Any]:
    """One sample per message from random devices, each device's samples in time order."""
    device = rng.integers(0, devices, n)
    order = np.argsort(device, kind="stable")
    counts = np.bincount(device, minlength=devices)
    seq = np.empty(n, dtype=np.int64)
    seq[order] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    t = seq * 1.0 + rng.uniform(0.0, 0.5, n)  # ~1 Hz, irregular, increasing per device
    return device.astype(np.int64), t


def _device_subset(device: np.ndarray, devices: int, want: int) -> np.ndarray:
    """Mask of whole devices (the first ones) holding about ``want`` samples."""
    keep = max(1, int(devices * want / max(device.size, 1)))
    return device < keep


def aqi_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    aqi = _kernel("aqi")
    ref = _reference("aqi")
    conc = rng.lognormal(np.log(12.0), 0.9, n)
    conc[rng.random(n) < 0.001] = np.nan
    sub = conc[:naive_n].tolist()
    return Case(
        name="aqi.us_epa (pm25)",
        unit="concentrations",
        values=n,
        setup=_none,
        run=lambda _: aqi.us_epa("pm25", conc),
        inputs=(conc,),
        naive=lambda: ref.aqi_many("pm25", sub),
        naive_values=len(sub),
        numpy=lambda: aqi_numpy("pm25", conc),
        agrees=lambda a, b: bool(np.array_equal(a, b)),
        note="reference uses exact Decimal/Fraction arithmetic",
    )


def nowcast_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    aqi = _kernel("aqi")
    ref = _reference("aqi")
    stations = max(devices, n // 12)
    hourly = rng.lognormal(np.log(15.0), 0.6, (stations, 12))
    hourly[rng.random(hourly.shape) < 0.05] = np.nan
    rows = hourly[: max(1, naive_n // 12)].tolist()
    return Case(
        name="aqi.nowcast (pm25, 12 h)",
        unit="hourly values",
        values=hourly.size,
        setup=_none,
        run=lambda _: aqi.nowcast("pm25", hourly),
        inputs=(hourly,),
        naive=lambda: [ref.nowcast(r, 12, 0.5) for r in rows],
        naive_values=12 * len(rows),
        numpy=lambda: nowcast_numpy(hourly, 0.5),
        agrees=lambda a, b: bool(np.allclose(a, b, rtol=1e-12, equal_nan=True)),
        note=f"{stations} stations x 12 h",
    )


def nowcast_stream_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    aqi = _kernel("aqi")
    ref = _reference("aqi")
    _require(aqi, "NowCastStream")
    station, t, m = _stateful_inputs(rng, n, devices, naive_n)
    hour = t.astype(np.int64)  # one hourly average per station and hour
    value = rng.lognormal(np.log(15.0), 0.6, n)
    sub = list(zip(station[m].tolist(), hour[m].tolist(), value[m].tolist(), strict=True))

    def naive() -> list[float]:
        stream = ref.ReferenceNowCastStream(12, 0.5)
        return [stream.step(s, h, v) for s, h, v in sub]

    return Case(
        name="aqi.NowCastStream.update",
        unit="hourly values",
        values=n,
        setup=lambda: aqi.NowCastStream(devices, "pm25"),
        run=lambda stream: stream.update(station, hour, value),
        inputs=(station, hour, value),
        naive=naive,
        naive_values=len(sub),
        note="sequential per-station state: no NumPy version",
    )


def news2_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    news2 = _kernel("news2")
    ref = _reference("news2")
    v = {
        "resp_rate": rng.normal(17, 4, n).round(),
        "spo2": np.minimum(rng.normal(96, 2.5, n).round(), 100),
        "on_oxygen": (rng.random(n) < 0.1).astype(np.float64),
        "temp_c": rng.normal(37.0, 0.7, n).round(1),
        "systolic_bp": rng.normal(120, 20, n).round(),
        "heart_rate": rng.normal(78, 15, n).round(),
        "consciousness_alert": (rng.random(n) > 0.02).astype(np.float64),
        "spo2_scale": np.where(rng.random(n) < 0.05, 2.0, 1.0),
    }
    wearable = rng.random(n) < 0.5  # wearables measure neither BP nor consciousness
    v["systolic_bp"][wearable] = np.nan
    v["consciousness_alert"][wearable] = np.nan
    names = list(v)
    rows = list(zip(*(v[k][:naive_n].tolist() for k in names), strict=True))
    return Case(
        name="news2.score",
        unit="observation sets",
        values=n,
        setup=_none,
        run=lambda _: news2.score(**v),
        inputs=tuple(v.values()),
        naive=lambda: [ref.score_one(*row[:-1], int(row[-1])) for row in rows],
        naive_values=len(rows),
        numpy=lambda: news2_numpy(v),
        agrees=lambda a, b: bool(np.array_equal(a.total, b)),
        note="7 vital signs per set; half without BP/consciousness",
    )


def heat_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    heat = _kernel("heat")
    ref = _reference("heat")
    temp = rng.uniform(10.0, 45.0, n)
    rh = rng.uniform(5.0, 100.0, n)
    pairs = list(zip(temp[:naive_n].tolist(), rh[:naive_n].tolist(), strict=True))
    return Case(
        name="heat.heat_index",
        unit="(T, RH) pairs",
        values=n,
        setup=_none,
        run=lambda _: heat.heat_index(temp, rh),
        inputs=(temp, rh),
        naive=lambda: [ref.heat_index_c(a, b) for a, b in pairs],
        naive_values=len(pairs),
        numpy=lambda: heat_numpy(temp, rh),
        agrees=lambda a, b: bool(np.allclose(a, b, rtol=1e-12, equal_nan=True)),
    )


def fall_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    fall = _kernel("fall")
    ref = _reference("fall")
    _require(ref, "make_inputs", "detect_events")
    device, t, ax, ay, az = ref.make_inputs(n, devices, seed=int(rng.integers(1 << 31)))
    m = _device_subset(device, devices, naive_n)
    sub = (device[m], t[m], ax[m], ay[m], az[m])
    return Case(
        name="fall.FallDetector.update",
        unit="accel samples",
        values=device.size,
        setup=lambda: fall.FallDetector(devices),
        run=lambda det: det.update(device, t, ax, ay, az),
        inputs=(device, t, ax, ay, az),
        naive=lambda: ref.detect_events(*sub),
        naive_values=int(m.sum()),
        note="sequential per-device state: no NumPy version",
    )


def anomaly_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    anomaly = _kernel("anomaly")
    ref = _reference("anomaly")
    _require(ref, "ReferenceAnomalyScorer")
    device, t, m = _stateful_inputs(rng, n, devices, naive_n)
    x = 70.0 + 5.0 * np.sin(t / 3600.0) + rng.normal(0.0, 2.0, n)
    x[rng.random(n) < 0.001] += 40.0  # spikes exercise the tail path
    sub = (device[m], t[m], x[m])
    return Case(
        name="anomaly.AnomalyScorer.update",
        unit="samples",
        values=n,
        setup=lambda: anomaly.AnomalyScorer(devices),
        run=lambda sc: sc.update(device, t, x),
        inputs=(device, t, x),
        naive=lambda: ref.ReferenceAnomalyScorer().update(*sub),
        naive_values=int(m.sum()),
        note="sequential per-device state: no NumPy version",
    )


def anomaly_parallel_case(n: int, devices: int, naive_n: int, rng: np.random.Generator) -> Case:
    """The same batch through ``update(..., parallel=True)`` (devices sharded over threads)."""
    import numba

    case = anomaly_case(n, devices, naive_n, rng)
    threads = numba.get_num_threads()
    case.name = "anomaly.AnomalyScorer.update(parallel=True)"
    case.run = lambda sc: sc.update(*case.inputs, parallel=True)
    case.note = f"{threads} Numba threads: a rate for all of them, not per core"
    case.single_thread = False
    case.numpy = None
    return case


BUILDERS: dict[str, Callable[[int, int, int, np.random.Generator], Case]] = {
    "fall": fall_case,
    "anomaly": anomaly_case,
    "anomaly_parallel": anomaly_parallel_case,
    "aqi": aqi_case,
    "nowcast": nowcast_case,
    "nowcast_stream": nowcast_stream_case,
    "news2": news2_case,
    "heat": heat_case,
}

# ------------------------------------------------------------------------- JIT cache
_COLD_START = """
import json, os, sys, time
marks = [("start", time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
import numpy as np
mark("numpy")
import numba
mark("numba")
z3, t3, f3, one3 = np.zeros(3, np.int64), np.arange(3.0), np.zeros(3), np.ones(3)
missing = []
calls = [  # (module, first call of each public kernel); the first one pays Numba's set-up
    ("heat", lambda m: m.heat_index(np.ones(4), np.ones(4))),
    ("aqi", lambda m: (m.us_epa("pm25", np.ones(4)), m.us_epa_ozone(f3, f3),
                       m.nowcast("pm25", np.ones((2, 12))),
                       m.NowCastStream(2, "pm25").update(z3, z3, one3),
                       m.category(np.array([10, 200])))),
    ("news2", lambda m: m.score(resp_rate=16.0, spo2=97.0, on_oxygen=0.0, temp_c=37.0,
                                systolic_bp=120.0, heart_rate=70.0, consciousness_alert=1.0)),
    ("anomaly", lambda m: (m.AnomalyScorer(2).update(z3, t3, one3), m.score(t3, one3))),
    ("fall", lambda m: (m.FallDetector(2).update(z3, t3, f3, f3, np.full(3, 9.81)),
                        m.detect(t3, f3, f3, np.full(3, 9.81)))),
]
for name, call in calls:
    try:
        module = __import__(f"kernels.{name}", fromlist=["_"])
        mark(f"import {name}")
        call(module)
    except Exception as exc:  # a kernel being rewritten: reported, the others still timed
        missing.append(f"{name}: {type(exc).__name__}")
    mark(f"call {name}")
steps = {b[0]: b[1] - a[1] for a, b in zip(marks, marks[1:])}
print(json.dumps({"libs_s": marks[2][1] - marks[0][1], "numpy_s": steps["numpy"],
                  "numba_s": steps["numba"], "first_call_s": steps["call heat"],
                  "kernels_s": marks[-1][1] - marks[2][1], "steps_s": steps,
                  "missing": missing,
                  "bytecode_cache": not sys.dont_write_bytecode}))
"""


def jit_cache_check(runs: int = 3) -> dict[str, Any]:
    """Import every kernel module and call each public kernel once, in fresh interpreters.

    The first run may compile (a kernel's source changed since its cache was written);
    the later ones show the warm-cache cost. ``kernels_s`` is import + first call of
    every public kernel after numpy and numba are imported; ``first_call_s`` is the
    first compiled call, which pays Numba's one-off target set-up (its registries
    imported and installed) whatever the kernel.
    """
    out: list[dict[str, Any]] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _COLD_START],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append({"process_wall_s": wall, **info})
    return {"runs": out, "warm_best": min(out[1:] or out, key=lambda r: r["process_wall_s"])}


# --------------------------------------------------------------------------- running
def run_benchmark(
    samples: int,
    devices: int,
    naive_samples: int,
    repeat: int,
    only: list[str] | None = None,
    seed: int = 0,
    jit_check: bool = True,
) -> Report:
    """Build and time every selected kernel; unavailable ones are reported as such."""
    report = Report(
        samples=samples,
        devices=devices,
        repeat=repeat,
        cpu_count=os.cpu_count(),
        load_avg_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
    for name, build in BUILDERS.items():
        if only and name not in only:
            continue
        rng = np.random.default_rng(seed)
        try:
            case = build(samples, devices, min(naive_samples, samples), rng)
            result = measure(case, repeat, GOALS.get(name, STANDARDS_GOAL))
        except UnavailableError as exc:
            result = Result(name=name, available=False, note=f"not available: {exc}")
        report.results.append(result)
    if jit_check:
        report.jit_cache = jit_cache_check()
    return report


def _fmt_ratio(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.2f}x"


def render(report: Report) -> None:
    """Print the report as a rich table with footnotes."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=(
            f"cityhealth bench kernels: {report.samples:,} samples over {report.devices:,} "
            f"devices, best of {report.repeat}, 1 thread (cpus {report.cpu_count}, "
            f"load {report.load_avg_1m or 0:.1f})"
        )
    )
    table.add_column("kernel")
    for col in ("M values/s", "M/CPU-s", "goal", "vs naive", "vs NumPy", "vs np.copy"):
        table.add_column(col, justify="right")
    notes: list[str] = []
    for r in report.results:
        if not r.available:
            table.add_row(r.name, "-", "-", "-", "-", "-", "-")
            notes.append(f"{r.name}: {r.note}")
            continue
        numpy_col = _fmt_ratio(r.ratio_vs_numpy)
        if r.numpy_agrees is False:
            numpy_col += " DIFFERS"
        table.add_row(
            r.name,
            f"{r.kernel_rate / 1e6:,.1f}",
            "n/a" if r.kernel_cpu_rate is None else f"{r.kernel_cpu_rate / 1e6:,.1f}",
            f"{r.goal / 1e6:.0f} {'met' if r.goal_met else 'MISSED'}",
            _fmt_ratio(r.ratio_vs_naive),
            numpy_col,
            f"{r.ratio_vs_copy:.2f}x",
        )
        extra = f"; {r.note}" if r.note else ""
        agree = {True: "; NumPy agrees", False: "; NumPy DIFFERS", None: ""}[r.numpy_agrees]
        cpu = (
            ""
            if r.ratio_vs_naive_cpu is None
            else f" ({_fmt_ratio(r.ratio_vs_naive_cpu)} in CPU time)"
        )
        notes.append(f"{r.name}: values = {r.unit}; naive n={r.naive_values:,}{cpu}{agree}{extra}")
    console.print(table)
    console.print(
        "Ratios: kernel rate / baseline rate (wall clock, best of the runs), measured in this "
        "run; naive references are timed on n values (whole devices for the stateful "
        "kernels) and scaled per value. M/CPU-s: the same values per CPU-second of the "
        "calling thread (best run), undisturbed by the machine's other load."
    )
    for line in notes:
        console.print(f"  {line}", highlight=False)
    runs = report.jit_cache.get("runs")
    if runs:
        for i, r in enumerate(runs):
            console.print(
                f"JIT cache, fresh process {i + 1}: numpy {r['numpy_s']:.2f} s + numba "
                f"{r['numba_s']:.2f} s import; every kernel imported and called once "
                f"{r['kernels_s']:.2f} s, of which Numba's set-up at the first compiled "
                f"call {r['first_call_s']:.2f} s (whole process {r['process_wall_s']:.2f} s)",
                highlight=False,
            )
        slow = {k: v for k, v in runs[-1].get("steps_s", {}).items() if v >= 0.05}
        if slow:
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in slow.items())
            console.print(f"  steps of >= 0.05 s in the last process: {parts}", highlight=False)
        if not runs[-1].get("bytecode_cache", True):
            console.print(
                "  (PYTHONDONTWRITEBYTECODE is set: project modules are compiled from source)"
            )
        if runs[-1].get("missing"):
            console.print(f"  (not available: {', '.join(runs[-1]['missing'])})")
    elif report.jit_cache:
        console.print(f"JIT cache check failed: {report.jit_cache.get('error')}")


def register(bench_app: typer.Typer) -> None:
    """Attach ``cityhealth bench kernels``."""

    @bench_app.command("kernels")
    def kernels_command(
        samples: Annotated[
            int, typer.Option("--samples", min=1000, help="Values per kernel call (1e6-1e7).")
        ] = 2_000_000,
        devices: Annotated[
            int, typer.Option("--devices", min=1, help="Devices the samples are spread over.")
        ] = 10_000,
        json_file: Annotated[
            Path | None, typer.Option("--json", help="Also write the report as JSON here.")
        ] = None,
        naive_samples: Annotated[
            int, typer.Option("--naive-samples", min=100, help="Values timed on the reference.")
        ] = 20_000,
        repeat: Annotated[int, typer.Option("--repeat", min=1, help="Timed runs (best).")] = 3,
        only: Annotated[
            list[str] | None,
            typer.Option("--only", help=f"Kernels to run (repeatable): {', '.join(BUILDERS)}."),
        ] = None,
        jit_check: Annotated[
            bool, typer.Option("--jit-check/--no-jit-check", help="Time fresh-process imports.")
        ] = True,
    ) -> None:
        """Samples/s per core of every kernel, vs naive reference, NumPy and np.copy."""
        unknown = sorted(set(only or ()) - set(BUILDERS))
        if unknown:
            raise typer.BadParameter(f"unknown kernels {unknown}; choose from {list(BUILDERS)}")
        report = run_benchmark(samples, devices, naive_samples, repeat, only, jit_check=jit_check)
        render(report)
        if json_file is not None:
            json_file.write_text(json.dumps(asdict(report), indent=2) + "\n")
