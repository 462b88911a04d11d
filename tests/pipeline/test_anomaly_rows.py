"""``anomaly`` level and ``air_anomaly`` rows and alerts of the processors (no services):
the rows against a naive per-series reference built from ``update_with_level``, any
chunking, checkpoint restore + replay, and an older checkpoint without the level columns."""

from __future__ import annotations

from collections import defaultdict

import msgpack
import numpy as np
import pytest

from ingest.batch import decode
from kernels.anomaly import AnomalyScorer
from streams.output import Output
from streams.processors import AirqProcessor, VitalsProcessor
from streams.processors.airq import POLLUTANTS
from streams.processors.vitals import SIGNALS
from streams.synthetic import batch, vitals_batches
from tests.pipeline.test_worker_units import DEVICES, T0, run, services

STATIONS = ["st-u0", "st-u1", "st-u2"]
MINUTES = 180
SPIKE_MINUTE = 150  # after anomaly_min_samples (120) readings of the series


def air_batches(
    minutes: int,
    per_batch: int,
    *,
    spike: bool = True,
    seed: int = 3,
    t0: float = T0,
    stations: list[str] = STATIONS,
    district: str = "air-u",
) -> list[bytes]:
    """Every station reports once a minute: pm25 noisy around 20 ug/m3 (the first
    station jumps to 220 at :data:`SPIKE_MINUTE` when ``spike``), o3 noisy around 30 ppb,
    no other pollutant."""
    rng = np.random.default_rng(seed)
    n = len(stations)
    ts = t0 + 60.0 * np.arange(minutes)
    pm25 = 20.0 + rng.normal(0.0, 2.0, (minutes, n))
    if spike:
        pm25[SPIKE_MINUTE, 0] = 220.0
    o3 = 30.0 + rng.normal(0.0, 1.0, (minutes, n))
    out = []
    for lo in range(0, minutes, per_batch):
        m = min(per_batch, minutes - lo)
        t = np.repeat(ts[lo : lo + m], n)
        out.append(
            batch(
                "airq",
                stations,
                np.tile(np.arange(n), m),
                t,
                district=district,
                family="airq",
                channel="air",
                pm25=pm25[lo : lo + m].ravel(),
                o3=o3[lo : lo + m].ravel(),
                lat=np.full(t.size, 48.1),
                lon=np.full(t.size, 11.5),
            )
        )
    return out


def rows_of(out: Output, database: str, measurement: str) -> dict[tuple[str, str, int], dict]:
    """Last written fields per (subject, signal, time) of ``measurement`` (upserts)."""
    rows: dict[tuple[str, str, int], dict] = {}
    for body in out.bodies.get(database, []):
        for line in body.decode().splitlines():
            head, fields, time_ns = line.split(" ")
            name, *tags = head.split(",")
            if name != measurement:
                continue
            tag = dict(kv.split("=", 1) for kv in tags)
            subject = tag.get("device", tag.get("station", ""))
            parsed = {}
            for kv in fields.split(","):
                k, v = kv.split("=", 1)
                parsed[k] = int(v[:-1]) if v.endswith("i") else float(v)
            rows[(subject, tag["signal"], int(time_ns))] = parsed
    return rows


