"""Elder-care homes: a resident's daily routine seen by home sensors and a pendant.

Routine model (per home, vectorised over the homes due in a tick)
-----------------------------------------------------------------
Each home has its own schedule drawn once: wake-up 06:30-08:00, bedtime 21:30-23:30,
breakfast/lunch/dinner in the kitchen (+-20 min, 30 min each), an outing on most days
(10:00-15:00, 1-3 h; the front door opens and closes), a living-room armchair otherwise
(TV, with a few minutes of moving about every 20 min), and bathroom visits as a Poisson
process (0.4 /h awake, 0.15 /h asleep, 4-8 min). The resident's (room, posture) each
second drives the sensors, edge-triggered as the contract describes:

* ``motion`` (PIR per room): ``true`` on entering a room and then every ~30 s while moving
  (~3 min while seated, ~30 min in bed); ``false`` for the room left;
* ``door`` (front door): open, then closed 5 s later, when going out and coming back;
* ``bed`` / ``chair``: occupancy changes when lying down / getting up, sitting / standing;
* ``pendant``: 1-s accelerometer windows (:mod:`simulators.motion` clips) while at home
  (the pendant is out of range outdoors): sitting down, lying down on the bed at bedtime
  (labelled ``fall_like`` with ``cause: routine``), walking, sitting, lying;
* ``panic``: a press (event); ``status``: the hub battery.

Injected events: fall (pendant fall, then lying on the floor, no motion, bed and chair
empty), fall_like, inactivity (no motion for hours by day, seated still), panic,
stuck_value (a PIR stuck reporting motion in an empty kitchen), dropout (pendant silent),
device_offline (the whole home silent).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ingest.contract import DeviceStatus, DoorContact, Occupancy, PanicButton, RoomMotion
from simulators import motion
from simulators.accel import AccelPlayer, ClipBank
from simulators.base import HeldWindows, Message, Roster, Simulator, senml_bytes, senml_flags
from simulators.burst import BurstConfig, BurstWindows
from simulators.encode import dumps
from simulators.events import EventClock, truth_record
from simulators.scenario import Scenario
from simulators.wearable import FALL_LIKE, local_hour

ROOMS = ("bedroom", "bathroom", "kitchen", "living")
OUT = 4
BEDROOM, BATHROOM, KITCHEN, LIVING = range(4)
# postures
LYING, SITTING, ACTIVE, FLOOR, STILL = range(5)
#: Seconds between PIR re-triggers by posture (lying, sitting, active, floor, still).
MOTION_EVERY = np.array([1800.0, 180.0, 30.0, np.inf, np.inf])
MEAL_H = (8.0, 12.5, 18.5)
#: Events that only happen to a resident who is up and about at home.
AWAKE_EVENTS = ("fall", "fall_like", "inactivity")


class ElderCareSimulator(Simulator):
    """Homes of older people living alone (see the module docstring)."""

    family: ClassVar[str] = "eldercare"
    channels: ClassVar[tuple[str, ...]] = (
        "pendant",
        "motion",
        "door",
        "bed",
        "chair",
        "panic",
        "status",
    )

    def __init__(self, scenario: Scenario, rng: np.random.Generator, name: str = "") -> None:
        super().__init__(scenario, rng, name)
        n = scenario.counts.get(self.name, 0)
        self.n = n
        p = scenario.section(self.name)
        self.rate_hz = float(p.get("pendant_rate_hz", 25))
        self.status_period = int(p.get("status_period_s", 300))
        self.roster = Roster(scenario, self.family, n, str(p.get("id_prefix", "home-")))
        self.topic = {ch: self.roster.topics(ch) for ch in self.channels}
        self.senml = senml_flags(rng, n, float(p.get("senml_fraction", 0.0)))
        self.clock = EventClock(self.family, scenario.events, rng)
        self.bank = ClipBank(rng, rate_hz=self.rate_hz, placements=["pendant"])
        self.player = AccelPlayer(self.bank, n, rng, window=round(self.rate_hz))
        self.held = HeldWindows()
        self.burst = BurstWindows(n, self.rate_hz, BurstConfig.from_section(p))
        c = self.bank.code
        self.posture_clip = np.array(
            [c["lying"], c["sitting"], c["walking"], c["lying"], c["sitting"]]
        )
        self.active_alt = c["standing"]
        # schedules (local hours)
        self.wake = rng.uniform(6.5, 8.0, n)
        self.sleep = rng.uniform(21.5, 23.5, n)
        self.meal = np.stack([m + rng.uniform(-1 / 3, 1 / 3, n) for m in MEAL_H], axis=1)
        self.goes_out = rng.random(n) < 0.7
        self.out_start = rng.uniform(10.0, 15.0, n)
        self.out_len = rng.uniform(1.0, 3.0, n)
        self.bath_until = np.full(n, -np.inf)
        # current state
        self.loc = np.full(n, -1, dtype=np.int64)
        self.posture = np.full(n, -1, dtype=np.int64)
        self.motion_next = np.zeros(n)
        self.door_close_at = np.full(n, np.inf)
        self.battery = rng.uniform(50, 100, n)
        # events
        self.busy_until = np.full(n, -np.inf)
        self.fall_until = np.full(n, -np.inf)
        self.inactive_until = np.full(n, -np.inf)
        self.stuck_until = np.full(n, -np.inf)
        self.stuck_next = np.zeros(n)
        self.drop_until = np.full(n, -np.inf)
        self.offline_until = np.full(n, -np.inf)

    @property
    def device_count(self) -> int:
        return self.n

    # ------------------------------------------------------------------ routine
    def _plan(self, d: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Planned (room, posture) of homes ``d`` at ``now`` (before events)."""
        h = local_hour(now, self.scenario.utc_offset_h)
        k = d.size
        loc = np.full(k, LIVING)
        posture = np.full(k, ACTIVE if (h * 60.0) % 20.0 < 4.0 else SITTING)
        meal = ((h >= self.meal[d]) & (h < self.meal[d] + 0.5)).any(axis=1)
        loc[meal], posture[meal] = KITCHEN, ACTIVE
        out = (
            self.goes_out[d] & (h >= self.out_start[d]) & (h < self.out_start[d] + self.out_len[d])
        )
        loc[out], posture[out] = OUT, ACTIVE
        asleep = (h >= self.sleep[d]) | (h < self.wake[d])
        loc[asleep], posture[asleep] = BEDROOM, LYING
        # bathroom visits: Poisson starts while at home
        rate = np.where(asleep, 0.15, 0.4) / 3600.0
        start = (self.bath_until[d] <= now) & ~out & (self.rng.random(k) < rate)
        self.bath_until[d[start]] = now + self.rng.uniform(240, 480, int(start.sum()))
        bath = self.bath_until[d] > now
        loc[bath], posture[bath] = BATHROOM, ACTIVE
        return loc, posture

    # ------------------------------------------------------------------ events
    def _inject(self, now: float, d: np.ndarray, loc: np.ndarray, posture: np.ndarray) -> None:
        free = (loc != OUT) & (self.busy_until[d] <= now)
        awake = free & (posture != LYING)
        r = self.roster
        pos = {dev: j for j, dev in enumerate(d.tolist())}
        draws = self.clock.draw(now, d[awake], 1.0, types=AWAKE_EVENTS)
        others = tuple(t for t in self.clock.types if t not in AWAKE_EVENTS)
        draws += self.clock.draw(now, d[free], 1.0, types=others)
        for etype, chosen in draws:
            chosen = chosen[self.busy_until[chosen] <= now]
            rows = np.array([pos[c] for c in chosen.tolist()], dtype=np.int64)
            if chosen.size == 0:
                continue
            dur = self.clock.duration(etype, chosen.size)
            end = now + dur
            extras: list[dict[str, Any]] = [{} for _ in range(chosen.size)]
            if etype == "fall":
                kinds = self.rng.integers(0, len(motion.FALLS), chosen.size)
                self.player.start(
                    chosen, np.array([self.bank.code[motion.FALLS[i]] for i in kinds])
                )
                clip = self.player.clip[chosen]
                end = np.maximum(end, now + self.bank.length[clip] / self.rate_hz)
                self.fall_until[chosen] = end
                for j, kk in enumerate(kinds.tolist()):
                    extras[j] = {
                        "channel": "pendant",
                        "placement": "pendant",
                        "fall_type": motion.FALLS[kk].removeprefix("fall_"),
                        "impact_ts": round(now + self.bank.impact[clip[j]] / self.rate_hz, 3),
                        "room": ROOMS[int(loc[rows[j]])],
                    }
            elif etype == "fall_like":
                which = self.rng.integers(0, len(FALL_LIKE), chosen.size)
                self.player.start(chosen, np.array([self.bank.code[FALL_LIKE[i]] for i in which]))
                end = now + self.bank.length[self.player.clip[chosen]] / self.rate_hz
                extras = [
                    {"channel": "pendant", "activity": FALL_LIKE[i], "cause": "injected"}
                    for i in which.tolist()
                ]
            elif etype == "inactivity":
                self.inactive_until[chosen] = end
                extras = [{"channel": "motion", "room": ROOMS[LIVING]}] * chosen.size
            elif etype == "panic":
                extras = [{"channel": "panic"}] * chosen.size
            elif etype == "stuck_value":
                self.stuck_until[chosen] = end
                self.stuck_next[chosen] = now
                extras = [
                    {"channel": "motion", "room": ROOMS[KITCHEN], "field": "motion"}
                ] * chosen.size
            elif etype == "dropout":
                self.drop_until[chosen] = end
                extras = [{"channel": "pendant"}] * chosen.size
            elif etype == "device_offline":
                self.offline_until[chosen] = end
            self.busy_until[chosen] = end
            for j, dev in enumerate(chosen.tolist()):
                self._truth.append(
                    truth_record(
                        etype,
                        r.ids[dev],
                        self.family,
                        r.districts[dev],
                        now,
                        float(end[j]),
                        **extras[j],
                    )
                )
            if etype == "panic":
                self._panics.extend(chosen.tolist())

    # ------------------------------------------------------------------ tick
    def tick(self, now: float) -> list[Message]:
        if self.n == 0:
            return []
        self.clock.guarantee(now + self.scenario.guarantee_after_s, self.scenario.guarantee_s)
        d = self.roster.due(now)
        d = d[self.offline_until[d] <= now]
        loc, posture = self._plan(d, now)
        self._panics: list[int] = []
        self._inject(now, d, loc, posture)
        keep = self.offline_until[d] <= now
        d, loc, posture = d[keep], loc[keep], posture[keep]
        fallen = self.fall_until[d] > now
        loc = np.where(fallen, np.where(self.loc[d] >= 0, self.loc[d], LIVING), loc)
        loc = np.where(fallen & (loc == OUT), LIVING, loc)
        posture = np.where(fallen, FLOOR, posture)
        still = (self.inactive_until[d] > now) & ~fallen
        loc, posture = np.where(still, LIVING, loc), np.where(still, STILL, posture)
        out = self.held.due(now)
        ts = round(now, 3)
        self._edges(d, loc, posture, now, ts, out)
        for dev in self._panics:
            out.append(self._msg("panic", dev, PanicButton, ts=ts, pressed=True))
        self._pendant(d, loc, posture, now, out)
        self._status(d, now, ts, out)
        self.loc[d], self.posture[d] = loc, posture
        return out

    def _msg(self, channel: str, dev: int, model: Any, **fields: Any) -> Message:
        if self.senml[dev]:
            return self.topic[channel][dev], senml_bytes(model, **fields)
        return self.topic[channel][dev], dumps(fields)

    def _edges(
        self,
        d: np.ndarray,
        loc: np.ndarray,
        posture: np.ndarray,
        now: float,
        ts: float,
        out: list[Message],
    ) -> None:
        """Edge-triggered sensor messages for state changes and PIR re-triggers."""
        prev_loc, prev_post = self.loc[d], self.posture[d]
        first = prev_loc < 0
        moved = (loc != prev_loc) & ~first
        # front door closes 5 s after it opened
        closing = self.door_close_at[d] <= now
        for dev in d[closing].tolist():
            out.append(self._msg("door", dev, DoorContact, ts=ts, door="front", open=False))
            self.door_close_at[dev] = np.inf
        kitchen = set()  # devices whose kitchen PIR reported at ``ts`` already
        for j in np.flatnonzero(moved).tolist():
            dev, a, b = int(d[j]), int(prev_loc[j]), int(loc[j])
            if a != OUT:
                out.append(self._msg("motion", dev, RoomMotion, ts=ts, room=ROOMS[a], motion=False))
                if a == KITCHEN:
                    kitchen.add(dev)
            if a == OUT or b == OUT:
                out.append(self._msg("door", dev, DoorContact, ts=ts, door="front", open=True))
                self.door_close_at[dev] = now + 5.0
            if b != OUT:
                self.motion_next[dev] = now  # entering a room triggers its PIR now
        lying, prev_lying = posture == LYING, (prev_post == LYING) & ~first
        seated = (posture == SITTING) | (posture == STILL)
        prev_seated = ((prev_post == SITTING) | (prev_post == STILL)) & ~first
        for j in np.flatnonzero((lying != prev_lying) & ~first).tolist():
            out.append(self._msg("bed", int(d[j]), Occupancy, ts=ts, occupied=bool(lying[j])))
        for j in np.flatnonzero((seated != prev_seated) & ~first).tolist():
            out.append(self._msg("chair", int(d[j]), Occupancy, ts=ts, occupied=bool(seated[j])))
        # PIR re-triggers while someone moves in the room
        every = MOTION_EVERY[posture]
        fire = (loc != OUT) & (self.motion_next[d] <= now) & np.isfinite(every)
        for j in np.flatnonzero(fire).tolist():
            dev = int(d[j])
            out.append(
                self._msg("motion", dev, RoomMotion, ts=ts, room=ROOMS[int(loc[j])], motion=True)
            )
            if loc[j] == KITCHEN:
                kitchen.add(dev)
        self.motion_next[d[fire]] = now + every[fire] * self.rng.uniform(0.7, 1.3, int(fire.sum()))
        # a stuck kitchen PIR keeps reporting motion every 30 s; one sensor sends one
        # message per instant, so not when it just reported (two readings of one series
        # at one timestamp would be one point in InfluxDB: a "missing" reading)
        stuck = (self.stuck_until[d] > now) & (self.stuck_next[d] <= now)
        for dev in d[stuck].tolist():
            if dev in kitchen:
                continue
            out.append(
                self._msg("motion", dev, RoomMotion, ts=ts, room=ROOMS[KITCHEN], motion=True)
            )
        self.stuck_next[d[stuck]] = now + 30.0

    def _pendant(
        self, d: np.ndarray, loc: np.ndarray, posture: np.ndarray, now: float, out: list[Message]
    ) -> None:
        """1-s pendant windows of residents at home (clips follow posture changes)."""
        prev = self.posture[d]
        home = (loc != OUT) & (self.drop_until[d] <= now)
        changed = (posture != prev) & (prev >= 0) & (posture != FLOOR)
        c = self.bank.code
        # transitions: sitting down, lying down on the bed (a labelled fall-like activity)
        sit = changed & (posture == SITTING) & home
        self.player.start(d[sit], np.full(int(sit.sum()), c["sitting_down"]))
        bed = changed & (posture == LYING) & home
        self.player.start(d[bed], np.full(int(bed.sum()), c["lying_down_bed"]))
        for dev in d[bed].tolist():
            end = now + self.bank.length[self.player.clip[dev]] / self.rate_hz
            self._truth.append(
                truth_record(
                    "fall_like",
                    self.roster.ids[dev],
                    self.family,
                    self.roster.districts[dev],
                    now,
                    float(end),
                    channel="pendant",
                    activity="lying_down_bed",
                    cause="routine",
                )
            )
        need = self.player.exhausted(d)
        if need.size:
            rows = np.searchsorted(d, need)
            act = self.posture_clip[posture[rows]]
            alt = (posture[rows] == ACTIVE) & (self.rng.random(need.size) < 0.3)
            self.player.start(need, np.where(alt, self.active_alt, act))
        d = d[home]
        if d.size == 0:
            return
        self.burst.hold(
            self.held, self.topic["pendant"], d, now, self.player.windows(d), round(now, 3)
        )

    def _status(self, d: np.ndarray, now: float, ts: float, out: list[Message]) -> None:
        due = d[(round(now) + d) % self.status_period == 0]
        self.battery[due] = np.maximum(self.battery[due] - 0.05, 0.0)
        for dev, b in zip(due.tolist(), np.round(self.battery[due], 1).tolist(), strict=True):
            out.append(self._msg("status", dev, DeviceStatus, ts=ts, battery=b))
