"""``cityhealth bench pipeline``: the whole pipeline in real time vs the naive approach.

Measured in one run on this machine (docs/BENCHMARKS.md has the figures and commands):

* **pipeline**: ``cityhealth up`` (bridge, worker and simulators as supervised
  processes, all services local) on the ``district`` scenario in real time: sustained
  readings/s, zero loss per channel (published == stored after the drain), p50/p99
  sensor-to-alert latency (goal p99 < 1 s);
* **naive baseline**: paho subscribe -> per-reading Python (JSON decode, contract check,
  pseudonym) -> one ``influxdb-client`` write per point, fed a backlog by the simulators
  (``--fast``) so it runs flat out; goal: pipeline readings/s >= 20x naive;
* **worker**: readings/s of one worker process per stream, with and without InfluxDB
  writes (``streams.throughput.measure``, the stream engineers' measurement);
* ``--all`` also runs ``bench ingest`` (bridge vs bare paho) and ``bench sink`` (sink vs
  raw ``/write``).

Every run uses its own Kafka topic prefix, MQTT share group and InfluxDB databases
(dropped afterwards), so it neither reads nor disturbs other data on the stack.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from cityhealth.credentials import influx_password
from cityhealth.settings import Settings
from ingest.mqtt_auth import mqtt_credentials

PIPELINE_P99_GOAL_S = 1.0
NAIVE_RATIO_GOAL = 20.0


def isolated(settings: Settings, tag: str) -> Settings:
    """``settings`` with this run's own topics, share group and databases."""
    return settings.model_copy(
        update={
            "topic_prefix": f"{tag}.",
            "mqtt_share_group": f"{tag}-ingest",
            "influx_db_sensitive": f"{tag}_sensitive",
            "influx_db_public": f"{tag}_public",
        }
    )


def drop_databases(settings: Settings) -> None:
    """Remove a benchmark's databases (their points are not worth the disk)."""
    from cityhealth.stack import influx_query

    for db in (settings.influx_db_sensitive, settings.influx_db_public):
        influx_query(settings, f'DROP DATABASE "{db}"')


# -- the pipeline --------------------------------------------------------------------------
def run_pipeline(
    settings: Settings,
    scenario: str,
    duration: float,
    run_dir: Path,
    live: bool,
    counts: dict[str, int | None] | None = None,
) -> dict[str, Any]:
    """One ``cityhealth up`` run; its summary plus sustained rates and the latency split."""
    from cityhealth.bench.pipeline_latency import latency_stages
    from cityhealth.pipeline.job import UpJob, UpOptions, bridge_client_id
    from ingest.bridge.retire import end_session
    from ingest.kafka_client import kafka_client_kwargs

    job = UpJob(
        settings,
        UpOptions(
            scenario=scenario,
            duration=duration,
            run_dir=run_dir,
            live=live,
            counts=counts or {},
            # A simulator or worker that falls behind real time leaves a backlog to drain.
            drain_timeout=max(300.0, 10 * duration),
        ),
    )
    try:
        summary = job.run()
    finally:
        # This run's share group is never used again: its bridge session, left on the
        # broker, would queue a copy of every later message (docs/INGEST.md).
        end_session(settings, bridge_client_id(settings))
    sim = json.loads((run_dir / "simulate.json").read_text())
    wall = float(sim["wall_s"]) or 1.0
    by_channel = summary["published_by_channel"]
    stored = {c: summary["stored"][summary["raw_channels"][c]] for c in by_channel}
    # Offered: what the simulators managed to publish per wall second. Processed: readings
    # stored per second from the first publication to the end of the drain, i.e. the
    # pipeline's sustained throughput (equal to the offered rate when it keeps up).
    busy = wall + float(summary["drain"]["waited_s"])
    try:  # read back from this run's topics; a failure must not lose the measurements
        stages: dict[str, Any] = latency_stages(
            kafka_client_kwargs(settings), settings.topic_prefix
        )
    except Exception as exc:
        stages = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "scenario": scenario,
        "devices": sim.get("devices"),
        "duration_s": duration,
        "wall_s": wall,
        "drain_s": summary["drain"]["waited_s"],
        "published": summary["published"],
        "stored": sum(stored.values()),
        "offered_per_s": round(summary["published"] / wall, 1),
        "readings_per_s": round(sum(stored.values()) / busy, 1),
        "simulator_max_lag_s": sim.get("max_lag_s"),
        # how late each tick's publication ended, and what the tick's generation and
        # publication took (simulators.timing): the simulator's share of the latency
        "simulator_tick_wall_s": sim.get("tick_wall_s"),
        "zero_loss": stored == by_channel and summary["drain"]["completed"],
        "missing_by_channel": summary["missing_by_channel"],
        "drain": summary["drain"],
        "alerts": summary["alerts"]["total"],
        "alert_latency_s": summary["alert_latency_s"],
        "p99_goal_met": (summary["alert_latency_s"]["p99"] or float("inf")) < PIPELINE_P99_GOAL_S,
        "alert_latency_stages_s": stages,
        "summary": str(run_dir / "summary.json"),
    }


