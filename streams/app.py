"""The Faust app: one agent per micro-batch topic (``faust -A streams.app worker -l info``).

Built from :class:`cityhealth.settings.Settings` (``CITYHEALTH_*``) and
:class:`streams.config.WorkerConfig` (``CITYHEALTH_WORKER_*``). Values are raw bytes
(columnar batches, docs/BATCH_FORMAT.md); offsets are acknowledged by hand once InfluxDB
and the kernel-state checkpoint covered a batch (streams/runner.py, docs/STREAMS.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust

from cityhealth.settings import Settings, get_settings
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import STREAM_BASES, topics_for
from streams.config import WorkerConfig, app_id
from streams.worker import StreamWorker

log = logging.getLogger(__name__)


class WorkerApp(faust.App):
    """A Faust app that prepares topics and databases before its consumer starts."""

    cityhealth: StreamWorker

    async def on_first_start(self) -> None:
        # Faust creates only the last level of its data directory (``mkdir`` without
        # parents): create ``data_dir/worker`` first, so a fresh data dir works for
        # ``faust -A streams.app worker`` and ``cityhealth worker`` alike.
        Path(self.conf.datadir).parent.mkdir(parents=True, exist_ok=True)
        await super().on_first_start()
        await self.cityhealth.prepare()

    async def on_stop(self) -> None:
        await self.cityhealth.stop()
        await super().on_stop()


def create_app(settings: Settings | None = None, config: WorkerConfig | None = None) -> WorkerApp:
    """The worker app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    config = config or WorkerConfig()
    ident = app_id(settings)
    kafka = kafka_client_kwargs(settings)
    app = WorkerApp(
        ident,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust.SASLCredentials(
            username=kafka["sasl_plain_username"],
            password=kafka["sasl_plain_password"],
            mechanism=kafka["sasl_mechanism"],
        ),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=1,
        web_enabled=False,
        datadir=str(Path(settings.data_dir) / "worker" / ident),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
        broker_commit_every=1000,
        stream_wait_empty=False,
        producer_max_request_size=8 << 20,
    )
    worker = app.cityhealth = StreamWorker(settings, config, ident)
    topics = topics_for(settings)

    def make_agent(stream: str) -> None:
        topic = app.topic(topics.stream(stream), value_type=bytes, key_type=bytes)

        async def agent(source: Any) -> None:
            manual = source.noack()
            async for event in manual.events():
                msg = event.message
                await worker.handle(msg.topic, msg.partition, msg.value, manual.ack, event)

        agent.__name__ = agent.__qualname__ = f"{stream}_agent"
        app.agent(topic, name=f"{stream}_agent")(agent)

    for stream in STREAM_BASES:
        make_agent(stream)

    @app.timer(interval=config.timer_interval_s)
    async def timers() -> None:
        await worker.tick()

    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        await worker.revoke({(tp.topic, tp.partition) for tp in revoked})

    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        worker.assign({(tp.topic, tp.partition) for tp in assigned})

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    return app


app = create_app()
