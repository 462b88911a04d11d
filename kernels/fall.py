"""Fall detection from a tri-axial accelerometer: impact, orientation change, stillness.

Method
------
A phase model of a fall (Noury et al. 2007, "Fall detection - principles and methods",
IEEE EMBS 29:1663): a *critical phase* (optional free fall, then an impact) followed by a
*post-fall phase* (lying still in a new orientation). Each decision combines the classic
cues of threshold detectors (Bourke et al. 2007, Gait & Posture 26:194; Kangas et al.
2008, Gait & Posture 28:285):

1. **Impact**: ``|a|`` (magnitude, so independent of how the device is mounted) crosses
   ``min(impact_g, soft_impact_g)``. Crossings within ``impact_window_s`` of the current
   peak belong to the same event (falls often hit several times) and move the peak if
   larger; the peak's time is the reported fall time. A crossing later than that replaces
   the candidate (e.g. a stumble well before the real impact), unless it is weaker than
   a pending *hard* impact (at least ``impact_g``, 5.): then it counts as motion of that
   impact's aftermath (4.), and the hardest hit of the sequence stays the candidate.
   No crossing starts a candidate
   before the device has ``pre_s`` of history, nor within ``pre_s`` after a gap longer
   than ``pre_s`` (3.): there is no orientation *before* then.
2. **Free-fall evidence**: ``|a| < freefall_g`` at some point within ``freefall_window_s``
   before the first crossing. Hard impacts weaker than ``strong_impact_g`` need it.
3. **Orientation change**: gravity direction before vs after. *Before* is a snapshot of a
   low-pass gravity estimate (first-order, time constant ``gravity_tau_s``) taken at least
   ``pre_s`` before the crossing; snapshots are kept in a per-device ring buffer every
   ``snapshot_s`` seconds. *After* is the mean acceleration vector over the stillness
   window. The angle between them (so no device axis is ever assumed) must reach
   ``angle_deg``.
4. **Stillness**: over ``[t_imp + settle_s, t_imp + settle_s + still_s)`` the total
   standard deviation of the acceleration vector stays below ``still_g``. After an
   impact of at least ``late_still_g`` (3.52 g, Bourke 2007's trunk upper fall
   threshold), or after a hard impact followed by a weaker later hit (1.: a second
   contact, knees then back against a chair, an arm coming down), a window that fails
   is followed by the next ``still_s`` window, up to ``late_still_s`` later (the faller
   rolls or moves an arm first, as volunteers did on real wrist and pocket recordings).
5. **Hard or soft impact**: a peak of at least ``impact_g`` is a *hard* impact (2. applies).
   A peak between ``soft_impact_g`` and ``impact_g`` is a *soft* impact (slumps from a
   chair, impacts flattened by a 20-25 Hz output filter), accepted only when

   * the rotation was *fast*: at most ``lead_deg`` of it had happened ``lead_s`` before
     the crossing (snapshot at ``t - lead_s`` vs the one at ``t - pre_s``). Controlled
     transitions (sitting down, lying down on a bed) turn over 1-2 s and have mostly
     turned by then; an uncontrolled collapse turns within its 0.5-1 s descent (Bourke et
     al. 2008, Med Eng Phys 30:937, and 2010, J Biomech 43:3051, separate falls from
     daily activities by the speed of the descent; Liu & Lockhart 2014, IEEE TBME
     61:2135, by trunk angular velocity);
   * and (``soft_freefall_veto`` = 1, the default) there was no free-fall evidence (2.):
     a free fall ended by a soft landing is a short, cushioned drop (into a seat, onto a
     bed); a collapse folds down with ``|a|`` near 1 g, and a fall from standing height
     lands hard. The price: a fall from standing onto a soft surface that lands below
     ``impact_g`` is missed.

6. **Louder than the activity before**: the impact peak must reach ``prior_ratio`` (1.2)
   times the largest ``|a|`` of the ``prior_s`` (2 s) that end ``pre_s`` before the
   crossing (as far as the snapshot ring reaches; each snapshot records the peak since
   the one before). A fall's impact stands out from the walking or standing before it
   (on the corpus: at least 1.26x, 5th percentile 1.46x at the pocket); the last stride
   of someone who stops jogging or climbing stairs and sits or stands still at once is
   no louder than the strides before it, although it is followed by a turn (the running
   arm drops, the thigh becomes horizontal) and stillness, the other cues of a fall.
   The gait must also go on *up to* the impact: the activity counts as loud only if the
   second largest slot peak of the ``near_s`` (1.5 s) before the crossing is loud too
   (the smaller of the two figures is compared). A stride of ongoing gait has strides
   within its period (0.33-0.77 s) before it; a fall's impact has its descent there,
   with at most one loud moment (the stumble or a first hit), so a fall a few seconds
   after someone stopped jogging is still a fall. That relief is for hard impacts only:
   a *soft* impact must stand out from the gait of the 2 s window alone (a 1.5 g contact
   is hardly louder than walking; walking to a chair or a bed and at once sitting or
   lying down is common, a slump starts from sitting). ``prior_ratio`` 0 switches the
   cue off.

7. **Turned first, then dropped**: an impact below ``drop_max_g`` (2.74 g) after a free
   fall is not a fall when the segment had already done more than ``drop_frac`` (25 %) of
   its turn (before -> after) when that free fall began (the gravity estimate at the
   first sample below ``freefall_g`` after ``freefall_window_s`` without one). The
   order of the phases tells the two apart: a fall loses support first and turns
   *during* its descent (Noury 2007: loss of balance, then the descent; Kangas 2008 date
   the start of a fall at ``|a|`` < 0.6 g), while someone sitting down hard lowers
   themselves under control - the thigh turns to horizontal, the forearm towards the lap -
   and drops only the last few centimetres into the seat. At or above ``drop_max_g``
   (Bourke 2007's largest thigh peak in daily activities) an impact is a fall whatever
   came first. ``drop_frac`` 0 switches the cue off.
8. **Turned first, then struck** (session 7): a *hard* impact is not a fall when more
   than ``hard_lead_frac`` (70 %) of the turn (before -> after) had been done ``lead_s``
   (0.6 s) before the crossing - the same order-of-phases argument as 7. and the soft
   path's speed test, without a free fall: a fall turns the segment *during* its
   descent, while a hand raised and then brought down onto a table, or an arm lowered
   onto an armrest, had turned before it struck. On real trials falls had done at most
   49 % of their turn by then (median about 10 %), the wrist activities that alarmed
   89-184 %. ``hard_lead_frac`` 0 switches the cue off.

The decision is taken at the first sample at or after ``t_imp + settle_s + still_s``, so an
event is emitted ``settle_s + still_s`` (2.0 s by default; 3.0 s for a hard impact decided
in its later window) after the impact, at the latest with the next batch that reaches
that time; the reported time is the impact time.

All windows are in seconds and the low-pass uses ``alpha = dt / (tau + dt)`` with the
actual sample spacing, so irregular sampling between 20 and 200 Hz needs no tuning.

Bad input (documented behaviour)
--------------------------------
* a sample with a non-finite ``t``, ``ax``, ``ay`` or ``az`` is skipped and counted in
  :attr:`FallDetector.skipped_nonfinite`;
* a sample whose time is not after its device's previous accepted sample (duplicate or
  going back in time) is skipped and counted in :attr:`FallDetector.skipped_out_of_order`;
* empty arrays return empty events;
* mismatched lengths, non-1-D input or device indices outside ``[0, n_devices)`` raise
  ``ValueError`` before any state changes.

State lives in numpy arrays (one row per device), the per-sample recursion is exact and
sequential, so splitting a stream into any sequence of calls gives exactly the one-shot
result; :meth:`export_state` / :meth:`import_state` / :meth:`grow` come from
:class:`kernels._state.DeviceStateArrays`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from kernels._prefetch import prefetch_row
from kernels._state import DeviceStateArrays

G0 = 9.80665
RING = 16
"""Snapshots of the gravity estimate kept per device (``RING * snapshot_s`` of history)."""

DEFAULTS: dict[str, float] = {
    "impact_g": 1.6,
    "soft_impact_g": 1.45,
    "lead_s": 0.6,
    "lead_deg": 12.0,
    "soft_freefall_veto": 1.0,
    "strong_impact_g": 1.6,
    "impact_window_s": 1.0,
    "freefall_g": 0.6,
    "freefall_window_s": 1.0,
    "gravity_tau_s": 0.2,
    "snapshot_s": 0.25,
    "pre_s": 1.5,
    "settle_s": 1.0,
    "still_s": 1.0,
    "still_g": 0.12,
    "angle_deg": 30.0,
    "prior_ratio": 1.2,
    "prior_s": 2.0,
    "near_s": 1.5,
    "drop_frac": 0.25,
    "drop_max_g": 2.74,
    "late_still_g": 3.52,
    "late_still_s": 1.0,
    "hard_lead_frac": 0.7,
}
"""Default parameters (the ``balanced`` preset); see ``docs/kernels/fall.md`` for why."""

PRESETS: dict[str, dict[str, float]] = {
    "balanced": {},
    "sensitive": {"soft_impact_g": 1.35, "lead_deg": 16.0, "angle_deg": 25.0},
    "specific": {"impact_g": 2.2, "soft_impact_g": 2.2},
}
"""Sensitivity/specificity trade-offs (``FallDetector(n, preset="specific")``), as
overrides of :data:`DEFAULTS`; the figures behind each are in ``docs/kernels/fall.md``."""

# Columns of the per-device "track" row: everything touched on every sample sits in one
# 80-byte row, so a run of samples costs one state load and one store (cache friendly with
# 10^4 devices). A candidate is pending iff its decision time is finite.
_LAST_T, _GX, _GY, _GZ, _NEXT_SNAP, _LAST_LOW, _T_SETTLE, _T_DECIDE, _N_SNAP, _RUN_PEAK = range(10)
_N_TRACK = 10
# columns of the "cand" row (the pending impact)
_C_TWIN, _C_TIMP, _C_PEAK2, _C_PREX, _C_PREY, _C_PREZ, _C_LOWOK = range(7)
_C_LEADX, _C_LEADY, _C_LEADZ, _C_PRIOR, _C_FAR = range(7, 12)
_C_DROPX, _C_DROPY, _C_DROPZ = range(12, 15)
_N_CAND = 15
# columns of a ring slot: gravity snapshot xyz, its time, peak |a|^2 since the slot before
_R_T, _R_PEAK = 3, 4
_N_RING_COLS = 5
# columns of the "drop" row: start of the latest free fall, gravity estimate xyz then
_D_T, _D_X, _D_Y, _D_Z = range(4)
# columns of the "acc" row (stillness-window sums)
_A_SX, _A_SY, _A_SZ, _A_QX, _A_QY, _A_QZ, _A_N = range(7)


def params_vector(params: dict[str, float]) -> np.ndarray:
    """Derived constants in the order the compiled kernel reads them (squared g, cosines)."""
    p = {**DEFAULTS, **params}
    g2 = G0 * G0
    return np.array(
        [
            min(p["impact_g"], p["soft_impact_g"]) ** 2 * g2,
            p["strong_impact_g"] ** 2 * g2,
            p["impact_window_s"],
            p["freefall_g"] ** 2 * g2,
            p["freefall_window_s"],
            p["gravity_tau_s"],
            p["snapshot_s"],
            p["pre_s"],
            p["settle_s"],
            p["settle_s"] + p["still_s"],
            p["still_g"] ** 2 * g2,
            math.cos(math.radians(p["angle_deg"])),
            p["impact_g"] ** 2 * g2,
            p["lead_s"],
            math.cos(math.radians(p["lead_deg"])),
            p["soft_freefall_veto"],
            p["prior_ratio"] ** 2,
            p["prior_s"],
            p["near_s"],
            p["drop_frac"],
            p["drop_max_g"] ** 2 * g2,
            p["late_still_g"] ** 2 * g2 if p["late_still_s"] > 0 else math.inf,
            p["still_s"],
            # a further window starts while the last one ended before this (seconds after
            # the impact): whole windows up to late_still_s, robust to rounding
            p["settle_s"] + p["still_s"] + p["late_still_s"] - 0.5 * p["still_s"],
            # a later weaker hit counts as motion after an impact this hard (hard impacts)
            min(p["impact_g"], p["late_still_g"]) ** 2 * g2 if p["late_still_s"] > 0 else math.inf,
            p["hard_lead_frac"],
        ],
        dtype=np.float64,
    )


def resolve_params(preset: str, params: dict[str, float]) -> dict[str, float]:
    """:data:`DEFAULTS` updated by ``PRESETS[preset]`` then ``params``, validated.

    Raises
    ------
    ValueError
        Unknown preset or parameter name, a negative or non-finite value, or windows that
        the snapshot ring cannot serve.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown parameters: {sorted(unknown)}")
    merged = {**DEFAULTS, **PRESETS[preset], **{k: float(v) for k, v in params.items()}}
    bad = [k for k, v in merged.items() if not (math.isfinite(v) and v >= 0)]
    if bad:
        raise ValueError(f"parameters must be finite and >= 0: {bad}")
    reach = (RING - 2) * merged["snapshot_s"]
    windows = max(merged["pre_s"], merged["lead_s"], merged["near_s"])
    if merged["snapshot_s"] <= 0 or windows > reach:
        raise ValueError(
            f"need snapshot_s > 0 and pre_s, lead_s, near_s <= {RING - 2} * snapshot_s"
        )
    return merged


