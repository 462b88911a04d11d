"""``cityhealth bench ingest`` end to end on the real stack, and the sessions it leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityhealth.settings import Settings
from tests.conftest import RunningStack
from tests.pipeline.test_bridge_retire import PersistentSubscriber

pytestmark = pytest.mark.stack


def test_bench_ingest_reports_and_ends_its_sessions(
    cli: Path, stack: RunningStack, settings: Settings, tmp_path: Path
) -> None:
    report = stack.bench_report(
        cli, tmp_path / "ingest.json", "ingest", "--messages", "300", "--repeat", "1"
    )
    assert len(report["bridge_msgs_per_s"]) == 1 and report["bridge_msgs_per_s"][0] > 0
    assert len(report["baseline_msgs_per_s"]) == 1 and report["baseline_msgs_per_s"][0] > 0
    # Every reading the bridge drained is in Kafka, none twice.
    assert report["bridge_readings_in_kafka"] == report["expected_readings"] >= 300
    # One session per drain, each gone afterwards: a session left on the broker would
    # queue a copy of every later message (docs/INGEST.md).
    assert len(report["mqtt_client_ids"]) == 2
    for client_id in report["mqtt_client_ids"]:
        sub = PersistentSubscriber(settings, client_id)
        client = sub.connect()
        try:
            assert sub.session_present is False, client_id
        finally:
            client.disconnect()
            client.loop_stop()
