"""Nothing is lost when a bridge stops, crashes (SIGKILL) or restarts (QoS 1, persistent)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cityhealth.bench.ingest_samples import sample_messages
from cityhealth.settings import Settings
from ingest.bridge import Bridge, BridgeConfig
from ingest.kafka_topics import ensure_topics
from tests.pipeline.test_bridge_support import (
    BridgeProcess,
    Publisher,
    expected_keys,
    mqtt_prefix,
    publish,
    unique,
    wait_for,
    wait_for_readings,
)

pytestmark = pytest.mark.stack


def test_sigkill_mid_stream_then_restart_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    prefix = mqtt_prefix(settings)
    samples = sample_messages(3000, now=time.time(), prefix=prefix)
    client_id = unique("crashy")
    # The first bridge never seals a batch by itself, so when it is killed it certainly
    # holds messages it received but could not acknowledge yet.
    hold = ("--batch-max-readings", "1000000", "--batch-max-age-ms", "600000")
    first = BridgeProcess(settings, client_id, prefix, tmp_path / "first", *hold)
    first.wait_subscribed()

    published: list[int] = []

    def publish_steadily() -> None:
        publisher = Publisher(settings)
        for start in range(0, len(samples.messages), 100):
            published.append(publisher.publish(samples.messages[start : start + 100]))
        publisher.close()

    thread = threading.Thread(target=publish_steadily)
    thread.start()
    held = wait_for(
        lambda: (s := first.stats()).get("in_flight", 0) >= 500 and s,
        120,
        "the first bridge to hold 500 un-acked messages",
    )
    first.kill()  # no flush, no PUBACK, no DISCONNECT
    assert held["acked"] == 0
    second = BridgeProcess(settings, client_id, prefix, tmp_path / "second")
    second.wait_subscribed()
    thread.join(300)
    assert sum(published) == len(samples.messages)

    want = expected_keys(settings, samples.keys)
    content = wait_for_readings(settings, len(want), distinct=True)
    assert content.unique_keys == want  # at least once: duplicates allowed, loss not
    assert second.stats()["session_present"] is True  # the broker kept the crashed session
    assert second.terminate() == 0
    assert second.stats()["in_flight"] == 0


def test_messages_published_while_the_bridge_is_down_are_delivered_on_restart(
    settings: Settings,
) -> None:
    """Mosquitto queues QoS 1 messages for a shared subscription of an offline session."""
    ensure_topics(settings)
    prefix = mqtt_prefix(settings)
    config = BridgeConfig(client_id=unique("restart"), session_expiry_s=120)
    before = sample_messages(200, now=time.time(), prefix=prefix)
    bridge = Bridge(settings, config, mqtt_prefix=prefix)
    bridge.start()
    publish(settings, before.messages)
    wait_for(lambda: bridge.snapshot()["acked"] == 200, 60, "the first 200 acked")
    assert bridge.stop() is True

    during = sample_messages(300, now=time.time() + 10, prefix=prefix, district="south")
    publish(settings, during.messages)  # nobody connected: the broker must queue them

    again = Bridge(settings, config, mqtt_prefix=prefix)
    again.start()
    try:
        want = expected_keys(settings, before.keys | during.keys)
        content = wait_for_readings(settings, len(want))
        assert content.unique_keys == want
        assert len(content.keys) == len(want)  # graceful stop: no duplicates either
        stats = again.snapshot()
        assert stats["session_present"] is True
        assert stats["received"] == 300
    finally:
        again.stop()
