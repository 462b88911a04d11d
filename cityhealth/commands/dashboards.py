"""``cityhealth dashboards``: the Grafana dashboards of ``dashboards/`` (docs/DASHBOARDS.md).

``list`` shows every panel query (``--render`` as Grafana would send it); ``check`` runs
them all against the configured InfluxDB and reports rows per panel; ``push`` uploads
the dashboards to a Grafana through ``grafana-client``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cityhealth.dashboards import Dashboard, TimeRange

dashboards_app = typer.Typer(
    help="Grafana dashboards: list and check their InfluxQL, push them to a Grafana.",
    no_args_is_help=True,
)

UidOption = Annotated[
    list[str] | None,
    typer.Option("--uid", "-u", help="Only this dashboard (repeatable; default: all)."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="Range 'now - SINCE' .. now, e.g. 6h, 2d (default: each dashboard's)."
    ),
]


def _load(uids: list[str] | None) -> list[Dashboard]:
    from cityhealth.dashboards import DashboardError, load_dashboards, select

    try:
        return select(load_dashboards(), uids or [])
    except DashboardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _range(dashboard: Dashboard, since: str | None) -> TimeRange:
    from cityhealth.dashboards import TimeRange

    return TimeRange.last(since) if since else TimeRange.from_dashboard(dashboard)


def _selections(values: list[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            typer.echo(f"error: --var wants NAME=VALUE, got {item!r}", err=True)
            raise typer.Exit(2)
        out.setdefault(name, []).append(value)
    return out


@dashboards_app.command("list")
def list_queries(
    uid: UidOption = None,
    render: Annotated[
        bool, typer.Option("--render", help="Show the InfluxQL Grafana sends (variables = All).")
    ] = False,
    since: SinceOption = None,
) -> None:
    """Every dashboard, panel and InfluxQL target."""
    from cityhealth import dashboards as dash_mod

    for dash in _load(uid):
        folder = f" [folder {dash.folder}]" if dash.folder else ""
        typer.echo(f"{dash.uid}: {dash.title}{folder}")
        vars_ = dash_mod.variables(dash)
        values = {v.name: v.all_value or f"<{v.name}>" for v in vars_ if v.type == "query"}
        values.update({v.name: v.current[0] for v in vars_ if v.type == "datasource"})
        for pq in dash_mod.panel_queries(dash):
            text = pq.query
            if render:
                tr = _range(dash, since)
                interval = dash_mod.interval_ms(tr, pq.max_data_points, pq.min_interval)
                text = dash_mod.render(pq.query, tr, interval, values)
            ds = dash_mod.resolve_datasource(pq.datasource, vars_)
            typer.echo(f"  [{pq.panel_id}] {pq.panel} / {pq.ref_id} ({ds}):\n    {text}")


@dashboards_app.command("check")
def check(
    uid: UidOption = None,
    since: SinceOption = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="Variable selection NAME=VALUE (repeatable; default All)."),
    ] = None,
    require_rows: Annotated[
        bool, typer.Option("--require-rows", help="Also fail when a panel query returns no rows.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    retry_s: Annotated[
        float, typer.Option("--retry-s", help="Give up on an unreachable InfluxDB after this.")
    ] = 10.0,
) -> None:
    """Run every panel query against the configured InfluxDB; rows per panel.

    Exit status 1 when a query fails (or, with --require-rows, returns nothing); 2 when
    a dashboard cannot be rendered or InfluxDB cannot be reached.
    """
    from cityhealth.dashboards import DashboardError, check_dashboard
    from cityhealth.settings import get_settings
    from streams.sink import RetryPolicy, SinkError, make_sink

    settings = get_settings()
    databases = {"sensitive": settings.influx_db_sensitive, "public": settings.influx_db_public}
    selections = _selections(var)
    report = []
    failed = False
    # an interactive check should not sit out the workers' two-minute retry deadline
    with make_sink(settings, policy=RetryPolicy(deadline_s=retry_s)) as sink:
        for dash in _load(uid):
            try:
                result = check_dashboard(dash, sink, databases, _range(dash, since), selections)
            except (DashboardError, SinkError) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
            for r in [*result.variables, *result.panels]:
                bad = r.error is not None or (require_rows and r.rows == 0)
                failed |= bad
                report.append({**r.to_dict(), "ok": not bad})
                if not as_json:
                    mark = "FAIL" if bad else "ok  "
                    what = r.error or f"{r.rows} rows in {len(r.series)} series"
                    typer.echo(
                        f"{mark} {r.dashboard} | {r.panel} {r.ref_id} ({r.database}): {what}"
                    )
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "queries": report}, indent=2))
    raise typer.Exit(1 if failed else 0)


@dashboards_app.command("push")
def push(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL, e.g. http://host:3000.")],
    token: Annotated[
        str,
        typer.Option(
            "--token", envvar="GRAFANA_TOKEN", help="Service-account token (env GRAFANA_TOKEN)."
        ),
    ],
    uid: UidOption = None,
    message: Annotated[
        str, typer.Option("--message", help="Version note stored with each dashboard.")
    ] = "cityhealth dashboards push",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the requests' bodies, send nothing.")
    ] = False,
) -> None:
    """Create/update the dashboards (and their folders) in a Grafana, matched by uid."""
    from cityhealth.dashboards import push as push_plan_to
    from cityhealth.dashboards import push_plan

    plan = push_plan(_load(uid), message)
    if dry_run:
        body = {"folders": [list(f) for f in plan.folders], "dashboards": list(plan.payloads)}
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    from grafana_client.client import GrafanaException

    try:
        answers = push_plan_to(url, token, plan)
    except GrafanaException as exc:
        typer.echo(f"error: Grafana answered {exc.status_code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # connection refused, DNS, TLS: report, do not trace back
        typer.echo(f"error: cannot push to {url}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    for answer in answers:
        typer.echo(f"{answer.get('uid')}: {answer.get('status')} v{answer.get('version')}")


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
