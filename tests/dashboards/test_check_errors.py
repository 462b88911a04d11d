"""``check`` on bad input: a query InfluxDB refuses, an unknown data source, no InfluxDB."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cityhealth.dashboards import Dashboard, DashboardError, TimeRange, check_dashboard
from cityhealth.settings import Settings
from streams.sink import make_sink
from tests.conftest import settings_env

RANGE = TimeRange.last("1h")


def _dashboard(*queries: str, ds: str = "${ds_public}") -> Dashboard:
    model: dict[str, Any] = {
        "uid": "t",
        "title": "t",
        "templating": {
            "list": [
                {
                    "name": "ds_public",
                    "type": "datasource",
                    "query": "influxdb",
                    "current": {"value": "influx-public"},
                }
            ]
        },
        "panels": [
            {
                "id": i + 1,
                "type": "timeseries",
                "title": f"p{i}",
                "targets": [{"refId": "A", "datasource": {"uid": ds}, "query": q}],
            }
            for i, q in enumerate(queries)
        ],
    }
    return Dashboard(Path("t.json"), "", model)


def test_refused_statement_is_reported_and_the_rest_still_run(settings: Settings) -> None:
    dbs = {"sensitive": settings.influx_db_sensitive, "public": settings.influx_db_public}
    dash = _dashboard(
        'SELECT mean("pm25") FROM "air" WHERE $timeFilter GROUP BY time($__interval',
        "SHOW MEASUREMENTS",
    )
    with make_sink(settings) as sink:
        sink.ensure_databases()
        sink.write(settings.influx_db_public, b"air,station=s1 pm25=1")
        res = check_dashboard(dash, sink, dbs, RANGE)
    bad, good = res.panels
    assert bad.error is not None and "error parsing query" in bad.error
    assert good.error is None and good.rows == 1


def test_unprovisioned_datasource_is_an_error(settings: Settings) -> None:
    dbs = {"sensitive": settings.influx_db_sensitive, "public": settings.influx_db_public}
    with make_sink(settings) as sink, pytest.raises(DashboardError, match="not provisioned"):
        check_dashboard(_dashboard("SHOW MEASUREMENTS", ds="other-uid"), sink, dbs, RANGE)


def test_unreachable_influxdb_exits_2_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = settings_env(Settings(data_dir=tmp_path, influx_url=f"http://127.0.0.1:{port}"))
    app = "from cityhealth.commands.dashboards import dashboards_app; dashboards_app()"
    out = subprocess.run(
        [sys.executable, "-c", app, "check", "--uid", "cityhealth-operations", "--retry-s", "0.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "error: query: InfluxDB unavailable" in out.stderr and "Traceback" not in out.stderr
