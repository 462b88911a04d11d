"""``cityhealth up`` end to end on the smoke scenario, on the real Mosquitto, Kafka and
InfluxDB: nothing valid is lost, every fall and vital anomaly alerts, malformed messages
become dead letters with reasons."""

from __future__ import annotations

from typing import Any

from cityhealth.pipeline.summary import check_shape
from cityhealth.pipeline.truth import REQUIRED
from cityhealth.settings import Settings
from ingest.deadletter import decode_deadletter
from ingest.kafka_topics import topics_for
from ingest.topic_reader import read_to_end


def test_run_drains_and_summary_has_the_contract_shape(smoke: dict[str, Any]) -> None:
    assert smoke["_exit_code"] == 0, smoke["_stderr"]
    assert check_shape(smoke) == []
    assert smoke["drain"]["completed"], smoke["drain"]
    assert smoke["influx"]["api"] == "v1"


def test_every_valid_reading_published_is_stored(smoke: dict[str, Any]) -> None:
    by_channel = smoke["published_by_channel"]
    assert sum(by_channel.values()) == smoke["published"] > 0
    stored = {c: smoke["stored"][smoke["raw_channels"][c]] for c in by_channel}
    assert stored == by_channel
    assert smoke["ingested"] == smoke["published"]


def test_every_fall_and_vital_anomaly_alerts(smoke: dict[str, Any]) -> None:
    by_type = smoke["truth"]["by_type"]
    present = [t for t in REQUIRED if by_type.get(t, {}).get("events")]
    # smoke.toml guarantees each type within the first 20 s.
    assert set(present) == set(REQUIRED), by_type
    for etype in REQUIRED:
        missed = [e for e in smoke["truth"]["missed"] if e["type"] == etype]
        assert by_type[etype]["alerted"] == by_type[etype]["events"], (etype, by_type, missed)
    assert smoke["alerts"]["duplicates"] == 0
    latency = smoke["alert_latency_s"]
    assert latency["count"] == smoke["alerts"]["total"] > 0
    assert 0.0 <= latency["p50"] <= latency["p99"]


def test_malformed_messages_become_dead_letters_with_reasons(
    smoke: dict[str, Any], smoke_settings: Settings
) -> None:
    assert smoke["malformed_published"] > 0
    assert smoke["dead_lettered"] == smoke["malformed_published"]
    assert sum(smoke["dead_letter_reasons"].values()) == smoke["dead_lettered"]
    topic = topics_for(smoke_settings).deadletter
    records = read_to_end(smoke_settings.kafka_bootstrap, [topic])[topic]
    assert len(records) == smoke["dead_lettered"]
    for rec in records:
        letter = decode_deadletter(rec.value)
        assert letter["mqtt_topic"] and letter["raw"] is not None
        assert letter["error"]["rule"], letter["error"]
