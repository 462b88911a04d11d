"""The live display of ``cityhealth up`` (rich), built from one :class:`LiveView` per refresh."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table


class RateMeter:
    """Per-second rates of monotonically growing counters between two refreshes."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, key: str, value: float, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        prev = self._last.get(key)
        self._last[key] = (now, value)
        if prev is None or now <= prev[0]:
            return 0.0
        return max(value - prev[1], 0.0) / (now - prev[0])


@dataclass
class LiveView:
    """Everything one refresh shows."""

    phase: str
    elapsed_s: float
    duration_s: float | None
    processes: list[tuple[str, str]] = field(default_factory=list)
    bridge: dict[str, Any] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    lag: dict[str, int | None] = field(default_factory=dict)
    group_state: str = "unknown"
    alerts_by_type: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)


def render(view: LiveView) -> Group:
    """Three small tables: flow, Kafka, alerts (plus the latest supervisor events)."""
    until = f" / {view.duration_s:.0f}" if view.duration_s else ""
    flow = Table(
        title=f"cityhealth up - {view.phase} - {view.elapsed_s:.0f}{until} s",
        show_header=True,
        min_width=60,
    )
    flow.add_column("flow")
    flow.add_column("total", justify="right")
    flow.add_column("per s", justify="right")
    b = view.bridge
    flow.add_row(
        "MQTT messages received by the bridge",
        f"{b.get('received', 0):,}",
        f"{view.rates.get('received', 0.0):,.0f}",
    )
    flow.add_row(
        "ingested (valid messages)",
        f"{b.get('valid', 0):,}",
        f"{view.rates.get('valid', 0.0):,.0f}",
    )
    flow.add_row(
        "readings produced to Kafka",
        f"{b.get('readings', 0):,}",
        f"{view.rates.get('readings', 0.0):,.0f}",
    )
    flow.add_row(
        "stored raw points (InfluxDB)",
        f"{sum(view.stored.values()):,}",
        f"{view.rates.get('stored', 0.0):,.0f}",
    )
    flow.add_row(
        "bridge in flight / lag", f"{b.get('in_flight', 0):,}", f"{b.get('lag_s', 0.0):.3f} s"
    )
    flow.add_row(
        "dead letters",
        f"{view.dead_letters:,}",
        ", ".join(f"{k} {v}" for k, v in sorted(view.dead_letter_reasons.items())[:3]),
    )
    kafka = Table(title=f"worker consumer lag (group {view.group_state})", min_width=30)
    kafka.add_column("stream")
    kafka.add_column("lag (records)", justify="right")
    for topic, lag in view.lag.items():
        kafka.add_row(topic, "-" if lag is None else f"{lag:,}")
    alerts = Table(title=f"alerts ({sum(view.alerts_by_type.values()):,})", min_width=30)
    alerts.add_column("type")
    alerts.add_column("count", justify="right")
    for kind, n in sorted(view.alerts_by_type.items()):
        alerts.add_row(kind, f"{n:,}")
    procs = Table(title="processes", min_width=30)
    procs.add_column("part")
    procs.add_column("state")
    for name, state in view.processes:
        procs.add_row(name, state)
    parts: list[Any] = [flow, kafka, alerts, procs]
    if view.events:
        parts.append("\n".join(view.events[-4:]))
    return Group(*parts)
