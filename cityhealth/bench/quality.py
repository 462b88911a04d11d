"""``cityhealth bench quality``: detection quality of the kernels on labelled data.

Sections
--------
The command runs every function registered in :data:`SECTIONS`; each takes the shared
:class:`QualityOptions`, prints its own table and returns a JSON-able dict, stored under
its name in the ``--json`` report. To add a section (e.g. anomaly precision/recall against
the simulators' injected events), write ``def anomaly_section(opts) -> dict`` in this
module (or a sibling imported here) and add it to :data:`SECTIONS`; nothing else changes.

Falls (:func:`fall_section`)
----------------------------
A labelled corpus from :mod:`simulators.motion`: every activity and fall type x every
placement x rates 20/25/50/100/200 Hz (with 30 % timestamp jitter) x ``--seeds`` seeds,
each trace with a fresh random device orientation. Seeds are derived from ``--seed``;
the detector defaults and presets were chosen on seeds 1-6 (``--seeds 3`` each) and the
report uses seed 1000 by default, so the figures are not measured on the tuning data.
``--preset`` picks the detector's sensitivity/specificity trade-off
(:data:`kernels.fall.PRESETS`).

* **sensitivity** (per fall type): share of fall traces with an event within
  ``--tolerance`` s of the labelled impact;
* **specificity** (per activity): share of activity traces with no event at all;
* false alarms inside fall traces (events far from the impact) are counted separately;
* ``meets_goal`` is the pooled goal, ``meets_goal_per_type`` asks it of every fall type
  and every activity (the issue's wording), and ``below_goal`` lists the types that miss.

``--recordings DIR`` also evaluates every ``*.csv`` in ``DIR`` (your own recordings; see
:func:`load_recording` for the layout) and every SisFall trial file under ``DIR``
(``<CODE>_<SUBJECT>_R<NN>.txt``, e.g. the dataset's own ``SA01/F01_SA01_R01.txt``; see
:func:`load_sisfall`) and WEDA-FALL accelerometer file (``<CODE>/U<NN>_R<NN>_accel.csv``,
the dataset's own layout below ``dataset/50Hz``; see :func:`load_weda`), with sensitivity
per fall code and specificity per activity code, each with a Wilson 95 % interval.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

RATES = (20.0, 25.0, 50.0, 100.0, 200.0)
GOAL = 0.95


@dataclass
class QualityOptions:
    """Options shared by every section."""

    seed: int = 1000
    seeds: int = 3
    rates: tuple[float, ...] = RATES
    duration_s: float = 12.0
    jitter: float = 0.3
    tolerance_s: float = 1.0
    recordings: Path | None = None
    units: str = "m/s2"
    sisfall_rate_hz: float = 200.0
    fall_preset: str = "balanced"
    anomaly_simulated_hours: float = 1.0
    anomaly_start_hour: float | None = None  # local hour; None: 23:13, the wearers' night
    console: Console = field(default_factory=lambda: Console(width=max(Console().width, 110)))


# -- falls: corpus and scoring ---------------------------------------------------------------


@dataclass
class Tally:
    """Outcome counts for one group of traces."""

    n: int = 0
    ok: int = 0
    extra_events: int = 0

    @property
    def rate(self) -> float:
        return self.ok / self.n if self.n else float("nan")


def fall_corpus(opts: QualityOptions) -> Iterator[tuple[str, str, float, Any]]:
    """``(activity, placement, rate_hz, trace)`` for the whole labelled corpus."""
    from simulators.motion import ACTIVITIES, FALLS, PLACEMENTS, synthesize

    for a, activity in enumerate(ACTIVITIES + FALLS):
        for p, placement in enumerate(PLACEMENTS):
            for rate in opts.rates:
                for s in range(opts.seeds):
                    rng = np.random.default_rng([opts.seed, a, p, int(rate * 10), s])
                    trace = synthesize(
                        activity,
                        rate_hz=rate,
                        duration_s=opts.duration_s,
                        placement=placement,
                        rng=rng,
                        jitter=opts.jitter,
                    )
                    yield activity, placement, rate, trace


def score_trace(events: np.ndarray, falls: np.ndarray, tolerance_s: float) -> tuple[int, int]:
    """``(falls detected, events matching no fall)`` for one trace."""
    used = np.zeros(events.size, dtype=bool)
    hit = 0
    for f in falls:
        near = np.flatnonzero(~used & (np.abs(events - f) <= tolerance_s))
        if near.size:
            used[near[0]] = True
            hit += 1
    return hit, int((~used).sum())


def score_segments(
    events: np.ndarray, segments: list[tuple[float, float]], tolerance_s: float
) -> tuple[int, int]:
    """``(falls detected, false alarms)`` when falls are labelled as time segments.

    A fall counts as detected when an event lies inside its segment widened by
    ``tolerance_s``; an event inside no widened segment is a false alarm.
    """
    inside = np.zeros(events.size, dtype=bool)
    hit = 0
    for lo, hi in segments:
        m = (events >= lo - tolerance_s) & (events <= hi + tolerance_s)
        hit += int(m.any())
        inside |= m
    return hit, int((~inside).sum())


def _detect(
    t: np.ndarray, ax: np.ndarray, ay: np.ndarray, az: np.ndarray, preset: str
) -> np.ndarray:
    """:func:`kernels.fall.detect` with a preset (``balanced`` is ``detect`` itself)."""
    from kernels.fall import FallDetector

    _, ev_t = FallDetector(1, preset=preset).update(np.zeros(t.size, np.int64), t, ax, ay, az)
    return ev_t


def fall_section(opts: QualityOptions) -> dict[str, Any]:
    """Sensitivity per fall type and specificity per activity on the simulated corpus."""
    from simulators.motion import FALLS

    by_activity: dict[str, Tally] = {}
    by_cell: dict[tuple[str, str], Tally] = {}
    by_rate: dict[float, Tally] = {}
    for activity, placement, rate, tr in fall_corpus(opts):
        events = _detect(tr.t, tr.ax, tr.ay, tr.az, opts.fall_preset)
        hit, extra = score_trace(events, tr.falls, opts.tolerance_s)
        ok = hit == tr.falls.size if activity in FALLS else events.size == 0
        for tally in (
            by_activity.setdefault(activity, Tally()),
            by_cell.setdefault((activity, placement), Tally()),
            by_rate.setdefault(rate, Tally()),
        ):
            tally.n += 1
            tally.ok += int(ok)
            tally.extra_events += extra if activity in FALLS else 0
    falls = [a for a in by_activity if a in FALLS]
    adls = [a for a in by_activity if a not in FALLS]
    sens = _pooled(by_activity, falls)
    spec = _pooled(by_activity, adls)
    placements = sorted({p for _, p in by_cell})
    report: dict[str, Any] = {
        "corpus": {
            "seed": opts.seed,
            "seeds": opts.seeds,
            "rates_hz": list(opts.rates),
            "duration_s": opts.duration_s,
            "jitter": opts.jitter,
            "tolerance_s": opts.tolerance_s,
            "preset": opts.fall_preset,
            "traces": sum(t.n for t in by_activity.values()),
        },
        "sensitivity": sens,
        "specificity": spec,
        "goal": GOAL,
        "meets_goal": bool(sens >= GOAL and spec >= GOAL),
        "meets_goal_per_type": all(t.rate >= GOAL for t in by_activity.values()),
        "below_goal": [a for a, t in by_activity.items() if t.rate < GOAL],
        "per_type": {
            a: {
                "kind": "fall" if a in FALLS else "activity",
                "metric": "sensitivity" if a in FALLS else "specificity",
                "n": t.n,
                "value": t.rate,
                "per_placement": {p: by_cell[(a, p)].rate for p in placements},
                **({"false_alarms_in_fall_traces": t.extra_events} if a in FALLS else {}),
            }
            for a, t in by_activity.items()
        },
        "per_rate": {f"{r:g}": {"n": t.n, "correct": t.rate} for r, t in sorted(by_rate.items())},
    }
    _print_fall_table(opts.console, report, placements)
    if opts.recordings is not None:
        report["recordings"] = recordings_section(opts)
    return report


def _pooled(tallies: dict[str, Tally], keys: list[str]) -> float:
    n = sum(tallies[k].n for k in keys)
    return sum(tallies[k].ok for k in keys) / n if n else float("nan")


def _print_fall_table(console: Console, report: dict[str, Any], placements: list[str]) -> None:
    c = report["corpus"]
    table = Table(
        title=(
            f"Fall detection on {c['traces']} simulated traces "
            f"(seed {c['seed']}, rates {', '.join(f'{r:g}' for r in c['rates_hz'])} Hz, "
            f"preset {c['preset']})"
        )
    )
    table.add_column("type")
    table.add_column("metric")
    table.add_column("n", justify="right")
    table.add_column("all", justify="right")
    for p in placements:
        table.add_column(p, justify="right")
    for name, row in report["per_type"].items():
        table.add_row(
            name,
            row["metric"],
            str(row["n"]),
            f"{row['value']:.1%}",
            *(f"{row['per_placement'][p]:.0%}" for p in placements),
        )
    console.print(table)
    verdict = "meets" if report["meets_goal"] else "misses"
    per_type = (
        "every type meets it"
        if report["meets_goal_per_type"]
        else f"below it: {', '.join(report['below_goal'])}"
    )
    console.print(
        f"sensitivity {report['sensitivity']:.1%}, specificity {report['specificity']:.1%} "
        f"({verdict} the pooled {GOAL:.0%} / {GOAL:.0%} goal; {per_type}); per rate: "
        + ", ".join(f"{r} Hz {v['correct']:.0%}" for r, v in report["per_rate"].items())
    )


# -- your own recordings -------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One CSV recording: samples and the labelled falls (impact time, segment bounds)."""

    name: str
    t: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    az: np.ndarray
    falls: np.ndarray
    fall_segments: list[tuple[float, float]]
    activity: str = ""
    """Activity or fall code of the whole trial (SisFall ``D01``..``F15``), else empty."""
    dataset: str = ""
    """Dataset whose codes ``activity`` uses, where they differ from SisFall's (``WEDA-FALL``)."""


