"""Shared helpers of the bridge tests (no tests here): publish, read Kafka, run bridges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from cityhealth.settings import Settings
from ingest.batch import decode as decode_batch
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import topics_for
from ingest.mqtt_auth import mqtt_credentials
from ingest.pseudonym import pseudonymizer_from_settings
from ingest.topic_reader import read_to_end

REPO = Path(__file__).resolve().parents[2]


def unique(name: str) -> str:
    """A name no other test (or run) uses."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def mqtt_prefix(settings: Settings) -> str:
    """The MQTT topic prefix the bridge tests publish under (isolates them like Kafka topics)."""
    return f"{settings.topic_prefix.rstrip('.')}/"


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2):
    """Poll ``condition`` until truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


class Publisher:
    """A QoS 1 MQTT publisher (the role of a device gateway)."""

    def __init__(self, settings: Settings) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=unique("pub"), protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.username_pw_set(*mqtt_credentials(settings, "publisher"))
        self.client.connect(settings.mqtt_host, settings.mqtt_port)
        self.client.loop_start()

    def publish(self, messages: Iterable[tuple[str, bytes]], *, wait: bool = True) -> int:
        """Publish QoS 1; with ``wait``, return once the broker acknowledged every one."""
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        if wait:
            for info in infos:
                info.wait_for_publish(timeout=60)
                assert info.is_published(), "broker did not acknowledge a QoS 1 publish"
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(settings: Settings, messages: Iterable[tuple[str, bytes]]) -> int:
    """Publish QoS 1 with a fresh client and wait for the broker's acks."""
    publisher = Publisher(settings)
    try:
        return publisher.publish(messages)
    finally:
        publisher.close()


@dataclass
class KafkaContent:
    """What the bridge produced, decoded."""

    by_stream: dict[str, int] = field(default_factory=dict)
    keys: list[tuple[str, float]] = field(default_factory=list)  # (device, ts), with repeats
    stream_bytes: bytes = b""
    deadletters: list[bytes] = field(default_factory=list)
    partitions_ok: bool = True

    @property
    def unique_keys(self) -> set[tuple[str, float]]:
        return set(self.keys)


def read_kafka(settings: Settings) -> KafkaContent:
    """Decode every batch and dead letter now in this test's topics."""
    from ingest.batch import STREAMS, kafka_partition

    topics = topics_for(settings)
    records = read_to_end(kafka_client_kwargs(settings), (*topics.streams, topics.deadletter))
    out = KafkaContent(deadletters=[r.value for r in records[topics.deadletter]])
    chunks = []
    for name in topics.streams:
        for record in records[name]:
            chunks.append(record.value)
            batch = decode_batch(record.value)
            devices = batch.strings["device"]
            rows = devices.decoded()
            out.keys.extend(zip(rows.tolist(), batch["ts"].tolist(), strict=True))
            out.by_stream[batch.stream] = out.by_stream.get(batch.stream, 0) + len(rows)
            # air stations are keyed by district, person devices by pseudonym
            by_district = STREAMS[batch.stream].partition_key == "district"
            keys = batch.strings["district"].values if by_district else devices.values
            out.partitions_ok &= all(
                kafka_partition(k, settings.kafka_partitions) == record.partition for k in keys
            )
    out.stream_bytes = b"".join(chunks)
    return out


def wait_for_readings(
    settings: Settings, n: int, *, distinct: bool = False, timeout_s: float = 120
) -> KafkaContent:
    """Read Kafka until it holds ``n`` readings (``distinct``: ``n`` distinct ones)."""

    def enough() -> KafkaContent | None:
        content = read_kafka(settings)
        have = len(content.unique_keys) if distinct else len(content.keys)
        return content if have >= n else None

    return wait_for(enough, timeout_s, f"{n} readings in Kafka", every_s=0.5)


def expected_keys(settings: Settings, keys: Iterable[tuple[str, str, float]]) -> set:
    """``(pseudonymous device, ts)`` the bridge must produce for raw ``(family, id, ts)``."""
    pseudonym = pseudonymizer_from_settings(settings)
    return {(pseudonym(family, device), ts) for family, device, ts in keys}


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for a ``cityhealth`` subprocess that uses ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHEALTH_")}
    env.update(settings.to_env())
    return env


class BridgeProcess:
    """``cityhealth ingest`` in a child process (so it can be SIGKILLed)."""

    def __init__(
        self, settings: Settings, client_id: str, mqtt_prefix: str, tmp: Path, *extra: str
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.stats_path = tmp / f"{client_id}.stats.json"
        self.log_path = tmp / f"{client_id}.log"
        cmd = [
            sys.executable,
            "-m",
            "cityhealth.cli",
            "ingest",
            "--client-id",
            client_id,
            "--mqtt-prefix",
            mqtt_prefix,
            "--session-expiry",
            "600",
            "--stats-json",
            str(self.stats_path),
            "--stats-interval",
            "0.2",
            *extra,
        ]
        self.stats_path.unlink(missing_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=settings_env(settings), stdout=self._log, stderr=self._log
        )

    def stats(self) -> dict[str, Any]:
        import json

        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_subscribed(self, timeout_s: float = 60.0) -> None:
        wait_for(
            lambda: self.stats().get("subscribed") or self.proc.poll() is not None,
            timeout_s,
            "the bridge subscription",
        )
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]

    def kill(self) -> None:
        """SIGKILL: no flush, no acks, no DISCONNECT (a crash)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait for the graceful stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self._log.close()
        return code
