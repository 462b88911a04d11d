"""Replay: recorded CSV rows are published as contract-valid messages with their values."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ingest.contract import decode
from ingest.contract.quantities import AIR_FIELDS, VITAL_FIELDS
from simulators.replay import ReplayError, ReplaySimulator, load_replay
from tests.conftest import RunningStack
from tests.simulators.conftest import Subscriber, run_cli
from tests.simulators.helpers import START, run_inprocess

COLUMNS = [
    "device",
    "time",
    "channel",
    "family",
    "district",
    *VITAL_FIELDS,
    *AIR_FIELDS,
    "lat",
    "lon",
    "battery",
    "room",
    "door",
    "open",
    "motion",
    "occupied",
    "pressed",
    "x",
    "y",
    "z",
]


def record(messages: list[tuple[str, bytes]], path: Path) -> int:
    """Write decoded simulator messages as a replay CSV (one row per reading/sample)."""
    rows = 0
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for topic, payload in messages:
            d = decode(topic, payload, now=START + 60)
            m = d.model.model_dump(exclude_none=True)
            base = {
                "device": d.device_id,
                "channel": d.channel,
                "family": d.family,
                "district": d.district,
            }
            if d.channel in ("accel", "pendant"):
                for t, x, y, z in zip(d.model.times(), m["x"], m["y"], m["z"], strict=True):
                    w.writerow({**base, "time": repr(t), "x": x, "y": y, "z": z})
                    rows += 1
            else:
                ts = m.pop("ts")
                w.writerow(
                    {**base, "time": repr(ts), **{k: v for k, v in m.items() if k in COLUMNS}}
                )
                rows += 1
    return rows


def readings(messages) -> list[tuple]:
    """Order-free comparable content: (device, channel, time, values) per reading."""
    out = []
    for topic, payload in messages:
        d = decode(topic, payload, now=START + 60, max_age_s=None)
        for r in d.readings():
            v = r.model_dump(exclude_none=True)
            if "x" in v:
                for i, t in enumerate(r.times()):
                    out.append(
                        (d.device_id, d.channel, round(t, 4), v["x"][i], v["y"][i], v["z"][i])
                    )
            else:
                out.append(
                    (d.device_id, d.channel, round(v.pop("ts"), 4), tuple(sorted(v.items())))
                )
    return sorted(out, key=repr)


def test_replay_round_trip_in_process(tmp_path: Path) -> None:
    msgs, _, _ = run_inprocess("smoke", seed=2, duration=3.0, wearable=5, eldercare=3, airq=3)
    path = tmp_path / "rec.csv"
    assert record(msgs, path) > len(msgs)
    sim = load_replay(path)
    sim.rebase(START)  # first recorded time is START: timestamps stay as recorded
    replayed: list[tuple[str, bytes]] = []
    for k in range(round((sim.span_s + 0.2) / sim.tick_s)):
        replayed.extend(sim.tick(START + k * sim.tick_s))
    assert readings(replayed) == readings(msgs)


def test_replay_through_the_broker_with_shifted_time(
    cli: Path, stack: RunningStack, subscriber: Subscriber, tmp_path: Path
) -> None:
    path = tmp_path / "rec.csv"
    path.write_text(
        "device,time,channel,heart_rate,spo2,pm25,lat,lon,room,motion\n"
        "w1,2024-05-01T10:00:00Z,vitals,72,98,,,,,\n"
        "w1,2024-05-01T10:00:01Z,vitals,75,,,,,,\n"
        "s1,2024-05-01T10:00:01.5Z,air,,,12.5,45.07,7.68,,\n"
        "h1,2024-05-01T10:00:02Z,motion,,,,,,kitchen,true\n"
    )
    res = run_cli(
        cli,
        stack,
        "--replay",
        str(path),
        "--speed",
        "4",
        "--summary-json",
        str(tmp_path / "s.json"),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["published"] == 4
    got = subscriber.wait_for(4)
    assert sorted(t for t, _ in got) == [
        "city/replay/airq/s1/air",
        "city/replay/eldercare/h1/motion",
        "city/replay/wearable/w1/vitals",
        "city/replay/wearable/w1/vitals",
    ]
    models = {t: decode(t, p).model for t, p in got}  # timestamps shifted to "now": valid
    assert models["city/replay/eldercare/h1/motion"].room == "kitchen"
    vit = sorted((decode(t, p).model for t, p in got if t.endswith("vitals")), key=lambda m: m.ts)
    assert [m.heart_rate for m in vit] == [72, 75] and vit[1].spo2 is None
    assert vit[1].ts - vit[0].ts == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("device,channel\nw1,vitals\n", "missing column"),
        ("device,time,channel\nw1,1700000000,ecg\n", "no channel 'ecg'"),
        ("device,time,channel,heart_rate\nw1,yesterday,vitals,70\n", "neither epoch"),
        ("device,time,channel,heart_rate\nw1,1700000000,vitals,fast\n", "not a number"),
        ("device,time,channel,x\nw1,1700000000,accel,1.0\n", "need x, y, z"),
    ],
)
def test_bad_recordings_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ReplayError, match=message):
        load_replay(path)


def test_empty_recording() -> None:
    with pytest.raises(ReplayError, match="no rows"):
        ReplaySimulator([])


def test_parquet_needs_pyarrow_or_round_trips(tmp_path: Path) -> None:
    """Parquet is optional: with pyarrow it replays like CSV, without it a clear error."""
    path = tmp_path / "rec.parquet"
    rows = [{"device": "w1", "time": START, "channel": "vitals", "heart_rate": 70.0}]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(ReplayError, match="pyarrow"):
            load_replay(path)
        return
    pq.write_table(pa.Table.from_pylist(rows), path)
    sim = load_replay(path)
    sim.rebase(START)
    [(topic, payload)] = sim.tick(START)
    assert topic == "city/replay/wearable/w1/vitals"
    assert decode(topic, payload, now=START).model.heart_rate == 70.0
