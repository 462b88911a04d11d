"""Independent clients round-trip real data through each service of the local stack."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any

import paho.mqtt.client as mqtt
import requests
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.structs import TopicPartition
from pydantic import SecretStr

from cityhealth.credentials import influx_password
from cityhealth.settings import Settings
from cityhealth.stack import influx_query
from ingest.mqtt_auth import MqttRole, mqtt_credentials
from tests.conftest import RunningStack

DEADLINE_S = 60.0  # generous failure deadline, never a performance assertion


def _mqtt_client(name: str, settings: Settings, role: MqttRole) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    client.username_pw_set(*mqtt_credentials(settings, role))
    return client


def test_mqtt_publish_subscribe_qos1(stack: RunningStack, settings: Settings) -> None:
    """Every QoS 1 message published arrives once, in order, with QoS 1."""
    district = settings.topic_prefix.rstrip(".")
    topic = f"city/{district}/wearable/dev-1/vitals"
    n = 200
    received: list[tuple[bytes | bytearray, int]] = []
    all_in = threading.Event()
    subscribed = threading.Event()

    sub = _mqtt_client(f"{district}-sub", settings, "bridge")

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received.append((msg.payload, msg.qos))
        if len(received) == n:
            all_in.set()

    sub.on_message = on_message
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect(stack.mqtt_host, stack.mqtt_port)
    sub.loop_start()
    pub = _mqtt_client(f"{district}-pub", settings, "publisher")
    try:
        sub.subscribe(topic, qos=1)
        assert subscribed.wait(DEADLINE_S)
        pub.connect(stack.mqtt_host, stack.mqtt_port)
        pub.loop_start()
        infos = [pub.publish(topic, f'{{"seq": {i}}}'.encode(), qos=1) for i in range(n)]
        for info in infos:
            info.wait_for_publish(DEADLINE_S)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published()
        assert all_in.wait(DEADLINE_S), f"received {len(received)} of {n}"
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.loop_stop()
        sub.disconnect()
    assert [p for p, _ in received] == [f'{{"seq": {i}}}'.encode() for i in range(n)]
    assert {q for _, q in received} == {1}


async def _produce(kafka: Mapping[str, Any], topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send(topic, value, key=str(i % 7).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _consume(kafka: Mapping[str, Any], topic: str, group: str, n: int) -> list[bytes]:
    """Read ``n`` records as a member of ``group`` and commit the offsets."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            while len(got) < n:
                batches = await consumer.getmany(timeout_ms=500)
                got += [r.value for records in batches.values() for r in records if r.value]
        await consumer.commit()
        extra = await consumer.getmany(timeout_ms=500)
        got += [r.value for records in extra.values() for r in records if r.value]
    finally:
        await consumer.stop()
    return got


async def _committed(kafka: Mapping[str, Any], topic: str, group: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(**kafka, group_id=group)
    await consumer.start()
    try:
        total = 0
        for p in range(partitions):
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


def test_kafka_produce_consume_with_consumer_group(
    stack: RunningStack, settings: Settings, create_topics: Callable[..., list[str]]
) -> None:
    """Idempotent acks=all produce; a consumer group reads all, commits, resumes after it."""
    (topic,) = create_topics("roundtrip", partitions=3)
    group = settings.topic_prefix + "group"
    first = [f"first-{i}".encode() for i in range(300)]
    second = [f"second-{i}".encode() for i in range(50)]

    asyncio.run(_produce(stack.kafka, topic, first))
    got = asyncio.run(_consume(stack.kafka, topic, group, len(first)))
    assert sorted(got) == sorted(first)
    assert asyncio.run(_committed(stack.kafka, topic, group, 3)) == len(first)

    # The group resumes from its committed offsets: only the new records arrive.
    asyncio.run(_produce(stack.kafka, topic, second))
    got = asyncio.run(_consume(stack.kafka, topic, group, len(second)))
    assert sorted(got) == sorted(second)


def test_influx_write_and_query_with_credentials(stack: RunningStack, settings: Settings) -> None:
    """Line protocol written with credentials comes back through InfluxQL."""
    db = settings.influx_db_public
    lines = "\n".join(
        f"air,station=s{i % 2},district=d1 pm25={10.5 + i},ok=true {1_700_000_000 + i}"
        for i in range(10)
    )
    auth = (settings.influx_username, influx_password(settings).get_secret_value())
    resp = requests.post(
        f"{stack.influx_url}/write",
        params={"db": db, "precision": "s"},
        data=lines.encode(),
        auth=auth,
        timeout=10,
    )
    assert resp.status_code == 204, resp.text
    result = stack.influx_query(
        'SELECT count("pm25"), sum("pm25") FROM "air" GROUP BY "station"', db=db
    ).json()
    series = {s["tags"]["station"]: s["values"][0][1:] for s in result["results"][0]["series"]}
    assert series == {
        "s0": [5, sum(10.5 + i for i in range(0, 10, 2))],
        "s1": [5, sum(10.5 + i for i in range(1, 10, 2))],
    }


def test_influx_refuses_requests_without_valid_credentials(
    stack: RunningStack, settings: Settings
) -> None:
    """No endpoint answers data without the configured user and password."""
    db = settings.influx_db_sensitive
    assert stack.influx_query("SHOW DATABASES", auth=False).status_code == 401
    wrong = settings.model_copy(update={"influx_password": SecretStr("not-the-password")})
    assert influx_query(wrong, "SHOW DATABASES").status_code == 401
    resp = requests.post(
        f"{stack.influx_url}/write",
        params={"db": db},
        data=b"vitals,device=x heart_rate=70",
        timeout=10,
    )
    assert resp.status_code == 401
    # ... and nothing was written by the refused request.
    result = stack.influx_query('SELECT count(*) FROM "vitals"', db=db).json()
    assert "series" not in result["results"][0]


def test_stack_helpers_work_inside_a_running_event_loop(
    stack: RunningStack, settings: Settings
) -> None:
    """Async callers (e.g. an asyncio `cityhealth up`) can probe and create topics too."""
    topic = settings.topic_prefix + "from-async"

    async def main() -> dict[str, dict[str, object]]:
        stack.create_topics([topic], partitions=2)
        return stack.manager.status()

    report = asyncio.run(main())
    assert all(report[name]["healthy"] for name in ("mqtt", "kafka", "influx"))
    assert asyncio.run(_partitions(stack.kafka, topic)) == {0, 1}


async def _partitions(kafka: Mapping[str, Any], topic: str) -> set[int] | None:
    """Partitions of ``topic`` from a full metadata fetch (which never auto-creates)."""
    client = AIOKafkaClient(**kafka)
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
        return metadata.partitions_for_topic(topic)
    finally:
        await client.close()
