"""National Early Warning Score 2 (NEWS2), Royal College of Physicians, 2017.

Royal College of Physicians. *National Early Warning Score (NEWS) 2: Standardising the
assessment of acute-illness severity in the NHS.* Updated report of a working party.
London: RCP, 2017 — Chart 1 (the NEWS scoring system) and the clinical-response
thresholds (Chart 2).

Decisions (see ``docs/kernels/standards.md``):

* **Resolution.** The chart is printed in whole breaths/min, %, mmHg and beats/min and in
  0.1 °C. Inputs are first rounded half up to that resolution (as a decimal: 36.05 °C ->
  36.1 °C, HR 90.5 -> 91), then compared with the chart's integer bins.
* **Missing values.** NaN, ±inf and negative values (and SpO2 above 100 %) are missing:
  the parameter scores 0, ``missing`` marks it and ``partial`` is True. A missing
  ``on_oxygen`` is scored as air (0) and, on SpO2 scale 2, SpO2 >= 93 % as on air.
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
    band
        str ``S``: ``low``, ``low_medium``, ``medium`` or ``high``.
    band_code
        int8 ``S``: index into :data:`BANDS`.
    partial
        bool ``S``: True where any parameter was missing.
    missing
        bool ``S + (7,)``: which parameters were missing.
    """

    total: np.ndarray
    subscores: np.ndarray
    band: np.ndarray
    band_code: np.ndarray
    partial: np.ndarray
    missing: np.ndarray


@njit(cache=True, nogil=True, inline="always")
def _round_half_up(x: float, scale: float) -> float:
    """``x`` rounded half up to a multiple of ``1 / scale``, in units of ``1 / scale``.

    Decimal semantics: grid points and midpoints are compared as the doubles nearest to
    their decimal values, so 36.05 rounds to 36.1 although its binary value is below.
    """
    k = np.floor(x * scale)
    if (k + 1.0) / scale <= x:
        k += 1.0
    elif k / scale > x:
        k -= 1.0
    if x >= (2.0 * k + 1.0) / (2.0 * scale):
        k += 1.0
    return k


@njit(cache=True, nogil=True, inline="always")
def _present(x: float) -> bool:
    return x >= 0.0 and x < np.inf  # False for NaN, negatives and inf


# RCP Chart 1 as bins: a rounded value v scores POINTS[t, i] for the first i with
# v <= UPPER[t, i] (UPPER padded with +inf). Temperature is in tenths of a degree.
_RR, _SPO2_1, _SPO2_2_AIR, _SPO2_2_O2, _SBP, _HR, _TEMP = range(7)
_CHART = (
    ((8, 11, 20, 24), (3, 1, 0, 2, 3)),  # respiration rate
    ((91, 93, 95), (3, 2, 1, 0)),  # SpO2 scale 1
    ((83, 85, 87), (3, 2, 1, 0)),  # SpO2 scale 2, on air (>= 88 scores 0)
    ((83, 85, 87, 92, 94, 96), (3, 2, 1, 0, 1, 2, 3)),  # SpO2 scale 2, on oxygen
    ((90, 100, 110, 219), (3, 2, 1, 0, 3)),  # systolic blood pressure
    ((40, 50, 90, 110, 130), (3, 1, 0, 1, 2, 3)),  # pulse
    ((350, 360, 380, 390), (3, 1, 0, 1, 2)),  # temperature, tenths of °C
)
UPPER = np.full((len(_CHART), 6), np.inf)
POINTS = np.zeros((len(_CHART), 7), dtype=np.int8)
for _t, (_upper, _points) in enumerate(_CHART):
    UPPER[_t, : len(_upper)] = _upper
    POINTS[_t, : len(_points)] = _points


@njit(cache=True, nogil=True, inline="always")
def _bin(v: float, table: int, upper: np.ndarray, points: np.ndarray) -> int:
    i = 0
    while v > upper[table, i]:
        i += 1
    return points[table, i]


@njit(cache=True, nogil=True)
def _news2_kernel(
    vitals: np.ndarray,
    scale2: np.ndarray,
    upper: np.ndarray,
    points: np.ndarray,
    sub: np.ndarray,
    miss: np.ndarray,
    total: np.ndarray,
    band: np.ndarray,
    partial: np.ndarray,
) -> None:
    # vitals rows: resp_rate, spo2, on_oxygen, temp_c, systolic_bp, heart_rate, alert.
    rr, spo2, oxygen, temp, sbp, hr, alert = vitals
    for i in range(rr.size):
        for c in range(7):
            sub[i, c] = 0
            miss[i, c] = False
        on_o2 = oxygen[i] == oxygen[i] and oxygen[i] != 0.0
        if _present(rr[i]):
            sub[i, 0] = _bin(_round_half_up(rr[i], 1.0), _RR, upper, points)
        else:
            miss[i, 0] = True
        if _present(spo2[i]) and spo2[i] <= 100.0:
            table = _SPO2_1
            if scale2[i]:
                table = _SPO2_2_O2 if on_o2 else _SPO2_2_AIR
            sub[i, 1] = _bin(_round_half_up(spo2[i], 1.0), table, upper, points)
        else:
            miss[i, 1] = True
        if oxygen[i] == oxygen[i]:  # not NaN
            sub[i, 2] = 2 if on_o2 else 0
        else:
            miss[i, 2] = True
        if _present(sbp[i]):
            sub[i, 3] = _bin(_round_half_up(sbp[i], 1.0), _SBP, upper, points)
        else:
            miss[i, 3] = True
        if _present(hr[i]):
            sub[i, 4] = _bin(_round_half_up(hr[i], 1.0), _HR, upper, points)
        else:
            miss[i, 4] = True
        # Consciousness: Alert 0; new confusion, Voice, Pain or Unresponsive 3.
        if alert[i] == alert[i]:
            sub[i, 5] = 0 if alert[i] != 0.0 else 3
        else:
            miss[i, 5] = True
        if abs(temp[i]) < np.inf:  # any finite temperature (NaN fails too)
            sub[i, 6] = _bin(_round_half_up(temp[i], 10.0), _TEMP, upper, points)
        else:
            miss[i, 6] = True
        tot = 0
        red = False
        any_missing = False
        for c in range(7):
            tot += sub[i, c]
            red = red or sub[i, c] == 3
            any_missing = any_missing or miss[i, c]
        total[i] = tot
        partial[i] = any_missing
        if tot >= 7:
            band[i] = 3
        elif tot >= 5:
            band[i] = 2
        elif red:
            band[i] = 1
        else:
            band[i] = 0


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
    scale = np.broadcast_to(arrays["spo2_scale"], shape).reshape(-1)
    if not np.all((scale == 1) | (scale == 2)):
        raise ValueError("spo2_scale must be 1 or 2")
    n = scale.size
    vitals = np.empty((7, n), dtype=np.float64)
    for row, name in enumerate(_VITALS):
        vitals[row].reshape(shape)[...] = arrays[name]  # one broadcast copy per input
    sub = np.empty((n, 7), dtype=np.int8)
    miss = np.empty((n, 7), dtype=np.bool_)
    total = np.empty(n, dtype=np.int64)
    band = np.empty(n, dtype=np.int8)
    partial = np.empty(n, dtype=np.bool_)
    _news2_kernel(vitals, scale == 2, UPPER, POINTS, sub, miss, total, band, partial)
    return News2Result(
        total=total.reshape(shape),
        subscores=sub.reshape((*shape, 7)),
        band=_BAND_NAMES[band].reshape(shape),
        band_code=band.reshape(shape),
        partial=partial.reshape(shape),
        missing=miss.reshape((*shape, 7)),
    )