# -- the naive approach --------------------------------------------------------------------
class NaiveConsumer:
    """paho subscriber that decodes, checks and writes each reading on its own.

    What a first implementation typically looks like: the MQTT callback does everything
    per message, and each point is one synchronous write of one ``influxdb_client.Point``.
    InfluxDB 2.x (``influx_api=v2``) gets ``WriteApi.write`` (synchronous); the local
    InfluxDB 1.6 has no ``/api/v2/write`` (added in 1.8), so there the point's own line
    protocol (``Point.to_line_protocol()``) is POSTed to ``/write``, one request per point:
    the same per-point cost structure.
    """

    def __init__(self, settings: Settings, database: str) -> None:
        import paho.mqtt.client as mqtt
        import requests

        from ingest.contract import decode
        from ingest.pseudonym import pseudonymizer_from_settings

        self.settings = settings
        self.decode = decode
        self.pseudonym = pseudonymizer_from_settings(settings)
        self.database = database
        self.session = requests.Session()
        self.write_api: Any = None
        self.influx: Any = None
        if settings.influx_api == "v2":
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            token = settings.influx_token.get_secret_value() if settings.influx_token else ""
            self.influx = InfluxDBClient(
                url=settings.influx_url, token=token, org=settings.influx_org
            )
            self.write_api = self.influx.write_api(write_options=SYNCHRONOUS)
        self.processed = 0
        self.invalid = 0
        self.errors = 0
        self.first_at: float | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"naive-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.username_pw_set(*mqtt_credentials(settings, "bridge"))

    def start(self) -> None:
        self.client.connect(self.settings.mqtt_host, self.settings.mqtt_port)
        self.client.subscribe("city/#", qos=1)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.session.close()
        if self.influx is not None:
            self.influx.close()

    def _write(self, point: Any) -> None:
        if self.write_api is not None:
            self.write_api.write(bucket=self.database, record=point)
            return
        s = self.settings
        resp = self.session.post(
            f"{s.influx_url}/write",
            params={
                "db": self.database,
                "precision": "ns",
                "u": s.influx_username,
                "p": influx_password(s).get_secret_value(),
            },
            data=point.to_line_protocol().encode(),
            timeout=10,
        )
        if resp.status_code != 204:
            self.errors += 1

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        from influxdb_client import Point

        try:
            decoded = self.decode(message.topic, message.payload)
        except Exception:  # a dead letter in the real pipeline; skipped here
            self.invalid += 1
            return
        parts = message.topic.split("/")
        family, device = parts[2], parts[3]
        fields = json.loads(message.payload)
        point = (
            Point(parts[4]).tag("device", self.pseudonym(family, device)).tag("district", parts[1])
        )
        if isinstance(fields, dict):
            for key, value in fields.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    point = point.field(key, float(value))
                elif isinstance(value, list):
                    point = point.field(f"{key}_n", len(value))
        else:
            point = point.field("records", len(fields))
        ts = getattr(decoded, "ts", None) or time.time()
        point = point.time(int(float(ts) * 1e9))
        try:
            self._write(point)
        except Exception:  # counted; the naive loop keeps going
            self.errors += 1
            return
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.processed += 1