@njit(cache=True)
def _index_range(device: np.ndarray) -> tuple[int, int]:
    """Smallest and largest device index in one pass (NumPy's min and max take two)."""
    lo = device[0]
    hi = device[0]
    for i in range(device.size):
        v = device[i]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@njit(cache=True)
def _snapshot_slots(
    ring: np.ndarray, n: int, t_pre: float, t_lead: float, t_prior: float, t_near: float,
    t_now: float,
) -> tuple[int, int, float, float, bool]:  # fmt: skip
    """Slots of the newest snapshots taken at or before ``t_pre`` and ``t_lead``, and the
    loudness of the activity before: the smaller of the largest ``|a|^2`` of the slots
    taken in ``(t_prior, t_pre]`` and the *second* largest of those taken in
    ``(t_near, t_now)``, i.e. before the crossing's own sample (ongoing gait is loud in
    two slots there, a fall's stumble or first hit in one); and the former alone; and
    whether any snapshot is as old as ``t_pre``.

    Either slot falls back to the oldest snapshot when none is that old. One pass over
    the ring serves all look-ups.
    """
    pre = -1
    lead = -1
    oldest = -1
    prior = 0.0
    near1 = 0.0
    near = 0.0
    for j in range(n):
        tj = ring[j, _R_T]
        if tj <= t_pre and (pre < 0 or tj > ring[pre, _R_T]):
            pre = j
        if tj <= t_lead and (lead < 0 or tj > ring[lead, _R_T]):
            lead = j
        if oldest < 0 or tj < ring[oldest, _R_T]:
            oldest = j
        if t_prior < tj <= t_pre and ring[j, _R_PEAK] > prior:
            prior = ring[j, _R_PEAK]
        if t_near < tj < t_now:
            pk = ring[j, _R_PEAK]
            if pk > near1:
                near = near1
                near1 = pk
            elif pk > near:
                near = pk
    lo = min(prior, near)
    return (pre if pre >= 0 else oldest), (lead if lead >= 0 else oldest), lo, prior, pre >= 0


