"""Naive reference for :mod:`kernels.heat`: the NWS WPC heat index page, step by step."""

from __future__ import annotations

import math


def heat_index_c(temp_c: float, rh: float) -> float:
    """NWS heat index (°C) of one temperature (°C) and relative humidity (%)."""
    if math.isnan(rh) or rh < 0 or rh > 100:
        return math.nan
    if math.isnan(temp_c) or temp_c < -273.15 or temp_c > 1000:
        return math.nan
    T = temp_c * 1.8 + 32
    RH = rh
    if T <= 40:  # NWS calculator: no heat index for cold air, the air temperature
        return temp_c
    simple = 0.5 * (T + 61.0 + ((T - 68.0) * 1.2) + (RH * 0.094))
    if (simple + T) / 2 < 80:
        hi = simple
    else:
        hi = (
            -42.379
            + 2.04901523 * T
            + 10.14333127 * RH
            - 0.22475541 * T * RH
            - 6.83783e-3 * T**2
            - 5.481717e-2 * RH**2
            + 1.22874e-3 * T**2 * RH
            + 8.5282e-4 * T * RH**2
            - 1.99e-6 * T**2 * RH**2
        )
        if RH < 13 and 80 <= T <= 112:
            hi -= ((13 - RH) / 4) * math.sqrt((17 - abs(T - 95.0)) / 17)
        if RH > 85 and 80 <= T <= 87:
            hi += ((RH - 85) / 10) * ((87 - T) / 5)
    return (hi - 32) * 5 / 9
