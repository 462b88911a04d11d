"""Pure parts of ``cityhealth up``: truth matching, latency percentiles, summary shape, chaos
specs. No services: these functions take plain data (the e2e tests run the real thing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from aiokafka import TopicPartition
from pydantic import SecretStr

from cityhealth.pipeline.channels import RAW_MEASUREMENTS, raw_channels
from cityhealth.pipeline.chaos import ChaosEvent, ChaosSpecError
from cityhealth.pipeline.kafka_watch import KafkaWatch, dead_letter_reason
from cityhealth.pipeline.summary import (
    alert_latencies,
    alerts_section,
    build_summary,
    check_shape,
    latency_by_type,
    percentiles,
)
from cityhealth.pipeline.supervisor import ManagedProcess
from cityhealth.pipeline.truth import Tolerance, match_truth
from cityhealth.settings import Settings
from ingest.deadletter import encode_deadletter
from ingest.pseudonym import Pseudonymizer

PSEUDO = Pseudonymizer(SecretStr("unit-test-key"))


def event(etype: str, device: str, start: float, end: float, family: str = "wearable") -> dict:
    return {
        "type": etype,
        "device_id": device,
        "family": family,
        "district": "centro",
        "start": start,
        "end": end,
    }


def alert(atype: str, subject: str, ts: float, **extra: object) -> dict:
    return {
        "id": f"{atype}-{subject}-{ts}",
        "type": atype,
        "subject": subject,
        "sensor_ts": ts,
        "district": "centro",
        **extra,
    }


def test_fall_matched_through_pseudonym_and_window() -> None:
    pid = PSEUDO("wearable", "w-1")
    events = [event("fall", "w-1", 100.0, 120.0)]
    assert match_truth(events, [alert("fall", pid, 103.0)], PSEUDO)["alerted"] == 1
    # The raw id never matches: alerts carry pseudonyms.
    assert match_truth(events, [alert("fall", "w-1", 103.0)], PSEUDO)["alerted"] == 0
    # Outside [start - before, end + after].
    tol = Tolerance(before_s=5.0, after_s=10.0)
    assert match_truth(events, [alert("fall", pid, 94.9)], PSEUDO, tol)["alerted"] == 0
    assert match_truth(events, [alert("fall", pid, 95.0)], PSEUDO, tol)["alerted"] == 1
    assert match_truth(events, [alert("fall", pid, 130.0)], PSEUDO, tol)["alerted"] == 1
    assert match_truth(events, [alert("fall", pid, 130.1)], PSEUDO, tol)["alerted"] == 0


def test_anomaly_signal_must_fit_the_event() -> None:
    pid = PSEUDO("wearable", "w-2")
    events = [event("tachycardia", "w-2", 10.0, 40.0)]
    hr = alert("anomaly", pid, 20.0, evidence={"signal": "heart_rate"})
    spo2 = alert("anomaly", pid, 20.0, evidence={"signal": "spo2"})
    fall = alert("fall", pid, 20.0)
    assert match_truth(events, [hr], PSEUDO)["by_type"]["tachycardia"] == {
        "events": 1,
        "alerted": 1,
    }
    assert match_truth(events, [spo2], PSEUDO)["alerted"] == 0
    assert match_truth(events, [fall], PSEUDO)["alerted"] == 0


def test_a_latched_limit_alarm_covers_events_until_its_clear_record() -> None:
    pid = PSEUDO("wearable", "w-1")
    # raised at 40 for an episode from 30; a second tachycardia from 58 s (the alarm still
    # latched: it raised nothing new); a third from 120, after the alarm cleared at 75
    events = [event("tachycardia", "w-1", t, t + 15) for t in (30.0, 58.0, 120.0)]
    raised = alert("tachycardia", pid, 40.0, start=30.0, id="a1")
    cleared = alert("tachycardia", pid, 75.0, start=30.0, id="a1", end=75.0)
    result = match_truth(events, [raised, cleared], PSEUDO)
    assert result["by_type"]["tachycardia"] == {"events": 3, "alerted": 2}
    assert [e["start"] for e in result["missed"]] == [120.0]
    assert result["unmatched_alerts"] == 0  # one alarm, two records
    # never cleared: active until the end of the run
    assert match_truth(events, [raised], PSEUDO)["alerted"] == 3
    # a fall (not latching) counts at its sensor time only
    falls = [event("fall", "w-1", 30.0, 45.0), event("fall", "w-1", 120.0, 135.0)]
    assert match_truth(falls, [alert("fall", pid, 40.0, start=40.0)], PSEUDO)["alerted"] == 1


def test_nuisance_events_count_false_alarms_not_detections() -> None:
    pid = PSEUDO("eldercare", "h-1")
    events = [
        event("fall_like", "h-1", 50.0, 60.0, "eldercare"),
        event("fall", "h-1", 200, 220, "eldercare"),
    ]
    result = match_truth(events, [alert("fall", pid, 55.0)], PSEUDO)
    assert result["events"] == 1 and result["alerted"] == 0  # only the real fall counts
    assert result["by_type"]["fall_like"] == {"events": 1, "alerted": 1}  # a false alarm
    assert result["unmatched_alerts"] == 1
    assert result["missed"][0]["type"] == "fall"


def test_district_episode_matched_by_station_or_district() -> None:
    events = [event("pm25_episode", "aq-centro-01", 0.0, 30.0, "airq")]
    station = alert("aqi_category", "aq-centro-01", 25.0)
    district = alert("aqi_category", "centro", 25.0, subject_kind="district")
    other = alert("aqi_category", "lingotto", 25.0, district="lingotto")
    assert match_truth(events, [station], PSEUDO)["alerted"] == 1
    assert match_truth(events, [district], PSEUDO)["alerted"] == 1
    assert match_truth(events, [other], PSEUDO)["alerted"] == 0


def test_air_anomaly_detects_a_pollution_episode_of_its_own_signal_only() -> None:
    """A station's ``air_anomaly`` alert (evidence.signal) detects the episode of that
    pollutant; on another pollutant it is no detection, and on a sensor fault it counts as
    the fault's false alarm."""
    events = [event("pm25_episode", "aq-centro-01", 0.0, 30.0, "airq")]
    pm25 = alert("air_anomaly", "aq-centro-01", 20.0, evidence={"signal": "pm25"})
    o3 = alert("air_anomaly", "aq-centro-01", 20.0, evidence={"signal": "o3"})
    assert match_truth(events, [pm25], PSEUDO)["alerted"] == 1
    assert match_truth(events, [o3], PSEUDO)["alerted"] == 0
    stuck = [event("stuck_value", "aq-centro-01", 0.0, 30.0, "airq")]
    result = match_truth(stuck, [pm25], PSEUDO)
    assert result["by_type"]["stuck_value"]["alerted"] == 1


