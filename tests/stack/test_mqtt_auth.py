"""MQTT has no endpoint open without credentials: anonymous and wrong passwords are refused
by the real broker, and each service user can do what its role needs and nothing more."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt

from cityhealth.settings import Settings
from cityhealth.stack.mosquitto import mqtt_probe, render_acl
from cityhealth.stack.process import wait_until
from ingest.bridge.session import subscription_filter
from ingest.mqtt_auth import MqttRole, mqtt_credentials
from tests.conftest import RunningStack


@contextmanager
def _client(settings: Settings, role: MqttRole) -> Iterator[tuple[mqtt.Client, list[bytes]]]:
    """A connected MQTT v5 client logged in as ``role``; yields it and its received payloads."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(*mqtt_credentials(settings, role))
    got: list[bytes] = []
    client.on_message = lambda c, u, msg: got.append(msg.payload)
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    try:
        assert wait_until(client.is_connected, timeout_s=10)
        yield client, got
    finally:
        client.disconnect()
        client.loop_stop()


def test_anonymous_and_wrong_password_clients_are_refused(stack: RunningStack) -> None:
    s = stack.settings
    assert "Not authorized" in (mqtt_probe(s.mqtt_host, s.mqtt_port) or "")
    user, _ = mqtt_credentials(s, "bridge")
    assert mqtt_probe(s.mqtt_host, s.mqtt_port, user, "wrong") is not None
    for role in ("bridge", "publisher"):
        assert mqtt_probe(s.mqtt_host, s.mqtt_port, *mqtt_credentials(s, role)) is None  # type: ignore[arg-type]


def test_bridge_reads_and_publisher_writes_city_topics_only(
    stack: RunningStack, settings: Settings
) -> None:
    prefix = settings.topic_prefix.rstrip(".") + "/"
    topic = f"{prefix}city/centre/wearable/w-acl/vitals"
    with _client(settings, "bridge") as (bridge, got), _client(settings, "publisher") as (pub, own):
        bridge.subscribe(subscription_filter(settings.mqtt_share_group, prefix), qos=1)
        pub.subscribe(f"{prefix}city/#", qos=1)  # refused by the ACL: nothing arrives
        time.sleep(0.5)
        pub.publish(topic, b"from-publisher", qos=1).wait_for_publish(10)
        bridge.publish(topic, b"from-bridge", qos=1).wait_for_publish(10)  # dropped by the ACL
        assert wait_until(lambda: got, timeout_s=10)
        time.sleep(1.0)
        assert got == [b"from-publisher"]
        assert own == []


def test_generated_password_files_are_owner_only(stack: RunningStack) -> None:
    conf = stack.data_dir / "mqtt" / "conf"
    text = (conf / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in text and "allow_anonymous true" not in text
    assert f"password_file {conf / 'passwd'}" in text and f"acl_file {conf / 'acl'}" in text
    for role in ("bridge", "publisher"):
        path = stack.data_dir / f"mqtt-{role}.password"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = path.read_text().strip()
        assert password not in (conf / "passwd").read_text()  # hashed there
    assert stat.S_IMODE((conf / "passwd").stat().st_mode) == 0o600


def test_settings_user_replaces_the_role_users(tmp_path: Path) -> None:
    from pydantic import SecretStr

    s = Settings(data_dir=tmp_path, mqtt_username="gw-1", mqtt_password=SecretStr("pw"))
    assert mqtt_credentials(s, "bridge") == ("gw-1", "pw") == mqtt_credentials(s, "publisher")
    assert not list(tmp_path.glob("mqtt-*.password"))
    acl = render_acl("gw-1")
    assert "user gw-1\ntopic readwrite city/#" in acl
    assert "pattern write city/+/+/%u/+" in acl
