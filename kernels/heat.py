"""Heat index (apparent temperature) per the US National Weather Service.

NWS Weather Prediction Center, "The Heat Index Equation"
(https://www.wpc.ncep.noaa.gov/html/heatindex_equation.shtml), after L. P. Rothfusz,
"The heat index equation", NWS Southern Region Technical Attachment SR 90-23 (1990), which
fits R. G. Steadman, J. Appl. Meteor. 18 (1979) 861-873.

In °F with RH in percent:

0. At or below 40 °F the heat index is the air temperature itself: the heat index is not
   defined for cold air, and the simple formula would drop below the air temperature
   (about -46.6 °C at -40 °C). This is what the NWS online heat index calculator does, as
   documented by G. B. Anderson, M. L. Bell, R. D. Peng, "Methods to calculate the heat
   index as an exposure metric in environmental health research", Environ. Health
   Perspect. 121 (2013) 1111-1119, Fig. 1 (the NWS algorithm: "T <= 40 °F: HI = T").
1. ``HI_s = 0.5 * (T + 61.0 + (T - 68.0) * 1.2 + RH * 0.094)`` (Steadman-consistent simple
   formula). "The simple formula is computed first and the result averaged with the
   temperature": if ``(HI_s + T) / 2 < 80`` the heat index is ``HI_s``.
2. Otherwise the Rothfusz regression, minus ``((13 - RH) / 4) * sqrt((17 - |T - 95|) / 17)``
   when RH < 13 % and 80 <= T <= 112 °F, plus ``((RH - 85) / 10) * ((87 - T) / 5)`` when
   RH > 85 % and 80 <= T <= 87 °F.

Inputs and output are in °C (T_F = 1.8 T_C + 32). NaN, ±inf, RH outside [0, 100] and
air temperatures outside [-273.15, 1000] °C (not air on Earth) give NaN.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["heat_index", "heat_index_f"]


@njit(cache=True, nogil=True, inline="always")
def _simple_f(t: float, rh: float) -> float:
    """Steadman-consistent simple formula (°F, %)."""
    return 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094)


@njit(cache=True, nogil=True, inline="always")
def _rothfusz_f(t: float, rh: float) -> float:
    """Rothfusz (1990) regression (°F, %), without the NWS adjustments."""
    return (
        -42.379
        + 2.04901523 * t
        + 10.14333127 * rh
        - 0.22475541 * t * rh
        - 0.00683783 * t * t
        - 0.05481717 * rh * rh
        + 0.00122874 * t * t * rh
        + 0.00085282 * t * rh * rh
        - 0.00000199 * t * t * rh * rh
    )


@njit(cache=True, nogil=True, inline="always")
def _dry(t: float, rh: float) -> bool:
    """Where the NWS low-humidity adjustment applies (``&``: no branch)."""
    return (rh < 13.0) & (t >= 80.0) & (t <= 112.0)


@njit(cache=True, nogil=True, inline="always")
def _dry_adjustment(t: float, rh: float) -> float:
    """Subtracted when :func:`_dry`. NaN (a negative root) far outside that range."""
    return ((13.0 - rh) / 4.0) * math.sqrt((17.0 - abs(t - 95.0)) / 17.0)


@njit(cache=True, nogil=True, inline="always")
def _humid(t: float, rh: float) -> bool:
    """Where the NWS high-humidity adjustment applies."""
    return (rh > 85.0) & (t >= 80.0) & (t <= 87.0)


@njit(cache=True, nogil=True, inline="always")
def _humid_adjustment(t: float, rh: float) -> float:
    """Added when :func:`_humid`."""
    return ((rh - 85.0) / 10.0) * ((87.0 - t) / 5.0)


@njit(cache=True, nogil=True, inline="always")
def heat_index_f(t: float, rh: float) -> float:
    """Heat index in °F of one temperature (°F) and relative humidity (%), NWS method."""
    if not (rh >= 0.0 and rh <= 100.0) or not (abs(t) < np.inf):
        return np.nan
    if t <= 40.0:  # cold air: no heat index, the air temperature (NWS calculator)
        return t
    simple = _simple_f(t, rh)
    if (simple + t) * 0.5 < 80.0:
        return simple
    hi = _rothfusz_f(t, rh)
    if _dry(t, rh):
        hi -= _dry_adjustment(t, rh)
    elif _humid(t, rh):
        hi += _humid_adjustment(t, rh)
    return hi


@njit(cache=True, nogil=True, error_model="numpy")
def _heat_kernel(temp_c: np.ndarray, rh: np.ndarray, out: np.ndarray) -> None:
    # heat_index_f's steps as selects: every value computes every branch and keeps the
    # one that applies, with the same operations in the same order (so the same bits),
    # and LLVM vectorises the loop (AVX2). Branches on random weather mispredict often.
    # error_model="numpy": the dry adjustment's root of a negative number is NaN in the
    # lanes that do not use it, instead of a branch to an error.
    for i in range(temp_c.size):
        t = temp_c[i]
        h = rh[i]
        ok = (t >= -273.15) & (t <= 1000.0) & (h >= 0.0) & (h <= 100.0)
        t_f = t * 1.8 + 32.0
        simple = _simple_f(t_f, h)
        hi = _rothfusz_f(t_f, h)
        hi = hi - _dry_adjustment(t_f, h) if _dry(t_f, h) else hi
        hi = hi + _humid_adjustment(t_f, h) if _humid(t_f, h) else hi  # exclusive
        hi_f = simple if (simple + t_f) * 0.5 < 80.0 else hi
        hi_c = (hi_f - 32.0) / 1.8
        hi_c = t if t_f <= 40.0 else hi_c  # cold air: the input itself, no °F round trip
        out[i] = hi_c if ok else np.nan


def heat_index(temp_c: npt.ArrayLike, rh: npt.ArrayLike) -> np.ndarray:
    """NWS heat index in °C of air temperature ``temp_c`` (°C) and ``rh`` (%).

    Parameters
    ----------
    temp_c, rh
        Array-likes broadcast together.

    Returns
    -------
    numpy.ndarray
        float64 heat index in °C; the air temperature itself at or below 40 °F (4.44 °C),
        as the NWS calculator returns; NaN for non-finite input, RH outside [0, 100] or
        temperature outside [-273.15, 1000] °C.
    """
    try:
        t = np.asarray(temp_c, dtype=np.float64)
        h = np.asarray(rh, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("temp_c and rh must be numeric") from exc
    try:
        shape = np.broadcast_shapes(t.shape, h.shape)
    except ValueError as exc:
        raise ValueError(f"temp_c {t.shape} and rh {h.shape} do not broadcast") from exc
    t_flat = np.ascontiguousarray(np.broadcast_to(t, shape)).reshape(-1)
    h_flat = np.ascontiguousarray(np.broadcast_to(h, shape)).reshape(-1)
    out = np.empty(t_flat.size, dtype=np.float64)
    _heat_kernel(t_flat, h_flat, out)
    return out.reshape(shape)
