"""Alerts and the other streams on the real stack: home events, panic, inactivity,
offline devices, air quality (hourly/NowCast AQI, heat episodes, district rows).

One worker subprocess for the module, with short timer thresholds (offline after 30 s,
inactivity after 60 s, "daytime" all day) so timer alerts need no waiting for hours.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cityhealth.settings import Settings
from ingest.batch import DictColumn
from streams.alerts import alert_id
from streams.synthetic import batch
from tests.pipeline.test_worker import (
    alerts_reach,
    counts_reach,
    devices,
    district_count,
    readings_reach,
)
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

T0 = (time.time() // 3600 - 2) * 3600  # two hours ago, on the hour
TIMERS = {
    "CITYHEALTH_WORKER_OFFLINE_AFTER_S": "30",
    "CITYHEALTH_WORKER_INACTIVITY_AFTER_S": "60",
    "CITYHEALTH_WORKER_DAY_START_HOUR": "0",
    "CITYHEALTH_WORKER_DAY_END_HOUR": "24",
}


@pytest.fixture(scope="module")
def asettings(stack) -> Settings:
    return worker_settings(stack.settings)


@pytest.fixture(scope="module")
def worker(
    cli: Path, asettings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    yield from module_worker(cli, asettings, tmp_path_factory, **TIMERS)


def of(s: Settings, type_: str, **match: Any) -> list[dict[str, Any]]:
    return [
        a for a in alerts(s) if a["type"] == type_ and all(a.get(k) == v for k, v in match.items())
    ]


def home_records(
    devs: list[str], channel: str, ts: np.ndarray, district: str, **columns: Any
) -> list[tuple[int, bytes]]:
    """One batch per partition: every device reports ``channel`` at every ``ts``."""
    out = []
    for p, group in enumerate(by_partition(devs)):
        if not group:
            continue
        codes = np.tile(np.arange(len(group)), ts.size)
        t = np.repeat(ts, len(group))
        cols = {k: np.repeat(np.asarray(v), len(group)) for k, v in columns.items()}
        strings = {}
        if channel == "motion":
            strings["room"] = DictColumn(("kitchen",), np.zeros(t.size, dtype=np.int32))
        if channel == "door":
            strings["door"] = DictColumn(("front",), np.zeros(t.size, dtype=np.int32))
        out.append(
            (
                p,
                batch(
                    "home",
                    group,
                    codes,
                    t,
                    district=district,
                    family="eldercare",
                    channel=channel,
                    strings=strings,
                    **cols,
                ),
            )
        )
    return out


def test_home_events_stored_and_panic_alerts_once(
    worker: WorkerProcess, asettings: Settings
) -> None:
    s, district = asettings, "home-a"
    devs = devices("ha", 3)
    ts = T0 + np.arange(10.0)
    records = (
        home_records(devs, "motion", ts, district, motion=np.arange(10) % 2)
        + home_records(devs, "door", ts[:4], district, open=[1, 0, 1, 0])
        + home_records(devs, "bed", ts[:5], district, occupied=[1] * 5)
        + home_records(devs, "status", ts[:2], district, battery=[80.0, 79.5])
        + home_records(devs[:1], "panic", ts[3:4], district, pressed=[1])
    )
    produce(s, "home", records)
    sens = s.influx_db_sensitive
    expected = {
        (sens, "home_motion", "motion"): 3 * 10,
        (sens, "home_door", "open"): 3 * 4,
        (sens, "home_bed", "occupied"): 3 * 5,
        (sens, "home_status", "battery"): 3 * 2,
        (sens, "home_panic", "pressed"): 1,
    }
    assert counts_reach(s, expected, district) == expected, worker.log()[-3000:]
    panic = wait_for(lambda: of(s, "panic", district=district), 60, "panic alert")
    assert len(panic) == 1 and panic[0]["subject"] == devs[0]
    assert panic[0]["severity"] == "critical" and panic[0]["sensor_ts"] == T0 + 3
    assert panic[0]["id"] == alert_id("panic", devs[0], T0 + 3)
    series = query(
        s, sens, f"SELECT * FROM \"alert\" WHERE \"type\" = 'panic' AND district = '{district}'"
    )
    assert len(series[0]["values"]) == 1  # mirrored for dashboards
    # public per-district counts per channel and alert type: no device, room or door tag
    counts = {f"home/{m}": n for (_, m, _), n in expected.items()}
    assert readings_reach(s, counts, district) == counts
    assert alerts_reach(s, {"person/panic": 1}, district) == {"person/panic": 1}
    pub = s.influx_db_public
    keys = {
        m: {row[0] for x in query(s, pub, f'SHOW TAG KEYS FROM "{m}"') for row in x["values"]}
        for m in ("district_stream", "district_alert")
    }
    assert keys == {
        "district_stream": {"district", "partition", "stream", "channel"},
        "district_alert": {"district", "partition", "type", "scope"},
    }


def test_inactivity_and_offline_timers(worker: WorkerProcess, asettings: Settings) -> None:
    s, district = asettings, "home-b"
    quiet, busy = devices("hb", 2)
    ts = T0 + 600 + np.arange(0.0, 300.0, 10.0)  # 5 minutes of motion sensor readings
    records = home_records([quiet], "motion", ts, district, motion=(ts == ts[0]).astype(int))
    records += home_records([busy], "motion", ts, district, motion=np.ones(ts.size, int))
    produce(s, "home", records)
    inactive = wait_for(lambda: of(s, "inactivity", district=district), 90, "inactivity")
    # the quiet home moved once at ts[0]: one alert, for it only, starting 60 s later
    assert [a["subject"] for a in inactive] == [quiet]
    assert inactive[0]["start"] == pytest.approx(ts[0] + 60)
    assert inactive[0]["evidence"]["last_motion_ts"] == ts[0]
    # no more data: both go offline once (sensor time + wall time since > 30 s)
    offline = wait_for(
        lambda: len(found := of(s, "device_offline", district=district)) == 2 and found,
        120,
        "offline alerts",
    )
    assert sorted(a["subject"] for a in offline) == sorted([quiet, busy])
    assert all(a["evidence"]["last_seen_ts"] == ts[-1] for a in offline)
    time.sleep(2.0)  # timers keep running: still one alert each
    assert len(of(s, "device_offline", district=district)) == 2
    assert len(of(s, "inactivity", district=district)) == 1


def test_air_quality_aqi_heat_and_district_rows(worker: WorkerProcess, asettings: Settings) -> None:
    s, district = asettings, "air-a"
    stations = ["st-a1", "st-a2", "st-a3"]
    ts = T0 + np.arange(0.0, 90 * 60, 60.0)  # 90 minutes: hour 0 whole, hour 1 half
    hot = np.where((ts >= T0 + 1800) & (ts < T0 + 2400), 36.0, 24.0)  # 10 hot minutes
    records = []
    # stations are keyed by district (ingest.batch.schema): one partition holds them all
    for p, group in enumerate(by_partition(stations, district=district)):
        if not group:
            continue
        n = len(group)
        codes = np.tile(np.arange(n), ts.size)
        t = np.repeat(ts, n)
        cols = {
            "pm25": np.full(t.size, 60.0),  # AQI 154: Unhealthy
            "o3": np.full(t.size, 30.0),  # ppb
            "temperature": np.repeat(hot, n),
            "humidity": np.full(t.size, 60.0),
            "lat": np.full(t.size, 48.1),
            "lon": np.full(t.size, 11.5),
        }
        records.append(
            (
                p,
                batch(
                    "airq", group, codes, t, district=district, family="airq", channel="air", **cols
                ),
            )
        )
    produce(s, "airq", records)
    pub = s.influx_db_public
    expected = {
        (pub, "air", "present"): 3 * 90,
        (pub, "heat", "heat_index"): 3 * 90,
    }
    assert counts_reach(s, expected, district) == expected, worker.log()[-3000:]

    def aqi_count(kind: str) -> int:
        series = query(
            s,
            pub,
            f"SELECT count(\"aqi\") FROM \"aqi\" WHERE district = '{district}' AND kind = '{kind}'",
        )
        return int(series[0]["values"][0][1]) if series else 0

    # hourly: 3 stations x 2 hours x (pm25, o3, overall); NowCast needs two hours: 1 hour
    wait_for(lambda: aqi_count("hourly") >= 18 and aqi_count("nowcast") >= 9, 60, "aqi")
    assert (aqi_count("hourly"), aqi_count("nowcast")) == (18, 9)
    heat = wait_for(
        lambda: len(h := of(s, "heat_episode", district=district)) == 3 and h, 60, "heat"
    )
    assert sorted(a["subject"] for a in heat) == stations  # one episode per station
    assert all(a["start"] == T0 + 1800 and a["subject_kind"] == "station" for a in heat)
    category = wait_for(lambda: of(s, "aqi_category", district=district), 60, "aqi category")
    assert len(category) == 1 and category[0]["evidence"]["category"] == "Unhealthy"
    rows = wait_for(
        lambda: district_count(s, pub, "district", "devices_online", district) >= 90 and 1,
        60,
        "district rows",
    )
    assert rows
    series = query(
        s,
        pub,
        'SELECT max("stations_reporting"), max("aqi_max") FROM "district" '
        f"WHERE district = '{district}'",
    )
    assert series[0]["values"][0][1:] == [3, 154]
    assert readings_reach(s, {"airq/air": 3 * 90}, district) == {"airq/air": 3 * 90}
    public = {"public/heat_episode": 3, "public/aqi_category": 1}
    assert alerts_reach(s, public, district) == public
