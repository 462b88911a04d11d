"""``cityhealth bench ingest``: bridge messages/s vs a bare paho subscribe loop, same run.

Both contenders drain the same backlog: ``--messages`` QoS 1 messages (every stream, see
:mod:`cityhealth.bench.ingest_samples`) are published while the contender's persistent
session is offline, so the broker queues them; the clock runs from the contender's first
message to its last acknowledgement. The publisher therefore never competes for the CPU
during a timed run.

* **baseline**: a bare paho MQTT v5 client on the same shared subscription, same Receive
  Maximum, QoS 1 with paho's automatic PUBACK and an ``on_message`` that only counts;
* **bridge**: :class:`ingest.bridge.Bridge` — contract decode, pseudonyms, columnar batches,
  idempotent ``acks=all`` Kafka produce, PUBACK after the Kafka ack — until every message is
  acknowledged (so every reading is in Kafka; the count is checked afterwards).

Runs alternate (baseline, bridge, ...); the best and the median of ``--repeat`` are
reported, with the CPU time each contender spent per message (the bridge's includes its
decoder processes), which a busy shared machine disturbs far less than wall-clock rates.
Needs the running stack (``cityhealth stack up``): Mosquitto with a large
``max_queued_messages`` and Kafka. Goal: bridge >= 80 % of the baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ingest.mqtt_auth import mqtt_credentials

if TYPE_CHECKING:
    from cityhealth.settings import Settings

GOAL = 0.8


@dataclass
class IngestReport:
    """Result of one benchmark run."""

    messages: int
    receive_maximum: int
    repeat: int
    decoders: int
    baseline_msgs_per_s: list[float] = field(default_factory=list)
    bridge_msgs_per_s: list[float] = field(default_factory=list)
    baseline_cpu_us_per_msg: list[float] = field(default_factory=list)
    bridge_cpu_us_per_msg: list[float] = field(default_factory=list)
    bridge_main_cpu_us_per_msg: list[float] = field(default_factory=list)
    bridge_decoder_cpu_us_per_msg: list[float] = field(default_factory=list)
    bridge_readings_in_kafka: int = 0
    expected_readings: int = 0
    #: The MQTT sessions the run created, one per drain; each is ended after its drain.
    mqtt_client_ids: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return max(self.bridge_msgs_per_s) / max(self.baseline_msgs_per_s)

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.bridge_msgs_per_s) / statistics.median(
            self.baseline_msgs_per_s
        )

    @property
    def cpu_bound_ratio(self) -> float:
        """Bridge/bare throughput where every process has a core of its own.

        The bridge is a pipeline (MQTT process -> decoder processes): its rate is set by the
        slower stage, so the ratio is the bare loop's CPU per message over the bridge's
        busiest stage's (medians). On a machine with fewer free cores than processes the
        wall-clock ratio is lower.
        """
        main = statistics.median(self.bridge_main_cpu_us_per_msg)
        decoders = statistics.median(self.bridge_decoder_cpu_us_per_msg) / max(self.decoders, 1)
        return statistics.median(self.baseline_cpu_us_per_msg) / max(main, decoders)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["best_baseline_msgs_per_s"] = max(self.baseline_msgs_per_s)
        out["best_bridge_msgs_per_s"] = max(self.bridge_msgs_per_s)
        out["ratio"] = round(self.ratio, 4)
        out["median_ratio"] = round(self.median_ratio, 4)
        out["median_baseline_cpu_us_per_msg"] = statistics.median(self.baseline_cpu_us_per_msg)
        out["median_bridge_cpu_us_per_msg"] = statistics.median(self.bridge_cpu_us_per_msg)
        out["cpu_bound_ratio"] = round(self.cpu_bound_ratio, 4)
        out["goal"] = GOAL
        out["goal_met"] = self.ratio >= GOAL
        return out


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _connect_props(receive_maximum: int) -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = receive_maximum
    return props


def _create_session(settings: Settings, client_id: str, topic_filter: str) -> None:
    """Open a persistent session with the subscription, then leave (the broker queues)."""
    import paho.mqtt.client as mqtt

    done = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
    client.on_subscribe = lambda *_: done.set()
    client.username_pw_set(*mqtt_credentials(settings, "bridge"))
    client.connect(
        settings.mqtt_host, settings.mqtt_port, clean_start=True, properties=_connect_props(1)
    )
    client.loop_start()
    if not done.wait(30):
        raise RuntimeError("the broker did not confirm the benchmark subscription")
    client.disconnect()
    client.loop_stop()


def _publish(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.username_pw_set(*mqtt_credentials(settings, "publisher"))
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def _drain_bare(
    settings: Settings, client_id: str, n: int, receive_maximum: int
) -> tuple[float, float]:
    """Seconds (and CPU seconds) a bare paho loop needs for n messages (auto-PUBACK)."""
    import paho.mqtt.client as mqtt

    state = {"count": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        if state["count"] == 0:
            state["first"] = time.perf_counter()
        state["count"] += 1
        if state["count"] == n:
            state["last"] = time.perf_counter()
            done.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    client.username_pw_set(*mqtt_credentials(settings, "bridge"))
    client.connect(
        settings.mqtt_host,
        settings.mqtt_port,
        clean_start=False,
        properties=_connect_props(receive_maximum),
    )
    cpu0 = time.process_time()
    client.loop_start()
    if not done.wait(600):
        raise RuntimeError(f"bare loop got {state['count']} of {n} messages")
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return state["last"] - state["first"], cpu


def _drain_bridge(
    settings: Settings, client_id: str, n: int, receive_maximum: int, prefix: str, decoders: int
) -> tuple[float, float, float]:
    """Seconds from the bridge's first message to acknowledging the n-th, and the CPU
    seconds of the bridge's own process and of its decoder processes."""
    from ingest.bridge import Bridge, BridgeConfig

    bridge = Bridge(
        settings,
        BridgeConfig(
            client_id=client_id,
            receive_maximum=receive_maximum,
            session_expiry_s=600,
            decoders=decoders,
        ),
        mqtt_prefix=prefix,
    )
    bridge.start(wait_subscribed_s=None)
    pids = bridge.decoder_pids
    cpu0, dec0 = time.process_time(), _cpu_seconds(pids)
    deadline = time.monotonic() + 600
    try:
        # Poll coarsely (a fast poll would steal the bridge thread's interpreter lock); the
        # bridge stamps its first read and its latest PUBACK itself.
        while bridge.stats.acked < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bridge acked {bridge.stats.acked} of {n} messages")
            time.sleep(0.05)
        cpu, dec = time.process_time() - cpu0, _cpu_seconds(pids) - dec0
        return bridge.stats.last_acked_at - bridge.stats.first_received_at, cpu, dec
    finally:
        bridge.stop()


