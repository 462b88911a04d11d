"""``cityhealth up``: the whole pipeline on one machine, supervised, drained and counted.

Order of a run
--------------
1. the local stack (``StackManager.up``: reused when healthy), Kafka topics, databases;
2. the Kafka watch (alerts and dead letters from their current end; worker lag);
3. the bridge (waits until its shared subscription exists, so nothing published is
   dropped by the broker), the worker, then the simulators;
4. until ``--duration`` elapsed (the simulators stop by themselves) or Ctrl-C (they get
   SIGINT): the live display, supervision (crashed parts restart) and ``--chaos`` faults;
5. the drain: the bridge has received every message the simulators had acknowledged by
   the broker, has nothing in flight, and the worker's committed offsets reached the end
   of every stream topic, bounded by ``--drain-timeout`` (reported when hit);
6. stop bridge and worker, count what InfluxDB stored, match truth to alerts, write the
   summary (:mod:`cityhealth.pipeline.summary`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from cityhealth.pipeline.channels import RAW_MEASUREMENTS, database_name, raw_channels
from cityhealth.pipeline.chaos import ChaosEvent, ChaosRecord, run_event
from cityhealth.pipeline.display import LiveView, RateMeter, render
from cityhealth.pipeline.kafka_watch import KafkaWatch
from cityhealth.pipeline.summary import build_summary
from cityhealth.pipeline.supervisor import CLI, ManagedProcess, Supervisor, SupervisorError
from cityhealth.pipeline.truth import Tolerance
from cityhealth.settings import Settings
from ingest.bridge.retire import end_session
from ingest.kafka_client import kafka_client_kwargs
from streams.config import WorkerConfig, app_id

BRIDGE, WORKER, SIMULATE = "bridge", "worker", "simulate"


class UpError(RuntimeError):
    """The run could not start (stack, topics, a part that never became ready)."""


@dataclass
class UpOptions:
    """Options of ``cityhealth up`` (see its ``--help``)."""

    scenario: str = "smoke"
    duration: float | None = None
    summary_json: Path | None = None
    seed: int = 0
    malformed_rate: float = 0.0
    counts: dict[str, int | None] = field(default_factory=dict)
    speed: float = 1.0
    drain_timeout: float = 120.0
    chaos: list[ChaosEvent] = field(default_factory=list)
    start_stack: bool = True
    worker: bool = True
    worker_group: str | None = None
    run_dir: Path | None = None
    live: bool = True
    tolerance: Tolerance = field(default_factory=Tolerance)
    ready_timeout: float = 180.0
    end_session: bool = False


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file written atomically by another process (None while absent or partial)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def bridge_client_id(settings: Settings) -> str:
    """MQTT client id of the bridge that ``cityhealth up`` runs: its persistent session
    is what a restarted run resumes, and what a throw-away run must end
    (:func:`ingest.bridge.retire.end_session`)."""
    return f"{settings.topic_prefix}cityhealth-up-bridge"


#: Environment prefix of the stream worker's own parameters (docs/CONFIGURATION.md).
WORKER_ENV_PREFIX = str(WorkerConfig.model_config.get("env_prefix", "CITYHEALTH_WORKER_"))


class UpJob:
    """One ``cityhealth up`` run (see the module docstring)."""

    def __init__(
        self, settings: Settings, options: UpOptions, console: Console | None = None
    ) -> None:
        self.settings = settings
        self.opts = options
        self.console = console or Console(stderr=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = options.run_dir or Path(settings.data_dir) / "runs" / stamp
        self.logs = self.run_dir / "logs"
        self.sup = Supervisor()
        self.events: list[str] = []
        self.chaos_records: list[ChaosRecord] = []
        self._chaos_threads: list[threading.Thread] = []
        self._interrupts = 0
        self._t0 = 0.0
        self.watch: KafkaWatch | None = None
        self.drain: dict[str, Any] = {}
        self.bridge_session = "kept"  # "ended" after --end-session and a completed drain
        self.rates = RateMeter()
        self._stored_live: dict[str, int] = {}
        self._stored_at = 0.0

    # -- helpers --------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        """The parts' environment: this run's settings as ``CITYHEALTH_*`` (ambient ones
        would contradict them), plus the ambient worker parameters ``CITYHEALTH_WORKER_*``,
        which are not settings (``streams.config.WorkerConfig``) and would otherwise be
        silently dropped."""
        import os

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CITYHEALTH_") or k.startswith(WORKER_ENV_PREFIX)
        }
        env.update(self.settings.to_env())
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _bridge_stats_path(self, n: int) -> Path:
        return self.run_dir / f"bridge-{n}.json"

    def bridge_totals(self) -> dict[str, Any]:
        """Counters summed over every bridge incarnation, gauges of the current one."""
        part = self.sup.parts.get(BRIDGE)
        totals: dict[str, Any] = {"received": 0, "valid": 0, "readings": 0, "dead_lettered": 0}
        if part is None:
            return totals
        for n in range(part.incarnation + 1):
            stats = read_json(self._bridge_stats_path(n)) or {}
            for key in ("received", "valid", "readings", "dead_lettered", "acked"):
                totals[key] = totals.get(key, 0) + int(stats.get(key, 0))
            if n == part.incarnation:
                totals["in_flight"] = int(stats.get("in_flight", 0))
                totals["lag_s"] = float(stats.get("lag_s", 0.0))
                totals["subscribed"] = bool(stats.get("subscribed", False))
                totals["kafka_ready"] = bool(stats.get("kafka_ready", False))
        return totals

    def _note(self, message: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {message}")

    # -- set-up ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Stack, topics, databases, Kafka watch."""
        from ingest.kafka_topics import ensure_topics, topics_for
        from streams.sink import make_sink

        if self.opts.start_stack:
            from cityhealth.stack import StackError, StackManager

            try:
                for result in StackManager(self.settings).up():
                    self._note(f"stack {result.service}: {result.action}")
            except StackError as exc:
                raise UpError(f"local stack: {exc}") from exc
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ensure_topics(self.settings)
        with make_sink(self.settings) as sink:
            sink.ensure_databases()
        topics = topics_for(self.settings)
        self.watch = KafkaWatch(
            kafka_client_kwargs(self.settings),
            topics.alerts,
            topics.deadletter,
            topics.streams,
            self.opts.worker_group or app_id(self.settings),
        )
        self.watch.start()

    def _bridge_argv(self, n: int) -> list[str]:
        return [
            *CLI,
            "ingest",
            "--client-id",
            bridge_client_id(self.settings),
            "--stats-json",
            str(self._bridge_stats_path(n)),
            "--stats-interval",
            "0.5",
            "--no-create-topics",
        ]

    def _worker_argv(self, n: int) -> list[str]:
        return [*CLI, "worker"]

    def _simulate_argv(self, n: int) -> list[str]:
        o = self.opts
        # Without --duration the simulators run until Ctrl-C (SIGINT); a year is "forever".
        duration = o.duration if o.duration is not None else 365 * 86_400.0
        argv = [
            *CLI,
            "simulate",
            "--scenario",
            o.scenario,
            "--duration",
            f"{duration:g}",
            "--speed",
            f"{o.speed:g}",
            "--seed",
            str(o.seed),
            "--truth",
            str(self.run_dir / "truth.jsonl"),
            "--summary-json",
            str(self.run_dir / "simulate.json"),
            "--malformed-rate",
            f"{o.malformed_rate:g}",
            "--quiet",
        ]
        for family, count in o.counts.items():
            if count is not None:
                argv += [f"--{family}", str(count)]
        return argv

    def _wait(self, what: str, ready: Callable[[], bool], part: str) -> None:
        deadline = time.monotonic() + self.opts.ready_timeout
        while not ready():
            proc = self.sup[part]
            code = proc.poll()
            if code is not None:
                # escaped: ``cityhealth up`` prints the error as rich markup, and log
                # lines hold brackets ("[INFO]", "[/path]") rich would parse as tags
                raise UpError(
                    f"{part} exited with {code} before {what}; see {proc.log_path}, "
                    f"which ends:\n{escape(proc.log_tail())}"
                )
            if time.monotonic() > deadline:
                raise UpError(f"{part}: not {what} after {self.opts.ready_timeout:.0f} s")
            time.sleep(0.2)

    def start_parts(self) -> None:
        """Bridge, worker, then simulators; each waits until the previous one is ready."""
        env = self._env()
        bridge = self.sup.add(
            ManagedProcess(BRIDGE, self._bridge_argv, env, self.logs / "bridge.log")
        )
        bridge.start()
        self._wait("subscribed", lambda: bool(self.bridge_totals().get("subscribed")), BRIDGE)
        if self.opts.worker:
            worker = self.sup.add(
                ManagedProcess(WORKER, self._worker_argv, env, self.logs / "worker.log")
            )
            worker.start()
            assert self.watch is not None
            watch = self.watch
            self._wait(
                "in a stable consumer group",
                lambda: (
                    watch.refresh_lag() is not None and watch.snapshot().group_state == "Stable"
                ),
                WORKER,
            )
        sim = self.sup.add(
            ManagedProcess(
                SIMULATE, self._simulate_argv, env, self.logs / "simulate.log", keep_alive=False
            )
        )
        sim.start()
        self._t0 = time.monotonic()
        for event in self.opts.chaos:
            thread = threading.Thread(target=self._chaos, args=(event,), daemon=True)
            self._chaos_threads.append(thread)
            thread.start()

    # -- chaos ----------------------------------------------------------------------------
    def _chaos(self, event: ChaosEvent) -> None:
        delay = self._t0 + event.at_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if self.sup[SIMULATE].poll() is not None:
            self.chaos_records.append(ChaosRecord(event.action, event.at_s, None, "run ended"))
            return
        self._note(f"chaos: {event.action}")
        record = run_event(event, self._chaos_handlers())
        self.chaos_records.append(record)
        self._note(f"chaos: {event.action} done" + (f" ({record.error})" if record.error else ""))

    def _chaos_handlers(self) -> dict[str, Callable[[ChaosEvent], None]]:
        def kill_restart(name: str) -> Callable[[ChaosEvent], None]:
            def run(event: ChaosEvent) -> None:
                part = self.sup[name]
                part.kill()
                time.sleep(event.pause_s)
                part.forced_restarts += 1
                part.start()

            return run

        def restart_bridge(event: ChaosEvent) -> None:
            part = self.sup[BRIDGE]
            part.stop(grace_s=30.0)
            time.sleep(event.pause_s)
            part.forced_restarts += 1
            part.start()

        def restart_influx(event: ChaosEvent) -> None:
            from cityhealth.stack import StackManager

            manager = StackManager(self.settings)
            manager.stop_service("influx")
            time.sleep(event.pause_s)
            manager.start_service("influx")

        return {
            "kill-worker": kill_restart(WORKER),
            "kill-bridge": kill_restart(BRIDGE),
            "restart-bridge": restart_bridge,
            "restart-influx": restart_influx,
        }

    # -- display --------------------------------------------------------------------------
    def view(self, phase: str) -> LiveView:
        assert self.watch is not None
        state = self.watch.snapshot()
        bridge = self.bridge_totals()
        now = time.monotonic()
        if now - self._stored_at > 5.0:
            self._stored_at = now
            # InfluxDB down (chaos) or busy: keep the last figure.
            with contextlib.suppress(Exception):
                self._stored_live = self.count_stored(since=None)
        rates = {
            k: self.rates.rate(k, float(bridge.get(k, 0)), now)
            for k in ("received", "valid", "readings")
        }
        rates["stored"] = self.rates.rate("stored", float(sum(self._stored_live.values())), now)
        processes = []
        for name, part in self.sup.parts.items():
            code = part.poll()
            status = "running" if code is None else f"exited {code}"
            processes.append((name, f"{status} (pid {part.pid}, #{part.incarnation})"))
        return LiveView(
            phase=phase,
            elapsed_s=now - self._t0 if self._t0 else 0.0,
            duration_s=self.opts.duration,
            processes=processes,
            bridge=bridge,
            rates=rates,
            stored=self._stored_live,
            lag=state.lag,
            group_state=state.group_state,
            alerts_by_type=dict(state.alert_types),
            dead_letters=state.dead_letters,
            dead_letter_reasons=dict(state.dead_letter_reasons),
            events=self.events,
        )

    # -- counting -------------------------------------------------------------------------
    def count_stored(self, since: tuple[float, float] | None) -> dict[str, int]:
        """Points per raw measurement (``<database>/<measurement>``), optionally in a window."""
        from streams.sink import make_sink, quote_ident

        where = ""
        if since is not None:
            lo, hi = since
            where = f" WHERE time >= {int(lo * 1e9)} AND time <= {int(hi * 1e9)}"
        out: dict[str, int] = {}
        with make_sink(self.settings) as sink:
            for raw in RAW_MEASUREMENTS.values():
                db = database_name(self.settings, raw.database)
                series = sink.query(
                    db,
                    f"SELECT count({quote_ident(raw.count_field)}) "
                    f"FROM {quote_ident(raw.measurement)}{where}",
                )
                out[f"{db}/{raw.measurement}"] = int(series[0]["values"][0][1]) if series else 0
        return out

    # -- run ------------------------------------------------------------------------------
    def _on_sigint(self, signum: int, frame: object) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self._note("Ctrl-C: stopping the simulators, then draining (Ctrl-C again: no drain)")
            sim = self.sup.parts.get(SIMULATE)
            if sim is not None:
                sim.send(signal.SIGINT)
        else:
            self._note("second Ctrl-C: skipping the drain")

    def run(self) -> dict[str, Any]:
        """Run the job; returns the summary (also written to ``--summary-json``)."""
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self._on_sigint)
        live = None
        try:
            self.prepare()
            self.start_parts()
            if self.opts.live:
                live = Live(
                    render(self.view("starting")),
                    console=self.console,
                    refresh_per_second=2,
                    transient=False,
                )
                live.start()
            self._loop(live, "running", self._simulators_done)
            for thread in self._chaos_threads:
                thread.join()
            self._drain(live)
            if live is not None:
                live.update(render(self.view("stopping")))
        finally:
            if live is not None:
                live.stop()
            self.sup.stop_all([SIMULATE, BRIDGE, WORKER])
            for s, handler in previous.items():
                signal.signal(s, handler)
        self._retire_bridge_session()
        summary = self.finish()
        return summary

    def _retire_bridge_session(self) -> None:
        """With ``--end-session``, discard the bridge's MQTT session once the drain
        completed: every message of the run is stored, and a throw-away session left on
        the broker would queue a copy of every later message (ingest.bridge.retire)."""
        self.bridge_session = "kept"
        if not (self.opts.end_session and self.drain.get("completed")):
            return
        if end_session(self.settings, bridge_client_id(self.settings)):
            self.bridge_session = "ended"
        else:
            self.bridge_session = "end failed"
            self._note("could not end the bridge's MQTT session (broker did not accept)")

    def _simulators_done(self) -> bool:
        return self.sup[SIMULATE].poll() is not None

    def _loop(self, live: Live | None, phase: str, done: Callable[[], bool]) -> None:
        while not done():
            try:
                for message in self.sup.check():
                    self._note(message)
            except SupervisorError as exc:
                raise UpError(str(exc)) from exc
            if live is not None:
                live.update(render(self.view(phase)))
            time.sleep(0.5)

    def _bridge_was_killed(self) -> bool:
        """A bridge incarnation ended without its final statistics (SIGKILL, crash).

        Its last periodic stats file may then miss up to one interval of messages it had
        received *and* acknowledged, so "received >= what the broker acknowledged to the
        simulators" can no longer be proven from the counters; the drain then relies on
        the bridge being quiet (nothing in flight, nothing new for 3 s) and the worker's
        lag. The stored counts still prove whether anything was lost.
        """
        part = self.sup.parts.get(BRIDGE)
        return part is not None and any(code < 0 for code in part.exit_codes)

    def _drain(self, live: Live | None) -> None:
        """Wait until bridge and worker have nothing left (bounded by --drain-timeout)."""
        assert self.watch is not None
        sim = read_json(self.run_dir / "simulate.json") or {}
        expected = int(sim.get("acked", 0))
        t0 = time.monotonic()
        deadline = t0 + self.opts.drain_timeout
        last_received = -1
        stable_since = time.monotonic()
        reason = "not started"
        while self._interrupts < 2:
            try:
                for message in self.sup.check():
                    self._note(message)
            except SupervisorError as exc:
                reason = str(exc)
                break
            bridge = self.bridge_totals()
            lag = self.watch.refresh_lag() if self.opts.worker else {}
            received = int(bridge.get("received", 0))
            if received != last_received:
                last_received, stable_since = received, time.monotonic()
            lagging = {t: n for t, n in lag.items() if n}
            quiet_s = time.monotonic() - stable_since
            if received < expected and not (self._bridge_was_killed() and quiet_s >= 3.0):
                reason = f"bridge received {received:,} of {expected:,} messages"
            elif bridge.get("in_flight", 0):
                reason = f"bridge has {bridge['in_flight']:,} messages in flight"
            elif quiet_s < 1.0:
                reason = "bridge still receiving"
            elif lagging:
                reason = "worker lag " + ", ".join(f"{t} {n:,}" for t, n in lagging.items())
            else:
                reason = ""
                break
            if time.monotonic() > deadline:
                break
            if live is not None:
                live.update(render(self.view(f"draining ({reason})")))
            time.sleep(0.5)
        caught_up = self.watch.catch_up(30.0)
        self.drain = {
            "completed": reason == "" and caught_up,
            "waited_s": round(time.monotonic() - t0, 3),
            "timeout_s": self.opts.drain_timeout,
            "pending": reason or (None if caught_up else "alert/dead-letter consumer behind"),
        }
        if reason:
            self._note(f"drain incomplete: {reason}")

    def _simulator_fallback(self) -> dict[str, Any]:
        """What the bridge saw, when the simulators were stopped before their summary.

        Per-channel counts are then unknown (empty); the time window covers the run (the
        simulated clock of ``--speed X`` starts up to ``elapsed * (X - 1)`` in the past).
        """
        bridge = self.bridge_totals()
        now = time.time()
        elapsed = time.monotonic() - self._t0 if self._t0 else 0.0
        start = now - elapsed * max(self.opts.speed, 1.0) - 60.0
        return {
            "published": int(bridge.get("valid", 0)),
            "malformed": int(bridge.get("dead_lettered", 0)),
            "published_by_family_channel": {},
            "start": start,
            "end": now + 300.0,
        }

    def finish(self) -> dict[str, Any]:
        """Stop the watch, count, match truth, write and print the summary."""
        from ingest.pseudonym import pseudonymizer_from_settings

        assert self.watch is not None
        state = self.watch.snapshot()
        self.watch.stop()
        sim = read_json(self.run_dir / "simulate.json")
        source = "simulator"
        if sim is None:
            sim = self._simulator_fallback()
            source = "bridge (the simulators wrote no summary)"
            self._note(f"no simulator summary; see {self.sup[SIMULATE].log_path}")
        tick = 1.0
        stored = self.count_stored(since=(float(sim["start"]) - tick, float(sim["end"]) + tick))
        truth_path = self.run_dir / "truth.jsonl"
        truth_events = (
            [json.loads(line) for line in truth_path.read_text().splitlines() if line.strip()]
            if truth_path.exists()
            else []
        )
        summary = build_summary(
            simulator=sim,
            ingested=int(self.bridge_totals().get("valid", 0)),
            dead_lettered=state.dead_letters,
            dead_letter_reasons=state.dead_letter_reasons,
            dead_letter_distinct=len(state.dead_letter_digests),
            stored=stored,
            raw_channels=raw_channels(self.settings),
            alerts=state.alerts,
            truth_events=truth_events,
            pseudonym=pseudonymizer_from_settings(self.settings),
            influx_url=self.settings.influx_url,
            influx_api=self.settings.influx_api,
            tolerance=self.opts.tolerance,
            extra={
                "published_source": source,
                "scenario": self.opts.scenario,
                "seed": self.opts.seed,
                "duration_s": self.opts.duration,
                "simulated": {"start": sim["start"], "end": sim["end"]},
                "undecodable_alerts": state.undecodable_alerts,
                "drain": self.drain,
                "bridge_session": self.bridge_session,
                "processes": self.sup.report(),
                "chaos": [vars(r) for r in self.chaos_records],
                "run_dir": str(self.run_dir),
                "kafka": {
                    "bootstrap": self.settings.kafka_bootstrap,
                    "topic_prefix": self.settings.topic_prefix,
                },
            },
        )
        text = json.dumps(summary, indent=2, sort_keys=False) + "\n"
        (self.run_dir / "summary.json").write_text(text)
        if self.opts.summary_json is not None:
            self.opts.summary_json.parent.mkdir(parents=True, exist_ok=True)
            self.opts.summary_json.write_text(text)
        self.console.print(final_table(summary))
        return summary


