"""On-device impact triggering (simulators.burst): flush on an impact, then short windows."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict

import numpy as np
import orjson
import pytest

from ingest.contract import decode
from kernels.fall import DEFAULTS, FallDetector
from simulators import motion
from simulators.accel import AccelPlayer, ClipBank
from simulators.base import HeldWindows
from simulators.burst import BURST_WINDOW_S, TRIGGER_G, BurstConfig, BurstWindows
from simulators.scenario import Scenario, load_scenario
from tests.simulators.helpers import START, run_inprocess

G = motion.G0


def _with(scenario: str, **keys: float) -> Scenario:
    sc = load_scenario(scenario)
    sections = {k: dict(v) for k, v in sc.sections.items()}
    for family in ("wearable", "eldercare"):
        sections[family].update(keys)
    return dataclasses.replace(sc, sections=sections)


def _still(k: int, n: int) -> np.ndarray:
    w = np.zeros((k, 3, n))
    w[:, 2] = G
    return w


def _cut_at(b: BurstWindows, t0: float, w: np.ndarray, row: int = 0) -> list[int]:
    return np.flatnonzero(b.cuts(np.arange(w.shape[0]), t0, w)[row]).tolist()


def test_cuts_flush_on_the_impact_then_burst_while_still_then_1s_windows() -> None:
    b = BurstWindows(3, 50.0, BurstConfig(burst_s=3.0))
    idx = np.arange(3)
    w = _still(3, 50)
    w[1, 0, 23] = 2.0 * G  # |a| > 1.45 g at sample 23 (t0 + 0.46 s) of device 1
    cuts = b.cuts(idx, 100.0, w)
    assert np.flatnonzero(cuts[0]).tolist() == [49] == np.flatnonzero(cuts[2]).tolist()
    # the partial window up to the impact goes at once
    assert np.flatnonzero(cuts[1]).tolist() == [23, 49]
    assert b.bursts == 1
    # 0.2-s windows on the 1-s grid once the 0.8 s before them hold no impact
    assert _cut_at(b, 101.0, _still(3, 50), 1) == [29, 39, 49]
    assert _cut_at(b, 102.0, _still(3, 50), 1) == list(range(9, 50, 10))
    # the burst lasts 3 s after the impact sample (until 103.46); 103.38 is its last
    # sample, and the rest of that second is one window
    assert _cut_at(b, 103.0, _still(3, 50), 1) == [9, 19, 49]
    assert _cut_at(b, 104.0, _still(3, 50), 1) == [49]
    assert b.bursts == 1


def test_without_the_stillness_test_every_burst_piece_is_cut() -> None:
    b = BurstWindows(1, 50.0, BurstConfig(quiet_g=0.0))
    w = _still(1, 50)
    w[0, 0, 23] = 2.0 * G
    assert _cut_at(b, 100.0, w) == [23, 29, 39, 49]
    assert _cut_at(b, 101.0, _still(1, 50)) == list(range(9, 50, 10))


def test_a_trigger_during_a_burst_extends_it_without_a_new_flush() -> None:
    b = BurstWindows(1, 25.0, BurstConfig(quiet_g=0.0, burst_s=3.0))
    w = _still(1, 25)
    w[0, 1, 0] = 3.0 * G
    assert _cut_at(b, 0.0, w) == [0, 4, 9, 14, 19, 24]
    w = _still(1, 25)
    w[0, 1, 12] = 3.0 * G  # at 2.48 s: the burst now lasts until 5.48 s
    assert _cut_at(b, 2.0, w) == [4, 9, 14, 19, 24]
    assert b.bursts == 1
    assert _cut_at(b, 5.0, _still(1, 25)) == [4, 9, 24]


def test_gait_triggers_one_flush_but_no_burst_windows() -> None:
    """Strides cross the trigger but are never still: one message, not five a second."""
    b = BurstWindows(1, 50.0)
    t = np.arange(250) / 50.0
    w = _still(1, 250)
    w[0, 2] += 0.5 * G * np.sin(2 * np.pi * 1.8 * t)  # 1.5 g peaks at 1.8 steps/s
    cuts = [_cut_at(b, float(sec), w[:, :, 50 * sec : 50 * sec + 50]) for sec in range(5)]
    assert cuts[0] == [5, 49] and all(c == [49] for c in cuts[1:])
    assert b.bursts == 1
    # standing still afterwards: 0.2-s windows once 0.8 s were still, until the burst ends
    assert _cut_at(b, 5.0, _still(1, 50)) == [49]
    assert _cut_at(b, 6.0, _still(1, 50)) == list(range(9, 50, 10))


def test_trigger_off_and_bad_settings() -> None:
    b = BurstWindows(1, 50.0, BurstConfig(trigger_g=0.0))
    w = _still(1, 50)
    w[0, 0, 3] = 10 * G
    assert _cut_at(b, 0.0, w) == [49]
    assert BurstConfig.from_section({}) == BurstConfig()
    assert BurstConfig.from_section({"burst_quiet_g": 0}).quiet_g == 0.0
    for bad in ({"burst_window_s": 0}, {"burst_quiet_s": 0}, {"burst_trigger_g": -1}):
        with pytest.raises(ValueError, match="burst settings"):
            BurstConfig.from_section(bad)


def test_held_windows_leave_by_end_time_then_held_order() -> None:
    held = HeldWindows()
    held.hold(11.0, [("a", b"1")])
    held.hold(10.2, [("b", b"2")])
    held.hold(11.0, [("c", b"3")])
    assert held.due(10.1) == []
    assert held.due(10.2) == [("b", b"2")]
    assert held.due(11.0) == [("a", b"1"), ("c", b"3")]


def test_trigger_covers_every_impact_the_fall_detector_considers() -> None:
    """The device must not stay silent for 1 s on an impact the detector may call a fall."""
    lowest = min(DEFAULTS["impact_g"], DEFAULTS["soft_impact_g"])
    assert lowest >= TRIGGER_G
    cfg = BurstConfig()
    # the latest decision: a hard impact not yet still gets one more late_still_s window
    latest = DEFAULTS["settle_s"] + DEFAULTS["still_s"] + DEFAULTS["late_still_s"]
    assert latest + cfg.window_s < cfg.burst_s
    # the stillness test looks at part of the detector's stillness window (module docstring)
    assert cfg.quiet_s + cfg.window_s <= DEFAULTS["still_s"] + 1e-9
    assert cfg.quiet_g >= DEFAULTS["still_g"] * np.sqrt(DEFAULTS["still_s"] / cfg.quiet_s)


def _windows(msgs: list[tuple[str, bytes]]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for topic, payload in msgs:
        if topic.endswith(("/accel", "/pendant")) and payload[:1] == b"{":
            out[topic].append(orjson.loads(payload))
    return out


def test_bursts_cut_the_same_samples_into_valid_short_windows() -> None:
    on, truth_on, _ = run_inprocess("smoke", seed=2, duration=45.0)
    off, truth_off, _ = run_inprocess(_with("smoke", burst_trigger_g=0.0), seed=2, duration=45.0)
    assert truth_on == truth_off
    won, woff = _windows(on), _windows(off)
    assert set(won) == set(woff)
    short = 0
    for topic, wins in won.items():
        rate = wins[0]["rate_hz"]
        assert all(len(w["x"]) == round(rate) for w in woff[topic])  # off: 1-s windows only
        short += sum(len(w["x"]) < round(rate) for w in wins)
        # the same samples, in order: each window starts where the one before ended, or
        # whole seconds later (a device offline, a resident out of home)
        for a, b in itertools.pairwise(wins):
            gap = b["t0"] - (a["t0"] + len(a["x"]) / rate)
            assert gap > -1e-6 and abs(gap - round(gap)) < 1e-6, (topic, a["t0"], b["t0"])
        for axis in "xyz":
            got = np.concatenate([w[axis] for w in wins])
            ref = np.concatenate([w[axis] for w in woff[topic]])
            # (at the end of the run, short windows of the last second already left)
            m = min(got.size, ref.size)
            assert np.array_equal(got[:m], ref[:m]) and abs(ref.size - got.size) < rate
    assert short > 100
    # every short window passes the contract
    for topic, payload in on:
        if topic.endswith(("/accel", "/pendant")):
            decode(topic, payload, now=START + 60.0)
    # every fall's device flushes at its first trigger (the impact, or a stumble or stride
    # before it) and sends the sample at impact + 2 s (lying still) within 0.25 s
    falls = [e for e in truth_on if e["type"] == "fall" and e["impact_ts"] + 3.0 < START + 44.0]
    assert len(falls) >= 3
    for e in falls:
        wins = won[next(t for t in won if t.split("/")[3] == e["device_id"])]
        ends = [w["t0"] + len(w["x"]) / w["rate_hz"] for w in wins]
        assert any(e["impact_ts"] - 1.0 < end < e["impact_ts"] + 0.5 for end in ends), e
        assert any(e["impact_ts"] + 2.0 <= end <= e["impact_ts"] + 2.25 for end in ends), e


def _play(rate: float, placements: list[str], seed: int) -> dict[str, np.ndarray]:
    """Every fall clip of a bank played by its own device, second by second, as sent.

    Returns float64[n, T] ``x``, ``y``, ``z``, ``t`` and ``end`` (when the window holding
    each sample ends, i.e. leaves the device).
    """
    rng = np.random.default_rng(seed)
    bank = ClipBank(rng, rate_hz=rate, placements=placements, per_activity=6, names=motion.FALLS)
    n, per = bank.length.size, round(rate)
    player = AccelPlayer(bank, n, rng, window=per)
    idx = np.arange(n)
    player.clip[idx] = idx  # device i plays clip i from its start
    player.pos[idx] = 0
    burst = BurstWindows(n, rate)
    s = np.arange(per)
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for sec in range(int(bank.length.min()) // per):
        w = player.windows(idx)
        cut = burst.cuts(idx, float(sec), w)
        # the window holding sample j ends at the first cut at or after j
        nxt = np.minimum.accumulate(np.where(cut, s, per)[:, ::-1], axis=1)[:, ::-1]
        for k, axis in enumerate("xyz"):
            parts[axis].append(w[:, k])
        parts["t"].append(np.broadcast_to(sec + s / rate, (n, per)))
        parts["end"].append(sec + (nxt + 1) / rate)
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}


@pytest.mark.parametrize(
    ("rate", "placements"), [(50.0, ["wrist", "waist", "pocket"]), (25.0, ["pendant"])]
)
def test_every_detected_fall_leaves_the_device_within_a_burst_window(
    rate: float, placements: list[str]
) -> None:
    """The fall detector on the played clips: each decision sample waits <= 0.2 s."""
    p = _play(rate, placements, seed=11)
    n = p["t"].shape[0]
    dev = np.repeat(np.arange(n)[None, :], p["t"].shape[1], axis=0).T
    flat = {k: np.ascontiguousarray(v.T).ravel() for k, v in p.items()}  # time-major batch
    det = FallDetector(n)
    ev_dev, ev_t = det.update(
        np.ascontiguousarray(dev.T).ravel().astype(np.int64),
        flat["t"],
        flat["x"],
        flat["y"],
        flat["z"],
    )
    assert ev_dev.size >= 0.8 * n  # most clips are detected: the check is not vacuous
    decide = DEFAULTS["settle_s"] + DEFAULTS["still_s"]
    for d, ti in zip(ev_dev.tolist(), ev_t.tolist(), strict=True):
        k = int(np.flatnonzero(p["t"][d] >= ti + decide - 1e-9)[0])
        wait = p["end"][d, k] - p["t"][d, k]
        assert wait <= BURST_WINDOW_S + 1e-9, (d, ti, wait)