@njit(cache=True)
def _cos_angle(ax: float, ay: float, az: float, bx: float, by: float, bz: float) -> float:
    """Cosine of the angle between two vectors (1.0 when either is zero)."""
    norm = math.sqrt((ax * ax + ay * ay + az * az) * (bx * bx + by * by + bz * bz))
    if norm == 0.0:
        return 1.0
    return (ax * bx + ay * by + az * bz) / norm


@njit(cache=True)
def _angle(c: float) -> float:
    """Angle (rad) of a cosine, clamped against rounding just outside [-1, 1]."""
    return math.acos(min(1.0, max(-1.0, c)))


@njit(cache=True)
def _decide(cand: np.ndarray, acc: np.ndarray, prm: np.ndarray) -> bool:
    """The fall rule for a candidate whose stillness window has elapsed.

    Still and tilted after, and either a hard impact (``impact_g``, with free fall when
    below ``strong_impact_g``) or a soft one (``soft_impact_g``) without free fall before
    it (unless ``soft_freefall_veto`` is 0) whose rotation was fast: at most ``lead_deg``
    of it had happened ``lead_s`` before the impact. Below ``drop_max_g``, a free fall
    that began after more than ``drop_frac`` of the turn was done vetoes either; a hard
    impact is vetoed when more than ``hard_lead_frac`` of the turn was done ``lead_s``
    before it (a limb raised or turned first, then struck).
    """
    ns = acc[_A_N]
    if ns == 0:
        return False
    mx = acc[_A_SX] / ns
    my = acc[_A_SY] / ns
    mz = acc[_A_SZ] / ns
    var = (acc[_A_QX] / ns - mx * mx) + (acc[_A_QY] / ns - my * my) + (acc[_A_QZ] / ns - mz * mz)
    if var > prm[10]:
        return False
    px, py, pz = cand[_C_PREX], cand[_C_PREY], cand[_C_PREZ]
    turn = _cos_angle(px, py, pz, mx, my, mz)
    if turn > prm[11]:
        return False
    if prm[19] > 0 and cand[_C_LOWOK] > 0 and cand[_C_PEAK2] < prm[20]:
        # turned first, then dropped: a controlled lowering ended by a drop (onto a seat)
        on = _cos_angle(px, py, pz, cand[_C_DROPX], cand[_C_DROPY], cand[_C_DROPZ])
        if _angle(on) > prm[19] * _angle(turn):
            return False
    peak2 = cand[_C_PEAK2]
    lead = _cos_angle(px, py, pz, cand[_C_LEADX], cand[_C_LEADY], cand[_C_LEADZ])
    if peak2 >= prm[12]:
        if prm[25] > 0 and _angle(lead) > prm[25] * _angle(turn):
            return False  # turned first, then struck: a hand raised, then hitting a table
        if peak2 < prm[16] * cand[_C_PRIOR]:
            return False  # no louder than gait that went on up to it: a stride
        return peak2 >= prm[1] or cand[_C_LOWOK] > 0
    if peak2 < prm[16] * cand[_C_FAR]:
        return False  # a soft impact no louder than recent gait: not trusted
    if prm[15] > 0 and cand[_C_LOWOK] > 0:
        return False  # free fall, then a soft landing: a short cushioned drop (seat, bed)
    return lead >= prm[14]


