"""The Grafana dashboards under ``dashboards/``: load, render, prove against InfluxDB, push.

Dashboards are Grafana JSON (schema 39) with raw InfluxQL targets. Grafana itself turns
``$timeFilter``, ``$__interval`` and template variables (``$district``...) into concrete
InfluxQL before sending it to the data source; :func:`render` does the same here, so
``cityhealth dashboards check`` (and the tests) run exactly the statements Grafana would
send, against the real InfluxDB, and report rows per panel. docs/DASHBOARDS.md.

Datasources are referenced through datasource variables (``${ds_public}``) whose default
is a provisioned uid; :data:`DATASOURCE_DATABASES` maps the uids of the provisioning
(``dashboards/provisioning/datasources`` and ``cityhealth.stack.grafana``) to the two
databases of docs/DATA_MODEL.md.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cityhealth.settings import REPO_ROOT

if TYPE_CHECKING:
    from streams.sink import InfluxSink

DASHBOARDS_DIR = REPO_ROOT / "dashboards"
#: Provisioned data source uid -> database class (docs/DATA_MODEL.md).
DATASOURCE_DATABASES: dict[str, Literal["sensitive", "public"]] = {
    "influx-sensitive": "sensitive",
    "influx-public": "public",
}
#: Grafana sends ``maxDataPoints`` = the panel's width in pixels; a full-width panel on a
#: 1920 px screen is about this wide.
DEFAULT_MAX_DATA_POINTS = 1000
#: Folder uid prefix for dashboards kept in sub-folders (``dashboards/clinical/``).
FOLDER_UID_PREFIX = "cityhealth-"

# Grafana's template syntax (public/app/features/templating/template_srv.ts, variableRegex):
# $name, [[name]] / [[name:fmt]], ${name} / ${name.field} / ${name:fmt}
_VARIABLE_RE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)
# Grafana's escapeRegex (@grafana/data text.ts): regex metacharacters of a tag value.
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|{}\[\]/]")
_DURATION_RE = re.compile(r"^\s*>?\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_UNIT_MS.update({"w": 7 * _UNIT_MS["d"], "y": 365 * _UNIT_MS["d"]})
# Grafana's rangeutil.roundInterval: (upper bound of the raw interval, rounded interval), ms.
_ROUND_INTERVAL: tuple[tuple[int, int], ...] = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
    (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000),
    (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000),
    (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000), (2_700_000, 1_800_000),
    (5_400_000, 3_600_000), (9_000_000, 7_200_000), (16_200_000, 10_800_000),
    (32_400_000, 21_600_000), (86_400_000, 43_200_000), (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)  # fmt: skip
_ONE_YEAR_MS = 31_536_000_000


class DashboardError(ValueError):
    """A dashboard file or query that cannot be loaded, rendered or resolved."""


# -- loading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dashboard:
    """One dashboard file: its Grafana model and the folder it is provisioned into.

    Attributes
    ----------
    path
        The JSON file.
    folder
        Sub-folder of ``dashboards/`` ("" for the top level, Grafana's *General*), as the
        file provider's ``foldersFromFilesStructure`` names it.
    model
        The parsed dashboard JSON.
    """

    path: Path
    folder: str
    model: dict[str, Any]

    @property
    def uid(self) -> str:
        return str(self.model["uid"])

    @property
    def title(self) -> str:
        return str(self.model["title"])


def load_dashboard(path: Path, root: Path = DASHBOARDS_DIR) -> Dashboard:
    """Parse one dashboard JSON file; :class:`DashboardError` names what is wrong."""
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DashboardError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(model, dict):
        raise DashboardError(f"{path}: a dashboard is a JSON object")
    for key in ("uid", "title", "panels"):
        if key not in model:
            raise DashboardError(f"{path}: missing {key!r}")
    rel = path.resolve().parent.relative_to(root.resolve())
    return Dashboard(path=path, folder="" if rel == Path(".") else rel.as_posix(), model=model)


def load_dashboards(root: Path = DASHBOARDS_DIR) -> list[Dashboard]:
    """Every dashboard JSON under ``root`` (sub-folders included, ``provisioning/`` not)."""
    paths = sorted(
        p for p in root.rglob("*.json") if "provisioning" not in p.relative_to(root).parts
    )
    return [load_dashboard(p, root) for p in paths]


def select(dashboards: Sequence[Dashboard], uids: Sequence[str]) -> list[Dashboard]:
    """The dashboards with the given uids (all when ``uids`` is empty)."""
    if not uids:
        return list(dashboards)
    known = {d.uid: d for d in dashboards}
    missing = [u for u in uids if u not in known]
    if missing:
        raise DashboardError(f"unknown dashboard uid(s) {missing}; known: {sorted(known)}")
    return [known[u] for u in uids]


def iter_panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows; rows themselves not."""
    for panel in panels:
        if panel.get("type") == "row":
            yield from iter_panels(panel.get("panels", []))
        else:
            yield panel


# -- variables and queries ---------------------------------------------------------------
@dataclass(frozen=True)
class Variable:
    """One templating variable (``datasource`` or ``query`` type) of a dashboard."""

    name: str
    type: str
    query: str
    datasource: str
    multi: bool
    include_all: bool
    all_value: str | None
    current: tuple[str, ...]

    @classmethod
    def from_model(cls, var: Mapping[str, Any]) -> Variable:
        current = (var.get("current") or {}).get("value", ())
        values = (current,) if isinstance(current, str) else tuple(current or ())
        query = var.get("query", "")
        if isinstance(query, dict):  # newer Grafana stores {"query": "...", "refId": ...}
            query = query.get("query", "")
        return cls(
            name=str(var["name"]),
            type=str(var.get("type", "")),
            query=str(query or ""),
            datasource=str((var.get("datasource") or {}).get("uid", "")),
            multi=bool(var.get("multi", False)),
            include_all=bool(var.get("includeAll", False)),
            all_value=var.get("allValue") or None,
            current=values,
        )


def variables(dashboard: Dashboard) -> list[Variable]:
    """Templating variables in definition order (later ones may use earlier ones)."""
    return [Variable.from_model(v) for v in dashboard.model.get("templating", {}).get("list", [])]


@dataclass(frozen=True)
class PanelQuery:
    """One InfluxQL target of a panel, as written in the dashboard (not yet rendered)."""

    dashboard: str
    panel_id: int
    panel: str
    panel_type: str
    ref_id: str
    datasource: str
    query: str
    result_format: str
    min_interval: str | None
    max_data_points: int | None


def panel_queries(dashboard: Dashboard) -> list[PanelQuery]:
    """Every target of every panel, in panel order."""
    out = []
    for panel in iter_panels(dashboard.model["panels"]):
        panel_ds = (panel.get("datasource") or {}).get("uid", "")
        for target in panel.get("targets", []):
            ds = (target.get("datasource") or {}).get("uid", panel_ds)
            out.append(
                PanelQuery(
                    dashboard=dashboard.uid,
                    panel_id=int(panel["id"]),
                    panel=str(panel.get("title", "")),
                    panel_type=str(panel.get("type", "")),
                    ref_id=str(target.get("refId", "")),
                    datasource=str(ds),
                    query=str(target.get("query", "")),
                    result_format=str(target.get("resultFormat", "time_series")),
                    min_interval=panel.get("interval") or None,
                    max_data_points=panel.get("maxDataPoints"),
                )
            )
    return out


def resolve_datasource(uid: str, variables: Sequence[Variable]) -> str:
    """A target's datasource uid with ``${ds_var}`` replaced by the variable's default."""
    match = _VARIABLE_RE.fullmatch(uid)
    if match is None:
        return uid
    name = next(g for g in match.groups() if g)
    for var in variables:
        if var.name == name and var.type == "datasource":
            if not var.current:
                raise DashboardError(f"datasource variable {name!r} has no default uid")
            return var.current[0]
    raise DashboardError(f"datasource {uid!r} names no datasource variable")


# -- time range and interval ---------------------------------------------------------------
@dataclass(frozen=True)
class TimeRange:
    """An absolute time range in epoch milliseconds (Grafana's ``from``/``to``)."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise DashboardError(f"empty time range {self.start_ms}..{self.end_ms} ms")

    @classmethod
    def last(cls, duration: str, now_ms: int | None = None) -> TimeRange:
        """``now - duration`` .. ``now`` (Grafana's ``now-6h`` to ``now``)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return cls(now - parse_duration_ms(duration), now)

    @classmethod
    def from_dashboard(cls, dashboard: Dashboard, now_ms: int | None = None) -> TimeRange:
        """The dashboard's default range; only ``now-<duration>`` .. ``now`` is supported."""
        t = dashboard.model.get("time") or {"from": "now-6h", "to": "now"}
        start, end = str(t.get("from", "")), str(t.get("to", ""))
        if not start.startswith("now-") or end != "now":
            raise DashboardError(f"{dashboard.uid}: unsupported default time {start}..{end}")
        return cls.last(start[4:], now_ms)


def parse_duration_ms(text: str) -> int:
    """``"6h"`` -> 21600000; also Grafana's min-interval form ``">1m"``."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise DashboardError(f"not a duration: {text!r} (e.g. 30s, 5m, 6h, 7d)")
    return round(float(match.group(1)) * _UNIT_MS[match.group(2)])


def round_interval(interval_ms: float) -> int:
    """Grafana's ``rangeutil.roundInterval``: the raw interval snapped to a readable one."""
    for upper, rounded in _ROUND_INTERVAL:
        if interval_ms < upper:
            return rounded
    return _ONE_YEAR_MS


def interval_ms(
    time_range: TimeRange,
    max_data_points: int | None = None,
    min_interval: str | None = None,
) -> int:
    """``$__interval`` in ms as Grafana computes it (``rangeutil.calculateInterval``).

    The range divided by the number of points the panel can draw, rounded by
    :func:`round_interval`, and never below the panel's minimum interval.
    """
    points = max_data_points or DEFAULT_MAX_DATA_POINTS
    ms = round_interval((time_range.end_ms - time_range.start_ms) / points)
    if min_interval:
        ms = max(ms, parse_duration_ms(min_interval))
    return ms


def format_duration(ms: int) -> str:
    """An InfluxQL duration literal for ``ms`` (largest exact unit; InfluxQL has no ``y``)."""
    for unit in ("w", "d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


# -- rendering -----------------------------------------------------------------------------
def escape_regex(value: str) -> str:
    """Grafana's ``escapeRegex``: a tag value made literal inside ``/.../``."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_variable(var: Variable, selected: Sequence[str] | None, options: Sequence[str]) -> str:
    """The text Grafana's InfluxDB data source puts in place of ``$var``.

    ``selected=None`` means *All*. Grafana (``interpolateQueryExpr``): a custom all-value is
    inserted as it is; a multi-value or include-all variable's values are regex-escaped and
    joined as ``(a|b)``; a single-value variable is inserted as it is.
    """
    if selected is None:
        if not var.include_all:
            raise DashboardError(f"variable {var.name!r} has no 'All' option")
        if var.all_value is not None:
            return var.all_value
        selected = options
    if not (var.multi or var.include_all):
        return selected[0] if selected else ""
    escaped = [escape_regex(v) for v in selected]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def render(
    query: str,
    time_range: TimeRange,
    interval: int,
    values: Mapping[str, str] | None = None,
) -> str:
    """Concrete InfluxQL for ``query``: Grafana macros and template variables replaced.

    Parameters
    ----------
    query
        The target's raw InfluxQL.
    time_range
        Dashboard time range.
    interval
        ``$__interval`` in ms (:func:`interval_ms`).
    values
        Variable name -> replacement text (:func:`format_variable`).

    Raises
    ------
    DashboardError
        A ``$name`` that is neither a Grafana macro nor in ``values``.
    """
    start, end = time_range.start_ms, time_range.end_ms
    builtins = {
        # InfluxDB data source: "time >= {from}ms and time <= {to}ms"
        "timeFilter": f"time >= {start}ms and time <= {end}ms",
        "__interval": format_duration(interval),
        "interval": format_duration(interval),
        "__interval_ms": str(interval),
        "__from": str(start),
        "__to": str(end),
        "__range_s": str((end - start) // 1000),
    }
    table = {**builtins, **(values or {})}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name not in table:
            raise DashboardError(f"unknown variable ${name} in {query!r}")
        return table[name]

    return _VARIABLE_RE.sub(substitute, query)


# -- checking against InfluxDB ---------------------------------------------------------------
@dataclass
class QueryResult:
    """What one rendered statement returned (``series`` as InfluxDB's JSON gives them)."""

    dashboard: str
    panel: str
    ref_id: str
    database: str
    query: str
    series: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def rows(self) -> int:
        return sum(len(s.get("values", [])) for s in self.series)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dashboard": self.dashboard,
            "panel": self.panel,
            "ref_id": self.ref_id,
            "database": self.database,
            "query": self.query,
            "series": len(self.series),
            "rows": self.rows,
            "error": self.error,
        }


@dataclass
class DashboardCheck:
    """Results of one dashboard: its variable queries first, then every panel target."""

    dashboard: Dashboard
    time_range: TimeRange
    values: dict[str, str]
    variables: list[QueryResult]
    panels: list[QueryResult]

    def result(self, panel: str, ref_id: str = "A") -> QueryResult:
        for r in self.panels:
            if r.panel == panel and r.ref_id == ref_id:
                return r
        raise KeyError(f"{self.dashboard.uid}: no panel {panel!r} target {ref_id}")


def _database(uid: str, databases: Mapping[str, str]) -> str:
    kind = DATASOURCE_DATABASES.get(uid)
    if kind is None:
        raise DashboardError(f"datasource uid {uid!r} is not provisioned")
    return databases[kind]


def _run(sink: InfluxSink, database: str, query: str) -> tuple[list[dict[str, Any]], str | None]:
    """Series of one statement, or the server's error for it. An unreachable InfluxDB
    (:class:`streams.sink.SinkUnavailableError`) is not a query result: it propagates."""
    from streams.sink import SinkQueryError, SinkRejectedError

    try:
        return sink.query(database, query), None
    except (SinkQueryError, SinkRejectedError) as exc:
        return [], str(exc)


def check_dashboard(
    dashboard: Dashboard,
    sink: InfluxSink,
    databases: Mapping[str, str],
    time_range: TimeRange,
    selections: Mapping[str, Sequence[str]] | None = None,
) -> DashboardCheck:
    """Run the dashboard's variable queries and every panel target as Grafana would.

    Parameters
    ----------
    dashboard
        The dashboard.
    sink
        Any :class:`streams.sink.InfluxSink` (v1 or v2; InfluxQL goes to ``/query``).
        Statement errors are reported per query; an unreachable InfluxDB raises
        :class:`streams.sink.SinkUnavailableError` at the first query.
    databases
        ``{"sensitive": name, "public": name}`` (the settings' database names).
    time_range
        The range to render.
    selections
        Variable name -> selected values; a query variable not given is *All* when it
        has that option, else its first value (Grafana's default on an empty selection).
    """
    chosen = dict(selections or {})
    vars_ = variables(dashboard)
    values: dict[str, str] = {}
    var_results: list[QueryResult] = []
    default_interval = interval_ms(time_range)
    for var in vars_:
        if var.type == "datasource":
            values[var.name] = chosen[var.name][0] if var.name in chosen else var.current[0]
            continue
        if var.type != "query":
            raise DashboardError(f"{dashboard.uid}: unsupported variable type {var.type!r}")
        db = _database(resolve_datasource(var.datasource, vars_), databases)
        text = render(var.query, time_range, default_interval, values)
        series, error = _run(sink, db, text)
        var_results.append(QueryResult(dashboard.uid, f"${var.name}", "", db, text, series, error))
        options = sorted({str(row[1]) for s in series for row in s.get("values", [])})
        if var.name in chosen:
            values[var.name] = format_variable(var, chosen[var.name], options)
        elif var.include_all:
            values[var.name] = format_variable(var, None, options)
        else:
            values[var.name] = format_variable(var, options[:1], options)
    results = []
    for pq in panel_queries(dashboard):
        db = _database(resolve_datasource(pq.datasource, vars_), databases)
        interval = interval_ms(time_range, pq.max_data_points, pq.min_interval)
        text = render(pq.query, time_range, interval, values)
        series, error = _run(sink, db, text)
        results.append(QueryResult(dashboard.uid, pq.panel, pq.ref_id, db, text, series, error))
    return DashboardCheck(dashboard, time_range, values, var_results, results)


# -- pushing to Grafana ----------------------------------------------------------------------
@dataclass(frozen=True)
class PushPlan:
    """What :func:`push` sends: folders to ensure, then one ``POST /api/dashboards/db`` each.

    ``folders`` holds ``(uid, title)``; every payload is the body of Grafana's
    *create/update dashboard* API: ``{"dashboard", "folderUid", "overwrite", "message"}``.
    """

    folders: tuple[tuple[str, str], ...]
    payloads: tuple[dict[str, Any], ...]


def folder_uid(folder: str) -> str:
    """Grafana folder uid for a sub-folder of ``dashboards/`` (``clinical`` -> ...)."""
    return FOLDER_UID_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "-", folder)


def push_payload(dashboard: Dashboard, message: str) -> dict[str, Any]:
    """The create/update body for one dashboard, matched by uid and overwriting.

    ``id`` is cleared: Grafana matches on ``uid``, and a numeric id from another instance
    would address the wrong dashboard (or none).
    """
    model = copy.deepcopy(dashboard.model)
    model["id"] = None
    return {
        "dashboard": model,
        "folderUid": folder_uid(dashboard.folder) if dashboard.folder else "",
        "overwrite": True,
        "message": message,
    }


def push_plan(
    dashboards: Sequence[Dashboard], message: str = "cityhealth dashboards push"
) -> PushPlan:
    """Folders and payloads for ``dashboards`` (pure: nothing is sent)."""
    folders = sorted({d.folder for d in dashboards if d.folder})
    return PushPlan(
        folders=tuple((folder_uid(f), f) for f in folders),
        payloads=tuple(push_payload(d, message) for d in dashboards),
    )


def push(url: str, token: str, plan: PushPlan, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Send ``plan`` to the Grafana at ``url`` with an API/service-account ``token``.

    Uses ``grafana_client.GrafanaApi``: missing folders are created
    (``folder.create_folder``), then each payload goes to ``dashboard.update_dashboard``.
    Returns Grafana's answers (``{"uid", "url", "version", "status"}``). Not verified
    against a live Grafana in this repository's tests (none is reachable): only the plan
    is tested.
    """
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    for uid, title in plan.folders:
        try:
            api.folder.get_folder(uid)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(title, uid=uid)
    return [api.dashboard.update_dashboard(p) for p in plan.payloads]
