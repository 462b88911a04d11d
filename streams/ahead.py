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

Plain Python: alerts are rare, and the set holds only the alerts whose checkpoint is
still to come (seconds; as long as InfluxDB is down).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from streams.alerts import Alert

#: Checkpoint block name of the record (key ``<stream>:<partition>:alerts-ahead``).
BLOCK = "alerts-ahead"

#: A restored entry that the replay never raised again (a timer's alert whose condition
#: ended meanwhile) is forgotten once this owner's checkpoints cover the source offset
#: the previous owner had processed when it sent the alert (the replay passed it) *and*
#: this long (s) after the restore (time for the replay's timers). Counted from the
#: restore, not from the send: a worker restarted an hour after a crash, or a replay
#: blocked behind an InfluxDB outage, must still withhold what was sent.
TTL_S = 600.0


def record_key(alert: Alert) -> str:
    """What makes an alert *record* unique: the id (type, subject, start), the severity
    (a NEWS2 episode is re-published when it escalates) and whether it is the clear
    record (same id, ``end`` set; docs/ALERTS.md). A replay raises the same key.

    ``aqi_category`` alerts also name the transition: their id is per district and minute,
    two categories share each severity, and a minute scored again as more stations
    report can change category twice (streams/district.py)."""
    state = "open" if alert.end is None else "clear"
    key = f"{alert.id}:{alert.severity}:{state}"
    if alert.type == "aqi_category":
        key += f":{alert.evidence.get('previous_category')}>{alert.evidence.get('category')}"
    return key


class AlertsAhead:
    """The alerts of one ``(stream, partition)`` published ahead of their checkpoint."""

    def __init__(self) -> None:
        #: key -> (commit step number, send time, source offset processed at the cut):
        #: published, checkpoint not yet
        self.ahead: dict[str, tuple[int, float, int]] = {}
        #: key -> (send time, source offset): published by a previous owner ahead of its
        #: last checkpoint; the replay raises them again, and they are withheld
        self.restored: dict[str, tuple[float, int]] = {}
        self.restored_at = 0.0

    def restore(self, payload: bytes, now: float) -> None:
        """Import the record read from the checkpoint topic (a bad record is an error:
        :class:`ValueError`; the caller logs it and publishes the replay's alerts).
        Every entry is kept, however old: the replay has not passed it yet."""
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError(f"{BLOCK}: expected an object, got {payload[:80]!r}")
        restored: dict[str, tuple[float, int]] = {}
        for k, v in data.items():
            if not (
                isinstance(k, str)
                and isinstance(v, list)
                and len(v) == 2
                and isinstance(v[0], int | float)
                and isinstance(v[1], int)
            ):
                raise ValueError(f"{BLOCK}: bad entry {k!r}: {v!r}")
            restored[k] = (float(v[0]), int(v[1]))
        self.restored, self.restored_at = restored, now

    def take(
        self, alerts: Iterable[Alert], step: int, now: float, offset: int
    ) -> tuple[list[Alert], AlertsAhead]:
        """The alerts of commit step ``step`` to publish now, and the set once they are
        published: a new object, which the caller adopts only once the transaction that
        carries its record committed (an aborted one publishes nothing, and the next
        attempt must not take its alerts for published). The others were published
        already (restored entries, or a record raised twice) and stay in the set until
        ``step``'s checkpoint covers them. ``offset``: the newest source offset processed."""
        new = self._copy()
        fresh = []
        for alert in alerts:
            key = record_key(alert)
            if key in new.restored:
                sent, _ = new.restored.pop(key)
                new.ahead[key] = (step, sent, offset)
                alert.emitted_ts = sent  # its InfluxDB mirror: the record consumers got
            elif key not in new.ahead:
                new.ahead[key] = (step, now, offset)
                fresh.append(alert)
        return fresh, new

    def _copy(self) -> AlertsAhead:
        new = AlertsAhead()
        new.ahead, new.restored = dict(self.ahead), dict(self.restored)
        new.restored_at = self.restored_at
        return new

    def checkpointed(self, step: int, now: float, acked: int) -> AlertsAhead | None:
        """The set once commit step ``step``'s checkpoint is published: without its
        entries (and any earlier), and without restored entries the replay has passed
        (``acked``: the newest source offset the step acks) for :data:`TTL_S` since the
        restore. ``None`` if nothing changed. A new object: the caller adopts it only
        once the checkpoint transaction committed (its record goes in that transaction)."""
        later = {k: v for k, v in self.ahead.items() if v[0] > step}
        kept = {
            k: v for k, v in self.restored.items() if v[1] > acked or now - self.restored_at < TTL_S
        }
        if len(later) == len(self.ahead) and len(kept) == len(self.restored):
            return None
        new = AlertsAhead()
        new.ahead, new.restored, new.restored_at = later, kept, self.restored_at
        return new

    def record(self) -> bytes:
        """The record's value: every key still published ahead, with its send time."""
        sent = {k: [t, o] for k, (_, t, o) in self.ahead.items()}
        sent |= {k: [t, o] for k, (t, o) in self.restored.items()}
        return json.dumps(sent, sort_keys=True, separators=(",", ":")).encode()
