"""The simulation loop: clock, ticks, publishing, progress display, truth and summary.

Simulated clock
---------------
Timestamps are simulated time. The simulated start ``t0`` is ``--start`` when given,
otherwise chosen so that every timestamp stays inside the contract's window (at most
``MAX_FUTURE_S`` = 300 s ahead of the wall clock, at most 7 days old) during the run:

* real time (``--speed 1``) and slower: ``t0 = now``;
* ``--speed X`` (X > 1): simulated time runs X times faster than the wall clock, so it
  starts ``duration x (1 - 1/X)`` in the past and reaches the wall clock at the end;
* ``--fast`` (as fast as possible): ``t0 = now - duration``, the run ends near "now".

Runs longer than the 7-day past limit start at the limit (plus a one-hour margin).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from ingest.contract import DEFAULT_MAX_AGE_S
from simulators.base import Message, SimulatorLike
from simulators.malformed import KINDS, Malformer
from simulators.timing import TickTimes


class Publisher(Protocol):
    """What the runner needs from a publisher (MQTT or null)."""

    sent: int
    acked: int
    failed: int

    def publish_many(self, messages: Sequence[Message]) -> int: ...

    @property
    def outstanding(self) -> int: ...

    def flush(self, timeout: float = ...) -> bool: ...

    def close(self) -> None: ...


def simulated_start(duration: float, speed: float | None, now: float | None = None) -> float:
    """Start of the simulated clock (see the module docstring); ``speed=None`` is --fast."""
    now = time.time() if now is None else now
    if speed is None:
        back = duration
    elif speed > 1.0:
        back = duration * (1.0 - 1.0 / speed)
    else:
        back = 0.0
    back = min(back, DEFAULT_MAX_AGE_S - 3600.0)
    if back == 0.0:  # real time: sensor time is the wall clock (a floor made every
        return float(now)  # sample up to 1 s older than its publication)
    return float(np.floor(now - back))


@dataclass
class Stats:
    """Counters reported by the progress display and the summary."""

    published: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    senml: int = 0
    malformed: int = 0
    malformed_by_kind: Counter[str] = field(default_factory=Counter)
    max_lag_s: float = 0.0


_KEYS: dict[str, str] = {}


def channel_key(topic: str) -> str:
    """``family/channel`` of a device topic (memoised: topics repeat every second)."""
    key = _KEYS.get(topic)
    if key is None:
        parts = topic.split("/")
        key = _KEYS[topic] = f"{parts[2]}/{parts[4]}"
    return key


class Runner:
    """Drives simulators tick by tick and publishes what they produce.

    Parameters
    ----------
    simulators
        Instantiated simulators (built-in and plug-ins).
    publisher
        :class:`~simulators.publisher.MqttPublisher` (lean MQTT 5.0), ``PahoPublisher`` or
        ``NullPublisher``.
    tick_s, duration, start
        Simulated step, length and start (epoch seconds).
    speed
        Simulated seconds per wall second; ``None`` runs as fast as possible.
    malformer
        Optional source of invalid messages (counted apart from ``published``).
    on_progress
        Called about twice a wall second with the runner (progress display).
    """

    def __init__(
        self,
        simulators: Sequence[SimulatorLike],
        publisher: Publisher,
        *,
        tick_s: float,
        duration: float,
        start: float,
        speed: float | None,
        malformer: Malformer | None = None,
        on_progress: Callable[[Runner], None] | None = None,
    ) -> None:
        self.simulators = list(simulators)
        self.publisher = publisher
        self.tick_s, self.duration, self.start, self.speed = tick_s, duration, start, speed
        self.malformer = malformer
        self.on_progress = on_progress
        self.stats = Stats()
        self.now = start
        self.wall_start = 0.0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.ticks_done = 0
        #: Per-tick wall-clock figures: lateness, generation, publication (simulators.timing).
        self.times = TickTimes()
        #: Set (e.g. from a SIGINT handler) to end the run after the current tick.
        self.stop_requested = False

    @property
    def n_ticks(self) -> int:
        return round(self.duration / self.tick_s)

    def run(self) -> Stats:
        """Run every tick, then wait for the broker's acknowledgements.

        In real time (``speed`` set) each tick is generated *before* its target wall time
        and published at it: a tick's sensor timestamps are its target time, so the
        generation cost would otherwise make every message late by it (the ``generate``
        figures of :attr:`times`), which a real device, sampling and sending, never is.
        """
        st = self.stats
        pub = self.publisher
        times = self.times
        clock = time.perf_counter
        self.wall_start = w0 = clock()
        cpu0 = time.process_time()
        next_progress = w0
        for k in range(self.n_ticks):
            if self.stop_requested:
                break
            now = self.now = self.start + k * self.tick_s
            g0 = clock()
            batch: list[Message] = []
            for sim in self.simulators:
                batch.extend(sim.tick(now))
            times.generate.add(clock() - g0)
            target = 0.0
            if self.speed is not None:
                target = w0 + k * self.tick_s / self.speed
                lag = clock() - target
                if lag < 0:
                    time.sleep(-lag)
                else:
                    st.max_lag_s = max(st.max_lag_s, lag)
            p0 = clock()
            pub.publish_many(batch)
            p1 = clock()
            times.publish.add(p1 - p0)
            if self.speed is not None:
                times.late.add(p1 - target)
            st.by_channel.update([channel_key(t) for t, _ in batch])
            st.senml += sum(1 for _, p in batch if p[:1] == b"[")
            st.published += len(batch)
            if self.malformer is not None:
                bad = self.malformer.draw(batch)
                if bad:
                    pub.publish_many([(t, p) for t, p, _ in bad])
                    st.malformed += len(bad)
                    st.malformed_by_kind.update(kind for _, _, kind in bad)
            if self.on_progress is not None and clock() >= next_progress:
                self.on_progress(self)
                next_progress = clock() + 0.5
            self.ticks_done = k + 1
        self.now = self.start + self.ticks_done * self.tick_s
        self.wall_s = clock() - w0
        self.cpu_s = time.process_time() - cpu0
        return st

    def truth(self) -> list[dict[str, Any]]:
        """Ground truth of every simulator, ordered by start time, then device and type."""
        events = [e for sim in self.simulators for e in sim.truth()]
        events.sort(key=lambda e: (e["start"], e["device_id"], e["type"]))
        return events

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The run summary (``--summary-json``; documented in docs/SIMULATORS.md)."""
        st = self.stats
        by_channel: Counter[str] = Counter()
        for key, n in st.by_channel.items():
            by_channel[key.split("/")[1]] += n
        truth = self.truth()
        pub = self.publisher
        return {
            "published": st.published,
            "published_by_channel": dict(sorted(by_channel.items())),
            "published_by_family_channel": dict(sorted(st.by_channel.items())),
            "published_senml": st.senml,
            "malformed": st.malformed,
            "malformed_by_kind": {k: st.malformed_by_kind.get(k, 0) for k in KINDS},
            "acked": pub.acked,
            "unacked": pub.sent - pub.acked,
            "failed": pub.failed,
            # e.g. {"0x87 not authorized": 3}: PUBACK failure reason codes (MQTT 5.0 2.4)
            "failed_by_reason": dict(sorted(getattr(pub, "failed_by_reason", {}).items())),
            "reconnects": getattr(pub, "reconnects", 0),
            "resent": getattr(pub, "resent", 0),
            "truth_events": len(truth),
            "truth_by_type": dict(sorted(Counter(e["type"] for e in truth).items())),
            "devices": {
                getattr(s, "name", type(s).__name__): getattr(s, "device_count", None)
                for s in self.simulators
            },
            "start": self.start,
            "end": self.start + self.ticks_done * self.tick_s,
            "interrupted": self.ticks_done < self.n_ticks,
            "duration_s": self.duration,
            "speed": self.speed,
            "wall_s": round(self.wall_s, 3),
            "rate_msgs_per_s": round(st.published / self.wall_s, 1) if self.wall_s else None,
            "max_lag_s": round(st.max_lag_s, 3),
            # real time: p50/p99/max of how late each tick's publication ended, and of the
            # wall time its generation and its publication took (simulators.timing)
            "tick_wall_s": self.times.summary(),
            # CPU of this process during the ticks (all threads): generation + publishing
            "cpu_s": round(self.cpu_s, 3),
            "cpu_us_per_msg": (round(1e6 * self.cpu_s / st.published, 2) if st.published else None),
            **extra,
        }


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line (the ground-truth format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for rec in records:
            fh.write(orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY))
            fh.write(b"\n")
