"""Replay recorded data (``cityhealth simulate --replay FILE``).

Input: a CSV file (or Parquet, if the optional ``pyarrow`` package is installed) with one
row per reading and the columns

* ``device`` (or ``device_id``), ``time`` (or ``ts``; epoch seconds or ISO 8601, naive
  means UTC) and ``channel`` -- required;
* ``family`` and ``district`` -- optional (family defaults from the channel, ``status``
  defaulting to ``wearable``; district defaults to ``replay``);
* value columns named like the contract fields (``heart_rate``, ``spo2``, ``pm25``,
  ``lat``, ``room``, ``motion``, ``occupied``, ...); empty cells are absent fields. For
  ``accel``/``pendant`` each row is one sample with ``x``, ``y``, ``z``; consecutive samples
  of a device within the same second are sent as one window with per-sample times ``t``.

Rows are published at their original spacing divided by ``--speed`` (or as fast as
possible with ``--fast``). Timestamps are shifted by one constant so the first row lands on
the simulated start (see :func:`simulators.runner.simulated_start`); pass ``--start`` equal
to the first recorded time to keep the original timestamps (the bridge then needs a
``max_age_s`` that admits them).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ingest.contract import CHANNELS
from ingest.contract.quantities import QUANTITIES
from simulators.base import Message
from simulators.encode import dumps

WINDOW_CHANNELS = ("accel", "pendant")
_BOOL = ("motion", "open", "occupied", "pressed")
_TEXT = ("room", "door")
_DEFAULT_FAMILY = {ch: fam for fam, chs in reversed(list(CHANNELS.items())) for ch in chs}
_DEFAULT_FAMILY["status"] = "wearable"
_VALUE_COLUMNS = (
    frozenset(QUANTITIES) - {"accel", "rate_hz"} | {"x", "y", "z"} | set(_BOOL) | set(_TEXT)
)


class ReplayError(ValueError):
    """The recording cannot be read (message names the file, row and column)."""


def _parse_time(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(
            f"{where}: time {value!r} is neither epoch seconds nor ISO 8601"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _value(name: str, raw: Any, where: str) -> Any:
    if isinstance(raw, bool | int | float) and not isinstance(raw, str):
        return raw
    s = str(raw).strip()
    if name in _BOOL:
        if s.lower() in ("true", "1", "yes"):
            return True
        if s.lower() in ("false", "0", "no"):
            return False
        raise ReplayError(f"{where}: {name}={s!r} is not a boolean")
    if name in _TEXT:
        return s
    try:
        return int(s) if name == "steps" else float(s)
    except ValueError:
        raise ReplayError(f"{where}: {name}={s!r} is not a number") from None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV or Parquet file as dicts."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ReplayError(
                f"{path}: reading Parquet needs the optional pyarrow package (pip install pyarrow)"
            ) from None
        return list(pq.read_table(path).to_pylist())
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise ReplayError(f"{path}: {exc}") from None


class ReplaySimulator:
    """Plays a recording back through the simulator interface (``tick(now)``)."""

    family: ClassVar[str] = "replay"
    channels: ClassVar[tuple[str, ...]] = tuple(_DEFAULT_FAMILY)
    name = "replay"
    tick_s = 0.1

    def __init__(self, rows: list[dict[str, Any]], source: str = "replay") -> None:
        if not rows:
            raise ReplayError(f"{source}: no rows")
        cols = set(rows[0])
        dev_col = "device" if "device" in cols else "device_id"
        time_col = "time" if "time" in cols else "ts"
        missing = [
            c
            for c, ok in (
                (dev_col, dev_col in cols),
                (time_col, time_col in cols),
                ("channel", "channel" in cols),
            )
            if not ok
        ]
        if missing:
            raise ReplayError(f"{source}: missing column(s) {missing}; need device, time, channel")
        values = sorted(cols & _VALUE_COLUMNS)
        # (time, topic, fields) per message; window samples grouped per device and second
        singles: list[tuple[float, str, dict[str, Any]]] = []
        windows: dict[tuple[str, int], list[tuple[float, float, float, float]]] = defaultdict(list)
        for n, row in enumerate(rows, start=2):
            where = f"{source}: row {n}"
            channel = str(row["channel"]).strip()
            family = str(row.get("family") or _DEFAULT_FAMILY.get(channel, "")).strip()
            if channel not in CHANNELS.get(family, ()):
                raise ReplayError(f"{where}: no channel {channel!r} in family {family!r}")
            district = str(row.get("district") or "replay").strip()
            topic = f"city/{district}/{family}/{str(row[dev_col]).strip()}/{channel}"
            t = _parse_time(str(row[time_col]).strip(), where)
            fields = {k: _value(k, row[k], where) for k in values if row.get(k) not in (None, "")}
            if channel in WINDOW_CHANNELS:
                try:
                    xyz = (float(fields["x"]), float(fields["y"]), float(fields["z"]))
                except KeyError as exc:
                    raise ReplayError(f"{where}: {channel} rows need x, y, z ({exc})") from None
                windows[(topic, int(np.floor(t)))].append((t, *xyz))
            else:
                singles.append((t, topic, fields))
        for (topic, _), samples in windows.items():
            samples.sort()
            a = np.array(samples).T.copy()  # rows t, x, y, z; each C-contiguous
            singles.append((float(a[0, 0]), topic, {"t": a[0], "x": a[1], "y": a[2], "z": a[3]}))
        singles.sort(key=lambda m: m[0])
        self.times = np.array([m[0] for m in singles])
        self.messages = singles
        self.t_first = float(self.times[0])
        self.span_s = float(self.times[-1] - self.t_first)
        self.offset = 0.0
        self.device_count = len({m[1].split("/")[3] for m in singles})

    def rebase(self, start: float) -> None:
        """Shift every timestamp so the first reading is at ``start``."""
        self.offset = start - self.t_first

    def tick(self, now: float) -> list[Message]:
        lo = np.searchsorted(self.times, now - self.offset - 1e-9, side="left")
        hi = np.searchsorted(self.times, now + self.tick_s - self.offset - 1e-9, side="left")
        out: list[Message] = []
        off = self.offset
        for t, topic, fields in self.messages[lo:hi]:
            if "t" in fields:
                payload = dumps({**fields, "t": np.round(fields["t"] + off, 6)})
            else:
                payload = dumps({"ts": round(t + off, 6), **fields})
            out.append((topic, payload))
        return out

    def truth(self) -> list[dict[str, Any]]:
        return []


def load_replay(path: Path) -> ReplaySimulator:
    """Read a recording for replay (CSV, or Parquet with pyarrow)."""
    return ReplaySimulator(read_rows(path), source=str(path))
