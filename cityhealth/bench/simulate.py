"""``cityhealth bench simulate``: simulator messages/s vs a bare paho publish loop, same run.

Both contenders publish the same messages (same scenario, seed and simulated start, so the
simulator is deterministic and the payload bytes are identical) with QoS 1 to the broker
from settings (``CITYHEALTH_MQTT_HOST`` / ``_PORT``; start one with ``cityhealth stack up``):

* **baseline**: the messages are generated *before* the clock starts; a bare paho-mqtt 2.x
  MQTT v5 client (network loop in its thread, no paho in-flight limit) publishes the list in
  a plain loop and the clock stops at the last PUBACK;
* **simulator**: the full ``cityhealth simulate --fast`` path -- signal models, events,
  encoding, the lean pipelined MQTT 5.0 publisher (``simulators.mqtt_client``) -- from the
  first tick to the last PUBACK.

For context (not part of the ratio) each repetition also times the lean publisher alone on
the pre-generated list in tick-sized batches, and, with ``--mosquitto-pub``, the C client
``mosquitto_pub -l`` publishing the same payloads (one per line, on one topic: it takes a
single ``-t``) with QoS 1. Runs alternate and the best of ``--repeat`` is reported, with the
generation-only rate (no broker). Goal: simulator >= 80 % of the baseline.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

GOAL = 0.8


@dataclass
class SimulateReport:
    """Result of one benchmark run (messages/s per repetition)."""

    scenario: str
    duration_s: float
    messages: int
    repeat: int
    generate_msgs_per_s: float = 0.0
    baseline_msgs_per_s: list[float] = field(default_factory=list)
    simulator_msgs_per_s: list[float] = field(default_factory=list)
    baseline_msgs_per_cpu_s: list[float] = field(default_factory=list)
    simulator_msgs_per_cpu_s: list[float] = field(default_factory=list)
    lean_publisher_msgs_per_s: list[float] = field(default_factory=list)
    lean_publisher_msgs_per_cpu_s: list[float] = field(default_factory=list)
    mosquitto_pub_msgs_per_s: list[float] = field(default_factory=list)
    mosquitto_pub_msgs_per_cpu_s: list[float] = field(default_factory=list)
    #: min(window, broker Receive Maximum): PUBLISHes the lean publisher keeps in flight.
    in_flight_limit: int = 0

    @property
    def ratio(self) -> float:
        return max(self.simulator_msgs_per_s) / max(self.baseline_msgs_per_s)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["best_baseline_msgs_per_s"] = max(self.baseline_msgs_per_s)
        out["best_simulator_msgs_per_s"] = max(self.simulator_msgs_per_s)
        out["ratio"] = round(self.ratio, 4)
        out["cpu_ratio"] = round(
            max(self.simulator_msgs_per_cpu_s) / max(self.baseline_msgs_per_cpu_s), 4
        )
        out["goal"] = GOAL
        out["goal_met"] = self.ratio >= GOAL
        return out


def _generate(scenario: str, seed: int, duration: float, start: float) -> tuple[list, float]:
    """All messages of a run, and the wall time it took to generate them."""
    from simulators.plugins import build
    from simulators.publisher import NullPublisher
    from simulators.runner import Runner
    from simulators.scenario import load_scenario

    sc = load_scenario(scenario)
    sims = build(sc, seed)
    pub = NullPublisher(keep=True)
    runner = Runner(sims, pub, tick_s=sc.tick_s, duration=duration, start=start, speed=None)
    t = time.perf_counter()
    runner.run()
    elapsed = time.perf_counter() - t
    assert pub.kept is not None
    return pub.kept, elapsed


def _bare_paho(
    host: str, port: int, auth: tuple[str, str], messages: list[tuple[str, bytes]]
) -> tuple[float, float]:
    """Messages per wall second and per CPU second (all threads of this process) of a plain
    paho QoS 1 publish loop, first publish to last PUBACK."""
    import threading

    import paho.mqtt.client as mqtt

    done = threading.Event()
    acked = 0
    n = len(messages)

    def on_publish(client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == n:
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.username_pw_set(*auth)
    c.connect(host, port)
    c.loop_start()
    try:
        t, cpu = time.perf_counter(), time.process_time()
        for sent, (topic, payload) in enumerate(messages):
            # paho's message ids wrap at 65,535 and, with no in-flight limit, would collide
            # with ids still awaiting their PUBACK (lost acks): stay well below that
            while sent - acked >= 30_000:
                time.sleep(0.0005)
            c.publish(topic, payload, qos=1)
        if not done.wait(600):
            raise RuntimeError(f"baseline: only {acked} of {n} PUBACKs")
        return n / (time.perf_counter() - t), n / (time.process_time() - cpu)
    finally:
        c.disconnect()
        c.loop_stop()


def _lean_publisher(
    host: str, port: int, auth: tuple[str, str], messages: list[tuple[str, bytes]], tick: int
) -> tuple[float, float, int]:
    """The lean publisher alone on the pre-generated list, ``tick`` messages per call:
    messages per wall and per CPU second, and its in-flight limit."""
    from simulators.publisher import MqttPublisher

    pub = MqttPublisher(host, port, username=auth[0], password=auth[1])
    try:
        n = len(messages)
        t, cpu = time.perf_counter(), time.process_time()
        for k in range(0, n, tick):
            pub.publish_many(messages[k : k + tick])
        if not pub.flush(600):
            raise RuntimeError(f"lean publisher: {pub.outstanding} messages unacknowledged")
        return n / (time.perf_counter() - t), n / (time.process_time() - cpu), pub.in_flight_limit
    finally:
        pub.close()


def _mosquitto_pub(
    host: str, port: int, auth: tuple[str, str], messages: list[tuple[str, bytes]]
) -> tuple[float, float]:
    """``mosquitto_pub -l`` (MQTT v5, QoS 1) with the same payloads, one per stdin line, on one
    topic; messages per wall second and per CPU second of the child process."""
    import resource
    import shutil
    import subprocess

    exe = shutil.which("mosquitto_pub")
    if exe is None:
        raise RuntimeError("mosquitto_pub not found (apt-get install mosquitto-clients)")
    lines = [p for _, p in messages if b"\n" not in p and p]
    data = b"\n".join(lines) + b"\n"
    argv = [exe, "-h", host, "-p", str(port), "-u", auth[0], "-P", auth[1]]
    argv += ["-V", "5", "-q", "1", "-l", "-t", "city/bench/pub"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(argv, input=data, capture_output=True, timeout=600)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"mosquitto_pub failed: {res.stderr.decode(errors='replace')[:200]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return len(lines) / wall, len(lines) / max(cpu, 1e-9)


def _simulator(
    host: str,
    port: int,
    auth: tuple[str, str],
    scenario: str,
    seed: int,
    duration: float,
    start: float,
    expected: int,
) -> tuple[float, float]:
    """Messages per wall and per CPU second of the full simulator path (models, encoding,
    windowed publisher)."""
    from simulators.plugins import build
    from simulators.publisher import MqttPublisher
    from simulators.runner import Runner
    from simulators.scenario import load_scenario

    sc = load_scenario(scenario)
    sims = build(sc, seed)  # clip banks are rendered here, before the clock starts
    pub = MqttPublisher(host, port, username=auth[0], password=auth[1])
    try:
        runner = Runner(sims, pub, tick_s=sc.tick_s, duration=duration, start=start, speed=None)
        t, cpu = time.perf_counter(), time.process_time()
        runner.run()
        if not pub.flush(600):
            raise RuntimeError(f"simulator: {pub.outstanding} messages unacknowledged")
        elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    finally:
        pub.close()
    if runner.stats.published != expected:
        raise RuntimeError(f"simulator published {runner.stats.published}, expected {expected}")
    return expected / elapsed, expected / cpu


def register(bench_app: typer.Typer) -> None:
    """Attach ``bench simulate``."""
    bench_app.command("simulate")(bench_simulate)


def bench_simulate(
    scenario: Annotated[str, typer.Option(help="Scenario to publish.")] = "district",
    duration: Annotated[float, typer.Option(help="Simulated seconds per run.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    repeat: Annotated[int, typer.Option(help="Alternating runs of each contender.")] = 2,
    mqtt_host: Annotated[str | None, typer.Option(help="Broker host (default: settings).")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="Broker port (default: settings).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report.")] = None,
    mosquitto_pub: Annotated[
        bool, typer.Option(help="Also time `mosquitto_pub -l` with the same payloads.")
    ] = False,
) -> None:
    """Simulator publish rate vs a bare paho-mqtt loop with the same payloads (goal >= 80 %)."""
    from rich.console import Console

    from cityhealth.settings import get_settings
    from ingest.mqtt_auth import mqtt_credentials
    from simulators.runner import simulated_start

    console = Console()
    settings = get_settings()
    host, port = mqtt_host or settings.mqtt_host, mqtt_port or settings.mqtt_port
    auth = mqtt_credentials(settings, "publisher")
    start = simulated_start(duration, None)
    messages, gen_s = _generate(scenario, seed, duration, start)
    report = SimulateReport(scenario, duration, len(messages), repeat, len(messages) / gen_s)
    console.print(
        f"{len(messages):,} messages ({scenario}, {duration:g} simulated s); "
        f"generation alone {report.generate_msgs_per_s:,.0f} msg/s"
    )
    try:
        for i in range(repeat):
            wall, cpu = _bare_paho(host, port, auth, messages)
            report.baseline_msgs_per_s.append(round(wall, 1))
            report.baseline_msgs_per_cpu_s.append(round(cpu, 1))
            wall, cpu = _simulator(host, port, auth, scenario, seed, duration, start, len(messages))
            report.simulator_msgs_per_s.append(round(wall, 1))
            report.simulator_msgs_per_cpu_s.append(round(cpu, 1))
            tick = max(1, round(len(messages) * 0.1 / duration))  # messages per 0.1-s tick
            wall, cpu, report.in_flight_limit = _lean_publisher(host, port, auth, messages, tick)
            report.lean_publisher_msgs_per_s.append(round(wall, 1))
            report.lean_publisher_msgs_per_cpu_s.append(round(cpu, 1))
            extra = ""
            if mosquitto_pub:
                wall, cpu = _mosquitto_pub(host, port, auth, messages)
                report.mosquitto_pub_msgs_per_s.append(round(wall, 1))
                report.mosquitto_pub_msgs_per_cpu_s.append(round(cpu, 1))
                extra = f", mosquitto_pub -l {wall:,.0f} msg/s"
            console.print(
                f"run {i + 1}: baseline (bare paho) {report.baseline_msgs_per_s[-1]:,.0f} msg/s, "
                f"simulator {report.simulator_msgs_per_s[-1]:,.0f} msg/s, lean publisher "
                f"alone {report.lean_publisher_msgs_per_s[-1]:,.0f} msg/s{extra}"
            )
    except (OSError, RuntimeError) as exc:
        console.print(
            f"[red]error:[/red] broker {host}:{port}: {exc} "
            "(is Mosquitto running? `cityhealth stack up`)"
        )
        raise typer.Exit(3) from None
    out = report.to_dict()
    console.print(
        f"best: baseline {out['best_baseline_msgs_per_s']:,.0f} msg/s, simulator "
        f"{out['best_simulator_msgs_per_s']:,.0f} msg/s, ratio {out['ratio']:.2f} "
        f"(goal >= {GOAL:.0%}: {'met' if out['goal_met'] else 'NOT met'}); per CPU second: "
        f"baseline {max(report.baseline_msgs_per_cpu_s):,.0f}, simulator "
        f"{max(report.simulator_msgs_per_cpu_s):,.0f}, ratio {out['cpu_ratio']:.2f}; "
        f"in-flight limit {report.in_flight_limit} (broker Receive Maximum)"
    )
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=2))
