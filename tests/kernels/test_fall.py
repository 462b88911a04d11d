"""kernels.fall: Numba == naive reference, chunk invariance, checkpoints, bad input."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.fall import DEFAULTS, PRESETS, FallDetector, detect
from simulators.motion import synthesize
from tests.reference.fall import ReferenceFallDetector, detect_events

HYP = settings(max_examples=40, deadline=None)

# Low thresholds make candidates and decisions frequent, so random streams exercise the
# decision path (both outcomes) rather than only the watching state.
TWITCHY = {
    "impact_g": 1.05,
    "strong_impact_g": 1.3,
    "freefall_g": 0.95,
    "settle_s": 0.2,
    "still_s": 0.3,
    "still_g": 0.4,
    "angle_deg": 5.0,
    "pre_s": 0.5,
    "snapshot_s": 0.1,
    "near_s": 0.6,
}
# ... and with the soft-impact path taking most decisions (hard impacts rare).
SOFT = {**TWITCHY, "impact_g": 1.6, "soft_impact_g": 1.05, "lead_deg": 20.0, "lead_s": 0.2,
        "freefall_g": 0.5}  # fmt: skip
# ... and with the activity-before cue vetoing often, both of its windows within the ring.
LOUD = {**TWITCHY, "prior_ratio": 2.0, "prior_s": 0.4, "near_s": 0.4}
# ... and with the turned-then-dropped cue off, or vetoing most candidates after a free fall.
DROP = [{**TWITCHY, "drop_frac": 0.0}, {**TWITCHY, "drop_frac": 0.05, "drop_max_g": 50.0,
        "gravity_tau_s": 0.05, "freefall_window_s": 0.3}]  # fmt: skip
# ... and with hard impacts common, waiting for stillness over two more windows (and off).
LATE = [
    {**TWITCHY, "late_still_g": 1.5, "late_still_s": 0.6},
    {**TWITCHY, "late_still_g": 1.2, "late_still_s": 0.3, "impact_window_s": 0.1},
    {**TWITCHY, "late_still_s": 0.0},
]
# ... and with the turned-then-struck cue off, or vetoing most hard impacts.
LEAD = [{**TWITCHY, "hard_lead_frac": 0.0}, {**TWITCHY, "hard_lead_frac": 0.1, "lead_s": 0.2}]
PARAM_SETS = [{}, TWITCHY, SOFT, {**SOFT, "soft_freefall_veto": 0.0}, LOUD, *DROP, *LATE, *LEAD]


@cache
def _pool() -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]:
    """A few simulated recordings (falls and their confounders) to cut streams from."""
    specs = [
        ("fall_forward", "waist", 50.0),
        ("fall_lateral", "pocket", 20.0),
        ("fall_slump_chair", "pendant", 100.0),
        ("sitting_down_hard", "pocket", 25.0),
        ("jumping", "wrist", 50.0),
        ("fall_backward", "wrist", 200.0),
    ]
    out = []
    for k, (act, place, rate) in enumerate(specs):
        tr = synthesize(
            act, rate_hz=rate, duration_s=8.0, placement=place,
            rng=np.random.default_rng(k), jitter=0.3,
        )  # fmt: skip
        out.append((tr.t, tr.ax, tr.ay, tr.az))
    return tuple(out)


Stream = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """Interleaved multi-device streams with NaN/inf, duplicate and backwards times."""
    n_dev = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["simulated", "simulated", "drawn"]))
    per_dev = []
    for _ in range(n_dev):
        if kind == "simulated":
            t, ax, ay, az = _pool()[int(rng.integers(len(_pool())))]
            a = int(rng.integers(0, t.size // 2))
            b = int(rng.integers(a, t.size + 1))
            per_dev.append((t[a:b] + rng.uniform(0, 1e3), ax[a:b], ay[a:b], az[a:b]))
        else:
            n = draw(st.integers(0, 60))
            steps = rng.choice([0.005, 0.02, 0.05, 0.3, 2.0], n)
            vals = rng.choice([0.0, 9.8, -9.8, 30.0, 3.0, 1e300], (3, n)) * rng.random((3, n))
            per_dev.append((np.cumsum(steps), vals[0], vals[1], vals[2]))
    sizes = [p[0].size for p in per_dev]
    owner = np.repeat(np.arange(n_dev), sizes)
    if draw(st.booleans()):
        rng.shuffle(owner)  # sample-wise interleaving
    else:  # message-wise interleaving: runs of one device, like MQTT payloads
        runs = [
            np.full(len(part), d)
            for d, size in enumerate(sizes)
            for part in np.array_split(np.arange(size), max(1, size // 7))
        ]
        order = rng.permutation(len(runs))
        owner = np.concatenate([runs[k] for k in order]) if runs else owner
    pos = np.zeros(n_dev, np.int64)
    n = owner.size
    t = np.empty(n)
    xyz = np.empty((3, n))
    for i, d in enumerate(owner):
        src = per_dev[d]
        t[i] = src[0][pos[d]]
        xyz[:, i] = (src[1][pos[d]], src[2][pos[d]], src[3][pos[d]])
        pos[d] += 1
    if n:
        for _ in range(draw(st.integers(0, 4))):  # corruptions
            i = int(rng.integers(n))
            what = draw(st.sampled_from(["nan", "inf", "dup", "back", "tnan"]))
            if what == "nan":
                xyz[int(rng.integers(3)), i] = np.nan
            elif what == "inf":
                xyz[int(rng.integers(3)), i] = -np.inf
            elif what == "tnan":
                t[i] = np.nan
            elif i > 0:
                t[i] = t[i - 1] if what == "dup" else t[i - 1] - 0.5
    return owner.astype(np.int64), t, xyz[0].copy(), xyz[1].copy(), xyz[2].copy()


def _reference(stream: Stream, params: dict[str, float]) -> tuple[ReferenceFallDetector, Stream]:
    ref = ReferenceFallDetector(**params)
    ev_d, ev_t = detect_events(*stream, detector=ref)
    return ref, (ev_d, ev_t, np.empty(0), np.empty(0), np.empty(0))


@HYP
@given(streams(), st.sampled_from(PARAM_SETS))
def test_numba_equals_reference(stream: Stream, params: dict[str, float]) -> None:
    det = FallDetector(4, **params)
    ev_d, ev_t = det.update(*stream)
    ref, (rd, rt, *_) = _reference(stream, params)
    np.testing.assert_array_equal(ev_d, rd)
    np.testing.assert_array_equal(ev_t, rt)
    for d in range(4):
        st_ = ref.devices.get(d)
        nonfinite = st_["skipped_nonfinite"] if st_ else 0
        backwards = st_["skipped_out_of_order"] if st_ else 0
        assert det.skipped_nonfinite[d] == nonfinite
        assert det.skipped_out_of_order[d] == backwards
        assert det.falls_detected[d] == (st_["falls"] if st_ else 0)


class TinyBufferDetector(FallDetector):
    """Forces the kernel to stop and resume whenever one event was found."""

    event_buffer = 1


@HYP
@given(streams(), st.sampled_from(PARAM_SETS))
def test_event_buffer_resume_is_invisible(stream: Stream, params: dict[str, float]) -> None:
    whole = FallDetector(4, **params).update(*stream)
    tiny = TinyBufferDetector(4, **params).update(*stream)
    np.testing.assert_array_equal(tiny[0], whole[0])
    np.testing.assert_array_equal(tiny[1], whole[1])


@HYP
@given(streams(), st.lists(st.integers(0, 10**6), max_size=6), st.sampled_from(PARAM_SETS))
def test_chunked_equals_one_shot(stream: Stream, cuts: list[int], params: dict[str, float]) -> None:
    n = stream[0].size
    whole_det = FallDetector(4, **params)
    whole = whole_det.update(*stream)
    det = FallDetector(4, **params)
    bounds = [0, *sorted(c % (n + 1) for c in cuts), n]
    parts = [det.update(*(a[lo:hi] for a in stream)) for lo, hi in itertools.pairwise(bounds)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole[0])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), whole[1])
    devs = np.arange(4)
    for key, arr in whole_det.export_state(devs).items():
        np.testing.assert_array_equal(det.export_state(devs)[key], arr, err_msg=key)


@HYP
@given(streams(), st.integers(0, 10**6), st.sampled_from(PARAM_SETS))
def test_checkpoint_restore_and_grow(stream: Stream, cut: int, params: dict[str, float]) -> None:
    """Export mid-stream, import into a fresh (smaller, then grown) detector, carry on."""
    n = stream[0].size
    c = cut % (n + 1)
    whole = FallDetector(4, **params).update(*stream)
    first = FallDetector(4, **params)
    head = first.update(*(a[:c] for a in stream))
    saved = first.export_state(np.arange(4))
    second = FallDetector(1, **params)
    second.grow(2)
    second.import_state(np.arange(4), saved)  # grows to 4
    tail = second.update(*(a[c:] for a in stream))
    np.testing.assert_array_equal(np.concatenate([head[1], tail[1]]), whole[1])
    np.testing.assert_array_equal(np.concatenate([head[0], tail[0]]), whole[0])


def test_detect_is_single_device_update() -> None:
    t, ax, ay, az = _pool()[0]
    _, ev = FallDetector(1).update(np.zeros(t.size, np.int64), t, ax, ay, az)
    got = detect(t, ax, ay, az)
    np.testing.assert_array_equal(got, ev)
    assert got.dtype == np.float64 and got.size == 1


def test_devices_do_not_interfere() -> None:
    """A fall on device 2 is reported for device 2 only, whatever the interleaving."""
    fall = _pool()[0]
    calm = synthesize(
        "walking", rate_hz=50, duration_s=8, placement="waist", rng=np.random.default_rng(9)
    )
    n1, n2 = calm.t.size, fall[0].size
    device = np.concatenate([np.zeros(n1, np.int64), np.full(n2, 2, np.int64)])
    order = np.random.default_rng(1).permutation(device.size)
    # keep each device's samples in time order while interleaving devices randomly
    device = device[order]
    t = np.empty(device.size)
    xyz = np.empty((3, device.size))
    for d, (tt, x, y, z) in ((0, (calm.t, calm.ax, calm.ay, calm.az)), (2, fall)):
        sel = device == d
        t[sel], xyz[0, sel], xyz[1, sel], xyz[2, sel] = tt, x, y, z
    ev_d, ev_t = FallDetector(3).update(device, t, *xyz)
    assert ev_d.tolist() == [2]
    np.testing.assert_array_equal(ev_t, detect(*fall))


def test_orientation_does_not_matter() -> None:
    t, ax, ay, az = _pool()[0]
    expected = detect(t, ax, ay, az)
    rng = np.random.default_rng(3)
    for _ in range(5):
        q, _r = np.linalg.qr(rng.standard_normal((3, 3)))
        a = q @ np.vstack([ax, ay, az])
        np.testing.assert_array_equal(detect(t, a[0], a[1], a[2]), expected)


# -- bad input -------------------------------------------------------------------------------


def _fed_detector() -> FallDetector:
    det = FallDetector(2)
    t, ax, ay, az = _pool()[1]
    det.update(np.zeros(100, np.int64), t[:100], ax[:100], ay[:100], az[:100])
    return det


@pytest.mark.parametrize(
    ("device", "n_t", "message"),
    [
        ([0, 0, 1], 2, "length mismatch"),
        ([0, 2], 2, "out of range"),
        ([-1, 0], 2, "out of range"),
    ],
)
def test_bad_batches_raise_before_any_change(device: list[int], n_t: int, message: str) -> None:
    det = _fed_detector()
    before = det.export_state(np.arange(2))
    t = np.arange(n_t, dtype=float) + 100.0
    with pytest.raises(ValueError, match=message):
        det.update(np.array(device), t, t * 0, t * 0, t * 0 + 9.8)
    for key, arr in det.export_state(np.arange(2)).items():
        np.testing.assert_array_equal(arr, before[key], err_msg=key)


def test_non_integer_devices_rejected() -> None:
    det = _fed_detector()
    before = det.export_state(np.arange(2))
    for device in (np.array([0.5, 1.0]), np.array([np.nan, 0.0]), np.array(["a", "b"])):
        with pytest.raises(ValueError, match="integers"):
            det.update(device, [200.0, 201.0], [0.0, 0.0], [0.0, 0.0], [9.8, 9.8])
    for key, arr in det.export_state(np.arange(2)).items():
        np.testing.assert_array_equal(arr, before[key], err_msg=key)
    ev_d, _ = det.update(np.array([1.0, 1.0]), [200.0, 201.0], [0, 0], [0, 0], [9.8, 9.8])
    assert ev_d.dtype == np.int64


def test_two_dimensional_input_rejected() -> None:
    with pytest.raises(ValueError, match="1-D"):
        FallDetector(1).update(np.zeros((2, 2), np.int64), *(np.zeros((2, 2)),) * 4)


def test_empty_batch() -> None:
    det = FallDetector(1)
    ev_d, ev_t = det.update(*(np.empty(0),) * 5)
    assert ev_d.dtype == np.int64 and ev_t.dtype == np.float64
    assert ev_d.size == ev_t.size == 0
    assert detect([], [], [], []).size == 0


def test_bad_samples_are_skipped_and_counted() -> None:
    t = np.array([0.0, 0.02, 0.02, 0.01, np.nan, 0.04, 0.06])
    ax = np.array([0.0, 0.0, 0.0, 0.0, 0.0, np.inf, 0.0])
    det = FallDetector(1)
    det.update(np.zeros(7, np.int64), t, ax, np.zeros(7), np.full(7, 9.8))
    assert det.skipped_nonfinite.tolist() == [2]
    assert det.skipped_out_of_order.tolist() == [2]
    assert det.last_time.tolist() == [0.06]


def test_unknown_or_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="unknown"):
        FallDetector(1, impact=3.0)
    with pytest.raises(ValueError, match=">= 0"):
        FallDetector(1, still_g=-1.0)
    with pytest.raises(ValueError, match="pre_s"):
        FallDetector(1, pre_s=100.0)
    with pytest.raises(ValueError, match="lead_s"):
        FallDetector(1, lead_s=100.0)
    with pytest.raises(ValueError, match="near_s"):
        FallDetector(1, near_s=3.75)
    with pytest.raises(ValueError, match="unknown preset"):
        FallDetector(1, preset="paranoid")
    assert FallDetector(1).params == DEFAULTS


def test_presets_are_overrides_and_keyword_overrides_win() -> None:
    for name, overrides in PRESETS.items():
        assert FallDetector(1, preset=name).params == {**DEFAULTS, **overrides}
    det = FallDetector(1, preset="specific", angle_deg=50.0)
    assert det.params["impact_g"] == PRESETS["specific"]["impact_g"]
    assert det.params["angle_deg"] == 50.0


@HYP
@given(streams(), st.sampled_from(sorted(PRESETS)))
def test_presets_numba_equals_reference(stream: Stream, preset: str) -> None:
    ev_d, ev_t = FallDetector(4, preset=preset).update(*stream)
    rd, rt = detect_events(*stream, detector=ReferenceFallDetector(preset=preset))
    np.testing.assert_array_equal(ev_d, rd)
    np.testing.assert_array_equal(ev_t, rt)


def _turn_and_bump(turn_s: float, drop: bool) -> tuple[np.ndarray, ...]:
    """Upright, then a 90 degree turn over ``turn_s`` ending in a 1.5 g bump at t = 4 s.

    With ``drop``, ``|a|`` falls to 0.3 g for the 0.2 s before the bump (a short free fall).
    """
    t = np.arange(0.0, 10.0, 1.0 / 50.0)
    s = np.clip((t - (4.0 - turn_s)) / turn_s, 0.0, 1.0)
    bump = np.where(np.abs(t - 4.0) < 0.011, 0.5, 0.0)  # along gravity: |a| = 1.5 g
    scale = np.where(drop & (t > 3.79) & (t < 3.99), 0.3, 1.0)
    ax = (np.sin(s * np.pi / 2) * scale + bump) * 9.80665
    az = np.cos(s * np.pi / 2) * scale * 9.80665
    return t, ax, np.zeros_like(t), az


def test_soft_impact_needs_fast_rotation_and_no_free_fall() -> None:
    """Same soft impact and final posture: only the fast turn without a drop is a fall."""
    fast = detect(*_turn_and_bump(0.3, drop=False))
    assert fast.size == 1 and abs(fast[0] - 4.0) < 0.05
    assert detect(*_turn_and_bump(1.5, drop=False)).size == 0  # controlled, slow
    dropped = _turn_and_bump(0.3, drop=True)
    assert detect(*dropped).size == 0  # free fall, then a soft landing: into a seat
    dev = np.zeros(dropped[0].size, np.int64)
    _, ev = FallDetector(1, soft_freefall_veto=0.0).update(dev, *dropped)
    assert ev.size == 1


def _turn_drop_impact(turn_start: float, drop_start: float, peak_g: float = 2.2) -> tuple:
    """Upright, then a 90 degree turn from ``turn_start`` to t = 4 s, a free fall
    (``|a|`` 0.3 g) from ``drop_start`` to 3.99 s and an impact of ``peak_g`` at 4 s."""
    t = np.arange(0.0, 10.0, 1.0 / 50.0)
    s = np.clip((t - turn_start) / (4.0 - turn_start), 0.0, 1.0)
    bump = np.where(np.abs(t - 4.0) < 0.011, peak_g - 1.0, 0.0)  # along gravity
    scale = np.where((t >= drop_start) & (t < 3.99), 0.3, 1.0)
    ax = (np.sin(s * np.pi / 2) * scale + bump) * 9.80665
    az = np.cos(s * np.pi / 2) * scale * 9.80665
    return t, ax, np.zeros_like(t), az


def test_turned_then_dropped_is_not_a_fall() -> None:
    """Same hard impact (2.2 g), free fall and final posture; only the order of the
    phases differs. Turning during the free fall is a fall; turning first (a controlled
    lowering) and then dropping the last 0.2 s is sitting down hard."""
    during = detect(*_turn_drop_impact(3.5, 3.5))
    assert during.size == 1 and abs(during[0] - 4.0) < 0.05
    first = _turn_drop_impact(3.2, 3.8)
    assert detect(*first).size == 0
    dev = np.zeros(first[0].size, np.int64)
    assert FallDetector(1, drop_frac=0.0).update(dev, *first)[1].size == 1  # cue off
    hard = _turn_drop_impact(3.2, 3.8, peak_g=3.0)  # above drop_max_g: a fall whatever came first
    assert detect(*hard).size == 1


def _turn_then_hit(turn_end: float, peak_g: float = 4.0) -> tuple:
    """Upright, a 90 degree turn over the 0.4 s ending at ``turn_end``, then at rest
    except for a ``peak_g`` impact at t = 4 s (no free fall)."""
    t = np.arange(0.0, 10.0, 1.0 / 50.0)
    s = np.clip((t - (turn_end - 0.4)) / 0.4, 0.0, 1.0)
    bump = np.where(np.abs(t - 4.0) < 0.011, peak_g - 1.0, 0.0)  # along gravity
    ax = (np.sin(s * np.pi / 2) + bump) * 9.80665
    az = np.cos(s * np.pi / 2) * 9.80665
    return t, ax, np.zeros_like(t), az


def test_turned_then_struck_is_not_a_fall() -> None:
    """Same hard impact (4 g) and final posture, no free fall; only when the turn happened
    differs. Turning in the last 0.4 s before the impact is a fall; having turned by
    0.8 s before it (a hand raised, then brought down onto a table) is not."""
    during = detect(*_turn_then_hit(4.0))
    assert during.size == 1 and abs(during[0] - 4.0) < 0.05
    first = _turn_then_hit(3.2)
    assert detect(*first).size == 0
    dev = np.zeros(first[0].size, np.int64)
    assert FallDetector(1, hard_lead_frac=0.0).update(dev, *first)[1].size == 1  # cue off


def test_checkpoints_of_the_previous_layout_are_rejected() -> None:
    """Before step 7 a checkpoint had no ``drop`` array and a 12-column ``cand``: it is
    refused (streams re-learn such devices) and the current state stays as it was."""
    det = FallDetector(2)
    det.update(np.zeros(3, np.int64), np.arange(3.0), np.zeros(3), np.zeros(3), np.full(3, 9.8))
    state = det.export_state([0, 1])
    old = {k: v for k, v in state.items() if k != "drop"}
    old["cand"] = state["cand"][:, :12]
    with pytest.raises(ValueError, match="missing arrays"):
        det.import_state([0, 1], old)
    with pytest.raises(ValueError, match="cand"):
        det.import_state([0, 1], {**state, "cand": state["cand"][:, :12]})
    after = det.export_state([0, 1])
    assert all(np.array_equal(after[k], state[k]) for k in state)


def _hard_fall(
    t_imp: float, peak_g: float = 5.0, *, move_until: float = 0.0, hit: float = 0.0,
    start: float = 0.0, gap: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Upright from ``start``, a 0.4 s turn of 90 degrees ending in a free fall (0.3 g) and
    an impact of ``peak_g`` at ``t_imp``, then lying; optionally the arm moves (+-0.5 g at
    2 Hz) from 0.1 s after the impact until ``move_until``, a 2 g hit at ``hit``, and no
    samples inside ``gap``. 50 Hz, until 5 s after the impact."""
    t = np.arange(start, t_imp + 5.0, 1.0 / 50.0)
    if gap is not None:
        t = t[(t < gap[0]) | (t >= gap[1])]
    s = np.clip((t - (t_imp - 0.4)) / 0.4, 0.0, 1.0)
    scale = np.where((t >= t_imp - 0.3) & (t < t_imp - 0.005), 0.3, 1.0)
    bump = np.where(np.abs(t - t_imp) < 0.011, peak_g - 1.0, 0.0)
    bump += np.where(np.abs(t - hit) < 0.011, 1.0, 0.0) if hit else 0.0
    moving = (t > t_imp + 0.1) & (t < move_until)
    ay = np.where(moving, 0.5 * np.sin(2 * np.pi * 2.0 * t), 0.0) * 9.80665
    ax = (np.sin(s * np.pi / 2) * scale + bump) * 9.80665
    az = np.cos(s * np.pi / 2) * scale * 9.80665
    return t, ax, ay, az


