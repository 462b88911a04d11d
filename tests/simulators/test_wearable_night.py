"""Simulated wearers' normal nights: asleep in bouts, heart rate above the bradycardia limit.

The pipeline's bradycardia alarm is absolute (streams.limits: <= 49 /min enters, > 55
clears), so a simulated wearer whose normal sleeping rate sat near it raised alarms with
no labelled event (docs/SIMULATORS.md, heart-rate population).
"""

from __future__ import annotations

import tomllib
from importlib import resources

import numpy as np
import orjson
import pytest

from simulators.scenario import parse_scenario
from simulators.wearable import SLEEP_HR_MIN, WearableSimulator, local_hour, resting_rates
from streams.limits import RULES

BRADYCARDIA = next(r for r in RULES if r.name == "bradycardia")
#: 03:00 local time in the smoke city (UTC + 1): the circadian trough is at 05:00.
NIGHT_START = 1_780_000_000.0 - 1_780_000_000.0 % 86400 + 2 * 3600


def quiet_scenario(wearables: int):
    """The smoke city with ``wearables`` wearables, 1-s ticks and no events at all."""
    text = resources.files("simulators.scenarios").joinpath("smoke.toml").read_text("utf-8")
    data = tomllib.loads(text)
    data.update(tick_s=1.0, guarantee_events_within_s=0)
    data["wearable"].update(count=wearables, senml_fraction=0.0)
    data["events"] = {k: {"rate_per_hour": 0.0, "duration_s": [1, 2]} for k in data["events"]}
    return parse_scenario(data, "quiet-night")


@pytest.fixture(scope="module")
def night() -> tuple[WearableSimulator, np.ndarray, np.ndarray, np.ndarray]:
    """Two hours of 30 wearers around the circadian trough: device, heart rate, activity."""
    sim = WearableSimulator(quiet_scenario(30), np.random.default_rng(3))
    lying = sim.bank.code["lying"]
    dev, hr, still = [], [], []
    for k in range(2 * 3600):
        now = NIGHT_START + k
        for topic, payload in sim.tick(now):
            if topic.endswith("/vitals"):
                d = int(topic.split("/")[-2].removeprefix("wear-"))
                dev.append(d)
                hr.append(orjson.loads(payload).get("heart_rate", np.nan))
                still.append(sim.player.activity(np.array([d]))[0] == lying)
    assert sim.truth() == []
    return sim, np.array(dev), np.array(hr, dtype=float), np.array(still)


def test_the_window_is_the_night() -> None:
    assert local_hour(NIGHT_START, 1.0) == pytest.approx(3.0)


def test_no_normal_night_reaches_the_bradycardia_limit(night) -> None:
    _, dev, hr, _ = night
    assert dev.size > 0.95 * 30 * 7200  # every wearer, every second
    assert np.nanmin(hr) > BRADYCARDIA.enter
    # and every wearer spends most of the night above the alarm's exit limit, so an
    # alarm raised by a bradycardia event clears once the event ends
    above = np.array([np.mean(hr[dev == d] > BRADYCARDIA.leave) for d in range(30)])
    assert above.min() >= 0.8 and np.median(above) >= 0.99


def test_sleep_comes_in_bouts(night) -> None:
    """Asleep most of the night, getting up about once a night (not every few minutes)."""
    _, dev, _, still = night
    assert still.mean() >= 0.9
    get_ups = 0
    for d in range(30):
        s = still[dev == d]
        get_ups += int(np.sum(s[:-1] & ~s[1:]))
    assert get_ups / (30 * 2.0) <= 0.6  # per wearer and hour (the clip-by-clip mix: ~36)


@pytest.mark.parametrize("seed", range(5))
def test_resting_rates_keep_every_sleeping_rate_above_the_floor(seed: int) -> None:
    rng = np.random.default_rng(seed)
    amp = rng.uniform(4, 8, 5000)
    hr = resting_rates(rng, amp)
    assert np.all(hr - amp >= SLEEP_HR_MIN) and np.all(hr <= 90)
    # a healthy adult population (Quer et al. 2020: 65.5 +- 7.7), less its low tail
    assert 66 <= hr.mean() <= 72 and 4 <= hr.std() <= 7
    assert np.percentile(hr - amp, 50) <= 66  # sleeping rates typical of adults (50-70)