def _is_fall_label(label: str) -> bool:
    lab = label.strip().lower()
    return lab == "1" or lab.startswith("fall")


def load_recording(path: Path, *, units: str = "m/s2") -> Recording:
    """Read a CSV with header ``time,ax,ay,az,label`` (one row per sample).

    ``time`` is in seconds; accelerations in m/s^2 (``units="g"`` multiplies by
    9.80665). ``label`` names the activity; rows whose label is ``1`` or starts with
    ``fall`` belong to a fall. Each contiguous run of fall rows is one fall, whose impact
    time is taken as the sample with the largest ``|a|`` in the run.
    """
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"time", "ax", "ay", "az", "label"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        rows = list(reader)
    try:
        cols = {k: np.array([float(r[k]) for r in rows]) for k in ("time", "ax", "ay", "az")}
    except ValueError as exc:
        raise ValueError(f"{path}: non-numeric value: {exc}") from exc
    scale = {"m/s2": 1.0, "g": 9.80665}.get(units)
    if scale is None:
        raise ValueError(f"units must be 'm/s2' or 'g', got {units!r}")
    ax, ay, az = (cols[k] * scale for k in ("ax", "ay", "az"))
    t = cols["time"]
    is_fall = np.array([_is_fall_label(r["label"]) for r in rows], dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], is_fall.astype(np.int8), [0]])))
    falls, segments = [], []
    mag = np.sqrt(ax * ax + ay * ay + az * az)
    for lo, hi in zip(edges[::2], edges[1::2], strict=True):
        falls.append(t[lo + int(np.nanargmax(mag[lo:hi]))])
        segments.append((float(t[lo]), float(t[hi - 1])))
    return Recording(path.name, t, ax, ay, az, np.array(falls, dtype=np.float64), segments)


