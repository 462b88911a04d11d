"""The stream worker on the real stack: batches in Kafka -> exact points in InfluxDB.

One ``cityhealth worker`` subprocess serves the whole module (Faust start-up is slow);
each test uses its own devices and district, and counts only its district.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cityhealth.settings import Settings
from streams.runner import write_until_acknowledged
from streams.sink import RetryPolicy, make_sink
from streams.sink.base import split_body
from streams.synthetic import motion_batches, vitals_batches
from tests.pipeline.test_worker_support import (
    WorkerProcess,
    alerts,
    by_partition,
    module_worker,
    produce,
    query,
    wait_for,
    worker_settings,
)

T0 = (time.time() // 3600 - 1) * 3600  # an hour ago, on the hour (minutes align)


@pytest.fixture(scope="module")
def wsettings(stack) -> Settings:
    return worker_settings(stack.settings)


@pytest.fixture(scope="module")
def worker(
    cli: Path, wsettings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    stats = tmp_path_factory.mktemp("stats") / "stats.json"
    yield from module_worker(
        cli, wsettings, tmp_path_factory, CITYHEALTH_WORKER_STATS_JSON=str(stats)
    )


def district_count(s: Settings, db: str, measurement: str, field: str, district: str) -> int:
    series = query(
        s, db, f'SELECT count("{field}") FROM "{measurement}" WHERE district = \'{district}\''
    )
    return int(series[0]["values"][0][1]) if series else 0


def counts_reach(s: Settings, expected: dict[tuple[str, str, str], int], district: str):
    """Wait until every (db, measurement, field) count of ``district`` is at least expected."""

    def current() -> dict[tuple[str, str, str], int]:
        return {k: district_count(s, *k, district) for k in expected}

    wait_for(lambda: all(v >= expected[k] for k, v in current().items()), 120, f"{current()}")
    time.sleep(1.0)  # let a wrongly duplicated or extra write show up before comparing
    return current()


def district_totals(
    s: Settings, measurement: str, field: str, tags: tuple[str, ...], district: str
) -> dict[str, int]:
    """Sums of a public per-district count (``district_stream``, ``district_alert``) by
    ``tags``, keyed ``"<tag value>/<tag value>"``."""
    group = ", ".join(f'"{t}"' for t in tags)
    series = query(
        s,
        s.influx_db_public,
        f'SELECT sum("{field}") FROM "{measurement}" WHERE district = \'{district}\' '
        f"GROUP BY {group}",
    )
    return {"/".join(x["tags"][t] for t in tags): int(x["values"][0][1]) for x in series}


def readings_reach(s: Settings, expected: dict[str, int], district: str) -> dict[str, int]:
    """Wait until ``district_stream`` holds at least ``expected`` (``stream/channel``: n)."""

    def current() -> dict[str, int]:
        return district_totals(s, "district_stream", "readings", ("stream", "channel"), district)

    wait_for(lambda: all(current().get(k, 0) >= n for k, n in expected.items()), 60, "readings")
    time.sleep(1.5)  # a timer flush later: a double count would show up now
    return current()


def alerts_reach(s: Settings, expected: dict[str, int], district: str) -> dict[str, int]:
    """Wait until ``district_alert`` holds at least ``expected`` (``scope/type``: n); returns
    the counts of the expected keys (other types, e.g. later offline alerts, left out)."""

    def current() -> dict[str, int]:
        got = district_totals(s, "district_alert", "alerts", ("scope", "type"), district)
        return {k: got.get(k, 0) for k in expected}

    wait_for(lambda: all(n >= expected[k] for k, n in current().items()), 60, "alert counts")
    time.sleep(1.5)
    return current()


def devices(prefix: str, n: int) -> list[str]:
    return [f"p-{prefix}{i:03d}" for i in range(n)]


def test_vitals_raw_anomaly_news2_points(worker: WorkerProcess, wsettings: Settings) -> None:
    s, district = wsettings, "vitals-a"
    devs = devices("va", 6)
    seconds = 150  # minutes 0, 1 and half of 2
    records = [
        (p, b)
        for p, group in enumerate(by_partition(devs))
        for b in vitals_batches(group, T0, seconds, per_batch=200, district=district)
    ]
    produce(s, "vitals", records)
    sens = s.influx_db_sensitive
    expected = {
        (sens, "vitals", "present"): 6 * seconds,
        (sens, "anomaly", "readings"): 6 * 4 * 3,  # device x signal x minute
        (sens, "news2", "score"): 6 * 3,  # device x minute
    }
    assert counts_reach(s, expected, district) == expected, worker.log()[-3000:]
    # the open minute was flushed whole: every reading of minute 2 is in its aggregate
    series = query(
        s,
        sens,
        f'SELECT sum("readings") FROM "anomaly" WHERE district = \'{district}\' '
        f"AND time >= {int((T0 + 120) * 1e9)}",
    )
    assert series[0]["values"][0][1] == 6 * 4 * 30
    # the public per-district count: every reading once, no device
    assert readings_reach(s, {"vitals/vitals": 6 * seconds}, district) == {
        "vitals/vitals": 6 * seconds
    }
    stats = json.loads(Path(worker.env["CITYHEALTH_WORKER_STATS_JSON"]).read_text())
    assert stats["readings"] >= 6 * seconds and stats["bad_batches"] == 0


def test_fall_in_motion_window_gives_one_alert(worker: WorkerProcess, wsettings: Settings) -> None:
    s, district = wsettings, "motion-a"
    devs = devices("mo", 4)
    faller = devs[1]
    seconds = 20
    records = []
    for p, group in enumerate(by_partition(devs)):
        falls = {group.index(faller): 8.0} if faller in group else {}
        for b in motion_batches(group, T0, seconds, falls=falls, district=district):
            records.append((p, b))
    produce(s, "motion", records)
    sens = s.influx_db_sensitive
    expected = {
        (sens, "accel_window", "samples"): 4 * seconds,
        (sens, "activity", "samples"): 4 * seconds,
        (sens, "fall", "detected"): 1,
    }
    assert counts_reach(s, expected, district) == expected, worker.log()[-3000:]
    falls = wait_for(
        lambda: [a for a in alerts(s) if a["type"] == "fall" and a["district"] == district],
        60,
        "fall alert",
    )
    assert len(falls) == 1
    fall = falls[0]
    assert fall["subject"] == faller and fall["severity"] == "critical"
    assert fall["evidence"]["impact_ts"] == pytest.approx(T0 + 8.0, abs=0.1)
    assert fall["sensor_ts"] >= fall["evidence"]["impact_ts"] and fall["emitted_ts"] > 0
    # public per-district counts: one reading per window, the fall without its subject
    windows = {"motion/accel_window": 4 * seconds}
    assert readings_reach(s, windows, district) == windows
    assert alerts_reach(s, {"person/fall": 1}, district) == {"person/fall": 1}


def test_heart_rate_spike_opens_one_anomaly_episode(
    worker: WorkerProcess, wsettings: Settings
) -> None:
    s, district = wsettings, "vitals-b"
    devs = devices("vb", 4)
    spiky = 2
    # three consecutive extreme readings: one episode, one alert
    spikes = [(spiky, 200.0 + k, 175.0) for k in range(3)]
    records = []
    for p, group in enumerate(by_partition(devs)):
        sp = [(group.index(devs[d]), t, v) for d, t, v in spikes if devs[d] in group]
        records += [(p, b) for b in vitals_batches(group, T0, 300, district=district, spikes=sp)]
    produce(s, "vitals", records)
    sens = s.influx_db_sensitive
    counts_reach(s, {(sens, "vitals", "present"): 4 * 300}, district)
    mine = wait_for(
        lambda: [
            a
            for a in alerts(s)
            if a["type"] == "anomaly"
            and a["subject"] == devs[spiky]
            and a["evidence"]["signal"] == "heart_rate"
        ],
        60,
        "anomaly alert",
    )
    assert len(mine) == 1
    assert mine[0]["sensor_ts"] == pytest.approx(T0 + 200.0)
    assert mine[0]["evidence"]["value"] == 175.0
    ids = [a["id"] for a in alerts(s)]
    assert len(ids) == len(set(ids))
    assert np.all(
        np.array([a["evidence"]["score"] for a in alerts(s) if a["type"] == "anomaly"]) >= 0.999
    )


def test_refused_points_count_only_what_influxdb_did_not_store(settings: Settings) -> None:
    """A refused body split into several requests: only the points InfluxDB dropped are
    counted as refused (not the whole body, whose other requests were stored)."""
    db = settings.influx_db_public
    name = f"refusals_{uuid.uuid4().hex[:8]}"
    t0 = int(T0) * 10**9
    lines = [f"{name},k=a v={i}.5 {t0 + i}" for i in range(30)]
    lines[3] = f"{name},k=a v=1i {t0 + 3}"  # field type conflict: a partial write
    lines[17] = f"{name},k=a v=2i {t0 + 17}"  # same, in another request
    lines[25] = f"{name},k=a v= broken"  # unparsable
    with make_sink(settings, policy=RetryPolicy(deadline_s=30.0), max_body_bytes=150) as sink:
        sink.ensure_databases()
        sink.write(db, lines[:1])  # the field is a float from now on
        body = {db: [line.encode() for line in lines]}
        refused = write_until_acknowledged(sink, body, lambda: False)
        stored = sink.count(db, name, "v")
        sink.query(db, f'DROP MEASUREMENT "{name}"')
    assert len(list(split_body(b"\n".join(body[db]), 150))) > 3  # several requests
    assert (refused, stored) == (3, 27)
