"""kernels.anomaly: Numba == naive reference, chunk invariance, causality, state, bad input."""

from __future__ import annotations

import hashlib
import itertools
import math
import platform
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels._exp as _exp_module
import kernels.anomaly as anomaly_module
from kernels._exp import NEVER, mismatches
from kernels.anomaly import (
    _EXP,
    COLUMNS,
    THRESHOLD,
    AnomalyScorer,
    _update_parallel,
    as_batch,
    exp_inlined,
    score,
)
from tests.reference.anomaly import ReferenceAnomalyScorer

HYP = settings(max_examples=60, deadline=None)

# -- adversarial interleaved streams ------------------------------------------------------

_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, 1.0, 70.0, -3.5, 1e-9, 1e99, 5e100, np.nan, np.inf, -np.inf]),
)
_steps = st.one_of(
    st.floats(0.0, 5.0),
    st.sampled_from([0.0, 0.0, 1.0, 1e-12, 60.0, 3600.0, 86400.0 * 3, -1.0, -1e-9]),
)


@st.composite
def streams(draw: st.DrawFn, max_len: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interleaved (device, t, x): noisy per-device clocks, spikes, flats, NaN, bad times."""
    n_dev = draw(st.integers(1, 4))
    n = draw(st.integers(0, max_len))
    device = np.array(draw(st.lists(st.integers(0, n_dev - 1), min_size=n, max_size=n)))
    steps = draw(st.lists(_steps, min_size=n, max_size=n))
    kind = draw(st.sampled_from(["drawn", "noise", "flat"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "drawn":
        x = np.array(draw(st.lists(_values, min_size=n, max_size=n)), dtype=float)
    elif kind == "noise":
        x = 50.0 + rng.standard_normal(n) * np.where(rng.random(n) < 0.05, 30.0, 1.0)
    else:
        x = np.round(70.0 + 0.3 * rng.standard_normal(n))
    clock = np.zeros(n_dev)
    t = np.empty(n)
    for i, (d, step) in enumerate(zip(device, steps, strict=True)):
        clock[d] += step
        t[i] = clock[d]
    if n and draw(st.booleans()):
        t[draw(st.integers(0, n - 1))] = np.nan
    return device.astype(np.int64), t + 1.7e9, x


def _ref(device: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.array(ReferenceAnomalyScorer().update(device, t, x), dtype=float)


def _ref_level(device: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.array(ReferenceAnomalyScorer().update_with_level(device, t, x)[1], dtype=float)


@HYP
@given(streams())
def test_numba_equals_reference(stream: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    device, t, x = stream
    got = AnomalyScorer(4).update(device, t, x)
    np.testing.assert_array_equal(got, _ref(device, t, x))


@HYP
@given(streams(), st.booleans())
def test_level_equals_reference_and_leaves_scores_and_state_alone(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray], parallel: bool
) -> None:
    """update_with_level: the reference's level bit for bit, and exactly update's
    scores and state (the level is a by-product of the same pass)."""
    device, t, x = stream
    plain, with_level = AnomalyScorer(4), AnomalyScorer(4)
    want = plain.update(device, t, x)
    got, level = with_level.update_with_level(device, t, x, parallel=parallel)
    assert level.dtype == np.float64 and level.shape == x.shape
    np.testing.assert_array_equal(got, want)
    ref_score, ref_level = ReferenceAnomalyScorer().update_with_level(device, t, x)
    np.testing.assert_array_equal(got, np.array(ref_score, dtype=float))
    np.testing.assert_array_equal(level, np.array(ref_level, dtype=float))
    np.testing.assert_array_equal(_state(with_level), _state(plain))
    # NaN exactly where the score is NaN (rejected or already seen)
    np.testing.assert_array_equal(np.isnan(level), np.isnan(got))


def test_level_is_the_expected_value_before_the_sample() -> None:
    """A steady series has its own value as level; a spike is compared with the level
    before it, which it then moves by at most huber_k scales / weight."""
    t = np.arange(600.0)
    x = np.full(600, 20.0)
    x[500] = 80.0
    scores, level = AnomalyScorer(1).update_with_level(np.zeros(600, np.int64), t, x)
    assert level[0] == 20.0  # first sample: its own level
    np.testing.assert_array_equal(level[:501], 20.0)
    assert scores[500] >= THRESHOLD
    assert 20.0 < level[501] < 21.0  # the clipped step after the spike


@HYP
@given(streams(), st.integers(1, 5), st.lists(st.integers(0, 300), max_size=3))
def test_parallel_equals_serial(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray], shards: int, cuts: list[int]
) -> None:
    """Sharding devices over threads changes neither the scores nor the state, whatever
    the number of shards (more shards than devices included), chunk by chunk."""
    device, t, x = stream
    serial, sharded = AnomalyScorer(4), AnomalyScorer(4)
    bounds = [0, *sorted(c % (len(x) + 1) for c in cuts), len(x)]
    for a, b in itertools.pairwise(bounds):
        want = serial.update(device[a:b], t[a:b], x[a:b])
        dev, tt, xx = as_batch(device[a:b], t[a:b], x[a:b], 4)
        if dev.size:
            state, packed, out = sharded._state["state"], sharded._packed, np.empty(dev.size)
            level = np.empty(dev.size)
            got = _update_parallel(dev, tt, xx, state, packed, out, level, shards)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(level, _ref_level(device, t, x)[a:b])
    np.testing.assert_array_equal(
        sharded.export_state(range(4))["state"], serial.export_state(range(4))["state"]
    )


def test_parallel_keyword_uses_the_sharded_loop() -> None:
    device, t, x = _stream(3000, 7, 11)
    serial = AnomalyScorer(7)
    parallel = AnomalyScorer(7)
    np.testing.assert_array_equal(
        parallel.update(device, t, x, parallel=True), serial.update(device, t, x)
    )
    np.testing.assert_array_equal(
        parallel.export_state(range(7))["state"], serial.export_state(range(7))["state"]
    )


@HYP
@given(streams(), st.lists(st.integers(0, 300), max_size=6))
def test_chunked_equals_one_shot(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray], cuts: list[int]
) -> None:
    """Scores, and the levels of update_with_level, whatever the chunking."""
    device, t, x = stream
    whole = AnomalyScorer(4).update(device, t, x)
    whole_level = AnomalyScorer(4).update_with_level(device, t, x)[1]
    scorer, leveled = AnomalyScorer(4), AnomalyScorer(4)
    bounds = [0, *sorted(c % (len(x) + 1) for c in cuts), len(x)]
    parts = [scorer.update(device[a:b], t[a:b], x[a:b]) for a, b in itertools.pairwise(bounds)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    levels = [
        leveled.update_with_level(device[a:b], t[a:b], x[a:b])[1]
        for a, b in itertools.pairwise(bounds)
    ]
    np.testing.assert_array_equal(np.concatenate(levels), whole_level)


@HYP
@given(streams())
def test_scores_in_unit_interval_and_nan_only_for_rejected(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    device, t, x = stream
    out = AnomalyScorer(4).update(device, t, x)
    assert out.dtype == np.float64 and out.shape == x.shape
    finite = out[np.isfinite(out)]
    assert np.all((finite >= 0.0) & (finite <= 1.0))
    bad_input = ~np.isfinite(x) | ~np.isfinite(t) | (np.abs(x) > 1e100)
    assert np.all(np.isnan(out[bad_input]))


@HYP
@given(streams(), st.integers(0, 300), st.floats(-1e3, 1e3))
def test_causal(stream: tuple[np.ndarray, np.ndarray, np.ndarray], cut: int, change: float) -> None:
    """Changing samples after i never changes score[i]."""
    device, t, x = stream
    cut = cut % (len(x) + 1)
    base = AnomalyScorer(4).update(device, t, x)
    x2 = x.copy()
    x2[cut:] += change
    np.testing.assert_array_equal(AnomalyScorer(4).update(device, t, x2)[:cut], base[:cut])


def test_score_is_single_device_scorer() -> None:
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.exponential(5.0, 2000))
    x = 60 + rng.standard_normal(2000)
    np.testing.assert_array_equal(
        score(t, x), AnomalyScorer(1).update(np.zeros(2000, np.int64), t, x)
    )


def test_interleaving_does_not_mix_devices() -> None:
    """A device's scores depend only on its own samples, however devices interleave."""
    rng = np.random.default_rng(2)
    series = [
        (np.cumsum(rng.uniform(0.5, 2, 500)), rng.normal(k * 10, k + 1, 500)) for k in range(3)
    ]
    device = np.repeat(np.arange(3), 500)
    t = np.concatenate([s[0] for s in series])
    x = np.concatenate([s[1] for s in series])
    order = np.argsort(t, kind="stable")
    mixed = np.empty(1500)
    mixed[order] = AnomalyScorer(3).update(device[order], t[order], x[order])
    for k, (tk, xk) in enumerate(series):
        np.testing.assert_array_equal(mixed[device == k], score(tk, xk))


# -- state: checkpoint, grow, reset --------------------------------------------------------


def _stream(n: int, n_dev: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    device = rng.integers(0, n_dev, n)
    t = np.sort(rng.uniform(0, n, n))
    x = rng.normal(20, 2, n) + np.where(rng.random(n) < 0.01, 40.0, 0.0)
    return device, t, x


def test_checkpoint_round_trip() -> None:
    device, t, x = _stream(4000, 6, 3)
    whole = AnomalyScorer(6).update(device, t, x)
    first = AnomalyScorer(6)
    head = first.update(device[:2000], t[:2000], x[:2000])
    saved = first.export_state(np.arange(6))
    assert set(saved) == {"state"} and saved["state"].shape == (6, len(COLUMNS))
    fresh = AnomalyScorer(2)  # smaller: import grows capacity
    fresh.import_state(np.arange(6), saved)
    tail = fresh.update(device[2000:], t[2000:], x[2000:])
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)


def test_rebalance_one_device_to_another_worker_slot() -> None:
    """Device 2 moves to another worker where it is slot 0: its scores continue exactly."""
    device, t, x = _stream(4000, 4, 11)
    whole = AnomalyScorer(4).update(device, t, x)
    mine = device == 2
    old_worker = AnomalyScorer(4)
    old_worker.update(device[:2000], t[:2000], x[:2000])
    new_worker = AnomalyScorer(1)
    new_worker.import_state([0], old_worker.export_state([2]))
    rest = mine & (np.arange(4000) >= 2000)
    moved = new_worker.update(np.zeros(rest.sum(), np.int64), t[rest], x[rest])
    np.testing.assert_array_equal(moved, whole[rest])


def test_grow_keeps_state_and_new_devices_start_fresh() -> None:
    device, t, x = _stream(3000, 3, 4)
    whole = AnomalyScorer(3).update(device, t, x)
    scorer = AnomalyScorer(3)
    head = scorer.update(device[:1500], t[:1500], x[:1500])
    scorer.grow(10)
    assert scorer.n_devices == 10
    tail = scorer.update(device[1500:], t[1500:], x[1500:])
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)
    np.testing.assert_array_equal(
        scorer.update(np.array([9]), np.array([1.0]), np.array([5.0])), [0.0]
    )


