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

__all__ = ["BANDS", "SUBSCORE_COLUMNS", "News2Result", "score"]

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


@njit(cache=True, nogil=True, inline="always")
def _present(x: float) -> bool:
    return x >= 0.0 and x < np.inf  # False for NaN, negatives and inf


@njit(cache=True, nogil=True, inline="always")
def _bin(x: float, table: int, cuts: np.ndarray, points: np.ndarray) -> int:
    """Points of ``x`` in ``table``: the number of cuts at or below ``x`` picks the bin."""
    i = 0
    for j in range(6):  # fixed trip count: unrolled and branch-free
        i += x >= cuts[table, j]
    return points[table, i]


_LUT_TOP = 255
# LUT[t, k]: points of the whole number k (k >= _LUT_TOP scores like _LUT_TOP), for the
# tables whose chart resolution is 1; a table lookup beats comparing against every cut.
# (built with array operations: a per-entry Python loop cost 20-70 ms at every import)
_LUT_BIN = (CUTS[:_TEMP, None, :] <= np.arange(_LUT_TOP + 1.0)[None, :, None]).sum(axis=2)
LUT = np.take_along_axis(POINTS[:_TEMP], _LUT_BIN, axis=1).astype(np.int8)


@njit(cache=True, nogil=True, inline="always")
def _whole(x: float, table: int, lut: np.ndarray) -> int:
    """Points of ``x >= 0`` in a whole-number table: round half up, then look up."""
    k = np.floor(x)
    if x - k >= 0.5:  # exact: x - floor(x) has no rounding error
        k += 1.0
    return lut[table, int(min(k, float(_LUT_TOP)))]


@njit(cache=True, nogil=True)
def _news2_kernel(
    rr: np.ndarray,
    spo2: np.ndarray,
    oxygen: np.ndarray,
    temp: np.ndarray,
    sbp: np.ndarray,
    hr: np.ndarray,
    alert: np.ndarray,
    scale: np.ndarray,
    cuts: np.ndarray,
    points: np.ndarray,
    lut: np.ndarray,
    sub: np.ndarray,
    miss: np.ndarray,
    total: np.ndarray,
    band: np.ndarray,
    partial: np.ndarray,
) -> None:
    for i in range(rr.size):
        o2_known = oxygen[i] == oxygen[i]  # not NaN
        on_o2 = o2_known and oxygen[i] != 0.0
        m0 = not _present(rr[i])
        m1 = not (_present(spo2[i]) and spo2[i] <= 100.0)
        m2 = not o2_known
        m3 = not _present(sbp[i])
        m4 = not _present(hr[i])
        m5 = alert[i] != alert[i]
        m6 = not (abs(temp[i]) < np.inf)  # any finite temperature; NaN fails too
        s0 = 0 if m0 else _whole(rr[i], _RR, lut)
        s1 = 0
        if not m1:
            table = _SPO2_1
            if scale[i] == 2.0:
                table = _SPO2_2_O2 if on_o2 else _SPO2_2_AIR
            s1 = _whole(spo2[i], table, lut)
        s2 = 2 if on_o2 else 0
        s3 = 0 if m3 else _whole(sbp[i], _SBP, lut)
        s4 = 0 if m4 else _whole(hr[i], _HR, lut)
        s5 = 3 if (not m5 and alert[i] == 0.0) else 0  # confusion, Voice, Pain, Unresponsive
        s6 = 0 if m6 else _bin(temp[i], _TEMP, cuts, points)
        sub[i, 0] = s0
        sub[i, 1] = s1
        sub[i, 2] = s2
        sub[i, 3] = s3
        sub[i, 4] = s4
        sub[i, 5] = s5
        sub[i, 6] = s6
        miss[i, 0] = m0
        miss[i, 1] = m1
        miss[i, 2] = m2
        miss[i, 3] = m3
        miss[i, 4] = m4
        miss[i, 5] = m5
        miss[i, 6] = m6
        tot = s0 + s1 + s2 + s3 + s4 + s5 + s6
        red = s0 == 3 or s1 == 3 or s3 == 3 or s4 == 3 or s5 == 3 or s6 == 3
        partial[i] = m0 or m1 or m2 or m3 or m4 or m5 or m6
        total[i] = tot
        if tot >= 7:
            band[i] = 3
        elif tot >= 5:
            band[i] = 2
        elif red:
            band[i] = 1
        else:
            band[i] = 0


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
    scale = flat["spo2_scale"]
    if not np.all((scale == 1) | (scale == 2)):
        raise ValueError("spo2_scale must be 1 or 2")
    n = scale.size
    sub = np.empty((n, 7), dtype=np.int8)
    miss = np.empty((n, 7), dtype=np.bool_)
    total = np.empty(n, dtype=np.int64)
    band = np.empty(n, dtype=np.int8)
    partial = np.empty(n, dtype=np.bool_)
    rr, spo2_, oxygen, temp, sbp, hr, alert = (flat[name] for name in _VITALS)
    _news2_kernel(
        rr, spo2_, oxygen, temp, sbp, hr, alert, scale, CUTS, POINTS, LUT,
        sub, miss, total, band, partial,
    )  # fmt: skip
    return News2Result(
        total=total.reshape(shape),
        subscores=sub.reshape((*shape, 7)),
        band_code=band.reshape(shape),
        partial=partial.reshape(shape),
        missing=miss.reshape((*shape, 7)),
    )