def test_percentiles_match_numpy_and_empty_is_unknown() -> None:
    values = np.random.default_rng(1).exponential(0.2, size=1001)
    p = percentiles(values)
    assert p["p50"] == pytest.approx(float(np.median(values)), abs=1e-6)
    assert p["p99"] == pytest.approx(float(np.percentile(values, 99)), abs=1e-6)
    assert p["count"] == 1001
    assert percentiles([]) == {"p50": None, "p99": None, "max": None, "count": 0}


def test_latency_is_kafka_time_minus_sensor_time() -> None:
    a = alert("fall", "s", 100.0, kafka_ts=100.25)
    b = alert("fall", "t", 200.0, kafka_ts=200.75)
    assert alert_latencies([a, b]) == [0.25, 0.75]
    c = alert("tachycardia", "u", 300.0, kafka_ts=300.125)
    by_type = latency_by_type([a, b, c])
    assert list(by_type) == ["fall", "tachycardia"]
    assert by_type["fall"] == percentiles([0.25, 0.75])
    assert by_type["tachycardia"]["max"] == pytest.approx(0.125)


def test_absence_alerts_count_from_the_threshold_not_the_last_sample() -> None:
    """An offline alert's sensor_ts is the last sample, 300 s before the condition held."""
    offline = alert("device_offline", "s", 100.0, start=400.0, kafka_ts=400.5)
    station = alert("station_offline", "q", 100.0, start=400.0, kafka_ts=401.0)
    quiet = alert("inactivity", "h", 0.0, start=14400.0, kafka_ts=14400.25)
    assert alert_latencies([offline, station, quiet]) == [0.5, 1.0, 0.25]