def test_reset_forgets_a_device() -> None:
    device, t, x = _stream(1000, 2, 5)
    scorer = AnomalyScorer(2)
    scorer.update(device, t, x)
    scorer.reset([1])
    np.testing.assert_array_equal(
        scorer.export_state([1])["state"], AnomalyScorer(1).export_state([0])["state"]
    )


# -- bad input ---------------------------------------------------------------------------


def _state(scorer: AnomalyScorer) -> np.ndarray:
    return scorer.export_state(np.arange(scorer.n_devices))["state"]


@pytest.mark.parametrize(
    ("device", "t", "x"),
    [
        ([0, 1], [1.0, 2.0], [1.0]),  # mismatched lengths
        ([0, 1], [1.0], [1.0, 2.0]),
        ([0, 5], [1.0, 2.0], [1.0, 2.0]),  # out of range
        ([0, -1], [1.0, 2.0], [1.0, 2.0]),
        ([0.0, 1.0], [1.0, 2.0], [1.0, 2.0]),  # float device indices
        ([[0, 1]], [[1.0, 2.0]], [[1.0, 2.0]]),  # not 1-D
    ],
)
def test_bad_batches_raise_before_any_state_change(device: list, t: list, x: list) -> None:
    d0, t0, x0 = _stream(500, 2, 6)
    scorer = AnomalyScorer(2)
    scorer.update(d0, t0, x0)
    before = _state(scorer)
    with pytest.raises(ValueError):
        scorer.update(device, t, x)
    np.testing.assert_array_equal(_state(scorer), before)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e101])