def _numeric_rows(
    path: Path, lines: Iterable[tuple[int, list[str]]], ncols: int, convert: Callable[[str], float]
) -> np.ndarray:
    """The first ``ncols`` cells of every non-empty numbered line, as a float array."""
    rows = []
    for n, cells in lines:
        if not cells or cells == [""]:
            continue
        if len(cells) < ncols:
            raise ValueError(f"{path}:{n}: expected at least {ncols} columns, got {len(cells)}")
        try:
            rows.append([convert(c) for c in cells[:ncols]])
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: {exc}") from exc
    return np.array(rows, dtype=np.float64).reshape(-1, ncols)


SISFALL_NAME = re.compile(r"^([DF]\d\d)_(S[AE]\d\d)_R\d\d\.txt$")
"""SisFall file names: activity (``Dnn``) or fall (``Fnn``) code, subject, trial."""

SISFALL_G_PER_COUNT = 2 * 16 / 2**13
"""ADXL345 (columns 1-3): 13 bits over +-16 g (SisFall Readme.txt: ``(2*Range)/2^Resolution``)."""


def load_sisfall(path: Path, *, rate_hz: float = 200.0) -> Recording:
    """Read one SisFall trial (Sucerquia et al., Sensors 17(1):198, 2017).

    Each line holds nine comma-separated integer counts ending in ``;``; the first three
    are the ADXL345 accelerometer (x, y, z), converted with :data:`SISFALL_G_PER_COUNT`.
    Samples are regular at ``rate_hz`` (200 Hz in the dataset). SisFall labels whole
    trials, not the instant of the fall, so a fall trial (``Fnn``) is one fall whose
    segment is the whole trial (any event in it detects the fall; its impact time is the
    largest ``|a|``) and an activity trial (``Dnn``) has no fall.
    """
    m = SISFALL_NAME.match(path.name)
    if m is None:
        raise ValueError(f"{path}: not a SisFall trial name like F01_SA01_R01.txt")
    lines = enumerate(path.read_text().splitlines(), 1)
    counts = _numeric_rows(
        path, ((n, ln.strip().rstrip(";").split(",")) for n, ln in lines), 3, int
    )
    a = counts * (SISFALL_G_PER_COUNT * 9.80665)
    t = np.arange(counts.shape[0]) / rate_hz
    code = m.group(1)
    falls = np.empty(0)
    segments: list[tuple[float, float]] = []
    if code.startswith("F") and t.size:
        falls = t[[int(np.argmax(np.einsum("ij,ij->i", a, a)))]]
        segments = [(float(t[0]), float(t[-1]))]
    return Recording(path.name, t, a[:, 0], a[:, 1], a[:, 2], falls, segments, code)


