"""Accelerometer windows: window summaries, per-second activity, falls.

Every window's samples go to one :class:`kernels.fall.FallDetector` call per batch
(samples repeated with their window's device); ``|a|`` statistics per device-second come
from a :class:`streams.periods.PeriodStats`. The deciding sample of a fall is the first of
its device at or after ``impact + settle_s + still_s`` (the kernel's decision rule).
"""

from __future__ import annotations

import numpy as np

from ingest.batch import ColumnarBatch
from kernels.fall import FallDetector
from streams.output import Output, ns
from streams.periods import PeriodGroups, PeriodStats
from streams.processors.base import Processor, Rows, Services
from streams.tables import Coded

#: Raw window measurement per family (docs/DATA_MODEL.md).
WINDOW_MEASUREMENT = {"wearable": "accel_window", "eldercare": "pendant_window"}


class MotionProcessor(Processor):
    """Processor of the ``motion`` stream (``wearable/accel``, ``eldercare/pendant``)."""

    stream = "motion"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.falls: FallDetector = self.state.add("fall", FallDetector(0))
        self.seconds: PeriodStats = self.state.add("activity", PeriodStats(0))
        p = self.falls.params
        self.decide_s = p["settle_s"] + p["still_s"]

    def process_rows(self, batch: ColumnarBatch, rows: Rows, out: Output) -> None:
        ragged = batch.ragged
        assert ragged is not None  # decode() guarantees it for the motion stream
        offsets = ragged.offsets
        lengths = np.diff(offsets)
        t, x, y, z = (np.asarray(ragged[k], dtype=np.float64) for k in "txyz")
        mag = np.sqrt(x * x + y * y + z * z)
        starts = offsets[:-1]
        nonempty = lengths > 0
        first_t = t[starts[nonempty]]
        last_t = t[offsets[1:][nonempty] - 1]
        duration = np.zeros(lengths.size)
        duration[nonempty] = last_t - first_t
        rate = np.asarray(batch.columns["rate_hz"], dtype=np.float64).copy()
        implied = ~np.isfinite(rate) & (duration > 0)
        rate[implied] = (lengths[implied] - 1) / duration[implied]
        safe_starts = np.minimum(starts, max(mag.size - 1, 0))
        mag_max = np.maximum.reduceat(mag, safe_starts) if mag.size else np.zeros(lengths.size)
        mag_sum = np.add.reduceat(mag, safe_starts) if mag.size else np.zeros(lengths.size)
        mag_mean = np.where(nonempty, mag_sum / np.maximum(lengths, 1), np.nan)
        family = batch.strings["family"]
        tags = self.row_tags(batch, rows)  # coded into the device index: steps concatenate
        for code, name in enumerate(family.values):
            measurement = WINDOW_MEASUREMENT.get(name)
            sel = np.flatnonzero((family.codes == code) & nonempty)
            if measurement is None or sel.size == 0:
                continue
            out.write(
                self.dbs.sensitive,
                measurement,
                ns(rows.ts[sel]),
                {k: Coded(v.values, v.codes[sel]) for k, v in tags.items()},
                {
                    "samples": lengths[sel].astype(np.int64),
                    "rate_hz": rate[sel],
                    "duration_s": duration[sel],
                    "mag_max": np.where(nonempty, mag_max, np.nan)[sel],
                    "mag_mean": mag_mean[sel],
                },
            )
            self.count_readings(measurement, rows, sel)
        # samples of fresh windows only: replayed windows never reach the kernels
        keep = np.repeat(rows.fresh, lengths)
        sdev = np.repeat(rows.dev, lengths)[keep]
        st, sx, sy, sz, smag = t[keep], x[keep], y[keep], z[keep], mag[keep]
        if st.size == 0:
            return
        self._falls(sdev, st, sx, sy, sz, out)
        ok = np.isfinite(smag) & np.isfinite(st)
        second = np.floor(st[ok]).astype(np.int64)
        self._activity(self.seconds.update(sdev[ok], second, st[ok], smag[ok]), out)

    def flush(self, out: Output) -> None:
        """Write the open seconds of activity changed since the last flush."""
        self._activity(self.seconds.flush(), out)

    def _activity(self, g: PeriodGroups, out: Output) -> None:
        if g.size == 0:
            return
        out.write(
            self.dbs.sensitive,
            "activity",
            g.period * 1_000_000_000,
            self.device_tags(g.series),
            {"mag_mean": g.mean, "mag_max": g.peak, "mag_std": g.std, "samples": g.count},
        )

    def _falls(
        self,
        dev: np.ndarray,
        t: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        z: np.ndarray,
        out: Output,
    ) -> None:
        ev_dev, ev_t = self.falls.update(dev, t, x, y, z)
        if ev_dev.size == 0:
            return
        decided = np.empty(ev_dev.size)
        for k, (d, t_imp) in enumerate(zip(ev_dev.tolist(), ev_t.tolist(), strict=True)):
            mine = t[(dev == d) & (t >= t_imp + self.decide_s)]
            decided[k] = mine.min() if mine.size else t_imp + self.decide_s
        index = self.state.index
        out.write(
            self.dbs.sensitive,
            "fall",
            ns(ev_t),
            self.device_tags(ev_dev),
            {"detected": np.ones(ev_dev.size, dtype=bool), "decided_after_s": decided - ev_t},
        )
        for d, t_imp, t_dec in zip(ev_dev.tolist(), ev_t.tolist(), decided.tolist(), strict=True):
            family = index.families[index.family_code[d]]
            self.raise_alert(
                out,
                d,
                type="fall",
                severity="critical",
                start=t_imp,
                sensor_ts=t_dec,
                message="fall detected",
                value=t_dec - t_imp,
                evidence={"impact_ts": t_imp, "decided_ts": t_dec, "family": family},
            )
