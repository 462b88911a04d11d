"""Air-quality stations: PM2.5, PM10, O3, NO2, SO2, CO, temperature and humidity.

Signal model (per district weather, per station site factor; vectorised over stations)
------------------------------------------------------------------------------------
* **Weather**: temperature ``T = T_mean + A sin(2 pi (h - 9) / 24)`` (maximum mid-afternoon)
  plus a slow AR(1) anomaly per district; relative humidity from a near-constant dew point
  with the Magnus formula (so RH falls as T rises, Alduchov & Eskridge 1996); wind speed a
  log-normal AR(1) process.
* **Traffic**: a weekday double peak (08:00 and 18:00 local) over a night-time floor.
* **Primary pollutants** (NO2, CO, PM): background + site factor x traffic / (wind + 0.5):
  emissions diluted by wind (box model); PM2.5 grows with humidity (hygroscopic growth);
  PM10 = PM2.5 x 1.5-1.8 + coarse dust.
* **O3**: photochemical -- grows with sunlight and temperature above 10 degC, titrated
  by NO2 near traffic.
* Sensor noise proportional to the value; readings rounded like station reports.

District-wide episodes (labelled once per affected station): pm25_episode, no2_episode,
o3_episode (a trapezoid-shaped excess) and heat_episode (+6-10 degC, drier air). Station
faults: stuck_value, spikes, dropout (one pollutant missing), device_offline.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ingest.contract import AirQuality
from simulators.base import Message, Roster, Simulator, senml_bytes, senml_flags
from simulators.encode import dumps
from simulators.events import EventClock, truth_record
from simulators.scenario import Scenario, Station
from simulators.wearable import local_hour

FIELDS = ("pm25", "pm10", "o3", "no2", "so2", "co", "temperature", "humidity")
POLLUTANTS = ("pm25", "pm10", "o3", "no2", "so2", "co")
#: Episode type -> (affected field, excess range).
EPISODES = {
    "pm25_episode": ("pm25", (80.0, 250.0)),
    "no2_episode": ("no2", (80.0, 200.0)),
    "o3_episode": ("o3", (80.0, 150.0)),
    "heat_episode": ("temperature", (6.0, 10.0)),
}
_DECIMALS = np.array([1, 1, 1, 1, 1, 2, 1, 1])
_HI = np.array([999.0, 1999.0, 999.0, 1999.0, 1999.0, 99.0, 59.0, 100.0])
_LO = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -59.0, 1.0])


def traffic(h: float, weekday: bool) -> float:
    """Relative traffic intensity at local hour ``h`` (rush hours 08:00 and 18:00)."""
    peaks = np.exp(-0.5 * ((h - 8.0) / 1.3) ** 2) + 0.9 * np.exp(-0.5 * ((h - 18.0) / 1.8) ** 2)
    day = 0.35 if 6.0 <= h <= 22.0 else 0.08
    return float((day + peaks) * (1.0 if weekday else 0.6))


def magnus_rh(t: np.ndarray, td: np.ndarray) -> np.ndarray:
    """Relative humidity (%) from temperature and dew point (Magnus formula, degC)."""
    return 100.0 * np.exp(17.625 * td / (243.04 + td) - 17.625 * t / (243.04 + t))


def trapezoid(x: np.ndarray, ramp: float = 0.2) -> np.ndarray:
    """0 -> 1 over the first ``ramp`` of an episode, 1 -> 0 over the last (x in [0, 1])."""
    return np.clip(np.minimum(x / ramp, (1.0 - x) / ramp), 0.0, 1.0)


class AirQualitySimulator(Simulator):
    """Fixed air-quality stations (see the module docstring)."""

    family: ClassVar[str] = "airq"
    channels: ClassVar[tuple[str, ...]] = ("air",)

    def __init__(self, scenario: Scenario, rng: np.random.Generator, name: str = "") -> None:
        super().__init__(scenario, rng, name)
        n = scenario.counts.get(self.name, 0)
        self.n = n
        p = scenario.section(self.name)
        self.period = max(1, int(p.get("period_s", 10)))
        stations = list(scenario.stations[:n])
        stations += self._place(scenario, n - len(stations), len(stations))
        self.stations = stations
        self.roster = Roster(
            scenario, self.family, n, "", [s.district for s in stations], [s.id for s in stations]
        )
        self.topics = self.roster.topics("air")
        self.latlon = [(round(s.lat, 5), round(s.lon, 5)) for s in stations]
        self.senml = senml_flags(rng, n, float(p.get("senml_fraction", 0.5)))
        self.clock = EventClock(self.family, scenario.events, rng)
        self.episodes = EventClock(self.family, scenario.events, rng, scope="district")
        nd = len(self.roster.district_names)
        self.dcode = self.roster.district_code
        # district weather
        self.t_mean = rng.uniform(12, 20, nd)
        self.t_amp = rng.uniform(4, 7, nd)
        self.t_anom = np.zeros(nd)
        self.dew = self.t_mean - rng.uniform(4, 9, nd)
        self.log_wind = np.log(rng.uniform(1.5, 4.0, nd))
        # station site factors (traffic sites > urban background)
        self.site = rng.lognormal(0.0, 0.35, n)
        self.bg = np.stack(
            [
                rng.uniform(4, 8, n),
                rng.uniform(8, 14, n),
                rng.uniform(20, 30, n),
                rng.uniform(5, 12, n),
                rng.uniform(0.5, 3, n),
                rng.uniform(0.15, 0.3, n),
            ]
        )
        self.pm_ratio = rng.uniform(1.5, 1.8, n)
        # episodes per district: field index, excess, start, end
        # one slot per (district, episode type): episodes of different types may overlap
        self.ep_amp = np.zeros((nd, len(EPISODES)))
        self.ep_start = np.zeros((nd, len(EPISODES)))
        self.ep_end = np.full((nd, len(EPISODES)), -np.inf)
        # station faults
        self.busy_until = np.full(n, -np.inf)
        self.stuck_field = np.full(n, -1, dtype=np.int64)
        self.stuck_value = np.full(n, np.nan)
        self.stuck_until = np.full(n, -np.inf)
        self.spikes_until = np.full(n, -np.inf)
        self.drop_field = np.full(n, -1, dtype=np.int64)
        self.drop_until = np.full(n, -np.inf)
        self.offline_until = np.full(n, -np.inf)
        self._last_weather = -np.inf
        self._step = 0

    @property
    def device_count(self) -> int:
        return self.n

    def _place(self, scenario: Scenario, k: int, offset: int) -> list[Station]:
        """Generated stations scattered (~2 km) around district centres by residents."""
        if k <= 0:
            return []
        roster = Roster(scenario, self.family, k, "")
        d = {x.name: x for x in scenario.districts}
        jitter = self.rng.normal(0.0, 0.02, (k, 2))
        return [
            Station(
                f"aq-{name}-{offset + i:04d}",
                name,
                d[name].lat + jitter[i, 0],
                d[name].lon + jitter[i, 1],
            )
            for i, name in enumerate(roster.districts)
        ]

    # ------------------------------------------------------------------ events
    def _inject(self, now: float, due: np.ndarray) -> None:
        r = self.roster
        # district episodes: one draw per district, every tick (dt = tick_s)
        for k, (etype, (field, (lo, hi))) in enumerate(EPISODES.items()):
            free = np.flatnonzero(self.ep_end[:, k] <= now)
            for _, dists in self.episodes.draw(now, free, self.scenario.tick_s, types=(etype,)):
                dur = self.episodes.duration(etype, dists.size)
                amp = self.rng.uniform(lo, hi, dists.size)
                self.ep_amp[dists, k] = amp
                self.ep_start[dists, k] = now
                self.ep_end[dists, k] = now + dur
                self._episode_truth(now, etype, field, dists, dur, amp)
        # station faults, drawn among stations reporting now (each covers `period` s)
        eligible = due[self.busy_until[due] <= now]
        for etype, chosen in self.clock.draw(now, eligible, float(self.period)):
            chosen = chosen[self.busy_until[chosen] <= now]
            dur = self.clock.duration(etype, chosen.size)
            end = now + dur
            self.busy_until[chosen] = end
            field = self.rng.integers(0, len(POLLUTANTS), chosen.size)
            if etype == "stuck_value":
                self.stuck_field[chosen] = field
                self.stuck_value[chosen] = np.nan
                self.stuck_until[chosen] = end
            elif etype == "spikes":
                field[:] = 0
                self.spikes_until[chosen] = end
            elif etype == "dropout":
                self.drop_field[chosen] = field
                self.drop_until[chosen] = end
            else:
                self.offline_until[chosen] = end
            for j, s in enumerate(chosen.tolist()):
                extra: dict[str, Any] = {"channel": "air"}
                if etype != "device_offline":
                    extra["field"] = POLLUTANTS[int(field[j])]
                self._truth.append(
                    truth_record(
                        etype, r.ids[s], self.family, r.districts[s], now, float(end[j]), **extra
                    )
                )

    def _episode_truth(
        self,
        now: float,
        etype: str,
        field: str,
        dists: np.ndarray,
        dur: np.ndarray,
        amp: np.ndarray,
    ) -> None:
        """One truth line per station of each district where an episode starts."""
        r = self.roster
        for j, dc in enumerate(dists.tolist()):
            for s in np.flatnonzero(self.dcode == dc).tolist():
                self._truth.append(
                    truth_record(
                        etype,
                        r.ids[s],
                        self.family,
                        r.districts[s],
                        now,
                        now + float(dur[j]),
                        channel="air",
                        field=field,
                        severity=round(float(amp[j]), 1),
                    )
                )

    # ------------------------------------------------------------------ signals
    def _weather(self, now: float) -> None:
        """Advance district weather (once per simulated minute)."""
        if now - self._last_weather < 60.0:
            return
        self._last_weather = now
        nd = self.t_anom.size
        self.t_anom = 0.995 * self.t_anom + self.rng.normal(0, 0.1, nd)
        self.log_wind = 0.98 * self.log_wind + 0.02 * np.log(3.0) + self.rng.normal(0, 0.08, nd)

    def _readings(self, s: np.ndarray, now: float) -> np.ndarray:
        """float64[k, 8] readings of stations ``s`` (columns as :data:`FIELDS`)."""
        rng, k = self.rng, s.size
        h = local_hour(now, self.scenario.utc_offset_h)
        weekday = int(((now / 86400.0) + 3) % 7) < 5  # 1970-01-01 was a Thursday
        dc = self.dcode[s]
        # excess of each episode type at each station: amplitude x trapezoid, 0 when inactive
        span = np.maximum(self.ep_end[dc] - self.ep_start[dc], 1e-9)
        x = np.where(self.ep_end[dc] > now, (now - self.ep_start[dc]) / span, -1.0)
        excess = dict(zip(EPISODES, (self.ep_amp[dc] * trapezoid(x)).T, strict=True))
        temp = (
            self.t_mean[dc]
            + self.t_amp[dc] * np.sin(2 * np.pi * (h - 9.0) / 24.0)
            + self.t_anom[dc]
            + excess["heat_episode"]
        )
        dew = self.dew[dc] + -0.3 * excess["heat_episode"]
        rh = magnus_rh(temp, np.minimum(dew, temp))
        wind = np.exp(self.log_wind[dc])
        load = traffic(h, weekday) * self.site[s] / (wind + 0.5)
        sun = max(0.0, float(np.sin(np.pi * (h - 6.0) / 14.0))) if 6.0 <= h <= 20.0 else 0.0
        no2 = self.bg[3, s] + 60.0 * load + excess["no2_episode"]
        pm25 = (self.bg[0, s] + 18.0 * load) * (1.0 + 0.4 * (rh / 100.0) ** 4)
        pm25 += excess["pm25_episode"]
        pm10 = pm25 * self.pm_ratio[s] + self.bg[1, s] * 0.5 + 8.0 * load
        o3 = (
            self.bg[2, s]
            + 45.0 * sun * np.clip((temp - 10.0) / 20.0, 0.0, 1.5)
            - 0.3 * no2
            + excess["o3_episode"]
        )
        so2 = self.bg[4, s] + 1.5 * load
        co = self.bg[5, s] + 0.9 * load
        vals = np.stack([pm25, pm10, o3, no2, so2, co, temp, rh], axis=1)
        vals[:, :6] *= 1.0 + rng.normal(0.0, 0.05, (k, 6))
        vals[:, 6] += rng.normal(0.0, 0.1, k)
        vals[:, 7] += rng.normal(0.0, 0.8, k)
        spikes = (self.spikes_until[s] > now) & (rng.random(k) < 0.5)
        vals[spikes, 0] = rng.uniform(500.0, 950.0, int(spikes.sum()))
        vals = np.clip(vals, _LO, _HI)
        stuck = np.flatnonzero(self.stuck_until[s] > now)
        for j in stuck.tolist():
            st, f = s[j], self.stuck_field[s[j]]
            if np.isnan(self.stuck_value[st]):
                self.stuck_value[st] = vals[j, f]
            vals[j, f] = self.stuck_value[st]
        return vals

    def tick(self, now: float) -> list[Message]:
        if self.n == 0:
            return []
        self.clock.guarantee(now + self.scenario.guarantee_after_s, self.scenario.guarantee_s)
        self.episodes.guarantee(now + self.scenario.guarantee_after_s, self.scenario.guarantee_s)
        self._weather(now)
        per_tick = round(self.period / self.scenario.tick_s)
        due = np.arange(self._step % per_tick, self.n, per_tick, dtype=np.int64)
        self._step += 1
        self._inject(now, due[self.offline_until[due] <= now])
        due = due[self.offline_until[due] <= now]
        if due.size == 0:
            return []
        vals = self._readings(due, now)
        ts = round(now, 3)
        drop = np.where(self.drop_until[due] > now, self.drop_field[due], -1)
        out: list[Message] = []
        for j, i in enumerate(due.tolist()):
            lat, lon = self.latlon[i]
            fields: dict[str, Any] = {"ts": ts, "lat": lat, "lon": lon}
            row = vals[j]
            for f, name in enumerate(FIELDS):
                if f != drop[j]:
                    fields[name] = round(float(row[f]), int(_DECIMALS[f]))
            payload = senml_bytes(AirQuality, **fields) if self.senml[i] else dumps(fields)
            out.append((self.topics[i], payload))
        return out