def run_benchmark(
    settings: Settings, messages: int, repeat: int, receive_maximum: int, decoders: int
) -> IngestReport:
    """Alternate baseline and bridge drains; returns an :class:`IngestReport`."""
    from cityhealth.bench.ingest_samples import sample_messages
    from ingest.bridge import subscription_filter
    from ingest.bridge.retire import end_session
    from ingest.kafka_client import kafka_client_kwargs
    from ingest.kafka_topics import ensure_topics, topics_for
    from ingest.topic_reader import read_to_end

    tag = f"bench{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"topic_prefix": f"{tag}."})
    ensure_topics(settings)
    report = IngestReport(messages, receive_maximum, repeat, decoders)
    for round_ in range(repeat):
        for name in ("baseline", "bridge"):
            # A topic prefix per drain: sessions of earlier drains (still on the broker,
            # offline) must not queue copies of later backlogs.
            group = f"{tag}-{name}-{round_}"
            prefix = f"{group}/"
            samples = sample_messages(messages, now=time.time(), prefix=prefix)
            if name == "bridge":
                report.expected_readings += sum(samples.by_stream.values())
            client_id = f"{group}-c"
            report.mqtt_client_ids.append(client_id)
            run_settings = settings.model_copy(update={"mqtt_share_group": group})
            _create_session(run_settings, client_id, subscription_filter(group, prefix))
            _publish(run_settings, samples.messages)
            if name == "bridge":
                seconds, cpu, dec = _drain_bridge(
                    run_settings, client_id, messages, receive_maximum, prefix, decoders
                )
                report.bridge_main_cpu_us_per_msg.append(round(1e6 * cpu / messages, 2))
                report.bridge_decoder_cpu_us_per_msg.append(round(1e6 * dec / messages, 2))
                cpu += dec
                rates, cpus = report.bridge_msgs_per_s, report.bridge_cpu_us_per_msg
            else:
                seconds, cpu = _drain_bare(run_settings, client_id, messages, receive_maximum)
                rates, cpus = report.baseline_msgs_per_s, report.baseline_cpu_us_per_msg
            # The drained session would otherwise queue every later message on the broker.
            end_session(run_settings, client_id)
            rate = messages / seconds
            rates.append(round(rate, 1))
            cpus.append(round(1e6 * cpu / messages, 2))
            typer.echo(
                f"  round {round_ + 1} {name:8s} {rate:10.0f} msg/s {cpus[-1]:8.1f} CPU us/msg",
                err=True,
            )
    from ingest.batch import decode as decode_batch

    kafka = kafka_client_kwargs(settings)
    records = read_to_end(kafka, topics_for(settings).streams, timeout_s=120)
    report.bridge_readings_in_kafka = sum(
        len(decode_batch(r.value)["ts"]) for rs in records.values() for r in rs
    )
    return report