def test_no_candidate_before_the_orientation_before_is_known() -> None:
    """A fall needs ``pre_s`` (1.5 s) of history without a gap: in the first 1.5 s of a
    recording (on real wrist recordings, the hand that started it coming to rest) and
    just after a gap longer than ``pre_s`` (a device off, a reconnect) there is no
    orientation *before*, so no impact starts a candidate."""
    assert detect(*_hard_fall(3.0)).size == 1
    assert detect(*_hard_fall(1.2)).size == 0
    assert detect(*_hard_fall(1.2, start=-0.4)).size == 1  # 1.6 s of history
    assert detect(*_hard_fall(10.5, gap=(3.0, 10.0))).size == 0
    assert detect(*_hard_fall(11.6, gap=(3.0, 10.0))).size == 1
    assert detect(*_hard_fall(10.5, gap=(9.0, 10.0))).size == 1  # a 1 s gap is no reset


def test_hard_impact_may_come_to_rest_one_window_later() -> None:
    """After an impact of ``late_still_g`` (3.52 g) or more, someone who moves an arm or
    rolls over during the first stillness window and then lies still is a fall, decided
    one window (``late_still_s``, 1 s) later; a weaker impact needs the first window."""
    dev = np.zeros(1, np.int64)

    def run(trace: tuple[np.ndarray, ...], **params: float) -> np.ndarray:
        return FallDetector(1, **params).update(np.repeat(dev, trace[0].size), *trace)[1]

    assert np.allclose(detect(*_hard_fall(3.0, move_until=4.0)), [3.0], atol=0.05)
    late = _hard_fall(3.0, move_until=4.8)  # first window [4, 5) not still, [5, 6) still
    ev = detect(*late)
    assert ev.size == 1 and abs(ev[0] - 3.0) < 0.05
    assert run(late, late_still_s=0.0).size == 0  # the single window of before
    assert detect(*_hard_fall(3.0, peak_g=3.0, move_until=4.8)).size == 0  # below 3.52 g
    assert detect(*_hard_fall(3.0, move_until=5.5)).size == 0  # still only after 2.5 s
    # a weaker hit during the wait is motion of the fall's aftermath, not a new impact
    hit = _hard_fall(3.0, move_until=4.8, hit=4.5)
    ev = detect(*hit)
    assert ev.size == 1 and abs(ev[0] - 3.0) < 0.05
    assert not np.any(np.abs(run(hit, late_still_s=0.0) - 3.0) < 0.05)


