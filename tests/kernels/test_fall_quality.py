"""kernels.fall on labelled simulated data, and the ``cityhealth bench quality`` report."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cityhealth.bench.quality import (
    SISFALL_G_PER_COUNT,
    QualityOptions,
    fall_section,
    load_mobifall,
    load_recording,
    load_sisfall,
    load_weda,
    run_quality,
    score_segments,
    score_trace,
    wilson_interval,
)
from cityhealth.cli import app
from kernels.fall import FallDetector, detect
from simulators.motion import PLACEMENTS, scenario, synthesize

# The detector's defaults were chosen on corpus seed 1; these tests use other seeds.


@pytest.mark.parametrize("fall", ["fall_forward", "fall_backward", "fall_lateral"])
@pytest.mark.parametrize("placement", ["waist", "pendant"])
def test_trunk_falls_detected_at_every_rate(fall: str, placement: str) -> None:
    for k, rate in enumerate((20.0, 25.0, 50.0, 100.0, 200.0)):
        tr = synthesize(fall, rate_hz=rate, duration_s=10, placement=placement,
                        rng=np.random.default_rng([77, k]), jitter=0.3)  # fmt: skip
        ev = detect(tr.t, tr.ax, tr.ay, tr.az)
        assert ev.size == 1, (rate, ev)
        assert abs(ev[0] - tr.falls[0]) < 1.0


@pytest.mark.parametrize(
    ("activity", "max_alarms"),
    [
        ("walking", 0),
        ("jogging", 0),
        ("jumping", 0),
        ("stairs", 0),
        # soft, controlled transitions: the soft-impact path costs a few percent here on the
        # tuning corpus (docs/kernels/fall.md), so 1 of these 24 traces may alarm
        ("lying_down_bed", 1),
        ("sitting_down", 1),
    ],
)
def test_few_false_alarms_on_daily_activities(activity: str, max_alarms: int) -> None:
    alarms = []
    for k, placement in enumerate(PLACEMENTS):
        for rate in (20.0, 100.0):
            for s in range(3):
                rng = np.random.default_rng([78, k, int(rate), s])
                tr = synthesize(activity, rate_hz=rate, duration_s=12, placement=placement,
                                rng=rng, jitter=0.3)  # fmt: skip
                if detect(tr.t, tr.ax, tr.ay, tr.az).size:
                    alarms.append((placement, rate, s))
    assert len(alarms) <= max_alarms, alarms


def test_sitting_down_hard_is_not_a_fall() -> None:
    """Dropping onto a seat: for a thigh or a wrist it is an impact, a 60-90 degree turn
    and stillness, like a fall; but the segment had turned *before* the free fall began
    (controlled lowering, then the drop). With the cue off (``drop_frac`` 0) most of
    these traces alarm."""
    alarms = {"balanced": 0, "cue off": 0}
    for k, placement in enumerate(("pocket", "wrist")):
        for j, rate in enumerate((20.0, 25.0, 50.0, 100.0, 200.0)):
            for s in range(4):
                tr = synthesize("sitting_down_hard", rate_hz=rate, duration_s=10,
                                placement=placement, rng=np.random.default_rng([95, k, j, s]),
                                jitter=0.3)  # fmt: skip
                dev = np.zeros(tr.t.size, np.int64)
                for name, params in (("balanced", {}), ("cue off", {"drop_frac": 0.0})):
                    _, ev = FallDetector(1, **params).update(dev, tr.t, tr.ax, tr.ay, tr.az)
                    alarms[name] += int(ev.size > 0)
    assert alarms["balanced"] <= 2, alarms  # of 40
    assert alarms["cue off"] >= 10, alarms


def test_slumps_from_a_chair_detected() -> None:
    """Soft falls without free fall: the soft-impact path's reason to exist."""
    hits = {"balanced": 0, "soft path off": 0}
    for k, placement in enumerate(PLACEMENTS):
        for j, rate in enumerate((20.0, 25.0, 50.0, 100.0, 200.0)):
            tr = synthesize("fall_slump_chair", rate_hz=rate, duration_s=10, placement=placement,
                            rng=np.random.default_rng([79, k, j]), jitter=0.3)  # fmt: skip
            dev = np.zeros(tr.t.size, np.int64)
            for name, params in (("balanced", {}), ("soft path off", {"soft_impact_g": 1.6})):
                _, ev = FallDetector(1, **params).update(dev, tr.t, tr.ax, tr.ay, tr.az)
                hits[name] += int(ev.size == 1 and abs(ev[0] - tr.falls[0]) < 1.0)
    assert hits["balanced"] >= 17, hits  # of 20
    assert hits["soft path off"] < hits["balanced"], hits


