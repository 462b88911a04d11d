"""Shared helpers of the stream-worker tests (no tests here): a worker subprocess, batches
straight into the stream topics, counts in InfluxDB, committed alerts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["wait_for"]

from aiokafka import AIOKafkaProducer

from cityhealth.settings import Settings
from cityhealth.stack import create_databases
from ingest.batch import kafka_partition
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import ensure_topics, topics_for
from streams.alert_reader import read_alerts
from streams.sink import make_sink
from tests.pipeline.test_bridge_support import wait_for

PARTITIONS = 2
#: Fast checkpoints and timers so tests wait little (behaviour is the same).
WORKER_ENV = {
    "CITYHEALTH_WORKER_CHECKPOINT_INTERVAL_S": "0.3",
    "CITYHEALTH_WORKER_TIMER_INTERVAL_S": "0.5",
}


def worker_settings(base: Settings, partitions: int = PARTITIONS) -> Settings:
    """Unique topic prefix and databases (created), few partitions."""
    tag = "w" + uuid.uuid4().hex[:10]
    s = base.model_copy(
        update={
            "topic_prefix": f"{tag}.",
            "influx_db_sensitive": f"{tag}_sensitive",
            "influx_db_public": f"{tag}_public",
            "kafka_partitions": partitions,
        }
    )
    create_databases(s, s.influx_db_sensitive, s.influx_db_public)
    ensure_topics(s)  # before anything produces: auto-creation would pick another count
    return s


class WorkerProcess:
    """``cityhealth worker`` as a subprocess with its log in ``log_path``."""

    def __init__(self, cli: Path, settings: Settings, log_path: Path, **env: str) -> None:
        self.cli = cli
        self.settings = settings
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHEALTH_")}
        self.env.update(settings.to_env())
        self.env.update(WORKER_ENV)
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(self.cli), "worker", "-l", "info"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Until Faust reports the worker ready (partitions assigned, offsets sought)."""
        wait_for(lambda: "Worker ready" in self.log(), timeout_s, "worker ready")

    def restored_blocks(self) -> int:
        """Checkpoint blocks this worker restored (from its log)."""
        return sum(
            int(line.split("restored ")[1].split()[0])
            for line in self.log().splitlines()
            if "restored " in line and "checkpoint blocks" in line
        )

    def withheld_alerts(self) -> int:
        """Alerts this worker's replay raised again and did not publish (from its log):
        a previous owner had published them ahead of its last checkpoint."""
        return sum(
            int(line.split("withheld ")[1].split()[0])
            for line in self.log().splitlines()
            if "withheld " in line and "published before the restart" in line
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def module_worker(
    cli: Path, settings: Settings, tmp_path_factory: Any, **env: str
) -> Iterator[WorkerProcess]:
    """Body of a module-scoped worker fixture: started once, stopped at the end."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = WorkerProcess(cli, settings, log, **env).start()
    yield proc
    proc.stop()


def by_partition(
    devices: Sequence[str], partitions: int = PARTITIONS, *, district: str | None = None
) -> list[list[str]]:
    """Devices grouped by their Kafka partition (a batch holds one partition's devices);
    ``district``: air stations, keyed by their district (docs/BATCH_FORMAT.md)."""
    out: list[list[str]] = [[] for _ in range(partitions)]
    for d in devices:
        out[kafka_partition(district if district is not None else d, partitions)].append(d)
    return out


def produce(settings: Settings, stream: str, records: Sequence[tuple[int, bytes]]) -> None:
    """Produce ``(partition, payload)`` records to a stream topic, acks=all."""
    topic = topics_for(settings).stream(stream)

    async def run() -> None:
        producer = AIOKafkaProducer(
            **kafka_client_kwargs(settings),
            acks="all",
            enable_idempotence=True,
            max_request_size=8 << 20,
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, v, partition=p) for p, v in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def count(settings: Settings, database: str, measurement: str, field: str) -> int:
    with make_sink(settings) as sink:
        return sink.count(database, measurement, field)


def alerts(settings: Settings) -> list[dict[str, Any]]:
    return read_alerts(kafka_client_kwargs(settings), topics_for(settings).alerts)


def query(settings: Settings, database: str, influxql: str) -> list[dict[str, Any]]:
    with make_sink(settings) as sink:
        return sink.query(database, influxql)
