"""``cityhealth ingest``: run one MQTT -> Kafka bridge until SIGINT/SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach the ``ingest`` command."""
    app.command("ingest")(ingest)


def ingest(
    client_id: Annotated[
        str | None,
        typer.Option(
            help="MQTT client id; keep it stable across restarts (the broker keeps the "
            "session, queued and un-acked messages under it). Default: from host and --index."
        ),
    ] = None,
    index: Annotated[
        int, typer.Option(help="Instance number on this host, for the default client id.")
    ] = 0,
    mqtt_prefix: Annotated[
        str, typer.Option(help="Topic prefix before 'city/' (tests, tenants).")
    ] = "",
    receive_maximum: Annotated[
        int,
        typer.Option(help="Most un-acked MQTT messages in flight (memory bound, backpressure)."),
    ] = 10_000,
    session_expiry: Annotated[
        int, typer.Option(help="Seconds the broker keeps this bridge's session while away.")
    ] = 7 * 86_400,
    batch_max_readings: Annotated[int, typer.Option(help="Seal a batch at this count.")] = 1000,
    batch_max_bytes: Annotated[int, typer.Option(help="Seal a batch at about this size.")] = 512
    * 1024,
    batch_max_age_ms: Annotated[
        float, typer.Option(help="Seal a batch when its oldest reading waited this long.")
    ] = 50.0,
    decoders: Annotated[
        int,
        typer.Option(help="Decoder processes for contract + batching (0: in-process)."),
    ] = 1,
    replay: Annotated[
        bool, typer.Option(help="Accept readings of any age (recorded data).")
    ] = False,
    create_topics: Annotated[
        bool, typer.Option(help="Create missing Kafka topics at start (idempotent).")
    ] = True,
    stats_json: Annotated[
        Path | None, typer.Option(help="Rewrite this file with the counters periodically.")
    ] = None,
    stats_interval: Annotated[float, typer.Option(help="Seconds between stats writes.")] = 1.0,
    shutdown_timeout: Annotated[
        float, typer.Option(help="Seconds a stop waits for Kafka to acknowledge the backlog.")
    ] = 30.0,
    log_level: Annotated[str, typer.Option(help="Python logging level.")] = "INFO",
) -> None:
    """Bridge MQTT device messages to Kafka micro-batches until SIGINT/SIGTERM.

    Subscribes to $share/<CITYHEALTH_TOPIC_PREFIX><CITYHEALTH_MQTT_SHARE_GROUP>/<prefix>city/#
    (QoS 1, persistent session), validates with the device contract, pseudonymises
    personal ids, produces columnar batches (acks=all, idempotent) and acknowledges MQTT
    only after Kafka did.
    """
    from cityhealth.settings import get_settings
    from ingest.bridge import Bridge, BridgeConfig, default_client_id
    from ingest.kafka_topics import ensure_topics

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = get_settings()
    config = BridgeConfig(
        client_id=client_id or default_client_id(index),
        receive_maximum=receive_maximum,
        session_expiry_s=session_expiry,
        batch_max_readings=batch_max_readings,
        batch_max_bytes=batch_max_bytes,
        batch_max_age_s=batch_max_age_ms / 1000.0,
        shutdown_timeout_s=shutdown_timeout,
        max_age_s=None if replay else BridgeConfig.max_age_s,
        decoders=decoders,
    )
    if create_topics:
        created = ensure_topics(settings)
        if created:
            logging.getLogger(__name__).info("created Kafka topics %s", ", ".join(created))
    bridge = Bridge(
        settings,
        config,
        mqtt_prefix=mqtt_prefix,
        stats_path=stats_json,
        stats_interval_s=stats_interval,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bridge.start(wait_subscribed_s=None)
    typer.echo(
        f"ingest bridge {config.client_id}: MQTT {settings.mqtt_host}:{settings.mqtt_port} -> "
        f"Kafka {settings.kafka_bootstrap} (topic prefix {settings.topic_prefix!r})",
        err=True,
    )
    while not stop.wait(0.5) and bridge.failed is None:
        pass
    clean = bridge.stop()
    typer.echo(json.dumps(bridge.snapshot(), sort_keys=True), err=True)
    if not clean:
        typer.echo("stopped with un-acked messages; the broker will re-send them", err=True)
    if bridge.failed is not None:
        typer.echo(f"bridge failed: {bridge.failed}", err=True)
        raise typer.Exit(1)
