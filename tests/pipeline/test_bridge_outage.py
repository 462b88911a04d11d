"""Kafka stops mid-stream and comes back: the bridge holds its window, then loses nothing."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cityhealth.bench.ingest_samples import sample_messages
from cityhealth.settings import Settings
from ingest.bridge import Bridge, BridgeConfig
from ingest.kafka_topics import ensure_topics
from tests.conftest import RunningStack
from tests.pipeline.test_bridge_support import (
    expected_keys,
    mqtt_prefix,
    publish,
    unique,
    wait_for,
    wait_for_readings,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_kafka_outage_mid_stream_applies_backpressure_and_loses_nothing(
    stack: RunningStack, settings: Settings
) -> None:
    ensure_topics(settings)
    prefix = mqtt_prefix(settings)
    window = 200
    config = BridgeConfig(client_id=unique("outage"), receive_maximum=window, session_expiry_s=300)
    bridge = Bridge(settings, config, mqtt_prefix=prefix)
    bridge.start()
    before = sample_messages(500, now=time.time(), prefix=prefix)
    during = sample_messages(1000, now=time.time() + 20, prefix=prefix, district="east")
    try:
        publish(settings, before.messages)
        wait_for(lambda: bridge.snapshot()["acked"] == 500, 60, "the first 500 acked")

        stack.manager.stop_service("kafka")
        try:
            publish(settings, during.messages)  # Mosquitto takes them all (QoS 1 acked)
            wait_for(
                lambda: bridge.snapshot()["received"] >= 500 + window, 60, "the window to fill"
            )
            time.sleep(1.0)  # the broker must not overrun the window meanwhile
            stats = bridge.snapshot()
            assert stats["received"] == 500 + window
            assert stats["in_flight"] == window
            assert stats["acked"] == 500
        finally:
            stack.manager.start_service("kafka")

        want = expected_keys(settings, before.keys | during.keys)
        content = wait_for_readings(settings, len(want), distinct=True, timeout_s=300)
        assert content.unique_keys == want
        wait_for(lambda: bridge.snapshot()["in_flight"] == 0, 120, "every message acked")
        assert bridge.snapshot()["acked"] == 1500
    finally:
        assert bridge.stop()


def test_broker_restart_reconnects_and_resumes_the_session(
    stack: RunningStack, settings: Settings
) -> None:
    ensure_topics(settings)
    prefix = mqtt_prefix(settings)
    config = BridgeConfig(client_id=unique("reconnect"), session_expiry_s=300)
    bridge = Bridge(settings, config, mqtt_prefix=prefix)
    bridge.start()
    before = sample_messages(200, now=time.time(), prefix=prefix)
    after = sample_messages(300, now=time.time() + 20, prefix=prefix, district="west")
    try:
        publish(settings, before.messages)
        wait_for(lambda: bridge.snapshot()["acked"] == 200, 60, "the first 200 acked")
        stack.manager.stop_service("mqtt")  # graceful: Mosquitto saves sessions to disk
        wait_for(lambda: not bridge.snapshot()["mqtt_connected"], 60, "the bridge to notice")
        stack.manager.start_service("mqtt")
        wait_for(lambda: bridge.snapshot()["connects"] >= 2, 60, "the bridge to reconnect")
        assert bridge.snapshot()["session_present"] is True
        publish(settings, after.messages)
        want = expected_keys(settings, before.keys | after.keys)
        content = wait_for_readings(settings, len(want), distinct=True)
        assert content.unique_keys == want
        wait_for(lambda: bridge.snapshot()["in_flight"] == 0, 60, "every message acked")
        stats = bridge.snapshot()
        assert stats["acked"] >= 500, stats  # re-sent copies are acknowledged again
        assert stats["received"] == stats["acked"], stats
    finally:
        assert bridge.stop()


def test_decoder_crash_stops_the_bridge_and_a_restart_delivers_everything(
    settings: Settings,
) -> None:
    ensure_topics(settings)
    prefix = mqtt_prefix(settings)
    # The first bridge never seals a batch by itself: its decoder holds every reading.
    hold = {"batch_max_readings": 1_000_000, "batch_max_age_s": 600.0}
    config = BridgeConfig(client_id=unique("decoder"), session_expiry_s=300, **hold)
    bridge = Bridge(settings, config, mqtt_prefix=prefix)
    bridge.start()
    samples = sample_messages(300, now=time.time(), prefix=prefix)
    publish(settings, samples.messages)
    wait_for(lambda: bridge.snapshot()["valid"] == 300, 60, "the decoder to take all 300")
    os.kill(bridge.decoder_pids[0], signal.SIGKILL)
    wait_for(lambda: bridge.failed, 30, "the bridge to notice the dead decoder")
    assert bridge.snapshot()["acked"] == 0
    assert bridge.stop() is False

    again = Bridge(settings, BridgeConfig(client_id=config.client_id), mqtt_prefix=prefix)
    again.start()
    try:
        want = expected_keys(settings, samples.keys)
        content = wait_for_readings(settings, len(want), distinct=True)
        assert content.unique_keys == want
    finally:
        assert again.stop()
