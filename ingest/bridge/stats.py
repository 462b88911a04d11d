"""Counters of one bridge, safe to poll from any thread (the live display of ``cityhealth up``).

Counters are plain ints bumped by the bridge's event-loop thread (one writer); readers take a
:meth:`BridgeStats.snapshot`, a consistent-enough dict for display and ``--stats-json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BridgeStats:
    """What one bridge has done since it started.

    Attributes
    ----------
    received
        MQTT messages handed to the bridge (redeliveries after a reconnect count again).
    valid
        Messages that passed the contract (``readings`` counts the readings they held).
    dead_lettered
        Messages rejected and sent to the dead-letter topic (counted when Kafka acked them).
    produced_batches, produced_bytes
        Micro-batch records acknowledged by Kafka, and their payload bytes.
    acked
        MQTT PUBACKs sent (each one after Kafka acknowledged everything the message became).
    kafka_errors
        Failed Kafka sends that were retried.
    connects
        MQTT (re)connections; ``session_present`` tells whether the broker kept our session.
    read_pauses
        Times the bridge stopped reading MQTT because it held more unacknowledged messages
        than its Receive Maximum (a broker that overshoots the window).
    rejected_by_rule
        Dead letters per first broken contract rule.
    readings_by_stream
        Readings acknowledged by Kafka per stream.
    """

    bridge_id: str = ""
    started_at: float = field(default_factory=time.time)
    received: int = 0
    valid: int = 0
    readings: int = 0
    dead_lettered: int = 0
    produced_batches: int = 0
    produced_bytes: int = 0
    acked: int = 0
    kafka_errors: int = 0
    connects: int = 0
    read_pauses: int = 0
    session_present: bool = False
    mqtt_connected: bool = False
    subscribed: bool = False
    kafka_ready: bool = False
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    readings_by_stream: dict[str, int] = field(default_factory=dict)
    #: Wall-clock times of the first message read and of the latest PUBACK (0: none yet).
    first_received_at: float = 0.0
    last_acked_at: float = 0.0
    # Gauges, refreshed by the bridge.
    in_flight: int = 0
    oldest_unacked_age_s: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe copy of every counter, plus ``uptime_s`` and ``lag_s``.

        ``lag_s`` is the age of the oldest MQTT message not yet acknowledged (0 when none):
        how far behind the broker the bridge is.
        """
        out = asdict(self)
        out["uptime_s"] = round(time.time() - self.started_at, 3)
        out["lag_s"] = round(self.oldest_unacked_age_s, 4)
        return out

    def write_json(self, path: Path) -> None:
        """Atomically replace ``path`` with :meth:`snapshot` (readers never see half a file)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.snapshot(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
