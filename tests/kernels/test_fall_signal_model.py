"""simulators.motion: the accelerometer model the fall quality figures rest on."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.motion import (
    ACTIVITIES,
    FALLS,
    G0,
    PLACEMENTS,
    MotionTrace,
    concatenate,
    random_rotation,
    scenario,
    synthesize,
)


def _mag_g(tr: MotionTrace) -> np.ndarray:
    return np.sqrt(tr.ax**2 + tr.ay**2 + tr.az**2) / G0


def test_same_seed_same_trace_and_seeds_differ() -> None:
    a = synthesize("fall_forward", rate_hz=50, duration_s=8, placement="waist",
                   rng=np.random.default_rng(4), jitter=0.3)  # fmt: skip
    b = synthesize("fall_forward", rate_hz=50, duration_s=8, placement="waist",
                   rng=np.random.default_rng(4), jitter=0.3)  # fmt: skip
    c = synthesize("fall_forward", rate_hz=50, duration_s=8, placement="waist",
                   rng=np.random.default_rng(5), jitter=0.3)  # fmt: skip
    for k in ("t", "ax", "ay", "az", "falls"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.array_equal(a.ax, c.ax)


@pytest.mark.parametrize("activity", ACTIVITIES + FALLS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_every_activity_is_physically_plausible(activity: str, placement: str) -> None:
    tr = synthesize(activity, rate_hz=100, duration_s=10, placement=placement,
                    rng=np.random.default_rng(11), jitter=0.5)  # fmt: skip
    assert np.all(np.diff(tr.t) > 0)
    assert tr.t.size == 1000
    m = _mag_g(tr)
    assert np.all(np.isfinite(m)) and m.max() <= 16 * np.sqrt(3)
    assert 0.85 < np.median(m) < 1.2  # gravity dominates a recording
    if activity in FALLS:
        assert tr.falls.size == 1 and 2.0 <= tr.falls[0] <= 6.0
        near = np.abs(tr.t - tr.falls[0]) < 0.3
        assert m[near].max() > 1.4  # an impact at the labelled time
        assert m[tr.t > tr.falls[0] + 2.0].std() < 0.05  # lying still afterwards
    else:
        assert tr.falls.size == 0


def test_falls_show_free_fall_impact_and_orientation_change() -> None:
    tr = synthesize("fall_backward", rate_hz=200, duration_s=10, placement="waist",
                    rng=np.random.default_rng(2))  # fmt: skip
    m = _mag_g(tr)
    before = (tr.t > tr.falls[0] - 1.0) & (tr.t < tr.falls[0])
    assert m[before].min() < 0.6  # free fall
    assert m[np.abs(tr.t - tr.falls[0]) < 0.1].max() > 2.5  # impact
    a = np.stack([tr.ax, tr.ay, tr.az], axis=1)
    pre = a[tr.t < tr.falls[0] - 1.5].mean(axis=0)
    post = a[tr.t > tr.falls[0] + 2.0].mean(axis=0)
    angle = np.degrees(np.arccos(pre @ post / np.linalg.norm(pre) / np.linalg.norm(post)))
    assert angle > 45


def test_device_orientation_only_rotates_the_signal() -> None:
    def jump(rot: np.ndarray) -> MotionTrace:
        return synthesize("jumping", rate_hz=50.0, duration_s=6.0, placement="pocket",
                          rng=np.random.default_rng(1), orientation=rot)  # fmt: skip

    rot = random_rotation(np.random.default_rng(8))
    eye, turned = jump(np.eye(3)), jump(rot)
    np.testing.assert_allclose(_mag_g(eye), _mag_g(turned), atol=0.1)  # noise differs only
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_sampling_rate_softens_short_impacts() -> None:
    """The sensor averages over its sampling period, as MEMS output filters do."""
    peaks = []
    for rate in (20.0, 200.0):
        tr = synthesize("fall_lateral", rate_hz=rate, duration_s=8, placement="wrist",
                        rng=np.random.default_rng(6), orientation=np.eye(3))  # fmt: skip
        peaks.append(_mag_g(tr).max())
    assert peaks[0] < peaks[1]


def test_concatenate_and_scenario_keep_labels() -> None:
    rng = np.random.default_rng(3)
    sc = scenario(["walking", "fall_forward", "lying", "fall_slump_chair"], rate_hz=25,
                  placement="pendant", rng=rng)  # fmt: skip
    assert np.all(np.diff(sc.t) > 0)
    assert sc.falls.size == 2
    assert [s[2] for s in sc.segments] == ["walking", "fall_forward", "lying", "fall_slump_chair"]
    for f, seg in zip(sc.falls, [sc.segments[1], sc.segments[3]], strict=True):
        assert seg[0] < f < seg[1]
    a = synthesize("sitting", rate_hz=10, duration_s=2, placement="waist", rng=rng)
    b = synthesize("fall_forward", rate_hz=10, duration_s=8, placement="waist", rng=rng)
    ab = concatenate([a, b])
    assert ab.t[a.t.size] == pytest.approx(a.t[-1] + 0.1)
    assert ab.falls[0] == pytest.approx(b.falls[0] + a.t[-1] + 0.1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activity": "flying"},
        {"placement": "hat"},
        {"rate_hz": 0.0},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"activity": "walking", "rate_hz": 50.0, "duration_s": 2.0,
                               "placement": "waist", "rng": np.random.default_rng(0)}  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError):
        synthesize(**args)  # type: ignore[arg-type]
