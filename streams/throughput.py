"""Worker throughput per process: readings/s through decode, kernels, encoding and writes.

:func:`measure` drives one partition's processor exactly as the worker does (decode a
micro-batch, process it, and every ``commit_every`` batches: flush open aggregates,
export the checkpoint blocks and hand the bodies to a writer thread that waits for
InfluxDB's acknowledgement while the next batches are processed, at most
``streams.runner.MAX_STEPS`` steps in flight),
without Kafka: the Kafka fetch and ack cost per *record* is amortised over ~1,000
readings and measured by ``cityhealth bench pipeline``. Input batches are built before
the clock starts (streams.synthetic), the kernels' JIT caches are warmed first.

``python -m streams.throughput`` prints a JSON line per stream.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from cityhealth.settings import Settings, get_settings
from ingest.batch import decode
from streams.clock import StreamClock
from streams.config import WorkerConfig
from streams.district import DistrictBoard
from streams.output import Databases, Output
from streams.processors import PROCESSORS, Services
from streams.runner import MAX_STEPS, write_output
from streams.sink import make_sink
from streams.synthetic import motion_batches, vitals_batches


@dataclass(frozen=True)
class Throughput:
    """One measurement (``readings``: vitals readings, or accelerometer samples)."""

    stream: str
    readings: int
    messages: int  # device messages (vitals readings; accelerometer windows)
    batches: int
    seconds: float
    readings_per_s: float
    messages_per_s: float
    points: int
    points_per_s: float
    writes: bool


def _batches(stream: str, readings: int, batch_size: int, devices: int) -> list[bytes]:
    t0 = (time.time() // 3600 - 1) * 3600
    ids = [f"p-bench{i:05d}" for i in range(devices)]
    if stream == "vitals":
        seconds = max(1, readings // devices)
        return vitals_batches(ids, t0, seconds, per_batch=batch_size)
    if stream == "motion":
        per_window = 50  # 1 s at 50 Hz
        seconds = max(1, readings // (devices * per_window))
        return motion_batches(ids, t0, seconds, windows_per_batch=max(1, batch_size // per_window))
    raise ValueError(f"throughput is measured for vitals and motion, not {stream!r}")


def _stop() -> bool:
    return True  # a measurement gives up when InfluxDB is gone (the worker retries)


def measure(
    settings: Settings | None = None,
    stream: str = "vitals",
    *,
    readings: int = 200_000,
    batch_size: int = 1000,
    devices: int = 1000,
    writes: bool = True,
    commit_every: int | None = None,
) -> Throughput:
    """Readings/s of one worker process for ``stream`` (see the module docstring).

    Parameters
    ----------
    settings
        Where InfluxDB is (two fresh databases are created and written when ``writes``).
    readings
        About how many readings (vitals) or accelerometer samples (motion) to process.
    batch_size
        Readings (samples) per micro-batch, as the bridge seals them (~1,000).
    devices
        Distinct devices in the stream.
    writes
        Write to InfluxDB (and wait for the acknowledgements) like the worker does.
    commit_every
        Batches per commit step; default the worker's ``checkpoint_max_batches`` (it
        commits every ``checkpoint_interval_s`` or that many batches, whichever comes
        first: at 500 batches/s, the batch count).
    """
    settings = settings or get_settings()
    tag = "bench" + uuid.uuid4().hex[:8]
    dbs = Databases(f"{tag}_sensitive", f"{tag}_public")
    settings = settings.model_copy(
        update={"influx_db_sensitive": dbs.sensitive, "influx_db_public": dbs.public}
    )
    config = WorkerConfig()
    every = commit_every or config.checkpoint_max_batches
    services = Services(config, dbs, DistrictBoard(), StreamClock())
    payloads = _batches(stream, readings, batch_size, devices)
    warm = PROCESSORS[stream](services)
    for payload in payloads[:3]:  # load the kernels' JIT caches outside the clock
        warm_out = Output(dbs)
        warm.process(decode(payload), warm_out)
        warm.flush(warm_out)
        warm_out.encode()
    processor = PROCESSORS[stream](services)
    sink = make_sink(settings)
    if writes:
        sink.ensure_databases()
    out = Output(dbs)
    n_readings = n_messages = points = 0
    writer = ThreadPoolExecutor(1, thread_name_prefix="throughput-influx")
    inflight: list[Future[tuple[int, int]]] = []

    def encode_only(out: Output) -> tuple[int, int]:
        out.encode()
        return out.points, out.unencoded

    last_flush = time.monotonic()

    def commit(final: bool = False) -> None:
        """The worker's commit step: cut, encode and write in the writer thread (bounded
        in flight); without writes the writer thread still encodes. Open aggregate
        periods are upserted every ``aggregate_interval_s`` and once at the end (the
        worker's timer does that once the stream stops)."""
        nonlocal out, points, last_flush
        while len(inflight) >= MAX_STEPS:
            points += inflight.pop(0).result()[0]
        if final or time.monotonic() - last_flush >= config.aggregate_interval_s:
            processor.flush(out)
            last_flush = time.monotonic()
        processor.state.take_dirty()
        if writes:
            inflight.append(writer.submit(write_output, sink, out, _stop))
        else:
            inflight.append(writer.submit(encode_only, out))
        out = Output(dbs)

    try:
        start = time.perf_counter()
        for i, payload in enumerate(payloads, 1):
            batch = decode(payload)
            n_messages += processor.process(batch, out)
            ragged = batch.ragged
            n_readings += batch.count if ragged is None else int(ragged.offsets[-1])
            if i % every == 0:
                commit()
        commit(final=True)
        for step in inflight:  # the last writes acknowledged
            points += step.result()[0]
        seconds = time.perf_counter() - start
    finally:
        writer.shutdown(wait=True)
        if writes:
            for db in (dbs.sensitive, dbs.public):
                sink.query(None, f'DROP DATABASE "{db}"')
        sink.close()
    return Throughput(
        stream=stream,
        readings=n_readings,
        messages=n_messages,
        batches=len(payloads),
        seconds=seconds,
        readings_per_s=n_readings / seconds,
        messages_per_s=n_messages / seconds,
        points=points,
        points_per_s=points / seconds,
        writes=writes,
    )


def main() -> None:  # pragma: no cover - manual measurement entry point
    for stream in ("vitals", "motion"):
        for writes in (False, True):
            print(json.dumps(asdict(measure(stream=stream, writes=writes))), flush=True)


if __name__ == "__main__":  # pragma: no cover
    main()
