"""``cityhealth simulate``: publish a simulated city (or replay a recording) over MQTT.

Exit codes: 0 success; 1 the broker did not acknowledge every message; 2 bad options,
scenario or replay file; 3 the broker is unreachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cityhealth.settings import get_settings


def register(app: typer.Typer) -> None:
    """Attach ``simulate`` to the CLI."""
    app.command("simulate")(simulate)


def simulate(
    scenario: Annotated[
        str, typer.Option(help="Built-in scenario (smoke, district) or a TOML file.")
    ] = "smoke",
    wearables: Annotated[int | None, typer.Option(help="Override the wearable count.")] = None,
    eldercare: Annotated[
        int | None, typer.Option(help="Override the elder-care home count.")
    ] = None,
    airq: Annotated[
        int | None, typer.Option(help="Override the air-quality station count.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Simulated seconds to run.")] = 60.0,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall-clock second (1 = real time).")
    ] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="As fast as possible.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same messages.")] = 0,
    start: Annotated[
        float | None,
        typer.Option(help="Simulated start (epoch s). Default: keeps timestamps valid now."),
    ] = None,
    truth: Annotated[Path | None, typer.Option(help="Write ground truth (JSON Lines).")] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Write the run summary.")] = None,
    malformed_rate: Annotated[
        float, typer.Option(help="Fraction of deliberately invalid messages (0-1).")
    ] = 0.0,
    replay: Annotated[
        Path | None, typer.Option(help="Publish a recording (CSV, or Parquet with pyarrow).")
    ] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="Broker host (default: settings).")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="Broker port (default: settings).")] = None,
    window: Annotated[int, typer.Option(help="Most messages awaiting a PUBACK.")] = 2000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Generate and count, publish nothing.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
) -> None:
    """Publish simulated wearables, elder-care homes and air-quality stations over MQTT."""
    from rich.console import Console

    from ingest.mqtt_auth import mqtt_credentials
    from simulators.cli import SimulateOptions, run_simulation

    console = Console(stderr=True)
    settings = get_settings()
    username, password = mqtt_credentials(settings, "publisher")
    opts = SimulateOptions(
        scenario=scenario,
        counts={"wearable": wearables, "eldercare": eldercare, "airq": airq},
        duration=duration,
        speed=None if fast else speed,
        seed=seed,
        start=start,
        truth=truth,
        summary_json=summary_json,
        malformed_rate=malformed_rate,
        replay=replay,
        host=mqtt_host or settings.mqtt_host,
        port=mqtt_port or settings.mqtt_port,
        username=username,
        password=password,
        window=window,
        dry_run=dry_run,
        progress=not quiet,
    )
    code = run_simulation(opts, console)
    if code:
        raise typer.Exit(code)
