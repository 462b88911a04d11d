"""Two worker processes write the same district rows as one, summed across ``partition``.

The same input (wearables reporting vitals, accelerometer windows and battery status
over both partitions; three air stations of the district, keyed by district) goes once
to a single ``cityhealth worker`` and once to two workers of one group that split the
partitions (Faust assigns the four stream topics co-partitioned). Per minute, the rows
summed across the ``partition`` tag must equal the single worker's and the truth counted
from the input: devices online (a wearable seen in three streams counts once), readings
per channel, alerts, stations reporting and the worst station AQI.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from cityhealth.settings import Settings
from streams.synthetic import batch, motion_batches, vitals_batches
from tests.pipeline.test_worker_support import (
    WorkerProcess,
    by_partition,
    produce,
    query,
    wait_for,
    worker_settings,
)

T0 = (time.time() // 3600 - 2) * 3600
DISTRICT = "dw"
WEARABLES = [f"p-dw{i:02d}" for i in range(8)]
STATIONS = ["st-dw1", "st-dw2", "st-dw3"]
VITAL_S = 150  # 2.5 minutes of vitals, every second
MOTION_S = 70
AIR_MINUTES = 90
ENV = {"CITYHEALTH_WORKER_OFFLINE_AFTER_S": "86400"}  # no offline alerts in these runs


def inputs() -> dict[str, list[tuple[int, bytes]]]:
    groups = by_partition(WEARABLES)
    assert all(groups), "wearables on both partitions"
    out: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for p, group in enumerate(groups):
        # group 0 starts a minute later: minutes with devices of one partition only
        start = T0 + 60 * p
        out["vitals"] += [(p, b) for b in vitals_batches(group, start, VITAL_S, district=DISTRICT)]
        out["motion"] += [
            (p, b) for b in motion_batches(group[:2], T0 + 30, MOTION_S, district=DISTRICT)
        ]
        ts = T0 + np.arange(0.0, 180.0, 45.0)
        codes = np.tile(np.arange(len(group)), ts.size)
        t = np.repeat(ts, len(group))
        status = batch(
            "home", group, codes, t, district=DISTRICT, family="wearable", channel="status",
            battery=np.full(t.size, 80.0),
        )  # fmt: skip
        out["home"].append((p, status))
    ts = T0 + np.arange(0.0, AIR_MINUTES * 60, 60.0)
    hot = np.where((ts >= T0 + 1800) & (ts < T0 + 2400), 36.0, 24.0)
    (p,) = [p for p, g in enumerate(by_partition(STATIONS, district=DISTRICT)) if g]
    n = len(STATIONS)
    t = np.repeat(ts, n)
    air = batch(
        "airq", STATIONS, np.tile(np.arange(n), ts.size), t, district=DISTRICT, family="airq",
        channel="air", pm25=np.full(t.size, 60.0), o3=np.full(t.size, 30.0),
        temperature=np.repeat(hot, n), humidity=np.full(t.size, 60.0),
        lat=np.full(t.size, 48.1), lon=np.full(t.size, 11.5),
    )  # fmt: skip
    out["airq"].append((p, air))
    return dict(out)


def truth() -> tuple[dict[int, int], dict[str, float]]:
    """Devices online per minute and readings per channel, counted from the input."""
    online: dict[int, set[str]] = defaultdict(set)
    for p, group in enumerate(by_partition(WEARABLES)):
        for s in range(VITAL_S):
            online[int((T0 + 60 * p + s) // 60)].update(group)
        for s in range(MOTION_S):
            online[int((T0 + 30 + s) // 60)].update(group[:2])
        for s in (0, 45, 90, 135):
            online[int((T0 + s) // 60)].update(group)
    motion = sum(len(g[:2]) for g in by_partition(WEARABLES)) * MOTION_S
    readings = {
        "vitals": len(WEARABLES) * VITAL_S,
        "accel_window": motion,
        "wearable_status": len(WEARABLES) * 4,
        "air": len(STATIONS) * AIR_MINUTES,
    }
    return {m: len(d) for m, d in online.items()}, readings


def summed(s: Settings) -> dict[str, Any]:
    """The district's rows summed across ``partition`` (max for the AQI), per minute."""
    pub = s.influx_db_public
    rows: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    partitions: set[str] = set()
    for series in query(s, pub, f"SELECT * FROM \"district\" WHERE district = '{DISTRICT}'"):
        cols = series["columns"]
        for values in series["values"]:
            row = dict(zip(cols, values, strict=True))
            minute = int(row["time"]) // 60_000_000_000  # times in ns
            partitions.add(row["partition"])
            for f in ("devices_online", "alerts", "stations_reporting"):
                rows[f][minute] += row[f] or 0
            if row.get("aqi_max") is not None:
                rows["aqi_max"][minute] = max(rows["aqi_max"][minute], row["aqi_max"])
    readings: dict[str, float] = defaultdict(float)
    for series in query(
        s,
        pub,
        f'SELECT sum("readings") FROM "district_stream" WHERE district = \'{DISTRICT}\' '
        'GROUP BY "channel"',
    ):
        readings[series["tags"]["channel"]] = series["values"][0][1]
    return {
        "rows": {k: dict(v) for k, v in rows.items()},
        "readings": dict(readings),
        "partitions": partitions,
    }


