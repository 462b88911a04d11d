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


@njit(cache=True, nogil=True)
def _magnitude(v: np.int64) -> np.uint64:
    """|v| as uint64 (exact for int64 min too)."""
    if v < 0:
        return np.uint64(-(v + 1)) + np.uint64(1)
    return np.uint64(v)


@njit(cache=True, nogil=True)
def _digits(u: np.uint64) -> int:
    """Decimal digits of ``u`` (comparisons only: no division)."""
    n = 1
    p = np.uint64(10)  # a running power (a global array is rebuilt on every call)
    while n < 20 and u >= p:
        n += 1
        if n < 20:
            p *= _TEN
    return n


@njit(cache=True, nogil=True)
def _int_len(v: np.int64) -> int:
    return _digits(_magnitude(v)) + (1 if v < 0 else 0)


@njit(cache=True, nogil=True)
def _write_int_ending(v: np.int64, out: np.ndarray, end: int) -> None:
    """Write ``v`` in decimal so that its last digit is at ``out[end - 1]``."""
    u = _magnitude(v)
    q = end
    while True:
        q -= 1
        out[q] = _ZERO + np.uint8(u % _TEN)
        u //= _TEN
        if u == 0:
            break
    if v < 0:
        out[q - 1] = _MINUS


@njit(cache=True, nogil=True)
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
    first: np.ndarray,
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
    codes, first
        int64[p, n]: text of part ``j`` in row ``i``, counted from the part's first
        text ``first[j]`` (int64[p]) in ``texts``, or -1 when absent.
    times, has_time
        int64[n] timestamps written after a space when ``has_time``.

    Returns
    -------
    out : uint8 array
        Rows with at least one field, joined by ``\\n`` (no trailing newline).
    starts : int64 array
        Start offset of each written row in ``out`` (plus ``len(out) + 1`` at the end).

    Notes
    -----
    Two passes: sizes part by part (contiguous ``codes[j]``), then the bytes row by row
    with plain loops (tiny copies: a loop beats a slice copy's set-up); the timestamp's
    digits are written right to left into the space its length reserved.
    """
    n_parts, n = codes.shape
    m = measurement.size
    lengths = np.zeros(n, np.int64)
    n_fields = np.zeros(n, np.int64)
    for j in range(n_parts):
        fixed = prefix_off[j + 1] - prefix_off[j] + suffix_off[j + 1] - suffix_off[j]
        part = codes[j]
        field = is_field[j]
        base = first[j]
        for i in range(n):
            c = part[i]
            if c >= 0:
                c += base
                lengths[i] += fixed + text_off[c + 1] - text_off[c]
                if field:
                    n_fields[i] += 1
    total = 0
    kept = 0
    for i in range(n):
        if n_fields[i] == 0:
            lengths[i] = 0  # a row without a field is not written
            continue
        size = lengths[i] + m + n_fields[i]  # the space before the fields, then commas
        if has_time:
            size += 1 + _int_len(times[i])
        lengths[i] = size
        total += size
        kept += 1
    out = np.empty(max(total + kept - 1, 0), np.uint8)
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
        end = pos + lengths[i]
        row += 1
        for k in range(m):
            out[pos + k] = measurement[k]
        pos += m
        fields = 0
        for j in range(n_parts):
            c = codes[j, i]
            if c < 0:
                continue
            c += first[j]
            if is_field[j]:
                out[pos] = _SPACE if fields == 0 else _COMMA
                pos += 1
                fields += 1
            for k in range(prefix_off[j], prefix_off[j + 1]):
                out[pos] = prefixes[k]
                pos += 1
            for k in range(text_off[c], text_off[c + 1]):
                out[pos] = texts[k]
                pos += 1
            for k in range(suffix_off[j], suffix_off[j + 1]):
                out[pos] = suffixes[k]
                pos += 1
        if has_time:
            out[pos] = _SPACE
            _write_int_ending(times[i], out, end)
        pos = end
    starts[kept] = pos + 1
    return out, starts
