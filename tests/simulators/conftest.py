"""Fixtures for simulator tests: the real broker (session ``stack``), schemas, a subscriber."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.mqtt_auth import mqtt_credentials
from tests.conftest import RunningStack


class Subscriber:
    """A QoS 1 MQTT v5 subscriber on ``city/#`` that keeps every message in arrival order."""

    def __init__(self, host: str, port: int, auth: tuple[str, str], topic: str = "city/#") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-test-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_connect = lambda client, *a: client.subscribe(topic, qos=1)
        c.username_pw_set(*auth)
        c.connect(host, port)
        c.loop_start()
        assert subscribed.wait(10), "subscription not acknowledged"
        self.client = c

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def wait_for(
        self, n: int, timeout: float = 120.0, settle: float = 1.0
    ) -> list[tuple[str, bytes]]:
        """Wait until at least ``n`` messages arrived and none for ``settle`` seconds.

        Raises ``AssertionError`` naming the shortfall when ``timeout`` passes first.
        """
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            count = len(self.messages)
            if count >= n and count == last:
                with self._lock:
                    return list(self.messages)
            last = count
            time.sleep(settle if count >= n else 0.2)
        raise AssertionError(
            f"subscriber got {len(self.messages)} messages in {timeout:.0f} s, expected >= {n}"
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(stack: RunningStack) -> Iterator[Subscriber]:
    """A subscriber on ``city/#`` of the session broker, subscribed before the test starts."""
    sub = Subscriber(stack.mqtt_host, stack.mqtt_port, mqtt_credentials(stack.settings, "bridge"))
    yield sub
    sub.close()


@pytest.fixture(scope="session")
def schemas(tmp_path_factory: pytest.TempPathFactory, cli: Path) -> dict[str, Any]:
    """The contract's JSON Schemas as exported by ``cityhealth contract schema --out DIR``."""
    out = tmp_path_factory.mktemp("schemas")
    subprocess.run([str(cli), "contract", "schema", "--out", str(out)], check=True)
    found = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    found["senml"] = json.loads((out / "senml" / "pack.json").read_text())
    return found


def run_cli(
    cli: Path, stack: RunningStack, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``cityhealth simulate ...`` against the session broker (exit code checked by callers)."""
    return subprocess.run(
        [str(cli), "simulate", "--quiet", *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