def test_bad_value_scores_nan_and_leaves_state(bad: float) -> None:
    d0, t0, x0 = _stream(500, 1, 7)
    scorer = AnomalyScorer(1)
    scorer.update(d0, t0, x0)
    before = _state(scorer)
    out = scorer.update(np.array([0]), np.array([t0[-1] + 1.0]), np.array([bad]))
    assert np.isnan(out[0])
    np.testing.assert_array_equal(_state(scorer), before)


def test_time_going_backwards_and_duplicates_are_rejected() -> None:
    d0, t0, x0 = _stream(500, 1, 8)
    scorer = AnomalyScorer(1)
    scorer.update(d0, t0, x0)
    before = _state(scorer)
    out = scorer.update(np.array([0]), np.array([t0[-1] - 1.0]), np.array([x0[-1]]))
    assert np.isnan(out[0])
    np.testing.assert_array_equal(_state(scorer), before)
    # t == t_last is already seen (FallDetector does the same): NaN, state unchanged,
    # even with a different value.
    dup = scorer.update(np.array([0, 0]), np.array([t0[-1]] * 2), np.array([x0[-1], 1e6]))
    assert np.all(np.isnan(dup))
    np.testing.assert_array_equal(_state(scorer), before)
    nxt = scorer.update(np.array([0, 0]), np.array([t0[-1] + 1.0] * 2), np.array([x0[-1]] * 2))
    assert np.isfinite(nxt[0]) and np.isnan(nxt[1])
    assert _state(scorer)[0, COLUMNS.index("n")] == before[0, COLUMNS.index("n")] + 1


