"""The plug-in interface every simulator implements, and shared per-device bookkeeping.

A simulator (built in or registered through the ``cityhealth.simulators`` entry-point group)
is a class with::

    family: str                       # "wearable", "airq", "eldercare"
    channels: tuple[str, ...]         # the channels it publishes
    def __init__(self, scenario, rng): ...
    def tick(self, now) -> list[tuple[str, bytes]]   # messages due in [now, now + tick_s)
    def truth(self) -> list[dict]                    # ground-truth events so far

The runner calls ``tick`` every ``scenario.tick_s`` simulated seconds, in order, with
strictly increasing ``now``; simulators keep their state in numpy arrays over devices so a
tick costs a few vectorised operations, not a Python loop per device.
"""

from __future__ import annotations

import heapq
from typing import Any, ClassVar, Protocol

import numpy as np

from ingest.contract import ContractModel, to_senml_json
from simulators.scenario import Scenario

Message = tuple[str, bytes]


class SimulatorLike(Protocol):
    """What the runner needs: plug-ins need not subclass :class:`Simulator`."""

    def tick(self, now: float) -> list[Message]: ...

    def truth(self) -> list[dict[str, Any]]: ...


class Simulator:
    """Base class with the plug-in interface (subclasses set ``family`` and ``channels``).

    Parameters
    ----------
    scenario
        The city being simulated.
    rng
        This simulator's own random stream (the runner spawns one per simulator from the
        seed, so adding a plug-in never changes what the others generate).
    name
        Entry-point name; the scenario table ``[name]`` configures the simulator.
    """

    family: ClassVar[str] = ""
    channels: ClassVar[tuple[str, ...]] = ()

    def __init__(self, scenario: Scenario, rng: np.random.Generator, name: str = "") -> None:
        self.scenario = scenario
        self.rng = rng
        self.name = name or self.family
        self._truth: list[dict[str, Any]] = []

    def tick(self, now: float) -> list[Message]:
        """Messages for readings due in ``[now, now + scenario.tick_s)``."""
        raise NotImplementedError

    def truth(self) -> list[dict[str, Any]]:
        """Ground-truth events injected so far (JSON-serialisable dicts)."""
        return list(self._truth)

    @property
    def device_count(self) -> int:
        """Number of simulated devices (0 disables the simulator)."""
        return 0


class Roster:
    """Device ids, districts, topics and publishing slots of one family.

    Devices are spread over districts in proportion to ``residents``; device ``i`` publishes
    in slot ``i % slots`` of every second (``slots = 1 / tick_s``), which spreads the load.
    """

    def __init__(
        self,
        scenario: Scenario,
        family: str,
        n: int,
        prefix: str,
        districts: list[str] | None = None,
        ids: list[str] | None = None,
    ) -> None:
        self.family = family
        self.n = n
        self.ids = ids if ids is not None else [f"{prefix}{i:05d}" for i in range(n)]
        if districts is None:
            w = np.array([d.residents for d in scenario.districts], dtype=float)
            cut = np.floor(np.cumsum(w) / w.sum() * n + 0.5).astype(int)
            which = np.searchsorted(cut, np.arange(n), side="right")
            districts = [scenario.districts[int(k)].name for k in which]
        self.districts = districts
        self.district_names = sorted(set(districts))
        codes = {name: i for i, name in enumerate(self.district_names)}
        self.district_code = np.array([codes[d] for d in districts], dtype=np.int64)
        self.slots = round(1.0 / scenario.tick_s)
        self.tick_s = scenario.tick_s
        self.members = [np.arange(s, n, self.slots, dtype=np.int64) for s in range(self.slots)]
        self._topics: dict[str, list[str]] = {}
        self._t0: float | None = None

    def topics(self, channel: str) -> list[str]:
        """``city/{district}/{family}/{device_id}/{channel}`` for every device (cached)."""
        got = self._topics.get(channel)
        if got is None:
            fam = self.family
            got = [
                f"city/{d}/{fam}/{i}/{channel}"
                for d, i in zip(self.districts, self.ids, strict=True)
            ]
            self._topics[channel] = got
        return got

    def slot(self, now: float) -> int:
        """Slot index of the tick starting at ``now`` (relative to the first tick seen)."""
        if self._t0 is None:
            self._t0 = now
        return round((now - self._t0) / self.tick_s) % self.slots

    def due(self, now: float) -> np.ndarray:
        """Devices publishing their once-per-second readings in the tick at ``now``."""
        return self.members[self.slot(now)]


class HeldWindows:
    """Sample windows published when their last sample is taken, not at their first.

    A device sends an accelerometer window once it has recorded it: a window starting at
    ``t0`` with ``n`` samples at ``rate_hz`` is due at ``t0 + n / rate_hz``. Simulators
    generate a device's second of samples at the tick at its start (its samples come from
    the same state as the other readings of that tick), cut it into windows
    (:mod:`simulators.burst`: 1-s windows, or shorter ones after an impact trigger) and
    hand them here; :meth:`due` returns each window from the first tick at or after its
    end on. In real time this puts its publication after its sensor times, as with a real
    device, so sensor-to-alert latency is never negative. Windows ending after the last
    tick of a run are not published (the recording stopped with the run).

    Windows held at one tick end at different times (0.2-s burst windows and 1-s ones), so
    they wait in a heap ordered by end time, then by the order they were held.
    """

    #: Ticks are ``start + k * tick_s`` in floating point: compare with a tolerance.
    _EPS = 1e-6

    def __init__(self) -> None:
        self._held: list[tuple[float, int, list[Message]]] = []
        self._seq = 0

    def hold(self, end: float, messages: list[Message]) -> None:
        """Keep ``messages`` (windows ending at ``end``) until the tick at ``end``."""
        if messages:
            heapq.heappush(self._held, (end, self._seq, messages))
            self._seq += 1

    def due(self, now: float) -> list[Message]:
        """Every held window that ended at or before ``now``, by end time, then held order."""
        out: list[Message] = []
        held = self._held
        while held and held[0][0] <= now + self._EPS:
            out.extend(heapq.heappop(held)[2])
        return out


def senml_flags(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Which devices speak SenML (a fixed random share, drawn once)."""
    if fraction <= 0:
        return np.zeros(n, dtype=bool)
    return rng.random(n) < fraction


def senml_bytes(model_type: type[ContractModel], **fields: Any) -> bytes:
    """A SenML pack (RFC 8428) for the reading, via the contract's encoder.

    ``model_construct`` skips validation: the simulator's values are in range by
    construction and the payload is validated by the contract at decode time anyway.
    """
    return to_senml_json(model_type.model_construct(**fields))
