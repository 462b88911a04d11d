"""Simulators without a broker: validity, ground truth, signal behaviour, determinism."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import orjson
import pytest

from ingest.contract import ContractViolation, decode
from simulators.events import EVENT_TYPES
from simulators.plugins import build
from simulators.scenario import load_scenario
from tests.simulators.helpers import START, run_inprocess

NOW = START + 60.0  # reference clock for the contract's time rules


@pytest.fixture(scope="module")
def smoke() -> tuple[list[tuple[str, bytes]], list[dict], object]:
    return run_inprocess("smoke", seed=7, duration=50.0)  # guaranteed events: 25-45 s


def test_every_message_decodes(smoke) -> None:
    msgs, _, _ = smoke
    assert len(msgs) > 7_000
    encodings = defaultdict(int)
    for topic, payload in msgs:
        encodings[decode(topic, payload, now=NOW).encoding] += 1
    # a share of devices speaks SenML (all air-quality stations' half, 10 % of the others)
    assert encodings["senml"] > 100 and encodings["json"] > 7_000


def test_truth_has_every_event_type(smoke) -> None:
    _, truth, _ = smoke
    types = {e["type"] for e in truth}
    assert types == set(EVENT_TYPES)
    for e in truth:
        assert {"type", "device_id", "family", "start", "end", "district"} <= set(e)
        assert START <= e["start"] <= e["end"]
        assert e["family"] in EVENT_TYPES[e["type"]].families
    falls = [e for e in truth if e["type"] == "fall"]
    assert all(e["fall_type"] in {"forward", "backward", "lateral", "slump_chair"} for e in falls)
    assert all(e["start"] <= e["impact_ts"] <= e["end"] for e in falls)
    assert {e["placement"] for e in falls} <= {"wrist", "waist", "pocket", "pendant"}
    assert {e["activity"] for e in truth if e["type"] == "fall_like"} <= {
        "sitting_down_hard",
        "jumping",
        "lying_down_bed",
    }


def _series(msgs, device: str, channel: str, field: str) -> list[tuple[float, float]]:
    out = []
    for topic, payload in msgs:
        parts = topic.split("/")
        if parts[3] == device and parts[4] == channel:
            m = decode(topic, payload, now=NOW).model
            v = getattr(m, field, None)
            if v is not None:
                out.append((m.ts, v))
    return out


def _inside(series, e, margin: float = 1.5) -> list[float]:
    return [v for t, v in series if e["start"] + margin <= t <= e["end"] - margin]


def test_vital_events_show_in_the_signals(smoke) -> None:
    msgs, truth, _ = smoke
    checks = {
        "tachycardia": ("heart_rate", lambda v: min(v) >= 115),
        "bradycardia": ("heart_rate", lambda v: max(v) <= 55),
        "desaturation": ("spo2", lambda v: max(v) <= 92),
        "fever": ("body_temp", lambda v: max(v) >= 37.4),
    }
    seen = 0
    for e in truth:
        # an event cut by the run's end may show only its onset (a fever rises over 30 % of
        # its span): check the events that end inside the run
        if e["type"] in checks and e["end"] - e["start"] > 5 and e["end"] <= START + 50.0:
            field, ok = checks[e["type"]]
            values = _inside(_series(msgs, e["device_id"], "vitals", field), e)
            if values:
                seen += 1
                assert ok(values), (e, values)
    assert seen >= 3


def test_offline_devices_are_silent(smoke) -> None:
    msgs, truth, _ = smoke
    for e in truth:
        if e["type"] == "device_offline":
            for topic, payload in msgs:
                if topic.split("/")[3] == e["device_id"]:
                    m = decode(topic, payload, now=NOW).model
                    t = getattr(m, "ts", None) or getattr(m, "t0", None)
                    assert t is None or not (e["start"] + 0.01 < t < e["end"] - 0.01), e


def test_pm25_episode_raises_pm25(smoke) -> None:
    msgs, truth, _ = smoke
    episodes = [e for e in truth if e["type"] == "pm25_episode"]
    assert episodes
    e = episodes[0]
    s = _series(msgs, e["device_id"], "air", "pm25")
    mid = (e["start"] + e["end"]) / 2
    peak = [v for t, v in s if abs(t - mid) <= (e["end"] - e["start"]) * 0.3]
    before = [v for t, v in s if t < e["start"]]
    if peak and before:
        assert np.median(peak) > np.median(before) + 40


def test_fall_windows_show_an_impact(smoke) -> None:
    msgs, truth, _ = smoke
    by_topic = defaultdict(list)
    for topic, payload in msgs:
        if topic.endswith(("/accel", "/pendant")):
            by_topic[topic.split("/")[3]].append(payload)
    falls = [e for e in truth if e["type"] == "fall" and e["impact_ts"] < START + 39.0]
    assert len(falls) >= 3
    for e in falls:  # (impacts after the end of the run were never sent)
        peak = 0.0
        for payload in by_topic[e["device_id"]]:
            w = orjson.loads(payload) if payload[:1] == b"{" else None
            if w and w["t0"] <= e["impact_ts"] <= w["t0"] + 1.0:
                a = np.sqrt(np.square(w["x"]) + np.square(w["y"]) + np.square(w["z"]))
                peak = max(peak, float(a.max()))
        assert peak > 1.3 * 9.81, e  # an impact well above 1 g in the impact window


def test_same_seed_same_bytes() -> None:
    a, ta, _ = run_inprocess("smoke", seed=3, duration=15.0, malformed_rate=0.02)
    b, tb, _ = run_inprocess("smoke", seed=3, duration=15.0, malformed_rate=0.02)
    c, _, _ = run_inprocess("smoke", seed=4, duration=15.0)
    assert a == b and ta == tb
    assert a != c


def test_malformed_messages_are_rejected_and_counted_apart() -> None:
    msgs, _, runner = run_inprocess("smoke", seed=5, duration=10.0, malformed_rate=0.05)
    st = runner.stats
    assert st.malformed > 50 and len(msgs) == st.published + st.malformed
    assert set(st.malformed_by_kind) == {
        "bad_json",
        "out_of_range",
        "wrong_type",
        "missing_field",
        "future_ts",
        "bad_topic",
    }
    rejected = 0
    for topic, payload in msgs:
        try:
            decode(topic, payload, now=START + 10.0)
        except ContractViolation as exc:
            assert exc.to_dict()  # structured, never a crash
            rejected += 1
    assert rejected == st.malformed
    # without malformed messages, the valid sequence is the same as with them
    clean, _, _ = run_inprocess("smoke", seed=5, duration=10.0)
    assert len(clean) == st.published


def test_inactivity_and_dropout_show_in_the_data(smoke) -> None:
    msgs, truth, _ = smoke
    checked = 0
    for e in truth:
        inside = []
        for topic, payload in msgs:
            dev, channel = topic.split("/")[3], topic.split("/")[4]
            if dev != e["device_id"]:
                continue
            m = decode(topic, payload, now=NOW).model
            t = getattr(m, "ts", None)
            if t is not None and e["start"] + 1.0 < t < e["end"] - 1.0:
                inside.append((channel, m))
        if e["type"] == "inactivity":
            assert not [m for ch, m in inside if ch == "motion" and m.motion], e
            checked += 1
        elif e["type"] == "dropout" and e["family"] == "wearable":
            vitals = [m for ch, m in inside if ch == "vitals"]
            assert vitals and all(getattr(m, e["field"]) is None for m in vitals), e
            checked += 1
    assert checked >= 2


def test_sample_windows_are_sent_once_recorded() -> None:
    """Accelerometer and pendant windows leave at the first tick after their last sample is
    taken (a device sends what it has recorded), so in real time no sensor time is in the
    future. 1-s and 0.2-s burst windows end on a tick; a flush on an impact
    (simulators.burst) ends at its trigger sample and leaves at the next tick."""
    sc = load_scenario("smoke").with_counts(wearable=20, eldercare=10, airq=0)
    sims = build(sc, 3)
    sent: dict[str, int] = defaultdict(int)
    short = 0
    for k in range(round(20 / sc.tick_s)):
        now = START + k * sc.tick_s
        for sim in sims:
            for topic, payload in sim.tick(now):
                channel = topic.rsplit("/", 1)[1]
                if channel in ("accel", "pendant"):
                    w = decode(topic, payload, now=NOW).model
                    end = w.t0 + len(w.x) / w.rate_hz
                    assert end - 1e-6 <= now < end + sc.tick_s - 1e-6, (topic, w.t0, now)
                    sent[channel] += 1
                    short += len(w.x) < w.rate_hz
    assert sent["accel"] > 19 * 15 and sent["pendant"] > 0
    assert short > 0


def _series_key(topic: str, payload: bytes) -> tuple[object, ...]:
    """What InfluxDB keeps one point per: the series (device and channel in the topic,
    room/door tags) and the reading's time."""
    m = decode(topic, payload, now=NOW).model
    # a window: its first sample's time
    when = (m.t0 if m.t0 is not None else m.t[0]) if hasattr(m, "t0") else m.ts
    return (topic, getattr(m, "room", None), getattr(m, "door", None), when)


