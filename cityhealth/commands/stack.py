"""`cityhealth stack install | up | down | status`: the local Mosquitto/Kafka/InfluxDB stack."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cityhealth.settings import Settings

stack_app = typer.Typer(
    help="Local stack on loopback: Mosquitto, Kafka (KRaft) and InfluxDB 1.x.",
    no_args_is_help=True,
)
_err = Console(stderr=True)


def _fail(exc: Exception) -> typer.Exit:
    _err.print("[bold red]error:[/]", end=" ")
    # Log lines may contain [brackets]: print them verbatim, unwrapped.
    _err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@stack_app.command()
def install() -> None:
    """Install what is missing (Debian packages, Kafka jars via Maven); quiet when cached."""
    from cityhealth.stack import StackError
    from cityhealth.stack import install as do_install

    try:
        done = do_install(Settings())
    except StackError as exc:
        raise _fail(exc) from exc
    for line in done:
        typer.echo(f"installed {line}")


@stack_app.command()
def up() -> None:
    """Start the stack (or reuse a healthy one) and wait until every service is ready."""
    from cityhealth.stack import StackError, StackManager, UpResult

    console = Console()

    def report(result: UpResult) -> None:
        colour = "green" if result.action in ("started", "reused") else "yellow"
        console.print(
            f"{result.service:<8} [{colour}]{result.action}[/] ({result.seconds:.1f} s)",
            highlight=False,
        )

    try:
        StackManager(Settings()).up(on_event=report)
    except StackError as exc:
        raise _fail(exc) from exc


@stack_app.command()
def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the services' data, configs and logs.")
    ] = False,
) -> None:
    """Stop what `stack up` started (SIGTERM, then SIGKILL); data is kept unless --purge."""
    from cityhealth.stack import StackManager

    stopped = StackManager(Settings()).down(purge=purge)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Health of each service (real client checks); exit 0 only when all are healthy."""
    from cityhealth.stack import StackManager
    from cityhealth.stack.manager import REQUIRED

    report = StackManager(Settings()).status()
    healthy = all(report[name]["healthy"] for name in REQUIRED)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        table = Table(title="cityhealth stack")
        for col in ("service", "address", "healthy", "pid", "detail"):
            table.add_column(col)
        for name, info in report.items():
            address = info.get("bootstrap") or info.get("url") or f"{info['host']}:{info['port']}"
            table.add_row(
                name,
                str(address),
                "[green]yes[/]" if info["healthy"] else "[red]no[/]",
                str(info["pid"] or "-"),
                info.get("error", ""),
            )
        Console().print(table)
    raise typer.Exit(0 if healthy else 1)


def register(app: typer.Typer) -> None:
    """Attach the ``stack`` command group."""
    app.add_typer(stack_app, name="stack")