@HYP
@given(streams(), st.integers(0, 300), st.integers(1, 3))
def test_replaying_processed_samples_is_a_no_op(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray], start: int, times: int
) -> None:
    """At-least-once delivery: re-sending any suffix of processed samples (even several
    times) scores NaN and leaves the state bit-identical; new samples then score as if
    the replay never happened."""
    device, t, x = stream
    start = start % (len(x) + 1)
    scorer = AnomalyScorer(4)
    scorer.update(device, t, x)
    before = _state(scorer).copy()
    for _ in range(times):
        again = scorer.update(device[start:], t[start:], x[start:])
        assert np.all(np.isnan(again))
        np.testing.assert_array_equal(_state(scorer), before)
    reference = ReferenceAnomalyScorer()
    reference.update(device, t, x)
    assert np.all(np.isnan(reference.update(device[start:], t[start:], x[start:])))
    later = np.array([3600.0 * 24 * 365 * 40])  # after every drawn time
    for d in range(4):
        got = scorer.update(np.array([d]), later + 1.7e9, np.array([42.0]))
        assert got.tolist() == reference.update([d], later + 1.7e9, [42.0])


def test_empty_batch() -> None:
    scorer = AnomalyScorer(3)
    out = scorer.update(np.array([], np.int64), np.array([]), np.array([]))
    assert out.shape == (0,) and out.dtype == np.float64
    assert score([], []).shape == (0,)
    scores, level = scorer.update_with_level(np.array([], np.int64), np.array([]), np.array([]))
    assert scores.shape == level.shape == (0,) and level.dtype == np.float64


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        AnomalyScorer(1, tau=0.0)
    with pytest.raises(ValueError):
        AnomalyScorer(1, tail_p=1.5)
    with pytest.raises(ValueError):  # a divisor in the loop (compiled with no zero checks)
        AnomalyScorer(1, scale_memory=0.0)
    with pytest.raises(ValueError):
        AnomalyScorer(1, nonsense=1.0)
    with pytest.raises(ValueError):
        AnomalyScorer(-1)


# -- behaviour the method promises --------------------------------------------------------


def test_warm_up_scores_zero() -> None:
    t = np.arange(10.0)
    x = np.array([1.0, 100.0, -50.0, 3.0, 7.0, 1e6, 0.0, 2.0, 5.0, 9.0])
    np.testing.assert_array_equal(score(t, x), np.zeros(10))


def test_flat_line_tiny_change_is_not_anomalous_large_is() -> None:
    t = np.arange(3000.0)
    x = np.full(3000, 37.0)
    x[1000] = 37.1  # one resolution step on a stuck sensor: level-relative floor
    x[2000] = 47.0  # a 10-degree jump is an anomaly
    s = score(t, x)
    assert s[1000] < THRESHOLD
    assert s[2000] >= THRESHOLD