def test_streamed_devices_in_one_second_messages() -> None:
    """Several devices' long scenarios, sent as interleaved 1 s messages: each fall once."""
    plan = ["walking", "fall_forward", "lying", "standing", "jumping", "fall_lateral", "lying"]
    traces = [
        scenario(plan, rate_hz=rate, placement="waist", rng=np.random.default_rng(80 + d))
        for d, rate in enumerate((20.0, 50.0, 100.0))
    ]
    msgs = []
    for d, tr in enumerate(traces):
        cut = np.searchsorted(tr.t, np.arange(0.0, tr.t[-1] + 1.0, 1.0))
        msgs += [(d, a, b) for a, b in itertools.pairwise(cut) if b > a]
    msgs.sort(key=lambda m: (traces[m[0]].t[m[1]], m[0]))  # arrival order
    det = FallDetector(len(traces))
    got: list[list[float]] = [[] for _ in traces]
    for start in range(0, len(msgs), 5):  # five messages per batch
        batch = msgs[start : start + 5]
        device = np.concatenate([np.full(b - a, d, np.int64) for d, a, b in batch])
        cols = [
            np.concatenate([getattr(traces[d], k)[a:b] for d, a, b in batch])
            for k in ("t", "ax", "ay", "az")
        ]
        ev_d, ev_t = det.update(device, *cols)
        for d, t in zip(ev_d, ev_t, strict=True):
            got[d].append(t)
    for d, tr in enumerate(traces):
        assert len(got[d]) == 2
        np.testing.assert_allclose(got[d], tr.falls, atol=1.0)
        np.testing.assert_array_equal(got[d], detect(tr.t, tr.ax, tr.ay, tr.az))


def test_scoring_helpers() -> None:
    assert score_trace(np.array([1.0, 5.2, 9.0]), np.array([5.0]), 1.0) == (1, 2)
    assert score_trace(np.array([]), np.array([5.0]), 1.0) == (0, 0)
    assert score_trace(np.array([4.5, 4.6]), np.array([5.0]), 1.0) == (1, 1)
    assert score_segments(np.array([3.0, 20.0]), [(2.5, 4.0), (10.0, 11.0)], 0.5) == (1, 1)


def test_fall_section_report_shape() -> None:
    opts = QualityOptions(seed=5, seeds=1, rates=(50.0,), duration_s=10.0)
    rep = fall_section(opts)
    assert rep["corpus"]["traces"] == 14 * 4
    assert set(rep["per_type"]) >= {"fall_slump_chair", "sitting_down_hard", "jumping"}
    for row in rep["per_type"].values():
        assert 0.0 <= row["value"] <= 1.0 and row["n"] == 4
        assert set(row["per_placement"]) == set(PLACEMENTS)
    assert 0.5 < rep["sensitivity"] <= 1.0 and 0.5 < rep["specificity"] <= 1.0
    with pytest.raises(ValueError, match="unknown sections"):
        run_quality(opts, ["nope"])


