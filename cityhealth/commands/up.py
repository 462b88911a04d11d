"""``cityhealth up``: run the whole pipeline (stack, bridge, worker, simulators) and count it.

Exit codes: 0 the run finished and drained; 1 it ran but did not drain (or a part failed
while running); 2 bad options; 3 the pipeline could not start. docs/RUNNING.md describes
the display and every summary field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach ``up`` to the CLI."""
    app.command("up")(up)


def up(
    scenario: Annotated[
        str, typer.Option(help="Simulator scenario: built-in name (smoke, district) or TOML file.")
    ] = "smoke",
    duration: Annotated[
        float | None,
        typer.Option(help="Seconds of simulated traffic, then drain and stop (default: Ctrl-C)."),
    ] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Write the run summary here.")] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 0,
    malformed_rate: Annotated[
        float, typer.Option(help="Fraction of deliberately invalid messages (0-1).")
    ] = 0.0,
    wearables: Annotated[int | None, typer.Option(help="Override the wearable count.")] = None,
    eldercare: Annotated[int | None, typer.Option(help="Override the elder-care count.")] = None,
    airq: Annotated[int | None, typer.Option(help="Override the station count.")] = None,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall second (1 = real time).")
    ] = 1.0,
    drain_timeout: Annotated[
        float, typer.Option(help="Longest wait for the pipeline to drain after the simulators.")
    ] = 120.0,
    chaos: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject a fault: ACTION@SECONDS[:PAUSE] with ACTION kill-worker, kill-bridge, "
            "restart-bridge or restart-influx (repeatable)."
        ),
    ] = None,
    stack: Annotated[
        bool, typer.Option(help="Start (or reuse) the local stack; --no-stack uses what is set.")
    ] = True,
    worker: Annotated[bool, typer.Option(help="Run the stream worker.")] = True,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Logs, stats and truth of this run (default: data_dir/runs/)."),
    ] = None,
    live: Annotated[bool, typer.Option(help="Show the live display.")] = True,
    match_before: Annotated[
        float, typer.Option(help="Seconds an alert may precede a truth event's start.")
    ] = 5.0,
    match_after: Annotated[
        float, typer.Option(help="Seconds an alert may follow a truth event's end.")
    ] = 10.0,
    end_session: Annotated[
        bool,
        typer.Option(
            "--end-session/--keep-session",
            help="After a completed drain, discard the bridge's persistent MQTT session "
            "(a throw-away run, e.g. with its own topic prefix). Kept by default: the next "
            "run resumes it and receives what was published meanwhile.",
        ),
    ] = False,
) -> None:
    """Run the pipeline end to end: stack, bridge, worker, simulators; drain; summary."""
    from rich.console import Console

    from cityhealth.pipeline.chaos import ChaosEvent, ChaosSpecError
    from cityhealth.pipeline.job import UpError, UpJob, UpOptions
    from cityhealth.pipeline.supervisor import SupervisorError
    from cityhealth.pipeline.truth import Tolerance
    from cityhealth.settings import get_settings

    console = Console(stderr=True)
    try:
        events = [ChaosEvent.parse(text) for text in chaos or []]
    except ChaosSpecError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if duration is not None and duration <= 0:
        console.print("[red]error:[/red] --duration must be > 0")
        raise typer.Exit(2)
    options = UpOptions(
        scenario=scenario,
        duration=duration,
        summary_json=summary_json,
        seed=seed,
        malformed_rate=malformed_rate,
        counts={"wearables": wearables, "eldercare": eldercare, "airq": airq},
        speed=speed,
        drain_timeout=drain_timeout,
        chaos=events,
        start_stack=stack,
        worker=worker,
        run_dir=run_dir,
        live=live,
        tolerance=Tolerance(match_before, match_after),
        end_session=end_session,
    )
    job = UpJob(get_settings(), options, console)
    try:
        summary = job.run()
    except (UpError, SupervisorError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(3) from None
    if not summary["drain"]["completed"]:
        raise typer.Exit(1)
