"""What processing a batch (or a timer run) produces: line-protocol bodies and alerts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.alerts import TYPES, Alert, mirror_columns
from streams.tables import PendingTables


def ns(seconds: np.ndarray) -> np.ndarray:
    """Seconds since the epoch (float) -> int64 nanoseconds (rounded, as every writer does)."""
    return np.round(np.asarray(seconds, dtype=np.float64) * 1e9).astype(np.int64)


@dataclass(frozen=True)
class Databases:
    """Database names of the two retention classes (docs/DATA_MODEL.md)."""

    sensitive: str
    public: str

    def of(self, kind: str) -> str:
        return self.sensitive if kind == "sensitive" else self.public


class Output:
    """Rows to write and alerts until the next commit step.

    :meth:`write` keeps the columns (:class:`streams.tables.PendingTables`); the bodies
    are encoded once per measurement when first asked for (:attr:`bodies`,
    :meth:`encode`), which the worker does in its writer thread, overlapping the
    processing of the next batches.
    """

    def __init__(self, dbs: Databases) -> None:
        self.dbs = dbs
        self.alerts: list[Alert] = []
        self._pending = PendingTables()
        self._bodies: dict[str, list[bytes]] = {}
        self._points = 0
        #: Rows that could not be encoded (logged and left out; 0 unless a bug).
        self.unencoded = 0

    def write(
        self,
        database: str,
        measurement: str,
        time_ns: np.ndarray,
        tags: Mapping[str, Any],
        fields: Mapping[str, Any],
    ) -> None:
        """Queue rows as columns (streams.sink line protocol; not copied: the arrays must
        not change afterwards)."""
        self._pending.add(database, measurement, time_ns, tags, fields)

    def encode(self) -> None:
        """Encode what was written since the last call into :attr:`bodies`."""
        if not self._pending:
            return
        bodies, points, failed = self._pending.encode()
        for database, parts in bodies.items():
            self._bodies.setdefault(database, []).extend(parts)
        self._points += points
        self.unencoded += failed

    @property
    def bodies(self) -> dict[str, list[bytes]]:
        """Line-protocol bodies per database (encodes pending writes first)."""
        self.encode()
        return self._bodies

    @property
    def points(self) -> int:
        """Points in :attr:`bodies` (encodes pending writes first)."""
        self.encode()
        return self._points

    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def mirror_alerts(self) -> None:
        """Queue the ``alert`` measurement points of the alerts raised so far (not the
        clear records of alarms, which end an alert rather than raise one)."""
        for kind in ("sensitive", "public"):
            group = [a for a in self.alerts if TYPES[a.type] == kind and a.end is None]
            if group:
                cols = mirror_columns(group)
                self.write(
                    self.dbs.of(kind), "alert", cols["time_ns"], cols["tags"], cols["fields"]
                )

    def clear(self) -> None:
        self._pending = PendingTables()
        self._bodies = {}
        self.alerts = []
        self._points = 0

    @property
    def empty(self) -> bool:
        return not self._pending and not self._bodies and not self.alerts
