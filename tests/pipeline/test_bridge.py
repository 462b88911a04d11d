"""The ingest bridge against real Mosquitto and Kafka: batches, pseudonyms, dead letters."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cityhealth.bench.ingest_samples import malformed_messages, sample_messages
from cityhealth.settings import Settings
from ingest.batch import decode as decode_batch
from ingest.bridge import Bridge, BridgeConfig
from ingest.deadletter import decode_deadletter
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import ensure_topics, topics_for
from ingest.topic_reader import read_to_end
from tests.pipeline import test_bridge_support as support
from tests.pipeline.test_bridge_support import (
    expected_keys,
    publish,
    read_kafka,
    unique,
    wait_for,
    wait_for_readings,
)

pytestmark = pytest.mark.stack


@pytest.fixture
def mqtt_prefix(settings: Settings) -> str:
    return support.mqtt_prefix(settings)


@pytest.fixture
def bridge(
    request: pytest.FixtureRequest, settings: Settings, mqtt_prefix: str
) -> Iterator[Bridge]:
    """A started bridge; ``decoders`` (indirect parameter) defaults to one process."""
    ensure_topics(settings)
    config = BridgeConfig(
        client_id=unique("bridge"),
        session_expiry_s=60,
        batch_max_readings=100,
        decoders=getattr(request, "param", 1),
    )
    bridge = Bridge(settings, config, mqtt_prefix=mqtt_prefix)
    bridge.start()
    yield bridge
    assert bridge.stop(timeout_s=10), "graceful stop left messages un-acked"


@pytest.mark.parametrize("bridge", [0, 1, 2], indirect=True, ids=lambda n: f"decoders={n}")
def test_valid_readings_arrive_as_pseudonymised_columnar_batches(
    settings: Settings, mqtt_prefix: str, bridge: Bridge
) -> None:
    samples = sample_messages(1000, now=time.time(), prefix=mqtt_prefix)
    publish(settings, samples.messages)

    want = expected_keys(settings, samples.keys)
    try:
        content = wait_for_readings(settings, len(want))
    except AssertionError:
        c = read_kafka(settings)
        raise AssertionError(f"{bridge.snapshot()} {c.by_stream}") from None
    assert content.by_stream == samples.by_stream
    assert len(content.keys) == len(want)  # a clean run duplicates nothing
    assert content.unique_keys == want
    assert content.partitions_ok, "a device landed outside its murmur2 partition"
    # Personal ids never leave ingest in clear; station ids do (public infrastructure).
    for raw in samples.personal_ids:
        assert raw.encode() not in content.stream_bytes, raw
    for station in samples.station_ids:
        assert station.encode() in content.stream_bytes, station
    assert content.deadletters == []
    # Every MQTT message is acknowledged once Kafka acknowledged its batch.
    wait_for(lambda: bridge.snapshot()["acked"] == len(samples.messages), 30, "all PUBACKs")
    stats = bridge.snapshot()
    assert stats["received"] == stats["valid"] == len(samples.messages)
    assert stats["readings_by_stream"] == samples.by_stream
    assert stats["in_flight"] == 0 and stats["dead_lettered"] == 0


def test_batches_are_bounded_and_name_their_producer(
    settings: Settings, mqtt_prefix: str, bridge: Bridge
) -> None:
    samples = sample_messages(120, now=time.time(), prefix=mqtt_prefix)
    publish(settings, samples.messages)
    wait_for(lambda: bridge.snapshot()["acked"] == 120, 60, "all PUBACKs")
    topics = topics_for(settings)
    records = read_to_end(kafka_client_kwargs(settings), topics.streams)
    producers = set()
    for name in topics.streams:
        for record in records[name]:
            assert record.key is None
            batch = decode_batch(record.value)  # checks FORMAT_VERSION
            assert topics.stream(batch.stream) == name
            assert 1 <= len(batch["ts"]) <= bridge.config.batch_max_readings
            producers.add(batch.producer)
    assert producers == {bridge.config.bridge_id}


def test_malformed_payloads_become_dead_letters_with_reasons(
    settings: Settings, mqtt_prefix: str, bridge: Bridge
) -> None:
    bad = malformed_messages(prefix=mqtt_prefix)
    good = sample_messages(50, now=time.time(), prefix=mqtt_prefix)
    publish(settings, [(t, p) for t, p, _ in bad] + good.messages)

    total = len(bad) + len(good.messages)
    wait_for(lambda: bridge.snapshot()["acked"] == total, 60, "all PUBACKs")
    stats = bridge.snapshot()
    assert stats["received"] == total
    assert stats["dead_lettered"] == len(bad)
    assert stats["valid"] == len(good.messages)

    content = read_kafka(settings)
    assert content.by_stream == good.by_stream  # nothing else was lost
    letters = {}
    for value in content.deadletters:
        letter = decode_deadletter(value)
        letters[letter["mqtt_topic"]] = letter
    assert len(letters) == len(bad)
    for topic, payload, rule in bad:
        letter = letters[topic]
        assert letter["raw"] == payload
        assert letter["payload_encoding"] == ("base64" if rule == "encoding" else "utf-8")
        assert letter["error"]["rule"] == rule
        assert letter["error"]["errors"][0]["message"]
        assert letter["bridge"] == bridge.config.bridge_id
        assert abs(letter["received_at"] - time.time()) < 600
    assert stats["rejected_by_rule"] == {rule: 1 for _, _, rule in bad}
