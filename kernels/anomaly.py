"""Streaming, causal anomaly scores for univariate sensor series with irregular timestamps.

One default configuration serves heart rate, SpO2, temperature, pollutant concentrations
and device/infrastructure metrics: every quantity the method learns is relative to the
series itself (its level, its scale, its cadence, its resolution and the tail of its own
deviations), so nothing is expressed in physical units.

Method (per device, one pass, O(1) state; details and references in docs/kernels/anomaly.md)

1. **Time-aware exponential weighting.** History weight decays by ``exp(-Δt/τ_eff)``
   between samples, ``τ_eff = max(tau, n_memory · cadence)`` where ``cadence`` is a
   streaming median of the sampling interval. Dense series remember ``tau`` seconds,
   sparse ones at least ``n_memory`` samples; a long gap empties the history, so the
   device re-learns (scores 0) instead of comparing with stale state.
2. **Robust level and scale** (Huber-clipped exponential smoothing, Gelper, Fried & Croux,
   J. Forecasting 29, 2010): the level moves by the prediction residual clipped at
   ``huber_k`` scales; the scale is the EW mean absolute clipped residual. The scale is
   floored by the series' resolution (smallest non-zero step seen) and by
   ``rel_floor · |level|``, so a flat line (stuck sensor, quantised readings) does not
   turn every tiny change into an anomaly.
3. **Deviation** ``z = |x - level| / (scale · sqrt(1 + Δt/τ_eff))``: the predictive
   spread of a local-level (random walk plus noise) model grows with the time since the
   previous sample, so a value after a gap is not over-scored.
4. **Calibration to the series' own tail** (peaks over threshold, Pickands–Balkema–de Haan;
   streaming as in SPOT, Siffer et al., KDD 2017; runs declustering, Coles 2001 §5.3): a
   Robbins–Monro estimate ``u`` of the ``1 - tail_p`` quantile of ``z`` and an
   exponential (GPD shape 0) mean excess ``β`` of run maxima over it give ``P(Z > z)``;
   the score is ``1 - P(Z > z)``. A series whose deviations are routinely heavy-tailed
   therefore scores its routine excursions low, and ONE threshold (:data:`THRESHOLD`)
   means the same rarity on every series.

:meth:`AnomalyScorer.update_with_level` also returns, from the same pass, each sample's
**level**: the robust expected value (step 2) the sample was compared with, before it is
absorbed; a device's first sample is its own level. It does not change scores or state.

Bad input (documented contract): a sample whose ``t`` or ``x`` is NaN/inf (or absurd:
``|x| > 1e100``, ``|t| > 1e15`` s), or whose timestamp is not later than the device's
previous accepted sample (``t <= t_last``: earlier, or a duplicate), scores NaN and leaves
the device state untouched. Treating ``t <= t_last`` as already seen (as
``kernels.fall.FallDetector`` does) makes replay idempotent: at-least-once delivery that
re-sends readings already processed cannot move the state. Mismatched lengths, non-1-D arrays,
non-integer or out-of-range device indices raise ``ValueError`` before any state changes.
Empty arrays give an empty result.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import get_num_threads, njit, prange

from kernels import _exp
from kernels._prefetch import prefetch_row
from kernels._state import DeviceStateArrays

__all__ = ["COLUMNS", "DEFAULTS", "THRESHOLD", "AnomalyScorer", "score"]

#: Scores at or above this value are anomalies, for every kind of series.
THRESHOLD = 0.999

#: Default parameters (no per-series tuning: these serve every series).
DEFAULTS: dict[str, float] = {
    "tau": 1800.0,  # s: memory of level and scale for densely sampled series
    "n_memory": 64.0,  # samples: minimum memory for sparsely sampled series
    "n_warmup": 16.0,  # effective samples of history before a sample is scored
    "huber_k": 3.0,  # residual clip for level/scale updates, in scales
    "scale_memory": 4.0,  # scale memory as a multiple of the level memory
    "rel_floor": 1e-3,  # scale floor relative to |level|
    "tail_p": 0.02,  # exceedance probability of the tail anchor u
    "tail_memory": 256.0,  # tail memory as a multiple of the level memory
    "tail_prior": 200.0,  # prior weight (samples) of the tail estimates
    "u_min": 3.0,  # floor (and prior) of u: the Gaussian value, in z units
    "beta_min": 1.0,  # floor (and prior) of the tail mean excess β, in z units
    "cadence_step": 0.05,  # log-step of the streaming median sampling interval
}

#: Columns of the per-device ``state`` array (exported/imported as one float64 array).
COLUMNS = (
    "t_last",  # time of the last accepted sample
    "n",  # number of accepted samples
    "weight",  # decayed count of samples in memory (at t_last)
    "level",  # robust EW level
    "scale",  # robust EW mean absolute residual
    "cadence",  # streaming median of positive sampling intervals (0: unknown)
    "quantum",  # smallest non-zero |Δx| seen (inf: none yet)
    "x_last",  # last accepted value
    "tail_u",  # (1 - tail_p) quantile of z
    "tail_beta",  # mean excess of z over tail_u
    "tail_run",  # peak z of the current run above tail_u (0: not in a run)
)
_T, _N, _W, _LEVEL, _SCALE, _CAD, _Q, _XL, _U, _BETA, _RUN = range(len(COLUMNS))
_LAST_COLUMN = len(COLUMNS) - 1

# Positions in the packed parameter vector handed to the compiled kernel.
_PARAM_ORDER = tuple(DEFAULTS)
_TINY = 1e-300  # last-resort scale floor: an all-zero series with no resolution seen yet
_MAX_ABS_X = 1e100  # larger |x| is no reading: rejected like NaN (keeps arithmetic finite)
_MAX_ABS_T = 1e15  # s; larger |t| is not epoch seconds: rejected like NaN


_Arr = np.ndarray  # short, so the kernels' signatures fit on one line


# The inlined exp's constants sit at the end of the packed parameters, from _EXP on
# (kernels._exp: glibc's exp, bit for bit, without a libm call per sample).
_EXP = 14
# Numba's cache of _update is keyed to this file alone, so the exp it inlines from
# kernels/_exp.py would stay stale after an edit there: a test compares this with that
# file's SHA-256, and updating it here invalidates the cache.
_EXP_SOURCE_SHA256 = "2eec812e9029681cf9f2f2d3aa7992ea339cec49a8ebb59262e09ef7daaef7ff"


def exp_inlined() -> bool:
    """Whether the kernels use the inlined ``exp`` on this host (else libm's, same bits)."""
    return _exp.inlined()


def pack_params(params: dict[str, float]) -> np.ndarray:
    """Parameter vector for the kernels: :data:`DEFAULTS` order, ``log(tail_p)``, the
    excess over ``u`` (in units of β) at which the score reaches :data:`THRESHOLD`, then
    the constants of the inlined ``exp`` (:func:`kernels._exp.constants`, from ``_EXP`` on)."""
    vals = [float(params[k]) for k in _PARAM_ORDER]
    log_p = math.log(params["tail_p"])
    alarm_exc = math.log(params["tail_p"] / (1.0 - THRESHOLD))
    return np.concatenate([np.array([*vals, log_p, alarm_exc]), _exp.constants()])


def initial_state(n_devices: int, params: dict[str, float]) -> np.ndarray:
    """Fresh ``(n_devices, len(COLUMNS))`` state: no history, tail at its prior."""
    st = np.zeros((n_devices, len(COLUMNS)), dtype=np.float64)
    st[:, _T] = np.nan
    st[:, _Q] = np.inf
    st[:, _XL] = np.nan
    st[:, _U] = params["u_min"]
    st[:, _BETA] = params["beta_min"]
    return st


#: Samples ahead whose state row :func:`_update` prefetches (random rows over 10^4 devices
#: miss L1/L2; 8 ahead covers the miss latency at ~40 ns per sample, measured best of 4-32).
_PREFETCH_AHEAD = 8


# error_model="numpy": no zero-divisor checks in the loop; every divisor is > 0 by
# validate_params and the floors (tau_eff, s_eff, beta, u, the gain denominators, w).
@njit(cache=True, nogil=True, error_model="numpy")
def _update(device: _Arr, t: _Arr, x: _Arr, st: _Arr, p: _Arr, out: _Arr, lv: _Arr) -> _Arr:
    """Score an interleaved batch into ``out`` and absorb it into ``st``, in place
    (see module docstring); returns ``out``. When ``lv`` has the batch's length, it
    receives each sample's level (:meth:`AnomalyScorer.update_with_level`); pass an
    empty array for scores only (one predictable branch per sample, no store).

    ``out`` comes from the caller: NumPy allocates large arrays on transparent huge
    pages, while an array allocated here (Numba's allocator) faulted in 4 KiB pages,
    ~4.8 ns per sample for a 10^7-sample batch against ~0.9 ns (measured).

    Operation for operation the method of the module docstring (the reference checks it
    bit for bit); the order is for speed: the state row of a sample ``_PREFETCH_AHEAD``
    ahead is prefetched, and the score's ``exp`` is taken last, after the state is
    stored (where libm is called, a call clobbers every vector register). Every ``exp``
    is :func:`kernels._exp.exp`: libm's own algorithm inlined, same bits, no call.
    """
    tau, n_memory, n_warmup, huber_k, scale_memory = p[0], p[1], p[2], p[3], p[4]
    rel_floor, tail_p, tail_memory, tail_prior, u_min = p[5], p[6], p[7], p[8], p[9]
    beta_min = p[10]
    cad_up = math.exp(p[11])
    cad_down = math.exp(-p[11])
    log_p = p[12]
    alarm_exc = p[13]
    ec = p[_EXP:]  # the inlined exp's constants
    inv_sm = 1.0 / scale_memory
    n_samples = x.shape[0]
    with_level = lv.shape[0] == n_samples
    cad_step = np.array([cad_down, 1.0, cad_up])
    for i in range(n_samples):
        if i + _PREFETCH_AHEAD < n_samples:
            ahead = device[i + _PREFETCH_AHEAD]
            prefetch_row(st, ahead, 0)  # an 88-byte row spans up to three cache lines
            prefetch_row(st, ahead, _LAST_COLUMN // 2)
            prefetch_row(st, ahead, _LAST_COLUMN)
        j = np.uint64(device[i])  # range checked by as_batch; unsigned: no wraparound code
        xi = x[i]
        ti = t[i]
        # NaN/inf fail these comparisons too; the bounds keep every sum finite.
        if not (abs(xi) <= _MAX_ABS_X and abs(ti) <= _MAX_ABS_T):
            out[i] = math.nan
            if with_level:
                lv[i] = math.nan
            continue
        n = st[j, _N]
        if n == 0.0:
            st[j, _T] = ti
            st[j, _N] = 1.0
            st[j, _W] = 1.0
            st[j, _LEVEL] = xi
            st[j, _SCALE] = 0.0
            st[j, _XL] = xi
            out[i] = 0.0
            if with_level:
                lv[i] = xi  # the first sample is its own level
            continue
        dt = ti - st[j, _T]
        if not (dt > 0.0):  # t <= t_last: already seen (replay) or out of order
            out[i] = math.nan
            if with_level:
                lv[i] = math.nan
            continue
        cad = st[j, _CAD]
        tau_eff = tau
        if cad > 0.0 and n_memory * cad > tau:
            tau_eff = n_memory * cad
        ratio = dt / tau_eff
        w = st[j, _W] * _exp.exp_near_0(-ratio, ec)
        level = st[j, _LEVEL]
        if with_level:
            lv[i] = level  # the expected value the sample is compared with
        scale = st[j, _SCALE]
        q = st[j, _Q]
        floor = rel_floor * abs(level)
        # q = inf (no step seen yet) counts as 0 <= floor: a select, not two branches
        q_seen = q if q < math.inf else 0.0
        floor = q_seen if q_seen > floor else floor
        if floor < _TINY:
            floor = _TINY
        s_eff = scale if scale > floor else floor
        r = xi - level
        ar = abs(r)
        scored = w >= n_warmup
        z = 0.0
        u = 0.0  # tail anchor and mean excess *before* this sample: they give its score
        b = 1.0
        if scored:
            z = ar / (s_eff * math.sqrt(1.0 + ratio))
            u = st[j, _U]
            b = st[j, _BETA]
            # Tail fit on cluster maxima (runs declustering): a run of z above u counts
            # once, with its peak excess capped at the alarm level, when it ends. A single
            # episode (a fever) thus moves the tail by one bounded step, while routine
            # excursions that recur (exertion, bursty load) accumulate and raise the bar.
            # Robbins-Monro gain 1/min(n, M·w): a running mean until the memory is full.
            g_den = tail_memory * w
            if n < g_den:
                g_den = n
            if g_den < tail_prior:
                g_den = tail_prior
            h = 1.0 / (g_den * tail_p)
            u_new = u
            b_new = b
            if z > u:
                if z > st[j, _RUN]:
                    st[j, _RUN] = z
            else:
                peak = st[j, _RUN]
                if peak > 0.0:
                    exc = peak - u
                    if exc > alarm_exc * b:
                        exc = alarm_exc * b
                    b_new = b + h * (exc - b)
                    u_new = u + h * b_new * (1.0 - tail_p)
                    st[j, _RUN] = 0.0
                u_new = u_new - h * b_new * tail_p
            st[j, _U] = u_new if u_new > u_min else u_min
            st[j, _BETA] = b_new if b_new > beta_min else beta_min
        w = w + 1.0
        a = 1.0 / w
        # Warm-up (plain averages) or Huber-clipped update, as selects: the same
        # operations on the same values either way, without a branch that a random
        # device order mispredicts on every warming-up sample.
        warm = n < n_warmup
        clip = huber_k * s_eff
        rc = r if r < clip else clip
        rc = rc if rc > -clip else -clip
        gain = a if warm else a * inv_sm
        level = level + a * (r if warm else rc)
        scale = scale + gain * ((ar if warm or ar < clip else clip) - scale)
        # Streaming median step: x cad_up if dt > cad, x cad_down if dt < cad, x 1.0
        # (exact) if equal; a table lookup, as jittered intervals make branches a coin
        # toss. cad <= 0: first interval (dt > 0 here: duplicates were rejected above).
        step = cad_step[np.int64(dt > cad) - np.int64(dt < cad) + 1]
        cad = dt if cad <= 0.0 else cad * step
        dx = abs(xi - st[j, _XL])
        if dx > 0.0 and dx < q:
            st[j, _Q] = dx
        st[j, _T] = ti
        st[j, _N] = n + 1.0
        st[j, _W] = w
        st[j, _LEVEL] = level
        st[j, _SCALE] = scale
        st[j, _CAD] = cad
        st[j, _XL] = xi
        # The score: P(Z > z) from the tail as it was before this sample.
        if not scored:
            out[i] = 0.0  # warming up
        elif z >= u:
            out[i] = 1.0 - tail_p * _exp.exp(-(z - u) / b, ec)
        else:
            out[i] = 1.0 - _exp.exp(log_p * z / u, ec)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _update_parallel(
    device: _Arr, t: _Arr, x: _Arr, st: _Arr, p: _Arr, out: _Arr, lv: _Arr, shards: int
) -> _Arr:
    """:func:`_update` with the devices sharded over threads (device ``j`` in shard
    ``j % shards``), each shard's samples run through the serial loop by one thread.

    The result is exactly the serial one: every device's samples are still absorbed one
    after another in batch order, by one thread, with the same code. A stable counting
    sort lists each shard's sample positions (serial, O(n)); each thread gathers its
    shard's samples, scores them, and scatters the scores (and levels) back.
    """
    n_samples = x.shape[0]
    with_level = lv.shape[0] == n_samples
    start = np.zeros(shards + 1, dtype=np.int64)
    for i in range(n_samples):
        start[device[i] % shards + 1] += 1
    for s in range(shards):
        start[s + 1] += start[s]
    fill = start[:-1].copy()
    order = np.empty(n_samples, dtype=np.int64)
    for i in range(n_samples):
        s = device[i] % shards
        order[fill[s]] = i
        fill[s] += 1
    for s in prange(shards):
        idx = order[start[s] : start[s + 1]]
        scores = np.empty(idx.shape[0], dtype=np.float64)
        levels = np.empty(idx.shape[0] if with_level else 0, dtype=np.float64)
        _update(device[idx], t[idx], x[idx], st, p, scores, levels)
        for k in range(idx.shape[0]):
            out[idx[k]] = scores[k]
        if with_level:
            for k in range(idx.shape[0]):
                lv[idx[k]] = levels[k]
    return out


def validate_params(params: dict[str, float]) -> dict[str, float]:
    """Merge ``params`` over :data:`DEFAULTS`; ``ValueError`` on unknown or invalid ones."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown AnomalyScorer parameters: {sorted(unknown)}")
    merged = {**DEFAULTS, **{k: float(v) for k, v in params.items()}}
    for key, value in merged.items():
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"{key} must be finite and >= 0, got {value}")
    for key in ("tau", "n_memory", "huber_k", "scale_memory", "tail_memory", "u_min", "beta_min"):
        if merged[key] <= 0.0:
            raise ValueError(f"{key} must be > 0, got {merged[key]}")
    if not 0.0 < merged["tail_p"] < 1.0:
        raise ValueError(f"tail_p must be in (0, 1), got {merged['tail_p']}")
    if merged["tail_prior"] < 1.0:
        raise ValueError(f"tail_prior must be >= 1, got {merged['tail_prior']}")
    return merged


def as_batch(
    device: npt.ArrayLike, t: npt.ArrayLike, x: npt.ArrayLike, n_devices: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked contiguous ``(int64, float64, float64)`` copies-or-views of a batch."""
    dev = np.asarray(device)
    tt = np.ascontiguousarray(t, dtype=np.float64)
    xx = np.ascontiguousarray(x, dtype=np.float64)
    if dev.ndim != 1 or tt.ndim != 1 or xx.ndim != 1:
        raise ValueError("device, t and x must be 1-D arrays")
    if not (dev.shape[0] == tt.shape[0] == xx.shape[0]):
        raise ValueError(
            f"length mismatch: device {dev.shape[0]}, t {tt.shape[0]}, x {xx.shape[0]}"
        )
    if dev.size and dev.dtype.kind not in "iu":
        raise ValueError(f"device must be an integer array, got dtype {dev.dtype}")
    dev = np.ascontiguousarray(dev, dtype=np.int64)
    if dev.size and (dev.min() < 0 or dev.max() >= n_devices):
        raise ValueError(
            f"device index out of range [0, {n_devices}): min {dev.min()}, max {dev.max()}"
        )
    return dev, tt, xx


class AnomalyScorer(DeviceStateArrays):
    """Multi-device streaming anomaly scorer (see module docstring for the method).

    Parameters
    ----------
    n_devices : int
        Initial device capacity (grow with :meth:`grow`).
    **params : float
        Overrides of :data:`DEFAULTS`; the defaults are meant for every series.

    State is one float64 array ``"state"`` of shape ``(n_devices, len(COLUMNS))``.
    """

    def __init__(self, n_devices: int, **params: float) -> None:
        self.params = validate_params(params)
        self._packed = pack_params(self.params)
        super().__init__(n_devices)

    def _initial_state(self, n_devices: int) -> dict[str, np.ndarray]:
        return {"state": initial_state(n_devices, self.params)}

    def update(
        self, device: npt.ArrayLike, t: npt.ArrayLike, x: npt.ArrayLike, *, parallel: bool = False
    ) -> np.ndarray:
        """Score an interleaved batch and absorb it into the per-device state.

        Parameters
        ----------
        device : int array (n,)
            Device index of each sample, in ``[0, n_devices)``.
        t : float array (n,)
            Timestamps in seconds, increasing per device (within and across calls); a
            sample at or before the device's last accepted time is treated as already
            seen (NaN score, state unchanged), so replaying processed samples is a no-op.
        x : float array (n,)
            Values, any unit.
        parallel : bool
            Shard the devices over Numba's threads (``numba.set_num_threads``); the
            result and the state are exactly those of the serial loop (tested). Pays off
            on large batches over many devices with idle cores; the default serial loop
            keeps a stream worker to one core.

        Returns
        -------
        numpy.ndarray of float64 (n,)
            Score in [0, 1] per sample (NaN for rejected and already-seen samples); causal:
            the score of a
            sample depends only on that device's samples up to and including it.
        """
        return self._run(device, t, x, parallel, False)[0]

    def update_with_level(
        self, device: npt.ArrayLike, t: npt.ArrayLike, x: npt.ArrayLike, *, parallel: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`update`, also returning each sample's **level**, from the same pass.

        The level is the robust expected value the sample was compared with: the
        device's Huber-clipped exponentially weighted level *before* the sample is
        absorbed (step 2 of the method), in the unit of ``x``. The first sample of a
        device (no history) is its own level; rejected and already-seen samples get
        NaN, like their scores. Scores and state are exactly :meth:`update`'s (tested).

        Returns
        -------
        (numpy.ndarray, numpy.ndarray) of float64 (n,)
            Scores as :meth:`update`, and the level at each sample.
        """
        return self._run(device, t, x, parallel, True)

    def _run(
        self,
        device: npt.ArrayLike,
        t: npt.ArrayLike,
        x: npt.ArrayLike,
        parallel: bool,
        with_level: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        dev, tt, xx = as_batch(device, t, x, self.n_devices)
        out = np.empty(dev.size, dtype=np.float64)
        level = np.empty(dev.size if with_level else 0, dtype=np.float64)
        if dev.size == 0:
            return out, level
        state = self._state["state"]
        if parallel:
            _update_parallel(dev, tt, xx, state, self._packed, out, level, get_num_threads())
        else:
            _update(dev, tt, xx, state, self._packed, out, level)
        return out, level


def score(t: npt.ArrayLike, x: npt.ArrayLike, **params: float) -> np.ndarray:
    """Anomaly score in [0, 1] per sample of one series (``AnomalyScorer(1).update``).

    Parameters
    ----------
    t : float array (n,)
        Timestamps in seconds (irregular sampling is fine), increasing.
    x : float array (n,)
        Values, any unit; no per-series tuning needed.
    **params : float
        Optional overrides of :data:`DEFAULTS`.

    Returns
    -------
    numpy.ndarray of float64 (n,)
        Causal scores; ``>= THRESHOLD`` flags an anomaly. NaN where ``t``/``x`` is
        not finite or ``t`` is not later than the last accepted sample (duplicate or
        backwards).
    """
    xx = np.asarray(x)
    return AnomalyScorer(1, **params).update(np.zeros(xx.shape[:1], dtype=np.int64), t, xx)
