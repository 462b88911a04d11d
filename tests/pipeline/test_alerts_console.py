"""``cityhealth alerts`` against the real Kafka: read_committed, deduplication, filters.

Alerts are produced as the workers produce them (``streams.alerts.Alert.to_json``), both
plainly and inside Kafka transactions, one of them aborted; the console runs as a
subprocess with the test's settings in its environment.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from cityhealth.settings import Settings
from ingest.kafka_client import kafka_client_kwargs
from streams.alerts import Alert

# The command through its own register(), independent of the CLI's module list.
_SCRIPT = """
import typer
from cityhealth.commands.alerts import register
app = typer.Typer()
app.callback()(lambda: None)
register(app)
app()
"""
T0 = 1_763_712_000.0


def alert(type_: str, severity: str, subject: str, district: str, start: float) -> Alert:
    kind = "district" if type_ == "aqi_category" else "device"
    return Alert(
        type=type_,
        severity=severity,  # type: ignore[arg-type]
        subject=subject,
        subject_kind=kind,  # type: ignore[arg-type]
        district=district,
        start=start,
        sensor_ts=start + 2.5,
        message=f"{type_} test",
        value=1.5,
        evidence={"impact_ts": start, "score": 0.9991},
        emitted_ts=start + 3.0,
    )


FALL = alert("fall", "critical", "p-aaa", "north", T0)
ANOMALY = alert("anomaly", "warning", "p-bbb", "south", T0 + 10)
AQI = alert("aqi_category", "info", "north", "north", T0 + 20)
HEAT = alert("heat_episode", "warning", "st-1", "south", T0 + 30)
ABORTED = alert("panic", "critical", "p-ccc", "north", T0 + 40)
LATE = alert("inactivity", "warning", "p-ddd", "east", T0 + 50)
COMMITTED = {a.id for a in (FALL, ANOMALY, AQI, HEAT)}


async def _produce(settings: Settings, topic: str) -> None:
    """Plain and transactional records, with repeats, one aborted alert and one bad record."""
    plain = AIOKafkaProducer(**kafka_client_kwargs(settings), acks="all")
    txn = AIOKafkaProducer(
        **kafka_client_kwargs(settings),
        transactional_id=f"{topic}-test",
        enable_idempotence=True,
    )
    await plain.start()
    await txn.start()
    try:
        for a in (FALL, ANOMALY, FALL):
            await plain.send_and_wait(topic, a.to_json(), key=a.subject.encode(), partition=0)
        await plain.send_and_wait(topic, b"not json", partition=1)
        await txn.begin_transaction()
        await txn.send_and_wait(topic, ABORTED.to_json(), partition=0)
        await txn.send_and_wait(topic, ABORTED.to_json(), partition=1)
        await txn.abort_transaction()
        await plain.send_and_wait(topic, AQI.to_json(), partition=1)
        async with txn.transaction():
            await txn.send_and_wait(topic, HEAT.to_json(), partition=1)
            await txn.send_and_wait(topic, ANOMALY.to_json(), partition=1)  # a repeat
    finally:
        await plain.stop()
        await txn.stop()


@pytest.fixture
def topic(settings: Settings, create_topics: Any) -> str:
    (name,) = create_topics("alerts", partitions=2)
    asyncio.run(_produce(settings, name))
    return name


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHEALTH_")}
    return env | settings.to_env()


def console(settings: Settings, *args: str, **popen: Any) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", _SCRIPT, "alerts", *args]
    return subprocess.Popen(cmd, env=_env(settings), text=True, **popen)


def run(settings: Settings, *args: str) -> tuple[list[dict[str, Any]], str]:
    """Run the console to completion; returns the JSON alerts printed and stderr."""
    proc = console(settings, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()], err


def ids(alerts: list[dict[str, Any]]) -> list[str]:
    return sorted(a["id"] for a in alerts)


def test_json_prints_exactly_the_committed_alerts_once(settings: Settings, topic: str) -> None:
    shown, _ = run(settings, "--json", "--from-beginning", "--max", "4")
    assert ids(shown) == sorted(COMMITTED)
    # Reading the whole topic (stop when idle) shows nothing more: not the aborted alert,
    # no repeat; the undecodable record is reported on stderr, not a crash.
    shown, err = run(settings, "--json", "--from-beginning", "--timeout", "3")
    assert ids(shown) == sorted(COMMITTED)
    assert {a["id"]: a for a in shown}[FALL.id] == FALL.to_dict()
    bad = [json.loads(line) for line in err.splitlines() if "bad_alert_record" in line]
    assert [(b["partition"], b["offset"]) for b in bad] == [(1, 0)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--severity", "warning"), [FALL, ANOMALY, HEAT]),
        (("--type", "fall", "--type", "aqi_category"), [FALL, AQI]),
        (("--district", "south"), [ANOMALY, HEAT]),
        (("--severity", "critical", "--district", "north"), [FALL]),
    ],
)
def test_filters(settings: Settings, topic: str, args: tuple[str, ...], expected: list) -> None:
    shown, _ = run(settings, "--json", "--from-beginning", "--timeout", "3", *args)
    assert ids(shown) == sorted(a.id for a in expected)


def test_default_is_latest_and_sigterm_stops_cleanly(settings: Settings, topic: str) -> None:
    proc = console(settings, "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "reading" in proc.stderr.readline()  # positioned at the end of each partition
        asyncio.run(_send(settings, topic, LATE))
        assert json.loads(proc.stdout.readline())["id"] == LATE.id
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert out == ""


async def _send(settings: Settings, topic: str, a: Alert) -> None:
    producer = AIOKafkaProducer(**kafka_client_kwargs(settings), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, a.to_json(), partition=0)
    finally:
        await producer.stop()


def test_group_resumes_where_it_stopped(settings: Settings, topic: str) -> None:
    group = settings.topic_prefix + "console"
    first, _ = run(settings, "--json", "--from-beginning", "--group", group, "--timeout", "5")
    assert ids(first) == sorted(COMMITTED)
    asyncio.run(_send(settings, topic, LATE))
    again, _ = run(settings, "--json", "--from-beginning", "--group", group, "--timeout", "5")
    assert ids(again) == [LATE.id]  # committed offsets win over --from-beginning


@pytest.mark.parametrize(
    ("args", "message"), [(("--severity", "urgent"), "--severity"), (("--type", "flood"), "flood")]
)
def test_bad_options_are_refused(args: tuple[str, ...], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, "alerts", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr


def test_plain_lines_when_not_a_terminal(settings: Settings, topic: str) -> None:
    proc = console(
        settings, "--from-beginning", "--max", "4", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = {line.split()[4]: line.split() for line in out.splitlines()}
    assert set(lines) == {"p-aaa", "p-bbb", "north", "st-1"}
    when, severity, type_, district, _, message, kind, *evidence = lines["p-aaa"]
    assert (when, severity, type_, district) == (
        "2025-11-21T08:00:02Z",
        "critical",
        "fall",
        "north",
    )
    assert (message, kind) == ("fall", "test")
    assert evidence == ["impact_ts=08:00:00", "score=0.9991"]


def test_live_table_newest_first() -> None:
    from collections import deque

    from rich.console import Console

    from cityhealth.commands.alerts import table

    rows = deque([HEAT.to_dict(), FALL.to_dict()])  # the console prepends: newest first
    screen = Console(file=io.StringIO(), record=True, width=160, color_system="truecolor")
    screen.print(table(rows, "alerts"))
    text = screen.export_text(clear=False)
    assert text.index("st-1") < text.index("p-aaa")
    assert "08:00:02" in text and "fall test impact_ts=08:00:00 score=0.9991" in text
    styled = screen.export_text(styles=True)
    assert "\x1b[1;31mcritical" in styled  # critical in bold red


def test_unreachable_kafka_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHEALTH_")}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, "alerts", "--json"],
        env=env | {"CITYHEALTH_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "alerts console: KafkaConnectionError" in proc.stderr
    assert "Unclosed" not in proc.stderr and proc.stdout == ""


def test_reader_going_away_is_a_normal_stop(settings: Settings, topic: str) -> None:
    """``cityhealth alerts --json | head -n 1``: the next write ends the console, code 0."""
    proc = console(
        settings, "--json", "--from-beginning", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["id"] in COMMITTED
    proc.stdout.close()
    asyncio.run(_send(settings, topic, LATE))
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and "BrokenPipe" not in err
