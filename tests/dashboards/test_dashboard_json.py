"""Every dashboard JSON is valid Grafana, uses the provisioned data sources and only names
measurements, fields and tags that docs/DATA_MODEL.md defines (no services needed)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from cityhealth.dashboards import (
    DASHBOARDS_DIR,
    DATASOURCE_DATABASES,
    Dashboard,
    iter_panels,
    load_dashboards,
    panel_queries,
    resolve_datasource,
    variables,
)
from cityhealth.settings import REPO_ROOT, Settings
from cityhealth.stack.grafana import Grafana
from kernels.aqi import CATEGORY_COLORS
from streams.processors.airq import HEAT_LOWER_C
from tests.dashboards.datamodel import parse

DASHBOARDS = load_dashboards()
MODEL = parse()
_IDENT = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FROM = re.compile(r'\bFROM\s+"([^"]+)"', re.IGNORECASE)
_ALIAS = re.compile(r'\bAS\s+"([^"]+)"', re.IGNORECASE)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_REGEX = re.compile(r"=~\s*/(?:[^/\\]|\\.)*/")


def _ids(dashboards: list[Dashboard]) -> list[str]:
    return [d.uid for d in dashboards]


def test_dashboards_found_with_unique_uids_and_titles() -> None:
    uids = [d.uid for d in DASHBOARDS]
    assert {
        "cityhealth-air-heat",
        "cityhealth-operations",
        "cityhealth-resident-safety",
        "cityhealth-resident-drilldown",
    } <= set(uids)
    assert len(uids) == len(set(uids))
    assert len({d.title for d in DASHBOARDS}) == len(DASHBOARDS)
    assert all(len(u) <= 40 for u in uids)  # Grafana's uid length limit


@pytest.mark.parametrize("dash", DASHBOARDS, ids=_ids(DASHBOARDS))
def test_grafana_structure(dash: Dashboard) -> None:
    m = dash.model
    assert 36 <= m["schemaVersion"] <= 41
    assert m.get("id") is None  # provisioning and push match on uid
    panels = list(iter_panels(m["panels"]))
    ids = [p["id"] for p in m["panels"]] + [p["id"] for p in panels if p not in m["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        assert p["title"] and p.get("description"), p
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        if p["type"] != "text":
            refs = [t["refId"] for t in p["targets"]]
            assert refs and len(refs) == len(set(refs))
            assert all(t["rawQuery"] and t["query"].strip() for t in p["targets"])


def _provisioned() -> dict[str, str]:
    """uid -> dbName of docker-compose's Grafana provisioning."""
    path = DASHBOARDS_DIR / "provisioning" / "datasources" / "influxdb.yaml"
    sources = yaml.safe_load(path.read_text())["datasources"]
    return {s["uid"]: s["jsonData"]["dbName"] for s in sources}


def test_provisioned_datasources_are_the_two_databases(tmp_path: Path) -> None:
    defaults = Settings(data_dir=tmp_path)
    expected = {"sensitive": defaults.influx_db_sensitive, "public": defaults.influx_db_public}
    compose = _provisioned()
    assert {uid: expected[kind] for uid, kind in DATASOURCE_DATABASES.items()} == compose
    # the local stack's generated provisioning uses the same uids for its InfluxDB 1.x
    prov = Grafana(defaults)._provisioning()
    stack = yaml.safe_load((prov / "datasources" / "cityhealth.yaml").read_text())
    assert {s["uid"]: s["jsonData"]["dbName"] for s in stack["datasources"]} == compose
    provider = yaml.safe_load((prov / "dashboards" / "cityhealth.yaml").read_text())
    assert Path(provider["providers"][0]["options"]["path"]) == DASHBOARDS_DIR