@njit(cache=True, error_model="numpy")  # tau + dt > 0: no zero-divisor branch needed
def _lowpass(
    gx: float, gy: float, gz: float, x: float, y: float, z: float, dt: float, tau: float
) -> tuple[float, float, float]:
    """One step of the first-order gravity low-pass, ``alpha = dt / (tau + dt)``."""
    alpha = dt / (tau + dt)
    return gx + alpha * (x - gx), gy + alpha * (y - gy), gz + alpha * (z - gz)


# Samples ahead whose devices' state _update prefetches when a run of samples starts: one
# and two 50-sample messages (the ingest bridge's layout). Rows of random devices among
# 10^4 are usually out of cache by the time the device sends again, and a run cannot start
# its low-pass before its row has arrived.
_AHEAD_NEAR, _AHEAD_FAR = 50, 100


@njit(cache=True)
def _prefetch_ahead(
    device: np.ndarray, i: int, n: int, track: np.ndarray, ring: np.ndarray, cand: np.ndarray,
    acc: np.ndarray,
) -> None:  # fmt: skip
    """Prefetch the state of the devices of samples ``i + 100`` (their ``track`` row) and
    ``i + 50`` (``track``, ``acc``, ``cand`` and the ring slots of their next snapshots,
    found from the ``track`` row prefetched a run earlier). ``ring`` is viewed 2-D."""
    if i + _AHEAD_FAR < n:
        far = device[i + _AHEAD_FAR]
        prefetch_row(track, far, 0)
        prefetch_row(track, far, _N_TRACK - 1)
    if i + _AHEAD_NEAR < n:
        near = device[i + _AHEAD_NEAR]
        prefetch_row(track, near, 0)
        prefetch_row(track, near, _N_TRACK - 1)
        prefetch_row(acc, near, 0)
        prefetch_row(acc, near, _A_N)
        prefetch_row(cand, near, 0)
        prefetch_row(cand, near, _N_CAND - 1)
        s = int(track[near, _N_SNAP]) % RING  # a 50-sample message takes about 4 snapshots
        prefetch_row(ring, near, s * _N_RING_COLS)
        prefetch_row(ring, near, ((s + 1) % RING) * _N_RING_COLS + _R_PEAK)
        prefetch_row(ring, near, ((s + 3) % RING) * _N_RING_COLS + _R_PEAK)


