"""Clinical limit alarms on vital signs: a value beyond a fixed limit for a sustained time.

Beside the anomaly scorer (relative to each series' own history, so blind while a device
has no history and after a masking episode), these rules compare each reading with
absolute clinical limits, which need no history at all.

Limits (defaults, all ``CITYHEALTH_WORKER_LIMIT_*`` settings, docs/STREAMS.md)
----------------------------------------------------------------------------------
Chosen from the bands of NEWS2 (Royal College of Physicians 2017, chart 1), where a
single parameter scoring 3 ("red") already calls for an urgent clinical review, and from
the AHA/ACC definitions of brady- and tachycardia (Kusumoto et al. 2019, Circulation
140:e382, bradycardia < 50 /min; Page et al. 2016, Circulation 133:e506, tachycardia
> 100 /min at rest):

===============  ===========  ==============================================  ==========
rule (alert)     sign         enters at (rest / while walking)                leaves at
===============  ===========  ==============================================  ==========
tachycardia      heart rate   >= 120 /min at rest; >= 150 /min while active*  < 110
bradycardia      heart rate   <= 49 /min (guideline: below 50)                > 55
desaturation     SpO2         <= 91 % (NEWS2 scale 1 scores 3)                > 93
fever            body temp    >= 38.0 degC (NEWS2 scores 38.1-39.0 as 1)**    < 37.8
hypothermia      body temp    <= 35.0 degC (NEWS2 scores 3)                   > 35.5
tachypnoea       respiration  >= 25 /min (NEWS2 3); >= 35 /min while active   < 21
bradypnoea       respiration  <= 8 /min (NEWS2 3)                             > 11
===============  ===========  ==============================================  ==========

*Active* means the step counter advanced within ``active_s`` (60 s): exertion raises
heart and breathing rate physiologically (ACSM: 64-76 % of maximal heart rate is
"moderate" exercise), so the upper limits of those two signs are relaxed while a person
walks and the anomaly scorer's alerts on them are held back (docs/ALERTS.md).
(*) Unless the run began abruptly, ``onset`` (25 /min) above the sign's recent baseline
(exponential mean, ``baseline_tau_s`` 10 s): exercise raises heart rate over tens of
seconds (on-kinetics time constant 20-40 s), a paroxysmal tachycardia within beats.

(**) Or a rise of ``rise`` (1.1 degC) over the device's long-term baseline (exponential
mean, ``slow_tau_s`` 1 h, started at its first reading): the IDSA definition of fever in
older adults (High et al. 2009, Clin Infect Dis 48:149: a single oral temperature
> 37.8 degC, or an increase > 1.1 degC over baseline), for people whose normal is low
(or at the circadian trough) so that a fever stays below 38.0 degC.

Sustained, de-bounced, one alert per episode
--------------------------------------------
A rule's *run* starts at the first reading beyond its entry limit; readings back inside
for at most ``grace_s`` (sensor noise around the limit, a missing reading) do not end
it. The rule fires once the run has lasted ``sustain_s``, at least ``min_fraction``
(80 %) of its readings were beyond the limit (isolated artefact spikes never are) and no
episode is open; the
episode then stays open until the sign has stayed on the normal side of the (wider)
exit limit for ``clear_s`` (hysteresis, IEC 60601-1-8 alarm latching): a new violation
of the sign meanwhile (the person's own baseline beyond the exit limit, or a second
episode a few seconds after the first) is covered by the open alarm and raises nothing
new. The reading that clears the episode is reported too (the processor publishes it as
the alarm's *clear* record, its ``end``), so consumers know how long the alarm was
active. The alert's ``start`` is the run's first reading, so a replay finds the same
start and the same alert id. Readings with a time not after the device's previous one
are ignored (at-least-once replay cannot move the state); missing (NaN) signs carry no
information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

#: Column of each sign in the ``values`` matrix (the order of the vitals processor).
SIGNS = ("heart_rate", "spo2", "body_temp", "respiration_rate")


@dataclass(frozen=True)
class Rule:
    """One limit rule: ``direction`` +1 fires above ``enter``, -1 below it."""

    name: str
    sign: str
    direction: int
    enter: float
    enter_active: float
    leave: float
    onset: float = float("nan")
    rise: float = float("nan")


#: The default rules (see the module docstring for the sources).
RULES: tuple[Rule, ...] = (
    Rule("tachycardia", "heart_rate", +1, 120.0, 150.0, 110.0, onset=25.0),
    Rule("bradycardia", "heart_rate", -1, 49.0, 49.0, 55.0),
    Rule("desaturation", "spo2", -1, 91.0, 91.0, 93.0),
    Rule("fever", "body_temp", +1, 38.0, 38.0, 37.8, rise=1.1),
    Rule("hypothermia", "body_temp", -1, 35.0, 35.0, 35.5),
    Rule("tachypnoea", "respiration_rate", +1, 25.0, 35.0, 21.0),
    Rule("bradypnoea", "respiration_rate", -1, 8.0, 8.0, 11.0),
)
N_RULES = len(RULES)

#: Per (device, rule) state columns: run start, newest reading beyond the entry limit,
#: newest reading beyond the exit limit, episode open and the run start of the open
#: episode (its alert's ``start``, so its clear record carries the same alert id).
RULE_STATE = {
    "since": ("f8", np.nan),
    "last_out": ("f8", -np.inf),
    "last_abnormal": ("f8", -np.inf),
    "n_out": ("f8", 0.0),
    "n_all": ("f8", 0.0),
    "open": ("i1", 0),
    "abrupt": ("i1", 0),
    "opened": ("f8", np.nan),
}
#: Per device state columns: last step count, time it last advanced, last reading time.
DEVICE_STATE = {
    "steps": ("f8", np.nan),
    "stepped": ("f8", -np.inf),
    "last_t": ("f8", -np.inf),
}
#: Per (device, sign) state: the sign's recent and long-term baselines (exponential means,
#: ``baseline_tau_s`` and ``slow_tau_s``) and the time of their last update.
SIGN_STATE = {"base": ("f8", np.nan), "slow": ("f8", np.nan), "base_t": ("f8", -np.inf)}


@dataclass(frozen=True)
class Timing:
    """Seconds that make a limit violation an alarm (docs in the module docstring)."""

    sustain_s: float = 5.0
    grace_s: float = 3.0
    clear_s: float = 10.0
    active_s: float = 60.0
    baseline_tau_s: float = 10.0
    slow_tau_s: float = 3600.0
    min_fraction: float = 0.8


def rule_table(rules: tuple[Rule, ...] = RULES) -> np.ndarray:
    """float64[n_rules, 7]: sign column, direction, enter, enter while active, leave, onset,
    rise."""
    return np.array(
        [
            [SIGNS.index(r.sign), r.direction, r.enter, r.enter_active, r.leave, r.onset, r.rise]
            for r in rules
        ],
        dtype=np.float64,
    )


@njit(cache=True)
def _limits(
    dev: np.ndarray,
    t: np.ndarray,
    values: np.ndarray,
    steps: np.ndarray,
    table: np.ndarray,
    timing: np.ndarray,
    since: np.ndarray,
    last_out: np.ndarray,
    last_abn: np.ndarray,
    n_out: np.ndarray,
    n_all: np.ndarray,
    is_open: np.ndarray,
    abrupt: np.ndarray,
    opened: np.ndarray,
    d_steps: np.ndarray,
    d_stepped: np.ndarray,
    d_last: np.ndarray,
    base: np.ndarray,
    slow: np.ndarray,
    base_t: np.ndarray,
    ev_row: np.ndarray,
    ev_rule: np.ndarray,
    ev_start: np.ndarray,
    cl_row: np.ndarray,
    cl_rule: np.ndarray,
    cl_start: np.ndarray,
    active_out: np.ndarray,
) -> tuple[int, int]:
    sustain, grace, clear, active_s, tau = timing[0], timing[1], timing[2], timing[3], timing[4]
    frac, slow_tau = timing[5], timing[6]
    n_rules = table.shape[0]
    n_signs = values.shape[1]
    k = 0
    m = 0  # episodes cleared
    for i in range(t.size):
        d = dev[i]
        ti = t[i]
        if not ti > d_last[d]:
            active_out[i] = False
            continue
        d_last[d] = ti
        s = steps[i]
        if s == s:
            prev = d_steps[d]
            if prev == prev and s > prev:
                d_stepped[d] = ti
            d_steps[d] = s
        active = ti - d_stepped[d] <= active_s
        active_out[i] = active
        for r in range(n_rules):
            c = int(table[r, 0])
            x = values[i, c]
            if x != x:
                continue
            j = d * n_rules + r
            sgn = table[r, 1]
            if sgn * (x - table[r, 4]) > 0.0:
                last_abn[j] = ti
            running = since[j] == since[j] and ti - last_out[j] <= grace
            if not running:
                since[j] = np.nan
                abrupt[j] = 0
            beyond = sgn * (x - table[r, 2]) >= 0.0
            if beyond and active and abrupt[j] == 0:
                # While active the exertion limit applies, unless the run began with an
                # abrupt departure from the recent baseline (exercise raises heart rate
                # over tens of seconds; a paroxysmal tachycardia starts within beats).
                b = base[d * n_signs + c]
                onset = table[r, 5]
                if not running and onset == onset and b == b and sgn * (x - b) >= onset:
                    abrupt[j] = 1
                else:
                    beyond = sgn * (x - table[r, 3]) >= 0.0
            rise = table[r, 6]
            if not beyond and rise == rise:
                # a departure from the device's own long-term baseline (IDSA: a rise of
                # more than 1.1 degC over baseline is fever in older adults)
                sb = slow[d * n_signs + c]
                beyond = sb == sb and sgn * (x - sb) >= rise
            if beyond:
                if not running:
                    since[j] = ti
                    n_out[j] = 0.0
                    n_all[j] = 0.0
                last_out[j] = ti
                last_abn[j] = ti  # (a rise over the baseline may stay inside the exit limit)
            if since[j] == since[j]:
                n_all[j] += 1.0
                if beyond:
                    n_out[j] += 1.0
                if (
                    beyond
                    and is_open[j] == 0
                    and ti - since[j] >= sustain
                    and n_out[j] >= frac * n_all[j]
                ):
                    is_open[j] = 1
                    opened[j] = since[j]
                    ev_row[k] = i
                    ev_rule[k] = r
                    ev_start[k] = since[j]
                    k += 1
            if is_open[j] != 0 and ti - last_abn[j] >= clear:
                is_open[j] = 0
                cl_row[m] = i
                cl_rule[m] = r
                cl_start[m] = opened[j]
                m += 1
        # baselines after the rules (a reading is compared with the past, not itself)
        for c in range(n_signs):
            x = values[i, c]
            if x != x:
                continue
            j = d * n_signs + c
            b = base[j]
            if b != b:
                base[j] = x
                slow[j] = x
            else:
                dt = ti - base_t[j]
                base[j] = b + (x - b) * (dt / (tau + dt))
                slow[j] += (x - slow[j]) * (dt / (slow_tau + dt))
            base_t[j] = ti
    return k, m


@dataclass(frozen=True)
class LimitEvents:
    """Rules that fired: ``row`` (into the batch), ``rule`` (into :data:`RULES`) and
    ``start`` (first reading of the run); ``active`` flags every row read while the
    device was stepping. ``cleared_row``, ``cleared_rule`` and ``cleared_start``: the
    episodes that cleared (the reading that ended them, their rule and their alert's
    ``start``), so an alarm's end is known (a latched episode covers every violation of
    its sign until it clears, docs/STREAMS.md)."""

    row: np.ndarray
    rule: np.ndarray
    start: np.ndarray
    active: np.ndarray
    cleared_row: np.ndarray
    cleared_rule: np.ndarray
    cleared_start: np.ndarray


def check_limits(
    dev: np.ndarray,
    t: np.ndarray,
    values: np.ndarray,
    steps: np.ndarray,
    rule_state: dict[str, np.ndarray],
    device_state: dict[str, np.ndarray],
    sign_state: dict[str, np.ndarray],
    table: np.ndarray,
    timing: Timing,
) -> LimitEvents:
    """Run the limit rules over readings in time order per device; updates the state.

    Parameters
    ----------
    dev : int64[n]
        Local device index per reading.
    t : float64[n]
        Sensor time (s) per reading.
    values : float64[n, 4]
        The :data:`SIGNS` per reading (NaN: not measured).
    steps : float64[n]
        Cumulative step counter (NaN: not sent).
    rule_state, device_state, sign_state
        The :data:`RULE_STATE` arrays (``n_devices * n_rules``, device-major), the
        :data:`DEVICE_STATE` arrays (``n_devices``) and the :data:`SIGN_STATE` arrays
        (``n_devices * 4``), read and written.
    table
        :func:`rule_table` of the rules.
    timing
        Sustain, grace, clear and activity windows.
    """
    n = t.size
    ev_row = np.empty(n * table.shape[0] if n else 0, np.int64)
    ev_rule = np.empty_like(ev_row)
    ev_start = np.empty(ev_row.size, np.float64)
    cl_row, cl_rule, cl_start = np.empty_like(ev_row), np.empty_like(ev_row), ev_start.copy()
    active = np.zeros(n, np.bool_)
    if n == 0:
        return LimitEvents(ev_row, ev_rule, ev_start, active, cl_row, cl_rule, cl_start)
    k, m = _limits(
        np.ascontiguousarray(dev, dtype=np.int64),
        np.ascontiguousarray(t, dtype=np.float64),
        np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(steps, dtype=np.float64),
        table,
        np.array(
            [
                timing.sustain_s,
                timing.grace_s,
                timing.clear_s,
                timing.active_s,
                timing.baseline_tau_s,
                timing.min_fraction,
                timing.slow_tau_s,
            ]
        ),
        rule_state["since"],
        rule_state["last_out"],
        rule_state["last_abnormal"],
        rule_state["n_out"],
        rule_state["n_all"],
        rule_state["open"],
        rule_state["abrupt"],
        rule_state["opened"],
        device_state["steps"],
        device_state["stepped"],
        device_state["last_t"],
        sign_state["base"],
        sign_state["slow"],
        sign_state["base_t"],
        ev_row,
        ev_rule,
        ev_start,
        cl_row,
        cl_rule,
        cl_start,
        active,
    )
    return LimitEvents(
        ev_row[:k].copy(),
        ev_rule[:k].copy(),
        ev_start[:k].copy(),
        active,
        cl_row[:m].copy(),
        cl_rule[:m].copy(),
        cl_start[:m].copy(),
    )
