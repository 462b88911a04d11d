"""``air_anomaly`` on the real stack: rows per station, pollutant and minute in the public
database (level included), one public alert for a PM2.5 spike (mirrored, counted in
``district_alert``), none for steady series, and the scorer's state across a SIGKILL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cityhealth.settings import Settings
from tests.pipeline.test_anomaly_rows import SPIKE_MINUTE, air_batches
from tests.pipeline.test_worker import alerts_reach
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

T0 = (time.time() // 3600 - 4) * 3600  # four hours ago, on the hour
MINUTES = 180
ENV = {"CITYHEALTH_WORKER_OFFLINE_AFTER_S": "86400"}  # no station_offline alerts


@pytest.fixture(scope="module")
def asettings(stack) -> Settings:
    return worker_settings(stack.settings)


@pytest.fixture(scope="module")
def worker(
    cli: Path, asettings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    yield from module_worker(cli, asettings, tmp_path_factory, **ENV)


def stations(district: str) -> list[str]:
    return [f"st-{district}-{i}" for i in range(3)]


def feed(s: Settings, district: str, payloads: list[bytes]) -> None:
    (partition,) = {
        p for p, g in enumerate(by_partition(stations(district), district=district)) if g
    }
    produce(s, "airq", [(partition, b) for b in payloads])


def totals(s: Settings, district: str) -> tuple[int, int, int]:
    """Sum of ``readings``, count of ``level`` and of rows of the district's air_anomaly."""
    series = query(
        s,
        s.influx_db_public,
        'SELECT sum("readings"), count("level"), count("score_max") FROM "air_anomaly" '
        f"WHERE district = '{district}'",
    )
    return tuple(series[0]["values"][0][1:]) if series else (0, 0, 0)  # type: ignore[return-value]


def air_alerts(s: Settings, district: str) -> list[dict]:
    return [a for a in alerts(s) if a["type"] == "air_anomaly" and a["district"] == district]


def test_rows_spike_alert_and_steady_district(worker: WorkerProcess, asettings: Settings) -> None:
    s = asettings
    spiky, steady = "aan-a", "aan-b"
    for district, spike in ((spiky, True), (steady, False)):
        kw = {"t0": T0, "stations": stations(district), "district": district}
        feed(s, district, air_batches(MINUTES, 10, spike=spike, **kw))
    want = (3 * 2 * MINUTES,) * 3  # station x (pm25, o3) x minute, one reading each
    for district in (spiky, steady):
        wait_for(lambda d=district: totals(s, d) == want, 120, f"{district} rows")
    (alert,) = wait_for(lambda: air_alerts(s, spiky), 60, "air_anomaly alert")
    assert alert["subject"] == stations(spiky)[0] and alert["subject_kind"] == "station"
    assert alert["start"] == T0 + 60 * SPIKE_MINUTE and alert["value"] == 220.0
    assert alert["evidence"]["signal"] == "pm25" and alert["severity"] == "warning"
    assert 15.0 < alert["evidence"]["level"] < 25.0
    public = {"public/air_anomaly": 1}
    assert alerts_reach(s, public, spiky) == public
    mirrored = query(
        s,
        s.influx_db_public,
        'SELECT "value", "station" FROM "alert" WHERE "type" = \'air_anomaly\'',
    )
    assert [row[1:] for row in mirrored[0]["values"]] == [[220.0, stations(spiky)[0]]]
    spike_row = query(
        s,
        s.influx_db_public,
        'SELECT "value_at_max", "level", "score_max" FROM "air_anomaly" '
        f"WHERE station = '{stations(spiky)[0]}' AND signal = 'pm25' AND score_max >= 0.999",
    )
    ((_, value, level, score),) = spike_row[0]["values"]
    assert value == 220.0 and level == alert["evidence"]["level"] and score >= 0.999
    assert air_alerts(s, steady) == []
    assert not query(s, s.influx_db_sensitive, 'SHOW MEASUREMENTS WITH MEASUREMENT = "air_anomaly"')


def test_scorer_state_survives_sigkill(cli: Path, stack, tmp_path: Path) -> None:
    """140 minutes, SIGKILL, a new worker, the last 40 minutes with the spike at 150: the
    spike alerts only if the new worker restored the series' history (a fresh scorer
    holds alerts back below anomaly_min_samples = 120 readings)."""
    s = worker_settings(stack.settings)
    district = "aan-k"
    payloads = air_batches(MINUTES, 10, t0=T0, stations=stations(district), district=district)
    first = WorkerProcess(cli, s, tmp_path / "first.log", **ENV).start()
    try:
        feed(s, district, payloads[:14])
        wait_for(lambda: totals(s, district)[0] == 3 * 2 * 140, 120, "rows before the kill")
        time.sleep(2.0)  # the step's transaction (alerts + checkpoint) after its write
    finally:
        first.kill()
    second = WorkerProcess(cli, s, tmp_path / "second.log", **ENV).start()
    try:
        feed(s, district, payloads[14:])
        wait_for(lambda: totals(s, district) == (3 * 2 * MINUTES,) * 3, 120, "rows")
        assert second.restored_blocks() > 0
        (alert,) = wait_for(lambda: air_alerts(s, district), 60, "air_anomaly after restart")
        assert alert["start"] == T0 + 60 * SPIKE_MINUTE
        assert alert["subject"] == stations(district)[0]
    finally:
        second.stop()