def run_naive(settings: Settings, seconds: float, log_dir: Path) -> dict[str, Any]:
    """The naive consumer flat out on a simulator backlog for about ``seconds``."""
    from cityhealth.pipeline.supervisor import CLI
    from cityhealth.stack import create_databases

    database = settings.influx_db_sensitive
    create_databases(settings, database)
    consumer = NaiveConsumer(settings, database)
    consumer.start()
    time.sleep(1.0)
    env = {**_base_env(), **settings.to_env()}
    log = (log_dir / "naive-simulate.log").open("wb")
    sim = subprocess.Popen(
        [*CLI, "simulate", "--scenario", "smoke", "--fast", "--duration", "600", "--quiet"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # Measure from the first processed message, after a short warm-up.
    deadline = time.monotonic() + seconds + 30.0
    while consumer.first_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)
    n0, t0 = consumer.processed, time.perf_counter()
    time.sleep(seconds)
    n1, t1 = consumer.processed, time.perf_counter()
    sim.terminate()
    sim.wait(30)
    log.close()
    consumer.stop()
    return {
        "readings_per_s": round((n1 - n0) / (t1 - t0), 1),
        "measured_s": round(t1 - t0, 2),
        "processed": consumer.processed,
        "invalid": consumer.invalid,
        "write_errors": consumer.errors,
        "writer": "influxdb-client WriteApi" if settings.influx_api == "v2" else "Point + /write",
    }


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("CITYHEALTH_")}