WEDA_NAME = re.compile(r"^(U\d\d)_R(\d\d)_accel\.csv$")
"""WEDA-FALL accelerometer files: user and trial; the directory above names the code."""

WEDA_CODE = re.compile(r"^[DF]\d\d$")

WEDA_COLUMNS = ("accel_time_list", "accel_x_list", "accel_y_list", "accel_z_list")


def _is_weda(path: Path) -> bool:
    return WEDA_NAME.match(path.name) is not None and WEDA_CODE.match(path.parent.name) is not None


def load_weda(path: Path) -> Recording:
    """Read one WEDA-FALL accelerometer trial (github.com/joaojtmarques/WEDA-FALL).

    A wrist-worn Fitbit Sense (source and terms: ``docs/kernels/fall.md``); the file
    ``<CODE>/U<NN>_R<NN>_accel.csv`` holds a header
    ``accel_time_list,accel_x_list,accel_y_list,accel_z_list`` and one row per sample in
    m/s^2 (gravity included; the sensor clips at about +-39.2 m/s^2, 4 g). The watch
    delivers its samples in bursts: about four rows stamped within a few milliseconds
    every ~0.1 s, so the stamps are not the sampling instants. The samples are taken as
    evenly spaced over the recorded span (first to last stamp), ~40 Hz in the files seen.
    Like SisFall, WEDA-FALL labels whole trials: a fall trial (``Fnn``) is one fall whose
    segment is the whole trial, an activity trial (``Dnn``) has none.
    """
    if not _is_weda(path):
        raise ValueError(f"{path}: not a WEDA-FALL trial like F01/U01_R01_accel.csv")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:4]) != WEDA_COLUMNS:
            raise ValueError(f"{path}: expected header {','.join(WEDA_COLUMNS)}, got {header}")
        data = _numeric_rows(path, enumerate(reader, 2), 4, float)
    if data.shape[0] < 2 or not data[-1, 0] > data[0, 0]:
        raise ValueError(f"{path}: needs at least 2 samples spanning a positive time")
    n = data.shape[0]
    t = data[0, 0] + np.arange(n) * ((data[-1, 0] - data[0, 0]) / (n - 1))
    a = data[:, 1:]
    code = path.parent.name
    falls = np.empty(0)
    segments: list[tuple[float, float]] = []
    if code.startswith("F"):
        falls = t[[int(np.argmax(np.einsum("ij,ij->i", a, a)))]]
        segments = [(float(t[0]), float(t[-1]))]
    m = WEDA_NAME.match(path.name)
    assert m is not None
    name = f"{code}_{m.group(1)}_R{m.group(2)}"
    return Recording(name, t, a[:, 0], a[:, 1], a[:, 2], falls, segments, code, "WEDA-FALL")


