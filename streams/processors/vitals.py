"""Wearable vitals: raw points, anomaly scores and episodes, NEWS2 per resident minute.

One :class:`kernels.anomaly.AnomalyScorer` scores the four vital signs of every device in
one call: series ``device * 4 + signal``. Per-minute maxima and the latest value of each
sign come from one :class:`streams.periods.PeriodStats` over the same series; the
per-minute NEWS2 points (RCP 2017, ``kernels.news2``) are computed from those latest
values (partial: wearables send neither blood pressure, oxygen therapy nor consciousness
level). NEWS2 *alerts* do not wait for a minute to be written: ``streams.escalation``
scores every reading from the resident's latest signs and decides escalations in the
batch that carries the reading.
"""

from __future__ import annotations

import numpy as np

from ingest.batch import ColumnarBatch, DictColumn
from kernels import news2
from kernels.anomaly import AnomalyScorer
from streams.episodes import episode_starts
from streams.escalation import LATEST_STATE, NEWS2_STATE, news2_escalations
from streams.limits import (
    DEVICE_STATE,
    N_RULES,
    RULE_STATE,
    RULES,
    SIGN_STATE,
    Timing,
    check_limits,
    rule_table,
)
from streams.output import Output, ns
from streams.periods import PeriodGroups, PeriodStats
from streams.processors.base import Processor, Rows, Services
from streams.state import Columns

SIGNALS = ("heart_rate", "spo2", "body_temp", "respiration_rate")
RAW_FIELDS = (*SIGNALS, "steps")
_HR, _SPO2, _TEMP, _RR = range(4)
_K = len(SIGNALS)
_SIGNAL_TAG = DictColumn(SIGNALS, np.zeros(0, dtype=np.int32))
#: Signs whose anomaly alerts are held back while the wearer is active (steps): exertion
#: raises heart and breathing rate and lowers SpO2 a little, and moves optical sensors.
_EXERTION_SIGNS = np.array([True, True, False, True])
_RULE_TABLE = rule_table(RULES)


