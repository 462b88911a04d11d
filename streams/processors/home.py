"""Elder-care home sensors and device status: raw events, panic and inactivity alerts."""

from __future__ import annotations

import numpy as np

from ingest.batch import ColumnarBatch, DictColumn
from streams.output import Output, ns
from streams.processors.base import Processor, Rows, Services
from streams.state import Columns
from streams.tables import Coded

#: channel -> (measurement, field column, extra tag column) for eldercare channels.
EVENTS: dict[str, tuple[str, str, str | None]] = {
    "motion": ("home_motion", "motion", "room"),
    "door": ("home_door", "open", "door"),
    "bed": ("home_bed", "occupied", None),
    "chair": ("home_chair", "occupied", None),
    "panic": ("home_panic", "pressed", None),
}
STATUS = {"wearable": "wearable_status", "eldercare": "home_status"}
#: Room (door) names kept for merged rows: once the list holds this many, a batch's own
#: names are used (one batch may still take it past the bound by its new names).
MAX_LABELS = 4096


class HomeProcessor(Processor):
    """Processor of the ``home`` stream."""

    stream = "home"
    channels = ("motion", "door", "bed", "chair", "panic", "status")

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.activity: Columns = self.state.add(
            "home",
            Columns({"last_motion": ("f8", -np.inf), "watched": ("i1", 0), "inactive": ("i1", 0)}),
        )
        #: Names of the extra tag columns (room, door) seen so far, in first-seen order.
        self.labels: dict[str, list[str | None]] = {
            extra: [] for _, _, extra in EVENTS.values() if extra is not None
        }
        self._label_of: dict[str, dict[str | None, int]] = {k: {} for k in self.labels}

    def process_rows(self, batch: ColumnarBatch, rows: Rows, out: Output) -> None:
        strings = batch.strings
        channel, family = strings["channel"], strings["family"]
        tags = self.row_tags(batch, rows)  # coded into the device index: steps concatenate
        time_ns = ns(rows.ts)
        for code, name in enumerate(channel.values):
            sel = np.flatnonzero(channel.codes == code)
            if sel.size == 0:
                continue
            sub = {k: Coded(v.values, v.codes[sel]) for k, v in tags.items()}
            if name == "status":
                battery = np.asarray(batch.columns["battery"], dtype=np.float64)[sel]
                fam = family.codes[sel]
                for fcode, fname in enumerate(family.values):
                    part = fam == fcode
                    if fname in STATUS and part.any():
                        out.write(
                            self.dbs.sensitive,
                            STATUS[fname],
                            time_ns[sel][part],
                            {k: Coded(v.values, v.codes[part]) for k, v in sub.items()},
                            {"battery": battery[part]},
                        )
                        self.count_readings(STATUS[fname], rows, sel[part])
                continue
            if name not in EVENTS:
                continue
            measurement, column, extra = EVENTS[name]
            flag = np.asarray(batch.columns[column])[sel]
            known = flag >= 0
            if extra is not None:
                col = strings[extra]
                if len(self.labels[extra]) < MAX_LABELS:
                    codes = self._label_codes(extra, col)[col.codes[sel]]
                    sub[extra] = Coded(self.labels[extra], codes)
                else:  # free-text names: the list stays bounded (rows just do not merge)
                    sub[extra] = Coded(col.values, col.codes[sel])
            out.write(
                self.dbs.sensitive,
                measurement,
                time_ns[sel][known],
                {k: Coded(v.values, v.codes[known]) for k, v in sub.items()},
                {column: flag[known] == 1},
            )
            self.count_readings(measurement, rows, sel[known])
            fresh = sel[known & rows.fresh[sel] & (flag == 1)]
            if name == "motion":
                self._motion(rows, sel[known], fresh)
            elif name == "panic":
                self._panic(rows, fresh, out)

    def _label_codes(self, column: str, col: DictColumn) -> np.ndarray:
        """Codes of a batch dictionary's values (room, door names) in :attr:`labels`,
        which only grows: the writes of many batches then share one dictionary."""
        names, lookup = self.labels[column], self._label_of[column]
        codes = np.empty(len(col.values), dtype=np.int64)
        for i, value in enumerate(col.values):
            code = lookup.get(value)
            if code is None:
                code = lookup[value] = len(names)
                names.append(value)
            codes[i] = code
        return codes

    def _motion(self, rows: Rows, seen: np.ndarray, moving: np.ndarray) -> None:
        col = self.activity
        col["watched"][rows.dev[seen]] = 1
        np.maximum.at(col["last_motion"], rows.dev[moving], rows.ts[moving])
        col["inactive"][rows.dev[moving]] = 0

    def _panic(self, rows: Rows, pressed: np.ndarray, out: Output) -> None:
        for i in pressed.tolist():
            d, ts = int(rows.dev[i]), float(rows.ts[i])
            self.raise_alert(
                out,
                d,
                type="panic",
                severity="critical",
                start=ts,
                sensor_ts=ts,
                message="panic button pressed",
                value=1.0,
                evidence={"pressed_ts": ts},
            )

    def tick(self, now: float, out: Output) -> None:
        """Offline devices, then homes with no motion for hours during the day."""
        super().tick(now, out)
        cfg = self.config
        hour = (now % 86400) // 3600
        n = len(self.state.index)
        if n == 0 or not cfg.day_start_hour <= hour < cfg.day_end_hour:
            return
        col = self.activity
        last = col["last_motion"][:n]
        since = np.where(np.isfinite(last), last, -np.inf)
        online = self.seen["last_ts"][:n] >= now - cfg.offline_after_s
        quiet = np.flatnonzero(
            (col["watched"][:n] == 1)
            & (col["inactive"][:n] == 0)
            & online
            & np.isfinite(since)
            & (since < now - cfg.inactivity_after_s)
        )
        if quiet.size == 0:
            return
        col["inactive"][quiet] = 1
        self.state.touch(quiet)
        for d in quiet.tolist():
            last_motion = float(last[d])
            self.raise_alert(
                out,
                d,
                type="inactivity",
                severity="warning",
                start=last_motion + cfg.inactivity_after_s,
                sensor_ts=float(self.seen["last_ts"][d]),
                message=f"no motion at home for {(now - last_motion) / 3600:.1f} h",
                value=now - last_motion,
                evidence={
                    "last_motion_ts": last_motion,
                    "inactive_s": now - last_motion,
                    "threshold_s": cfg.inactivity_after_s,
                },
            )
