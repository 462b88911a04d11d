"""Clinical limit rules of the vitals processor (streams.limits): sustained, de-bounced,
one alert per episode, exertion-aware, replay-safe, and any chunking gives the one-shot
result."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.limits import (
    DEVICE_STATE,
    N_RULES,
    RULE_STATE,
    RULES,
    SIGN_STATE,
    LimitEvents,
    Timing,
    check_limits,
    rule_table,
)
from streams.state import Columns

T0 = 1_763_700_000.0
NORMAL = (70.0, 97.0, 36.7, 15.0)
RULE = {r.name: i for i, r in enumerate(RULES)}


class Rules:
    """The rule state of ``n`` devices, as the vitals processor keeps it."""

    def __init__(self, n: int = 2, timing: Timing | None = None) -> None:
        self.rules = Columns(RULE_STATE, n * N_RULES)
        self.devices = Columns(DEVICE_STATE, n)
        self.signs = Columns(SIGN_STATE, n * 4)
        self.timing = timing or Timing()

    def run(self, dev, t, values, steps=None) -> LimitEvents:
        t = np.asarray(t, dtype=float)
        steps = np.full(t.size, np.nan) if steps is None else np.asarray(steps, dtype=float)
        return check_limits(
            np.asarray(dev, dtype=np.int64),
            t,
            np.asarray(values, dtype=float).reshape(t.size, 4),
            steps,
            {k: self.rules[k] for k in RULE_STATE},
            {k: self.devices[k] for k in DEVICE_STATE},
            {k: self.signs[k] for k in SIGN_STATE},
            rule_table(),
            self.timing,
        )


def series(hr: list[float], start: float = T0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One device at 1 Hz with the given heart rates and normal other signs."""
    n = len(hr)
    values = np.tile(NORMAL, (n, 1))
    values[:, 0] = hr
    return np.zeros(n, np.int64), start + np.arange(n, dtype=float), values


def test_sustained_violation_alerts_once_with_the_run_start() -> None:
    dev, t, v = series([70] * 10 + [140] * 30 + [70] * 5)
    ev = Rules().run(dev, t, v)
    assert ev.rule.tolist() == [RULE["tachycardia"]]
    assert ev.start.tolist() == [T0 + 10]  # the first reading beyond the limit
    assert t[ev.row[0]] == T0 + 15  # after sustain_s (5 s)


def test_short_violation_and_isolated_spikes_do_not_alert() -> None:
    short = [70] * 10 + [140] * 4 + [70] * 10
    spikes = [70, 70, 230, 70, 70, 70, 225, 70, 240, 70, 70, 70, 70, 215, 70] * 3
    for hr in (short, spikes):
        dev, t, v = series(hr)
        assert Rules().run(dev, t, v).row.size == 0


def test_noise_around_the_limit_is_one_episode_and_a_new_one_after_clearing() -> None:
    wobble = [52, 48, 47, 50, 46, 48, 47, 51, 46, 47, 48, 47] * 2  # bradycardia, noisy
    hr = [70] * 5 + wobble + [70] * 15 + wobble
    dev, t, v = series(hr)
    ev = Rules().run(dev, t, v)
    assert ev.rule.tolist() == [RULE["bradycardia"]] * 2


def test_an_episode_reports_the_reading_that_clears_it() -> None:
    # two tachycardias 6 s apart are one latched alarm; it clears 10 s after the second
    hr = [70] * 5 + [140] * 10 + [70] * 6 + [140] * 10 + [70] * 15
    dev, t, v = series(hr)
    ev = Rules().run(dev, t, v)
    assert ev.rule.tolist() == [RULE["tachycardia"]] and ev.start.tolist() == [T0 + 5]
    assert ev.cleared_rule.tolist() == [RULE["tachycardia"]]
    assert ev.cleared_start.tolist() == [T0 + 5]  # the alarm's start: its alert id
    assert t[ev.cleared_row].tolist() == [T0 + 30 + 10]  # last beyond exit + clear_s