MOBIFALL_NAME = re.compile(r"^([A-Z]{3})_acc_(\d+)_(\d+)\.txt$")
"""MobiFall / MobiAct accelerometer files: ``<CODE>_acc_<subject>_<trial>.txt``."""

MOBIFALL_FALLS = frozenset({"FOL", "FKL", "BSC", "SDL"})
"""MobiFall's fall codes (forward-lying, front-knees-lying, back-sitting-chair, sideward-lying);
every other code (STD, WAL, JOG, JUM, STU, STN, SCH, CSI, CSO, ...) is a daily activity."""


def load_mobifall(path: Path) -> Recording:
    """Read one MobiFall v2.0 accelerometer trial (Vavoulas et al., 2014; see docs).

    A smartphone (Samsung Galaxy S3) in a trouser pocket, in any orientation. The file
    ``<CODE>_acc_<subject>_<trial>.txt`` holds ``#`` comment lines, an ``@DATA`` line,
    then one ``timestamp(ns), x, y, z`` row per sample in m/s^2 (gravity included),
    sampled irregularly at ~87-100 Hz. The stamps are the sampling instants and are used
    as they are (seconds from the first). Whole-trial labels: a fall trial (a code in
    :data:`MOBIFALL_FALLS`) is one fall whose segment is the whole trial.
    """
    m = MOBIFALL_NAME.match(path.name)
    if m is None:
        raise ValueError(f"{path}: not a MobiFall trial name like FOL_acc_1_1.txt")
    text = path.read_text().splitlines()
    start = next((i + 1 for i, ln in enumerate(text) if ln.strip() == "@DATA"), 0)
    lines = (
        (n, ln.split(","))
        for n, ln in enumerate(text[start:], start + 1)
        if ln.strip() and not ln.lstrip().startswith("#")
    )
    data = _numeric_rows(path, lines, 4, float)
    if data.shape[0] < 2:
        raise ValueError(f"{path}: needs at least 2 samples")
    t = (data[:, 0] - data[0, 0]) * 1e-9
    a = data[:, 1:]
    code = m.group(1)
    falls = np.empty(0)
    segments: list[tuple[float, float]] = []
    if code in MOBIFALL_FALLS:
        falls = t[[int(np.argmax(np.einsum("ij,ij->i", a, a)))]]
        segments = [(float(t[0]), float(t[-1]))]
    name = f"{code}_S{int(m.group(2)):02d}_R{int(m.group(3)):02d}"
    return Recording(name, t, a[:, 0], a[:, 1], a[:, 2], falls, segments, code, "MobiFall")


PEAK_WINDOW_S = 2.0
"""A fall trial also counts as detected *near the peak* when an event lies within this many
seconds of its largest ``|a|`` (whole-trial labels accept any event in the trial, e.g. one
caused by lowering the arm before the fall; a fall's hits spread over ~1-2 s)."""


def _recording_files(directory: Path) -> list[Path]:
    """``*.csv`` directly in ``directory``; SisFall, WEDA-FALL and MobiFall trials below it."""
    own = [p for p in sorted(directory.glob("*.csv")) if not _is_weda(p)]
    sisfall = [p for p in directory.rglob("*.txt") if SISFALL_NAME.match(p.name)]
    weda = [p for p in directory.rglob("*_accel.csv") if _is_weda(p)]
    mobifall = [p for p in directory.rglob("*_acc_*.txt") if MOBIFALL_NAME.match(p.name)]
    return (
        own
        + sorted(sisfall, key=lambda p: p.name)
        + sorted(weda, key=lambda p: (p.parent.name, p.name))
        + sorted(mobifall, key=lambda p: p.name)
    )


def _load_any(path: Path, opts: QualityOptions) -> Recording:
    if _is_weda(path):
        return load_weda(path)
    if path.suffix == ".csv":
        return load_recording(path, units=opts.units)
    if MOBIFALL_NAME.match(path.name):
        return load_mobifall(path)
    return load_sisfall(path, rate_hz=opts.sisfall_rate_hz)


