"""What processing a batch (or a timer run) produces: line-protocol bodies and alerts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.alerts import TYPES, Alert, mirror_columns
from streams.sink.lineprotocol import encode_body


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


@dataclass
class Output:
    """Accumulates bodies per database and alerts until the next commit step."""

    dbs: Databases
    bodies: dict[str, list[bytes]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    points: int = 0

    def write(
        self,
        database: str,
        measurement: str,
        time_ns: np.ndarray,
        tags: Mapping[str, Any],
        fields: Mapping[str, Any],
    ) -> None:
        """Encode columns (streams.sink line protocol) and queue the body."""
        if len(time_ns) == 0:
            return
        body, lines = encode_body(measurement, time_ns, tags, fields)
        if lines:
            self.bodies.setdefault(database, []).append(body)
            self.points += lines

    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def mirror_alerts(self) -> None:
        """Queue the ``alert`` measurement points of the alerts raised so far."""
        for kind in ("sensitive", "public"):
            group = [a for a in self.alerts if TYPES[a.type] == kind]
            if group:
                cols = mirror_columns(group)
                self.write(
                    self.dbs.of(kind), "alert", cols["time_ns"], cols["tags"], cols["fields"]
                )

    def clear(self) -> None:
        self.bodies = {}
        self.alerts = []
        self.points = 0

    @property
    def empty(self) -> bool:
        return not self.bodies and not self.alerts