def test_one_reading_per_series_and_instant(smoke) -> None:
    """Two readings of one series at one timestamp would be one point in InfluxDB, and
    ``cityhealth up`` would count the other as lost (it did at ¼ district: a stuck
    kitchen PIR and the resident's own kitchen motion in the same tick)."""
    msgs, _, _ = smoke
    keys = [_series_key(t, p) for t, p in msgs]
    assert len(keys) > 7_000
    assert len(set(keys)) == len(keys)


def test_a_stuck_kitchen_pir_sends_one_message_when_the_resident_triggers_it_too() -> None:
    from simulators.eldercare import ACTIVE, KITCHEN, ElderCareSimulator

    sc = load_scenario("smoke")
    sim = next(s for s in build(sc, 3) if isinstance(s, ElderCareSimulator))
    now = START + 100.0
    d = np.array([0, 1])
    for dev in (0, 1):  # both in the kitchen already, moving: their PIR is due now
        sim.loc[dev], sim.posture[dev], sim.motion_next[dev] = KITCHEN, ACTIVE, now
    sim.stuck_until[:2], sim.stuck_next[:2] = now + 600.0, now  # ... and stuck, due too
    sim.motion_next[1] = now + 10.0  # device 1's own PIR is not due
    out: list[tuple[str, bytes]] = []
    sim._edges(d, np.array([KITCHEN, KITCHEN]), np.array([ACTIVE, ACTIVE]), now, now, out)
    kitchen = [(t, orjson.loads(p)) for t, p in out if t.endswith("/motion")]
    per_device = defaultdict(list)
    for topic, body in kitchen:
        per_device[topic.split("/")[3]].append(body)
    assert sorted(len(v) for v in per_device.values()) == [1, 1]  # one each, not two for 0
    assert sim.stuck_next[0] == now + 30.0 and sim.stuck_next[1] == now + 30.0
