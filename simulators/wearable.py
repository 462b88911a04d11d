"""Wearables: 1 Hz vital signs, 1-s accelerometer windows, battery status.

Signal model (per device, vectorised over the devices due in a tick)
--------------------------------------------------------------------
* **Activity** comes from the accelerometer clip being played (:mod:`simulators.accel`,
  itself :mod:`simulators.motion`), in bouts of several clips chosen from the local hour.
  At night lying comes in bouts of 20-60 min, and after one bout in ten the wearer gets up
  for 1-3 min (standing or walking: about one night-time awakening per night). By day
  (:data:`DAY_BOUTS`) sitting bouts of 5-60 min, standing 1-15 min, walking 20 s-10 min and
  stairs 20-50 s, heavy-tailed as measured bouts are, and one exercise bout a day (jogging
  10-40 min, then a cool-down walk) for a minority of wearers (:data:`EXERCISERS`).
* **Intensity** ``e`` (a fraction of the heart-rate reserve) follows the activity's level
  (:data:`EXERTION`, capped per wearer by :data:`NORMAL_HR_MAX`) with first-order kinetics,
  time constants :data:`TAU_ON_S` rising and :data:`TAU_OFF_S` recovering.
* **Heart rate**: ``HR = HR_rest + A cos(2 pi (h - 17) / 24) + e (HR_max - HR_rest) +
  fever + stress + AR(1) noise`` -- Karvonen's heart-rate reserve with ``HR_max = 208 -
  0.7 age`` (Tanaka et al. 2001), a circadian rhythm with its trough in the early morning
  (Hilton et al. 2000) and about +10 /min per degC of fever (Liebermeister's rule). The
  population is healthy adults whose sleeping rate (``HR_rest - A``, lying, at the trough)
  is at least :data:`SLEEP_HR_MIN`, above the bradycardia alarm's exit limit (55 /min,
  :mod:`streams.limits`): wearers whose normal night would trip that absolute limit
  (athletes, many young adults; nightly minimum 50.5 +- 7.6 /min in Speed et al. 2023)
  are left out of the demo city, so every bradycardia alarm belongs to a labelled event;
  likewise nobody's normal day exceeds :data:`NORMAL_HR_MAX` before noise, so every
  tachycardia alarm belongs to a labelled event.
  The noise is that of a 1 Hz wrist reading: SD about 1.5 /min at rest, more in motion.
* **SpO2**: 96-99 % at rest, slightly lower with ``e``, integer like pulse oximeters,
  with unlabelled sensor dropouts (the field is absent) more frequent in motion.
* **Body temperature**: 36.3-36.9 degC with a +-0.25 degC circadian swing peaking in the
  evening; fever adds a smooth rise / plateau / defervescence curve of +1.5-3 degC.
* **Respiration**: 12-17 /min at rest, +8 ``e`` /min, up with fever and
  desaturation.
* **Steps**: a cumulative counter advanced by a Poisson draw at the activity's cadence.

Injected events (labelled in the ground truth): tachycardia, bradycardia, desaturation,
fever, fall (motion.py fall types, then lying still), fall_like (sitting_down_hard,
jumping, lying_down_bed), stuck_value, spikes, dropout (one vital missing) and
device_offline (no message at all). A device takes part in one event at a time.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ingest.contract import DeviceStatus, Vitals
from simulators import motion
from simulators.accel import AccelPlayer, ClipBank
from simulators.base import HeldWindows, Message, Roster, Simulator, senml_bytes, senml_flags
from simulators.burst import BurstConfig, BurstWindows
from simulators.encode import dumps
from simulators.events import EventClock, truth_record
from simulators.scenario import Scenario

FALL_LIKE = ("sitting_down_hard", "jumping", "lying_down_bed")
#: Intensity of each activity and fall as a fraction of the heart-rate reserve (Karvonen:
#: ``HR = HR_rest + intensity (HR_max - HR_rest)``), taken as the fraction of the oxygen
#: uptake reserve (ACSM; Swain and Leutholtz 1997): ``(MET - 1) / (MET_max - 1)`` with the
#: Compendium's METs (Ainsworth et al. 2011: sitting 1.3, standing 1.8-2.0, walking
#: 3.5, stairs 4-8.8, jogging 7.0) and a maximal capacity of 10 MET. Each wearer's
#: intensities are capped by :data:`NORMAL_HR_MAX` (see :func:`intensity_caps`).
EXERTION = {
    "walking": 0.28,
    "sitting": 0.03,
    "standing": 0.1,
    "lying": 0.0,
    "sitting_down": 0.08,
    "sitting_down_hard": 0.1,
    "lying_down_bed": 0.05,
    "stairs": 0.5,
    "jumping": 0.6,
    "jogging": 0.67,
}
#: Steps per second of each activity.
CADENCE = {"walking": 1.8, "stairs": 1.5, "jogging": 2.6}
NIGHT_MIX = {"lying": 0.9, "standing": 0.04, "walking": 0.06}
#: Bout length (s) of the night activities: sleep in bouts of 20-60 min between which a
#: wearer may get up (nocturia: about one void a night is common in adults) for 1-3 min.
NIGHT_BOUT_S = {"lying": (1200.0, 3600.0), "standing": (60.0, 180.0), "walking": (60.0, 180.0)}
#: Day bouts (06:30-23:00): share of bouts and log-uniform length range (s) of each
#: background activity. Heavy-tailed like measured bouts (sedentary bout lengths follow a
#: power law, Chastin and Granat 2010; most walking bouts last under a minute or two,
#: Orendurff et al. 2008); the shares give about 55 % of waking time sitting, 27 %
#: standing, 16 % walking and 1 % on stairs (US adults by accelerometry, NHANES 2003-04:
#: 55 % sedentary, Matthews et al. 2008), about 9 bouts an hour. A sitting bout starts
#: with a ``sitting_down`` clip.
DAY_BOUTS = {
    "sitting": (0.166, (300.0, 3600.0)),
    "standing": (0.345, (60.0, 900.0)),
    "walking": (0.378, (20.0, 600.0)),
    "stairs": (0.11, (20.0, 50.0)),
}
#: Weight of each day activity's bouts by local hour (x share above; others 1): active
#: mornings and evenings, a lunch walk, sitting late in the evening.
DAY_HOURS = {
    (6, 9): {"sitting": 0.6, "standing": 1.3, "walking": 1.3},
    (12, 14): {"walking": 1.5},
    (17, 20): {"standing": 1.3, "walking": 1.2},
    (20, 24): {"sitting": 2.0, "walking": 0.5, "stairs": 0.5},
}
#: Share of wearers who exercise (jogging) once a day, in a bout of 10-40 min starting at a
#: time of their own (40 % of them 06:30-08:30, the rest 17:00-20:00), then walk 2-5 min
#: to cool down. A minority: by accelerometry fewer than 5 % of US adults reach 30 min of
#: moderate-to-vigorous activity in 10-min bouts on 5 days a week (Troiano et al. 2008).
EXERCISERS = 0.2
EXERCISE_S, COOL_DOWN_S = (600.0, 2400.0), (120.0, 300.0)
#: Highest heart rate (/min) of a normal day, before noise: each wearer's activity
#: intensities are capped so that ``HR_rest + circadian peak + intensity HRR`` stays at or
#: below it, 20 /min under the tachycardia alarm while stepping (150) and under NEWS2's
#: score 3 (>= 131). Jogging at 43-65 % of the reserve (median 52 %; ACSM moderate to
#: vigorous); wearers who run harder are not simulated (docs/SIMULATORS.md).
NORMAL_HR_MAX = 130.0
#: First-order heart-rate kinetics (s): on-transient of moderate exercise 20-40 s (phase
#: II, Jones and Poole 2005), recovery slower (heart-rate recovery after exercise: a drop
#: of 12 /min or less in the first minute is abnormal, Cole et al. 1999).
TAU_ON_S, TAU_OFF_S = 30.0, 50.0
#: Age range of the wearers (years): HR_max = 208 - 0.7 age (Tanaka et al. 2001).
AGE_RANGE = (20.0, 80.0)
#: Lowest sleeping heart rate (/min, lying at the circadian trough, without noise) of a
#: simulated wearer: 2 /min above the bradycardia alarm's exit limit (55, streams.limits).
SLEEP_HR_MIN = 57.0
#: Resting heart rate of the population (/min, daily mean at rest): mean and SD of
#: wrist-worn trackers' daily resting rate in 92,457 adults (Quer et al. 2020), at most 90.
HR_REST_MEAN, HR_REST_SD, HR_REST_MAX = 66.0, 7.0, 90.0
VITAL_FIELDS = ("heart_rate", "spo2", "body_temp")
_TEMPLATE = (
    b'{"ts":%.3f,"heart_rate":%d,"spo2":%d,"body_temp":%.2f,"respiration_rate":%.1f,"steps":%d}'
)


def local_hour(now: float, utc_offset_h: float) -> float:
    """Local clock hour (0-24) of an epoch time."""
    return ((now / 3600.0) + utc_offset_h) % 24.0


def resting_rates(rng: np.random.Generator, circ_amp: np.ndarray) -> np.ndarray:
    """Daily resting heart rates (/min) of wearers with circadian amplitudes ``circ_amp``.

    Normal(:data:`HR_REST_MEAN`, :data:`HR_REST_SD`) truncated to
    ``[SLEEP_HR_MIN + circ_amp, HR_REST_MAX]`` by redrawing: nobody's normal sleeping rate
    falls below :data:`SLEEP_HR_MIN` (see the module docstring).
    """
    hr = rng.normal(HR_REST_MEAN, HR_REST_SD, circ_amp.size)
    for _ in range(100):
        bad = np.flatnonzero((hr - circ_amp < SLEEP_HR_MIN) | (hr > HR_REST_MAX))
        if bad.size == 0:
            break
        hr[bad] = rng.normal(HR_REST_MEAN, HR_REST_SD, bad.size)
    return np.clip(hr, SLEEP_HR_MIN + circ_amp, HR_REST_MAX)


def mix_cdf(bank: ClipBank, mix: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Activity codes and cumulative probabilities of a background mix."""
    codes = np.array([bank.code[a] for a in mix], dtype=np.int64)
    p = np.array(list(mix.values()), dtype=float)
    return codes, np.cumsum(p / p.sum())


