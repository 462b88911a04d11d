"""What ``cityhealth simulate`` does, independent of typer (also used by the benchmark)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulators.base import SimulatorLike
from simulators.malformed import Malformer
from simulators.plugins import PluginError, build, rng_for
from simulators.publisher import MqttPublisher, NullPublisher, PublishError
from simulators.runner import Runner, simulated_start, write_jsonl
from simulators.scenario import ScenarioError, load_scenario


@dataclass
class SimulateOptions:
    """Options of one run (see ``cityhealth simulate --help``)."""

    scenario: str = "smoke"
    counts: dict[str, int | None] = field(default_factory=dict)
    duration: float = 60.0
    speed: float | None = 1.0
    seed: int = 0
    start: float | None = None
    truth: Path | None = None
    summary_json: Path | None = None
    malformed_rate: float = 0.0
    replay: Path | None = None
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    window: int = 2000
    dry_run: bool = False
    progress: bool = True


def _progress_table(r: Runner) -> Table:
    st = r.stats
    wall = max(time.perf_counter() - r.wall_start, 1e-9)
    pub = r.publisher
    t = Table(title="cityhealth simulate", show_header=False, min_width=48)
    t.add_row("simulated", f"{r.now - r.start:,.1f} / {r.duration:,.0f} s")
    t.add_row("wall", f"{wall:,.1f} s  (x{(r.now - r.start) / wall:,.2f} real time)")
    t.add_row("published", f"{st.published:,}  ({st.published / wall:,.0f} msg/s)")
    t.add_row("acked / in flight", f"{pub.acked:,} / {pub.outstanding:,}")
    t.add_row("malformed", f"{st.malformed:,}")
    t.add_row("truth events", f"{sum(len(s.truth()) for s in r.simulators):,}")
    t.add_row("max lag", f"{st.max_lag_s:.3f} s")
    return t


def _final_table(summary: dict[str, Any]) -> Table:
    t = Table(title="summary", show_header=True)
    t.add_column("channel")
    t.add_column("published", justify="right")
    for key, n in summary["published_by_family_channel"].items():
        t.add_row(key, f"{n:,}")
    t.add_row("[b]total[/b]", f"[b]{summary['published']:,}[/b]")
    t.add_row("malformed (separate)", f"{summary['malformed']:,}")
    t.add_row("acked", f"{summary['acked']:,}")
    t.add_row("rate", f"{summary['rate_msgs_per_s'] or 0:,.0f} msg/s")
    for etype, n in summary["truth_by_type"].items():
        t.add_row(f"truth: {etype}", str(n))
    return t


def run_simulation(opts: SimulateOptions, console: Console) -> int:
    """Run a simulation or replay; returns the process exit code."""
    try:
        if opts.replay is not None:
            from simulators.replay import load_replay

            replay = load_replay(opts.replay)
            sims: list[SimulatorLike] = [replay]
            tick_s = replay.tick_s
            duration = replay.span_s + tick_s
            scenario_name = f"replay:{opts.replay}"
        else:
            sc = load_scenario(opts.scenario).with_counts(**opts.counts)
            sims = build(sc, opts.seed)
            tick_s, duration, scenario_name = sc.tick_s, opts.duration, sc.name
        malformer = (
            Malformer(opts.malformed_rate, rng_for(opts.seed, "malformed"))
            if opts.malformed_rate > 0
            else None
        )
    except (ScenarioError, PluginError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if opts.speed is not None and opts.speed <= 0:
        console.print("[red]error:[/red] --speed must be > 0")
        return 2
    if opts.window < 1 or opts.duration <= 0:
        console.print("[red]error:[/red] --window must be >= 1 and --duration > 0")
        return 2
    try:
        pub: Any = (
            NullPublisher()
            if opts.dry_run
            else MqttPublisher(
                opts.host,
                opts.port,
                window=opts.window,
                username=opts.username,
                password=opts.password,
            )
        )
    except PublishError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 3
    # the clock starts once connected: in real time, sensor time = publication time
    start = opts.start if opts.start is not None else simulated_start(duration, opts.speed)
    for sim in sims:
        if hasattr(sim, "rebase"):
            sim.rebase(start)
    runner = Runner(
        sims,
        pub,
        tick_s=tick_s,
        duration=duration,
        start=start,
        speed=opts.speed,
        malformer=malformer,
    )
    live = Live(console=console, refresh_per_second=4, transient=True) if opts.progress else None
    if live is not None:
        runner.on_progress = lambda r: live.update(_progress_table(r))
        live.start()
    # Ctrl-C ends the run after the current tick; truth and summary are still written
    previous = signal.signal(signal.SIGINT, lambda *_: setattr(runner, "stop_requested", True))
    try:
        runner.run()
        complete = pub.flush(timeout=120.0)
    except PublishError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 3
    finally:
        signal.signal(signal.SIGINT, previous)
        if live is not None:
            live.stop()
        pub.close()
    summary = runner.summary(
        scenario=scenario_name,
        seed=opts.seed,
        broker=None if opts.dry_run else f"{opts.host}:{opts.port}",
        dry_run=opts.dry_run,
    )
    if opts.truth is not None:
        write_jsonl(opts.truth, runner.truth())
    if opts.summary_json is not None:
        opts.summary_json.parent.mkdir(parents=True, exist_ok=True)
        opts.summary_json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    console.print(_final_table(summary))
    if not complete or summary["failed"]:
        console.print(
            f"[red]error:[/red] {summary['unacked']} unacknowledged, "
            f"{summary['failed']} rejected by the broker"
        )
        return 1
    return 0


__all__ = ["SimulateOptions", "run_simulation"]
