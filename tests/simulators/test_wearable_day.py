"""Simulated wearers' normal days: activity in bouts, heart rate through the reserve.

By day each 10-s accelerometer clip used to be a fresh draw from the day mix, so a wearer
switched between sitting, walking, stairs and jogging every 10 s and the heart rate
jumped with it (docs/SIMULATORS.md, day activity). Now activities come in bouts, heart
rate follows ``HR_rest + intensity (HR_max - HR_rest)`` with first-order kinetics, and
normal days stay clear of every clinical limit alarm of streams.limits.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from simulators.scenario import load_scenario
from simulators.wearable import (
    DAY_BOUTS,
    NORMAL_HR_MAX,
    TAU_OFF_S,
    TAU_ON_S,
    WearableSimulator,
    intensity_caps,
    local_hour,
    max_heart_rates,
    resting_rates,
)
from streams.limits import (
    DEVICE_STATE,
    N_RULES,
    RULE_STATE,
    RULES,
    SIGN_STATE,
    Timing,
    check_limits,
    rule_table,
)
from streams.state import Columns
from tests.simulators.test_wearable_night import NIGHT_START, quiet_scenario

#: 10:00 local time in the smoke city (UTC + 1), after the morning exercise times.
DAY_START = NIGHT_START + 7 * 3600
TACHYCARDIA = next(r for r in RULES if r.name == "tachycardia")


def simulate(
    sim: WearableSimulator, start: float, seconds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Readings ``[device, ts, hr, spo2, temp, resp, steps]``, and the bout activity, bout
    end and exertion of every device and second (``[seconds, n]``)."""
    rows = []
    bouts, until = np.empty((seconds, sim.n), np.int64), np.empty((seconds, sim.n))
    exertion = np.empty((seconds, sim.n))
    for k in range(seconds):
        for topic, payload in sim.tick(start + k):
            if topic.endswith("/vitals"):
                m = orjson.loads(payload)
                rows.append(
                    (
                        int(topic.split("/")[-2].removeprefix("wear-")),
                        m["ts"],
                        m.get("heart_rate", np.nan),
                        m.get("spo2", np.nan),
                        m.get("body_temp", np.nan),
                        m.get("respiration_rate", np.nan),
                        m["steps"],
                    )
                )
        bouts[k] = sim.bout_act
        until[k] = sim.bout_until
        exertion[k] = sim.exertion
    assert sim.truth() == []
    return np.array(rows), bouts, until, exertion