@njit(cache=True)
def _start_candidate(
    cand: np.ndarray, ring: np.ndarray, drop: np.ndarray, acc: np.ndarray, d: int, ti: float,
    m2: float, llow: float, n_snap: float, prm: np.ndarray,
) -> bool:  # fmt: skip
    """A crossing that starts (or replaces) device ``d``'s candidate: its orientation
    before and ``lead_s`` before, the loudness of the activity before, the free-fall cue
    and the orientation when that free fall began; the stillness sums restart.

    Returns False, changing nothing, when the device's history does not reach ``pre_s``
    back: no snapshot that old, or the newest one that old was taken more than ``pre_s``
    before it (a gap: the device was off). There is no orientation *before* then.
    """
    imp_win, ff_win, pre_s, lead_s, prior_s, near_s = (
        prm[2], prm[4], prm[7], prm[13], prm[17], prm[18]
    )  # fmt: skip
    rd = ring[d]
    t_pre = ti - pre_s
    j, jl, prior, far, reach = _snapshot_slots(
        rd, min(int(n_snap), RING), t_pre, ti - lead_s, t_pre - prior_s, ti - near_s, ti,
    )  # fmt: skip
    if not (reach and rd[j, _R_T] >= t_pre - pre_s):
        return False
    c = cand[d]
    c[_C_TWIN] = ti + imp_win
    c[_C_TIMP] = ti
    c[_C_PEAK2] = m2
    c[_C_PREX] = rd[j, 0]
    c[_C_PREY] = rd[j, 1]
    c[_C_PREZ] = rd[j, 2]
    c[_C_LEADX] = rd[jl, 0]
    c[_C_LEADY] = rd[jl, 1]
    c[_C_LEADZ] = rd[jl, 2]
    c[_C_LOWOK] = 1.0 if ti - llow <= ff_win else 0.0
    c[_C_PRIOR] = prior
    c[_C_FAR] = far
    # orientation when the free fall began; the orientation before if there was none or
    # it began before that was taken (no turn first)
    if c[_C_LOWOK] > 0 and drop[d, _D_T] >= rd[j, _R_T]:
        c[_C_DROPX] = drop[d, _D_X]
        c[_C_DROPY] = drop[d, _D_Y]
        c[_C_DROPZ] = drop[d, _D_Z]
    else:
        c[_C_DROPX] = c[_C_PREX]
        c[_C_DROPY] = c[_C_PREY]
        c[_C_DROPZ] = c[_C_PREZ]
    acc[d, :] = 0.0
    return True


