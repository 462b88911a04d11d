"""Numba kernel that assembles line-protocol bytes from pre-rendered value tables.

Every column reaches the kernel as *codes into a table of UTF-8 texts* (``-1``: the row
has no value there), so the kernel only copies bytes: no Python objects, no formatting
except the decimal digits of the int64 timestamps. ``streams/sink/lineprotocol.py``
renders each distinct value once in Python and explains the rules.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NEWLINE, _SPACE, _COMMA, _MINUS, _ZERO = 10, 32, 44, 45, 48
_TEN = np.uint64(10)
_POW10 = np.array([10**k for k in range(20)], dtype=np.uint64)  # 10**19 < 2**64


@njit(cache=True)
def _magnitude(v: np.int64) -> np.uint64:
    """|v| as uint64 (exact for int64 min too)."""
    if v < 0:
        return np.uint64(-(v + 1)) + np.uint64(1)
    return np.uint64(v)


@njit(cache=True)
def _digits(u: np.uint64) -> int:
    """Decimal digits of ``u`` (comparisons only: no division)."""
    n = 1
    while n < 20 and u >= _POW10[n]:
        n += 1
    return n


@njit(cache=True)
def _int_len(v: np.int64) -> int:
    return _digits(_magnitude(v)) + (1 if v < 0 else 0)


@njit(cache=True)
def _write_int(v: np.int64, out: np.ndarray, pos: int) -> int:
    if v < 0:
        out[pos] = _MINUS
        pos += 1
    u = _magnitude(v)
    n = _digits(u)
    for k in range(n - 1, -1, -1):
        out[pos + k] = _ZERO + np.uint8(u % _TEN)
        u //= _TEN
    return pos + n


@njit(cache=True)
def _copy(src: np.ndarray, start: int, stop: int, out: np.ndarray, pos: int) -> int:
    for k in range(start, stop):
        out[pos] = src[k]
        pos += 1
    return pos


@njit(cache=True)
def assemble(
    measurement: np.ndarray,
    is_field: np.ndarray,
    prefixes: np.ndarray,
    prefix_off: np.ndarray,
    suffixes: np.ndarray,
    suffix_off: np.ndarray,
    texts: np.ndarray,
    text_off: np.ndarray,
    codes: np.ndarray,
    times: np.ndarray,
    has_time: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate rows ``measurement[,tag=v...] field=v[,field=v...][ time]``.

    Parameters
    ----------
    measurement
        uint8: the escaped measurement name.
    is_field
        bool[p]: part ``j`` is a field (tags come first, in key order, then fields).
    prefixes, prefix_off, suffixes, suffix_off
        uint8 buffers and int64[p + 1] offsets: the constant text before (``,key=`` for
        a tag, ``key=`` or ``key="`` for a field) and after (``"``, ``i``) each value.
    texts, text_off
        uint8 buffer and int64 offsets of every rendered value.
    codes
        int64[p, n]: text id of part ``j`` in row ``i``, or -1 when absent.
    times, has_time
        int64[n] timestamps written after a space when ``has_time``.

    Returns
    -------
    out : uint8 array
        Rows with at least one field, joined by ``\\n`` (no trailing newline).
    starts : int64 array
        Start offset of each written row in ``out`` (plus ``len(out) + 1`` at the end).
    """
    n_parts, n = codes.shape
    lengths = np.zeros(n, np.int64)
    kept = 0
    for i in range(n):
        size = measurement.size
        fields = 0
        for j in range(n_parts):
            c = codes[j, i]
            if c < 0:
                continue
            if is_field[j]:
                fields += 1
            size += prefix_off[j + 1] - prefix_off[j] + suffix_off[j + 1] - suffix_off[j]
            size += text_off[c + 1] - text_off[c]
        if fields == 0:
            continue
        size += fields  # the space before the fields, then commas between them
        if has_time:
            size += 1 + _int_len(times[i])
        lengths[i] = size
        kept += 1
    out = np.empty(max(lengths.sum() + kept - 1, 0), np.uint8)
    starts = np.empty(kept + 1, np.int64)
    pos = 0
    row = 0
    for i in range(n):
        if lengths[i] == 0:
            continue
        if row > 0:
            out[pos] = _NEWLINE
            pos += 1
        starts[row] = pos
        row += 1
        pos = _copy(measurement, 0, measurement.size, out, pos)
        fields = 0
        for j in range(n_parts):
            c = codes[j, i]
            if c < 0:
                continue
            if is_field[j]:
                out[pos] = _SPACE if fields == 0 else _COMMA
                pos += 1
                fields += 1
            pos = _copy(prefixes, prefix_off[j], prefix_off[j + 1], out, pos)
            pos = _copy(texts, text_off[c], text_off[c + 1], out, pos)
            pos = _copy(suffixes, suffix_off[j], suffix_off[j + 1], out, pos)
        if has_time:
            out[pos] = _SPACE
            pos += 1
            pos = _write_int(times[i], out, pos)
    starts[kept] = pos + 1
    return out, starts