def register(bench_app: typer.Typer) -> None:
    """Attach ``cityhealth bench ingest``."""

    @bench_app.command("ingest")
    def ingest_command(
        messages: Annotated[
            int, typer.Option("--messages", min=100, help="Messages per timed drain.")
        ] = 20_000,
        repeat: Annotated[int, typer.Option("--repeat", min=1, help="Rounds (best).")] = 5,
        receive_maximum: Annotated[
            int, typer.Option("--receive-maximum", min=1, help="MQTT window of both.")
        ] = 10_000,
        decoders: Annotated[
            int, typer.Option("--decoders", min=0, help="Bridge decoder processes (0: inline).")
        ] = 1,
        json_file: Annotated[
            Path | None, typer.Option("--json", help="Also write the report as JSON here.")
        ] = None,
    ) -> None:
        """Bridge messages/s vs a bare paho subscribe loop on the same backlog."""
        import logging

        from cityhealth.settings import get_settings

        logging.getLogger("aiokafka").setLevel(logging.ERROR)
        report = run_benchmark(get_settings(), messages, repeat, receive_maximum, decoders)
        data = report.to_dict()
        typer.echo(
            f"bare paho loop : {data['best_baseline_msgs_per_s']:10.0f} msg/s (best of {repeat})"
        )
        typer.echo(
            f"ingest bridge  : {data['best_bridge_msgs_per_s']:10.0f} msg/s "
            f"= {100 * data['ratio']:.0f} % of the bare loop (goal >= {100 * GOAL:.0f} %); "
            f"medians: {100 * data['median_ratio']:.0f} %"
        )
        typer.echo(
            f"CPU per message (median): bare {data['median_baseline_cpu_us_per_msg']:.1f} us, "
            f"bridge {data['median_bridge_cpu_us_per_msg']:.1f} us (decoders included)"
        )
        typer.echo(
            f"bridge/bare with a core per process (CPU-bound stage): "
            f"{100 * data['cpu_bound_ratio']:.0f} %"
        )
        typer.echo(
            f"readings in Kafka: {report.bridge_readings_in_kafka} "
            f"(expected {report.expected_readings})"
        )
        if json_file is not None:
            json_file.write_text(json.dumps(data, indent=2) + "\n")
        if report.bridge_readings_in_kafka < report.expected_readings:
            raise typer.Exit(1)