def test_a_hard_impact_hit_again_later_stays_the_candidate() -> None:
    """A second, weaker contact about a second after a hard impact (knees, then the back
    against a chair on real pocket recordings) is motion of that impact's aftermath: the
    hardest hit stays the candidate and, since it was hit again, may rest one window
    later. Without the later hit a 3 g impact below ``late_still_g`` still needs its
    first window (previous test)."""
    dev = np.zeros(1, np.int64)
    again = _hard_fall(3.0, peak_g=3.0, move_until=4.6, hit=4.2)  # still from [5, 6)
    ev = detect(*again)
    assert ev.size == 1 and abs(ev[0] - 3.0) < 0.05
    off = FallDetector(1, late_still_s=0.0).update(np.repeat(dev, again[0].size), *again)[1]
    assert not np.any(np.abs(off - 3.0) < 0.05)  # the later hit replaced the impact
    # stronger than the first impact: the new hit takes its place, as before
    assert not np.any(np.abs(detect(*_hard_fall(3.0, peak_g=1.8, hit=4.2)) - 3.0) < 0.05)


def test_hit_again_survives_a_checkpoint_in_the_session_6_layout() -> None:
    """The hit-again mark is the candidate's impact window set to -inf, so the state keeps
    session 6's shapes (15-column ``cand``): a checkpoint taken while a hit-again impact
    awaits its later window restores into a fresh detector and gives the same event."""
    again = _hard_fall(3.0, peak_g=3.0, move_until=4.6, hit=4.2)
    t, ax, ay, az = again
    cut = int(np.searchsorted(t, 4.5))
    det = FallDetector(1)
    assert det.export_state([0])["cand"].shape == (1, 15)
    dev = np.zeros(t.size, np.int64)
    first = det.update(dev[:cut], t[:cut], ax[:cut], ay[:cut], az[:cut])
    state = det.export_state([0])
    assert state["cand"][0, 0] == -np.inf  # hit again, still waiting
    fresh = FallDetector(1)
    fresh.import_state([0], state)
    second = fresh.update(dev[cut:], t[cut:], ax[cut:], ay[cut:], az[cut:])
    events = np.concatenate([first[1], second[1]])
    assert np.array_equal(events, detect(*again))
    assert events.size == 1 and abs(events[0] - 3.0) < 0.05