def test_quantised_series_one_step_is_not_anomalous() -> None:
    """Integer SpO2 flat at 98 with rare ±1 steps: the resolution floors the scale."""
    t = np.arange(5000.0) * 10.0
    x = np.full(5000, 98.0)
    x[::400] = 97.0
    s = score(t, x)
    assert np.max(s[800:]) < THRESHOLD


def test_spike_is_anomalous_and_permanent_shift_stops_alerting() -> None:
    rng = np.random.default_rng(9)
    t = np.arange(20000.0)  # 1 Hz
    x = 70 + rng.standard_normal(20000)
    x[5000] += 15.0
    x[10000:] += 20.0  # permanent level shift
    s = score(t, x)
    assert s[5000] >= THRESHOLD
    assert s[10000] >= THRESHOLD
    assert np.mean(s[14000:] >= THRESHOLD) == 0.0  # adapted within ~an hour


def test_long_gap_does_not_inflate_the_first_score() -> None:
    rng = np.random.default_rng(10)
    t = np.concatenate([np.arange(3000.0), 3000.0 + 6 * 3600 + np.arange(3000.0)])
    x = 70 + rng.standard_normal(6000)
    x[3000:] += 8.0  # the level moved while the device was off
    s = score(t, x)
    assert np.max(s[3000:3050]) < THRESHOLD


# -- the inlined exp (speed): libm's bits, or libm itself ---------------------------------


def _exp_constants() -> np.ndarray:
    """The inlined exp's constants as the kernel gets them (the end of its parameters)."""
    return AnomalyScorer(1)._packed[_EXP:]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_exp_equals_libm_on_any_float(xs: list[float]) -> None:
    """The kernel's exp is math.exp bit for bit: subnormals, ±0, NaN, ±inf, overflow."""
    assert mismatches(np.array(xs, dtype=np.float64), _exp_constants()) == 0


def test_exp_equals_libm_where_the_kernel_calls_it() -> None:
    """10^6 arguments of each kind the kernel takes: history decays -Δt/τ (tiny to past
    underflow), score exponents log(tail_p)·z/u in [log tail_p, 0] and -(z-u)/β <= 0."""
    rng = np.random.default_rng(4)
    n = 1_000_000
    decay = -np.exp2(rng.uniform(-70.0, 11.0, n))
    below = math.log(0.02) * rng.random(n)
    above = -rng.exponential(20.0, n)
    grid = -np.arange(0.0, 746.0, 2.0**-6)  # every 1/64 down to where exp underflows
    for xs in (decay, below, above, grid):
        assert mismatches(xs, _exp_constants()) == 0


def test_the_kernel_cache_follows_the_inlined_exp_source() -> None:
    """Numba re-compiles a cached kernel only when its own file changed; the anomaly
    kernel inlines kernels/_exp.py, so an edit there must come with a new hash in
    kernels/anomaly.py (``_EXP_SOURCE_SHA256``), which also invalidates the cache."""
    source = Path(_exp_module.__file__).read_bytes()
    assert hashlib.sha256(source).hexdigest() == anomaly_module._EXP_SOURCE_SHA256


def _glibc_x86_64_fma_host() -> bool:
    if not (platform.system() == "Linux" and platform.machine() == "x86_64"):
        return False
    with open("/proc/cpuinfo") as cpuinfo:
        return platform.libc_ver()[0] == "glibc" and "fma" in cpuinfo.read().split()


def test_exp_is_inlined_on_glibc_x86_64_with_fma() -> None:
    """The speed path is on where it should be (a wrong constant would silently turn it
    off: the scores would stay right, only slower). Elsewhere either path is correct
    (the libm fallback gives the same bits: the next test)."""
    assert exp_inlined() or not _glibc_x86_64_fma_host()


@HYP
@given(streams(), st.booleans())
def test_libm_fallback_gives_the_same_bits(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray], parallel: bool
) -> None:
    """Scores, levels and state are the same with every exp sent to libm (the path of a
    host whose libm is not glibc's FMA build) as with the inlined exp."""
    device, t, x = stream
    inlined, libm = AnomalyScorer(4), AnomalyScorer(4)
    libm._packed[_EXP : _EXP + 2] = NEVER.view(np.float64)
    for got, want in zip(
        libm.update_with_level(device, t, x, parallel=parallel),
        inlined.update_with_level(device, t, x, parallel=parallel),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        libm.export_state(range(4))["state"], inlined.export_state(range(4))["state"]
    )
