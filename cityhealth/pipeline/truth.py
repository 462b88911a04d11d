"""Match simulator ground truth to the alerts the pipeline raised.

A ground-truth event (``cityhealth simulate --truth``, JSON Lines) is
``{"type", "device_id", "family", "district", "start", "end", ...}`` with the **raw**
device id; alerts carry the keyed **pseudonym** (``ingest.pseudonym``) as subject for
wearables and elder-care devices, the station id for air-quality stations, or a district.

An event counts as *alerted* when at least one alert

* has a compatible type (:data:`COMPATIBLE`; for ``anomaly`` and ``air_anomaly`` alerts
  that name the signal in their evidence, the signal must be the event's signal,
  :data:`SIGNALS`),
* is about the same subject (the device's pseudonym or station id; for district-wide
  episodes also any alert whose ``district`` or subject is the event's district), and
* is *active* at some time inside ``[start - before_s, end + after_s]``: an alert is
  active at its sensor time; a clinical limit alarm (:data:`LATCHING`) from its raise until
  its clear record (the record of the same id with ``end`` set), or until the end of the
  run when it never cleared.

This is the usual event-level (not sample-level) detection criterion of fall and anomaly
benchmarks: an event is detected if any alert overlaps it within a tolerance. Latched
alarms count because that is what they mean: a limit alarm stays active until its sign
has been back to normal for ``limit_clear_s`` (streams.limits), so a second violation of
the sign meanwhile (a tachycardia a few seconds after the previous one ended, a second
event starting before the first one's alarm cleared) raises no new alert, while the
caregiver already has an active alarm for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.limits import RULES

#: Alert types that count as the detection of each ground-truth event type. For the
#: :data:`NUISANCE` types (look-alikes and sensor faults that should raise nothing) they are
#: the alert types a false alarm would have: their "alerted" count is a false-positive count.
COMPATIBLE: dict[str, frozenset[str]] = {
    "fall": frozenset({"fall"}),
    "tachycardia": frozenset({"anomaly", "tachycardia", "news2"}),
    "bradycardia": frozenset({"anomaly", "bradycardia", "news2"}),
    "desaturation": frozenset({"anomaly", "desaturation", "news2"}),
    "fever": frozenset({"anomaly", "fever", "news2"}),
    "inactivity": frozenset({"inactivity"}),
    "panic": frozenset({"panic"}),
    "device_offline": frozenset({"device_offline", "station_offline"}),
    "pm25_episode": frozenset({"aqi_category", "air_anomaly", "anomaly", "pm25_episode"}),
    "no2_episode": frozenset({"aqi_category", "air_anomaly", "anomaly", "no2_episode"}),
    "o3_episode": frozenset({"aqi_category", "air_anomaly", "anomaly", "o3_episode"}),
    "heat_episode": frozenset({"heat_episode"}),
    "fall_like": frozenset({"fall"}),
    "stuck_value": frozenset({"air_anomaly", "anomaly"}),
    "spikes": frozenset({"air_anomaly", "anomaly"}),
    "dropout": frozenset({"air_anomaly", "anomaly"}),
}
#: Ground-truth types that must *not* alert (left out of the top-level counts).
NUISANCE = frozenset({"fall_like", "stuck_value", "spikes", "dropout"})
#: The measured signal each vital/air event disturbs (checked against anomaly evidence).
SIGNALS: dict[str, frozenset[str]] = {
    "tachycardia": frozenset({"heart_rate"}),
    "bradycardia": frozenset({"heart_rate"}),
    "desaturation": frozenset({"spo2"}),
    "fever": frozenset({"body_temp"}),
    "pm25_episode": frozenset({"pm25"}),
    "no2_episode": frozenset({"no2"}),
    "o3_episode": frozenset({"o3"}),
}
#: Alert types whose ``signal`` (evidence) must be the event's signal to match it.
SIGNAL_CHECKED = frozenset({"anomaly", "air_anomaly"})
#: Alert types of the clinical limit alarms, active from their raise until their clear
#: record (streams.limits: IEC 60601-1-8 latching).
LATCHING = frozenset(rule.name for rule in RULES)
#: Event types whose scope is a whole district (any station/district alert may match).
DISTRICT_SCOPE = frozenset({"pm25_episode", "no2_episode", "o3_episode", "heat_episode"})
#: Extra settle time (s) of events whose abnormal part starts after their labelled start:
#: a fever's temperature climbs for the first 30 % of its duration (9-18 s in the smoke
#: scenario, simulators/wearable.py) before it is a fever (+1.1 degC, or 38 degC) that a
#: detector can confirm; one starting 12 s before the traffic ends may never show. 5 s
#: keeps the smoke scenario's guaranteed events (25-45 s of a 60-s run) judged.
GRADUAL_ONSET_S: dict[str, float] = {"fever": 5.0}
#: Types the end-to-end test requires to be detected every time (falls and vital anomalies).
REQUIRED = ("fall", "tachycardia", "bradycardia", "desaturation", "fever")


@dataclass(frozen=True)
class Tolerance:
    """Seconds an alert's sensor time may precede an event's start or follow its end.

    ``settle_s``: events starting less than this before the end of the simulated traffic
    cannot be judged (a fall is decided after the stillness that follows it, an anomaly
    after a few abnormal readings) and are reported apart as ``too_late``; types with a
    gradual onset add :data:`GRADUAL_ONSET_S`.
    """

    before_s: float = 5.0
    after_s: float = 10.0
    settle_s: float = 10.0


def alert_signal(alert: Mapping[str, Any]) -> str | None:
    """The signal an alert is about, if it says (``signal`` or ``evidence.signal``)."""
    signal = alert.get("signal")
    evidence = alert.get("evidence")
    if signal is None and isinstance(evidence, Mapping):
        signal = evidence.get("signal")
    return signal if isinstance(signal, str) else None


def compatible(event_type: str, alert: Mapping[str, Any]) -> bool:
    """Whether ``alert`` can be the detection of an event of ``event_type``."""
    types = COMPATIBLE.get(event_type, frozenset({event_type}))
    if alert.get("type") not in types:
        return False
    signal = alert_signal(alert)
    wanted = SIGNALS.get(event_type)
    return (
        alert.get("type") not in SIGNAL_CHECKED
        or signal is None
        or wanted is None
        or signal in wanted
    )


def active_spans(alerts: list[Mapping[str, Any]]) -> dict[int, tuple[float, float]]:
    """When each alert record's alert was active: ``id(record) -> (from, to)``.

    A record's own sensor time, except for :data:`LATCHING` alarms: every record of one
    alert id spans from its first sensor time to the ``end`` of its clear record (infinite
    while it never cleared).
    """
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    spans: dict[int, tuple[float, float]] = {}
    for alert in alerts:
        ts = float(alert["sensor_ts"])
        if alert.get("type") in LATCHING:
            groups[_alert_id(alert)].append(alert)
        else:
            spans[id(alert)] = (ts, ts)
    for records in groups.values():
        ends = [float(a["end"]) for a in records if a.get("end") is not None]
        span = (min(float(a["sensor_ts"]) for a in records), min(ends, default=float("inf")))
        spans.update((id(a), span) for a in records)
    return spans


def event_subjects(event: Mapping[str, Any], pseudonym: Callable[[str, str], str]) -> set[str]:
    """Subjects an alert about ``event`` may carry (pseudonym, station id, district)."""
    subjects = {pseudonym(str(event["family"]), str(event["device_id"]))}
    if event["type"] in DISTRICT_SCOPE and event.get("district"):
        subjects.add(str(event["district"]))
    return subjects


def match_truth(
    events: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
    pseudonym: Callable[[str, str], str],
    tolerance: Tolerance | None = None,
    traffic_end: float | None = None,
) -> dict[str, Any]:
    """Event-level detection of ground truth by alerts.

    Parameters
    ----------
    events
        Ground-truth records (raw device ids).
    alerts
        Decoded alerts: ``type``, ``subject``, ``sensor_ts`` and optionally ``district``,
        ``signal`` / ``evidence.signal``.
    pseudonym
        ``pseudonym(family, device_id)``: the ingest pseudonymiser keyed like the bridge
        (identity for air-quality stations).
    tolerance
        Allowed slack around each event (default :class:`Tolerance`).
    traffic_end
        Simulated time the traffic stopped; events starting after
        ``traffic_end - tolerance.settle_s`` are only counted in ``too_late``.

    Returns
    -------
    dict
        ``{"events": int, "alerted": int, "by_type": {type: {"events", "alerted"}},
        "missed": [event, ...] (first 50), "unmatched_alerts": int}``. ``events`` and
        ``alerted`` count the events that should alert (not :data:`NUISANCE` ones, whose
        ``alerted`` in ``by_type`` counts false alarms); ``unmatched_alerts`` counts alerts
        (distinct ids: an alarm and its clear record are one) that detect no such event
        (false alarms or unlabelled causes); ``too_late``
        counts events left out because they began too close to the end of the traffic.
    """
    by_subject: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    alert_list = list(alerts)
    spans = active_spans(alert_list)
    for alert in alert_list:
        by_subject[str(alert.get("subject"))].append(alert)
        district = alert.get("district")
        if district is not None and district != alert.get("subject"):
            by_subject[f"district:{district}"].append(alert)
    used: set[int] = set()
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"events": 0, "alerted": 0})
    missed: list[Mapping[str, Any]] = []
    total = alerted = too_late = 0
    tolerance = tolerance or Tolerance()
    cutoff = None if traffic_end is None else traffic_end - tolerance.settle_s
    for event in events:
        etype = str(event["type"])
        if cutoff is not None and float(event["start"]) > cutoff - GRADUAL_ONSET_S.get(etype, 0.0):
            too_late += 1
            continue
        lo = float(event["start"]) - tolerance.before_s
        hi = float(event["end"]) + tolerance.after_s
        candidates = []
        for subject in event_subjects(event, pseudonym):
            candidates += by_subject.get(subject, [])
        if etype in DISTRICT_SCOPE and event.get("district"):
            candidates += by_subject.get(f"district:{event['district']}", [])
        hits = [
            a
            for a in candidates
            if spans[id(a)][0] <= hi and spans[id(a)][1] >= lo and compatible(etype, a)
        ]
        by_type[etype]["events"] += 1
        by_type[etype]["alerted"] += bool(hits)
        if etype in NUISANCE:
            continue
        total += 1
        if hits:
            alerted += 1
            used.update(id(a) for a in hits)
        elif len(missed) < 50:
            missed.append(dict(event))
    return {
        "events": total,
        "alerted": alerted,
        "by_type": {k: by_type[k] for k in sorted(by_type)},
        "missed": missed,
        "unmatched_alerts": len(
            {_alert_id(a) for a in alert_list} - {_alert_id(a) for a in alert_list if id(a) in used}
        ),
        "too_late": too_late,
    }


def _alert_id(alert: Mapping[str, Any]) -> str:
    """The alert's id (its records share it), or (type, subject, start) without one."""
    fallback = f"{alert.get('type')}|{alert.get('subject')}|{alert.get('start')}"
    return str(alert.get("id") or fallback)
