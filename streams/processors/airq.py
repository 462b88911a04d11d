"""Air-quality stations: raw points, hourly and NowCast AQI, heat index and heat episodes,
anomaly scores of the pollutant series.

Hourly averages accumulate per ``(station, pollutant)`` in a
:class:`streams.periods.PeriodStats` (series ``station * 6 + pollutant``); each touched
hour is written as an upsert, and its running average feeds the streaming NowCast
(``kernels.aqi.NowCastStream``: a repeated hour replaces that hour's value). AQI per
US EPA TAD 2024 (``kernels.aqi``); hourly means stand in for the 8-h/24-h averages of the
official breakpoints (documented in docs/STREAMS.md). Heat index: NWS (``kernels.heat``).

Every pollutant series (the same readings the AQI averages) is scored by one
:class:`kernels.anomaly.AnomalyScorer` over the series ``station * 6 + pollutant``, with
the defaults the vitals use (the scorer has no per-series tuning): ``air_anomaly`` rows
per station, pollutant and minute (``streams.anomaly_series``), and an ``air_anomaly``
alert when a score reaches ``anomaly_enter`` (hysteresis: one alert per episode).
"""

from __future__ import annotations

import numpy as np

from ingest.batch import ColumnarBatch, DictColumn
from kernels import aqi, heat
from kernels.anomaly import AnomalyScorer
from streams.anomaly_series import (
    PEAK_LEVEL,
    ClosedLevels,
    PeakLevels,
    episode_alerts,
    minute_fields,
)
from streams.episodes import episode_starts
from streams.output import Output, ns
from streams.periods import PeriodGroups, PeriodStats
from streams.processors.base import Processor, Rows, Services
from streams.state import Columns

RAW_FIELDS = ("pm25", "pm10", "o3", "no2", "so2", "co", "temperature", "humidity")
POLLUTANTS = ("pm25", "pm10", "o3", "no2", "so2", "co")
#: pollutant -> (kernels.aqi table, factor from the reading's unit to the table's unit)
AQI_TABLE = {
    "pm25": ("pm25", 1.0),
    "pm10": ("pm10", 1.0),
    "o3": ("o3_8h", 1e-3),  # ppb -> ppm
    "no2": ("no2", 1.0),
    "so2": ("so2", 1.0),
    "co": ("co", 1.0),
}
NOWCAST = ("pm25", "pm10", "o3")
_K = len(POLLUTANTS)
HEAT_CATEGORIES = ("none", "caution", "extreme_caution", "danger", "extreme_danger")
HEAT_LOWER_C = np.array([26.7, 32.2, 39.4, 51.7])  # NWS: 80, 90, 103, 125 °F


