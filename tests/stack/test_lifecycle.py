"""`cityhealth stack up | status | down` through the real CLI on a private stack."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from cityhealth.credentials import influx_password
from cityhealth.settings import Settings
from cityhealth.stack.process import ProcessRecord, is_alive, read_record
from tests.conftest import RunningStack, settings_env, stack_settings

pytestmark = pytest.mark.stack
SERVICES = ("mqtt", "kafka", "influx")


def _stack(cli: Path, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cli), "stack", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _records(data_dir: Path) -> dict[str, ProcessRecord]:
    found = {name: read_record(data_dir / name / "service.pid") for name in SERVICES}
    return {name: rec for name, rec in found.items() if rec is not None}


def _processes_mentioning(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (a data dir) in their argv."""
    hits = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in argv:
            hits.append(f"{proc.name}: {argv[:200]}")
    return hits


def _actions(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in stdout.splitlines() if line.strip()}


def test_status_json_reports_the_running_stack(cli: Path, stack: RunningStack) -> None:
    out = _stack(cli, stack.settings, "status", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    expected = {
        "mqtt": {"host": "127.0.0.1", "port": stack.mqtt_port, "healthy": True},
        "kafka": {"bootstrap": stack.kafka_bootstrap, "healthy": True},
        "influx": {"url": stack.influx_url, "api": "v1", "healthy": True},
    }
    for service, keys in expected.items():
        assert {k: report[service][k] for k in keys} == keys


def test_up_reuses_down_stops_everything_and_keeps_data(cli: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = stack_settings(data_dir)
    try:
        first = _stack(cli, settings, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        assert _actions(first.stdout) == dict.fromkeys(SERVICES, "started")
        records = _records(data_dir)
        assert set(records) == set(SERVICES)
        assert all(is_alive(rec) for rec in records.values())

        # Idempotent: a second `up` finds the healthy stack and starts nothing.
        second = _stack(cli, settings, "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert _actions(second.stdout) == dict.fromkeys(SERVICES, "reused")
        assert _records(data_dir) == records

        auth = (settings.influx_username, influx_password(settings).get_secret_value())
        write = requests.post(
            f"{settings.influx_url}/write",
            params={"db": settings.influx_db_public},
            data=b"air,station=kept pm25=12.5 1700000000000000000",
            auth=auth,
            timeout=10,
        )
        assert write.status_code == 204, write.text
        cluster_id = (data_dir / "kafka" / "data" / "meta.properties").read_text()

        down = _stack(cli, settings, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert not any(is_alive(rec) for rec in records.values())
        assert _processes_mentioning(data_dir) == []
        assert _records(data_dir) == {}

        status = _stack(cli, settings, "status", "--json")
        assert status.returncode == 1
        assert {s: v["healthy"] for s, v in json.loads(status.stdout).items()} == dict.fromkeys(
            SERVICES, False
        )

        # Data survives `down`: same Kafka cluster, same InfluxDB user and points.
        again = _stack(cli, settings, "up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert (data_dir / "kafka" / "data" / "meta.properties").read_text() == cluster_id
        query = requests.post(
            f"{settings.influx_url}/query",
            data={"q": 'SELECT "pm25" FROM "air"', "db": settings.influx_db_public},
            auth=auth,
            timeout=10,
        ).json()
        assert query["results"][0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", 12.5]]

        purge = _stack(cli, settings, "down", "--purge")
        assert purge.returncode == 0, purge.stdout + purge.stderr
        assert _processes_mentioning(data_dir) == []
        assert not any((data_dir / name).exists() for name in SERVICES)
    finally:
        _stack(cli, settings, "down")
    assert _processes_mentioning(data_dir) == []


@pytest.mark.parametrize("service", SERVICES)
def test_up_fails_clearly_when_a_port_is_taken(cli: Path, tmp_path: Path, service: str) -> None:
    settings = stack_settings(tmp_path / "data")
    port = {
        "mqtt": settings.mqtt_port,
        "kafka": int(settings.kafka_bootstrap.rsplit(":", 1)[1]),
        "influx": int(settings.influx_url.rsplit(":", 1)[1]),
    }[service]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        out = _stack(cli, settings, "up")
    assert out.returncode != 0
    assert f"{service}: port 127.0.0.1:{port} is already in use" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert _processes_mentioning(tmp_path / "data") == []


def test_up_reports_the_log_of_a_service_that_dies(cli: Path, tmp_path: Path) -> None:
    """A service exiting at start-up fails `up` with its last log lines; nothing stays up."""
    data_dir = tmp_path / "data"
    settings = stack_settings(data_dir)
    # InfluxDB cannot create its meta store where a plain file is in the way.
    (data_dir / "influx" / "data").mkdir(parents=True)
    (data_dir / "influx" / "data" / "meta").write_text("not a directory")
    out = _stack(cli, settings, "up")
    assert out.returncode != 0
    assert "influx exited during start-up" in out.stderr
    assert "meta" in out.stderr.split("Last lines of", 1)[1]
    assert _processes_mentioning(data_dir) == []


def test_one_service_restarts_with_its_data(stack: RunningStack, settings: Settings) -> None:
    """stop_service/start_service (for restart tests): InfluxDB comes back with its points."""
    auth = (settings.influx_username, influx_password(settings).get_secret_value())
    write = requests.post(
        f"{stack.influx_url}/write",
        params={"db": settings.influx_db_sensitive, "precision": "s"},
        data=b"vitals,device=p1 heart_rate=71 1700000000",
        auth=auth,
        timeout=10,
    )
    assert write.status_code == 204, write.text
    try:
        assert stack.manager.stop_service("influx") is True
        assert stack.manager.status()["influx"]["healthy"] is False
        assert stack.manager.status()["mqtt"]["healthy"] is True
    finally:
        assert stack.manager.start_service("influx") == "started"
    result = stack.influx_query(
        'SELECT "heart_rate" FROM "vitals"', db=settings.influx_db_sensitive
    ).json()
    assert result["results"][0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", 71]]
    assert stack.manager.start_service("influx") == "reused"


def test_concurrent_up_calls_start_one_stack_and_down_without_a_stack_is_quiet(
    cli: Path, tmp_path: Path
) -> None:
    """Two `up` at once on one data directory: one starts, the other waits and reuses."""
    data_dir = tmp_path / "data"
    settings = stack_settings(data_dir)
    nothing = _stack(cli, settings, "down")  # nothing ever ran here
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert not data_dir.exists()
    try:
        ups = [
            subprocess.Popen(
                [str(cli), "stack", "up"],
                env=settings_env(settings),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [proc.communicate(timeout=300) for proc in ups]
        assert [proc.returncode for proc in ups] == [0, 0], outs
        actions = sorted(tuple(_actions(out).values()) for out, _ in outs)
        assert actions == [("reused",) * 3, ("started",) * 3], outs
        records = _records(data_dir)
        assert set(records) == set(SERVICES) and all(map(is_alive, records.values()))
        # exactly one process per service under this data directory
        for name in SERVICES:
            assert len(_processes_mentioning(data_dir / name)) == 1, name
    finally:
        down = _stack(cli, settings, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert _processes_mentioning(data_dir) == []


def test_influxdb_runs_behind_the_live_path(stack: RunningStack, settings: Settings) -> None:
    """The local InfluxDB runs at niceness ``influx_nice`` (its cache snapshots and
    compactions must not starve the bridge, Kafka and the workers), every thread of it."""
    record = read_record(settings.data_dir / "influx" / "service.pid")
    assert record is not None and is_alive(record)
    tasks = list(Path(f"/proc/{record.pid}/task").iterdir())
    nice = {int(t.joinpath("stat").read_text().rsplit(")", 1)[1].split()[16]) for t in tasks}
    assert Path(f"/proc/{record.pid}/comm").read_text().strip() == "influxd"
    assert nice == {settings.influx_nice} and settings.influx_nice == 10