def test_alert_updates_and_duplicates_are_told_apart() -> None:
    first = alert("news2", "s", 100.0, severity="warning")
    update = {**first, "sensor_ts": 104.0}  # same episode (same id), later reading
    escalation = {**first, "severity": "critical"}
    section = alerts_section([first, update, dict(first), escalation, dict(update)])
    assert section["total"] == 1 and section["records"] == 5
    assert section["updates"] == 2 and section["duplicates"] == 2
    assert section["by_type"] == {"news2": 1}


def test_events_too_close_to_the_end_are_not_judged() -> None:
    events = [event("fall", "w-1", 100.0, 120.0), event("fall", "w-2", 195.0, 220.0)]
    result = match_truth(events, [], PSEUDO, Tolerance(settle_s=10.0), traffic_end=200.0)
    assert result["events"] == 1 and result["too_late"] == 1
    assert result["by_type"] == {"fall": {"events": 1, "alerted": 0}}


def test_a_fever_needs_its_climb_before_it_can_be_judged() -> None:
    # 13 s before the end: a fall is judged, a fever (still climbing) is not
    events = [event("fall", "w-1", 187.0, 220.0), event("fever", "w-2", 187.0, 240.0)]
    result = match_truth(events, [], PSEUDO, Tolerance(settle_s=10.0), traffic_end=200.0)
    assert result["by_type"] == {"fall": {"events": 1, "alerted": 0}}
    assert result["too_late"] == 1


def test_summary_shape_and_per_channel_loss() -> None:
    settings = Settings(influx_db_sensitive="s", influx_db_public="p")
    channels = raw_channels(settings)
    assert set(channels) == set(RAW_MEASUREMENTS)
    assert channels["airq/air"] == "p/air" and channels["wearable/vitals"] == "s/vitals"
    simulator = {
        "published": 12,
        "malformed": 2,
        "published_by_family_channel": {"wearable/vitals": 10, "airq/air": 2},
    }
    pid = PSEUDO("wearable", "w-9")
    summary = build_summary(
        simulator=simulator,
        ingested=12,
        dead_lettered=2,
        dead_letter_reasons={"json": 2},
        stored={"s/vitals": 9, "p/air": 2},
        raw_channels=channels,
        alerts=[alert("fall", pid, 5.0, kafka_ts=5.5)],
        truth_events=[event("fall", "w-9", 4.0, 8.0)],
        pseudonym=PSEUDO,
        influx_url="http://127.0.0.1:8086",
        influx_api="v1",
    )
    assert check_shape(summary) == []
    assert summary["dead_letter_distinct"] == summary["dead_lettered"] == 2
    assert summary["missing_by_channel"] == {"wearable/vitals": 1}
    assert summary["truth"]["by_type"]["fall"] == {"events": 1, "alerted": 1}
    assert summary["alert_latency_s"]["p50"] == pytest.approx(0.5)
    assert summary["alert_latency_s"]["by_type"]["fall"]["p99"] == pytest.approx(0.5)
    assert check_shape({**summary, "published": "12"}) == ["published is str"]
    assert "influx needs url and api v1|v2" in check_shape({**summary, "influx": {"api": "v3"}})


