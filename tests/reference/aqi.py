"""Naive reference for :mod:`kernels.aqi`: one Python value at a time, exact arithmetic.

Tables are transcribed independently from EPA-454/B-24-002 (May 2024), Table 6, as text.
Truncation uses the shortest decimal repr of each float for its own dtype
(``Decimal(repr(c))``; ``str`` of a numpy float32/float16 scalar) and the
interpolation is an exact :class:`fractions.Fraction`, rounded half up.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction

import numpy as np

# pollutant: (resolution, extrapolate above the table, "C_lo-C_hi:I_lo-I_hi" rows)
TABLE_6 = {
    "pm25": (
        "0.1",
        True,
        "0.0-9.0:0-50 9.1-35.4:51-100 35.5-55.4:101-150 55.5-125.4:151-200 "
        "125.5-225.4:201-300 225.5-325.4:301-500",
    ),
    "pm10": (
        "1",
        True,
        "0-54:0-50 55-154:51-100 155-254:101-150 255-354:151-200 355-424:201-300 425-604:301-500",
    ),
    "o3_8h": (
        "0.001",
        False,
        "0.000-0.054:0-50 0.055-0.070:51-100 0.071-0.085:101-150 0.086-0.105:151-200 "
        "0.106-0.200:201-300",
    ),
    "o3_1h": (
        "0.001",
        True,
        "0.125-0.164:101-150 0.165-0.204:151-200 0.205-0.404:201-300 0.405-0.604:301-500",
    ),
    "co": (
        "0.1",
        True,
        "0.0-4.4:0-50 4.5-9.4:51-100 9.5-12.4:101-150 12.5-15.4:151-200 15.5-30.4:201-300 "
        "30.5-50.4:301-500",
    ),
    "so2": (
        "1",
        True,
        "0-35:0-50 36-75:51-100 76-185:101-150 186-304:151-200 305-604:201-300 605-1004:301-500",
    ),
    "no2": (
        "1",
        True,
        "0-53:0-50 54-100:51-100 101-360:101-150 361-649:151-200 650-1249:201-300 "
        "1250-2049:301-500",
    ),
}

CEILING = 9999


def rows(pollutant: str) -> list[tuple[Decimal, Decimal, int, int]]:
    """The table rows of ``pollutant`` as (C_lo, C_hi, I_lo, I_hi)."""
    out = []
    for row in TABLE_6[pollutant][2].split():
        conc, index = row.split(":")
        c_lo, c_hi = conc.split("-")
        i_lo, i_hi = index.split("-")
        out.append((Decimal(c_lo), Decimal(c_hi), int(i_lo), int(i_hi)))
    return out


def shortest_decimal(c: float) -> Decimal:
    """The shortest decimal that reads back as ``c`` in ``c``'s own precision."""
    if isinstance(c, (np.float32, np.float16)):
        return Decimal(str(c))  # numpy prints the shortest round-trip repr of its dtype
    return Decimal(repr(float(c)))


def truncate(pollutant: str, c: float) -> Decimal:
    """EPA truncation of ``c`` to the table resolution (decimal value of its repr)."""
    with localcontext() as ctx:
        ctx.prec = 1000  # enough digits for any finite double
        return shortest_decimal(c).quantize(Decimal(TABLE_6[pollutant][0]), rounding=ROUND_FLOOR)


def round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def aqi(pollutant: str, c: float) -> int:
    """AQI of one concentration, -1 where invalid or undefined."""
    if math.isnan(c) or math.isinf(c) or c < 0:
        return -1
    extrapolate = TABLE_6[pollutant][1]
    table = rows(pollutant)
    ct = truncate(pollutant, c)
    if ct < table[0][0]:
        return -1
    inside = [row for row in table if row[0] <= ct <= row[1]]
    if not inside and not extrapolate:
        return -1
    c_lo, c_hi, i_lo, i_hi = inside[0] if inside else table[-1]
    if ct > 10**15:  # saturated long before; keeps the Fractions small
        return CEILING
    value = Fraction(i_hi - i_lo) / Fraction(c_hi - c_lo) * Fraction(ct - c_lo) + i_lo
    return min(round_half_up(value), CEILING)


def aqi_many(pollutant: str, values: list[float] | np.ndarray) -> list[int]:
    """AQI of each value; float32/float16 arrays keep their dtype (their own repr)."""
    if isinstance(values, np.ndarray) and values.dtype in (np.float32, np.float16):
        return [aqi(pollutant, v) for v in values.reshape(-1)]
    return [aqi(pollutant, float(v)) for v in values]


def nowcast(hourly_most_recent_first: list[float], hours: int, w_floor: float) -> float:
    """NowCast of one station, straight from the EPA step list."""
    window = list(hourly_most_recent_first[:hours])
    window += [math.nan] * (hours - len(window))
    valid = [(h, v) for h, v in enumerate(window) if math.isfinite(v) and v >= 0]
    if sum(1 for h, _ in valid if h < 3) < 2:
        return math.nan
    values = [v for _, v in valid]
    c_max, c_min = max(values), min(values)
    # EPA's w* = 1 - (c_max - c_min) / c_max, evaluated as the equal c_min / c_max: the
    # subtraction cancels to 0 when c_min / c_max < 2**-53 (o3 hours 1e-38 and 1.0 gave
    # w = 0, the newest hour alone, instead of the formula's value).
    w = 1.0 if c_max <= 0 else c_min / c_max
    w = max(w, w_floor)
    if w == 0.0:  # limit of the formula: only the newest valid hour has weight
        return valid[0][1]
    num = sum(w**h * v for h, v in valid)
    den = sum(w**h for h, _ in valid)
    return num / den


def category_index(aqi_value: float) -> int:
    """0..5 for Good..Hazardous, -1 for invalid."""
    if not math.isfinite(aqi_value) or aqi_value < 0:
        return -1
    v = math.floor(aqi_value + 0.5)
    for i, upper in enumerate((50, 100, 150, 200, 300)):
        if v <= upper:
            return i
    return 5


class ReferenceNowCastStream:
    """Per-station dict of {hour: value}; the NowCast recomputed from scratch each time."""

    def __init__(self, hours: int, w_floor: float) -> None:
        self.hours = hours
        self.w_floor = w_floor
        self.seen: dict[int, dict[int, float]] = {}

    def step(self, station: int, hour: int, value: float) -> float:
        history = self.seen.setdefault(station, {})
        if history and hour < max(history):
            return math.nan  # late hour: ignored
        history[hour] = value
        newest = max(history)
        window = [history.get(newest - h, math.nan) for h in range(self.hours)]
        return nowcast(window, self.hours, self.w_floor)
