"""Numba kernels that render numeric columns as line-protocol texts, one per row.

Floats are written as Python's ``repr`` (the shortest decimal that reads back as the
same double, David Gay / Steele & White) minus a trailing ``.0``, which is what
``influxdb_client.Point`` writes. Without Ryu/Grisu in Numba, the kernel uses a property
of IEEE 754 binary64 instead: every decimal of at most 15 significant digits
(``DBL_DIG``) reads back as a *distinct* double, so if one of them reads back as ``v`` it
is the only one and ``repr(v)`` prints it. The kernel tries 0, 1, 2, ... fractional
digits: ``d = round(|v| * 10**k)`` and keeps the first ``k`` where ``d / 10**k == |v|``
(the division of two exact doubles is correctly rounded, i.e. it *is* the double the
decimal reads as). With ``d < 10**15`` the rounding error of the product is below 0.25,
so ``d`` is the right candidate. Values that need 16–17 digits (means, deviations,
scores) are rendered too, from an exact double-double product ``|v| * 10**k`` (Dekker):
the shortest of the 16- or 17-digit neighbours that reads back as ``v``. Flagged for
Python's ``repr`` (``FALLBACK``) are only the values that case cannot decide: within
``_MARGIN`` of a rounding tie or bound, powers of two needing 16–17 digits, and values
``repr`` writes in exponent notation (``|v| < 1e-4``) or at ``>= 1e15``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Codes of rows that were not rendered: no value (NaN/inf: left out), or needs ``repr``.
ABSENT, FALLBACK = -1, -2
_MINUS, _ZERO, _DOT = 45, 48, 46
_MAX_DIGITS = 10**15
_SPLIT = 134217729.0  # 2**27 + 1: Dekker's splitting constant for doubles
_MARGIN = 1e-9  # closer than this to a tie or a bound (in units of the last digit): Python
# No global arrays in the kernels: Numba rebuilds a cached function's global arrays on
# every call (a few microseconds each); powers of ten are running products instead.


@njit(cache=True, nogil=True)
def _n_digits(u: np.int64) -> int:
    n = 1
    p = np.int64(10)
    while n < 19 and u >= p:
        n += 1
        if n < 19:
            p *= 10
    return n


@njit(cache=True, nogil=True)
def _pow10(k: int) -> np.int64:
    p = np.int64(1)
    for _ in range(k):
        p *= 10
    return p


@njit(cache=True, nogil=True)
def _put_digits(u: np.int64, width: int, out: np.ndarray, pos: int) -> int:
    """Write ``u`` (>= 0) as exactly ``width`` decimal digits (zero-padded)."""
    for k in range(width - 1, -1, -1):
        out[pos + k] = _ZERO + u % 10
        u //= 10
    return pos + width


@njit(cache=True, nogil=True)
def _shortest(a: float) -> tuple[np.int64, int]:
    """``(d, k)`` with ``d / 10**k == a`` (``a`` > 0, not integral), or ``(-1, 0)``."""
    scale = 1.0
    for k in range(1, 20):
        scale *= 10.0  # exact: every power of ten up to 1e22 is a double
        d = np.round(a * scale)
        if d >= _MAX_DIGITS:
            return _long(a, k)
        if d / scale == a:
            return np.int64(d), k
    return np.int64(-1), 0


@njit(cache=True, nogil=True)
def _two_product(a: float, b: float) -> tuple[float, float]:
    """``(p, e)`` with ``p = fl(a * b)`` and ``p + e == a * b`` exactly (Dekker 1971,
    "A floating-point technique for extending the available precision"; no overflow)."""
    p = a * b
    t = _SPLIT * a
    ah = t - (t - a)
    al = a - ah
    t = _SPLIT * b
    bh = t - (t - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(cache=True, nogil=True)
def _nearest(a: float, k: int) -> tuple[np.int64, float]:
    """The integer nearest to the exact ``a * 10**k`` and its distance from it (signed,
    accurate to ~1e-15), or ``(-1, 0)`` when a tie is too close to call."""
    p, e = _two_product(a, _pow10f(k))
    f = np.floor(p)
    r = (p - f) + e  # p - f is exact (the fraction of a double)
    q = np.floor(r + 0.5)
    dist = r - q
    if abs(abs(dist) - 0.5) < _MARGIN:
        return np.int64(-1), 0.0
    return np.int64(f) + np.int64(q), dist


@njit(cache=True, nogil=True)
def _pow10f(k: int) -> float:
    p = 1.0
    for _ in range(k):
        p *= 10.0  # exact up to 1e22
    return p


@njit(cache=True, nogil=True)
def _long(a: float, k: int) -> tuple[np.int64, int]:
    """``repr``'s digits of ``a`` (``1e-4 <= a < 1e15``, not integral) when no decimal of
    15 significant digits reads back as ``a``, as ``(d, k)`` (``d / 10**k``), or ``(-1, 0)``
    (left to Python). ``k``: the fractional digits at which ``a`` gets 16 significant
    digits.

    ``repr`` writes the shortest decimal that reads back as ``a`` and, of those, the one
    nearest to ``a`` (Steele & White / Gay). With 16 digits only the nearest candidate
    can read back (the rounding interval is symmetric unless ``a`` is a power of two,
    left to Python); it does iff its distance from ``a * 10**k`` is below half an ulp of
    ``a`` scaled the same way (exact: a power of two times 5**k). Otherwise the nearest
    17-digit decimal does (17 digits always suffice). ``a * 10**k`` is exact as a
    double pair (:func:`_two_product`); anything within ``_MARGIN`` of a tie or of the
    interval's bound is left to Python, so the kernel never guesses.
    """
    mant, ex = math.frexp(a)
    if mant == 0.5:  # a power of two: the interval below is half the one above
        return np.int64(-1), 0
    d, dist = _nearest(a, k)
    if d < _MAX_DIGITS or d >= 10 * _MAX_DIGITS:
        return np.int64(-1), 0
    half = math.ldexp(_pow10f(k), ex - 54)  # ulp(a) / 2 * 10**k, exact
    if abs(dist) < half - _MARGIN:
        return (d, k) if d % 10 != 0 else (np.int64(-1), 0)
    if abs(dist) <= half + _MARGIN:
        return np.int64(-1), 0
    d, dist = _nearest(a, k + 1)
    if d < 10 * _MAX_DIGITS or d >= 100 * _MAX_DIGITS or d % 10 == 0:
        return np.int64(-1), 0
    return d, k + 1


@njit(cache=True, nogil=True)
def render_floats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Texts of ``values`` as ``Point`` writes them.

    Returns
    -------
    buf : uint8 array
        The texts of the rendered rows, back to back.
    off : int64[n + 1]
        Row ``i``'s text is ``buf[off[i]:off[i + 1]]`` (empty unless it was rendered).
    codes : int64[n]
        ``i`` where row ``i`` was rendered, ``ABSENT`` (NaN/inf: no value) or
        ``FALLBACK`` (format it with ``repr`` instead).
    fallbacks : int
        How many rows are ``FALLBACK``.
    """
    n = values.size
    buf = np.empty(n * 24, np.uint8)  # sign, "0.", 20 digits at most (a >= 1e-4)
    off = np.zeros(n + 1, np.int64)
    codes = np.arange(n)
    fallbacks = 0
    pos = 0
    for i in range(n):
        v = values[i]
        if not np.isfinite(v):
            codes[i] = ABSENT
        else:
            a = abs(v)
            if v < 0 or (v == 0 and np.signbit(v)):
                buf[pos] = _MINUS
                pos += 1
            if a == np.trunc(a) and a < 1e16:  # integral: its digits, no ".0"
                u = np.int64(a)
                pos = _put_digits(u, _n_digits(u), buf, pos)
            else:
                d, k = (np.int64(-1), 0) if a < 1e-4 or a >= 1e15 else _shortest(a)
                if d < 0:
                    codes[i] = FALLBACK
                    fallbacks += 1
                    pos = off[i]
                else:
                    # d < 10**17: for k > 18 (10**k beyond int64) there is no whole part
                    whole = d // _pow10(k) if k <= 18 else np.int64(0)
                    frac = d - whole * _pow10(k) if k <= 18 else d
                    pos = _put_digits(whole, _n_digits(whole), buf, pos)
                    buf[pos] = _DOT
                    pos = _put_digits(frac, k, buf, pos + 1)
        off[i + 1] = pos
    return buf[:pos], off, codes, fallbacks


@njit(cache=True, nogil=True)
def render_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimal texts of int64 ``values`` (``buf``, ``off[n + 1]``), as ``str(int)``."""
    n = values.size
    buf = np.empty(n * 20, np.uint8)
    off = np.zeros(n + 1, np.int64)
    pos = 0
    for i in range(n):
        v = values[i]
        if v < 0:
            buf[pos] = _MINUS
            pos += 1
            if v == -(2**63):  # -v overflows: the last digit first, then the rest
                rest = np.int64(922337203685477580)
                pos = _put_digits(rest, 18, buf, pos)
                buf[pos] = _ZERO + 8
                off[i + 1] = pos + 1
                pos += 1
                continue
            v = -v
        pos = _put_digits(v, _n_digits(v), buf, pos)
        off[i + 1] = pos
    return buf[:pos], off
