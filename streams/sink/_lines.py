"""Where the lines of a line-protocol body end (the body may hold multi-line strings).

A string field value may contain a raw newline (InfluxDB stores it; ``Point`` and
:func:`streams.sink.encode` write it as is), so "every ``\\n`` ends a line" is wrong for
bodies with string fields. The scan follows the line-protocol sections (InfluxDB 1.x
line-protocol reference): measurement and tags up to the first unescaped space, fields
up to the next unescaped space outside double quotes, then the timestamp; a backslash
escapes the next byte in every section.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NEWLINE, _SPACE, _QUOTE, _BACKSLASH = 10, 32, 34, 92
_KEY, _FIELDS, _QUOTED, _TIME = 0, 1, 2, 3


@njit(cache=True, nogil=True)
def _newline_ends(buf: np.ndarray) -> np.ndarray:
    """Positions of the newlines that end a line (not those inside a quoted string)."""
    out = np.empty(buf.size, dtype=np.int64)
    k = 0
    state = _KEY
    i = 0
    while i < buf.size:
        c = buf[i]
        if c == _NEWLINE and state != _QUOTED:
            out[k] = i
            k += 1
            state = _KEY
        elif c == _BACKSLASH and state != _TIME:
            i += 1  # the escaped byte has no meaning of its own
        elif c == _QUOTE and state == _FIELDS:
            state = _QUOTED
        elif (c == _QUOTE and state == _QUOTED) or (c == _SPACE and state == _KEY):
            state = _FIELDS  # a string ends, or the tags end
        elif c == _SPACE and state == _FIELDS:
            state = _TIME
        i += 1
    return out[:k]


def line_ends(body: bytes) -> np.ndarray:
    """int64 positions of the newline bytes that end lines of ``body``."""
    buf = np.frombuffer(body, dtype=np.uint8)
    if b'"' not in body:  # no string field: every newline ends a line (fast path)
        return np.flatnonzero(buf == _NEWLINE).astype(np.int64)
    return _newline_ends(buf)


def count_lines(body: bytes) -> int:
    """Number of lines (points) in ``body``; a trailing newline adds no line."""
    if not body:
        return 0
    if b'"' not in body:
        return body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    ends = _newline_ends(np.frombuffer(body, dtype=np.uint8))
    return ends.size + (0 if ends.size and ends[-1] == len(body) - 1 else 1)
