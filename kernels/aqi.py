"""US EPA Air Quality Index (AQI), NowCast and AQI categories.

Implements the *Technical Assistance Document for the Reporting of Daily Air Quality -
the Air Quality Index (AQI)*, US EPA, EPA-454/B-24-002, May 2024 (Table 6, "Breakpoints
for the AQI", with the 2024 PM2.5 breakpoints), and the AirNow NowCast for PM2.5/PM10
(12 hours, weight floor 0.5) and ozone (8 hours, no weight floor; AirNow, 21 April 2016).

Decisions (see ``docs/kernels/standards.md`` for the full rationale):

* **Truncation.** Concentrations are truncated to the table's resolution before lookup
  (PM2.5 0.1 µg/m³, PM10 1 µg/m³, O3 0.001 ppm, CO 0.1 ppm, SO2 and NO2 1 ppb). A float
  is truncated to the largest grid value ``g`` (the double nearest to the decimal
  ``k * resolution``) with ``g <= C``, so ``35.4`` stays 35.4 although its binary value
  is slightly below 35.4. float32/float16 input uses the float32 nearest to the decimal
  as ``g`` (``float32(0.055)`` lies below the double 0.055 yet means 0.055): the result is
  that of the value's shortest decimal representation for its dtype.
* **Rounding.** ``I = (Ihi - Ilo) / (BPhi - BPlo) * (C - BPlo) + Ilo`` is evaluated as an
  exact rational in grid units and rounded half up (125.5 -> 126, 100.5 -> 101).
* **Invalid input** (negative, NaN, ±inf) -> ``-1``. ``-1`` is also returned where the
  TAD defines no index for the averaging period: 8-h O3 above 0.200 ppm (the TAD uses the
  1-h value there) and 1-h O3 below 0.125 ppm (the TAD uses the 8-h value there).
* **Above the table** (PM2.5 > 325.4, PM10 > 604, 1-h O3 > 0.604, CO > 50.4,
  SO2 > 1004, NO2 > 2049): the top (301-500) segment is extrapolated with its slope,
  as AirNow does for "Beyond the AQI" PM2.5 values, saturating at :data:`AQI_CEILING`.
* **SO2 above 304 ppb.** The TAD defines 1-h SO2 indices only up to 200; its 305-604 and
  605-1004 ppb rows are for 24-h averages. ``so2`` applies those rows to the value given,
  which is the precautionary choice when only 1-h data are available.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit, uint64

from kernels._prefetch import prefetch_row
from kernels._state import DeviceStateArrays

__all__ = [
    "AQI_CEILING",
    "CATEGORY_COLORS",
    "CATEGORY_NAMES",
    "CATEGORY_RGB",
    "INVALID",
    "NOWCAST_POLLUTANTS",
    "POLLUTANTS",
    "AqiCategory",
    "NowCastStream",
    "category",
    "nowcast",
    "us_epa",
    "us_epa_ozone",
]

INVALID = -1
"""Returned for invalid input and where the TAD defines no index."""

AQI_CEILING = 9999
"""Extrapolated AQI values above the table saturate here (far beyond any real reading)."""

# Table 6 of EPA-454/B-24-002 (May 2024): (resolution, extrapolate above table,
# rows of (C_lo, C_hi, I_lo, I_hi)) in the pollutant's reporting units.
_TABLES: dict[str, tuple[float, bool, tuple[tuple[float, float, int, int], ...]]] = {
    "pm25": (  # 24-h µg/m³
        0.1,
        True,
        (
            (0.0, 9.0, 0, 50),
            (9.1, 35.4, 51, 100),
            (35.5, 55.4, 101, 150),
            (55.5, 125.4, 151, 200),
            (125.5, 225.4, 201, 300),
            (225.5, 325.4, 301, 500),
        ),
    ),
    "pm10": (  # 24-h µg/m³
        1.0,
        True,
        (
            (0, 54, 0, 50),
            (55, 154, 51, 100),
            (155, 254, 101, 150),
            (255, 354, 151, 200),
            (355, 424, 201, 300),
            (425, 604, 301, 500),
        ),
    ),
    "o3_8h": (  # ppm; no 8-h index above 0.200 ppm
        0.001,
        False,
        (
            (0.000, 0.054, 0, 50),
            (0.055, 0.070, 51, 100),
            (0.071, 0.085, 101, 150),
            (0.086, 0.105, 151, 200),
            (0.106, 0.200, 201, 300),
        ),
    ),
    "o3_1h": (  # ppm; no 1-h index below 0.125 ppm
        0.001,
        True,
        (
            (0.125, 0.164, 101, 150),
            (0.165, 0.204, 151, 200),
            (0.205, 0.404, 201, 300),
            (0.405, 0.604, 301, 500),
        ),
    ),
    "co": (  # 8-h ppm
        0.1,
        True,
        (
            (0.0, 4.4, 0, 50),
            (4.5, 9.4, 51, 100),
            (9.5, 12.4, 101, 150),
            (12.5, 15.4, 151, 200),
            (15.5, 30.4, 201, 300),
            (30.5, 50.4, 301, 500),
        ),
    ),
    "so2": (  # 1-h ppb (rows above 304 ppb are 24-h in the TAD, see module docstring)
        1.0,
        True,
        (
            (0, 35, 0, 50),
            (36, 75, 51, 100),
            (76, 185, 101, 150),
            (186, 304, 151, 200),
            (305, 604, 201, 300),
            (605, 1004, 301, 500),
        ),
    ),
    "no2": (  # 1-h ppb
        1.0,
        True,
        (
            (0, 53, 0, 50),
            (54, 100, 51, 100),
            (101, 360, 101, 150),
            (361, 649, 151, 200),
            (650, 1249, 201, 300),
            (1250, 2049, 301, 500),
        ),
    ),
}

POLLUTANTS: tuple[str, ...] = tuple(_TABLES)
"""Pollutant names accepted by :func:`us_epa`."""


_ROWS = 6  # every table padded to the longest (pm25 etc.), so the kernel's row loop is fixed


class _Table(NamedTuple):
    scale: float  # grid points per unit (1 / resolution)
    extrapolate: bool
    lo_k: np.ndarray  # breakpoints in grid units (float64 holding integers)
    hi_k: np.ndarray
    i_lo: np.ndarray
    i_hi: np.ndarray
    rows: np.ndarray  # (5, _ROWS): the kernel's padded columns, see `_compile_table`


def _compile_table(name: str) -> _Table:
    resolution, extrapolate, rows = _TABLES[name]
    scale = float(round(1.0 / resolution))
    lo_k = np.array([round(r[0] * scale) for r in rows], dtype=np.float64)
    hi_k = np.array([round(r[1] * scale) for r in rows], dtype=np.float64)
    i_lo = np.array([r[2] for r in rows], dtype=np.float64)
    i_hi = np.array([r[3] for r in rows], dtype=np.float64)
    # The kernel's columns, padded to _ROWS rows: `above` is the upper breakpoint a value
    # must exceed to move on to the next row (+inf from the top row on, so padding rows
    # are never reached); the others are those of equation 1. Differences of small
    # integers are exact, so precomputing them changes no result.
    cols = np.stack([hi_k, lo_k, i_lo, i_hi - i_lo, hi_k - lo_k])
    padded = np.concatenate([cols, np.repeat(cols[:, -1:], _ROWS - lo_k.size, axis=1)], axis=1)
    padded[0, lo_k.size - 1 :] = np.inf
    return _Table(scale, extrapolate, lo_k, hi_k, i_lo, i_hi, padded)


_COMPILED: dict[str, _Table] = {name: _compile_table(name) for name in POLLUTANTS}


@njit(cache=True, nogil=True, inline="always")
def _grid_value(k: float, scale: float, grid32: bool) -> float:
    """The float nearest to the decimal ``k / scale`` (float32 nearest when ``grid32``).

    ``k / scale`` is the correctly rounded double; rounding it on to float32 equals the
    direct rounding of the decimal for every grid value up to 2e6 (checked in the tests),
    far beyond the saturation of every table.
    """
    g = k / scale
    return float(np.float32(g)) if grid32 else g


@njit(cache=True, nogil=True, inline="always")
def _pick(k: float, above: tuple[float, ...], col: tuple[float, ...]) -> float:
    """``col[r]`` for the row ``r`` of grid value ``k``: the first row whose upper
    breakpoint is not below ``k`` (the top row above the table). Selects, not a scan,
    so that the loop over values vectorises."""
    v = col[0]
    v = col[1] if k > above[0] else v
    v = col[2] if k > above[1] else v
    v = col[3] if k > above[2] else v
    v = col[4] if k > above[3] else v
    return col[5] if k > above[4] else v


@njit(cache=True, nogil=True, error_model="numpy")
def _aqi_kernel(
    conc: np.ndarray,
    scale: float,
    rows: np.ndarray,
    hi_top: float,
    extrapolate: bool,
    ceiling: int,
    grid32: bool,
    out: np.ndarray,
) -> None:
    # error_model="numpy": no ZeroDivisionError branch in the vectorised loop (a row's
    # width is never 0). The table as loop-invariant scalars (6 rows per column).
    above = (rows[0, 0], rows[0, 1], rows[0, 2], rows[0, 3], rows[0, 4], rows[0, 5])
    lo_k = (rows[1, 0], rows[1, 1], rows[1, 2], rows[1, 3], rows[1, 4], rows[1, 5])
    i_lo = (rows[2, 0], rows[2, 1], rows[2, 2], rows[2, 3], rows[2, 4], rows[2, 5])
    d_i = (rows[3, 0], rows[3, 1], rows[3, 2], rows[3, 3], rows[3, 4], rows[3, 5])
    d_k = (rows[4, 0], rows[4, 1], rows[4, 2], rows[4, 3], rows[4, 4], rows[4, 5])
    huge_value = float(ceiling) if extrapolate else -1.0
    # Every value takes the same path (selects, no branch), so that LLVM vectorises the
    # loop (AVX2: four values per instruction); invalid and huge values compute on 0.0
    # and are replaced at the end.
    for j in range(conc.size):
        c = conc[j]
        # NaN fails every comparison, so `not (c >= 0)` catches NaN and negatives.
        valid = (c >= 0.0) & (c != np.inf)
        x = c * scale
        huge = x > 1e12  # far above every table: avoid huge grid indices
        c = c if valid & ~huge else 0.0
        # Truncate to the grid: largest k with grid(k) <= c, grid(k) being the value
        # nearest to the decimal k / scale in the input's precision (float32 input:
        # float32(0.055) is below the double 0.055 yet means 0.055). At most one of the
        # two corrections applies, since the grid is increasing.
        k = np.floor(c * scale)  # a float: no int round trip in the vector loop
        up = _grid_value(k + 1.0, scale, grid32) <= c
        down = _grid_value(k, scale, grid32) > c
        k = k + 1.0 if up else (k - 1.0 if down else k)
        lo = _pick(k, above, lo_k)
        # Exact round-half-up of Ilo + num/den: all operands are small integers in
        # float64, so the correctly rounded quotient floors to the exact result.
        num = _pick(k, above, d_i) * (k - lo)
        den = _pick(k, above, d_k)
        value = _pick(k, above, i_lo) + np.floor((2.0 * num + den) / (2.0 * den))
        value = min(value, float(ceiling))
        undefined = (k < lo) | ((k > hi_top) & (not extrapolate))
        value = -1.0 if undefined else value
        value = huge_value if huge else value
        value = value if valid else -1.0
        out[j] = np.int32(value)  # -1..ceiling: a 32-bit conversion, which AVX2 has


def _as_float_array(values: npt.ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(values).__name__}") from exc
    return arr


def us_epa(pollutant: str, concentration: npt.ArrayLike) -> np.ndarray:
    """US EPA AQI of concentrations of one pollutant.

    Parameters
    ----------
    pollutant
        ``pm25`` (24-h µg/m³), ``pm10`` (24-h µg/m³), ``o3_8h`` (ppm), ``o3_1h`` (ppm),
        ``co`` (8-h ppm), ``so2`` (1-h ppb) or ``no2`` (1-h ppb).
    concentration
        Array-like of any shape. float32 (and float16) arrays are truncated on their own
        precision's grid, i.e. on the shortest decimal that reads back as each value:
        ``float32(0.055)`` is 0.055 ppm, not 0.054.

    Returns
    -------
    numpy.ndarray
        int64 AQI, same shape as ``concentration``; ``-1`` for negative, NaN or infinite
        input and where the TAD defines no index (8-h O3 > 0.200 ppm, 1-h O3 < 0.125 ppm).

    Notes
    -----
    US EPA, EPA-454/B-24-002 (May 2024), Table 6 and equation 1; truncation, rounding and
    above-table behaviour as in the module docstring.
    """
    table = _COMPILED.get(pollutant)
    if table is None:
        raise ValueError(f"unknown pollutant {pollutant!r}; expected one of {POLLUTANTS}")
    raw = np.asarray(concentration)
    # Narrow float input is truncated on its own grid: float32(0.055) means 0.055 although
    # it lies below the double 0.055 (float16 goes through its shortest decimal to float32).
    grid32 = raw.dtype in (np.float32, np.float16)
    if raw.dtype == np.float16:
        raw = raw.astype(np.str_).astype(np.float32)
    arr = _as_float_array(raw, "concentration")
    flat = np.ascontiguousarray(arr).reshape(-1)
    out = np.empty(flat.size, dtype=np.int64)
    _aqi_kernel(
        flat,
        table.scale,
        table.rows,
        table.hi_k[-1],
        table.extrapolate,
        AQI_CEILING,
        grid32,
        out,
    )
    return out.reshape(arr.shape)


def us_epa_ozone(o3_8h: npt.ArrayLike, o3_1h: npt.ArrayLike) -> np.ndarray:
    """Ozone AQI from both averaging periods: the larger defined index (TAD 2024, §IV).

    The TAD reports the maximum of the 8-h and 1-h indices where both are defined, the
    1-h index above 0.200 ppm 8-h, and the 8-h index below 0.125 ppm 1-h. Pass NaN for an
    averaging period that is not available. Returns ``-1`` where neither is defined.
    """
    return np.maximum(us_epa("o3_8h", o3_8h), us_epa("o3_1h", o3_1h))


# --------------------------------------------------------------------------- NowCast
NOWCAST_POLLUTANTS: dict[str, tuple[int, float]] = {
    # name: (hours used, minimum weight factor)
    "pm25": (12, 0.5),
    "pm10": (12, 0.5),
    "o3": (8, 0.0),
}
"""Pollutants accepted by :func:`nowcast`: (hours used, weight-factor floor)."""


@njit(cache=True, nogil=True, inline="always")
def _missing_as_nan(x: float) -> float:
    """The hour as stored in a window: NaN for a missing hour (NaN, ±inf, negative)."""
    # x * 0 is 0 for finite x and NaN for ±inf: two float compares, where `x < inf`
    # became integer bit tests and branches.
    return x if (x >= 0.0) & (x * 0.0 == 0.0) else np.nan


@njit(cache=True, nogil=True, inline="always")
def _lower(x: float, c: float) -> float:
    return x if x < c else c  # a NaN (missing) x keeps c: one minsd


@njit(cache=True, nogil=True, inline="always")
def _upper(x: float, c: float) -> float:
    return x if x > c else c


@njit(cache=True, nogil=True, inline="always")
def _term(x: float) -> float:
    return x if x > 0.0 else 0.0  # missing (NaN) -> 0: one maxsd, no branch


@njit(cache=True, nogil=True, inline="always")
def _one(x: float) -> float:
    # 1 for a valid hour, 0 for a missing (NaN) one; a select, so that the vectorised
    # stream loop does a compare and an AND instead of packing the mask to int32.
    return 1.0 if x >= 0.0 else 0.0


@njit(cache=True, nogil=True, inline="always")
def _at(window: np.ndarray, s: int, h: int, hours: int, clean: bool) -> float:
    """``window[s, h]`` as a NowCast hour: NaN when missing or when ``h >= hours``.

    ``clean``: the window already holds missing hours as NaN (the stream's state).
    """
    if h >= hours:  # constant after inlining: beyond an 8-hour (O3) window
        return np.nan
    return window[s, h] if clean else _missing_as_nan(window[s, h])


@njit(cache=True, nogil=True, inline="always")
def _window12(window: np.ndarray, s: int, hours: int, clean: bool) -> tuple[float, ...]:
    """Hours 0-11 of row ``s`` (NaN beyond ``hours``), as 12 scalars."""
    return (
        _at(window, s, 0, hours, clean), _at(window, s, 1, hours, clean),
        _at(window, s, 2, hours, clean), _at(window, s, 3, hours, clean),
        _at(window, s, 4, hours, clean), _at(window, s, 5, hours, clean),
        _at(window, s, 6, hours, clean), _at(window, s, 7, hours, clean),
        _at(window, s, 8, hours, clean), _at(window, s, 9, hours, clean),
        _at(window, s, 10, hours, clean), _at(window, s, 11, hours, clean),
    )  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def _nowcast12(x: tuple[float, ...], w_floor: float) -> float:
    """NowCast of 12 hours ``x`` (newest first, missing hours NaN); NaN if not computable.

    Straight-line code on registers: the minimum and maximum are two interleaved chains
    of minsd/maxsd (NaN hours drop out), and both sums are evaluated with Estrin's scheme
    (w, w², w⁴, w⁸) instead of a 12-step dependency chain. Hours beyond an 8-hour window
    are NaN constants and fold away.
    """
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11 = x
    lo = min(
        _lower(x0, _lower(x2, _lower(x4, _lower(x6, _lower(x8, _lower(x10, np.inf)))))),
        _lower(x1, _lower(x3, _lower(x5, _lower(x7, _lower(x9, _lower(x11, np.inf)))))),
    )
    hi = max(
        _upper(x0, _upper(x2, _upper(x4, _upper(x6, _upper(x8, _upper(x10, -np.inf)))))),
        _upper(x1, _upper(x3, _upper(x5, _upper(x7, _upper(x9, _upper(x11, -np.inf)))))),
    )
    w = lo / hi if hi > 0.0 else 1.0  # = 1 - (max - min) / max; all hours 0 -> 1
    w = max(w, w_floor)
    w2 = w * w
    w4 = w2 * w2
    w8 = w4 * w4
    # Weights w ** (h - h0) from the newest valid hour h0, which is 0 or 1 whenever the
    # result is defined: the sums over hours 1-11 weigh hour h by w ** (h - 1), and hour
    # 0, if valid, is put in front by one Horner step. So w = 0 (ozone, some hour at 0)
    # gives the newest valid value, the limit of the formula, never 0/0.
    c1, c2, c3, c4, c5, c6 = _term(x1), _term(x2), _term(x3), _term(x4), _term(x5), _term(x6)
    c7, c8, c9, c10, c11 = _term(x7), _term(x8), _term(x9), _term(x10), _term(x11)
    v1, v2, v3, v4, v5, v6 = _one(x1), _one(x2), _one(x3), _one(x4), _one(x5), _one(x6)
    v7, v8, v9, v10, v11 = _one(x7), _one(x8), _one(x9), _one(x10), _one(x11)
    num = (
        (c1 + w * c2 + w2 * (c3 + w * c4))
        + w4 * (c5 + w * c6 + w2 * (c7 + w * c8))
        + w8 * (c9 + w * c10 + w2 * c11)
    )
    den = (
        (v1 + w * v2 + w2 * (v3 + w * v4))
        + w4 * (v5 + w * v6 + w2 * (v7 + w * v8))
        + w8 * (v9 + w * v10 + w2 * v11)
    )
    if x0 >= 0.0:
        num = x0 + w * num
        den = 1.0 + w * den
    if _one(x0) + v1 + v2 < 2.0:  # EPA: 2 of the 3 most recent hours valid
        return np.nan
    return num / den


@njit(cache=True, nogil=True, inline="always")
def _nowcast_rows(hourly: np.ndarray, w_floor: float, out: np.ndarray, hours: int) -> None:
    for s in range(hourly.shape[0]):
        out[s] = _nowcast12(_window12(hourly, s, hours, False), w_floor)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _nowcast_kernel(hourly: np.ndarray, w_floor: float, out: np.ndarray) -> None:
    # hourly: (n, 12 or 8), column 0 = most recent hour; one loop per window length.
    if hourly.shape[1] == 12:
        _nowcast_rows(hourly, w_floor, out, 12)
    else:
        _nowcast_rows(hourly, w_floor, out, 8)


def nowcast(
    pollutant: Literal["pm25", "pm10", "o3"],
    hourly: npt.ArrayLike,
    *,
    most_recent: Literal["first", "last"] = "first",
) -> np.ndarray:
    """EPA NowCast concentration from hourly averages, vectorised over stations.

    Parameters
    ----------
    pollutant
        ``pm25`` or ``pm10`` (12 hours, weight factor floored at 0.5) or ``o3`` (8 hours,
        no floor). Units are those of ``hourly`` and are kept (feed the result to
        :func:`us_epa` with ``pm25``, ``pm10`` or ``o3_8h``).
    hourly
        Array ``(..., H)`` of hourly averages, one row per station. NaN, ±inf and
        negative values are missing hours. Only the most recent 12 (PM) or 8 (O3) hours are
        used; with fewer columns the older hours count as missing.
    most_recent
        ``"first"`` if column 0 is the most recent hour, ``"last"`` if column ``H - 1`` is.

    Returns
    -------
    numpy.ndarray
        float64 of shape ``(...)``: the NowCast (not truncated; :func:`us_epa` truncates),
        NaN where fewer than 2 of the 3 most recent hours are valid. float32 (or float16)
        ``hourly`` gives float32, computed in float64 and rounded once, so that twelve
        hours of ``float32(0.055)`` give ``float32(0.055)``, which :func:`us_epa` reads
        as 0.055 ppm.

    Notes
    -----
    With valid hours ``c_h`` (``h`` hours ago), ``w = max(c_min / c_max, floor)`` over the
    valid hours of the window and ``NowCast = Σ w^h c_h / Σ w^h``, missing hours left out of
    both sums (US EPA, "PM NowCast" fact sheet; AirNow-Tech, "AirNow updates to ozone
    real-time reporting", 2016). ``w = 1`` when every valid hour is 0; ``w = 0`` (ozone
    only) gives the newest valid hour, the limit of the formula.
    """
    spec = NOWCAST_POLLUTANTS.get(pollutant)
    if spec is None:
        raise ValueError(
            f"unknown NowCast pollutant {pollutant!r}; expected one of {tuple(NOWCAST_POLLUTANTS)}"
        )
    if most_recent not in ("first", "last"):
        raise ValueError(f"most_recent must be 'first' or 'last', got {most_recent!r}")
    hours, w_floor = spec
    narrow = np.asarray(hourly).dtype in (np.float32, np.float16)
    arr = _as_float_array(hourly, "hourly")
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"hourly must have shape (..., hours) with hours >= 1, got {arr.shape}")
    if most_recent == "last":
        arr = arr[..., ::-1]
    lead = arr.shape[:-1]
    window = np.full((math.prod(lead), hours), np.nan)
    used = min(hours, arr.shape[-1])
    window[:, :used] = arr.reshape(-1, arr.shape[-1])[:, :used]
    out = np.empty(window.shape[0], dtype=np.float64)
    _nowcast_kernel(window, w_floor, out)
    if narrow:  # back on the input's grid, so us_epa truncates float32(0.055) as 0.055
        return out.reshape(lead).astype(np.float32)
    return out.reshape(lead)


_NO_HOUR = np.iinfo(np.int64).min  # "no hour seen yet"
_PREFETCH_AHEAD = 12  # samples; a station row is fetched while 12 others are updated
_BLOCK = 128  # samples per block: the block's windows (12 x 128 doubles, 12 KB) stay in L1
_LINE = 64  # bytes per cache line
_SLOT_BIAS = 96 * 2**50  # a multiple of 12 and of 8, above the hours' bound 2**52


def _line_aligned_nan(n: int, width: int) -> np.ndarray:
    """A NaN ``(n, width)`` float64 array that starts on a cache line.

    A ring row of 24 (16) doubles then spans exactly 3 (2) lines; NumPy's 16-byte
    alignment made it 4 (3), one more line to fetch and write back per update.
    """
    flat = np.full(n * width + _LINE // 8, np.nan)
    start = (-flat.ctypes.data % _LINE) // 8
    return flat[start : start + n * width].reshape(n, width)


@njit(cache=True, nogil=True)
def _extremes(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """``(a.min(), a.max(), b.min(), b.max())`` of two non-empty int64 arrays of one
    length, in one pass (the input checks of ``NowCastStream.update`` read 10^7 hours
    and stations once instead of four times)."""
    a_lo = a_hi = a[0]
    b_lo = b_hi = b[0]
    for i in range(a.size):
        a_lo, a_hi = min(a_lo, a[i]), max(a_hi, a[i])
        b_lo, b_hi = min(b_lo, b[i]), max(b_hi, b[i])
    return a_lo, a_hi, b_lo, b_hi


@njit(cache=True, nogil=True, inline="always")
def _u(i: int) -> int:
    """``i`` as an unsigned index: Numba adds no negative-index wrap-around code for it."""
    return uint64(i)  # type: ignore[return-value]


@njit(cache=True, nogil=True, inline="always")
def _slot(h: int, hours: int) -> int:
    """Ring slot of hour ``h``: ``-h mod hours``, so hours ago grow with the slot.

    Unsigned: ``_SLOT_BIAS - h`` is positive for every accepted hour (``|h| < 2**52``)
    and a multiple of 12 and 8 away from ``-h``, so the remainder is a multiply and a
    shift, without the signed floor-modulo fix-ups."""
    return _u(_SLOT_BIAS - h) % _u(hours)


@njit(cache=True, nogil=True, inline="always")
def _ring12(ring: np.ndarray, s: int, p: int, hours: int) -> tuple[float, ...]:
    """The window of row ``s`` newest first: ``ring[s, p : p + hours]`` (NaN beyond)."""
    nan = np.nan
    return (
        ring[s, p], ring[s, p + _u(1)], ring[s, p + _u(2)], ring[s, p + _u(3)],
        ring[s, p + _u(4)], ring[s, p + _u(5)], ring[s, p + _u(6)], ring[s, p + _u(7)],
        ring[s, p + _u(8)] if hours > 8 else nan, ring[s, p + _u(9)] if hours > 8 else nan,
        ring[s, p + _u(10)] if hours > 8 else nan, ring[s, p + _u(11)] if hours > 8 else nan,
    )  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def _put12(buf: np.ndarray, j: int, x: tuple[float, ...]) -> None:
    """``buf[:, j] = x``: the window of the block's sample ``j`` as column ``j``."""
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11 = x
    buf[0, j], buf[1, j], buf[2, j], buf[3, j] = x0, x1, x2, x3
    buf[4, j], buf[5, j], buf[6, j], buf[7, j] = x4, x5, x6, x7
    buf[8, j], buf[9, j], buf[10, j], buf[11, j] = x8, x9, x10, x11


@njit(cache=True, nogil=True, inline="always")
def _column12(buf: np.ndarray, j: int, hours: int) -> tuple[float, ...]:
    """Column ``j`` of ``buf`` as 12 scalars (NaN beyond ``hours``)."""
    nan = np.nan
    return (
        buf[0, j], buf[1, j], buf[2, j], buf[3, j], buf[4, j], buf[5, j], buf[6, j], buf[7, j],
        buf[8, j] if hours > 8 else nan, buf[9, j] if hours > 8 else nan,
        buf[10, j] if hours > 8 else nan, buf[11, j] if hours > 8 else nan,
    )  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def _stream_updates(
    station: np.ndarray,
    hour: np.ndarray,
    value: np.ndarray,
    ring: np.ndarray,
    last_hour: np.ndarray,
    w_floor: float,
    out: np.ndarray,
    hours: int,
) -> None:
    # ring[s]: hour h in slot p = _slot(h) and again in p + hours, so the window of the
    # newest hour is ring[s, p : p + hours]: two stores per update instead of a shift of
    # 12 values. The windows of a block are copied to `buf` (column per sample), so that
    # the NowCasts are computed in a second, vectorised pass: a station's later samples
    # in the same block change its ring, never the copies.
    n = station.size
    r = _u(hours)
    nan = np.nan
    late = (nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)  # NowCast NaN
    buf = np.empty((12, _BLOCK))
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        # Pass 1, sequential: update each station's ring, copy its window to the block.
        for jj in range(m):
            j = _u(jj)
            i = _u(start + jj)
            if i + _u(_PREFETCH_AHEAD) < _u(n):  # random rows of 10^4 stations miss L2
                ahead = _u(station[i + _u(_PREFETCH_AHEAD)])
                # The whole row (192 or 128 bytes, 3 or 2 lines as the state's rows are
                # line-aligned): cheaper than working out the window's slot first.
                prefetch_row(ring, ahead, _u(0))
                prefetch_row(ring, ahead, _u(8))
                if hours > 8:
                    prefetch_row(ring, ahead, _u(16))
            s = _u(station[i])
            h = hour[i]
            last = last_hour[s]
            if last != _NO_HOUR and h < last:  # late hour: skipped, state untouched
                _put12(buf, j, late)
                continue
            gap = hours if last == _NO_HOUR else min(h - last, hours)
            last_hour[s] = h
            p = _slot(h, hours)
            for k in range(1, gap):  # skipped hours are missing
                q = p + _u(k)
                q = q if q < r else q - r
                ring[s, q] = nan
                ring[s, q + r] = nan
            # Then hour 0 is the new value (same hour again: the newer value wins).
            x = _missing_as_nan(value[i])
            ring[s, p] = x
            ring[s, p + r] = x
            _put12(buf, j, _ring12(ring, s, p, hours))
        # Pass 2, independent samples: the NowCast of each column, vectorised (AVX2).
        dst = out[start : start + m]
        for j in range(m):
            dst[j] = _nowcast12(_column12(buf, j, hours), w_floor)


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _nowcast_stream_kernel(
    station: np.ndarray, hour: np.ndarray, value: np.ndarray, ring: np.ndarray,
    last_hour: np.ndarray, w_floor: float, out: np.ndarray,
) -> None:  # fmt: skip
    # One loop per window length (12 or 8 hours), so that each is straight-line code.
    # error_model="numpy": no ZeroDivisionError branch in the vectorised loop.
    if ring.shape[1] == 24:
        _stream_updates(station, hour, value, ring, last_hour, w_floor, out, 12)
    else:
        _stream_updates(station, hour, value, ring, last_hour, w_floor, out, 8)


def _ring_slots(last_hour: np.ndarray, hours: int) -> np.ndarray:
    """:func:`_slot` of each newest hour (0 for a station with no hour yet)."""
    return np.where(last_hour == _NO_HOUR, 0, (hours - last_hour % hours) % hours)


class _WindowCheckpoint(DeviceStateArrays):
    """The checkpoint layout of :class:`NowCastStream`: windows newest first."""

    def __init__(self, n_devices: int, hours: int) -> None:
        self._hours = hours
        super().__init__(n_devices)

    def _initial_state(self, n_devices: int) -> dict[str, np.ndarray]:
        return {
            "window": np.full((n_devices, self._hours), np.nan),
            "last_hour": np.full(n_devices, _NO_HOUR, dtype=np.int64),
        }


class NowCastStream(DeviceStateArrays):
    """Streaming NowCast for many stations: one hourly average in, the NowCast out.

    State per station: the last 12 (PM) or 8 (O3) hourly values and the index of the
    newest hour. Checkpoints (:meth:`export_state`) hold them as ``window``, newest
    first, and ``last_hour``; inside, the hours are a ring stored twice over (see
    ``_stream_updates``), so that an update writes one value instead of shifting the
    window. Each sample ``(station, hour, value)`` is an hourly average
    for the integer hour ``hour`` (e.g. ``floor(unix_seconds / 3600)``); hours that
    were skipped count as missing, a repeated hour replaces that hour's value (a
    correction), and an hour older than the station's newest is skipped (NaN output,
    state untouched). NaN, ±inf and negative values are stored as missing hours (NaN in
    the exported ``window``). The output after each sample is :func:`nowcast` of the
    station's window, so splitting a stream into calls in any way gives the same outputs.
    """

    def __init__(self, n_stations: int, pollutant: Literal["pm25", "pm10", "o3"] = "pm25"):
        spec = NOWCAST_POLLUTANTS.get(pollutant)
        if spec is None:
            raise ValueError(
                f"unknown NowCast pollutant {pollutant!r}; "
                f"expected one of {tuple(NOWCAST_POLLUTANTS)}"
            )
        self.pollutant = pollutant
        self._hours, self._w_floor = spec
        super().__init__(n_stations)

    def _initial_state(self, n_devices: int) -> dict[str, np.ndarray]:
        return {
            "ring": _line_aligned_nan(n_devices, 2 * self._hours),
            "last_hour": np.full(n_devices, _NO_HOUR, dtype=np.int64),
        }

    def grow(self, n_devices: int) -> None:
        """Grow capacity (see :class:`DeviceStateArrays`), keeping the ring's rows on
        cache lines (a concatenated array has NumPy's alignment only)."""
        super().grow(n_devices)
        ring = self._state["ring"]
        if ring.ctypes.data % _LINE:
            aligned = _line_aligned_nan(*ring.shape)
            aligned[:] = ring
            self._state["ring"] = aligned

    def export_state(self, devices: npt.ArrayLike) -> dict[str, np.ndarray]:
        """Checkpoint rows of ``devices``: ``window`` (newest hour first, missing hours
        NaN) and ``last_hour`` (the newest hour's index), as :meth:`import_state` takes."""
        idx = self._device_indices(devices)
        last_hour = self._state["last_hour"][idx].copy()
        cols = _ring_slots(last_hour, self._hours)[:, None] + np.arange(self._hours)
        window = np.take_along_axis(self._state["ring"][idx], cols, axis=1)
        return {"window": window, "last_hour": last_hour}

    def import_state(self, devices: npt.ArrayLike, state: Mapping[str, np.ndarray]) -> None:
        """Load checkpointed rows (see :class:`DeviceStateArrays`); a missing hour in an
        imported window (±inf or negative, as older versions stored them) becomes NaN,
        the form the kernel reads."""
        idx = np.asarray(devices, dtype=np.int64).reshape(-1)
        staged = _WindowCheckpoint(idx.size, self._hours)  # validates before any change
        staged.import_state(np.arange(idx.size), state)
        window, last_hour = staged._state["window"], staged._state["last_hour"]
        window = np.where((window >= 0) & (window < np.inf), window, np.nan)
        slots = (_ring_slots(last_hour, self._hours)[:, None] + np.arange(self._hours)) % (
            self._hours
        )
        ring = np.empty((idx.size, 2 * self._hours))
        rows = np.arange(idx.size)[:, None]
        ring[rows, slots] = window
        ring[rows, slots + self._hours] = window
        super().import_state(idx, {"ring": ring, "last_hour": last_hour})

    def update(
        self, station: npt.ArrayLike, hour: npt.ArrayLike, value: npt.ArrayLike
    ) -> np.ndarray:
        """Absorb hourly averages (interleaved stations); return the NowCast after each.

        Raises ``ValueError`` (before any state change) for mismatched lengths, station
        indices out of range, non-integer hours or hours beyond ±2**52.
        """
        st = np.ascontiguousarray(station, dtype=np.int64).reshape(-1)
        hr_raw = np.asarray(hour)
        if hr_raw.dtype.kind == "f":
            if not np.all(np.isfinite(hr_raw)) or np.any(hr_raw != np.floor(hr_raw)):
                raise ValueError("hour must hold whole hour indices, e.g. floor(ts / 3600)")
        elif hr_raw.dtype.kind not in "iu" and hr_raw.size:
            raise ValueError(f"hour must be integer hour indices, got dtype {hr_raw.dtype}")
        # Range check in the input dtype, before the int64 cast: a cast of 1e300 or of
        # uint64 >= 2**63 wraps (to the "no hour" sentinel, say), and np.abs(int64 min)
        # is negative. The bound also keeps hour differences exact.
        extremes = None  # int64 hours (the usual input): both checks in one pass
        if hr_raw.dtype == np.int64 and hr_raw.size == st.size and st.size:
            extremes = _extremes(np.ascontiguousarray(hr_raw).reshape(-1), st)
            h_lo, h_hi = extremes[0], extremes[1]
        elif hr_raw.size:
            h_lo, h_hi = hr_raw.min(), hr_raw.max()
        if hr_raw.size and (h_hi >= 2**52 or h_lo <= -(2**52)):
            raise ValueError("hour indices must be below 2**52 in magnitude")
        hr = np.ascontiguousarray(hr_raw, dtype=np.int64).reshape(-1)
        val = _as_float_array(value, "value").reshape(-1)
        if not (st.size == hr.size == val.size):
            raise ValueError(
                f"length mismatch: station={st.size}, hour={hr.size}, value={val.size}"
            )
        # Station range check before any state change (it raises the error).
        if extremes is None or extremes[2] < 0 or extremes[3] >= self.n_devices:
            self._device_indices(st)
        out = np.empty(st.size, dtype=np.float64)
        state = self._state
        _nowcast_stream_kernel(
            st, hr, np.ascontiguousarray(val), state["ring"], state["last_hour"],
            self._w_floor, out,
        )  # fmt: skip
        return out


# -------------------------------------------------------------------------- categories
CATEGORY_NAMES: tuple[str, ...] = (
    "Good",
    "Moderate",
    "Unhealthy for Sensitive Groups",
    "Unhealthy",
    "Very Unhealthy",
    "Hazardous",
)
"""TAD 2024 Table 1 category names, index 0..5."""

CATEGORY_RGB: tuple[tuple[int, int, int], ...] = (
    (0, 228, 0),  # green
    (255, 255, 0),  # yellow
    (255, 126, 0),  # orange
    (255, 0, 0),  # red
    (143, 63, 151),  # purple
    (126, 0, 35),  # maroon
)
"""TAD 2024 Table 2 standard colours (RGB)."""

CATEGORY_COLORS: tuple[str, ...] = tuple("#{:02X}{:02X}{:02X}".format(*rgb) for rgb in CATEGORY_RGB)
"""The same colours as ``#RRGGBB`` hex strings."""

_UPPER = np.array([50, 100, 150, 200, 300], dtype=np.int64)
_NAMES = np.array([*CATEGORY_NAMES, ""])  # index -1 -> ""
_COLORS = np.array([*CATEGORY_COLORS, ""])


@dataclass(frozen=True)
class AqiCategory:
    """Vectorised AQI category: ``index`` 0..5 (-1 invalid), ``name`` and ``color``."""

    index: np.ndarray
    name: np.ndarray
    color: np.ndarray


def category(aqi: npt.ArrayLike) -> AqiCategory:
    """AQI categories with their EPA names and colours (TAD 2024, Tables 1 and 2).

    0-50 Good, 51-100 Moderate, 101-150 Unhealthy for Sensitive Groups, 151-200 Unhealthy,
    201-300 Very Unhealthy, 301 and above Hazardous (values above 500, "Beyond the AQI",
    stay Hazardous). Negative or non-finite values give index -1 and empty name/colour.
    Non-integer AQI values are rounded half up first.
    """
    arr = _as_float_array(aqi, "aqi")
    valid = np.isfinite(arr) & (arr >= 0)
    rounded = np.floor(np.where(valid, arr, 0.0) + 0.5).astype(np.int64)
    index = np.where(valid, np.searchsorted(_UPPER, rounded, side="left"), -1)
    return AqiCategory(index.astype(np.int8), _NAMES[index], _COLORS[index])