def test_compose_mounts_the_dashboards_where_the_provider_reads() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    provider = yaml.safe_load(
        (DASHBOARDS_DIR / "provisioning" / "dashboards" / "cityhealth.yaml").read_text()
    )["providers"][0]
    assert f"./dashboards:{provider['options']['path']}:ro" in mounts
    assert provider["options"]["foldersFromFilesStructure"] is True


@pytest.mark.parametrize("dash", DASHBOARDS, ids=_ids(DASHBOARDS))
def test_every_target_uses_a_provisioned_datasource(dash: Dashboard) -> None:
    vars_ = variables(dash)
    names = {uid: f"InfluxDB {kind}" for uid, kind in DATASOURCE_DATABASES.items()}
    for var in vars_:
        if var.type == "datasource":
            uid = var.current[0]
            assert uid in DATASOURCE_DATABASES
            # the variable's regex must keep its default among the offered sources
            pattern = var.query and re.search(var.name[3:], names[uid])
            assert pattern, f"{var.name}: regex does not match {names[uid]}"
        elif var.type == "query":
            assert resolve_datasource(var.datasource, vars_) in DATASOURCE_DATABASES
    for pq in panel_queries(dash):
        assert resolve_datasource(pq.datasource, vars_) in DATASOURCE_DATABASES, pq


def _identifiers(query: str) -> tuple[set[str], set[str]]:
    """(measurements after FROM, fields and tags) named by one InfluxQL text."""
    text = _REGEX.sub("", _STRING.sub("''", query))
    measurements = set(_FROM.findall(text))
    rest = _ALIAS.sub("", _FROM.sub("FROM", text))
    # an outer query may name the columns its subquery defined (aliases)
    inner_aliases = set(_ALIAS.findall(text)) - set(_ALIAS.findall(_outside_subqueries(text)))
    return measurements, set(_IDENT.findall(rest)) - inner_aliases


def _queries(dash: Dashboard) -> list[tuple[str, str]]:
    """(database class, query) of every target and query variable."""
    vars_ = variables(dash)
    out = [
        (DATASOURCE_DATABASES[resolve_datasource(v.datasource, vars_)], v.query)
        for v in vars_
        if v.type == "query"
    ]
    out += [
        (DATASOURCE_DATABASES[resolve_datasource(pq.datasource, vars_)], pq.query)
        for pq in panel_queries(dash)
    ]
    return out


@pytest.mark.parametrize("dash", DASHBOARDS, ids=_ids(DASHBOARDS))
def test_queries_name_only_documented_measurements_fields_and_tags(dash: Dashboard) -> None:
    for db, query in _queries(dash):
        measurements, names = _identifiers(query)
        if not measurements:  # SHOW TAG VALUES WITH KEY = "x": any measurement's tag
            known = set().union(*(m.tags for m in MODEL.values() if db in m.databases))
        else:
            for name in measurements:
                assert name in MODEL, f"{name!r} not in DATA_MODEL.md: {query}"
                assert db in MODEL[name].databases, f"{name!r} is not in the {db} db: {query}"
            known = set().union(*(MODEL[n].fields | MODEL[n].tags for n in measurements))
        assert names <= known, f"{sorted(names - known)} not in DATA_MODEL.md: {query}"


def test_identifier_extraction() -> None:
    m, names = _identifiers(
        'SELECT count("s") FROM (SELECT max("score") AS "s" FROM "news2" WHERE '
        '"band" = \'x"y\' AND "district" =~ /^"q"$/ GROUP BY "device") GROUP BY "district"'
    )
    assert m == {"news2"} and names == {"score", "band", "district", "device"}


_TOP_SELECT = re.compile(r"^\s*SELECT\s+(.*?)\s+FROM\s", re.IGNORECASE | re.DOTALL)


