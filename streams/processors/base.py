"""What every stream processor shares: device lookup, the replay watermark, offline timer.

**Replay watermark.** Each device keeps the sensor time of the newest reading its kernels
absorbed (``last_ts``, checkpointed with the kernel state). Rows at or before it are
*stale*: a batch replayed after a crash (offsets are committed only after the checkpoint
that covers them, docs/STREAMS.md) is still written to InfluxDB as raw points (same
series and time: overwritten, harmless) but never reaches a kernel or an alert again, so
a restart neither re-learns nor re-alerts. (kernels.fall skips such samples itself;
kernels.anomaly accepts a repeated last timestamp, so the worker-side filter is what
makes replays idempotent for it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ingest.batch import ColumnarBatch
from streams.alerts import Alert
from streams.clock import StreamClock
from streams.config import WorkerConfig
from streams.district import DistrictBoard
from streams.output import Databases, Output
from streams.rows import advance, first_rows
from streams.state import Columns, PartitionState
from streams.tables import Coded


@dataclass
class Services:
    """Process-wide things processors share."""

    config: WorkerConfig
    dbs: Databases
    board: DistrictBoard
    clock: StreamClock


@dataclass(frozen=True)
class Rows:
    """A batch's rows resolved to local devices."""

    dev: np.ndarray  # int64 local device index per row
    fresh: np.ndarray  # bool: after the device's watermark (goes to kernels)
    ts: np.ndarray  # float64 sensor time per row
    minute: np.ndarray  # int64 ``ts // 60`` per row (streams.rows.advance)