def naive_rows(
    subject: list[str], signal: list[str], t: np.ndarray, x: np.ndarray
) -> dict[tuple[str, str, int], dict]:
    """Each series scored alone in one call; per minute the first maximal score, the
    reading and the level at it, and the count."""
    out: dict[tuple[str, str, int], dict] = {}
    series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(subject, signal, strict=True)):
        series[key].append(i)
    for (sub, sig), idx in series.items():
        score, level = AnomalyScorer(1).update_with_level(
            np.zeros(len(idx), np.int64), t[idx], x[idx]
        )
        for j, i in enumerate(idx):
            key = (sub, sig, int(t[i] // 60) * 60_000_000_000)
            row = out.setdefault(key, {"score_max": -np.inf, "readings": 0})
            row["readings"] += 1
            if score[j] > row["score_max"]:
                row.update(score_max=score[j], value_at_max=x[i], level=level[j])
    return out


def assert_rows_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert got[key]["readings"] == row["readings"], key
        for field in ("score_max", "value_at_max", "level"):
            assert got[key][field] == pytest.approx(row[field], rel=1e-15, abs=0), (key, field)


def air_truth(minutes: int = MINUTES, spike: bool = True) -> dict:
    """The naive rows of :func:`air_batches`' pollutant readings."""
    subject, signal, t, x = [], [], [], []
    for payload in air_batches(minutes, minutes, spike=spike):
        b = decode(payload)
        codes = b.strings["device"].codes
        for p in ("pm25", "o3"):
            subject += [STATIONS[c] for c in codes.tolist()]
            signal += [p] * codes.size
            t.append(np.asarray(b.columns["ts"]))
            x.append(np.asarray(b.columns[p]))
    return naive_rows(subject, signal, np.concatenate(t), np.concatenate(x))


@pytest.mark.parametrize("per_batch", [1, 7, MINUTES])
def test_air_anomaly_rows_and_one_alert_for_the_spike(per_batch: int) -> None:
    proc = AirqProcessor(services())
    out = run(proc, air_batches(MINUTES, per_batch))
    rows = rows_of(out, "p", "air_anomaly")
    # one row per station, scored pollutant and minute; every reading counted once
    assert len(rows) == len(STATIONS) * 2 * MINUTES
    assert {k[1] for k in rows} == {"pm25", "o3"} <= set(POLLUTANTS)
    assert_rows_equal(rows, air_truth())
    spike_key = ("st-u0", "pm25", int((T0 + 60 * SPIKE_MINUTE) * 1e9))
    assert rows[spike_key]["value_at_max"] == 220.0 and rows[spike_key]["score_max"] >= 0.999
    assert 15.0 < rows[spike_key]["level"] < 25.0  # the expected value, not the spike
    air = [a for a in out.alerts if a.type == "air_anomaly"]
    assert [(a.subject, a.start, a.evidence["signal"]) for a in air] == [
        ("st-u0", T0 + 60 * SPIKE_MINUTE, "pm25")
    ]
    (alert,) = air
    assert alert.subject_kind == "station" and alert.severity == "warning"
    assert alert.value == 220.0 and alert.evidence["level"] == rows[spike_key]["level"]
    assert alert.evidence["signals"] == ["pm25"] and alert.evidence["score"] >= 0.999
    assert not out.bodies.get("s")  # air quality is public: nothing in the sensitive db


def test_steady_air_raises_no_anomaly_alert() -> None:
    proc = AirqProcessor(services())
    out = run(proc, air_batches(MINUTES, 10, spike=False))
    assert not [a for a in out.alerts if a.type == "air_anomaly"]
    assert_rows_equal(rows_of(out, "p", "air_anomaly"), air_truth(spike=False))


def test_air_restore_then_replay_equals_uninterrupted() -> None:
    """Scorer, minute maxima, levels and episodes are in the checkpoint: a processor
    restored from it and fed the covered batches again continues exactly."""
    payloads = air_batches(MINUTES, 5)
    one = AirqProcessor(services())
    whole = run(one, payloads)
    first = AirqProcessor(services())
    head = run(first, payloads[:24])  # 120 minutes
    records = first.state.take_dirty()
    second = AirqProcessor(services())
    for _, record in records:
        second.state.import_block(record)
    tail = run(second, payloads[20:])  # 20 minutes replayed, then new
    assert [a.id for a in head.alerts + tail.alerts if a.type == "air_anomaly"] == [
        a.id for a in whole.alerts if a.type == "air_anomaly"
    ]
    assert tail.alerts and all(a.start >= T0 + 120 * 60 for a in tail.alerts)
    merged = {**rows_of(head, "p", "air_anomaly"), **rows_of(tail, "p", "air_anomaly")}
    assert merged == rows_of(whole, "p", "air_anomaly")
    mine = np.array([one.state.index.ids.index(s) for s in STATIONS])
    theirs = np.array([second.state.index.ids.index(s) for s in STATIONS])
    for name in ("anomaly", "anomaly_minute", "anomaly_series", "hour"):
        part, k = one.state.parts[name]
        want = part.export_state((mine[:, None] * k + np.arange(k)).ravel())
        got = second.state.parts[name][0].export_state((theirs[:, None] * k + np.arange(k)).ravel())
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name}.{key}")


def vitals_truth(payloads: list[bytes]) -> dict:
    subject, signal, t, x = [], [], [], []
    for payload in payloads:
        b = decode(payload)
        dev = b.strings["device"]
        names = [dev.values[c] for c in dev.codes.tolist()]
        for sig in SIGNALS:
            col = np.asarray(b.columns[sig], dtype=float)
            ok = np.isfinite(col)
            subject += [n for n, keep in zip(names, ok.tolist(), strict=True) if keep]
            signal += [sig] * int(ok.sum())
            t.append(np.asarray(b.columns["ts"])[ok])
            x.append(col[ok])
    return naive_rows(subject, signal, np.concatenate(t), np.concatenate(x))


@pytest.mark.parametrize("per_batch", [37, 1000])
def test_vitals_anomaly_rows_carry_the_level_at_the_minute_maximum(per_batch: int) -> None:
    payloads = vitals_batches(DEVICES[:4], T0, 200, per_batch=per_batch, spikes=[(1, 150.0, 190.0)])
    out = run(VitalsProcessor(services()), payloads)
    rows = rows_of(out, "s", "anomaly")
    assert_rows_equal(rows, vitals_truth(payloads))
    assert all(np.isfinite(r["level"]) for r in rows.values())


def test_checkpoint_without_level_columns_restores_and_leaves_out_only_unknown_levels() -> None:
    """A vitals checkpoint written before the level columns existed still restores (the
    columns take their defaults); the minute in progress gets no level unless its peak
    came after the restore, later minutes get theirs."""
    payloads = vitals_batches(DEVICES[:2], T0, 240, per_batch=20)
    first = VitalsProcessor(services())
    run(first, payloads[:9])  # 90 s: the restore lands inside minute 1
    records = []
    for _, record in first.state.take_dirty():
        data = msgpack.unpackb(record, raw=False)
        for key in ("peak_period", "peak_score", "peak_level"):
            del data["state"]["episode"][key]
        records.append(msgpack.packb(data, use_bin_type=True))
    second = VitalsProcessor(services())
    for record in records:
        second.state.import_block(record)
    rows = rows_of(run(second, payloads[9:]), "s", "anomaly")
    truth = vitals_truth(payloads)
    minute1 = int((T0 // 60 + 1) * 60 * 1e9)
    unknown = 0
    for key, row in rows.items():
        want = truth[key]
        assert row["readings"] == want["readings"] and row["score_max"] == want["score_max"]
        if key[2] > minute1 or "level" in row:  # left out (NaN) or right, never wrong
            assert row["level"] == pytest.approx(want["level"], rel=1e-15, abs=0)
        else:
            unknown += 1
    assert 0 < unknown <= 2 * len(SIGNALS)  # only minute 1 of each series can lack it
