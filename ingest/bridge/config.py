"""Per-bridge options (the shared ones — hosts, topics, keys — come from ``Settings``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

#: MQTT v5 caps Receive Maximum at 65,535 (MQTT 5.0 §3.1.2.11.3).
MAX_RECEIVE_MAXIMUM = 65_535


def default_client_id(index: int = 0) -> str:
    """A client id that is stable across restarts of the same bridge on the same host.

    Stability matters: the broker keeps the persistent session (subscription, queued and
    unacknowledged messages) under the client id, so a restarted bridge must reuse it.
    """
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return f"cityhealth-ingest-{host[:40]}-{index}"


@dataclass(frozen=True)
class BridgeConfig:
    """Options of one bridge instance.

    Attributes
    ----------
    client_id
        MQTT client id (stable per instance; see :func:`default_client_id`).
    receive_maximum
        MQTT v5 Receive Maximum: the broker sends at most this many unacknowledged QoS 1
        messages. This is the bridge's in-memory bound and its backpressure: when Kafka is
        slow nothing is acknowledged, the window fills and the broker queues the rest.
    session_expiry_s
        How long the broker keeps the session (and queues messages) while the bridge is away.
    batch_max_readings, batch_max_bytes, batch_max_age_s
        When a micro-batch record is sealed (whichever comes first).
    shutdown_timeout_s
        How long a graceful stop waits for Kafka to acknowledge what is buffered; what is not
        acknowledged by then stays unacknowledged in MQTT and is redelivered later.
    retry_backoff_s
        First pause before retrying a failed Kafka send (doubles up to 5 s).
    max_age_s
        Oldest reading the contract accepts (``None``: no limit, for replays).
    decoders
        Decoder processes running the contract and the batching (0: in the bridge's own
        thread). One process roughly doubles what one bridge can take on two cores.
    """

    client_id: str
    receive_maximum: int = 10_000
    session_expiry_s: int = 7 * 86_400
    batch_max_readings: int = 1000
    batch_max_bytes: int = 512 * 1024
    batch_max_age_s: float = 0.05
    shutdown_timeout_s: float = 30.0
    retry_backoff_s: float = 0.2
    max_age_s: float | None = 7 * 86_400.0
    keepalive_s: int = 30
    decoders: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.receive_maximum <= MAX_RECEIVE_MAXIMUM:
            raise ValueError(f"receive_maximum must be in 1..{MAX_RECEIVE_MAXIMUM}")
        if not self.client_id or len(self.client_id.encode()) > 65_535:
            raise ValueError("client_id must be a non-empty string")
        if self.decoders < 0:
            raise ValueError("decoders must be >= 0")
        if self.session_expiry_s < 0:
            raise ValueError("session_expiry_s must be >= 0")

    @property
    def bridge_id(self) -> str:
        """Id written into batch headers and dead letters (client id + pid)."""
        return f"{self.client_id}/{os.getpid()}"
