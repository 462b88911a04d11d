"""Rate panels turned back into counts: a panel plotting ``count * 1000 / interval`` per
interval sums, times the panel's interval, to the count it was computed from."""

from __future__ import annotations

from typing import Any

from cityhealth.dashboards import DashboardCheck, interval_ms


def total(series: list[dict[str, Any]]) -> float:
    """Sum of the first value column of every series (a null point counts 0)."""
    return sum(row[1] or 0 for s in series for row in s["values"])


def scaled_sum(res: DashboardCheck, panel: str, ref: str, per_ms: int) -> float:
    """Sum of a rate panel's points times its interval: the count it was computed from."""
    pq = next(q for q in res.panels if q.panel == panel and q.ref_id == ref)
    return total(pq.series) * _interval_ms(res, panel) / per_ms


def scaled_by_tag(res: DashboardCheck, panel: str, tag: str, per_ms: int) -> dict[str, float]:
    """:func:`scaled_sum` of query A per series, keyed by the series' ``tag``."""
    interval = _interval_ms(res, panel)
    return {s["tags"][tag]: total([s]) * interval / per_ms for s in res.result(panel, "A").series}


def _interval_ms(res: DashboardCheck, panel: str) -> int:
    panel_model = next(p for p in _all_panels(res.dashboard.model) if p["title"] == panel)
    return interval_ms(res.time_range, None, panel_model.get("interval"))


def _all_panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in model["panels"]:
        out += [p, *p.get("panels", [])]
    return out
