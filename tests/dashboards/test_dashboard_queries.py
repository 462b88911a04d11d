"""Every dashboard query rendered as Grafana would and run against the real InfluxDB.

A small city (tests/dashboards/citydata.py) is written once through ``streams.sink`` into
this module's own databases; each dashboard's variable and panel queries must parse,
return rows, and, for the panels below, return exactly what was written.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cityhealth.dashboards import (
    Dashboard,
    DashboardCheck,
    TimeRange,
    check_dashboard,
    load_dashboards,
    select,
)
from cityhealth.settings import Settings
from kernels.aqi import category
from streams.sink import InfluxSink, make_sink
from tests.conftest import RunningStack, settings_env
from tests.dashboards.citydata import (
    DISTRICTS,
    RESIDENTS_PER_DISTRICT,
    STATIONS_PER_DISTRICT,
    Truth,
    write_city,
)
from tests.dashboards.rates import scaled_by_tag, scaled_sum, total

DASHBOARDS = load_dashboards()


@dataclass
class City:
    settings: Settings
    sink: InfluxSink
    truth: Truth
    time_range: TimeRange

    @property
    def databases(self) -> dict[str, str]:
        return {
            "sensitive": self.settings.influx_db_sensitive,
            "public": self.settings.influx_db_public,
        }

    def check(self, uid: str, **selections: list[str]) -> DashboardCheck:
        dash = select(DASHBOARDS, [uid])[0]
        return check_dashboard(dash, self.sink, self.databases, self.time_range, selections)


@pytest.fixture(scope="module")
def city(stack: RunningStack) -> Iterator[City]:
    settings = stack.isolated_settings("dash")
    sink = make_sink(settings)
    sink.ensure_databases()  # retention policies of DATA_MODEL.md (the queries use the default)
    now = int(time.time())
    start = now // 3600 * 3600 - 3 * 3600  # three whole hours, all in the past
    truth = write_city(sink, settings, start)
    try:
        yield City(settings, sink, truth, TimeRange((start - 3600) * 1000, now * 1000))
    finally:
        sink.close()


def _by_tag(series: list[dict[str, Any]], tag: str, column: int = 1) -> dict[str, Any]:
    """{tag value: the column of the series' single row}."""
    out = {}
    for s in series:
        assert len(s["values"]) == 1, s
        out[s["tags"][tag]] = s["values"][0][column]
    return out


def _table(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as dicts with the series' tags merged in (Grafana's table format)."""
    return [
        {**s.get("tags", {}), **dict(zip(s["columns"], row, strict=True))}
        for s in series
        for row in s["values"]
    ]


@pytest.mark.parametrize("dash", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
def test_every_query_parses_and_returns_rows(city: City, dash: Dashboard) -> None:
    result = city.check(dash.uid)
    assert result.panels, "a dashboard without queries"
    for r in [*result.variables, *result.panels]:
        assert r.error is None, f"{r.panel} {r.ref_id}: {r.error}\n{r.query}"
        assert r.rows > 0, f"{r.panel} {r.ref_id} returned nothing:\n{r.query}"
        assert "$" not in r.query.replace("$/", "/"), r.query  # fully rendered


def test_air_quality_values(city: City) -> None:
    tr = city.truth
    res = city.check("cityhealth-air-heat")
    now = _by_tag(res.result("Current NowCast AQI by district").series, "district")
    assert now == tr.district_aqi_last
    rows = _table(res.result("Stations: NowCast AQI and category").series)
    assert {r["station"]: r["AQI"] for r in rows} == tr.nowcast_last
    assert all(r["category"] == category(r["AQI"]).name for r in rows)
    assert all(r["district"] == tr.stations[r["station"]][0] for r in rows)
    per_station = res.result("NowCast AQI per station").series
    worst: Counter[str] = Counter()
    for s in per_station:
        district = tr.stations[s["tags"]["station"]][0]
        worst[district] = max(worst[district], max(v for _, v in s["values"]))
    assert dict(worst) == tr.nowcast_max_per_district
    heat = _by_tag(res.result("Highest heat index by district").series, "district")
    assert heat == pytest.approx(tr.heat_max_per_district)


def test_pollution_map_joins_positions_and_aqi_by_station(city: City) -> None:
    res = city.check("cityhealth-air-heat")
    positions = _table(res.result("Pollution map", "A").series)
    assert {r["station"]: (r["latitude"], r["longitude"]) for r in positions} == {
        s: (lat, lon) for s, (_, lat, lon) in city.truth.stations.items()
    }
    aqi = _table(res.result("Pollution map", "B").series)
    # Grafana's joinByField("station") needs the same keys on both sides
    assert {r["station"] for r in aqi} == {r["station"] for r in positions}


def test_variable_selection_narrows_every_panel(city: City) -> None:
    res = city.check("cityhealth-air-heat", district=["old-town"])
    assert res.values["district"] == "old-town"
    stations = {row[1] for s in res.variables[1].series for row in s["values"]}
    assert stations == {s for s, v in city.truth.stations.items() if v[0] == "old-town"}
    assert res.values["station"] == ".*"  # All (custom all-value): the district narrows
    table = _table(res.result("Stations: NowCast AQI and category").series)
    assert {r["district"] for r in table} == {"old-town"}
    safety = city.check("cityhealth-resident-safety", district=["north", "old-town"])
    falls = _by_tag(safety.result("Falls by district").series, "district")
    assert falls == {d: n for d, n in city.truth.falls_per_district.items() if d != "south"}


def test_operations_rates_add_up_to_what_was_stored(city: City) -> None:
    tr = city.truth
    res = city.check("cityhealth-operations")
    assert scaled_sum(res, "Readings/s: air-quality stream", "A", 1000) == pytest.approx(
        tr.air_readings
    )
    # person streams: public per-district counts, one series per raw measurement (channel)
    person = "Readings/s: person streams (counts only)"
    measured = scaled_by_tag(res, person, "channel", 1000)
    assert measured == pytest.approx({m: float(n) for m, n in tr.messages.items()})
    alerts = "Alerts per minute by type: person alerts (counts only)"
    per_type = Counter[str]()
    for (kind, _), n in tr.person_alerts.items():
        per_type[kind] += n
    assert scaled_by_tag(res, alerts, "type", 60_000) == pytest.approx(
        {k: float(n) for k, n in per_type.items()}
    )
    public = "Alerts per minute by type: public"
    assert {s["tags"]["type"] for s in res.result(public).series} == set(tr.public_alerts)
    assert scaled_sum(res, public, "A", 60_000) == pytest.approx(tr.public_alerts.total())
    # summed across the partition tag per minute (each partition holds half the devices)
    online = res.result("Devices online per district").series
    assert {s["tags"]["district"] for s in online} == set(DISTRICTS)
    assert {max(v[1] for v in s["values"] if v[1] is not None) for s in online} == {
        2 * RESIDENTS_PER_DISTRICT
    }
    stations = res.result("Air stations reporting per district").series
    assert {max(v[1] for v in s["values"] if v[1] is not None) for s in stations} == {
        STATIONS_PER_DISTRICT
    }
    per_district = res.result("Alerts per district (all types)").series
    assert {
        s["tags"]["district"]: sum(v[1] for v in s["values"] if v[1] is not None)
        for s in per_district
    } == tr.district_alerts


def test_operations_person_counts_narrow_by_district(city: City) -> None:
    """The public counts carry the district: the person panels now follow the variable."""
    tr = city.truth
    res = city.check("cityhealth-operations", district=["old-town"])
    person = "Readings/s: person streams (counts only)"
    expected = Counter[str]()
    for (district, channel, _), n in tr.readings.items():
        if district == "old-town" and channel != "air":
            expected[channel] += n
    assert scaled_by_tag(res, person, "channel", 1000) == pytest.approx(
        {k: float(n) for k, n in expected.items()}
    )
    alerts = "Alerts per minute by type: person alerts (counts only)"
    per_type = Counter[str]()
    for (kind, district), n in tr.person_alerts.items():
        if district == "old-town":
            per_type[kind] += n
    assert scaled_by_tag(res, alerts, "type", 60_000) == pytest.approx(
        {k: float(n) for k, n in per_type.items()}
    )


def test_resident_safety_aggregates(city: City) -> None:
    tr = city.truth
    res = city.check("cityhealth-resident-safety")
    assert _by_tag(res.result("Falls by district").series, "district") == dict(
        tr.falls_per_district
    )
    high = _by_tag(res.result("Residents with a high NEWS2 per district").series, "district")
    assert high == {d: n for d, n in tr.high_news2_residents.items() if n}
    bands = Counter[str]()
    for ref, band in zip("ABCD", ("low", "low_medium", "medium", "high"), strict=True):
        bands[band] = int(total(res.result("NEWS2 band distribution per district", ref).series))
    assert bands == tr.news2_band_minutes
    panic = _by_tag(res.result("Panic presses by district").series, "district")
    assert panic == dict(tr.panic_per_district)
    battery = _by_tag(res.result("Wearables with low battery per district").series, "district")
    assert battery == dict(tr.low_battery_per_district)
    alerts = _table(res.result("Person alerts by type and district").series)
    got = Counter[tuple[str, str]]()
    for r in alerts:
        got[(r["type"], r["district"])] += r["alerts"]
    assert got == tr.person_alerts


def test_drilldown_defaults_to_the_first_pseudonym(city: City) -> None:
    res = city.check("cityhealth-resident-drilldown")
    first = sorted(city.truth.residents)[0]
    assert res.values["device"] == first
    assert res.result("Vital signs").rows == 180  # one reading a minute for 3 h
    latest = _table(res.result("Latest NEWS2 per resident").series)
    assert {r["device"] for r in latest} == set(city.truth.residents)


def test_cli_check_reports_every_query(city: City) -> None:
    """``cityhealth dashboards check`` (the command group run directly) exits 0 with rows."""
    app = "from cityhealth.commands.dashboards import dashboards_app; dashboards_app()"
    out = subprocess.run(
        [sys.executable, "-c", app, "check", "--since", "5h", "--require-rows", "--json"],
        env=settings_env(city.settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout[-2000:]
    report = json.loads(out.stdout)
    assert report["ok"] is True
    expected = sum(
        len(city.check(d.uid).panels) + len(city.check(d.uid).variables) for d in DASHBOARDS
    )
    assert len(report["queries"]) == expected
    assert all(q["rows"] > 0 and q["error"] is None for q in report["queries"])


def test_cli_check_fails_on_an_empty_database(stack: RunningStack) -> None:
    empty = stack.isolated_settings("empty")
    app = "from cityhealth.commands.dashboards import dashboards_app; dashboards_app()"
    out = subprocess.run(
        [sys.executable, "-c", app, "check", "--uid", "cityhealth-operations", "--require-rows"],
        env=settings_env(empty),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1
    assert "FAIL cityhealth-operations | Devices online per district A" in out.stdout
