"""``cityhealth contract``: the device contract on the command line.

``schema --out DIR`` exports one JSON Schema (draft 2020-12) per family and channel;
``check --topic T PAYLOAD`` validates one message exactly as the ingest bridge does;
``speed`` measures decoding cost against ``json.loads`` of the same bytes in the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

contract_app = typer.Typer(
    help="Device contract: JSON Schema export and payload checks (docs/GATEWAYS.md).",
    no_args_is_help=True,
)


@contract_app.command("schema")
def schema(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the {family}.{channel}.json files.")
    ],
) -> None:
    """Write one JSON Schema (draft 2020-12) per family and channel, plus senml/pack.json."""
    from ingest.contract.schema import write_schemas

    paths = write_schemas(out)
    for path in paths:
        typer.echo(str(path))


@contract_app.command("check")
def check(
    topic: Annotated[
        str, typer.Option("--topic", "-t", help="MQTT topic, city/{d}/{f}/{id}/{ch}.")
    ],
    payload: Annotated[str, typer.Argument(help="Payload (JSON or SenML); '-' reads stdin.")] = "-",
    max_age_s: Annotated[
        float,
        typer.Option("--max-age-s", help="Oldest accepted reading age; 0 disables the limit."),
    ] = 7 * 86400.0,
) -> None:
    """Validate one payload; print the decoded reading, or the structured errors (exit 1)."""
    from ingest.contract import ContractViolation, decode

    raw = sys.stdin.buffer.read() if payload == "-" else payload.encode("utf-8")
    try:
        decoded = decode(topic, raw, max_age_s=max_age_s or None)
    except ContractViolation as exc:
        typer.echo(json.dumps(exc.to_dict(), indent=2))
        raise typer.Exit(1) from None
    typer.echo(
        json.dumps(
            {
                "district": decoded.district,
                "family": decoded.family,
                "device_id": decoded.device_id,
                "channel": decoded.channel,
                "encoding": decoded.encoding,
                "reading": decoded.model.model_dump(mode="json", exclude_none=True),
            },
            indent=2,
        )
    )


@contract_app.command("speed")
def speed(
    repeat: Annotated[int, typer.Option(help="Timing rounds (the best is reported).")] = 5,
) -> None:
    """CPU microseconds per message for decode() vs json.loads of the same payload."""
    import math
    import time

    from ingest.contract import AccelWindow, Vitals, decode, to_senml_json

    now = time.time()
    n = 50
    window = AccelWindow(
        t0=now,
        rate_hz=50.0,
        x=[round(0.8 * math.sin(i / 3), 4) for i in range(n)],
        y=[round(0.3 * math.cos(i / 5), 4) for i in range(n)],
        z=[round(9.81 + math.sin(i / 2), 4) for i in range(n)],
    )
    vitals = Vitals(ts=now, heart_rate=72.5, spo2=97.5, body_temp=36.7, respiration_rate=14.0)
    cases = [
        ("vitals, native JSON", "city/c/wearable/w1/vitals", vitals.model_dump_json().encode()),
        ("accel 50 samples, native", "city/c/wearable/w1/accel", window.model_dump_json().encode()),
        ("vitals, SenML", "city/c/wearable/w1/vitals", to_senml_json(vitals)),
        ("accel 50 samples, SenML", "city/c/wearable/w1/accel", to_senml_json(window)),
    ]

    def cpu_us(fn: object, count: int) -> float:
        best = math.inf
        for _ in range(repeat):
            start = time.process_time()
            for _ in range(count):
                fn()  # type: ignore[operator]
            best = min(best, (time.process_time() - start) / count)
        return best * 1e6

    typer.echo(
        f"{'payload':28s} {'bytes':>6s} {'decode us':>10s} {'json.loads us':>14s} {'ratio':>6s}"
    )
    for name, topic, raw in cases:
        count = max(200, 200_000 // max(len(raw), 100))
        ours = cpu_us(lambda t=topic, r=raw: decode(t, r, now=now), count)
        base = cpu_us(lambda r=raw: json.loads(r), count)
        typer.echo(f"{name:28s} {len(raw):6d} {ours:10.2f} {base:14.2f} {ours / base:6.2f}")


def register(app: typer.Typer) -> None:
    """Attach the ``contract`` group."""
    app.add_typer(contract_app, name="contract")