def day_cdfs(bank: ClipBank) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the :data:`DAY_BOUTS` activities and their cumulative bout shares per local
    hour (``float64[24, n]``, weighted by :data:`DAY_HOURS`)."""
    names = list(DAY_BOUTS)
    w = np.tile([share for share, _ in DAY_BOUTS.values()], (24, 1))
    for (h0, h1), factors in DAY_HOURS.items():
        for a, f in factors.items():
            w[h0:h1, names.index(a)] *= f
    codes = np.array([bank.code[a] for a in names], dtype=np.int64)
    return codes, np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)


def max_heart_rates(age: np.ndarray) -> np.ndarray:
    """Age-predicted maximal heart rate (/min): ``208 - 0.7 age`` (Tanaka et al. 2001)."""
    return 208.0 - 0.7 * age


def intensity_caps(hr_rest: np.ndarray, circ_amp: np.ndarray, hr_max: np.ndarray) -> np.ndarray:
    """Highest activity intensity (fraction of the heart-rate reserve) of each wearer in a
    normal day: ``HR_rest + circ_amp + cap (HR_max - HR_rest) = NORMAL_HR_MAX``."""
    return np.clip((NORMAL_HR_MAX - hr_rest - circ_amp) / (hr_max - hr_rest), 0.0, 1.0)


class WearableSimulator(Simulator):
    """Wrist-worn wearables of the scenario's residents (see the module docstring)."""

    family: ClassVar[str] = "wearable"
    channels: ClassVar[tuple[str, ...]] = ("vitals", "accel", "status")

    def __init__(self, scenario: Scenario, rng: np.random.Generator, name: str = "") -> None:
        super().__init__(scenario, rng, name)
        n = scenario.counts.get(self.name, 0)
        self.n = n
        p = scenario.section(self.name)
        self.rate_hz = float(p.get("accel_rate_hz", 50))
        self.status_period = int(p.get("status_period_s", 60))
        placements = p.get("placements", ["wrist"])
        self.placements = [placements] if isinstance(placements, str) else list(placements)
        self.roster = Roster(scenario, self.family, n, str(p.get("id_prefix", "wear-")))
        self.t_vitals = self.roster.topics("vitals")
        self.t_accel = self.roster.topics("accel")
        self.t_status = self.roster.topics("status")
        self.senml = senml_flags(rng, n, float(p.get("senml_fraction", 0.0)))
        self.clock = EventClock(self.family, scenario.events, rng)
        self.bank = ClipBank(rng, rate_hz=self.rate_hz, placements=self.placements)
        self.player = AccelPlayer(self.bank, n, rng, window=round(self.rate_hz))
        self.held = HeldWindows()
        self.burst = BurstWindows(n, self.rate_hz, BurstConfig.from_section(p))
        self.day = day_cdfs(self.bank)
        self.night = mix_cdf(self.bank, NIGHT_MIX)
        names = self.bank.names
        self.night_bout = np.zeros((len(names), 2))
        for a, (lo, hi) in NIGHT_BOUT_S.items():
            self.night_bout[self.bank.code[a]] = (lo, hi)
        self.day_bout = np.ones((len(names), 2))
        for a, (_, (lo, hi)) in DAY_BOUTS.items():
            self.day_bout[self.bank.code[a]] = (lo, hi)
        self.bout_act = np.full(n, -1, dtype=np.int64)
        self.bout_until = np.full(n, -np.inf)
        self.ex_level = np.array([EXERTION.get(a, 0.15) for a in names])
        self.cadence = np.array([CADENCE.get(a, 0.0) for a in names])
        # per-device physiology
        self.circ_amp = rng.uniform(4, 8, n)
        self.hr_rest = resting_rates(rng, self.circ_amp)
        # Draws whose number depends on the activity (bouts, Poisson steps) come from a
        # child stream (spawning does not advance ``rng``): the draws of ``rng`` (events,
        # noise) do not depend on the activity model.
        sched = self.sched_rng = rng.spawn(1)[0]
        self.hr_max = max_heart_rates(sched.uniform(*AGE_RANGE, n))
        self.ex_cap = intensity_caps(self.hr_rest, self.circ_amp, self.hr_max)
        # daily exercise: local start hour (NaN: none) and local day of the last bout
        morning = sched.random(n) < 0.4
        start = np.where(morning, sched.uniform(6.5, 8.5, n), sched.uniform(17.0, 20.0, n))
        self.ex_hour = np.where(sched.random(n) < EXERCISERS, start, np.nan)
        self.ex_day = np.full(n, -1, dtype=np.int64)
        self.spo2_base = rng.uniform(96.0, 99.2, n)
        self.temp_base = rng.normal(36.6, 0.15, n)
        self.rr_base = rng.uniform(12, 17, n)
        self.exertion = np.zeros(n)
        self.hr_noise = np.zeros(n)
        self.steps = rng.integers(0, 4000, n).astype(np.int64)
        self.battery = rng.uniform(40, 100, n)
        # event state (times in epoch seconds; -inf = none)
        self.busy_until = np.full(n, -np.inf)
        self.hr_mode = np.zeros(n, dtype=np.int8)  # 1 tachycardia, 2 bradycardia
        self.hr_level = np.zeros(n)
        self.hr_until = np.full(n, -np.inf)
        self.desat_level = np.zeros(n)
        self.desat_until = np.full(n, -np.inf)
        self.fever_amp = np.zeros(n)
        self.fever_start = np.zeros(n)
        self.fever_end = np.full(n, -np.inf)
        self.stress_until = np.full(n, -np.inf)
        self.hold_until = np.full(n, -np.inf)  # lying still after a fall
        self.stuck_field = np.full(n, -1, dtype=np.int8)
        self.stuck_value = np.zeros(n)
        self.stuck_until = np.full(n, -np.inf)
        self.spikes_until = np.full(n, -np.inf)
        self.drop_field = np.full(n, -1, dtype=np.int8)
        self.drop_until = np.full(n, -np.inf)
        self.offline_until = np.full(n, -np.inf)

    @property
    def device_count(self) -> int:
        return self.n

    # ------------------------------------------------------------------ events
    def _inject(self, now: float, eligible: np.ndarray) -> None:
        for etype, chosen in self.clock.draw(now, eligible, 1.0):
            chosen = chosen[self.busy_until[chosen] <= now]
            if chosen.size == 0:
                continue
            dur = self.clock.duration(etype, chosen.size)
            extras = self._apply(etype, chosen, now, dur)
            end = now + dur
            self.busy_until[chosen] = end
            r = self.roster
            for j, d in enumerate(chosen.tolist()):
                e = float(end[j])
                extra = extras[j] if extras else {}
                e = max(e, extra.pop("_end", e))
                self.busy_until[d] = e
                self._truth.append(
                    truth_record(etype, r.ids[d], self.family, r.districts[d], now, e, **extra)
                )

    def _apply(
        self, etype: str, d: np.ndarray, now: float, dur: np.ndarray
    ) -> list[dict[str, Any]]:
        rng, k = self.rng, d.size
        end = now + dur
        if etype in ("tachycardia", "bradycardia"):
            self.hr_mode[d] = 1 if etype == "tachycardia" else 2
            lo, hi = (125, 170) if etype == "tachycardia" else (32, 45)
            self.hr_level[d] = rng.uniform(lo, hi, k)
            self.hr_until[d] = end
            return [
                {"channel": "vitals", "field": "heart_rate", "level": round(v, 1)}
                for v in self.hr_level[d].tolist()
            ]
        if etype == "desaturation":
            self.desat_level[d] = rng.uniform(80, 88, k)
            self.desat_until[d] = end
            return [
                {"channel": "vitals", "field": "spo2", "level": round(v, 1)}
                for v in self.desat_level[d].tolist()
            ]
        if etype == "fever":
            self.fever_amp[d] = rng.uniform(1.5, 3.0, k)
            self.fever_start[d] = now
            self.fever_end[d] = end
            return [
                {"channel": "vitals", "field": "body_temp", "peak_c": round(v, 2)}
                for v in self.fever_amp[d].tolist()
            ]
        if etype == "fall":  # truth names each device's placement (wrist, waist, pocket)
            kinds = rng.integers(0, len(motion.FALLS), k)
            codes = np.array([self.bank.code[motion.FALLS[i]] for i in kinds.tolist()])
            self.player.start(d, codes)
            clip = self.player.clip[d]
            impact = now + self.bank.impact[clip] / self.rate_hz
            clip_end = now + self.bank.length[clip] / self.rate_hz
            self.hold_until[d] = np.maximum(end, clip_end)
            self.stress_until[d] = np.maximum(end, clip_end)
            return [
                {
                    "channel": "accel",
                    "fall_type": motion.FALLS[kk].removeprefix("fall_"),
                    "placement": self.placements[self.player.placement[dd]],
                    "impact_ts": round(float(t), 3),
                    "_end": float(ce),
                }
                for kk, t, ce, dd in zip(kinds.tolist(), impact, clip_end, d.tolist(), strict=True)
            ]
        if etype == "fall_like":
            which = rng.integers(0, len(FALL_LIKE), k)
            self.player.start(d, np.array([self.bank.code[FALL_LIKE[i]] for i in which]))
            clip_end = now + self.bank.length[self.player.clip[d]] / self.rate_hz
            return [
                {
                    "channel": "accel",
                    "activity": FALL_LIKE[i],
                    "placement": self.placements[self.player.placement[dd]],
                    "_end": float(ce),
                }
                for i, ce, dd in zip(which.tolist(), clip_end, d.tolist(), strict=True)
            ]
        if etype == "stuck_value":
            self.stuck_field[d] = rng.integers(0, len(VITAL_FIELDS), k)
            self.stuck_value[d] = np.nan  # frozen at the first value produced
            self.stuck_until[d] = end
            return [
                {"channel": "vitals", "field": VITAL_FIELDS[f]}
                for f in self.stuck_field[d].tolist()
            ]
        if etype == "spikes":
            self.spikes_until[d] = end
            return [{"channel": "vitals", "field": "heart_rate"}] * k
        if etype == "dropout":
            self.drop_field[d] = rng.integers(0, len(VITAL_FIELDS), k)
            self.drop_until[d] = end
            return [
                {"channel": "vitals", "field": VITAL_FIELDS[f]} for f in self.drop_field[d].tolist()
            ]
        if etype == "device_offline":
            self.offline_until[d] = end
            return []
        raise AssertionError(etype)  # pragma: no cover - catalogue and handlers in sync

    # ------------------------------------------------------------------ signals
    def _next_activity(self, idx: np.ndarray, now: float) -> None:
        """Choose the next clip of devices whose clip ran out: another clip of the bout
        being played, or the first clip of a new bout (activity and length from the local
        hour; see :data:`NIGHT_BOUT_S`, :data:`DAY_BOUTS`, :data:`EXERCISERS`)."""
        need = self.player.exhausted(idx)
        if need.size == 0:
            return
        h = local_hour(now, self.scenario.utc_offset_h)
        new = self.bout_until[need] <= now
        if h < 6.5 or h >= 23.0:
            self._night_bouts(need[new], now)
        else:
            # an exerciser's time ends the bout being played, once a local day
            today = int((now / 3600.0 + self.scenario.utc_offset_h) // 24.0)
            start = self.ex_hour[need]
            due = (self.ex_day[need] < today) & (h >= start) & (h < start + 1.0)
            due &= self.hold_until[need] <= now
            new |= due
            self._day_bouts(need[new], now, h, due[new])
            self.ex_day[need[due]] = today
        act = self.bout_act[need]
        # a sitting bout starts by sitting down; a fall is followed by lying still
        clip = np.where(
            new & (act == self.bank.code["sitting"]), self.bank.code["sitting_down"], act
        )
        clip = np.where(self.hold_until[need] > now, self.bank.code["lying"], clip)
        self.player.start(need, clip)

    def _night_bouts(self, d: np.ndarray, now: float) -> None:
        """Start night bouts (:data:`NIGHT_MIX`, uniform lengths :data:`NIGHT_BOUT_S`)."""
        codes, cdf = self.night
        u = self.sched_rng.random((2, d.size))
        act = codes[np.minimum(np.searchsorted(cdf, u[0]), codes.size - 1)]
        lo, hi = self.night_bout[act].T
        self.bout_act[d] = act
        self.bout_until[d] = now + lo + (hi - lo) * u[1]

    def _day_bouts(self, d: np.ndarray, now: float, h: float, exercise: np.ndarray) -> None:
        """Start day bouts: from the hour's :data:`DAY_BOUTS` mix with log-uniform lengths,
        a cool-down walk after exercise, exercise where ``exercise``."""
        codes, cdf = self.day
        u = self.sched_rng.random((3, d.size))
        act = codes[np.minimum(np.searchsorted(cdf[int(h)], u[0]), codes.size - 1)]
        lo, hi = self.day_bout[act].T
        length = lo * (hi / lo) ** u[1]
        jog, walk = self.bank.code["jogging"], self.bank.code["walking"]
        cool = (self.bout_act[d] == jog) & ~exercise
        act[cool] = walk
        length[cool] = COOL_DOWN_S[0] + (COOL_DOWN_S[1] - COOL_DOWN_S[0]) * u[2][cool]
        act[exercise] = jog
        length[exercise] = EXERCISE_S[0] + (EXERCISE_S[1] - EXERCISE_S[0]) * u[2][exercise]
        self.bout_act[d] = act
        self.bout_until[d] = now + length

    def _vitals(self, d: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
        rng, k = self.rng, d.size
        h = local_hour(now, self.scenario.utc_offset_h)
        act = self.player.activity(d)
        # first-order kinetics towards the activity's intensity, capped per wearer
        target = np.minimum(self.ex_level[act], self.ex_cap[d])
        e = self.exertion[d]
        e += (target - e) * np.where(target > e, _RISE, _FALL)
        self.exertion[d] = e
        # SD 1.5 /min at rest (1 Hz wrist readings of a still wearer), more in motion
        self.hr_noise[d] = 0.9 * self.hr_noise[d] + rng.normal(0, 0.65, k) * (1.0 + 2.0 * e)
        fever = np.zeros(k)
        fv = self.fever_end[d] > now
        if fv.any():
            span = self.fever_end[d][fv] - self.fever_start[d][fv]
            x = (now - self.fever_start[d][fv]) / np.maximum(span, 1e-9)
            shape = np.minimum(_smooth(x / 0.3), _smooth((1.0 - x) / 0.3))
            fever[fv] = self.fever_amp[d][fv] * shape
        stress = np.where(self.stress_until[d] > now, 15.0, 0.0)
        hr = (
            self.hr_rest[d]
            + self.circ_amp[d] * np.cos(2 * np.pi * (h - 17.0) / 24.0)
            + e * (self.hr_max[d] - self.hr_rest[d])
            + 10.0 * fever
            + stress
            + self.hr_noise[d]
        )
        mode = np.where(self.hr_until[d] > now, self.hr_mode[d], 0)
        hr = np.where(mode > 0, self.hr_level[d] + rng.normal(0, 2.0, k), hr)
        desat = self.desat_until[d] > now
        spo2 = np.where(
            desat,
            self.desat_level[d] + rng.normal(0, 1.0, k),
            self.spo2_base[d] - 1.0 * e + rng.normal(0, 0.6, k),
        )
        temp = (
            self.temp_base[d]
            + 0.25 * np.cos(2 * np.pi * (h - 18.0) / 24.0)
            + 0.4 * e
            + fever
            + rng.normal(0, 0.03, k)
        )
        rr = self.rr_base[d] + 8.0 * e + 2.5 * fever + 6.0 * desat + rng.normal(0, 0.8, k)
        self.steps[d] += self.sched_rng.poisson(self.cadence[act])
        spikes = (self.spikes_until[d] > now) & (rng.random(k) < 0.3)
        hr = np.where(spikes, rng.uniform(200, 245, k), hr)
        hr = np.clip(np.rint(hr), 25, 245)
        spo2 = np.clip(np.rint(spo2), 55, 100)
        temp = np.clip(np.round(temp, 2), 30.0, 44.0)
        rr = np.clip(np.round(rr, 1), 4.0, 70.0)
        cols = [hr, spo2, temp]
        stuck = self.stuck_until[d] > now
        if stuck.any():
            ds, fields = d[stuck], self.stuck_field[d][stuck]
            for f in range(len(VITAL_FIELDS)):
                sel = fields == f
                if sel.any():
                    first = np.isnan(self.stuck_value[ds[sel]])
                    self.stuck_value[ds[sel][first]] = cols[f][stuck][sel][first]
                    cols[f][np.flatnonzero(stuck)[sel]] = self.stuck_value[ds[sel]]
        return hr, spo2, temp, rr, self.steps[d].copy()

    def tick(self, now: float) -> list[Message]:
        if self.n == 0:
            return []
        self.clock.guarantee(now + self.scenario.guarantee_after_s, self.scenario.guarantee_s)
        out = self.held.due(now)
        idx = self.roster.due(now)
        online = idx[self.offline_until[idx] <= now]
        self._inject(now, online[self.busy_until[online] <= now])
        online = online[self.offline_until[online] <= now]
        if online.size == 0:
            return out
        self._next_activity(online, now)
        out.extend(self._vitals_messages(online, now))
        self.burst.hold(self.held, self.t_accel, online, now, self.player.windows(online))
        out.extend(self._status_messages(online, now))
        return out

    def _vitals_messages(self, d: np.ndarray, now: float) -> list[Message]:
        hr, spo2, temp, rr, steps = self._vitals(d, now)
        k = d.size
        missing = np.full(k, -1, dtype=np.int8)
        dropped = self.drop_until[d] > now
        missing[dropped] = self.drop_field[d][dropped]
        # unlabelled optical SpO2 dropouts, more frequent in motion (motion artefact)
        natural = (missing < 0) & (self.rng.random(k) < 0.02 + 0.1 * self.exertion[d])
        missing[natural] = 1
        special = (missing >= 0) | self.senml[d]
        topics = self.t_vitals
        ts = round(now, 3)
        rows = zip(
            d.tolist(),
            hr.tolist(),
            spo2.tolist(),
            temp.tolist(),
            rr.tolist(),
            steps.tolist(),
            special.tolist(),
            missing.tolist(),
            strict=True,
        )
        out: list[Message] = []
        for i, h, s, t, r, st, sp, miss in rows:
            if not sp:
                out.append((topics[i], _TEMPLATE % (ts, h, s, t, r, st)))
                continue
            fields: dict[str, Any] = {
                "ts": ts,
                "heart_rate": h,
                "spo2": s,
                "body_temp": t,
                "respiration_rate": r,
                "steps": st,
            }
            if miss >= 0:
                del fields[VITAL_FIELDS[miss]]
            payload = senml_bytes(Vitals, **fields) if self.senml[i] else dumps(fields)
            out.append((topics[i], payload))
        return out

    def _status_messages(self, d: np.ndarray, now: float) -> list[Message]:
        sec = round(now)
        due = d[(sec + d) % self.status_period == 0]
        if due.size == 0:
            return []
        self.battery[due] = np.maximum(
            self.battery[due] - self.status_period / 3600.0 * self.rng.uniform(0.5, 1.5, due.size),
            0.0,
        )
        ts = round(now, 3)
        out: list[Message] = []
        for i, b in zip(due.tolist(), np.round(self.battery[due], 1).tolist(), strict=True):
            payload = (
                senml_bytes(DeviceStatus, ts=ts, battery=b)
                if self.senml[i]
                else b'{"ts":%.3f,"battery":%.1f}' % (ts, b)
            )
            out.append((self.t_status[i], payload))
        return out


#: Per-second update factors of the heart-rate kinetics (1-s readings).
_RISE, _FALL = 1.0 - np.exp(-1.0 / TAU_ON_S), 1.0 - np.exp(-1.0 / TAU_OFF_S)


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