class AirqProcessor(Processor):
    """Processor of the ``airq`` stream."""

    stream = "airq"
    offline_type = "station_offline"
    subject_kind = "station"
    counts_online = False

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        add = self.state.add
        self.hours: PeriodStats = add("hour", PeriodStats(0), _K)
        self.nowcast = {p: add(f"nowcast_{p}", aqi.NowCastStream(0, p)) for p in NOWCAST}  # type: ignore[arg-type]
        self.heat_episode: Columns = add("heat", Columns({"open": ("i1", 0)}))
        # anomaly scores per (station, pollutant): kernel, minute maxima, episodes, levels
        self.scorer: AnomalyScorer = add("anomaly", AnomalyScorer(0), _K)
        self.anomaly_minutes: PeriodStats = add("anomaly_minute", PeriodStats(0), _K)
        self.anomaly_series: Columns = add(
            "anomaly_series", Columns({"open": ("i1", 0), **PEAK_LEVEL}), _K
        )
        self.peak_levels = PeakLevels(self.anomaly_series)

    def process_rows(self, batch: ColumnarBatch, rows: Rows, out: Output) -> None:
        cols = {
            k: np.asarray(batch.columns[k], dtype=np.float64) for k in (*RAW_FIELDS, "lat", "lon")
        }
        present = sum(np.isfinite(cols[k]).astype(np.int64) << b for b, k in enumerate(RAW_FIELDS))
        tags = self.row_tags(batch, rows)  # coded into the device index: steps concatenate
        out.write(
            self.dbs.public,
            "air",
            ns(rows.ts),
            {"station": tags["device"], "district": tags["district"]},
            {**cols, "present": present},
        )
        self.count_readings("air", rows)
        picks = [
            np.flatnonzero(rows.fresh & np.isfinite(cols[p]) & (cols[p] >= 0)) for p in POLLUTANTS
        ]
        row = np.concatenate(picks)
        pol = np.repeat(np.arange(_K), [p.size for p in picks])
        overall_now = np.full(len(self.state.index), np.nan)
        if row.size:
            t = rows.ts[row]
            series = rows.dev[row] * _K + pol
            conc = np.concatenate([cols[p][r] for p, r in zip(POLLUTANTS, picks, strict=True)])
            g = self.hours.update(series, (t // 3600).astype(np.int64), t, conc)
            # every touched hour feeds NowCast now (district AQI and its alerts need it);
            # InfluxDB gets closed hours here and open ones at the commit step (flush)
            self._hourly(g, out)
            self._nowcast(self._touched(g, series), out, overall_now)
            self._anomaly(series, t, conc, rows.minute[row], out)
        heat_index = self._heat(rows, cols, out)
        self._report(rows, overall_now, heat_index)

    def _touched(self, closed: PeriodGroups, series: np.ndarray) -> PeriodGroups:
        """Closed hours plus the current hour of every series in the batch."""
        current = np.unique(series)
        st = self.hours.export_state(current)
        open_now = PeriodGroups(
            current, st["period"], st["count"], st["total"], st["total_sq"], st["peak"],
            st["at_peak"], st["last"], st["t_last"],
        )  # fmt: skip
        both = PeriodGroups.concat([closed, open_now])
        order = np.lexsort((both.period, both.series))
        return PeriodGroups(*(getattr(both, k)[order] for k in PeriodGroups.__dataclass_fields__))

    def flush(self, out: Output) -> None:
        """Write the open hours (hourly AQI) and anomaly minutes changed since the last
        flush."""
        g = self.hours.flush()
        if g.size:
            self._hourly(g, out)
        self._anomaly_rows(self.anomaly_minutes.flush(), out)

    def _anomaly(
        self, series: np.ndarray, t: np.ndarray, x: np.ndarray, minute: np.ndarray, out: Output
    ) -> None:
        """Score the pollutant readings (one kernel call), alert, aggregate per minute."""
        score, level = self.scorer.update_with_level(series, t, x)
        self._anomaly_alerts(series, t, x, score, level, out)
        ok = np.isfinite(score)
        if not ok.all():
            series, t, x, score, level, minute = (
                a[ok] for a in (series, t, x, score, level, minute)
            )
        closed = self.anomaly_minutes.update(series, minute, t, score, x)
        self._anomaly_rows(closed, out, self.peak_levels.update(series, minute, score, level))

    def _anomaly_rows(
        self, groups: PeriodGroups, out: Output, closed: ClosedLevels | None = None
    ) -> None:
        """``air_anomaly`` points (public) of the given (series, minute) groups."""
        if groups.size == 0:
            return
        tags = self.device_tags(groups.series // _K)
        out.write(
            self.dbs.public,
            "air_anomaly",
            groups.period * 60_000_000_000,
            {
                "station": tags["device"],
                "district": tags["district"],
                "signal": DictColumn(POLLUTANTS, (groups.series % _K).astype(np.int32)),
            },
            minute_fields(groups, self.peak_levels.levels(groups, closed)),
        )

    def _anomaly_alerts(
        self,
        series: np.ndarray,
        t: np.ndarray,
        x: np.ndarray,
        score: np.ndarray,
        level: np.ndarray,
        out: Output,
    ) -> None:
        for station, fields in episode_alerts(
            self.scorer,
            self.anomaly_series["open"],
            series,
            t,
            x,
            score,
            level,
            type_="air_anomaly",
            signals=POLLUTANTS,
            config=self.config,
        ):
            self.raise_alert(out, station, **fields)

    def _tags(self, station: np.ndarray, kind: str, pollutant: np.ndarray) -> dict[str, object]:
        t = self.device_tags(station)
        return {
            "station": t["device"],
            "district": t["district"],
            "kind": kind,
            "pollutant": DictColumn((*POLLUTANTS, "overall"), pollutant.astype(np.int32)),
        }

    def _write_aqi(
        self,
        out: Output,
        kind: str,
        station: np.ndarray,
        hour: np.ndarray,
        pollutant: np.ndarray,
        conc: np.ndarray,
        index: np.ndarray,
    ) -> None:
        """Per-pollutant points and the per-(station, hour) ``overall`` maximum."""
        ok = index >= 0
        station, hour, pollutant, conc, index = (
            a[ok] for a in (station, hour, pollutant, conc, index)
        )
        if index.size == 0:
            return
        cat = aqi.category(index)
        out.write(
            self.dbs.public,
            "aqi",
            hour * 3_600_000_000_000,
            self._tags(station, kind, pollutant),
            {
                "aqi": index.astype(np.int64),
                "category": DictColumn(aqi.CATEGORY_NAMES, cat.index.astype(np.int32)),
                "concentration": conc,
            },
        )
        key = station.astype(np.int64) << 32 | hour
        order = np.lexsort((-index, key))
        first = np.ones(order.size, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        top = order[first]
        cat = aqi.category(index[top])
        out.write(
            self.dbs.public,
            "aqi",
            hour[top] * 3_600_000_000_000,
            self._tags(station[top], kind, np.full(top.size, _K)),
            {
                "aqi": index[top].astype(np.int64),
                "category": DictColumn(aqi.CATEGORY_NAMES, cat.index.astype(np.int32)),
                "dominant": DictColumn(POLLUTANTS, pollutant[top].astype(np.int32)),
            },
        )
        return None

    def _hourly(self, g: PeriodGroups, out: Output) -> None:
        station, pollutant = g.series // _K, g.series % _K
        conc = g.mean
        index = np.full(conc.size, -1, dtype=np.int64)
        for p, name in enumerate(POLLUTANTS):
            sel = pollutant == p
            if sel.any():
                table, factor = AQI_TABLE[name]
                index[sel] = aqi.us_epa(table, conc[sel] * factor)
        self._write_aqi(out, "hourly", station, g.period, pollutant, conc, index)

    def _nowcast(self, g: PeriodGroups, out: Output, overall: np.ndarray) -> None:
        station, pollutant = g.series // _K, g.series % _K
        parts = []
        for name in NOWCAST:
            p = POLLUTANTS.index(name)
            sel = np.flatnonzero(pollutant == p)
            if sel.size == 0:
                continue
            conc = self.nowcast[name].update(station[sel], g.period[sel], g.mean[sel])
            table, factor = AQI_TABLE[name]
            finite = np.isfinite(conc)
            index = np.full(sel.size, -1, dtype=np.int64)
            index[finite] = aqi.us_epa(table, conc[finite] * factor)
            parts.append((station[sel], g.period[sel], np.full(sel.size, p), conc, index))
        if not parts:
            return
        s, h, pol, c, idx = (np.concatenate(a) for a in zip(*parts, strict=True))
        self._write_aqi(out, "nowcast", s, h, pol, c, idx)
        ok = idx >= 0
        np.fmax.at(overall, s[ok], idx[ok].astype(np.float64))

    def _heat(self, rows: Rows, cols: dict[str, np.ndarray], out: Output) -> np.ndarray:
        temp, rh = cols["temperature"], cols["humidity"]
        hi = heat.heat_index(temp, rh)
        sel = np.flatnonzero(np.isfinite(hi))
        if sel.size == 0:
            return hi
        category = np.searchsorted(HEAT_LOWER_C, hi[sel], side="right").astype(np.int32)
        tags = self.device_tags(rows.dev[sel])
        out.write(
            self.dbs.public,
            "heat",
            ns(rows.ts[sel]),
            {"station": tags["device"], "district": tags["district"]},
            {
                "heat_index": hi[sel],
                "temperature": temp[sel],
                "humidity": rh[sel],
                "category": DictColumn(HEAT_CATEGORIES, category),
            },
        )
        fresh = sel[rows.fresh[sel]]
        cfg = self.config
        opened = episode_starts(
            rows.dev[fresh], hi[fresh], cfg.heat_enter_c, cfg.heat_exit_c, self.heat_episode["open"]
        )
        for i in fresh[opened].tolist():
            d, value, ts = int(rows.dev[i]), float(hi[i]), float(rows.ts[i])
            cat = HEAT_CATEGORIES[int(np.searchsorted(HEAT_LOWER_C, value, side="right"))]
            self.raise_alert(
                out,
                d,
                type="heat_episode",
                severity="critical" if value >= cfg.heat_critical_c else "warning",
                start=ts,
                sensor_ts=ts,
                message=f"heat index {value:.1f} °C ({cat})",
                value=value,
                evidence={
                    "heat_index": value,
                    "temperature": float(temp[i]),
                    "humidity": float(rh[i]),
                    "category": cat,
                    "threshold": cfg.heat_enter_c,
                },
            )
        return hi

    def _report(self, rows: Rows, overall_now: np.ndarray, heat_index: np.ndarray) -> None:
        """Each station's latest reading per minute of the batch goes to the district board
        (with the station's NowCast AQI after the batch)."""
        key = rows.dev.astype(np.int64) << 32 | (rows.ts // 60).astype(np.int64)
        order = np.lexsort((rows.ts, key))
        last = order[np.append(key[order][1:] != key[order][:-1], True)]
        index = self.state.index
        board = self.services.board
        for i in last.tolist():
            d = int(rows.dev[i])
            board.station_seen(
                index.districts[index.district_code[d]],
                int(rows.ts[i] // 60),
                index.ids[d],
                float(overall_now[d]) if d < overall_now.size else np.nan,
                float(heat_index[i]),
            )
