"""Several bridges in one share group split the load; a bounded bridge applies backpressure."""

from __future__ import annotations

import socket
import time

import pytest

from cityhealth.bench.ingest_samples import sample_messages
from cityhealth.settings import Settings
from ingest.bridge import Bridge, BridgeConfig
from ingest.kafka_topics import ensure_topics
from tests.pipeline.test_bridge_support import (
    expected_keys,
    mqtt_prefix,
    publish,
    unique,
    wait_for,
    wait_for_readings,
)

pytestmark = pytest.mark.stack


def test_two_bridges_in_one_share_group_split_the_load(settings: Settings) -> None:
    ensure_topics(settings)
    prefix = mqtt_prefix(settings)
    bridges = [
        Bridge(
            settings,
            BridgeConfig(client_id=unique(f"share{i}"), session_expiry_s=60),
            mqtt_prefix=prefix,
        )
        for i in range(2)
    ]
    for bridge in bridges:
        bridge.start()
    try:
        samples = sample_messages(2000, now=time.time(), prefix=prefix)
        publish(settings, samples.messages)
        n = len(samples.messages)
        wait_for(lambda: sum(b.snapshot()["acked"] for b in bridges) == n, 90, "all acked")
        received = [b.snapshot()["received"] for b in bridges]
        assert sum(received) == n  # each message went to exactly one member of the group
        assert min(received) > 0, f"one bridge got nothing: {received}"
        want = expected_keys(settings, samples.keys)
        content = wait_for_readings(settings, len(want))
        assert content.unique_keys == want
        assert len(content.keys) == len(want)
        assert content.by_stream == samples.by_stream
    finally:
        for bridge in bridges:
            bridge.stop()


def test_a_stopped_bridge_of_another_namespace_takes_no_share(settings: Settings) -> None:
    """Bridges of different topic prefixes are in different share groups: the persistent
    session of a stopped bridge of namespace A does not take half of namespace B's
    messages (two ``cityhealth up`` runs with different prefixes on one broker)."""
    prefix = mqtt_prefix(settings)
    ns_a = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}a."})
    ns_b = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}b."})
    for ns in (ns_a, ns_b):
        ensure_topics(ns)
    stopped = Bridge(
        ns_a, BridgeConfig(client_id=unique("ns-a"), session_expiry_s=300), mqtt_prefix=prefix
    )
    stopped.start()
    stopped.stop()  # its session (and subscription) stays on the broker, offline
    bridge = Bridge(
        ns_b, BridgeConfig(client_id=unique("ns-b"), session_expiry_s=60), mqtt_prefix=prefix
    )
    bridge.start()
    try:
        samples = sample_messages(600, now=time.time(), prefix=prefix)
        publish(settings, samples.messages)
        n = len(samples.messages)
        wait_for(lambda: bridge.snapshot()["acked"] == n, 90, "all acked by namespace b")
        assert bridge.snapshot()["received"] == n
        want = expected_keys(ns_b, samples.keys)
        content = wait_for_readings(ns_b, len(want))
        assert content.unique_keys == want
        assert content.by_stream == samples.by_stream
    finally:
        bridge.stop()


def _dead_port() -> int:
    """A loopback port with nothing listening (a Kafka that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bridge_holds_at_most_receive_maximum_while_kafka_is_down(settings: Settings) -> None:
    """Backpressure: with Kafka unreachable the bridge reads exactly its Receive Maximum,
    acknowledges nothing, and the broker keeps the rest; a bridge with the same client id
    and a working Kafka later delivers every message."""
    ensure_topics(settings)
    prefix = mqtt_prefix(settings)
    bound = 50
    config = BridgeConfig(
        client_id=unique("bounded"),
        receive_maximum=bound,
        session_expiry_s=120,
        shutdown_timeout_s=1.0,
    )
    down = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{_dead_port()}"})
    stalled = Bridge(down, config, mqtt_prefix=prefix)
    stalled.start()
    samples = sample_messages(300, now=time.time(), prefix=prefix)
    publish(settings, samples.messages)  # the broker acknowledged all 300 publishes
    wait_for(lambda: stalled.snapshot()["received"] >= bound, 60, "the window to fill")
    time.sleep(1.0)  # give the broker every chance to overrun the window (it must not)
    stats = stalled.snapshot()
    assert stats["received"] == bound
    assert stats["in_flight"] == bound
    assert stats["acked"] == 0
    assert stats["kafka_ready"] is False
    assert stalled.stop() is False  # could not deliver: leaves its 50 un-acked

    recovered = Bridge(settings, config, mqtt_prefix=prefix)
    recovered.start()
    try:
        want = expected_keys(settings, samples.keys)
        content = wait_for_readings(settings, len(want), distinct=True)
        assert content.unique_keys == want
        assert content.by_stream == samples.by_stream
    finally:
        recovered.stop()
