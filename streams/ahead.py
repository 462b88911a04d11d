"""Alerts published ahead of the checkpoint that covers them, and their suppression after
a restart (docs/STREAMS.md, "Alerts ahead of the checkpoint").

A commit step publishes its alerts at once, in a transaction of their own, instead of
waiting for InfluxDB to acknowledge the step's rows: an alert must not wait for the
database. The step's checkpoint still follows the InfluxDB acknowledgement, so for a
while the alerts topic is ahead of the checkpoint. A worker that crashes then restores
the older state, replays the step's records and raises the same alerts again. To publish
none of them twice, every alert transaction also writes one checkpoint record listing
the alerts published ahead (their :func:`record_key` and send time); the checkpoint
transaction of a step drops the step's own entries. A restarted owner reads the record
and withholds exactly those alerts when its replay raises them.

Plain Python: alerts are rare, and the set holds only the alerts of the last few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from streams.alerts import Alert

#: Checkpoint block name of the record (key ``<stream>:<partition>:alerts-ahead``).
BLOCK = "alerts-ahead"

#: A restored entry that the replay never raised again is kept this long (s) after its
#: send, then forgotten: a replay follows a crash within the transaction timeout (~60 s)
#: plus the replayed records' processing; ten minutes leave room for a slow restart, and
#: stop an entry from being carried for ever if its alert is not raised again (a
#: timer's alert whose condition ended meanwhile).
TTL_S = 600.0


def record_key(alert: Alert) -> str:
    """What makes an alert *record* unique: the id (type, subject, start), the severity
    (a NEWS2 episode is re-published when it escalates) and whether it is the clear
    record (same id, ``end`` set; docs/ALERTS.md). A replay raises the same key."""
    state = "open" if alert.end is None else "clear"
    return f"{alert.id}:{alert.severity}:{state}"


class AlertsAhead:
    """The alerts of one ``(stream, partition)`` published ahead of their checkpoint."""

    def __init__(self) -> None:
        #: key -> (commit step number, send time): published, checkpoint not yet
        self.ahead: dict[str, tuple[int, float]] = {}
        #: key -> send time: published by a previous owner ahead of its last checkpoint;
        #: the replay raises them again, and they are withheld
        self.restored: dict[str, float] = {}

    def restore(self, payload: bytes, now: float) -> None:
        """Import the record read from the checkpoint topic (a bad record is an error:
        :class:`ValueError`; the caller logs it and publishes the replay's alerts)."""
        data = json.loads(payload)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float) for k, v in data.items()
        ):
            raise ValueError(f"{BLOCK}: expected an object of send times, got {payload[:80]!r}")
        self.restored = {k: float(v) for k, v in data.items() if now - float(v) < TTL_S}

    def take(self, alerts: Iterable[Alert], step: int, now: float) -> list[Alert]:
        """The alerts of commit step ``step`` to publish now; the others were published
        already (restored entries, or a record raised twice) and stay in the set until
        ``step``'s checkpoint covers them."""
        fresh = []
        for alert in alerts:
            key = record_key(alert)
            if key in self.restored:
                self.ahead[key] = (step, self.restored.pop(key))
            elif key not in self.ahead:
                self.ahead[key] = (step, now)
                fresh.append(alert)
        return fresh

    def checkpointed(self, step: int, now: float) -> AlertsAhead | None:
        """The set once commit step ``step``'s checkpoint is published: without its
        entries (and any earlier), and without restored entries past :data:`TTL_S`.
        ``None`` if nothing changed. A new object: the caller adopts it only once the
        checkpoint transaction committed (its record goes in that transaction)."""
        later = {k: v for k, v in self.ahead.items() if v[0] > step}
        kept = {k: t for k, t in self.restored.items() if now - t < TTL_S}
        if len(later) == len(self.ahead) and len(kept) == len(self.restored):
            return None
        new = AlertsAhead()
        new.ahead, new.restored = later, kept
        return new

    def record(self) -> bytes:
        """The record's value: every key still published ahead, with its send time."""
        sent = {k: t for k, (_, t) in self.ahead.items()} | self.restored
        return json.dumps(sent, sort_keys=True, separators=(",", ":")).encode()