def final_table(summary: dict[str, Any]) -> Table:
    """The end-of-run table: per channel published vs stored, alerts, truth, latency."""
    t = Table(title=f"cityhealth up: {summary.get('scenario')} - summary")
    t.add_column("channel")
    t.add_column("published", justify="right")
    t.add_column("stored", justify="right")
    for channel, n in summary["published_by_channel"].items():
        target = summary["raw_channels"].get(channel)
        stored = summary["stored"].get(target, 0) if target else 0
        mark = "" if stored == n else " [red]![/]"
        t.add_row(channel, f"{n:,}", f"{stored:,}{mark}")
    t.add_row(
        "dead letters (malformed sent)",
        f"{summary['malformed_published']:,}",
        f"{summary['dead_lettered']:,}",
    )
    truth = summary["truth"]
    t.add_row("truth events alerted", f"{truth['events']:,}", f"{truth['alerted']:,}")
    t.add_row("alerts", "", f"{summary['alerts']['total']:,}")
    lat = summary["alert_latency_s"]
    if lat.get("p50") is not None:
        t.add_row("alert latency p50 / p99", "", f"{lat['p50']:.3f} / {lat['p99']:.3f} s")
    drain = summary.get("drain", {})
    t.add_row(
        "drain", "", "complete" if drain.get("completed") else f"[red]{drain.get('pending')}[/]"
    )
    return t
