"""Scenario files: a city described in TOML (districts, devices, stations, event rates).

A scenario is read with :mod:`tomllib` from a built-in name (``smoke``, ``district``: files
in ``simulators/scenarios/``) or a path. docs/SIMULATORS.md documents every key; unknown
top-level tables are kept in :attr:`Scenario.sections` so plug-in simulators can read their
own ``[my_plugin]`` table without any change to this module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from simulators.events import EVENT_TYPES, EventRate

BUILTIN = ("smoke", "district")


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or inconsistent (message says where)."""


@dataclass(frozen=True)
class District:
    """One district: topic name, weight for spreading devices, map centre."""

    name: str
    residents: int
    lat: float
    lon: float


@dataclass(frozen=True)
class Station:
    """One air-quality station at fixed coordinates."""

    id: str
    district: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Scenario:
    """Everything a simulator needs to know about the simulated city.

    Attributes
    ----------
    name
        Scenario name (file stem for files).
    tick_s
        Simulation step: each device publishes in one fixed slot of its second, so the load
        is spread over ``1 / tick_s`` slots instead of arriving in one burst.
    utc_offset_h
        Local time of the city (circadian rhythms, traffic, routines use local hours).
    districts, stations
        The city; stations beyond the listed ones are placed around district centres.
    counts
        Devices per family (``wearable``, ``eldercare``, ``airq``, and plug-in names).
    sections
        Raw TOML tables by name (family parameters and plug-in tables).
    events
        Rate and duration of every event type (defaults from :data:`EVENT_TYPES`).
    guarantee_s
        When > 0, one event of every enabled type is injected within ``guarantee_s``
        seconds (after ``guarantee_after_s``), so short runs contain each type.
    guarantee_after_s
        Warm-up before the guaranteed events: devices in a city have streamed for hours
        before anything happens, and history-relative detectors (kernels.anomaly) need
        their warm-up; an event present from a device's first reading has no baseline.
    """

    name: str
    tick_s: float
    utc_offset_h: float
    districts: tuple[District, ...]
    stations: tuple[Station, ...]
    counts: dict[str, int]
    sections: dict[str, dict[str, Any]]
    events: dict[str, EventRate]
    guarantee_s: float = 0.0
    guarantee_after_s: float = 0.0
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """The ``[name]`` table (empty when absent)."""
        return self.sections.get(name, {})

    def param(self, family: str, key: str, default: Any) -> Any:
        """``[family] key`` with a default."""
        return self.section(family).get(key, default)

    def with_counts(self, **counts: int | None) -> Scenario:
        """A copy with some device counts overridden (``None`` keeps the scenario's)."""
        new = dict(self.counts)
        for family, n in counts.items():
            if n is not None:
                if n < 0:
                    raise ScenarioError(f"--{family} must be >= 0, got {n}")
                new[family] = n
        return replace(self, counts=new)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a built-in scenario by name or a TOML file by path.

    Raises
    ------
    ScenarioError
        Unknown name, unreadable file, invalid TOML or inconsistent content.
    """
    text, name = _read(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {name}: invalid TOML: {exc}") from None
    return parse_scenario(data, default_name=name)


def _read(name_or_path: str | Path) -> tuple[str, str]:
    s = str(name_or_path)
    if s in BUILTIN:
        res = resources.files("simulators.scenarios").joinpath(f"{s}.toml")
        return res.read_text(encoding="utf-8"), s
    path = Path(s)
    if not path.is_file():
        raise ScenarioError(
            f"scenario {s!r} is neither a built-in ({', '.join(BUILTIN)}) nor a file"
        )
    try:
        return path.read_text(encoding="utf-8"), path.stem
    except OSError as exc:
        raise ScenarioError(f"scenario {s}: {exc}") from None


def _num(table: dict[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}.{key} must be a number, got {value!r}")
    return float(value)


def parse_scenario(data: dict[str, Any], default_name: str = "scenario") -> Scenario:
    """Build a :class:`Scenario` from parsed TOML (see docs/SIMULATORS.md for the keys)."""
    name = str(data.get("name", default_name))
    tick_s = _num(data, "tick_s", 0.1, "scenario")
    if not 0 < tick_s <= 1 or abs(round(1 / tick_s) * tick_s - 1) > 1e-9:
        raise ScenarioError(f"tick_s must divide one second (0.1, 0.25, 0.5, 1), got {tick_s}")
    districts = tuple(_district(d, i) for i, d in enumerate(data.get("district", [])))
    if not districts:
        raise ScenarioError(f"scenario {name}: at least one [[district]] is required")
    known = {d.name for d in districts}
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    counts = {
        fam: int(_num(tbl, "count", 0, fam)) for fam, tbl in sections.items() if "count" in tbl
    }
    stations = tuple(_station(s, known) for s in sections.get("airq", {}).get("station", []))
    events = _events(sections.get("events", {}))
    return Scenario(
        name=name,
        tick_s=tick_s,
        utc_offset_h=_num(data, "utc_offset_h", 0.0, "scenario"),
        districts=districts,
        stations=stations,
        counts=counts,
        sections=sections,
        events=events,
        guarantee_s=_num(data, "guarantee_events_within_s", 0.0, "scenario"),
        guarantee_after_s=_num(data, "guarantee_events_after_s", 0.0, "scenario"),
        description=str(data.get("description", "")),
    )


def _district(d: Any, i: int) -> District:
    where = f"district[{i}]"
    if not isinstance(d, dict) or "name" not in d:
        raise ScenarioError(f"{where} needs a name")
    from ingest.contract.topics import DISTRICT_RE

    name = str(d["name"])
    if DISTRICT_RE.fullmatch(name) is None:
        raise ScenarioError(f"{where}.name {name!r} must match {DISTRICT_RE.pattern}")
    return District(
        name=name,
        residents=int(_num(d, "residents", 1000, where)),
        lat=_num(d, "lat", 0.0, where),
        lon=_num(d, "lon", 0.0, where),
    )


def _station(s: Any, districts: set[str]) -> Station:
    if not isinstance(s, dict) or not {"id", "district", "lat", "lon"} <= set(s):
        raise ScenarioError(f"[[airq.station]] needs id, district, lat, lon: {s!r}")
    if s["district"] not in districts:
        raise ScenarioError(f"station {s['id']}: unknown district {s['district']!r}")
    where = f"station {s['id']}"
    return Station(
        str(s["id"]), str(s["district"]), _num(s, "lat", 0, where), _num(s, "lon", 0, where)
    )


def _events(table: dict[str, Any]) -> dict[str, EventRate]:
    unknown = set(table) - set(EVENT_TYPES)
    if unknown:
        raise ScenarioError(
            f"unknown event types {sorted(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}"
        )
    out: dict[str, EventRate] = {}
    for etype, spec in EVENT_TYPES.items():
        given = table.get(etype, {})
        if not isinstance(given, dict):
            raise ScenarioError(f"[events.{etype}] must be a table")
        rate = _num(given, "rate_per_hour", spec.rate_per_hour, f"events.{etype}")
        dur = given.get("duration_s", list(spec.duration_s))
        if (
            not isinstance(dur, list)
            or len(dur) != 2
            or not all(isinstance(x, int | float) for x in dur)
            or not 0 <= dur[0] <= dur[1]
        ):
            raise ScenarioError(f"events.{etype}.duration_s must be [min, max], got {dur!r}")
        if rate < 0:
            raise ScenarioError(f"events.{etype}.rate_per_hour must be >= 0")
        out[etype] = EventRate(rate, (float(dur[0]), float(dur[1])))
    return out
