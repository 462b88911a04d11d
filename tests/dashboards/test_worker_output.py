"""The dashboards on what the stream workers themselves write.

``citydata.py`` writes the model as documented; this test writes what the real
processors produce (``streams.processors`` fed with ``streams.synthetic`` batches, the
district board flushed, alerts mirrored) through ``streams.sink``, so a drift between
the workers' output and the dashboards' queries (a renamed field, a tag that became a
field, a type change) fails here even if DATA_MODEL.md was not updated.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from cityhealth.dashboards import TimeRange, check_dashboard, load_dashboards
from cityhealth.settings import Settings
from ingest.batch import decode
from streams.alerts import TYPES
from streams.clock import StreamClock
from streams.config import WorkerConfig
from streams.district import DistrictBoard
from streams.output import Databases, Output
from streams.processors import AirqProcessor, MotionProcessor, Services, VitalsProcessor
from streams.processors.base import Processor
from streams.sink import make_sink
from streams.synthetic import batch, motion_batches, vitals_batches
from tests.dashboards.rates import scaled_by_tag

DISTRICT = "riverside"
RESIDENTS = [f"p-w{i:02d}" for i in range(6)]
STATIONS = ["aq-river-1", "aq-river-2"]
#: Panels that must show data for this input (the rest only has to run without error).
EXPECTED = {
    "cityhealth-air-heat": [
        "Current NowCast AQI by district",
        "Stations: NowCast AQI and category",
        "Pollution map",
        "NowCast AQI per station",
        "Hourly AQI per pollutant (worst station)",
        "PM2.5 and PM10 concentration",
        "Air anomaly score per pollutant (highest station)",
        "PM2.5 at its peak score vs expected",
        "Highest heat index by district",
        "Heat index per station",
    ],
    "cityhealth-operations": [
        "Readings/s: air-quality stream",
        "Devices online per district",
        "Air stations reporting per district",
        "Readings/s: person streams (counts only)",
        "Alerts per minute by type: person alerts (counts only)",
    ],
    "cityhealth-resident-safety": [
        "Falls by district",
        "Highest anomaly score per vital sign",
    ],
    "cityhealth-resident-drilldown": ["Latest NEWS2 per resident", "Falls", "Vital signs"],
}


def _air_batches(t0: float, hours: int) -> list[bytes]:
    """Two stations, one reading a minute, rising PM2.5 and a hot afternoon."""
    minutes = np.arange(hours * 60)
    ts = np.repeat(t0 + 60.0 * minutes, len(STATIONS))
    codes = np.tile(np.arange(len(STATIONS)), minutes.size)
    n = ts.size
    hour = (ts - t0) / 3600
    cols = {
        "lat": np.where(codes == 0, 52.50, 52.51),
        "lon": np.where(codes == 0, 13.40, 13.42),
        "pm25": 10 + 15 * hour + codes,
        "pm10": 20 + 20 * hour,
        "o3": np.full(n, 35.0),
        "temperature": 29 + 2 * hour,
        "humidity": np.full(n, 60.0),
    }
    per = 60
    return [
        batch(
            "airq",
            STATIONS,
            codes[i : i + per],
            ts[i : i + per],
            district=DISTRICT,
            family="airq",
            channel="air",
            **{k: v[i : i + per] for k, v in cols.items()},
        )
        for i in range(0, n, per)
    ]


def _run(processor: Processor, payloads: list[bytes], out: Output) -> None:
    for payload in payloads:
        processor.process(decode(payload), out)
    processor.flush(out)


def test_dashboards_read_the_workers_output(settings: Settings) -> None:
    now = time.time()
    t0 = float(int(now) // 3600 * 3600 - 3 * 3600)
    dbs = Databases(settings.influx_db_sensitive, settings.influx_db_public)
    services = Services(WorkerConfig(), dbs, DistrictBoard(), StreamClock())
    out = Output(dbs)
    _run(AirqProcessor(services), _air_batches(t0, 3), out)
    vitals = vitals_batches(RESIDENTS, t0 + 7200, 900, per_batch=600, district=DISTRICT)
    _run(VitalsProcessor(services), vitals, out)
    motion = motion_batches(
        RESIDENTS[:3], t0 + 9000, 20, windows_per_batch=2, falls={1: 9.0}, district=DISTRICT
    )
    _run(MotionProcessor(services), motion, out)
    services.board.flush(out)
    out.mirror_alerts()
    with make_sink(settings) as sink:
        sink.ensure_databases()
        for db, bodies in out.bodies.items():
            sink.write_many(db, bodies)
        databases = {"sensitive": dbs.sensitive, "public": dbs.public}
        window = TimeRange(int(t0 - 3600) * 1000, int(now) * 1000)
        checks = {d.uid: check_dashboard(d, sink, databases, window) for d in load_dashboards()}
        stored = {
            "vitals": sink.count(dbs.sensitive, "vitals", "present"),
            "accel_window": sink.count(dbs.sensitive, "accel_window", "samples"),
        }
    for uid, check in checks.items():
        for r in [*check.variables, *check.panels]:
            assert r.error is None, f"{uid} {r.panel} {r.ref_id}: {r.error}\n{r.query}"
        for panel in EXPECTED[uid]:
            rows = [r.rows for r in check.panels if r.panel == panel]
            assert rows and all(rows), f"{uid} {panel}: {rows} rows"
    falls = checks["cityhealth-resident-safety"].result("Falls by district").series
    assert [(s["tags"]["district"], s["values"][0][1]) for s in falls] == [(DISTRICT, 1)]
    drill = checks["cityhealth-resident-drilldown"].result("Falls").series
    assert [row[2] for s in drill for row in s["values"]] == [RESIDENTS[1]]
    # the Operations board's person panels: public counts equal what the processors read,
    # what the sensitive database stored and the alerts raised (by type, no subject)
    ops = checks["cityhealth-operations"]
    readings = {
        "vitals": sum(decode(p).count for p in vitals),
        "accel_window": sum(decode(p).count for p in motion),
    }
    assert readings == stored
    person = "Readings/s: person streams (counts only)"
    assert scaled_by_tag(ops, person, "channel", 1000) == pytest.approx(readings)
    raised = Counter(a.type for a in out.alerts if TYPES[a.type] == "sensitive")
    assert raised["fall"] == 1
    alerts = "Alerts per minute by type: person alerts (counts only)"
    assert scaled_by_tag(ops, alerts, "type", 60_000) == pytest.approx(dict(raised))