def _write_csv(path: Path, t: np.ndarray, a: np.ndarray, labels: list[str]) -> None:
    lines = ["time,ax,ay,az,label"]
    lines += [
        f"{ti!r},{x!r},{y!r},{z!r},{lab}"
        for ti, (x, y, z), lab in zip(t.tolist(), a.tolist(), labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def _assert_rejects(loader: Callable[[Path], object], path: Path, text: str, match: str) -> None:
    """``loader`` raises ``ValueError`` on a file holding ``text``; the file is removed after."""
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        loader(path)
    path.unlink()


def test_recordings_loader_and_cli(tmp_path: Path) -> None:
    tr = scenario(["walking", "fall_backward", "lying"], rate_hz=50, placement="pocket",
                  rng=np.random.default_rng(81))  # fmt: skip
    labels = ["fall" if abs(t - tr.falls[0]) < 0.5 else "adl" for t in tr.t]
    a = np.stack([tr.ax, tr.ay, tr.az], axis=1) / 9.80665
    _write_csv(tmp_path / "rec.csv", tr.t, a, labels)
    rec = load_recording(tmp_path / "rec.csv", units="g")
    np.testing.assert_allclose(rec.ax, tr.ax, rtol=1e-12)
    assert rec.falls.size == 1 and abs(rec.falls[0] - tr.falls[0]) < 0.5
    _assert_rejects(load_recording, tmp_path / "bad.csv", "t,x\n1,2\n", "expected columns")

    out = tmp_path / "q.json"
    res = CliRunner().invoke(app, [
        "bench", "quality", "--seeds", "1", "--rates", "50", "--recordings", str(tmp_path),
        "--units", "g", "--json", str(out),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())["fall"]
    assert rep["recordings"]["falls"] == 1
    assert rep["recordings"]["detected"] == 1 and rep["recordings"]["false_alarms"] == 0
    assert "sensitivity" in res.output
    bad = CliRunner().invoke(app, ["bench", "quality", "--rates", "fast"])
    assert bad.exit_code != 0


def test_cli_preset_changes_the_detector(tmp_path: Path) -> None:
    """``--preset specific`` raises the impact bar: fewer slumps, recorded in the report."""
    reports = {}
    for preset in ("balanced", "specific"):
        out = tmp_path / f"{preset}.json"
        res = CliRunner().invoke(app, [
            "bench", "quality", "--seed", "7", "--seeds", "1", "--rates", "50,100",
            "--preset", preset, "--json", str(out),
        ])  # fmt: skip
        assert res.exit_code == 0, res.output
        reports[preset] = json.loads(out.read_text())["fall"]
        assert reports[preset]["corpus"]["preset"] == preset
        assert isinstance(reports[preset]["meets_goal_per_type"], bool)
    slump = {p: r["per_type"]["fall_slump_chair"]["value"] for p, r in reports.items()}
    assert slump["specific"] < slump["balanced"], slump
    bad = CliRunner().invoke(app, ["bench", "quality", "--preset", "paranoid", "--rates", "50"])
    assert bad.exit_code != 0 and "unknown preset" in bad.output


@pytest.mark.parametrize("before", ["jogging", "stairs"])
def test_stopping_after_strides_is_not_a_fall(before: str) -> None:
    """Jogging or climbing stairs, then at once sitting or standing still in another
    orientation: the last stride is an impact above 1.45-1.6 g followed by a turn and
    stillness, the three fall cues. Before the prior-activity cue (``prior_ratio``) 31 of
    120 such jogging traces and 11 of 120 stair traces alarmed; a fall's impact stands
    out from the strides before it, a stride does not."""
    alarms = []
    for k, placement in enumerate(PLACEMENTS):
        for rate in (20.0, 50.0, 100.0):
            for after in ("sitting", "standing"):
                rng = np.random.default_rng([92, k, int(rate), len(after)])
                tr = scenario([before, after], rate_hz=rate, placement=placement, rng=rng,
                              jitter=0.3)  # fmt: skip
                if detect(tr.t, tr.ax, tr.ay, tr.az).size:
                    alarms.append((placement, rate, after))
    assert alarms == []


def _falls_after_strides(**params: float) -> tuple[int, list[tuple[str, str, str, float]]]:
    """Standing falls (forward, backward, lateral) played right after jogging or stairs,
    all placements, 20/50/100 Hz: (traces, the missed ones)."""
    missed = []
    n = 0
    for before in ("jogging", "stairs"):
        for fall in ("fall_forward", "fall_backward", "fall_lateral"):
            for k, placement in enumerate(PLACEMENTS):
                for rate in (20.0, 50.0, 100.0):
                    for rep in range(2):
                        seed = [93, k, int(rate), rep, len(before), len(fall)]
                        tr = scenario([before, fall], rate_hz=rate, placement=placement,
                                      rng=np.random.default_rng(seed), jitter=0.3)  # fmt: skip
                        det = FallDetector(1, **params)
                        _, ev = det.update(np.zeros(tr.t.size, np.int64), tr.t, tr.ax, tr.ay, tr.az)
                        n += 1
                        if not np.any(np.abs(ev - tr.falls[0]) <= 1.0):
                            missed.append((before, fall, placement, rate))
    return n, missed


def test_a_fall_soon_after_strides_is_still_a_fall() -> None:
    """The activity before a fall is judged twice: 1.5-3.5 s before the crossing (the
    prior-activity cue) and over the ``near_s`` (1.5 s) up to it, by the second largest
    snapshot peak there; only an impact no louder than *both* is a stride. Ongoing gait
    is loud in several snapshots right up to its next stride; a fall's impact has its
    descent there, with one loud moment at most (stumble, first hit). With the first
    window alone (the detector before ``near_s``), 23 of these 144 traces were missed
    (22 after jogging: pocket 13, waist 6, pendant 3): a fall 2-3.5 s after jogging
    stopped was taken for a stride. Now 2 (pocket backward falls at 20 Hz, missed
    before too). The turned-then-dropped cue (``drop_frac``) costs one more, a pendant
    backward fall at 20 Hz after jogging whose free fall began when 34 % of its turn
    was done (the cue's limit is 30 %): 3."""
    n, missed = _falls_after_strides()
    assert n == 144
    assert len(missed) <= 3, missed


def _write_sisfall(path: Path, a_ms2: np.ndarray) -> None:
    """A synthetic trial in SisFall's layout: 9 integer columns, ``;`` ends each line."""
    counts = np.rint(a_ms2 / 9.80665 / SISFALL_G_PER_COUNT).astype(int)
    gyro_mma = np.zeros((counts.shape[0], 6), dtype=int)
    rows = np.concatenate([counts, gyro_mma], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(f"{v:4d}" for v in r) + ";\n" for r in rows.tolist()))


def _quality_recordings(directory: Path) -> dict[str, Any]:
    """``fall.recordings`` of ``cityhealth bench quality --recordings directory`` (small corpus)."""
    out = directory / "q.json"
    res = CliRunner().invoke(app, [
        "bench", "quality", "--seeds", "1", "--rates", "50", "--only", "fall",
        "--recordings", str(directory), "--json", str(out),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    recs: dict[str, Any] = json.loads(out.read_text())["fall"]["recordings"]
    out.unlink()
    return recs


def test_sisfall_loader_and_per_code_report(tmp_path: Path) -> None:
    """Synthetic (simulated) trials written in SisFall's format, not real data."""
    fall = synthesize("fall_forward", rate_hz=200, duration_s=12, placement="waist",
                      rng=np.random.default_rng(91), jitter=0.0)  # fmt: skip
    walk = synthesize("walking", rate_hz=200, duration_s=12, placement="waist",
                      rng=np.random.default_rng(92), jitter=0.0)  # fmt: skip
    for name, tr in (("SA01/F01_SA01_R01.txt", fall), ("SE02/D01_SE02_R01.txt", walk)):
        _write_sisfall(tmp_path / name, np.stack([tr.ax, tr.ay, tr.az], axis=1))
    (tmp_path / "notes.txt").write_text("not a trial\n")  # ignored: not a SisFall name

    rec = load_sisfall(tmp_path / "SA01/F01_SA01_R01.txt")
    assert rec.activity == "F01" and rec.t.size == fall.t.size
    np.testing.assert_allclose(np.diff(rec.t), 1 / 200)
    # one count is 1/256 g: the round trip is exact to half a count
    np.testing.assert_allclose(rec.az, fall.az, atol=0.5 * SISFALL_G_PER_COUNT * 9.80665)
    assert rec.fall_segments == [(0.0, rec.t[-1])]
    assert abs(rec.falls[0] - fall.falls[0]) < 0.5
    half = load_sisfall(tmp_path / "SA01/F01_SA01_R01.txt", rate_hz=100)
    assert half.t[-1] == pytest.approx(2 * rec.t[-1])
    with pytest.raises(ValueError, match="SisFall trial name"):
        load_sisfall(tmp_path / "notes.txt")
    _assert_rejects(load_sisfall, tmp_path / "F02_SA01_R01.txt", "1,2;\n", "at least 3 columns")

    recs = _quality_recordings(tmp_path)
    assert set(recs["files"]) == {"F01_SA01_R01.txt", "D01_SE02_R01.txt"}
    lo, hi = wilson_interval(1, 1)
    assert recs["per_type"]["F01"] == {"n": 1, "ok": 1, "metric": "sensitivity", "value": 1.0,
                                       "ok_near_peak": 1, "ci95": [lo, hi]}  # fmt: skip
    assert recs["per_type"]["D01"] == {"n": 1, "ok": 1, "metric": "specificity", "value": 1.0,
                                       "ci95": [lo, hi]}  # fmt: skip
    assert recs["pooled"]["SisFall sensitivity"]["n"] == 1


def test_wilson_interval() -> None:
    """Reference values of the Wilson score interval (z = 1.96)."""
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _write_weda(path: Path, a_ms2: np.ndarray, rate_hz: float) -> None:
    """A synthetic trial in WEDA-FALL's layout: bursts of 4 rows stamped 2 ms apart."""
    n = a_ms2.shape[0]
    burst = np.arange(n) // 4
    stamps = burst * (4 / rate_hz) + (np.arange(n) % 4) * 0.002
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{t:.3f},{x:.1f},{y:.1f},{z:.1f}" for t, (x, y, z) in zip(stamps, a_ms2, strict=True)]
    path.write_text("accel_time_list,accel_x_list,accel_y_list,accel_z_list\n" + "\n".join(rows))


def test_weda_loader_and_per_code_report(tmp_path: Path) -> None:
    """Synthetic (simulated) trials written in WEDA-FALL's format, not real data."""
    fall = synthesize("fall_forward", rate_hz=40, duration_s=12, placement="wrist",
                      rng=np.random.default_rng(93), jitter=0.0)  # fmt: skip
    walk = synthesize("walking", rate_hz=40, duration_s=12, placement="wrist",
                      rng=np.random.default_rng(94), jitter=0.0)  # fmt: skip
    root = tmp_path / "dataset" / "50Hz"
    for name, tr in (("F01/U01_R01_accel.csv", fall), ("D01/U02_R03_accel.csv", walk)):
        _write_weda(root / name, np.stack([tr.ax, tr.ay, tr.az], axis=1), 40.0)
    (root / "F01" / "U01_R01_gyro.csv").write_text("not an accelerometer file\n")  # ignored

    rec = load_weda(root / "F01/U01_R01_accel.csv")
    assert (rec.name, rec.activity, rec.dataset) == ("F01_U01_R01", "F01", "WEDA-FALL")
    assert rec.t.size == fall.t.size
    # the bursts' stamps are replaced by even spacing over the recorded span
    np.testing.assert_allclose(np.diff(rec.t), rec.t[-1] / (rec.t.size - 1))
    assert abs(rec.t[-1] - fall.t[-1]) < 0.1
    np.testing.assert_allclose(rec.az, fall.az, atol=0.05 + 1e-9)
    assert rec.fall_segments == [(0.0, rec.t[-1])] and rec.falls.size == 1
    assert load_weda(root / "D01/U02_R03_accel.csv").falls.size == 0
    with pytest.raises(ValueError, match="not a WEDA-FALL trial"):
        load_weda(root / "F01" / "U01_R01_gyro.csv")
    (root / "F02").mkdir()
    _assert_rejects(load_weda, root / "F02" / "U01_R01_accel.csv", "t,x,y,z\n0,1,2,3\n",
                    "expected header")  # fmt: skip
    _assert_rejects(load_weda, root / "F02" / "U01_R01_accel.csv",
                    "accel_time_list,accel_x_list,accel_y_list,accel_z_list\n0,1,2,3\n",
                    "at least 2 samples")  # fmt: skip
    (root / "F02").rmdir()

    recs = _quality_recordings(tmp_path)
    assert set(recs["files"]) == {"F01_U01_R01", "D01_U02_R03"}
    assert set(recs["per_type"]) == {"WEDA-FALL F01", "WEDA-FALL D01"}
    row = recs["per_type"]["WEDA-FALL F01"]
    assert row["metric"] == "sensitivity" and row["n"] == 1
    assert row["ci95"] == list(wilson_interval(row["ok"], 1))
    assert set(recs["pooled"]) == {"WEDA-FALL sensitivity", "WEDA-FALL specificity"}

    # the dataset's other rate folders repeat the names: refused, not counted twice
    copy = tmp_path / "dataset" / "25Hz" / "D01" / "U02_R03_accel.csv"
    copy.parent.mkdir(parents=True)
    copy.write_text((root / "D01/U02_R03_accel.csv").read_text())
    res = CliRunner().invoke(app, [
        "bench", "quality", "--seeds", "1", "--rates", "50", "--only", "fall",
        "--recordings", str(tmp_path),
    ])  # fmt: skip
    assert res.exit_code != 0 and "second trial named D01_U02_R03" in res.output


def _write_mobifall(path: Path, t_s: np.ndarray, a_ms2: np.ndarray, code: str) -> None:
    """A synthetic trial in MobiFall's layout: comments, ``@DATA``, ``ns, x, y, z`` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ns = 1_913_880_219_000 + np.round(t_s * 1e9).astype(np.int64)
    rows = [f"{t}, {x:.4f}, {y:.4f}, {z:.4f}" for t, (x, y, z) in zip(ns, a_ms2, strict=True)]
    head = f"#timestamp(ns),x,y,z(m/s^2)\n#Activity: {code}\n\n@DATA\n"
    path.write_text(head + "\n".join(rows) + "\n")


def test_mobifall_loader_and_per_code_report(tmp_path: Path) -> None:
    """Synthetic (simulated) trials written in MobiFall's format, not real data."""
    fall = synthesize("fall_slump_chair", rate_hz=87, duration_s=10, placement="pocket",
                      rng=np.random.default_rng(95), jitter=0.3)  # fmt: skip
    sit = synthesize("sitting_down", rate_hz=87, duration_s=6, placement="pocket",
                     rng=np.random.default_rng(96), jitter=0.3)  # fmt: skip
    root = tmp_path / "sub1"
    for name, tr in (("FALLS/BSC/BSC_acc_1_2.txt", fall), ("ADL/SCH/SCH_acc_1_1.txt", sit)):
        _write_mobifall(root / name, tr.t, np.stack([tr.ax, tr.ay, tr.az], axis=1), name[-15:-12])
    (root / "FALLS/BSC/BSC_gyro_1_2.txt").write_text("@DATA\n1, 2, 3, 4\n")  # ignored

    rec = load_mobifall(root / "FALLS/BSC/BSC_acc_1_2.txt")
    assert (rec.name, rec.activity, rec.dataset) == ("BSC_S01_R02", "BSC", "MobiFall")
    # the irregular stamps are kept (seconds from the first), values to 1e-4 m/s^2
    np.testing.assert_allclose(rec.t, fall.t - fall.t[0], atol=1e-9)
    np.testing.assert_allclose(rec.ax, fall.ax, atol=1e-4)
    assert rec.fall_segments == [(0.0, rec.t[-1])] and rec.falls.size == 1
    assert load_mobifall(root / "ADL/SCH/SCH_acc_1_1.txt").falls.size == 0  # not a fall code
    with pytest.raises(ValueError, match="not a MobiFall trial"):
        load_mobifall(root / "FALLS/BSC/BSC_gyro_1_2.txt")
    _assert_rejects(load_mobifall, tmp_path / "FOL_acc_2_1.txt", "@DATA\n1, 2\n",
                    "at least 4 columns")  # fmt: skip
    _assert_rejects(load_mobifall, tmp_path / "FOL_acc_2_1.txt", "@DATA\n1, 2, 3, 4\n",
                    "at least 2 samples")  # fmt: skip

    recs = _quality_recordings(tmp_path)
    assert set(recs["files"]) == {"BSC_S01_R02", "SCH_S01_R01"}
    # BSC does not start with F: the fall codes decide sensitivity vs specificity
    assert recs["per_type"]["MobiFall BSC"]["metric"] == "sensitivity"
    assert recs["per_type"]["MobiFall SCH"]["metric"] == "specificity"
    assert set(recs["pooled"]) == {"MobiFall sensitivity", "MobiFall specificity"}