class Processor:
    """Base: subclasses set :attr:`stream` and implement :meth:`process_rows`."""

    stream = ""
    #: Type of the offline alert for this stream's devices (stations have their own).
    offline_type = "device_offline"
    subject_kind: str = "device"
    #: Whether this stream's devices count as "devices online" (not air stations).
    counts_online = True
    #: Channels with their own replay watermark per device (a device's channels are
    #: separate sensors whose readings need not arrive in time order across channels).
    channels: tuple[str, ...] = ()

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config
        self.dbs = services.dbs
        self.state = PartitionState(self.stream, self.config.checkpoint_blocks)
        self.seen: Columns = self.state.add(
            "seen",
            Columns(
                {
                    "last_ts": ("f8", -np.inf),
                    "offline": ("i1", 0),
                    "counted_minute": ("i8", -1),
                }
            ),
        )
        self.marks: Columns = self.state.add(
            "watermark", Columns({"ts": ("f8", -np.inf)}), max(len(self.channels), 1)
        )

    # -- batches ------------------------------------------------------------------------
    def process(self, batch: ColumnarBatch, out: Output) -> int:
        """Write, score and alert one batch; returns the readings it held."""
        if batch.stream != self.stream:
            raise ValueError(f"{self.stream} processor got a {batch.stream!r} batch")
        if batch.count == 0:
            return 0
        rows = self.resolve(batch)
        self.process_rows(batch, rows, out)
        return batch.count

    def resolve(self, batch: ColumnarBatch) -> Rows:
        """Map device ids once per unique device; advance watermarks; mark blocks dirty."""
        device = batch.strings["device"]
        district = batch.strings["district"]
        family = batch.strings["family"]
        codes = device.codes
        first = first_rows(codes, len(device.values))  # a representative row per device
        used = np.flatnonzero(first >= 0)
        first = first[used]
        local = np.zeros(len(device.values), dtype=np.int64)
        every = used.size == len(device.values)  # the usual case: all dictionary values used
        local[used] = self.state.devices(
            device.values if every else [device.values[c] for c in used],
            (district.values, district.codes[first]),
            (family.values, family.codes[first]),
        )
        dev = local[codes]
        ts = np.asarray(batch.columns["ts"], dtype=np.float64)
        series = dev
        if self.channels:
            channel = batch.strings["channel"]
            known = {name: i for i, name in enumerate(self.channels)}
            code = np.array([known.get(v, 0) for v in channel.values], dtype=np.int64)
            series = dev * len(self.channels) + code[channel.codes]
        fresh = np.empty(ts.size, dtype=np.bool_)
        new_minute = np.empty(ts.size, dtype=np.bool_)
        minutes = np.empty(ts.size, dtype=np.int64)
        counted = self.seen["counted_minute"]
        if not self.counts_online:
            counted = counted.copy()  # stations do not count as devices online
        advance(
            series, dev, ts, self.marks["ts"], self.seen["last_ts"], counted, fresh, new_minute,
            minutes,
        )  # fmt: skip
        touched = local[used]
        self.seen["offline"][touched] = 0
        self.state.touch(touched)
        if ts.size:
            self.services.clock.observe(float(ts.max()))
            if self.counts_online and new_minute.any():
                # each (device, minute) once: rows of a minute already counted for their
                # device are dropped by the pass above, before any Python
                self.services.board.devices_seen(
                    self.state.index, dev[new_minute], minutes[new_minute]
                )
        return Rows(dev, fresh, ts, minutes)

    def count_readings(self, channel: str, rows: Rows, sel: np.ndarray | None = None) -> None:
        """Tell the district board how many readings of ``channel`` (the raw measurement
        they were written to) arrived per district minute: fresh rows only (``sel``:
        row indices, default all), so a replayed batch is not counted twice."""
        pick = np.flatnonzero(rows.fresh) if sel is None else sel[rows.fresh[sel]]
        index = self.state.index
        self.services.board.readings_seen(
            self.stream,
            channel,
            index.districts,
            index.district_code[rows.dev[pick]],
            rows.minute[pick],
        )

    def process_rows(self, batch: ColumnarBatch, rows: Rows, out: Output) -> None:
        raise NotImplementedError

    def restored(self) -> None:
        """After a restore: timers continue from the newest restored sensor time (not
        from wall time, which would declare every device of a replay offline)."""
        last = self.seen["last_ts"][: len(self.state.index)]
        last = last[np.isfinite(last)]
        if last.size:
            self.services.clock.observe(float(last.max()))

    def flush(self, out: Output) -> None:
        """Commit-step work: write aggregates of periods still open (default: none)."""

    # -- timers -------------------------------------------------------------------------
    def tick(self, now: float, out: Output) -> None:
        """Timer work: devices that went silent raise one offline alert each."""
        n = len(self.state.index)
        if n == 0:
            return
        last = self.seen["last_ts"][:n]
        off = self.seen["offline"][:n]
        gone = np.flatnonzero(
            (off == 0) & np.isfinite(last) & (last < now - self.config.offline_after_s)
        )
        if gone.size == 0:
            return
        off[gone] = 1
        self.state.touch(gone)
        for d in gone.tolist():
            seen_ts = float(last[d])
            self.raise_alert(
                out,
                d,
                type=self.offline_type,
                severity="warning",
                start=seen_ts + self.config.offline_after_s,
                sensor_ts=seen_ts,
                message=f"no data for {self.config.offline_after_s:.0f} s",
                value=now - seen_ts,
                evidence={
                    "last_seen_ts": seen_ts,
                    "offline_after_s": self.config.offline_after_s,
                },
            )

    # -- helpers ------------------------------------------------------------------------
    def alert(self, out: Output, alert: Alert) -> None:
        out.alert(alert)
        self.services.board.alert_raised(alert)

    def raise_alert(self, out: Output, device: int, **fields: Any) -> None:
        """An alert about local device ``device`` (subject id, kind and district filled)."""
        self.alert(out, self._device_alert(device, fields))

    def clear_alert(self, out: Output, device: int, **fields: Any) -> None:
        """The *clear* record of an alarm of local device ``device``: the alarm's id
        (``type``, subject, ``start``) with its ``end`` set. Published like an alert but
        no new alert: the district board does not count it."""
        out.alert(self._device_alert(device, fields))

    def _device_alert(self, device: int, fields: dict[str, Any]) -> Alert:
        index = self.state.index
        return Alert(
            subject=index.ids[device],
            subject_kind=self.subject_kind,  # type: ignore[arg-type]
            district=index.districts[index.district_code[device]],
            **fields,
        )

    def row_tags(self, batch: ColumnarBatch, rows: Rows) -> dict[str, Coded]:
        """``device``/``district``/``family`` tags of each row as the batch carries them,
        coded into the partition's device index (:class:`streams.tables.Coded`) rather
        than the batch's dictionaries, so the raw writes of a commit step's batches
        concatenate into one encoding (streams.tables)."""
        index = self.state.index
        district, family = batch.strings["district"], batch.strings["family"]
        return {
            "device": Coded(index.ids, rows.dev),
            "district": Coded(
                index.districts, index.district_codes(district.values)[district.codes]
            ),
            "family": Coded(index.families, index.family_codes(family.values)[family.codes]),
        }

    def device_tags(self, devices: np.ndarray) -> dict[str, Coded]:
        """``device``/``district``/``family`` tag columns for local device indices, coded
        into the partition's device index like :meth:`row_tags`: a fresh dictionary per
        call made every write of a derived measurement (e.g. ``activity``, written per
        batch) a table and a line-protocol encoding of its own (streams.tables)."""
        index = self.state.index
        return {
            "device": Coded(index.ids, devices),
            "district": Coded(index.districts, index.district_code[devices]),
            "family": Coded(index.families, index.family_code[devices]),
        }