def wilson_interval(ok: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of the proportion ``ok / n`` (95 % for the default ``z``)."""
    if n <= 0:
        return (0.0, 1.0)
    p = ok / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, float(centre - half)), min(1.0, float(centre + half)))


def _per_code(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sensitivity per fall code, specificity per activity code (whole-trial labels)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in files.values():
        code = rec["activity"]
        if not code:
            continue
        key = f"{rec['dataset']} {code}" if rec.get("dataset") else code
        row = out.setdefault(key, {"n": 0, "ok": 0})
        row["n"] += 1
        is_fall = rec["falls"] > 0
        row["ok"] += int(rec["detected"] == rec["falls"] if is_fall else not rec["events_s"])
        row["metric"] = "sensitivity" if is_fall else "specificity"
        if is_fall:
            near = rec.get("detected_near_peak", rec["detected"])
            row["ok_near_peak"] = row.get("ok_near_peak", 0) + int(near == rec["falls"])
    for row in out.values():
        row["value"] = row["ok"] / row["n"]
        row["ci95"] = list(wilson_interval(row["ok"], row["n"]))
    return dict(sorted(out.items()))


def _pooled_codes(per_type: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sensitivity over all fall trials and specificity over all activity trials, per dataset."""
    out: dict[str, dict[str, Any]] = {}
    for key, row in per_type.items():
        dataset = key.rsplit(" ", 1)[0] if " " in key else "SisFall"
        pooled = out.setdefault(
            f"{dataset} {row['metric']}", {"n": 0, "ok": 0, "metric": row["metric"]}
        )
        pooled["n"] += row["n"]
        pooled["ok"] += row["ok"]
        if "ok_near_peak" in row:
            pooled["ok_near_peak"] = pooled.get("ok_near_peak", 0) + row["ok_near_peak"]
    for row in out.values():
        row["value"] = row["ok"] / row["n"]
        row["ci95"] = list(wilson_interval(row["ok"], row["n"]))
    return dict(sorted(out.items()))


def recordings_section(opts: QualityOptions) -> dict[str, Any]:
    """Falls detected and false alarms on every recording in ``opts.recordings``.

    ``*.csv`` files follow :func:`load_recording`, SisFall trials :func:`load_sisfall`,
    WEDA-FALL trials :func:`load_weda`, MobiFall trials :func:`load_mobifall`.
    """
    assert opts.recordings is not None
    files = _recording_files(opts.recordings)
    out: dict[str, Any] = {"directory": str(opts.recordings), "files": {}}
    table = Table(title=f"Recordings in {opts.recordings}")
    for col in ("file", "samples", "falls", "detected", "false alarms"):
        table.add_column(col, justify="left" if col == "file" else "right")
    tot_falls = tot_hit = tot_false = 0
    for f in files:
        rec = _load_any(f, opts)
        if rec.name in out["files"]:
            raise ValueError(
                f"{f}: a second trial named {rec.name} (point --recordings at one copy, e.g. "
                "WEDA-FALL's dataset/50Hz rather than dataset/, whose rate folders repeat names)"
            )
        events = _detect(rec.t, rec.ax, rec.ay, rec.az, opts.fall_preset)
        hit, extra = score_segments(events, rec.fall_segments, opts.tolerance_s)
        near, _ = score_trace(events, rec.falls, PEAK_WINDOW_S)
        out["files"][rec.name] = {
            "samples": int(rec.t.size),
            "falls": int(rec.falls.size),
            "detected": hit,
            "detected_near_peak": near,
            "false_alarms": extra,
            "events_s": events.tolist(),
            "activity": rec.activity,
            "dataset": rec.dataset,
        }
        tot_falls, tot_hit, tot_false = tot_falls + rec.falls.size, tot_hit + hit, tot_false + extra
        table.add_row(rec.name, str(rec.t.size), str(rec.falls.size), str(hit), str(extra))
    out["falls"], out["detected"], out["false_alarms"] = tot_falls, tot_hit, tot_false
    opts.console.print(table)
    out["per_type"] = _per_code(out["files"])
    if out["per_type"]:
        by_type = Table(title="Recordings per activity / fall code (whole-trial labels)")
        for col in ("code", "metric", "n", "value", "Wilson 95 %", "near peak"):
            by_type.add_column(col, justify="left" if col in ("code", "metric") else "right")
        out["pooled"] = _pooled_codes(out["per_type"])
        for code, row in [*out["per_type"].items(), *out["pooled"].items()]:
            lo, hi = row["ci95"]
            near_txt = f"{row['ok_near_peak']}/{row['n']}" if "ok_near_peak" in row else ""
            by_type.add_row(
                code,
                row["metric"],
                str(row["n"]),
                f"{row['value']:.0%}",
                f"{lo:.0%}-{hi:.0%}",
                near_txt,
            )
        opts.console.print(by_type)
    return out


# -- command ---------------------------------------------------------------------------------


def anomaly_section(opts: QualityOptions) -> dict[str, Any]:
    """Anomaly precision/recall/F1 per synthetic scenario and on the project's simulators.

    Seeds start at ``opts.seed`` (held out from the scorer's tuning seeds 0-2).
    """
    from cityhealth.bench.quality_anomaly import (
        anomaly_quality_report,
        format_report,
        simulated_start,
    )

    report = anomaly_quality_report(
        seeds=tuple(range(opts.seed, opts.seed + opts.seeds)),
        simulated_hours=opts.anomaly_simulated_hours,
        simulated_start=simulated_start(opts.anomaly_start_hour),
    )
    opts.console.print(format_report(report), markup=False, highlight=False)
    return report


SECTIONS: dict[str, Callable[[QualityOptions], dict[str, Any]]] = {
    "fall": fall_section,
    "anomaly": anomaly_section,
}
"""Report sections, run in order; add new ones here (see the module docstring)."""


def run_quality(opts: QualityOptions, only: list[str] | None = None) -> dict[str, Any]:
    """Run the selected sections (all by default) and return the combined report."""
    names = only or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown sections {unknown}; available: {list(SECTIONS)}")
    return {name: SECTIONS[name](opts) for name in names}


def register(bench_app: typer.Typer) -> None:
    """Attach ``cityhealth bench quality``."""

    @bench_app.command("quality")
    def quality(
        seed: Annotated[int, typer.Option(help="Base seed of the reporting corpus.")] = 1000,
        seeds: Annotated[int, typer.Option(min=1, help="Traces per cell of the corpus.")] = 3,
        rates: Annotated[str, typer.Option(help="Comma-separated sampling rates (Hz).")] = ",".join(
            f"{r:g}" for r in RATES
        ),
        tolerance: Annotated[
            float, typer.Option(min=0.0, help="Max |event - impact| for a hit (s).")
        ] = 1.0,
        recordings: Annotated[
            Path | None,
            typer.Option(
                help="Directory of CSV recordings (time,ax,ay,az,label), SisFall trial "
                "files (F01_SA01_R01.txt ...), WEDA-FALL files (F01/U01_R01_accel.csv ...) "
                "and/or MobiFall files (FOL_acc_1_1.txt ...) to add."
            ),
        ] = None,
        sisfall_rate: Annotated[
            float, typer.Option(min=1.0, help="Sampling rate of SisFall files (Hz).")
        ] = 200.0,
        units: Annotated[
            str, typer.Option(help="Units of the CSV recordings: m/s2 or g.")
        ] = "m/s2",
        preset: Annotated[
            str,
            typer.Option(help="Fall detector preset: balanced, sensitive or specific."),
        ] = "balanced",
        anomaly_start_hour: Annotated[
            float | None,
            typer.Option(
                min=0.0,
                max=24.0,
                help="Local hour at which the anomaly section's simulated hour starts "
                "(smoke city; default 23:13, the wearers' night; e.g. 10 for the day model).",
            ),
        ] = None,
        only: Annotated[
            list[str] | None, typer.Option(help=f"Sections to run (default all: {list(SECTIONS)}).")
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Also write the report as JSON here.")
        ] = None,
    ) -> None:
        """Detection quality per activity/fall type on labelled simulated (and your) data."""
        try:
            rate_values = tuple(float(r) for r in rates.split(",") if r.strip())
        except ValueError as exc:
            raise typer.BadParameter(f"--rates: {exc}") from exc
        if not rate_values or min(rate_values) <= 0:
            raise typer.BadParameter("--rates must list positive rates")
        if recordings is not None and not recordings.is_dir():
            raise typer.BadParameter(f"--recordings: {recordings} is not a directory")
        opts = QualityOptions(
            seed=seed,
            seeds=seeds,
            rates=rate_values,
            tolerance_s=tolerance,
            recordings=recordings,
            units=units,
            sisfall_rate_hz=sisfall_rate,
            fall_preset=preset,
            anomaly_start_hour=anomaly_start_hour,
        )
        try:
            report = run_quality(opts, only)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        if json_out is not None:
            json_out.write_text(json.dumps(report, indent=2, default=float) + "\n")