# -- other benches (--all) -----------------------------------------------------------------
def run_other_bench(name: str, out_dir: Path, extra: list[str]) -> dict[str, Any]:
    """``cityhealth bench <name> --json FILE``; its report, or the failure."""
    from cityhealth.pipeline.supervisor import CLI

    path = out_dir / f"bench-{name}.json"
    proc = subprocess.run(
        [*CLI, "bench", name, "--json", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if path.exists():
        report: dict[str, Any] = json.loads(path.read_text())
        report["exit_code"] = proc.returncode
        return report
    return {"exit_code": proc.returncode, "error": proc.stderr[-2000:]}


def worker_rates(settings: Settings, readings: int) -> list[dict[str, Any]]:
    """Readings/s of one worker process (``streams.throughput.measure``), per stream, with
    and without InfluxDB writes (goal: 500k readings/s per process)."""
    from dataclasses import asdict

    from streams.throughput import measure

    out = []
    for stream in ("vitals", "motion"):
        for writes in (False, True):
            result = measure(settings, stream, readings=readings, writes=writes)
            out.append({k: v for k, v in asdict(result).items()})
    return out


def stage_lines(p: dict[str, Any]) -> list[str]:
    """The latency split (``alert_latency_stages_s``) and the simulator's lateness."""
    from cityhealth.bench.pipeline_latency import STAGES

    stages = p.get("alert_latency_stages_s") or {}
    if "error" in stages:
        return [f"  latency stages: not measured ({stages['error']})"]
    parts = [
        f"{name} p50 {stages[name]['p50']} / p99 {stages[name]['p99']} s"
        for name in STAGES
        if name in stages
    ]
    late = (p.get("simulator_tick_wall_s") or {}).get("late_s") or {}
    return [
        "  latency stages: " + ", ".join(parts),
        f"  simulator publication late by p50 {late.get('p50')} / p99 {late.get('p99')} / "
        f"max {late.get('max')} s",
    ]


def report_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable lines of the report."""
    p, n = report["pipeline"], report["naive"]
    lat = p["alert_latency_s"]
    lines = [
        f"pipeline ({p['scenario']} {p['devices']}, {p['duration_s']:.0f} s of traffic in "
        f"{p['wall_s']:.0f} s, drain {p['drain_s']:.0f} s): offered {p['offered_per_s']:,.0f} "
        f"msg/s (simulator max lag {p['simulator_max_lag_s']} s), stored "
        f"{p['readings_per_s']:,.0f} readings/s sustained",
        f"  zero loss: {p['zero_loss']} (published {p['published']:,}, stored "
        f"{p['stored']:,}; missing {p['missing_by_channel'] or 'none'}; drain "
        f"{'complete' if p['drain']['completed'] else p['drain']['pending']})",
        f"  sensor-to-alert latency over {lat['count']} alerts: p50 {lat['p50']} s, "
        f"p99 {lat['p99']} s (goal p99 < {PIPELINE_P99_GOAL_S} s: "
        f"{'met' if p['p99_goal_met'] else 'NOT met'})",
        *stage_lines(p),
        f"naive paho -> per-reading Python -> one write per point: "
        f"{n['readings_per_s']:,.0f} readings/s flat out",
        f"  pipeline / naive = {report['ratio_vs_naive']:.1f}x (goal >= {NAIVE_RATIO_GOAL:.0f}x)",
    ]
    for w in report.get("worker") or []:
        unit = "accelerometer samples" if w["stream"] == "motion" else "readings"
        lines.append(
            f"worker, one process, {w['stream']} ({'with' if w['writes'] else 'without'} "
            f"InfluxDB writes): {w['readings_per_s']:,.0f} {unit}/s (goal >= 500,000)"
        )
    for name in ("ingest", "sink"):
        if name in report:
            lines.append(f"bench {name}: {json.dumps(report[name])[:400]}")
    return lines


def register(bench_app: typer.Typer) -> None:
    """Attach ``cityhealth bench pipeline``."""

    @bench_app.command("pipeline")
    def pipeline_command(
        scenario: Annotated[str, typer.Option(help="Scenario run in real time.")] = "district",
        duration: Annotated[float, typer.Option(help="Seconds of real-time traffic.")] = 120.0,
        wearables: Annotated[int | None, typer.Option(help="Override the wearable count.")] = None,
        eldercare: Annotated[
            int | None, typer.Option(help="Override the elder-care count.")
        ] = None,
        airq: Annotated[int | None, typer.Option(help="Override the station count.")] = None,
        naive_seconds: Annotated[
            float, typer.Option(help="Seconds the naive consumer is timed.")
        ] = 30.0,
        worker_readings: Annotated[
            int, typer.Option(help="Readings per worker measurement (0: skip it).")
        ] = 400_000,
        all_benches: Annotated[
            bool, typer.Option("--all", help="Also run bench ingest and bench sink.")
        ] = False,
        live: Annotated[bool, typer.Option(help="Live display during the pipeline run.")] = False,
        keep_data: Annotated[bool, typer.Option(help="Keep the run's InfluxDB databases.")] = False,
        json_file: Annotated[
            Path | None, typer.Option("--json", help="Also write the report as JSON here.")
        ] = None,
    ) -> None:
        """District scenario in real time (rate, loss, latency) vs the naive approach."""
        import logging

        from cityhealth.settings import get_settings

        logging.getLogger("aiokafka").setLevel(logging.ERROR)
        base = get_settings()
        tag = "bench" + uuid.uuid4().hex[:8]
        work = Path(tempfile.mkdtemp(prefix="cityhealth-bench-pipeline-"))
        pipe_settings = isolated(base, tag + "p")
        naive_settings = isolated(base, tag + "n")
        try:
            counts = {"wearables": wearables, "eldercare": eldercare, "airq": airq}
            pipeline = run_pipeline(pipe_settings, scenario, duration, work / "run", live, counts)
            naive = run_naive(naive_settings, naive_seconds, work)
        finally:
            if not keep_data:
                for s in (pipe_settings, naive_settings):
                    try:
                        drop_databases(s)
                    except Exception as exc:  # report, but keep the measurements
                        typer.echo(f"could not drop databases: {exc}", err=True)
        report: dict[str, Any] = {
            "pipeline": pipeline,
            "naive": naive,
            "ratio_vs_naive": round(
                pipeline["readings_per_s"] / max(naive["readings_per_s"], 1e-9), 2
            ),
            "worker": worker_rates(base, worker_readings) if worker_readings else [],
            "work_dir": str(work),
        }
        if all_benches:
            report["ingest"] = run_other_bench("ingest", work, [])
            report["sink"] = run_other_bench("sink", work, [])
        for line in report_lines(report):
            typer.echo(line)
        if json_file is not None:
            json_file.write_text(json.dumps(report, indent=2) + "\n")
        if not pipeline["zero_loss"]:
            raise typer.Exit(1)
