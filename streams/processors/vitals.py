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

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from ingest.batch import ColumnarBatch, DictColumn
from kernels import news2
from kernels.anomaly import COLUMNS, AnomalyScorer
from streams.anomaly_series import (
    PEAK_LEVEL,
    ClosedLevels,
    PeakLevels,
    episode_alerts,
    minute_fields,
)
from streams.escalation import LATEST_STATE, NEWS2_STATE, news2_escalations
from streams.limits import (
    DEVICE_STATE,
    N_RULES,
    RULE_STATE,
    RULES,
    SIGN_STATE,
    Rule,
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


@njit(cache=True, nogil=True)
def _prepare(
    hr: np.ndarray,
    spo2: np.ndarray,
    temp: np.ndarray,
    rr: np.ndarray,
    steps: np.ndarray,
    fresh: np.ndarray,
    dev: np.ndarray,
    ts: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """One pass over a batch's columns for what the processor derives per row (see
    :class:`_Prepared`); the scored samples come sign by sign (heart rate first), rows in
    batch order within a sign."""
    n = ts.size
    present = np.zeros(n, np.int64)
    n_fresh = 0
    counts = np.zeros(4, np.int64)
    signs = (hr, spo2, temp, rr)
    for i in range(n):
        bits = np.int64(0)
        for s in range(4):
            if np.isfinite(signs[s][i]):
                bits |= np.int64(1) << s
                if fresh[i]:
                    counts[s] += 1
        if np.isfinite(steps[i]):
            bits |= np.int64(16)
        present[i] = bits
        if fresh[i]:
            n_fresh += 1
    rows = np.empty(n_fresh, np.int64)
    matrix = np.empty((n_fresh, 4))
    fresh_steps = np.empty(n_fresh)
    k = 0
    for i in range(n):
        if fresh[i]:
            rows[k] = i
            for s in range(4):
                matrix[k, s] = signs[s][i]
            fresh_steps[k] = steps[i]
            k += 1
    m = counts.sum()
    row = np.empty(m, np.int64)
    series = np.empty(m, np.int64)
    t = np.empty(m)
    x = np.empty(m)
    k = 0
    for s in range(4):
        col = signs[s]
        for i in range(n):
            if fresh[i] and np.isfinite(col[i]):
                row[k] = i
                series[k] = dev[i] * 4 + s
                t[k] = ts[i]
                x[k] = col[i]
                k += 1
    return present, rows, matrix, fresh_steps, row, series, t, x


def _rule_events(
    rows: Rows,
    fresh: np.ndarray,
    signs: np.ndarray,
    row: np.ndarray,
    rule: np.ndarray,
    start: np.ndarray,
) -> Iterator[tuple[int, Rule, int, dict[str, Any]]]:
    """Limit rule events (raised or cleared, :class:`streams.limits.LimitEvents`) as
    ``(fresh row j, rule, local device, alert fields)``; the fields every record of the
    rule's alarm has: ``type``, ``severity``, ``start`` (the alarm's), ``sensor_ts`` and
    ``value`` (the reading's)."""
    for j, r, s in zip(row.tolist(), rule.tolist(), start.tolist(), strict=True):
        i = int(fresh[j])
        common = {
            "type": RULES[r].name,
            "severity": "critical",
            "start": s,
            "sensor_ts": float(rows.ts[i]),
            "value": float(signs[j, SIGNALS.index(RULES[r].sign)]),
        }
        yield j, RULES[r], int(rows.dev[i]), common


@dataclass(frozen=True)
class _Prepared:
    """What :func:`_prepare` derives from a batch."""

    present: np.ndarray  # int64 bit mask per row (docs/DATA_MODEL.md ``present``)
    fresh: np.ndarray  # int64 indices of the fresh rows
    signs: np.ndarray  # float64 [fresh, 4]: the signs of the fresh rows (NaN: missing)
    steps: np.ndarray  # float64 [fresh]: their step counter
    row: np.ndarray  # int64 batch row of each scored sample (fresh and finite)
    series: np.ndarray  # int64 anomaly series ``device * 4 + sign``
    t: np.ndarray  # float64 sensor time
    x: np.ndarray  # float64 value


class VitalsProcessor(Processor):
    """Processor of the ``vitals`` stream."""

    stream = "vitals"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        add = self.state.add
        self.scorer: AnomalyScorer = add("anomaly", AnomalyScorer(0), _K)
        self.minutes: PeriodStats = add("minute", PeriodStats(0), _K)
        # per series: the open anomaly episode and the level at the open minute's peak
        self.episode: Columns = add("episode", Columns({"open": ("i1", 0), **PEAK_LEVEL}), _K)
        self.peak_levels = PeakLevels(self.episode)
        self.news2: Columns = add("news2", Columns(NEWS2_STATE))
        self.latest: Columns = add("latest", Columns(LATEST_STATE), _K)
        self.limits: Columns = add("limits", Columns(RULE_STATE), N_RULES)
        self.activity: Columns = add("activity", Columns(DEVICE_STATE))
        self.baseline: Columns = add("baseline", Columns(SIGN_STATE), _K)
        # the state arrays by name, for the compiled passes (rebuilt when the state grows)
        self._views: tuple[int, ...] = ()
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
        hr, spo2, temp, rr, steps = values
        p = _Prepared(*_prepare(hr, spo2, temp, rr, steps, rows.fresh, rows.dev, rows.ts))
        self._state_views()
        out.write(
            self.dbs.sensitive,
            "vitals",
            ns(rows.ts),
            self.row_tags(batch, rows),
            {**dict(zip(RAW_FIELDS, values, strict=True)), "present": p.present},
        )
        self.count_readings("vitals", rows, p.fresh)
        active = self._limit_alerts(rows, p, out)
        if p.row.size == 0:
            return
        # one kernel call for every (device, signal) series of the batch
        series, t, x = p.series, p.t, p.x
        score, level = self.scorer.update_with_level(series, t, x)
        self._anomaly_alerts(series, t, x, score, active[p.row], out, level)
        minute = rows.minute[p.row]
        ok = np.isfinite(score)
        if not ok.all():  # usually every sample scored: no gathers
            series, t, x, score, level, minute = (
                a[ok] for a in (series, t, x, score, level, minute)
            )
        closed = self.minutes.update(series, minute, t, score, x)
        self._minutes(closed, out, self.peak_levels.update(series, minute, score, level))

    def _state_views(self) -> None:
        """Name -> array dictionaries of the compiled passes' state, built again only
        when a state grew (``grow`` replaces the arrays)."""
        parts = (self.limits, self.activity, self.baseline, self.news2, self.latest)
        key = tuple(id(next(iter(part._state.values()))) for part in parts)
        if key == self._views:
            return
        self._views = key
        self._rule_state = {k: self.limits[k] for k in RULE_STATE}
        self._device_state = {k: self.activity[k] for k in DEVICE_STATE}
        self._sign_state = {k: self.baseline[k] for k in SIGN_STATE}
        self._news2_state = {k: self.news2[k] for k in NEWS2_STATE}
        self._latest_state = {k: self.latest[k] for k in LATEST_STATE}

    def flush(self, out: Output) -> None:
        """Write the open minutes (anomaly maxima, NEWS2) changed since the last flush."""
        self._minutes(self.minutes.flush(), out)

    def _minutes(
        self, groups: PeriodGroups, out: Output, closed: ClosedLevels | None = None
    ) -> None:
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
            minute_fields(groups, self.peak_levels.levels(groups, closed)),
        )
        self._news2(dev, groups, out)

    def _limit_alerts(self, rows: Rows, p: _Prepared, out: Output) -> np.ndarray:
        """Clinical limit rules (streams.limits) over the fresh readings; returns, per
        batch row, whether its device was active (stepping) at that reading."""
        fresh = p.fresh
        active = np.zeros(rows.ts.size, dtype=bool)
        if fresh.size == 0:
            return active
        signs = p.signs
        dev, ts = rows.dev[fresh], rows.ts[fresh]
        ev = check_limits(
            dev,
            ts,
            signs,
            p.steps,
            self._rule_state,
            self._device_state,
            self._sign_state,
            _RULE_TABLE,
            self.timing,
        )
        active[fresh] = ev.active
        self._news2_alerts(dev, ts, signs, out)
        raised = _rule_events(rows, fresh, signs, ev.row, ev.rule, ev.start)
        for j, rule, device, common in raised:
            x, at, start = common["value"], common["sensor_ts"], common["start"]
            limit = rule.enter_active if ev.active[j] else rule.enter
            self.raise_alert(
                out,
                device,
                **common,
                message=f"{rule.sign} {x:g} {'>=' if rule.direction > 0 else '<='} {limit:g}",
                evidence={
                    "signal": rule.sign,
                    "value": x,
                    "limit": limit,
                    "sustained_s": at - start,
                    "active": bool(ev.active[j]),
                },
            )
        ended = _rule_events(rows, fresh, signs, ev.cleared_row, ev.cleared_rule, ev.cleared_start)
        for _, rule, device, common in ended:
            x, at, start = common["value"], common["sensor_ts"], common["start"]
            self.clear_alert(
                out,
                device,
                **common,
                end=at,
                message=f"{rule.sign} {x:g}: cleared after {at - start:.0f} s",
                evidence={"signal": rule.sign, "value": x, "cleared": True},
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
        level: np.ndarray | None = None,
    ) -> None:
        """Anomaly alerts; ``level``: the kernel's level at each sample (NaN if not given)."""
        # Held back besides a series with too little history (the clinical limits cover
        # that time): the exertion signs while the wearer walks (an exercise response).
        for device, fields in episode_alerts(
            self.scorer,
            self.episode["open"],
            series,
            t,
            x,
            score,
            level,
            type_="anomaly",
            signals=SIGNALS,
            config=self.config,
            hold=lambda starts: active[starts] & _EXERTION_SIGNS[series[starts] % _K],
        ):
            # kept for consumers of the older evidence: the level after the whole batch
            row = device * _K + SIGNALS.index(fields["evidence"]["signal"])
            fields["evidence"]["level_after"] = float(
                self.scorer.export_state([row])["state"][0, COLUMNS.index("level")]
            )
            self.raise_alert(out, device, **fields)

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
            self._news2_state,
            self._latest_state,
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
