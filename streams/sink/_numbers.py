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
so ``d`` is the right candidate. Values that need 16–17 digits, or that ``repr`` writes
in exponent notation (``|v| < 1e-4`` or ``>= 1e16``), are flagged for Python's ``repr``:
sensor readings almost never are.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Row status: rendered, no value (NaN/inf: left out), or needs Python's ``repr``.
OK, ABSENT, FALLBACK = 0, -1, -2
_MINUS, _ZERO, _DOT = 45, 48, 46
_MAX_DIGITS = 10**15
_POW10_F = np.array([10.0**k for k in range(23)], dtype=np.float64)  # exact up to 1e22
_POW10_I = np.array([10**k for k in range(19)], dtype=np.int64)
_INT64_MIN_DIGITS = np.frombuffer(b"9223372036854775808", dtype=np.uint8)


@njit(cache=True, nogil=True)
def _n_digits(u: np.int64) -> int:
    n = 1
    while n < 19 and u >= _POW10_I[n]:
        n += 1
    return n


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
    for k in range(1, 20):
        d = np.round(a * _POW10_F[k])
        if d >= _MAX_DIGITS:
            break
        if d / _POW10_F[k] == a:
            return np.int64(d), k
    return np.int64(-1), 0


@njit(cache=True, nogil=True)
def render_floats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts of ``values`` as ``Point`` writes them.

    Returns
    -------
    buf : uint8 array
        The texts of the rendered rows, back to back.
    off : int64[n + 1]
        Row ``i``'s text is ``buf[off[i]:off[i + 1]]`` (empty unless its status is OK).
    status : int64[n]
        ``OK`` (0), ``ABSENT`` (NaN/inf) or ``FALLBACK`` (format with ``repr`` instead).
    """
    n = values.size
    buf = np.empty(n * 24, np.uint8)  # sign + 16 digits + dot at most
    off = np.zeros(n + 1, np.int64)
    status = np.zeros(n, np.int64)
    pos = 0
    for i in range(n):
        v = values[i]
        if not np.isfinite(v):
            status[i] = ABSENT
        else:
            a = abs(v)
            if v < 0 or (v == 0 and np.signbit(v)):
                buf[pos] = _MINUS
                pos += 1
            if a == np.trunc(a) and a < 1e16:  # integral: its digits, no ".0"
                u = np.int64(a)
                pos = _put_digits(u, _n_digits(u), buf, pos)
            elif a < 1e-4 or a >= 1e15:
                status[i] = FALLBACK
                pos = off[i]
            else:
                d, k = _shortest(a)
                if d < 0:
                    status[i] = FALLBACK
                    pos = off[i]
                else:
                    whole = d // _POW10_I[k]
                    pos = _put_digits(whole, _n_digits(whole), buf, pos)
                    buf[pos] = _DOT
                    pos = _put_digits(d - whole * _POW10_I[k], k, buf, pos + 1)
        off[i + 1] = pos
    return buf[:pos], off, status


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
            if v == -(2**63):  # -v overflows: write its digits from the uint64 magnitude
                for ch in _INT64_MIN_DIGITS:
                    buf[pos] = ch
                    pos += 1
                off[i + 1] = pos
                continue
            v = -v
        pos = _put_digits(v, _n_digits(v), buf, pos)
        off[i + 1] = pos
    return buf[:pos], off