def bout_lengths(act: np.ndarray, until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activity and length (s) of one device's bouts (a new bout sets a new end time),
    without the first and the last (cut by the window)."""
    starts = np.flatnonzero(until[1:] != until[:-1]) + 1
    return act[starts[:-1]], np.diff(starts)


@pytest.fixture(scope="module")
def day() -> tuple[WearableSimulator, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three hours (10:00-13:00) of 30 wearers without events."""
    sim = WearableSimulator(quiet_scenario(30), np.random.default_rng(5))
    return (sim, *simulate(sim, DAY_START, 3 * 3600))


def test_the_window_is_the_day() -> None:
    assert local_hour(DAY_START, 1.0) == pytest.approx(10.0)


def test_day_activity_comes_in_bouts(day) -> None:
    sim, _, bouts, until, _ = day
    code = sim.bank.code
    acts, lengths = [], []
    for d in range(sim.n):
        a, n = bout_lengths(bouts[:, d], until[:, d])
        acts.append(a)
        lengths.append(n)
    act, length = np.concatenate(acts), np.concatenate(lengths)
    # about 9 bouts an hour (the clip-by-clip mix switched about 265 times an hour)
    assert 5 <= act.size / (sim.n * 3.0) <= 14
    for name, (_, (lo, hi)) in DAY_BOUTS.items():
        n = length[act == code[name]]
        assert n.size >= 10, name
        # a bout plays whole 10-s clips of its activity: its length, rounded up
        assert lo <= n.min() and n.max() <= hi + 10, name
        # log-uniform: the median is about the geometric mean of the range
        assert 0.6 * np.sqrt(lo * hi) <= np.median(n) <= 1.6 * np.sqrt(lo * hi) + 10, name
    # time shares near the accelerometry of US adults (55 % sedentary)
    share = {a: np.mean(bouts == code[a]) for a in DAY_BOUTS}
    assert 0.4 <= share["sitting"] <= 0.7
    assert 0.1 <= share["standing"] <= 0.4 and 0.08 <= share["walking"] <= 0.3
    assert share["stairs"] <= 0.03
    # a bout plays its activity's clips (a sitting bout starts by sitting down)
    played = sim.player.activity(np.arange(sim.n))
    assert np.all((played == sim.bout_act) | (played == code["sitting_down"]))


def test_heart_rate_kinetics_are_first_order_and_bounded(day) -> None:
    sim, rows, _, _, exertion = day
    rise, fall = 1 - np.exp(-1 / TAU_ON_S), 1 - np.exp(-1 / TAU_OFF_S)
    step = np.diff(exertion, axis=0)
    cap = sim.ex_cap.max()
    assert step.max() <= rise * cap + 1e-12 and step.min() >= -fall * cap - 1e-12
    assert exertion.max() <= cap + 1e-12
    # heart rate moves second by second, not in steps per clip
    jumps = []
    for d in range(sim.n):
        hr = rows[rows[:, 0] == d, 2]
        jumps.append(np.abs(np.diff(hr[~np.isnan(hr)])))
    jump = np.concatenate(jumps)
    assert np.mean(jump) <= 1.0 and np.percentile(jump, 99.9) <= 8
    assert np.nanmax(rows[:, 2]) < NORMAL_HR_MAX + 15


def test_same_seed_same_day_other_seed_another() -> None:
    def payloads(seed: int) -> list[bytes]:
        sim = WearableSimulator(quiet_scenario(8), np.random.default_rng(seed))
        return [p for k in range(600) for _, p in sim.tick(DAY_START + 8 * 3600 + k)]

    a = payloads(11)
    assert a == payloads(11)
    assert a != payloads(12)


@pytest.mark.parametrize("seed", range(2))
def test_normal_days_raise_no_limit_alarm(seed: int) -> None:
    """Every wearer exercises (jogging, then a cool-down walk) in the evening peak of the
    circadian rhythm: no limit alarm of streams.limits fires (tachycardia included)."""
    sim = WearableSimulator(quiet_scenario(30), np.random.default_rng(seed))
    sim.ex_hour[:] = np.random.default_rng(seed).uniform(17.0, 17.25, sim.n)
    start = DAY_START + 7.75 * 3600  # 16:45 local
    rows, bouts, _, _ = simulate(sim, start, 5400)
    jogging = np.mean(bouts == sim.bank.code["jogging"], axis=0)
    assert np.all(jogging >= 600 / 5400 * 0.95)  # everybody jogged 10-40 min
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    n = sim.n
    rules, devices, signs = (
        Columns(RULE_STATE, n * N_RULES),
        Columns(DEVICE_STATE, n),
        Columns(SIGN_STATE, n * 4),
    )
    ev = check_limits(
        rows[:, 0].astype(np.int64),
        rows[:, 1],
        rows[:, 2:6],
        rows[:, 6],
        {k: rules[k] for k in RULE_STATE},
        {k: devices[k] for k in DEVICE_STATE},
        {k: signs[k] for k in SIGN_STATE},
        rule_table(),
        Timing(),
    )
    assert [RULES[r].name for r in ev.rule] == []
    hr = rows[:, 2]
    assert np.nanmax(hr) < TACHYCARDIA.enter_active
    # exercise reached the wearers' capped intensity: the check is not vacuous
    assert np.nanpercentile(hr, 99) >= 110


@pytest.mark.parametrize("seed", range(3))
def test_intensity_caps_keep_the_day_below_the_normal_maximum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    amp = rng.uniform(4, 8, 5000)
    rest = resting_rates(rng, amp)
    hr_max = max_heart_rates(rng.uniform(20, 80, 5000))
    cap = intensity_caps(rest, amp, hr_max)
    peak = rest + amp + cap * (hr_max - rest)
    assert np.all(peak <= NORMAL_HR_MAX + 1e-9)
    # half the wearers still jog at 50 % of their reserve or more (ACSM moderate: 40-59 %)
    assert np.median(np.minimum(cap, 0.67)) >= 0.5


def test_events_do_not_depend_on_the_activity_model() -> None:
    """Bouts and steps draw from a child stream: the same seed gives the same events
    (and event draws) whatever the activity schedule, so a change to the day model does
    not reshuffle the truth that other tests and figures rest on."""
    scenario = load_scenario("smoke").with_counts(wearable=40)

    def truth(one_clip_bouts: bool) -> list[dict]:
        sim = WearableSimulator(scenario, np.random.default_rng(4))
        if one_clip_bouts:  # every day bout one clip long: a different schedule
            sim.day_bout[:] = 1.0
        for k in range(600):  # 60 s in the smoke city's 0.1-s ticks
            sim.tick(DAY_START + k * scenario.tick_s)
        return sim.truth()

    got = truth(False)
    assert len(got) >= 3
    assert got == truth(True)
