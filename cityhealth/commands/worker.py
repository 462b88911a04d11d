"""``cityhealth worker``: run the Faust stream worker (same app as ``faust -A streams.app``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach the ``worker`` command."""
    app.command("worker")(worker)


def worker(
    log_level: Annotated[str, typer.Option("--log-level", "-l", help="Logging level.")] = "info",
    checkpoint_interval: Annotated[
        float | None,
        typer.Option(help="Most seconds between checkpoints/acks (CITYHEALTH_WORKER_*)."),
    ] = None,
    offline_after: Annotated[
        float | None, typer.Option(help="Seconds without data before an offline alert.")
    ] = None,
    stats_json: Annotated[
        Path | None,
        typer.Option(help="Rewrite this file with the counters (batches, readings, alerts...)."),
    ] = None,
) -> None:
    """Consume the micro-batch topics, run the kernels, write InfluxDB, publish alerts.

    Reads CITYHEALTH_* (Kafka, InfluxDB, topic prefix, partitions) and CITYHEALTH_WORKER_*
    (checkpoint cadence, thresholds, timers; docs/STREAMS.md). Stops on SIGINT/SIGTERM.
    """
    from faust.worker import Worker

    from streams.app import create_app
    from streams.config import WorkerConfig

    overrides: dict[str, object] = {}
    if stats_json is not None:
        overrides["stats_json"] = stats_json
    if checkpoint_interval is not None:
        overrides["checkpoint_interval_s"] = checkpoint_interval
    if offline_after is not None:
        overrides["offline_after_s"] = offline_after
    app = create_app(config=WorkerConfig(**overrides))  # type: ignore[arg-type]
    Worker(app, loglevel=log_level.upper(), quiet=True).execute_from_commandline()
