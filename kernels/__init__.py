"""Pure, Numba-compiled computation: arrays in, arrays out, per-device state in arrays.

One module per algorithm (``fall``, ``anomaly``, ``aqi``, ``news2``, ``heat``); no I/O and
no Python objects inside ``@njit`` functions.
"""
