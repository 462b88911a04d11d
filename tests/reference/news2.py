"""Naive reference for :mod:`kernels.news2`: one observation set at a time.

Chart 1 of RCP NEWS2 (2017) transcribed as text ranges; values rounded half up with
:class:`decimal.Decimal` on their shortest repr.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext

# parameter: (resolution, "range:score" bins, lowest first; "lo-hi", "<=x", ">=x")
CHART_1 = {
    "resp_rate": ("1", "<=8:3 9-11:1 12-20:0 21-24:2 >=25:3"),
    "spo2_scale1": ("1", "<=91:3 92-93:2 94-95:1 >=96:0"),
    "spo2_scale2_air": ("1", "<=83:3 84-85:2 86-87:1 >=88:0"),
    "spo2_scale2_oxygen": ("1", "<=83:3 84-85:2 86-87:1 88-92:0 93-94:1 95-96:2 >=97:3"),
    "systolic_bp": ("1", "<=90:3 91-100:2 101-110:1 111-219:0 >=220:3"),
    "heart_rate": ("1", "<=40:3 41-50:1 51-90:0 91-110:1 111-130:2 >=131:3"),
    "temp_c": ("0.1", "<=35.0:3 35.1-36.0:1 36.1-38.0:0 38.1-39.0:1 >=39.1:2"),
}


def rounded(param: str, x: float) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 1000  # enough digits for any finite double
        return Decimal(repr(x)).quantize(Decimal(CHART_1[param][0]), rounding=ROUND_HALF_UP)


def bin_score(param: str, x: float) -> int:
    v = rounded(param, x)
    for item in CHART_1[param][1].split():
        rng, pts = item.split(":")
        if rng.startswith("<="):
            hit = v <= Decimal(rng[2:])
        elif rng.startswith(">="):
            hit = v >= Decimal(rng[2:])
        else:
            lo, hi = rng.split("-")
            hit = Decimal(lo) <= v <= Decimal(hi)
        if hit:
            return int(pts)
    raise AssertionError(f"{param}={x} falls in no bin")


def _measured(x: float) -> bool:
    return math.isfinite(x) and x >= 0


def score_one(
    resp_rate: float,
    spo2: float,
    on_oxygen: float,
    temp_c: float,
    systolic_bp: float,
    heart_rate: float,
    consciousness_alert: float,
    spo2_scale: int = 1,
) -> tuple[int, list[int], str, bool]:
    """(total, subscores in kernel column order, band, partial) of one observation set."""
    missing = [False] * 7
    sub = [0] * 7
    if _measured(resp_rate):
        sub[0] = bin_score("resp_rate", resp_rate)
    else:
        missing[0] = True
    oxygen = False
    if math.isnan(on_oxygen):
        missing[2] = True
    else:
        oxygen = on_oxygen != 0
        sub[2] = 2 if oxygen else 0
    if _measured(spo2) and spo2 <= 100:
        if spo2_scale == 1:
            sub[1] = bin_score("spo2_scale1", spo2)
        elif oxygen:
            sub[1] = bin_score("spo2_scale2_oxygen", spo2)
        else:
            sub[1] = bin_score("spo2_scale2_air", spo2)
    else:
        missing[1] = True
    if _measured(systolic_bp):
        sub[3] = bin_score("systolic_bp", systolic_bp)
    else:
        missing[3] = True
    if _measured(heart_rate):
        sub[4] = bin_score("heart_rate", heart_rate)
    else:
        missing[4] = True
    if math.isnan(consciousness_alert):
        missing[5] = True
    else:
        sub[5] = 0 if consciousness_alert != 0 else 3
    if math.isfinite(temp_c):
        sub[6] = bin_score("temp_c", temp_c)
    else:
        missing[6] = True
    total = sum(sub)
    if total >= 7:
        band = "high"
    elif total >= 5:
        band = "medium"
    elif 3 in sub:
        band = "low_medium"
    else:
        band = "low"
    return total, sub, band, any(missing)
