"""Three hours of a small city written through ``streams.sink`` as docs/DATA_MODEL.md says.

Every measurement a dashboard queries gets points with the model's tags and field types:
air-quality stations (``air``, hourly and NowCast ``aqi`` from ``kernels.aqi``, ``heat``
from ``kernels.heat``), per-minute ``district`` aggregates, wearables and elder-care homes
(raw channels, ``activity``, ``anomaly``, ``news2``, ``fall``), ``alert`` mirrors in both
databases and their public per-district minute counts (``district_stream``: readings per
channel; ``district_alert``: alerts per type). :class:`Truth` keeps the numbers the
dashboard tests compare with.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cityhealth.settings import Settings
from kernels import aqi, heat
from kernels.anomaly import AnomalyScorer
from streams.processors.airq import HEAT_CATEGORIES, HEAT_LOWER_C
from streams.sink import InfluxSink, encode

DISTRICTS = ("north", "south", "old-town")  # "old-town": a regex-unsafe character in a value
STATIONS_PER_DISTRICT = 2
RESIDENTS_PER_DISTRICT = 3
HOURS = 3
CENTRE = (52.52, 13.40)  # station coordinates scatter around this point
SIGNALS = ("heart_rate", "spo2", "body_temp", "respiration_rate")
NS = 1_000_000_000
#: ``stream`` tag of ``district_stream`` per raw measurement (the worker's Kafka streams).
STREAM_OF = {
    "vitals": "vitals",
    "accel_window": "motion",
    "pendant_window": "motion",
    "wearable_status": "home",
    "home_status": "home",
    "home_motion": "home",
    "home_door": "home",
    "home_bed": "home",
    "home_chair": "home",
    "home_panic": "home",
    "air": "airq",
}


@dataclass
class Truth:
    """What was written, for assertions (names follow the dashboards' panels)."""

    start_s: int
    end_s: int
    stations: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    nowcast_last: dict[str, int] = field(default_factory=dict)
    nowcast_max_per_district: dict[str, int] = field(default_factory=dict)
    district_aqi_last: dict[str, int] = field(default_factory=dict)
    heat_max_per_district: dict[str, float] = field(default_factory=dict)
    #: alerts of the ``district`` rows (both partitions) per district
    district_alerts: dict[str, int] = field(default_factory=dict)
    air_readings: int = 0
    falls_per_district: Counter[str] = field(default_factory=Counter)
    high_news2_residents: dict[str, int] = field(default_factory=dict)
    news2_band_minutes: Counter[str] = field(default_factory=Counter)
    panic_per_district: Counter[str] = field(default_factory=Counter)
    low_battery_per_district: Counter[str] = field(default_factory=Counter)
    person_alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    public_alerts: Counter[str] = field(default_factory=Counter)
    residents: list[str] = field(default_factory=list)
    messages: dict[str, int] = field(default_factory=dict)
    #: (district, channel, minute start s) -> readings, as ``district_stream`` holds them
    readings: Counter[tuple[str, str, int]] = field(default_factory=Counter)


def _ns(seconds: np.ndarray) -> np.ndarray:
    return (np.asarray(seconds, dtype=np.int64) * NS).astype(np.int64)


def _pseudonym(i: int) -> str:
    """Shaped like ingest's keyed pseudonyms: ``p-`` + 26 base32 characters."""
    return "p-" + f"{i:026d}".translate(str.maketrans("0123456789", "abcdefgh23"))


def _split(
    counts: Counter[tuple[str, str, int]] | dict[tuple[str, str, int], int],
) -> list[tuple[str, list[tuple[str, str, int]], np.ndarray]]:
    """``(partition, keys, counts)``: each count split over partitions "0" and "1"."""
    keys = sorted(counts)
    total = np.array([counts[k] for k in keys], dtype=np.int64)
    out = []
    for part, share in (("0", total // 2), ("1", total - total // 2)):
        keep = np.flatnonzero(share > 0)
        out.append((part, [keys[i] for i in keep.tolist()], share[keep]))
    return out


class CityWriter:
    """Writes the city's points into the two databases of ``settings``."""

    def __init__(self, sink: InfluxSink, settings: Settings, start_s: int) -> None:
        self.sink = sink
        self.pub = settings.influx_db_public
        self.sen = settings.influx_db_sensitive
        self.rng = np.random.default_rng(20261121)
        self.truth = Truth(start_s=start_s, end_s=start_s + HOURS * 3600)
        self.minutes = start_s + 60 * np.arange(HOURS * 60)
        self.alert_minutes: Counter[tuple[str, str, int]] = Counter()

    def write(self, db: str, measurement: str, t: np.ndarray, tags: Any, fields: Any) -> None:
        self.sink.write(db, encode(measurement, _ns(t), tags, fields))

    def all(self) -> Truth:
        self.public()
        self.sensitive()
        self._district_counts()
        return self.truth

    def _district_counts(self) -> None:
        """``district_stream`` from every reading counted; ``district_alert`` from the
        alerts of both databases (per district, type and minute; no subject). Each count
        is split over two source partitions, as two workers write them (the panels sum
        across the ``partition`` tag)."""
        tr = self.truth
        for part, keys, counts in _split(tr.readings):
            self.write(
                self.pub,
                "district_stream",
                np.array([k[2] for k in keys]),
                {
                    "district": [k[0] for k in keys],
                    "partition": [part] * len(keys),
                    "stream": [STREAM_OF[k[1]] for k in keys],
                    "channel": [k[1] for k in keys],
                },
                {"readings": counts},
            )
        for part, alerts, counts in _split(self.alert_minutes):
            self.write(
                self.pub,
                "district_alert",
                np.array([k[2] for k in alerts]),
                {
                    "district": [k[0] for k in alerts],
                    "partition": [part] * len(alerts),
                    "type": [k[1] for k in alerts],
                    "scope": ["public" if k[1] in tr.public_alerts else "person" for k in alerts],
                },
                {"alerts": counts},
            )

    def _alerts_counted(self, types: list[str], districts: list[str], t: np.ndarray) -> None:
        for key in zip(districts, types, (t // 60 * 60).tolist(), strict=True):
            self.alert_minutes[key] += 1

    # -- public -------------------------------------------------------------------------
    def public(self) -> None:
        tr = self.truth
        district_aqi: dict[tuple[str, int], list[int]] = defaultdict(list)
        district_heat: dict[tuple[str, int], list[float]] = defaultdict(list)
        for d_i, district in enumerate(DISTRICTS):
            for s_i in range(STATIONS_PER_DISTRICT):
                station = f"aq-{district}-{s_i + 1}"
                lat = CENTRE[0] + 0.02 * (d_i - 1) + 0.005 * s_i
                lon = CENTRE[1] + 0.03 * (d_i - 1) - 0.004 * s_i
                tr.stations[station] = (district, lat, lon)
                base = 8.0 + 12.0 * d_i + 6.0 * s_i  # old-town is the polluted one
                hourly = self._station(station, district, lat, lon, base, district_heat)
                for h, value in enumerate(hourly):
                    district_aqi[(district, h)].append(value)
        minute_hour = (self.minutes - tr.start_s) // 3600
        for district in DISTRICTS:
            aqi_max = np.array([max(district_aqi[(district, h)]) for h in minute_hour])
            aqi_mean = np.array([np.mean(district_aqi[(district, h)]) for h in minute_hour])
            has_aqi = aqi_max >= 0  # no NowCast yet: aqi_max/aqi_mean absent (DATA_MODEL.md)
            aqi_mean[~has_aqi] = np.nan
            heat_max = np.array(
                [max(district_heat[(district, int(m))]) for m in self.minutes], dtype=np.float64
            )
            n = self.minutes.size
            alerts = (np.arange(n) % 17 == 0).astype(np.int64)
            # partition "1" holds the district's stations (keyed by district) and half of
            # its wearables and homes; partition "0" the other half: readers sum the two
            common = {
                "aqi_mean": aqi_mean,
                "stations_reporting": np.full(n, STATIONS_PER_DISTRICT, dtype=np.int64),
                "devices_online": np.full(n, RESIDENTS_PER_DISTRICT, dtype=np.int64),
                "alerts": alerts,
                "heat_index_max": heat_max,
            }
            tags = {"district": district, "partition": "1"}
            for mask in (has_aqi, ~has_aqi):  # an integer field cannot be NaN: leave it out
                fields = {k: v[mask] for k, v in common.items()}
                if mask is has_aqi:
                    fields["aqi_max"] = aqi_max[mask].astype(np.int64)
                if mask.any():
                    self.write(self.pub, "district", self.minutes[mask], tags, fields)
            devices_only = {
                "stations_reporting": np.zeros(n, dtype=np.int64),
                "devices_online": np.full(n, RESIDENTS_PER_DISTRICT, dtype=np.int64),
                "alerts": (np.arange(n) % 23 == 0).astype(np.int64),
            }
            tr.district_alerts[district] = int(alerts.sum() + devices_only["alerts"].sum())
            self.write(
                self.pub,
                "district",
                self.minutes,
                {"district": district, "partition": "0"},
                devices_only,
            )
            tr.district_aqi_last[district] = int(aqi_max[-1])
            tr.heat_max_per_district[district] = float(heat_max.max())
        self._public_alerts()

    def _station(
        self,
        station: str,
        district: str,
        lat: float,
        lon: float,
        base: float,
        district_heat: dict[tuple[str, int], list[float]],
    ) -> list[int]:
        tr, rng, t = self.truth, self.rng, self.minutes
        n = t.size
        hour_of = (t - tr.start_s) // 3600
        pm25 = np.clip(base * (1 + 0.5 * hour_of) + rng.normal(0, 1.5, n), 0.5, None)
        cols = {
            "pm25": pm25,
            "pm10": pm25 * 1.6,
            "o3": np.clip(30 + rng.normal(0, 4, n), 1, None),
            "no2": np.clip(20 + rng.normal(0, 3, n), 1, None),
            "so2": np.clip(3 + rng.normal(0, 0.5, n), 0.1, None),
            "co": np.clip(0.4 + rng.normal(0, 0.05, n), 0.05, None),
            "temperature": 30 + 2.0 * hour_of + rng.normal(0, 0.3, n),
            "humidity": np.clip(55 + rng.normal(0, 3, n), 10, 100),
            "lat": np.full(n, lat),
            "lon": np.full(n, lon),
        }
        self.write(
            self.pub,
            "air",
            t,
            {"district": district, "station": station},
            {**cols, "present": np.full(n, 255, dtype=np.int64)},
        )
        tr.air_readings += n
        self._count("air", district, t)
        self._air_anomaly(station, district, t, cols)
        hi = heat.heat_index(cols["temperature"], cols["humidity"])
        cat = np.searchsorted(HEAT_LOWER_C, hi, side="right")
        self.write(
            self.pub,
            "heat",
            t,
            {"district": district, "station": station},
            {
                "heat_index": hi,
                "temperature": cols["temperature"],
                "humidity": cols["humidity"],
                "category": np.array([HEAT_CATEGORIES[c] for c in cat], dtype=object),
            },
        )
        for m, v in zip(t.tolist(), hi.tolist(), strict=True):
            district_heat[(district, m)].append(v)
        # hourly averages -> hourly AQI and NowCast (most recent hour last)
        hours = tr.start_s + 3600 * np.arange(HOURS)
        mean = {p: np.array([cols[p][hour_of == h].mean() for h in range(HOURS)]) for p in cols}
        hourly = {
            "pm25": aqi.us_epa("pm25", mean["pm25"]),
            "pm10": aqi.us_epa("pm10", mean["pm10"]),
            "o3": aqi.us_epa("o3_8h", mean["o3"] * 1e-3),
        }
        nowcast = {
            p: np.array(
                [
                    aqi.us_epa(table, aqi.nowcast(p, mean[p][: h + 1] * f, most_recent="last"))
                    for h in range(HOURS)
                ]
            )
            for p, table, f in (("pm25", "pm25", 1.0), ("pm10", "pm10", 1.0), ("o3", "o3_8h", 1e-3))
        }
        for kind, index in (("hourly", hourly), ("nowcast", nowcast)):
            self._aqi(station, district, kind, hours, index, mean)
        overall = np.max(np.vstack(list(nowcast.values())), axis=0).astype(np.int64)
        tr.nowcast_last[station] = int(overall[-1])
        prev = tr.nowcast_max_per_district.get(district, 0)
        tr.nowcast_max_per_district[district] = max(prev, int(overall.max()))
        return [int(v) for v in overall]

    def _air_anomaly(
        self, station: str, district: str, t: np.ndarray, cols: dict[str, np.ndarray]
    ) -> None:
        """``air_anomaly``: one reading per pollutant and minute here, so each minute's
        row is that reading's score and level (``kernels.anomaly``, vitals defaults)."""
        pollutants = ("pm25", "pm10", "o3", "no2", "so2", "co")
        scorer = AnomalyScorer(len(pollutants))
        for k, p in enumerate(pollutants):
            score, level = scorer.update_with_level(np.full(t.size, k), t.astype(float), cols[p])
            self.write(
                self.pub,
                "air_anomaly",
                t,
                {"district": district, "station": station, "signal": p},
                {
                    "score_max": score,
                    "value_at_max": cols[p],
                    "level": level,
                    "readings": np.ones(t.size, dtype=np.int64),
                },
            )

    def _aqi(
        self,
        station: str,
        district: str,
        kind: str,
        hours: np.ndarray,
        index: dict[str, np.ndarray],
        mean: dict[str, np.ndarray],
    ) -> None:
        tags = {"district": district, "kind": kind, "station": station}
        stacked = np.vstack([index[p] for p in index]).astype(np.int64)
        for p, values in index.items():
            ok = values >= 0
            self.write(
                self.pub,
                "aqi",
                hours[ok],
                {**tags, "pollutant": p},
                {
                    "aqi": values[ok].astype(np.int64),
                    "category": aqi.category(values[ok]).name.astype(object),
                    "concentration": mean[p][ok],
                },
            )
        top = stacked.max(axis=0)
        ok = top >= 0  # NowCast needs 2 of the last 3 hours: none for the first hour
        dominant = np.array([tuple(index)[i] for i in stacked.argmax(axis=0)], dtype=object)
        self.write(
            self.pub,
            "aqi",
            hours[ok],
            {**tags, "pollutant": "overall"},
            {
                "aqi": top[ok],
                "category": aqi.category(top[ok]).name.astype(object),
                "dominant": dominant[ok],
            },
        )

    def _public_alerts(self) -> None:
        tr = self.truth
        rows = [
            ("aqi_category", "warning", "old-town", None, 3600 + 120, 105.0),
            ("heat_episode", "warning", "north", "aq-north-1", 5400, 33.1),
            ("heat_episode", "critical", "old-town", "aq-old-town-2", 7000, 40.2),
            ("station_offline", "warning", "south", "aq-south-2", 9000, 600.0),
        ]
        t = np.array([tr.start_s + r[4] for r in rows])
        self.write(
            self.pub,
            "alert",
            t,
            {
                "type": [r[0] for r in rows],
                "severity": [r[1] for r in rows],
                "district": [r[2] for r in rows],
                "station": [r[3] for r in rows],
            },
            {
                "message": np.array([f"{r[0]} in {r[2]}" for r in rows], dtype=object),
                "value": np.array([r[5] for r in rows]),
                "latency_s": np.array([0.8, 1.2, 0.9, 61.0]),
            },
        )
        tr.public_alerts.update(r[0] for r in rows)
        self._alerts_counted([r[0] for r in rows], [r[2] for r in rows], t)

    # -- sensitive ----------------------------------------------------------------------
    def sensitive(self) -> None:
        for d_i, district in enumerate(DISTRICTS):
            for r in range(RESIDENTS_PER_DISTRICT):
                device = _pseudonym(d_i * 100 + r)
                self.truth.residents.append(device)
                condition = ("breathless" if district == "south" else "sick") if r == 0 else ""
                self._wearable(device, district, condition)
                self._home(device, district, panic=d_i)
        self._falls()
        self._person_alerts()

    def _count(self, measurement: str, district: str, t: np.ndarray) -> None:
        """Readings of a raw measurement at times ``t``: totals and per district minute."""
        tr = self.truth
        if measurement != "air":
            tr.messages[measurement] = tr.messages.get(measurement, 0) + t.size
        minute = (np.asarray(t, dtype=np.int64) // 60 * 60).tolist()
        tr.readings.update((district, measurement, m) for m in minute)

    def _wearable(self, device: str, district: str, condition: str) -> None:
        """``condition``: "" (well), "sick" (NEWS2 high in the last hour) or "breathless"
        (only the respiration rate scores 3: NEWS2 band low_medium)."""
        tr, rng, t = self.truth, self.rng, self.minutes
        n = t.size
        tags = {"device": device, "district": district, "family": "wearable"}
        late = (t - tr.start_s) > 2 * 3600
        sick = condition == "sick"
        hr = 72 + rng.normal(0, 3, n) + (45 * late if sick else 0)
        spo2 = 97 + rng.normal(0, 0.5, n) - (6 * late if sick else 0)
        rr = 15 + rng.normal(0, 1, n) + (12 * late if condition else 0)
        temp = 36.8 + rng.normal(0, 0.1, n)
        vitals = {"heart_rate": hr, "spo2": spo2, "body_temp": temp, "respiration_rate": rr}
        steps = np.floor(rng.uniform(0, 80, n))
        self.write(
            self.sen,
            "vitals",
            t,
            tags,
            {**vitals, "steps": steps, "present": np.full(n, 31, dtype=np.int64)},
        )
        self._count("vitals", district, t)
        windows = t[::2]
        self.write(
            self.sen,
            "accel_window",
            windows,
            tags,
            {
                "samples": np.full(windows.size, 500, dtype=np.int64),
                "rate_hz": np.full(windows.size, 50.0),
                "duration_s": np.full(windows.size, 9.98),
                "mag_max": 9.81 + rng.uniform(0, 5, windows.size),
                "mag_mean": 9.81 + rng.normal(0, 0.05, windows.size),
            },
        )
        self._count("accel_window", district, windows)
        self.write(
            self.sen,
            "activity",
            t,
            tags,
            {
                "mag_mean": 9.81 + rng.normal(0, 0.05, n),
                "mag_max": 9.81 + rng.uniform(0, 4, n),
                "mag_std": rng.uniform(0, 1.5, n),
                "samples": np.full(n, 50, dtype=np.int64),
            },
        )
        status = t[::10]
        low = device.endswith("a") or device.endswith("c")  # two of three per district
        battery = np.linspace(60, 12 if low else 40, status.size)
        self.write(self.sen, "wearable_status", status, tags, {"battery": battery})
        self._count("wearable_status", district, status)
        if battery[-1] < 20:
            tr.low_battery_per_district[district] += 1
        # anomaly minutes: one point per signal and minute
        for s_i, signal in enumerate(SIGNALS):
            x = vitals[signal]
            score = np.abs(x - np.median(x)) / (np.std(x) + 1e-9) + 0.1 * s_i
            self.write(
                self.sen,
                "anomaly",
                t,
                {"device": device, "district": district, "signal": signal},
                {
                    "score_max": score,
                    "value_at_max": x,
                    "level": np.full(n, np.median(x)),
                    "readings": np.ones(n, dtype=np.int64),
                },
            )
        self._news2(device, district, hr, spo2, rr)

    def _news2(
        self, device: str, district: str, hr: np.ndarray, spo2: np.ndarray, rr: np.ndarray
    ) -> None:
        """RCP NEWS2 (2017) sub-scores for HR, SpO2 (scale 1) and RR; temperature normal."""
        sub_hr = np.select([hr <= 40, hr <= 50, hr <= 90, hr <= 110, hr <= 130], [3, 1, 0, 1, 2], 3)
        sub_spo2 = np.select([spo2 <= 91, spo2 <= 93, spo2 <= 95], [3, 2, 1], 0)
        sub_rr = np.select([rr <= 8, rr <= 11, rr <= 20, rr <= 24], [3, 1, 0, 2], 3)
        subs = np.vstack([sub_hr, sub_spo2, sub_rr]).astype(np.int64)
        score = subs.sum(axis=0)
        band = np.where(
            score >= 7,
            "high",
            np.where(score >= 5, "medium", np.where(subs.max(axis=0) == 3, "low_medium", "low")),
        ).astype(object)
        n = score.size
        self.write(
            self.sen,
            "news2",
            self.minutes,
            {"device": device, "district": district},
            {
                "score": score,
                "band": band,
                "partial": np.zeros(n, dtype=bool),
                "sub_respiration_rate": subs[2],
                "sub_spo2": subs[1],
                "sub_temperature": np.zeros(n, dtype=np.int64),
                "sub_heart_rate": subs[0],
            },
        )
        self.truth.news2_band_minutes.update(band.tolist())
        count = self.truth.high_news2_residents
        count[district] = count.get(district, 0) + int((band == "high").any())

    def _home(self, device: str, district: str, panic: int) -> None:
        rng, t = self.rng, self.minutes
        home = "p-h" + device[3:]  # the resident's home hub: another pseudonym
        tags = {"device": home, "district": district, "family": "eldercare"}
        n = t.size
        windows = t[::5]
        self.write(
            self.sen,
            "pendant_window",
            windows,
            tags,
            {
                "samples": np.full(windows.size, 250, dtype=np.int64),
                "rate_hz": np.full(windows.size, 25.0),
                "duration_s": np.full(windows.size, 9.96),
                "mag_max": 9.81 + rng.uniform(0, 3, windows.size),
                "mag_mean": 9.81 + rng.normal(0, 0.05, windows.size),
            },
        )
        status = t[::15]
        self.write(
            self.sen, "home_status", status, tags, {"battery": np.linspace(90, 85, status.size)}
        )
        self.write(
            self.sen,
            "home_motion",
            t,
            {**tags, "room": ["kitchen", "living"] * (n // 2)},
            {"motion": rng.uniform(size=n) < 0.3},
        )
        doors = t[::20]
        self.write(
            self.sen,
            "home_door",
            doors,
            {**tags, "door": "front"},
            {"open": np.arange(doors.size) % 2 == 0},
        )
        beds = t[::30]
        self.write(self.sen, "home_bed", beds, tags, {"occupied": np.arange(beds.size) % 2 == 1})
        self.write(
            self.sen, "home_chair", beds + 7, tags, {"occupied": np.arange(beds.size) % 3 == 0}
        )
        if panic:
            presses = t[10 : 10 + panic]
            self.write(
                self.sen, "home_panic", presses, tags, {"pressed": np.ones(panic, dtype=bool)}
            )
            self.truth.panic_per_district[district] += panic
            self._count("home_panic", district, presses)
        for name, times in (
            ("pendant_window", windows),
            ("home_status", status),
            ("home_motion", t),
            ("home_door", doors),
            ("home_bed", beds),
            ("home_chair", beds + 7),
        ):
            self._count(name, district, times)

    def _falls(self) -> None:
        tr = self.truth
        falls = [(0, 1500), (0, 7300), (3, 2000), (6, 4000), (6, 4100), (7, 9999)]
        who = [tr.residents[i] for i, _ in falls]
        district = [DISTRICTS[i // RESIDENTS_PER_DISTRICT] for i, _ in falls]
        t = np.array([tr.start_s + s for _, s in falls])
        self.write(
            self.sen,
            "fall",
            t,
            {"device": who, "district": district, "family": "wearable"},
            {"detected": np.ones(t.size, dtype=bool), "decided_after_s": np.full(t.size, 2.5)},
        )
        tr.falls_per_district.update(district)

    def _person_alerts(self) -> None:
        tr = self.truth
        rows: list[tuple[str, str, int, int]] = [
            ("fall", "critical", 0, 1502),
            ("fall", "critical", 3, 2002),
            ("anomaly", "warning", 0, 7300),
            ("anomaly", "warning", 6, 7400),
            ("anomaly", "warning", 6, 7460),
            ("news2", "critical", 0, 7320),
            ("panic", "critical", 4, 750),
            ("device_offline", "warning", 8, 9000),
        ]
        district = [DISTRICTS[r[2] // RESIDENTS_PER_DISTRICT] for r in rows]
        t = np.array([tr.start_s + r[3] for r in rows])
        self._alerts_counted([r[0] for r in rows], district, t)
        self.write(
            self.sen,
            "alert",
            t,
            {
                "type": [r[0] for r in rows],
                "severity": [r[1] for r in rows],
                "district": district,
                "device": [tr.residents[r[2]] for r in rows],
            },
            {
                "message": np.array([f"{r[0]} alert" for r in rows], dtype=object),
                "value": np.arange(len(rows), dtype=np.float64),
                "latency_s": np.full(len(rows), 1.5),
            },
        )
        tr.person_alerts.update((r[0], d) for r, d in zip(rows, district, strict=True))


def write_city(sink: InfluxSink, settings: Settings, start_s: int) -> Truth:
    """Write the whole city starting at ``start_s`` (an hour boundary); returns the truth."""
    if start_s % 3600:
        raise ValueError("start_s must be an hour boundary")
    return CityWriter(sink, settings, start_s).all()