def settled(s: Settings, expected_readings: dict[str, float], alerts: int) -> dict[str, Any]:
    """The rows once every reading and the expected alerts are counted."""
    last: list[dict[str, Any]] = [{}]

    def done() -> bool:
        got = last[0] = summed(s)
        total = sum(got["rows"].get("alerts", {}).values())
        return got["readings"] == expected_readings and total >= alerts

    try:
        wait_for(done, 180, "district rows")
    except AssertionError as exc:
        got = last[0]
        raise AssertionError(f"{exc}: {got.get('readings')} {got.get('partitions')}") from None
    return last[0]


def start_group(cli: Path, s: Settings, tmp: Path, names: list[str]) -> list[WorkerProcess]:
    workers = []
    for name in names:
        worker = WorkerProcess(cli, s, tmp / f"{name}.log", **ENV).start()
        worker.wait_ready()
        workers.append(worker)
    return workers


def started(worker: WorkerProcess) -> set[tuple[str, int]]:
    """``(stream, partition)`` runners the worker started (its restore log lines)."""
    found = re.findall(r"checkpoint blocks of (\w+)\[(\d+)\]", worker.log())
    return {(stream, int(p)) for stream, p in found}


def test_two_workers_sum_to_the_single_workers_rows(stack: Any, cli: Path, tmp_path: Path) -> None:
    records = inputs()
    online, readings = truth()
    # heat episode per station (3) and one AQI category change (Unhealthy)
    alerts = 4
    results = []
    second_started: set[tuple[str, int]] = set()
    for names in (["single"], ["first", "second"]):
        s = worker_settings(stack.settings)
        workers = start_group(cli, s, tmp_path, names)
        try:
            for stream, recs in records.items():
                produce(s, stream, recs)
            results.append(settled(s, readings, alerts))
            if len(workers) == 2:
                second_started = started(workers[1])
                assert all(w.alive() for w in workers)
        finally:
            for w in workers:
                w.stop()
    single, pair = results
    assert single["partitions"] == pair["partitions"] == {"0", "1"}
    # the second worker got one partition number of every stream (co-partitioned)
    numbers = {p for _, p in second_started}
    assert len(numbers) == 1 and {s for s, _ in second_started} == set(records)
    assert pair["rows"]["devices_online"] == single["rows"]["devices_online"]
    assert {m: n for m, n in pair["rows"]["devices_online"].items() if n} == online
    for field in ("alerts", "stations_reporting", "aqi_max"):
        assert pair["rows"][field] == single["rows"][field], field
    assert sum(pair["rows"]["alerts"].values()) == alerts
    assert max(pair["rows"]["stations_reporting"].values()) == len(STATIONS)
    assert max(pair["rows"]["aqi_max"].values()) == 154  # PM2.5 60 ug/m3: Unhealthy
