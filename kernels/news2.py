"""National Early Warning Score 2 (NEWS2), Royal College of Physicians, 2017.

Royal College of Physicians. *National Early Warning Score (NEWS) 2: Standardising the
assessment of acute-illness severity in the NHS.* Updated report of a working party.
London: RCP, 2017 — Chart 1 (the NEWS scoring system) and the clinical-response
thresholds (Chart 2).

Decisions (see ``docs/kernels/standards.md``):

* **Resolution.** The chart is printed in whole breaths/min, %, mmHg and beats/min and in
  0.1 °C. Inputs are rounded half up to that resolution (as a decimal: 36.05 °C ->
  36.1 °C, HR 90.5 -> 91) and then binned; the kernel does both at once by comparing the
  raw value with the bin midpoints (:data:`CUTS`, e.g. ``HR < 90.5`` scores 0).
* **Missing values.** A missing parameter scores 0, ``missing`` marks it and ``partial``
  is True. Which values count as missing depends on the parameter:

  - ``resp_rate``, ``systolic_bp``, ``heart_rate``: NaN, ±inf and negative values;
  - ``spo2``: NaN, ±inf, negative values and values above 100 %;
  - ``temp_c``: NaN and ±inf only. Any finite temperature is scored, negative ones
    included (<= 35.0 °C scores 3);
  - ``on_oxygen`` and ``consciousness_alert``: NaN only. Any other value is a reading:
    0 means air / CVPU, anything else (negative or infinite too) on oxygen / Alert.

  A missing ``on_oxygen`` is scored as air (0) and, on SpO2 scale 2, SpO2 >= 93 % as on
  air.
* **Bands.** ``high`` for a total >= 7, ``medium`` for 5-6, ``low_medium`` for a total of
  0-4 with a single red score (3 in any one parameter), otherwise ``low``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["BANDS", "SUBSCORE_COLUMNS", "News2Result", "score", "score_set"]

SUBSCORE_COLUMNS: tuple[str, ...] = (
    "resp_rate",
    "spo2",
    "on_oxygen",
    "systolic_bp",
    "heart_rate",
    "consciousness",
    "temp_c",
)
"""Column order of :attr:`News2Result.subscores` (the order of RCP Chart 1)."""

BANDS: tuple[str, ...] = ("low", "low_medium", "medium", "high")
"""Clinical-risk bands, in the order of :attr:`News2Result.band_code`."""

_BAND_NAMES = np.array(BANDS)
_VITALS = (
    "resp_rate",
    "spo2",
    "on_oxygen",
    "temp_c",
    "systolic_bp",
    "heart_rate",
    "consciousness_alert",
)


@dataclass(frozen=True)
class News2Result:
    """NEWS2 of a batch of observation sets (leading shape ``S`` of the broadcast inputs).

    Attributes
    ----------
    total
        int64 ``S``: aggregate score over the parameters present.
    subscores
        int8 ``S + (7,)``: one column per parameter, in :data:`SUBSCORE_COLUMNS` order.
    band_code
        int8 ``S``: index into :data:`BANDS`.
    partial
        bool ``S``: True where any parameter was missing.
    missing
        bool ``S + (7,)``: which parameters were missing.
    band
        str ``S``: ``low``, ``low_medium``, ``medium`` or ``high`` (built on access).
    """

    total: np.ndarray
    subscores: np.ndarray
    band_code: np.ndarray
    partial: np.ndarray
    missing: np.ndarray

    @property
    def band(self) -> np.ndarray:
        """Band names, one per observation set (see :data:`BANDS`)."""
        return _BAND_NAMES[self.band_code]


# RCP Chart 1 as bins: (largest chart value of each bin but the last, points per bin).
_RR, _SPO2_1, _SPO2_2_AIR, _SPO2_2_O2, _SBP, _HR, _TEMP = range(7)
_CHART: tuple[tuple[tuple[float, ...], tuple[int, ...]], ...] = (
    ((8, 11, 20, 24), (3, 1, 0, 2, 3)),  # respiration rate (per minute)
    ((91, 93, 95), (3, 2, 1, 0)),  # SpO2 scale 1 (%)
    ((83, 85, 87), (3, 2, 1, 0)),  # SpO2 scale 2, on air (>= 88 scores 0)
    ((83, 85, 87, 92, 94, 96), (3, 2, 1, 0, 1, 2, 3)),  # SpO2 scale 2, on oxygen
    ((90, 100, 110, 219), (3, 2, 1, 0, 3)),  # systolic blood pressure (mmHg)
    ((40, 50, 90, 110, 130), (3, 1, 0, 1, 2, 3)),  # pulse (per minute)
    ((35.0, 36.0, 38.0, 39.0), (3, 1, 0, 1, 2)),  # temperature (°C, 0.1 resolution)
)
_RESOLUTION_STEPS = (1, 1, 1, 1, 1, 1, 10)  # chart steps per unit, per table


def _cut(upper: float, steps: int) -> float:
    """Smallest input that rounds (half up) above ``upper`` on a 1/steps grid.

    Rounding half up then comparing ``rounded <= upper`` is the same as ``x < cut``
    with ``cut`` the double nearest to the decimal midpoint ``upper + 0.5 / steps``
    (35.05 for 35.0 °C), which keeps the decimal semantics with no rounding at run time.
    """
    twice = round(2 * upper * steps) + 1  # midpoint in half-steps, an odd integer
    return twice / (2 * steps)  # correctly rounded: the double nearest to the decimal


CUTS = np.full((len(_CHART), 6), np.inf)
"""CUTS[t, i]: a value below it (and above the previous cut) scores POINTS[t, i]."""
POINTS = np.zeros((len(_CHART), 7), dtype=np.int8)
for _t, ((_upper, _points), _steps) in enumerate(zip(_CHART, _RESOLUTION_STEPS, strict=True)):
    CUTS[_t, : len(_upper)] = [_cut(u, _steps) for u in _upper]
    POINTS[_t, : len(_points)] = _points


# The kernel scores a value with the cuts alone: the points of the lowest bin plus, for
# each cut at or below the value, the change of points across that cut. Compares and
# adds on constant tables, no lookup and no branch, so LLVM vectorises the whole
# observation set (4 sets per AVX2 instruction). STEP[t, j] = POINTS[t, j+1] - POINTS[t, j].
_STEP = np.where(np.isfinite(CUTS), np.diff(POINTS.astype(np.int64), axis=1), 0)
_BASE = POINTS[:, 0].astype(np.int64)
_N_CUTS = np.isfinite(CUTS).sum(axis=1)
_BLOCK = 512  # observation sets per block (a multiple of 8, see _pack8); fits in L1


@njit(cache=True, nogil=True, inline="always")
def _chart_points(x: float, table: int) -> int:
    """Points of ``x`` in ``table`` (for any ``x``: the caller masks missing values).

    ``x >= CUTS[t, j]`` says "x rounds (half up, at the chart's resolution) above the
    j-th upper bound" (see :func:`_cut`), so this bins the rounded value.
    """
    p = _BASE[table]
    for j in range(6):  # constant trip count and tables: unrolled, unused cuts folded away
        if j < _N_CUTS[table]:
            p += _STEP[table, j] * (x >= CUTS[table, j])
    return p


@njit(cache=True, nogil=True, inline="always")
def score_set(
    rr: float,
    spo2: float,
    o2: float,
    temp: float,
    sbp: float,
    hr: float,
    alert: float,
    scale: float,
) -> tuple[int, int, int, int, bool]:
    """One observation set, branch-free: the scalar core of :func:`score`, public so that
    compiled loops elsewhere (``streams.escalation``) score a set without an array call.

    Returns the subscores and the missing flags packed one byte per parameter
    (:data:`SUBSCORE_COLUMNS` order, column 0 in the low byte), the total, the band
    code, and whether ``scale`` is 1 or 2.
    """
    # Present, per the module docstring (NaN fails every comparison).
    p0 = (rr >= 0.0) & (rr < np.inf)
    p1 = (spo2 >= 0.0) & (spo2 <= 100.0)
    p2 = o2 == o2
    p3 = (sbp >= 0.0) & (sbp < np.inf)
    p4 = (hr >= 0.0) & (hr < np.inf)
    p5 = alert == alert
    p6 = abs(temp) < np.inf
    on_o2 = p2 & (o2 != 0.0)
    spo2_2 = _chart_points(spo2, _SPO2_2_O2) if on_o2 else _chart_points(spo2, _SPO2_2_AIR)
    s0 = _chart_points(rr, _RR) * p0
    s1 = (spo2_2 if scale == 2.0 else _chart_points(spo2, _SPO2_1)) * p1
    s2 = 2 * on_o2
    s3 = _chart_points(sbp, _SBP) * p3
    s4 = _chart_points(hr, _HR) * p4
    s5 = 3 * (alert == 0.0)  # new confusion, Voice, Pain or Unresponsive (NaN is not 0)
    s6 = _chart_points(temp, _TEMP) * p6
    sub = s0 | s1 << 8 | s2 << 16 | s3 << 24 | s4 << 32 | s5 << 40 | s6 << 48
    miss = (
        (1 - p0)
        | (1 - p1) << 8
        | (1 - p2) << 16
        | (1 - p3) << 24
        | (1 - p4) << 32
        | (1 - p5) << 40
        | (1 - p6) << 48
    )
    total = s0 + s1 + s2 + s3 + s4 + s5 + s6
    red = (s0 == 3) | (s1 == 3) | (s3 == 3) | (s4 == 3) | (s5 == 3) | (s6 == 3)
    # high (3): total >= 7; medium (2): 5-6; low_medium (1): 0-4 with a red score; low (0)
    band = 2 * (total >= 5) + (total >= 7) + ((total < 5) & red)
    return sub, miss, total, band, (scale == 1.0) | (scale == 2.0)


@njit(cache=True, nogil=True)
def _score_block(
    vitals: tuple[np.ndarray, ...],
    sub: np.ndarray,
    miss: np.ndarray,
    total: np.ndarray,
    band: np.ndarray,
    partial: np.ndarray,
) -> int:
    """Score one block (packed ``sub``/``miss`` words); returns the number of bad scales.

    The caller passes slices so that indices start at 0: with an offset Numba cannot
    prove non-negative, every index pays a wraparound select and nothing vectorises.
    """
    rr, spo2, oxygen, temp, sbp, hr, alert, scale = vitals
    bad = 0
    for i in range(rr.size):
        s, m, t, b, ok = score_set(
            rr[i], spo2[i], oxygen[i], temp[i], sbp[i], hr[i], alert[i], scale[i]
        )
        sub[i] = s
        miss[i] = m
        total[i] = t
        band[i] = b
        partial[i] = m != 0
        bad += not ok
    return bad


@njit(cache=True, nogil=True, inline="always")
def _pack8(words: np.ndarray, k: int, out: np.ndarray, d: int) -> None:
    """Store the 7-byte rows ``words[k:k + 8]`` as the seven words ``out[d:d + 7]``.

    Eight rows of 7 bytes are 56 bytes, exactly seven little-endian uint64 words: the
    ``(n, 7)`` outputs stay contiguous and are written with whole-word stores.
    """
    r0, r1, r2, r3 = words[k], words[k + 1], words[k + 2], words[k + 3]
    r4, r5, r6, r7 = words[k + 4], words[k + 5], words[k + 6], words[k + 7]
    out[d] = r0 | r1 << 56
    out[d + 1] = r1 >> 8 | r2 << 48
    out[d + 2] = r2 >> 16 | r3 << 40
    out[d + 3] = r3 >> 24 | r4 << 32
    out[d + 4] = r4 >> 32 | r5 << 24
    out[d + 5] = r5 >> 40 | r6 << 16
    out[d + 6] = r6 >> 48 | r7 << 8


@njit(cache=True, nogil=True)
def _news2_kernel(vitals: tuple[np.ndarray, ...], outputs: tuple[np.ndarray, ...]) -> int:
    """Score every observation set; returns the number of scales other than 1 and 2.

    ``vitals``: the eight flat float64 inputs in :func:`score`'s argument order
    (``spo2_scale`` last); ``outputs``: ``sub`` and ``miss`` (flat uint8, ``7 n`` bytes),
    ``total``, ``band`` and ``partial``.
    """
    rr, spo2, oxygen, temp, sbp, hr, alert, scale = vitals
    sub, miss, total, band, partial = outputs
    n = rr.size
    sub64 = sub[: n // 8 * 56].view(np.uint64)  # whole groups of 8 sets: 7 words each
    miss64 = miss[: n // 8 * 56].view(np.uint64)
    words = np.empty(_BLOCK, dtype=np.uint64)
    flags = np.empty(_BLOCK, dtype=np.uint64)
    bad = 0
    for start in range(0, n, _BLOCK):
        b = slice(start, min(start + _BLOCK, n))
        part = (rr[b], spo2[b], oxygen[b], temp[b], sbp[b], hr[b], alert[b], scale[b])
        bad += _score_block(part, words, flags, total[b], band[b], partial[b])
        groups = (min(start + _BLOCK, n) - start) // 8
        d = start // 8 * 7
        sub_b = sub64[d : d + 7 * groups]
        miss_b = miss64[d : d + 7 * groups]
        for g in range(groups):
            _pack8(words, 8 * g, sub_b, 7 * g)
            _pack8(flags, 8 * g, miss_b, 7 * g)
        for i in range(8 * groups, min(_BLOCK, n - start)):  # the last n % 8 sets
            for j in range(7):
                sub[7 * (start + i) + j] = (words[i] >> (8 * j)) & 0xFF
                miss[7 * (start + i) + j] = (flags[i] >> (8 * j)) & 0xFF
    return bad


def _full_flat(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """1-D contiguous view of ``arr`` at the broadcast ``shape`` (copies only if needed)."""
    if arr.shape == shape and arr.flags.c_contiguous:
        return arr.reshape(-1)
    return np.ascontiguousarray(np.broadcast_to(arr, shape)).reshape(-1)


def _as_float(values: npt.ArrayLike, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric or boolean") from exc


def score(
    resp_rate: npt.ArrayLike,
    spo2: npt.ArrayLike,
    on_oxygen: npt.ArrayLike,
    temp_c: npt.ArrayLike,
    systolic_bp: npt.ArrayLike,
    heart_rate: npt.ArrayLike,
    consciousness_alert: npt.ArrayLike,
    spo2_scale: npt.ArrayLike = 1,
) -> News2Result:
    """NEWS2 per the Royal College of Physicians chart (2017), vectorised.

    Parameters
    ----------
    resp_rate, spo2, temp_c, systolic_bp, heart_rate
        Breaths/min, SpO2 %, °C, mmHg, beats/min; NaN where not measured.
    on_oxygen
        True (or non-zero) on supplemental oxygen, False on air; NaN if unknown.
    consciousness_alert
        True if Alert, False for new confusion, Voice, Pain or Unresponsive (CVPU);
        NaN if not assessed.
    spo2_scale
        1, or 2 for patients with hypercapnic respiratory failure (target 88-92 %).
        Scalar or per observation.

    Returns
    -------
    News2Result
        All inputs are broadcast together; see :class:`News2Result`. Rounding, missing
        values and bands as in the module docstring.
    """
    named = {
        "resp_rate": resp_rate,
        "spo2": spo2,
        "on_oxygen": on_oxygen,
        "temp_c": temp_c,
        "systolic_bp": systolic_bp,
        "heart_rate": heart_rate,
        "consciousness_alert": consciousness_alert,
        "spo2_scale": spo2_scale,
    }
    arrays = {name: _as_float(v, name) for name, v in named.items()}
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    except ValueError as exc:
        raise ValueError(f"NEWS2 inputs do not broadcast together: {exc}") from exc
    flat = {name: _full_flat(a, shape) for name, a in arrays.items()}
    n = flat["spo2_scale"].size
    sub = np.empty((n, 7), dtype=np.uint8)  # viewed as int8 / bool below (same bytes)
    miss = np.empty((n, 7), dtype=np.uint8)
    total = np.empty(n, dtype=np.int64)
    band = np.empty(n, dtype=np.int8)
    partial = np.empty(n, dtype=np.bool_)
    vitals = tuple(flat[name] for name in (*_VITALS, "spo2_scale"))
    bad = _news2_kernel(vitals, (sub.reshape(-1), miss.reshape(-1), total, band, partial))
    if bad:  # checked in the kernel's pass, not by extra passes over the input
        raise ValueError("spo2_scale must be 1 or 2")
    return News2Result(
        total=total.reshape(shape),
        subscores=sub.view(np.int8).reshape((*shape, 7)),
        band_code=band.reshape(shape),
        partial=partial.reshape(shape),
        missing=miss.view(np.bool_).reshape((*shape, 7)),
    )