def test_exertion_raises_the_limit_unless_the_onset_is_abrupt() -> None:
    # walking (steps advancing): a gradual rise to 130 is exercise, a jump 95 -> 135 is not
    gradual = np.concatenate([np.linspace(95, 130, 40), np.full(20, 130.0)])
    steps = np.arange(60) * 2.0
    dev, t, v = series(gradual.tolist())
    assert Rules().run(dev, t, v, steps).row.size == 0
    dev, t, v = series([95.0] * 30 + [135.0] * 20)
    ev = Rules().run(dev, t, v, np.arange(50) * 2.0)
    assert ev.rule.tolist() == [RULE["tachycardia"]] and ev.active[1:].all()
    # at rest the same plateau of 130 alerts
    dev, t, v = series(gradual.tolist())
    assert Rules().run(dev, t, v).rule.tolist() == [RULE["tachycardia"]]


def test_each_sign_has_its_rule() -> None:
    cases = {
        "desaturation": (1, 86.0),
        "fever": (2, 38.6),
        "hypothermia": (2, 34.5),
        "tachypnoea": (3, 28.0),
        "bradypnoea": (3, 6.0),
    }
    for name, (col, value) in cases.items():
        values = np.tile(NORMAL, (20, 1))
        values[5:, col] = value
        ev = Rules(1).run(np.zeros(20, np.int64), T0 + np.arange(20.0), values)
        assert ev.rule.tolist() == [RULE[name]], name


def test_a_rise_over_the_own_baseline_is_fever_below_the_limit() -> None:
    """IDSA (older adults): a rise of more than 1.1 degC over baseline is fever, even when
    the reading stays below 38.0 degC (someone whose normal is 36.2)."""
    values = np.tile(NORMAL, (60, 1))
    values[:, 2] = 36.2
    values[30:, 2] = 37.5
    ev = Rules(1).run(np.zeros(60, np.int64), T0 + np.arange(60.0), values)
    assert ev.rule.tolist() == [RULE["fever"]] and ev.start.tolist() == [T0 + 30]
    values[30:, 2] = 37.1  # +0.9 degC: no
    assert Rules(1).run(np.zeros(60, np.int64), T0 + np.arange(60.0), values).row.size == 0


def test_replayed_readings_change_nothing() -> None:
    dev, t, v = series([70] * 10 + [140] * 30)
    rules = Rules()
    first = rules.run(dev, t, v)
    again = rules.run(dev, t, v)
    assert first.row.size == 1 and again.row.size == 0


def events(t: np.ndarray, ev: LimitEvents) -> list[tuple[str, float, int, float]]:
    """Alarms raised and cleared: (kind, reading time, rule, alarm start)."""
    raised = zip(t[ev.row].tolist(), ev.rule.tolist(), ev.start.tolist(), strict=True)
    cleared = zip(
        t[ev.cleared_row].tolist(), ev.cleared_rule.tolist(), ev.cleared_start.tolist(), strict=True
    )
    return [("raised", *e) for e in raised] + [("cleared", *e) for e in cleared]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from([40.0, 70.0, 130.0, 160.0])), max_size=150
    ),
    st.lists(st.integers(1, 149), max_size=6),
)
def test_any_chunking_equals_one_shot(rows, cuts) -> None:
    n = len(rows)
    dev = np.array([r[0] for r in rows], dtype=np.int64)
    t = T0 + np.arange(n, dtype=float) / 3
    values = np.tile(NORMAL, (n, 1))
    values[:, 0] = [r[1] for r in rows]
    steps = np.where(np.arange(n) % 40 < 20, np.arange(n) // 2, 0).astype(float)
    one = Rules(3)
    whole = one.run(dev, t, values, steps)
    expected = events(t, whole)
    chunked = Rules(3)
    got: list[tuple[str, float, int, float]] = []
    bounds = sorted({0, n, *(c for c in cuts if c < n)})
    for lo, hi in itertools.pairwise(bounds):
        got += events(t[lo:hi], chunked.run(dev[lo:hi], t[lo:hi], values[lo:hi], steps[lo:hi]))
    assert sorted(got) == sorted(expected)
    for mine, theirs in ((one.rules, chunked.rules), (one.signs, chunked.signs)):
        state_a, state_b = mine.export_state(np.arange(3)), theirs.export_state(np.arange(3))
        for key in state_a:
            np.testing.assert_array_equal(state_a[key], state_b[key])