def test_chaos_specs() -> None:
    assert ChaosEvent.parse("kill-worker@20") == ChaosEvent("kill-worker", 20.0, 2.0)
    assert ChaosEvent.parse("restart-influx@30:5") == ChaosEvent("restart-influx", 30.0, 5.0)
    for bad in ("kill-worker", "explode@3", "kill-bridge@soon", "kill-bridge@-1"):
        with pytest.raises(ChaosSpecError):
            ChaosEvent.parse(bad)


def test_redelivered_dead_letter_has_the_same_digest() -> None:
    error = {"topic": "city/x/wearable/w-1/vitals", "rule": "json", "errors": []}
    topic = "city/x/wearable/w-1/vitals"
    first = encode_deadletter(topic, b"{bad", error, bridge="a/1", received_at=1.0)
    again = encode_deadletter(topic, b"{bad", error, bridge="a/2", received_at=9.0)
    other = encode_deadletter(topic, b"{worse", error, bridge="a/1", received_at=1.0)
    assert dead_letter_reason(first) == dead_letter_reason(again)
    assert dead_letter_reason(first)[0] == "json"
    assert dead_letter_reason(first)[1] != dead_letter_reason(other)[1]
    assert dead_letter_reason(b"not json")[0] == "?"


def test_a_parts_log_tail_is_its_current_incarnations(tmp_path: Path) -> None:
    """``cityhealth up`` quotes it when a part dies before it is ready (CI keeps no logs)."""
    script = "import sys; print('line 1'); print('failed: ' + sys.argv[1]); sys.exit(1)"
    part = ManagedProcess(
        "worker", lambda n: [sys.executable, "-c", script, f"#{n}"], {}, tmp_path / "w.log"
    )
    for _ in range(2):
        part.start()
        assert part.wait(30) == 1
    tail = part.log_tail()
    assert tail.splitlines()[0].startswith("=== cityhealth up: start worker #1 ")
    assert tail.splitlines()[1:] == ["line 1", "failed: #1"]
    assert part.log_tail(lines=1) == "failed: #1"


def test_the_live_count_of_alerts_by_type_leaves_clear_records_out() -> None:
    watch = KafkaWatch({}, "alerts", "dead", ["vitals"], "group")
    records = [
        {"id": "a", "type": "tachycardia", "sensor_ts": 10.0, "end": None},
        {"id": "a", "type": "tachycardia", "sensor_ts": 30.0, "end": 30.0},
    ]
    batch = [SimpleNamespace(value=json.dumps(r).encode(), timestamp=31_000) for r in records]
    watch._absorb({TopicPartition("alerts", 0): batch})
    watch._loop.close()  # never started
    state = watch.snapshot()
    assert len(state.alerts) == 2 and state.alert_types == {"tachycardia": 1}


def test_the_parts_get_this_runs_settings_and_the_ambient_worker_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cityhealth up`` starts its parts with its own settings, not ambient ones, but
    passes ``CITYHEALTH_WORKER_*`` through: they are no setting, and were dropped."""
    from cityhealth.pipeline.job import UpJob, UpOptions
    from streams.config import WorkerConfig

    monkeypatch.setenv("CITYHEALTH_WORKER_CHECKPOINT_INTERVAL_S", "2.5")
    monkeypatch.setenv("CITYHEALTH_TOPIC_PREFIX", "ambient.")
    settings = Settings(topic_prefix="run.", data_dir=tmp_path)
    env = UpJob(settings, UpOptions(run_dir=tmp_path / "run"))._env()
    assert env["CITYHEALTH_TOPIC_PREFIX"] == "run."
    assert env["CITYHEALTH_WORKER_CHECKPOINT_INTERVAL_S"] == "2.5"
    monkeypatch.delenv("CITYHEALTH_WORKER_CHECKPOINT_INTERVAL_S")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert WorkerConfig().checkpoint_interval_s == 2.5  # what the worker process reads
