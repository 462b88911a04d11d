"""Fault injection for ``cityhealth up --chaos ACTION@SECONDS`` (restart tests, demos).

Actions, each at a time counted from the start of the simulators:

``kill-worker``
    SIGKILL the stream worker (a crash: no flush, no commit), then start it again.
``kill-bridge``
    SIGKILL the ingest bridge, then start it again with the same MQTT client id: the
    broker kept its persistent session and re-sends what was not acknowledged (QoS 1).
``restart-bridge``
    Stop the bridge gracefully (SIGTERM) and start it again.
``restart-influx``
    Stop the local InfluxDB (``StackManager.stop_service``) and start it again: the
    worker's sink retries with backoff meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

ACTIONS = ("kill-worker", "kill-bridge", "restart-bridge", "restart-influx")


class ChaosSpecError(ValueError):
    """A ``--chaos`` value that is not ``ACTION@SECONDS``."""


@dataclass(frozen=True)
class ChaosEvent:
    """One fault: ``action`` at ``at_s`` seconds after the simulators started."""

    action: str
    at_s: float
    pause_s: float = 2.0

    @classmethod
    def parse(cls, text: str) -> ChaosEvent:
        """``kill-worker@20`` or ``restart-influx@30:5`` (5 s down before the restart)."""
        action, sep, when = text.strip().partition("@")
        if not sep or action not in ACTIONS:
            raise ChaosSpecError(
                f"--chaos {text!r}: expected ACTION@SECONDS[:PAUSE] with ACTION one of "
                f"{', '.join(ACTIONS)}"
            )
        at, _, pause = when.partition(":")
        try:
            at_s = float(at)
            pause_s = float(pause) if pause else 2.0
        except ValueError:
            raise ChaosSpecError(f"--chaos {text!r}: {when!r} is not a number of seconds") from None
        if at_s < 0 or pause_s < 0:
            raise ChaosSpecError(f"--chaos {text!r}: times must be >= 0")
        return cls(action, at_s, pause_s)


@dataclass
class ChaosRecord:
    """What happened, for the summary."""

    action: str
    at_s: float
    done_at_s: float | None = None
    error: str | None = None


def run_event(event: ChaosEvent, handlers: dict[str, Callable[[ChaosEvent], None]]) -> ChaosRecord:
    """Run one fault through its handler, recording when it finished or why it failed."""
    t0 = time.monotonic()
    record = ChaosRecord(event.action, event.at_s)
    try:
        handlers[event.action](event)
    except Exception as exc:  # reported in the summary; the run carries on
        record.error = f"{type(exc).__name__}: {exc}"
    record.done_at_s = round(event.at_s + time.monotonic() - t0, 3)
    return record
