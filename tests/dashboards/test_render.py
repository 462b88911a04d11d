"""Grafana's InfluxQL interpolation reproduced: macros, intervals, variables (no services)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cityhealth.dashboards import (
    DashboardError,
    TimeRange,
    Variable,
    escape_regex,
    format_duration,
    format_variable,
    interval_ms,
    load_dashboard,
    load_dashboards,
    parse_duration_ms,
    render,
    round_interval,
    select,
)

HOUR_MS = 3_600_000
RANGE = TimeRange(1_700_000_000_000, 1_700_000_000_000 + 6 * HOUR_MS)


def _var(**kw: object) -> Variable:
    base: dict[str, object] = {
        "name": "district",
        "type": "query",
        "query": "",
        "datasource": "",
        "multi": True,
        "include_all": True,
        "all_value": None,
        "current": (),
    }
    base.update(kw)
    return Variable(**base)  # type: ignore[arg-type]


def test_time_filter_and_interval_macros() -> None:
    q = 'SELECT mean("pm25") FROM "air" WHERE $timeFilter GROUP BY time($__interval) fill(none)'
    out = render(q, RANGE, interval_ms(RANGE), {})
    assert out == (
        'SELECT mean("pm25") FROM "air" WHERE time >= 1700000000000ms and '
        "time <= 1700021600000ms GROUP BY time(20s) fill(none)"
    )


def test_interval_ms_and_from_to() -> None:
    q = "count(x) * 1000 / $__interval_ms $__from ${__to} [[__interval]]"
    assert render(q, RANGE, 60_000) == "count(x) * 1000 / 60000 1700000000000 1700021600000 1m"


@pytest.mark.parametrize(
    ("raw", "rounded"),
    [(9, 10), (21_600, 20_000), (86_400, 60_000), (300_000, 300_000), (4e9, 31_536_000_000)],
)
def test_round_interval_is_grafanas(raw: float, rounded: int) -> None:
    assert round_interval(raw) == rounded


def test_panel_min_interval_wins_over_a_finer_computed_one() -> None:
    assert interval_ms(RANGE, min_interval="1h") == HOUR_MS
    assert interval_ms(RANGE, min_interval=">1m") == 60_000
    week = TimeRange(0, 7 * 24 * HOUR_MS)
    assert interval_ms(week, min_interval="1m") == 600_000  # 604.8 s -> 10m
    assert interval_ms(week, max_data_points=100) == 2 * HOUR_MS  # 6048 s -> 2h


def test_durations() -> None:
    assert parse_duration_ms("6h") == 6 * HOUR_MS
    assert parse_duration_ms("1.5s") == 1500
    assert [format_duration(ms) for ms in (500, 20_000, 60_000, 7_200_000, 86_400_000)] == [
        "500ms", "20s", "1m", "2h", "1d",
    ]  # fmt: skip
    assert format_duration(31_536_000_000) == "365d"  # InfluxQL has no "y"
    with pytest.raises(DashboardError, match="not a duration"):
        parse_duration_ms("soon")


def test_variables_all_multi_and_single() -> None:
    q = '"district" =~ /^$district$/ AND "device" =~ /^${device}$/'
    all_custom = format_variable(_var(all_value=".*"), None, ["north"])
    assert all_custom == ".*"
    all_listed = format_variable(_var(), None, ["north", "old.town"])
    assert all_listed == r"(north|old\.town)"
    one = format_variable(_var(), ["old-town"], [])
    device = format_variable(_var(name="device", multi=False, include_all=False), ["p-x"], [])
    assert render(q, RANGE, 1000, {"district": one, "device": device}) == (
        '"district" =~ /^old-town$/ AND "device" =~ /^p-x$/'
    )
    with pytest.raises(DashboardError, match="no 'All'"):
        format_variable(_var(include_all=False), None, [])


def test_escape_regex_like_grafana() -> None:
    assert escape_regex("a.b/c(d)|e*") == r"a\.b\/c\(d\)\|e\*"


def test_unknown_variable_is_an_error_not_a_silent_leftover() -> None:
    with pytest.raises(DashboardError, match=r"unknown variable \$station"):
        render('WHERE "station" =~ /^$station$/', RANGE, 1000, {})


def test_time_range_validation_and_dashboard_default() -> None:
    with pytest.raises(DashboardError, match="empty time range"):
        TimeRange(10, 10)
    dash = select(load_dashboards(), ["cityhealth-operations"])[0]
    tr = TimeRange.from_dashboard(dash, now_ms=10 * 24 * HOUR_MS)
    assert tr.end_ms - tr.start_ms == 6 * HOUR_MS  # "now-6h"


def test_bad_files_and_uids_are_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DashboardError, match="not readable JSON"):
        load_dashboard(tmp_path / "broken.json", tmp_path)
    (tmp_path / "partial.json").write_text(json.dumps({"title": "x", "panels": []}))
    with pytest.raises(DashboardError, match="missing 'uid'"):
        load_dashboard(tmp_path / "partial.json", tmp_path)
    with pytest.raises(DashboardError, match="unknown dashboard uid"):
        select(load_dashboards(), ["nope"])
