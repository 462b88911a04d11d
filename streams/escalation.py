"""NEWS2 band escalations per reading, decided in the batch that carries the reading.

NEWS2 (RCP 2017, Chart 1 and the clinical-response bands of Chart 2; ``kernels.news2``)
is scored after **every** reading from the latest value of each sign of the resident,
so the alert is known as soon as the batch with the reading that raised the band is
processed, not when the resident's minute is next written (up to a commit interval
later). The decision is a function of the readings alone: one compiled pass in arrival
order (time order per device, as the worker guarantees) over state arrays, so any
chunking of the readings into batches gives the one-shot result (tests/pipeline).

Rules (docs/ALERTS.md):

* A sign's latest value counts for :data:`MAX_AGE_S` (60 s, the span of the per-minute
  ``news2`` points); older, it is missing (scores 0, ``partial``), like a sign the
  minute did not see.
* An **episode** opens when the band reaches ``medium`` (RCP: urgent ward-based
  response) and raises an alert; a rise to ``high`` (emergency response) within it
  raises one more. The episode closes once the band stayed below ``medium`` for
  ``clear_s`` (the clinical limits' ``limit_clear_s``), so a band flickering at a
  boundary does not alert at every reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from kernels import news2

#: Seconds a sign's latest value stays usable for NEWS2.
MAX_AGE_S = 60.0
#: Per device: band after the latest reading (-1: none yet), highest band alerted in the
#: open episode (-1: no episode), time the band fell below ``medium`` in the episode.
NEWS2_STATE = {"band": ("i1", -1), "alerted": ("i1", -1), "below": ("f8", np.nan)}
#: Per (device, sign), rows ``device * 4 + sign``: latest finite value and its time.
LATEST_STATE = {"value": ("f8", np.nan), "t": ("f8", -np.inf)}
_MEDIUM = news2.BANDS.index("medium")


@dataclass(frozen=True)
class Escalations:
    """The readings that raised a resident's band to ``medium`` or ``high``.

    ``row`` indexes the readings given; the other arrays have one entry per escalation.
    """

    row: np.ndarray  # int64
    band: np.ndarray  # int8 code into news2.BANDS
    previous: np.ndarray  # int8 band after the device's previous reading (-1: none)
    total: np.ndarray  # int64 NEWS2 total
    partial: np.ndarray  # bool: a parameter was missing (always, for wearables)
    inputs: np.ndarray  # float64 [k, 4]: the latest signs used (NaN: missing)


@njit(cache=True, nogil=True)
def _pass(
    dev: np.ndarray,
    t: np.ndarray,
    values: np.ndarray,
    s_value: np.ndarray,
    s_t: np.ndarray,
    s_band: np.ndarray,
    s_alerted: np.ndarray,
    s_below: np.ndarray,
    max_age: float,
    clear_s: float,
    ev_row: np.ndarray,
    ev_band: np.ndarray,
    ev_previous: np.ndarray,
    ev_total: np.ndarray,
    ev_partial: np.ndarray,
    ev_inputs: np.ndarray,
) -> int:
    """Latest signs, NEWS2 and the episode rules of each reading in one pass (the score
    is ``kernels.news2``'s own per-set function, so it equals ``news2.score``); returns
    the number of escalations written to ``ev_*``."""
    nan = np.nan
    inputs = np.empty(4)
    k = 0
    for i in range(dev.size):
        d = dev[i]
        ti = t[i]
        for s in range(4):
            j = d * 4 + s
            v = values[i, s]
            if np.isfinite(v):
                s_value[j] = v
                s_t[j] = ti
            inputs[s] = s_value[j] if ti - s_t[j] <= max_age else nan
        # SIGNS order: heart rate, SpO2, temperature, respiration rate; wearables send
        # neither oxygen therapy, blood pressure nor consciousness level (NaN: missing)
        _, miss, total, band64, _ = news2.score_set(
            inputs[3], inputs[1], nan, inputs[2], nan, inputs[0], nan, 1.0
        )
        b = np.int8(band64)
        prev = s_band[d]
        if b >= _MEDIUM:
            s_below[d] = nan
            if b > s_alerted[d]:
                s_alerted[d] = b
                ev_row[k] = i
                ev_band[k] = b
                ev_previous[k] = prev
                ev_total[k] = total
                ev_partial[k] = miss != 0
                for s in range(4):
                    ev_inputs[k, s] = inputs[s]
                k += 1
        elif s_alerted[d] >= 0:
            if np.isnan(s_below[d]):
                s_below[d] = ti
            elif ti - s_below[d] >= clear_s:  # the episode closes
                s_alerted[d] = -1
                s_below[d] = nan
        s_band[d] = b
    return k


def news2_escalations(
    dev: np.ndarray,
    t: np.ndarray,
    values: np.ndarray,
    state: dict[str, np.ndarray],
    latest: dict[str, np.ndarray],
    clear_s: float,
    max_age_s: float = MAX_AGE_S,
) -> Escalations:
    """Score NEWS2 after each reading and return the escalations; updates the state.

    Parameters
    ----------
    dev : int64[n]
        Local device index per reading, readings in time order per device.
    t : float64[n]
        Sensor time (s) per reading.
    values : float64[n, 4]
        Heart rate, SpO2, body temperature, respiration rate (``streams.limits.SIGNS``
        order) per reading; NaN: not measured.
    state, latest
        The :data:`NEWS2_STATE` arrays (``n_devices``) and :data:`LATEST_STATE` arrays
        (``n_devices * 4``), read and written.
    clear_s
        Seconds below ``medium`` that close an episode.
    max_age_s
        Age beyond which a sign's latest value counts as missing.
    """
    n = dev.size
    ev_row = np.empty(n, np.int64)
    ev_band = np.empty(n, np.int8)
    ev_previous = np.empty(n, np.int8)
    ev_total = np.empty(n, np.int64)
    ev_partial = np.empty(n, np.bool_)
    ev_inputs = np.empty((n, 4))
    k = _pass(
        np.ascontiguousarray(dev, dtype=np.int64),
        np.ascontiguousarray(t, dtype=np.float64),
        np.ascontiguousarray(values, dtype=np.float64),
        latest["value"], latest["t"], state["band"], state["alerted"], state["below"],
        max_age_s, clear_s, ev_row, ev_band, ev_previous, ev_total, ev_partial, ev_inputs,
    )  # fmt: skip
    return Escalations(
        ev_row[:k], ev_band[:k], ev_previous[:k], ev_total[:k], ev_partial[:k], ev_inputs[:k]
    )