def _outside_subqueries(query: str) -> str:
    """The query with every ``(SELECT ...)`` subquery cut out (parentheses balanced)."""
    out, depth, i = [], 0, 0
    while i < len(query):
        if query.startswith("(SELECT", i) or (depth and query[i] == "("):
            depth += 1
        elif depth and query[i] == ")":
            depth -= 1
        elif not depth:
            out.append(query[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize(
    "dash",
    [d for d in DASHBOARDS if not d.folder],
    ids=_ids([d for d in DASHBOARDS if not d.folder]),
)
def test_general_dashboards_show_no_individual(dash: Dashboard) -> None:
    """Outside the restricted folder, sensitive data is aggregated: no device is selected,
    grouped or offered as a variable, and every selected column is an aggregate."""
    assert not any(v.name == "device" for v in variables(dash))
    for db, query in _queries(dash):
        if db != "sensitive":
            continue
        top = _outside_subqueries(query)
        assert '"device"' not in top, query
        if top.lstrip().upper().startswith("SELECT"):
            columns = _TOP_SELECT.match(top)
            assert columns, query
            for col in re.split(r",\s*(?![^()]*\))", columns.group(1)):
                assert re.match(r"\w+\(", col.strip()), f"not an aggregate: {col!r} in {query}"


def test_operations_reads_only_the_public_database() -> None:
    """Grafana OSS cannot restrict a data source per dashboard, so the general operations
    board must not reach the sensitive database at all: every target and variable resolves
    to the public source and no sensitive data source is even offered as a variable."""
    ops = next(d for d in DASHBOARDS if d.uid == "cityhealth-operations")
    vars_ = variables(ops)
    assert {db for db, _ in _queries(ops)} == {"public"}
    sources = [v for v in vars_ if v.type == "datasource"]
    assert [DATASOURCE_DATABASES[v.current[0]] for v in sources] == ["public"]
    # the person panels read identifier-free counts, never a person measurement
    person = {"district_stream", "district_alert"}
    names = set().union(*(_identifiers(q)[0] for _, q in _queries(ops)))
    assert person <= names and all("public" in MODEL[n].databases for n in names)


def test_outside_subqueries() -> None:
    q = 'SELECT count("x") FROM (SELECT last("x") AS "x" FROM "m" GROUP BY "device") GROUP BY "d"'
    assert _outside_subqueries(q) == 'SELECT count("x") FROM  GROUP BY "d"'


def test_restricted_dashboards_live_in_the_clinical_folder() -> None:
    by_folder = {d.uid: d.folder for d in DASHBOARDS}
    assert by_folder["cityhealth-resident-drilldown"] == "clinical"
    assert {by_folder[u] for u in by_folder if u != "cityhealth-resident-drilldown"} == {""}


def _threshold_steps(dash: Dashboard, unit: str) -> list[list[tuple[float | None, str]]]:
    """Threshold step lists of every panel/override whose steps start like ``unit``'s."""
    found = []

    def visit(node: object) -> None:
        if isinstance(node, dict):
            steps = node.get("steps")
            if isinstance(steps, list) and steps and "color" in steps[0]:
                found.append([(s["value"], s["color"]) for s in steps])
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(dash.model)
    return found


def test_aqi_colours_are_the_epa_categories() -> None:
    """TAD 2024: categories start at 0, 51, 101, 151, 201, 301 with the kernels' colours."""
    air = next(d for d in DASHBOARDS if d.uid == "cityhealth-air-heat")
    epa = list(zip([None, 51, 101, 151, 201, 301], CATEGORY_COLORS, strict=True))
    aqi_steps = [s for s in _threshold_steps(air, "aqi") if len(s) == 6]
    assert len(aqi_steps) >= 4 and all(s == epa for s in aqi_steps)


def test_heat_colours_follow_the_nws_categories() -> None:
    air = next(d for d in DASHBOARDS if d.uid == "cityhealth-air-heat")
    heat = [s for s in _threshold_steps(air, "heat") if len(s) == 5]
    assert heat and all(
        np.allclose([v for v, _ in s[1:]], HEAT_LOWER_C) and s[0][0] is None for s in heat
    )