# error_model="numpy": no zero-divisor branch per sample; the only division in the loop is
# dt / (tau + dt) with dt > 0 (times strictly increase per device), never by zero.
@njit(cache=True, error_model="numpy")
def _update(
    device: np.ndarray,
    t: np.ndarray,
    ax: np.ndarray,
    ay: np.ndarray,
    az: np.ndarray,
    prm: np.ndarray,
    track: np.ndarray,
    ring: np.ndarray,
    cand: np.ndarray,
    acc: np.ndarray,
    drop: np.ndarray,
    counts: np.ndarray,
    start: int,
    ev_pos: np.ndarray,
    ev_t: np.ndarray,
) -> tuple[int, int]:
    """Process samples from ``start`` until the end or until the event buffers are full.

    Returns ``(events written, next sample index)``. Stopping when the buffers are full
    (rather than growing them here) keeps array reallocation out of the hot loop.

    Two loops, one result. Most samples are *quiet*: in time order, before the device's
    next snapshot, settle and decision times, neither an impact (``|a|`` below the
    candidate threshold) nor a free fall. For them the full step reduces to the gravity
    low-pass, the running peak and, inside a stillness window, its sums: the inner loop
    does just that, with every value it touches in registers. The first other sample
    leaves it for the full step below, written as before; a NaN or inf anywhere fails
    the quiet test too (comparisons with NaN are false), so non-finite samples are
    skipped there, without a pass over the batch beforehand.
    """
    imp2, imp_win, ff2, ff_win, tau = prm[0], prm[2], prm[3], prm[4], prm[5]
    snap_s, settle, decide = prm[6], prm[8], prm[9]
    late2, still_s, late_end, keep2 = prm[21], prm[22], prm[23], prm[24]
    n = t.size
    cap = ev_pos.size
    ring_rows = ring.reshape(ring.shape[0], RING * _N_RING_COLS)  # a view, for prefetching
    k = 0
    i = start
    while i < n and k < cap:
        d = device[i]
        du = np.uint64(d)  # >= 0 (range checked): no wraparound code
        _prefetch_ahead(device, i, n, track, ring_rows, cand, acc)
        # a run of consecutive samples of one device: its state lives in locals meanwhile
        row = track[du]
        lt, gx, gy, gz = row[_LAST_T], row[_GX], row[_GY], row[_GZ]
        nsnap, llow, t_set, t_dec = row[_NEXT_SNAP], row[_LAST_LOW], row[_T_SETTLE], row[_T_DECIDE]
        n_snap, run_peak = row[_N_SNAP], row[_RUN_PEAK]
        while i < n and device[i] == d and k < cap:
            # quiet samples: all of them before t_next (the first sample of a device is
            # never quiet: it starts the low-pass); in a stillness window (t_set <= lt)
            # they are added to its sums
            still = t_set <= lt
            t_next = min(t_dec, nsnap) if still else min(t_dec, nsnap, t_set)
            if lt == -np.inf:
                t_next = -np.inf
            sx, sy, sz = acc[du, _A_SX], acc[du, _A_SY], acc[du, _A_SZ]
            qx, qy, qz, ns = acc[du, _A_QX], acc[du, _A_QY], acc[du, _A_QZ], acc[du, _A_N]
            while i < n:
                iu = np.uint64(i)  # unsigned indices: no negative-index wraparound code
                if device[iu] != d:
                    break
                ti, x, y, z = t[iu], ax[iu], ay[iu], az[iu]
                m2 = x * x + y * y + z * z
                if not (lt < ti < t_next and ff2 <= m2 < imp2):
                    break
                gx, gy, gz = _lowpass(gx, gy, gz, x, y, z, ti - lt, tau)
                if m2 > run_peak:
                    run_peak = m2
                if still:
                    sx += x
                    sy += y
                    sz += z
                    qx += x * x
                    qy += y * y
                    qz += z * z
                    ns += 1.0
                lt = ti
                i += 1
            if still:
                acc[du, _A_SX], acc[du, _A_SY], acc[du, _A_SZ] = sx, sy, sz
                acc[du, _A_QX], acc[du, _A_QY], acc[du, _A_QZ], acc[du, _A_N] = qx, qy, qz, ns
            if i >= n or device[i] != d:
                break
            # the full step for one sample
            iu = np.uint64(i)
            ti, x, y, z = t[iu], ax[iu], ay[iu], az[iu]
            if ti * 0.0 + x * 0.0 + y * 0.0 + z * 0.0 != 0.0:  # NaN or inf (0 * inf is NaN)
                counts[du, 0] += 1
                i += 1
                continue
            if ti <= lt:
                counts[du, 1] += 1
                i += 1
                continue
            m2 = x * x + y * y + z * z
            # 1. decide a pending candidate once its stillness window has elapsed
            if ti >= t_dec:
                if _decide(cand[du], acc[du], prm):
                    ev_pos[k] = i
                    ev_t[k] = cand[du, _C_TIMP]
                    k += 1
                    counts[du, 2] += 1
                    t_set = np.inf
                    t_dec = np.inf
                elif (
                    cand[du, _C_PEAK2] >= late2 or cand[du, _C_TWIN] == -np.inf
                ) and t_dec - cand[du, _C_TIMP] < late_end:  # fmt: skip
                    # a very hard impact, or a hard one hit again later: look for
                    # stillness in the next window too
                    acc[du, :] = 0.0
                    t_set = t_dec
                    t_dec = t_dec + still_s
                else:
                    t_set = np.inf
                    t_dec = np.inf
            # 2. gravity low-pass (the first sample of a device starts it at the reading)
            if lt == -np.inf:
                gx, gy, gz = x, y, z
            else:
                gx, gy, gz = _lowpass(gx, gy, gz, x, y, z, ti - lt, tau)
            if m2 > run_peak:
                run_peak = m2
            if ti >= nsnap:
                slot = int(n_snap) % RING
                ring[du, slot, 0] = gx
                ring[du, slot, 1] = gy
                ring[du, slot, 2] = gz
                ring[du, slot, _R_T] = ti
                ring[du, slot, _R_PEAK] = run_peak
                run_peak = 0.0
                n_snap += 1.0
                nsnap = ti + snap_s
            # 3. impacts: start, refine or replace a candidate (direct element access:
            # an array view here costs reference counting on every impact sample)
            # a hit weaker than a hard impact whose stillness is still awaited after its
            # impact window belongs to that fall's aftermath (a second contact, rolling,
            # an arm coming down): it counts as motion in the stillness window instead of
            # replacing the impact, and the impact may then rest in a later window
            after_hard = (
                m2 >= imp2 and t_dec < np.inf and ti > cand[du, _C_TWIN]
                and keep2 <= cand[du, _C_PEAK2] and m2 < cand[du, _C_PEAK2]
            )  # fmt: skip
            if after_hard:
                # hit again: the impact window is closed for good (-inf marks it, so no
                # state column is needed) and the impact may rest in a later window
                cand[du, _C_TWIN] = -np.inf
            if m2 >= imp2 and not after_hard:
                if t_dec < np.inf and ti <= cand[du, _C_TWIN]:
                    if m2 > cand[du, _C_PEAK2]:
                        cand[du, _C_PEAK2] = m2
                        cand[du, _C_TIMP] = ti
                        cand[du, _C_TWIN] = ti + imp_win
                        t_set = ti + settle
                        t_dec = ti + decide
                elif _start_candidate(cand, ring, drop, acc, d, ti, m2, llow, n_snap, prm):
                    t_set = ti + settle
                    t_dec = ti + decide
            elif ti >= t_set:
                # 4. stillness-window statistics
                acc[du, _A_SX] += x
                acc[du, _A_SY] += y
                acc[du, _A_SZ] += z
                acc[du, _A_QX] += x * x
                acc[du, _A_QY] += y * y
                acc[du, _A_QZ] += z * z
                acc[du, _A_N] += 1.0
            if m2 < ff2:
                if ti - llow > ff_win:
                    # a free fall starts (none in the window before it): where the
                    # segment pointed then
                    drop[du, _D_T] = ti
                    drop[du, _D_X] = gx
                    drop[du, _D_Y] = gy
                    drop[du, _D_Z] = gz
                llow = ti
            lt = ti
            i += 1
        row[_LAST_T], row[_GX], row[_GY], row[_GZ] = lt, gx, gy, gz
        row[_NEXT_SNAP], row[_LAST_LOW], row[_T_SETTLE], row[_T_DECIDE] = nsnap, llow, t_set, t_dec
        row[_N_SNAP], row[_RUN_PEAK] = n_snap, run_peak
    return k, i