class VitalsProcessor(Processor):
    """Processor of the ``vitals`` stream."""

    stream = "vitals"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        add = self.state.add
        self.scorer: AnomalyScorer = add("anomaly", AnomalyScorer(0), _K)
        self.minutes: PeriodStats = add("minute", PeriodStats(0), _K)
        self.episode: Columns = add("episode", Columns({"open": ("i1", 0)}), _K)
        self.news2: Columns = add("news2", Columns(NEWS2_STATE))
        self.latest: Columns = add("latest", Columns(LATEST_STATE), _K)
        self.limits: Columns = add("limits", Columns(RULE_STATE), N_RULES)
        self.activity: Columns = add("activity", Columns(DEVICE_STATE))
        self.baseline: Columns = add("baseline", Columns(SIGN_STATE), _K)
        cfg = self.config
        self.timing = Timing(
            cfg.limit_sustain_s,
            cfg.limit_grace_s,
            cfg.limit_clear_s,
            cfg.active_s,
            cfg.limit_baseline_tau_s,
        )

    def process_rows(self, batch: ColumnarBatch, rows: Rows, out: Output) -> None:
        cols = batch.columns
        values = [np.asarray(cols[name], dtype=np.float64) for name in RAW_FIELDS]
        present = sum(np.isfinite(v).astype(np.int64) << bit for bit, v in enumerate(values))
        tags = {k: batch.strings[k] for k in ("device", "district", "family")}
        out.write(
            self.dbs.sensitive,
            "vitals",
            ns(rows.ts),
            tags,
            {**dict(zip(RAW_FIELDS, values, strict=True)), "present": present},
        )
        self.count_readings("vitals", rows)
        active = self._limit_alerts(rows, values, out)
        # one kernel call for every (device, signal) series of the batch
        picks = [np.flatnonzero(rows.fresh & np.isfinite(values[s])) for s in range(_K)]
        row = np.concatenate(picks)
        signal = np.repeat(np.arange(_K), [p.size for p in picks])
        if row.size == 0:
            return
        series = rows.dev[row] * _K + signal
        t = rows.ts[row]
        x = np.concatenate([values[s][p] for s, p in enumerate(picks)])
        score = self.scorer.update(series, t, x)
        self._anomaly_alerts(series, t, x, score, active[row], out)
        ok = np.isfinite(score)
        minute = (t[ok] // 60).astype(np.int64)
        self._minutes(self.minutes.update(series[ok], minute, t[ok], score[ok], x[ok]), out)

    def flush(self, out: Output) -> None:
        """Write the open minutes (anomaly maxima, NEWS2) changed since the last flush."""
        self._minutes(self.minutes.flush(), out)

    def _minutes(self, groups: PeriodGroups, out: Output) -> None:
        if groups.size == 0:
            return
        dev = groups.series // _K
        out.write(
            self.dbs.sensitive,
            "anomaly",
            groups.period * 60_000_000_000,
            {
                **{k: v for k, v in self.device_tags(dev).items() if k != "family"},
                "signal": DictColumn(SIGNALS, (groups.series % _K).astype(np.int32)),
            },
            {"score_max": groups.peak, "value_at_max": groups.at_peak, "readings": groups.count},
        )
        self._news2(dev, groups, out)

    def _limit_alerts(self, rows: Rows, values: list[np.ndarray], out: Output) -> np.ndarray:
        """Clinical limit rules (streams.limits) over the fresh readings; returns, per
        batch row, whether its device was active (stepping) at that reading."""
        fresh = np.flatnonzero(rows.fresh)
        active = np.zeros(rows.ts.size, dtype=bool)
        if fresh.size == 0:
            return active
        signs = np.stack([values[s][fresh] for s in range(_K)], axis=1)
        ev = check_limits(
            rows.dev[fresh],
            rows.ts[fresh],
            signs,
            values[_K][fresh],
            {k: self.limits[k] for k in RULE_STATE},
            {k: self.activity[k] for k in DEVICE_STATE},
            {k: self.baseline[k] for k in SIGN_STATE},
            _RULE_TABLE,
            self.timing,
        )
        active[fresh] = ev.active
        self._news2_alerts(rows.dev[fresh], rows.ts[fresh], signs, out)
        for j, r, start in zip(ev.row.tolist(), ev.rule.tolist(), ev.start.tolist(), strict=True):
            rule = RULES[r]
            i = int(fresh[j])
            x = float(signs[j, SIGNALS.index(rule.sign)])
            limit = rule.enter_active if ev.active[j] else rule.enter
            self.raise_alert(
                out,
                int(rows.dev[i]),
                type=rule.name,
                severity="critical",
                start=start,
                sensor_ts=float(rows.ts[i]),
                message=f"{rule.sign} {x:g} {'>=' if rule.direction > 0 else '<='} {limit:g}",
                value=x,
                evidence={
                    "signal": rule.sign,
                    "value": x,
                    "limit": limit,
                    "sustained_s": float(rows.ts[i]) - start,
                    "active": bool(ev.active[j]),
                },
            )
        return active

    def _anomaly_alerts(
        self,
        series: np.ndarray,
        t: np.ndarray,
        x: np.ndarray,
        score: np.ndarray,
        active: np.ndarray,
        out: Output,
    ) -> None:
        cfg = self.config
        opened = self.episode["open"]
        starts = episode_starts(series, score, cfg.anomaly_enter, cfg.anomaly_exit, opened)
        if starts.size == 0:
            return
        # Held back (and no episode opened): a series with too little history to know its
        # normal (the clinical limits cover that time), and the exertion signs while the
        # wearer walks (an exercise response, not an anomaly).
        seen = self.scorer.export_state(series[starts])["state"][:, 1]
        held = (seen < cfg.anomaly_min_samples) | (
            active[starts] & _EXERTION_SIGNS[series[starts] % _K]
        )
        opened[series[starts[held]]] = 0
        starts = starts[~held]
        # The alert id is type|subject|start (docs/ALERTS.md): signs of one device that
        # open an episode at the same reading would publish one id twice, so that reading
        # raises one alert (the sign with the highest score; every opened sign listed).
        groups: dict[tuple[int, float], list[int]] = {}
        for i in starts.tolist():
            groups.setdefault((int(series[i]) // _K, float(t[i])), []).append(i)
        for group in groups.values():
            i = max(group, key=lambda j: float(score[j]))
            d, s = divmod(int(series[i]), _K)
            level = float(self.scorer.export_state([series[i]])["state"][0, 3])
            self.raise_alert(
                out,
                d,
                type="anomaly",
                severity="warning",
                start=float(t[i]),
                sensor_ts=float(t[i]),
                message=f"unusual {SIGNALS[s]} {x[i]:g}",
                value=float(x[i]),
                evidence={
                    "signal": SIGNALS[s],
                    "value": float(x[i]),
                    "score": float(score[i]),
                    "threshold": cfg.anomaly_enter,
                    "level_after": level,
                    "signals": [SIGNALS[int(series[j]) % _K] for j in group],
                },
            )

    def _news2(self, dev: np.ndarray, groups: PeriodGroups, out: Output) -> None:
        """The ``news2`` point of each (device, minute) in ``groups``, from the minute's
        latest value of each sign (an upsert: one point per resident minute)."""
        key = dev.astype(np.int64) << 32 | groups.period
        pairs, pair = np.unique(key, return_inverse=True)
        latest = np.full((pairs.size, _K), np.nan)
        latest[pair, groups.series % _K] = groups.last
        pdev, pmin = pairs >> 32, pairs & 0xFFFFFFFF
        nan = np.nan
        res = news2.score(
            latest[:, _RR], latest[:, _SPO2], nan, latest[:, _TEMP], nan, latest[:, _HR], nan
        )
        sub = res.subscores
        cols = news2.SUBSCORE_COLUMNS
        out.write(
            self.dbs.sensitive,
            "news2",
            pmin * 60_000_000_000,
            {k: v for k, v in self.device_tags(pdev).items() if k != "family"},
            {
                "score": res.total,
                "band": DictColumn(news2.BANDS, res.band_code.astype(np.int32)),
                "partial": res.partial,
                "sub_respiration_rate": sub[:, cols.index("resp_rate")].astype(np.int64),
                "sub_spo2": sub[:, cols.index("spo2")].astype(np.int64),
                "sub_temperature": sub[:, cols.index("temp_c")].astype(np.int64),
                "sub_heart_rate": sub[:, cols.index("heart_rate")].astype(np.int64),
            },
        )

    def _news2_alerts(self, dev: np.ndarray, t: np.ndarray, signs: np.ndarray, out: Output) -> None:
        """NEWS2 escalations of the fresh readings (``streams.escalation``): the alert is
        decided at the reading that raised the band, whatever the batch boundaries."""
        ev = news2_escalations(
            dev,
            t,
            signs,
            {k: self.news2[k] for k in NEWS2_STATE},
            {k: self.latest[k] for k in LATEST_STATE},
            self.timing.clear_s,
        )
        for j, i in enumerate(ev.row.tolist()):
            name, prev = news2.BANDS[ev.band[j]], int(ev.previous[j])
            ts, total = float(t[i]), int(ev.total[j])
            self.raise_alert(
                out,
                int(dev[i]),
                type="news2",
                severity="critical" if name == "high" else "warning",
                start=ts,
                sensor_ts=ts,
                message=f"NEWS2 {total} ({name}, partial)",
                value=float(total),
                evidence={
                    "score": total,
                    "band": name,
                    "previous_band": None if prev < 0 else news2.BANDS[prev],
                    "partial": bool(ev.partial[j]),
                    "inputs": dict(zip(SIGNALS, ev.inputs[j].tolist(), strict=True)),
                },
            )
