"""``cityhealth contract``: the device contract on the command line.

``schema --out DIR`` exports one JSON Schema (draft 2020-12) per family and channel;
``check --topic T PAYLOAD`` validates one message exactly as the ingest bridge does.
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


def register(app: typer.Typer) -> None:
    """Attach the ``contract`` group."""
    app.add_typer(contract_app, name="contract")