class FallDetector(DeviceStateArrays):
    """Multi-device, stateful fall detector (see the module docstring for the method).

    Parameters
    ----------
    n_devices : int
        Initial device capacity (grow with :meth:`grow`).
    preset : str
        Starting point in :data:`PRESETS`: ``balanced`` (the defaults), ``sensitive``
        or ``specific``.
    **params : float
        Overrides of the preset (thresholds in g, windows in s, angles in degrees).
    """

    event_buffer = 64
    """Initial event capacity per call; grows 4x whenever the compiled loop fills it."""

    def __init__(self, n_devices: int, preset: str = "balanced", **params: float) -> None:
        self.params = resolve_params(preset, params)
        self._prm = params_vector(self.params)
        super().__init__(n_devices)

    def _initial_state(self, n_devices: int) -> dict[str, np.ndarray]:
        n = n_devices
        track = np.zeros((n, _N_TRACK))
        track[:, [_LAST_T, _NEXT_SNAP, _LAST_LOW]] = -np.inf
        track[:, [_T_SETTLE, _T_DECIDE]] = np.inf  # no candidate pending
        drop = np.zeros((n, 4))
        drop[:, _D_T] = -np.inf
        return {
            # last_t, gravity xyz, next_snap, last_low, t_settle, t_decide, n, peak^2 so far
            "track": track,
            "ring": np.zeros((n, RING, _N_RING_COLS)),  # snapshots: gx, gy, gz, t, peak^2
            # window end, t_imp, peak^2, pre xyz, free fall seen, lead xyz, loudness before
            # (gait up to the impact), prior peak^2 (1.5-3.5 s before), orientation when
            # the free fall began (= pre xyz if none); window end -inf: hit again
            "cand": np.zeros((n, _N_CAND)),
            "acc": np.zeros((n, 7)),  # stillness sums: x, y, z, x^2, y^2, z^2, n
            "drop": drop,  # start of the latest free fall: time, gravity estimate xyz
            "counts": np.zeros((n, 3), np.int64),  # non-finite, out of order, falls
        }

    @property
    def skipped_nonfinite(self) -> np.ndarray:
        """Samples skipped per device because a value was NaN or infinite."""
        return self._state["counts"][:, 0].copy()

    @property
    def skipped_out_of_order(self) -> np.ndarray:
        """Samples skipped per device because their time did not increase."""
        return self._state["counts"][:, 1].copy()

    @property
    def last_time(self) -> np.ndarray:
        """Time of the last accepted sample per device (-inf before the first)."""
        return self._state["track"][:, _LAST_T].copy()

    @property
    def falls_detected(self) -> np.ndarray:
        """Falls emitted so far per device."""
        return self._state["counts"][:, 2].copy()

    def update(
        self,
        device: npt.ArrayLike,
        t: npt.ArrayLike,
        ax: npt.ArrayLike,
        ay: npt.ArrayLike,
        az: npt.ArrayLike,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Process an interleaved batch; return the falls decided during it.

        Parameters
        ----------
        device : int64[n]
            Device index of each sample, in ``[0, n_devices)``.
        t : float64[n]
            Sample times (s); increasing per device within and across calls.
        ax, ay, az : float64[n]
            Acceleration (m/s^2, gravity included), any device orientation.

        Returns
        -------
        event_device : int64[k]
        event_t : float64[k]
            Device and impact time of each fall, in the order the decisions were made
            (by the position of the deciding sample in the batch).
        """
        raw = np.asarray(device)
        if raw.dtype.kind not in "iub" and raw.size:
            with np.errstate(invalid="ignore"):
                integral = raw.dtype.kind == "f" and bool(np.all(np.floor(raw) == raw))
            if not integral:
                raise ValueError(f"device indices must be integers, got dtype {raw.dtype}")
        dev = np.ascontiguousarray(raw, dtype=np.int64)
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (t, ax, ay, az)]
        if dev.ndim != 1 or any(a.ndim != 1 for a in arrays):
            raise ValueError("device, t, ax, ay, az must be 1-D arrays")
        if any(a.size != dev.size for a in arrays):
            raise ValueError(
                f"length mismatch: device={dev.size}, t/ax/ay/az={[a.size for a in arrays]}"
            )
        if dev.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        lo, hi = _index_range(dev)
        if lo < 0 or hi >= self.n_devices:
            self._device_indices(dev)  # raises (its message), before any state change
        s = self._state
        t_, ax_, ay_, az_ = arrays
        # NaN and inf are skipped (and counted) by the compiled loop itself
        pos_parts, t_parts = [], []
        i, cap = 0, self.event_buffer
        while True:
            buf_pos, buf_t = np.empty(cap, np.int64), np.empty(cap, np.float64)
            k, i = _update(
                dev, t_, ax_, ay_, az_, self._prm,
                s["track"], s["ring"], s["cand"], s["acc"], s["drop"], s["counts"], i,
                buf_pos, buf_t,
            )  # fmt: skip
            pos_parts.append(buf_pos[:k])
            t_parts.append(buf_t[:k])
            if i >= dev.size:
                break
            cap *= 4  # buffers were full: resume where the kernel stopped
        pos, ev_t = np.concatenate(pos_parts), np.concatenate(t_parts)
        return dev[pos], ev_t


def detect(t: npt.ArrayLike, ax: npt.ArrayLike, ay: npt.ArrayLike, az: npt.ArrayLike) -> np.ndarray:
    """Fall times (s) in one recording: :class:`FallDetector` with one device and defaults.

    Parameters
    ----------
    t : float64[n]
        Sample times (s), increasing; irregular sampling between 20 and 200 Hz works.
    ax, ay, az : float64[n]
        Acceleration in m/s^2 including gravity; the device placement (wrist, waist,
        pocket, pendant) and orientation are unknown.

    Returns
    -------
    float64[k]
        Impact time of each detected fall. A fall is only reported once
        ``settle_s + still_s`` (2.0 s) of data after its impact are present (3.0 s when
        a hard impact comes to rest only in its later window), and not in the first
        ``pre_s`` (1.5 s) of the recording.
    """
    t_arr = np.asarray(t, dtype=np.float64)
    _, ev_t = FallDetector(1).update(np.zeros(t_arr.shape, np.int64), t_arr, ax, ay, az)
    return ev_t
