"""Dead-letter record shape and topic names/creation (the parts other services read)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from cityhealth.settings import Settings
from ingest.deadletter import MAX_PAYLOAD_BYTES, decode_deadletter, encode_deadletter
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import ALL_BASES, ensure_topics, topics_for
from ingest.topic_reader import read_to_end

ERROR = {"topic": "city/a/wearable/w1/vitals", "rule": "json", "errors": []}


def test_dead_letter_keeps_text_payloads_as_text() -> None:
    value = encode_deadletter(
        "city/a/wearable/w1/vitals", b'{"ts": 1,', ERROR, bridge="b/1", received_at=12.5
    )
    record = json.loads(value)
    assert record == {
        "version": 1,
        "bridge": "b/1",
        "received_at": 12.5,
        "mqtt_topic": "city/a/wearable/w1/vitals",
        "payload": '{"ts": 1,',
        "payload_encoding": "utf-8",
        "payload_size": 9,
        "payload_truncated": False,
        "error": ERROR,
    }
    assert decode_deadletter(value)["raw"] == b'{"ts": 1,'


def test_dead_letter_base64_encodes_binary_and_truncates_huge_payloads() -> None:
    binary = bytes(range(256)) * 4
    record = decode_deadletter(encode_deadletter("t", binary, ERROR, bridge="b", received_at=0))
    assert record["payload_encoding"] == "base64"
    assert record["raw"] == binary
    huge = b"x" * (MAX_PAYLOAD_BYTES + 10)
    record = decode_deadletter(encode_deadletter("t", huge, ERROR, bridge="b", received_at=0))
    assert record["payload_truncated"] is True
    assert record["payload_size"] == len(huge)
    assert record["raw"] == huge[:MAX_PAYLOAD_BYTES]


def test_decode_dead_letter_rejects_other_records() -> None:
    with pytest.raises(ValueError, match="dead-letter"):
        decode_deadletter(b'{"version": 2}')


def test_topic_names_carry_the_prefix() -> None:
    topics = topics_for(Settings(topic_prefix="t1."))
    assert topics.stream("vitals") == "t1.vitals"
    assert topics.deadletter == "t1.deadletter"
    assert topics.alerts == "t1.alerts"
    assert topics.all == tuple(f"t1.{b}" for b in ALL_BASES)
    with pytest.raises(KeyError, match="unknown stream"):
        topics.stream("teleport")


@pytest.mark.stack
def test_ensure_topics_is_idempotent(settings: Settings) -> None:
    created = ensure_topics(settings)
    assert sorted(created) == sorted(topics_for(settings).all)
    assert ensure_topics(settings) == []

    async def describe() -> list[dict]:
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings))
        await admin.start()
        try:
            return await admin.describe_topics(list(topics_for(settings).all))
        finally:
            await admin.close()

    described = asyncio.run(describe())
    assert {d["topic"]: len(d["partitions"]) for d in described} == dict.fromkeys(
        topics_for(settings).all, settings.kafka_partitions
    )
    records = read_to_end(kafka_client_kwargs(settings), topics_for(settings).all)
    assert all(batch == [] for batch in records.values())
