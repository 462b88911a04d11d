"""Discard a bridge's persistent MQTT session once its run is over for good.

A bridge connects with ``clean_start=False`` and a Session Expiry Interval of a week
(:mod:`ingest.bridge.session`), so the broker keeps its shared subscription and queues every
matching QoS 1 message while it is away: exactly what a restart needs. A bridge that will
never come back (a benchmark or ``cityhealth up`` run with its own throw-away share group)
leaves that session behind, and Mosquitto then queues a copy of *every* later message for
it, up to ``max_queued_messages``, and rewrites them all to its persistence file at every
autosave: on the development stack, after ten quarter-district runs, a 1.3 GB
``mosquitto.db`` and Mosquitto's CPU per message up 5x (docs/INGEST.md).

:func:`end_session` ends such a session the standard way: a CONNECT with the same client
id, ``clean_start=True`` (MQTT 5.0 §3.1.2.4: the broker discards the existing session, its
subscriptions and queued messages) and Session Expiry Interval 0 (§3.1.2.11.2: the new
session ends with the network connection), then DISCONNECT.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_auth import mqtt_credentials

if TYPE_CHECKING:
    from cityhealth.settings import Settings


def end_session(settings: Settings, client_id: str, *, timeout_s: float = 10.0) -> bool:
    """Discard the broker's session of ``client_id`` (subscriptions and queued messages).

    Logs in as the ``bridge`` role (:func:`ingest.mqtt_auth.mqtt_credentials`). Returns
    True once the broker accepted the clean connection, False if it refused or did not
    answer within ``timeout_s``. Never call it for a bridge that should resume: messages
    queued for it are dropped, unacknowledged, by design.
    """
    accepted = threading.Event()
    done = threading.Event()
    outcome: dict[str, bool] = {"ok": False}

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome["ok"] = not reason.is_failure
        accepted.set()
        client.disconnect()

    def on_disconnect(client: mqtt.Client, *args: Any) -> None:
        done.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(*mqtt_credentials(settings, "bridge"))
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, clean_start=True, properties=props)
    except OSError:
        return False
    client.loop_start()
    try:
        if not accepted.wait(timeout_s):
            return False
        done.wait(timeout_s)
        return outcome["ok"]
    finally:
        client.disconnect()
        client.loop_stop()
