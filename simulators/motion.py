"""Tri-axial accelerometer signal model for daily activities and falls.

Pure numpy and deterministic: every random choice comes from the caller's
:class:`numpy.random.Generator`, so a seed reproduces a trace bit for bit.

Signal model
------------
The body segment that carries the device (trunk for ``waist`` and ``pendant``, thigh for
``pocket``, forearm for ``wrist``) is described by two continuous-time quantities
evaluated on a 1 kHz grid:

* ``u(t)``: the world "up" direction expressed in the segment frame (x anterior, y left,
  z along the segment towards the head/hip/elbow). A tilt ``theta`` from vertical in
  direction ``phi`` (0 forward, pi backward, +-pi/2 to the side) gives
  ``u = (-sin theta cos phi, -sin theta sin phi, cos theta)``.
* ``l(t)``: linear (dynamic) acceleration in the segment frame, in g.

An accelerometer measures specific force, so the segment reading is ``g0 * (u + l)`` with
``g0 = 9.80665 m/s^2`` (gravity included, at rest ``|a| = 1 g``). The device is mounted
with a fixed rotation ``R`` (random unless given: device orientation is unknown), the
sensor averages the signal over each sampling period (the output data-rate filter of MEMS
accelerometers, which is why short impacts look softer at 20 Hz than at 200 Hz), adds white
noise and clips at +-16 g. Sample times are ``k / rate_hz`` plus an optional uniform
jitter of ``+-jitter/2`` periods (irregular sampling, still strictly increasing).

Falls follow the phase model of Noury et al. (2007): *pre-fall* (ordinary activity),
*critical phase* (loss of balance, then a descent in which ``|a|`` drops towards 0 g
-- free fall -- while the segment rotates, ended by an *impact* of several g, often with
smaller secondary impacts of knees/hands just before or head/arm just after), *post-fall*
(lying with a changed gravity orientation, a few settling movements, then stillness).
Orders of magnitude follow the fall-detection literature:

* impact peaks of roughly 2.5-6 g at the trunk, higher at the wrist and lower at the thigh
  (Bourke et al. 2007, Gait & Posture 26:194, trunk upper threshold 3.52 g, thigh
  2.74 g; Kangas et al. 2008, Gait & Posture 28:285, impact > 2 g at waist/head);
* free-fall: ``|a|`` below about 0.4-0.6 g before the impact (Bourke 2007 lower fall
  threshold 0.41 g trunk; Kangas 2008 start-of-fall 0.6 g), often shallow in practice
  (Sucerquia et al. 2017, SisFall, Sensors 17:198);
* post-fall inactivity and a trunk orientation change of about 60-90 degrees
  (Kangas 2008 posture > 60 degrees; Noury 2007).

Activities of daily living mimic the hard confounders from those studies: sitting down
hard on a chair (peaks of 2-3 g and, for the thigh, a 90 degree orientation change),
jumping (real free fall and 3-6 g landings, but upright and still afterwards), jogging
(repeated 2-4 g heel strikes with flight phases), lying down on a bed (90 degree change,
soft contact), stairs, walking, and static postures. Ranges are literature-informed
choices, not fitted to a dataset: treat the model as a test bench, not as ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

G0 = 9.80665
"""Standard gravity (m/s^2)."""

ACTIVITIES: tuple[str, ...] = (
    "walking",
    "sitting",
    "standing",
    "lying",
    "sitting_down",
    "sitting_down_hard",
    "lying_down_bed",
    "stairs",
    "jumping",
    "jogging",
)
"""Activities of daily living (no fall)."""

FALLS: tuple[str, ...] = ("fall_forward", "fall_backward", "fall_lateral", "fall_slump_chair")
"""Fall types; each trace of one of these holds exactly one labelled impact."""

PLACEMENTS: tuple[str, ...] = ("wrist", "waist", "pocket", "pendant")

_FINE_HZ = 1000.0
_RANGE_G = 16.0
_DEG = np.pi / 180.0


@dataclass(frozen=True)
class _Placement:
    segment: str  # trunk, thigh or forearm
    noise_g: float  # white sensor + soft-tissue noise (g, per sample)
    fall_peak_g: tuple[float, float]  # total |a| at a fall impact
    slump_peak_g: tuple[float, float]  # total |a| at a slump-to-floor impact
    hard_sit_peak_g: tuple[float, float]  # total |a| when dropping onto a chair
    jump_peak_g: tuple[float, float]  # total |a| at a jump landing
    jog_peak_g: tuple[float, float]  # total |a| at a jogging heel strike
    ff_depth: tuple[float, float]  # fraction of gravity lost during the fall descent
    impact_width_s: tuple[float, float]
    swing: float  # pendulum swing of a loosely hung device (rad), 0 for fixed ones


_PLACEMENTS: dict[str, _Placement] = {
    "waist": _Placement(
        "trunk",
        0.012,
        (2.5, 6.0),
        (1.6, 3.0),
        (1.8, 2.8),
        (2.5, 5.0),
        (2.0, 3.0),
        (0.45, 0.95),
        (0.06, 0.15),
        0.0,
    ),
    "pendant": _Placement(
        "trunk",
        0.02,
        (2.5, 6.0),
        (1.6, 3.0),
        (1.8, 3.0),
        (3.0, 6.0),
        (2.5, 4.0),
        (0.4, 0.9),
        (0.05, 0.12),
        10 * _DEG,
    ),
    # thigh: softer, shorter impacts and little free fall (the hard case of the issue)
    "pocket": _Placement(
        "thigh",
        0.015,
        (2.0, 4.5),
        (1.5, 2.6),
        (1.6, 2.6),
        (3.0, 6.0),
        (2.5, 4.0),
        (0.1, 0.5),
        (0.04, 0.10),
        0.0,
    ),
    "wrist": _Placement(
        "forearm",
        0.02,
        (2.5, 8.0),
        (1.4, 2.6),
        (1.3, 2.0),
        (1.8, 3.5),
        (1.5, 2.5),
        (0.3, 0.9),
        (0.04, 0.10),
        0.0,
    ),
}


@dataclass(frozen=True)
class MotionTrace:
    """One accelerometer recording with its ground truth.

    Attributes
    ----------
    t : float64[n]
        Sample times (s), strictly increasing.
    ax, ay, az : float64[n]
        Acceleration in the device frame (m/s^2, gravity included).
    falls : float64[k]
        Time of each fall impact (s); empty for activities without a fall.
    segments : tuple of (start_s, end_s, activity)
        What was simulated when (one entry per chained activity).
    placement : str
    rate_hz : float
    """

    t: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    az: np.ndarray
    falls: np.ndarray
    segments: tuple[tuple[float, float, str], ...] = field(default=())
    placement: str = "waist"
    rate_hz: float = 50.0


# -- geometry ------------------------------------------------------------------------------


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix, Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _up(theta: float, phi: float) -> np.ndarray:
    """World-up in the segment frame for a tilt ``theta`` towards direction ``phi``."""
    return np.array([-np.sin(theta) * np.cos(phi), -np.sin(theta) * np.sin(phi), np.cos(theta)])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _blend(u0: np.ndarray, u1: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Normalised linear blend of two unit vectors (``s`` in [0, 1] per fine sample)."""
    v = (1.0 - s)[:, None] * u0[None, :] + s[:, None] * u1[None, :]
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _half_sine(tf: np.ndarray, center: float, width: float) -> np.ndarray:
    """Unit half-sine pulse of total duration ``width`` centred on ``center``."""
    x = (tf - center) / width + 0.5
    return np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)), 0.0)


def _ringdown(tf: np.ndarray, start: float, freq: float, decay_s: float) -> np.ndarray:
    """Damped oscillation after ``start`` (soft tissue / device rebound after an impact)."""
    dt = tf - start
    return np.where(dt > 0, np.exp(-np.maximum(dt, 0) / decay_s) * np.sin(2 * np.pi * freq * dt), 0)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


# -- postures --------------------------------------------------------------------------------


def _posture(segment: str, name: str, rng: np.random.Generator) -> np.ndarray:
    """Gravity direction (up, segment frame) for a named posture, with natural scatter."""
    j = rng.uniform(-1.0, 1.0)
    k = rng.uniform(-1.0, 1.0)
    if name == "standing":
        if segment == "forearm":  # arm hanging, slightly bent
            return _up((10 + 10 * j) * _DEG, rng.uniform(0, 2 * np.pi))
        return _up((3 + 3 * j) * _DEG, rng.uniform(0, 2 * np.pi))
    if name == "sitting":
        if segment == "trunk":  # upright or leaning back against the chair
            return _up((10 + 10 * j) * _DEG, np.pi + 0.3 * k)
        if segment == "thigh":  # thigh horizontal, pointing forward
            return _up((85 + 8 * j) * _DEG, np.pi + 0.2 * k)
        return _up((75 + 20 * j) * _DEG, rng.uniform(0, 2 * np.pi))  # forearm on lap
    if name.startswith("lying"):
        direction = {
            "lying_prone": 0.0,
            "lying_supine": np.pi,
            "lying_left": np.pi / 2,
            "lying_right": -np.pi / 2,
        }.get(name, rng.choice([np.pi, np.pi / 2, -np.pi / 2]))
        if segment == "forearm":
            return _up((90 + 45 * j) * _DEG, rng.uniform(0, 2 * np.pi))
        return _up((85 + 12 * j) * _DEG, direction + 0.35 * k)
    if name == "floor_slumped":  # slid off a chair: sitting or lying on the floor
        if segment == "trunk":
            return _up((65 + 25 * j) * _DEG, rng.uniform(0, 2 * np.pi))
        if segment == "thigh":  # thigh still roughly horizontal, rolled outwards
            side = rng.choice([-1.0, 1.0])
            return _up((85 + 10 * j) * _DEG, np.pi + side * (55 + 35 * k) * _DEG)
        return _up((90 + 45 * j) * _DEG, rng.uniform(0, 2 * np.pi))
    raise ValueError(f"unknown posture {name!r}")


# -- activity building blocks (all on the fine grid, return up-vector and linear accel) ------


@dataclass
class _Ctx:
    tf: np.ndarray
    p: _Placement
    rng: np.random.Generator

    def uniform(self, bounds: tuple[float, float]) -> float:
        return float(self.rng.uniform(*bounds))

    def still(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.tf.size
        return np.repeat(u[None, :], n, axis=0), np.zeros((n, 3))


def _sway(ctx: _Ctx, u: np.ndarray, amp_deg: float) -> np.ndarray:
    """Slow postural sway / small fidgeting around posture ``u``."""
    f1, f2 = ctx.rng.uniform(0.1, 0.5, 2)
    p1, p2 = ctx.rng.uniform(0, 2 * np.pi, 2)
    tilt = (
        amp_deg
        * _DEG
        * np.stack(
            [
                np.sin(2 * np.pi * f1 * ctx.tf + p1),
                np.sin(2 * np.pi * f2 * ctx.tf + p2),
                0 * ctx.tf,
            ],
            axis=1,
        )
    )
    v = u[None, :] + tilt
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _gait(
    ctx: _Ctx, u0: np.ndarray, step_hz: float, vert_g: float, strike_g: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cyclic locomotion: vertical bounce, heel strikes, segment swing at stride rate."""
    tf, rng, p = ctx.tf, ctx.rng, ctx.p
    ph = rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi * step_hz
    lin = np.zeros((tf.size, 3))
    lin[:, 2] = vert_g * (np.sin(w * tf + ph) + 0.3 * np.sin(2 * w * tf + 2 * ph))
    lin[:, 0] = 0.5 * vert_g * np.sin(w * tf + ph + 1.0)
    lin[:, 1] = 0.3 * vert_g * np.sin(0.5 * w * tf + ph)
    if strike_g > 0:
        strikes = np.arange(ph / w, tf[-1] if tf.size else 0.0, 1.0 / step_hz)
        for s in strikes:
            lin[:, 2] += strike_g * rng.uniform(0.8, 1.2) * _half_sine(tf, s, 0.08)
    swing = {"trunk": 3.0, "thigh": 25.0, "forearm": 25.0}[p.segment] * _DEG + p.swing
    swing *= rng.uniform(0.7, 1.3)
    theta = swing * np.sin(0.5 * w * tf + ph)
    # rotate u0 about the segment's lateral axis by theta (sagittal swing)
    c, s_ = np.cos(theta), np.sin(theta)
    u = np.stack([c * u0[0] - s_ * u0[2], np.full_like(tf, u0[1]), s_ * u0[0] + c * u0[2]], axis=1)
    return u / np.linalg.norm(u, axis=1, keepdims=True), lin


def _impact(
    ctx: _Ctx, lin: np.ndarray, u_after: np.ndarray, t0: float, peak_g: float, width: float
) -> None:
    """Add an impact of total magnitude about ``peak_g`` at ``t0`` plus its rebound."""
    direction = u_after + 0.4 * _unit(ctx.rng)
    direction /= np.linalg.norm(direction)
    amp = max(peak_g - 1.0, 0.0)
    pulse = _half_sine(ctx.tf, t0, width)
    ring = _ringdown(ctx.tf, t0 + width / 2, ctx.rng.uniform(4, 9), ctx.rng.uniform(0.06, 0.15))
    lin += (amp * pulse - 0.25 * amp * ring)[:, None] * direction[None, :]
    if ctx.p.swing > 0:  # loose pendant keeps bouncing on its cord
        bounce = _ringdown(ctx.tf, t0, ctx.rng.uniform(2, 4), 0.3)
        lin += (0.3 * bounce)[:, None] * _unit(ctx.rng)[None, :]


def _settle(ctx: _Ctx, lin: np.ndarray, start: float, dur: float, amp_g: float) -> None:
    """Small movements after a transition (limbs settling, shifting weight)."""
    window = (ctx.tf > start) & (ctx.tf < start + dur)
    for k in range(3):
        f = ctx.rng.uniform(0.5, 3.0)
        lin[:, k] += np.where(window, amp_g * np.sin(2 * np.pi * f * (ctx.tf - start)), 0.0)


def _transition(ctx: _Ctx, u0: np.ndarray, u1: np.ndarray, t0: float, dur: float) -> np.ndarray:
    return _blend(u0, u1, _smoothstep((ctx.tf - t0) / dur))


def _dip(ctx: _Ctx, lin: np.ndarray, u: np.ndarray, t0: float, dur: float, depth: float) -> None:
    """Lose ``depth`` of gravity along world-up for ``dur`` s ending at ``t0`` (descent)."""
    shape = _half_sine(ctx.tf, t0 - dur / 2, dur) ** 0.5
    lin -= (depth * shape)[:, None] * u


# -- activities ----------------------------------------------------------------------------


def _walking(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
    u0 = _posture(ctx.p.segment, "standing", ctx.rng)
    u, lin = _gait(ctx, u0, ctx.uniform((1.6, 2.1)), ctx.uniform((0.15, 0.3)), 0.2)
    return u, lin, []


def _stairs(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
    u0 = _posture(ctx.p.segment, "standing", ctx.rng)
    u, lin = _gait(ctx, u0, ctx.uniform((1.3, 1.8)), ctx.uniform((0.2, 0.4)), 0.5)
    return u, lin, []


def _jogging(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
    u0 = _posture(ctx.p.segment, "standing", ctx.rng)
    if ctx.p.segment == "forearm":  # elbow bent while running
        u0 = _up(80 * _DEG, ctx.rng.uniform(0, 2 * np.pi))
    step = ctx.uniform((2.4, 3.0))
    u, lin = _gait(ctx, u0, step, 0.5, ctx.uniform(ctx.p.jog_peak_g) - 1.0)
    return u, lin, []


def _static(name: str) -> Callable[[_Ctx], tuple[np.ndarray, np.ndarray, list[float]]]:
    def gen(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
        posture = "lying_any" if name == "lying" else name
        u0 = _posture(ctx.p.segment, posture, ctx.rng)
        u = _sway(ctx, u0, 2.0 if name == "standing" else 1.0)
        lin = ctx.rng.normal(0, 0.005, (ctx.tf.size, 3))
        dur = float(ctx.tf[-1]) if ctx.tf.size else 0.0
        if name == "lying" and dur > 8 and ctx.rng.random() < 0.5:  # turn over in bed
            t0 = ctx.uniform((2.0, dur - 5.0))
            u1 = _posture(ctx.p.segment, "lying_any", ctx.rng)
            u = _blend(u0, u1, _smoothstep((ctx.tf - t0) / ctx.uniform((1.5, 3.0))))
            _settle(ctx, lin, t0, 2.0, 0.08)
        elif dur > 4:  # shift weight once
            _settle(ctx, lin, ctx.uniform((0.5, dur - 2.0)), 1.0, 0.05)
        return u, lin, []

    return gen


def _sit(hard: bool) -> Callable[[_Ctx], tuple[np.ndarray, np.ndarray, list[float]]]:
    def gen(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
        seg, rng = ctx.p.segment, ctx.rng
        u0 = _posture(seg, "standing", rng)
        u1 = _posture(seg, "sitting", rng)
        t_contact = ctx.uniform((1.5, 2.5))
        dur = ctx.uniform((0.6, 1.0) if hard else (1.0, 2.0))
        u = _transition(ctx, u0, u1, t_contact - dur, dur)
        if seg == "trunk":  # lean forward while lowering, back when seated
            lean = _up(ctx.uniform((20, 40)) * _DEG, 0.0)
            s = _half_sine(ctx.tf, t_contact - dur / 2, dur)
            u = u + s[:, None] * (lean - u0)[None, :] * 0.8
            u /= np.linalg.norm(u, axis=1, keepdims=True)
        lin = np.zeros((ctx.tf.size, 3))
        depth = ctx.uniform((0.4, 0.7) if hard else (0.15, 0.35))
        _dip(ctx, lin, u1, t_contact, ctx.uniform((0.2, 0.35)) if hard else dur * 0.6, depth)
        peak = ctx.uniform(ctx.p.hard_sit_peak_g if hard else (1.2, 1.6))
        width = ctx.uniform((0.08, 0.15) if hard else (0.15, 0.3))
        _impact(ctx, lin, u1, t_contact, peak, width)
        _settle(ctx, lin, t_contact + 0.2, ctx.uniform((0.3, 1.5)), 0.05)
        return u, lin, []

    return gen


def _lying_down_bed(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
    seg, rng = ctx.p.segment, ctx.rng
    u0 = _posture(seg, "standing", rng)
    u_sit = _posture(seg, "sitting", rng)
    u_lie = _posture(seg, "lying_any", rng)
    t_sit = ctx.uniform((1.0, 2.0))
    t_lie = t_sit + ctx.uniform((1.0, 3.0))
    u = _transition(ctx, u0, u_sit, t_sit - 1.2, 1.2)
    u = np.where((ctx.tf > t_lie - 0.5)[:, None], _transition(ctx, u_sit, u_lie, t_lie, 2.5), u)
    lin = np.zeros((ctx.tf.size, 3))
    _dip(ctx, lin, u_sit, t_sit, 0.6, ctx.uniform((0.1, 0.3)))
    _impact(ctx, lin, u_sit, t_sit, ctx.uniform((1.1, 1.5)), 0.25)
    _impact(ctx, lin, u_lie, t_lie + 2.3, ctx.uniform((1.1, 1.4)), 0.3)  # mattress
    _settle(ctx, lin, t_lie + 2.5, 1.0, 0.05)
    return u, lin, []


def _jumping(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
    seg, rng = ctx.p.segment, ctx.rng
    u0 = _posture(seg, "standing", rng)
    u = _sway(ctx, u0, 2.0)
    lin = np.zeros((ctx.tf.size, 3))
    dur = float(ctx.tf[-1]) if ctx.tf.size else 0.0
    t = ctx.uniform((0.8, 1.5))
    while t + 3.0 < dur:  # leave a still stand after the last landing
        flight = ctx.uniform((0.25, 0.45))
        lin[:, 2] -= 0.4 * _half_sine(ctx.tf, t, 0.3)  # crouch
        lin[:, 2] += ctx.uniform((0.8, 1.2)) * _half_sine(ctx.tf, t + 0.25, 0.2)  # push-off
        land = t + 0.35 + flight
        flying = (ctx.tf > t + 0.35) & (ctx.tf < land)
        lin[flying] -= u[flying]  # ballistic flight: 0 g
        _impact(ctx, lin, u0, land, ctx.uniform(ctx.p.jump_peak_g), ctx.uniform((0.06, 0.12)))
        t = land + ctx.uniform((0.8, 2.0))
    return u, lin, []


def _fall(kind: str) -> Callable[[_Ctx], tuple[np.ndarray, np.ndarray, list[float]]]:
    def gen(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, list[float]]:
        seg, rng, p = ctx.p.segment, ctx.rng, ctx.p
        dur = float(ctx.tf[-1]) if ctx.tf.size else 0.0
        slump = kind == "fall_slump_chair"
        start = "sitting" if slump else "standing"
        u0 = _posture(seg, start, rng)
        final = {
            "fall_forward": "lying_prone",
            "fall_backward": "lying_supine",
            "fall_lateral": str(rng.choice(["lying_left", "lying_right"])),
            "fall_slump_chair": "floor_slumped",
        }[kind]
        u1 = _posture(seg, final, rng)
        t_imp = min(ctx.uniform((2.5, 4.0)), max(dur - 4.0, 1.0))
        descent = ctx.uniform((0.6, 1.2) if slump else (0.35, 0.7))
        # pre-fall: walking or standing (falls from standing); sitting for slumps
        if not slump and rng.random() < 0.5:
            u_pre, lin = _gait(ctx, u0, ctx.uniform((1.6, 2.1)), ctx.uniform((0.15, 0.3)), 0.2)
        else:
            u_pre, lin = _sway(ctx, u0, 2.0), np.zeros((ctx.tf.size, 3))
        before = ctx.tf < t_imp - descent
        lin[~before] = 0.0
        # loss of balance: a brief stumble before the descent
        stumble = ctx.uniform((0.1, 0.6))
        lin += (stumble * _half_sine(ctx.tf, t_imp - descent - 0.1, 0.2))[:, None] * _unit(rng)
        u = np.where(before[:, None], u_pre, _transition(ctx, u0, u1, t_imp - descent, descent))
        depth = ctx.uniform(p.ff_depth) * (0.4 if slump else 1.0)
        _dip(ctx, lin, u0, t_imp, descent, depth)
        peak = ctx.uniform(p.slump_peak_g if slump else p.fall_peak_g)
        width = ctx.uniform(p.impact_width_s) * (1.6 if slump else 1.0)
        _impact(ctx, lin, u1, t_imp, peak, width)
        # falls often hit more than once: knees or hands just before the trunk, the head,
        # an arm or a roll after it (the labelled impact stays the main, largest one)
        if rng.random() < 0.3:
            pre_peak = ctx.uniform((1.3, max(1.3, 0.7 * peak)))
            _impact(ctx, lin, u1, t_imp - ctx.uniform((0.15, 0.4)), pre_peak, width)
        if rng.random() < 0.5:
            post_peak = ctx.uniform((1.3, max(1.3, 0.8 * peak)))
            _impact(ctx, lin, u1, t_imp + ctx.uniform((0.3, 0.9)), post_peak, width)
        # post-fall: a few settling movements, then lying still
        _settle(ctx, lin, t_imp + 0.3, ctx.uniform((0.2, 0.8)), ctx.uniform((0.03, 0.12)))
        return u, lin, [t_imp]

    return gen


_GENERATORS: dict[str, Callable[[_Ctx], tuple[np.ndarray, np.ndarray, list[float]]]] = {
    "walking": _walking,
    "sitting": _static("sitting"),
    "standing": _static("standing"),
    "lying": _static("lying"),
    "sitting_down": _sit(hard=False),
    "sitting_down_hard": _sit(hard=True),
    "lying_down_bed": _lying_down_bed,
    "stairs": _stairs,
    "jumping": _jumping,
    "jogging": _jogging,
    **{k: _fall(k) for k in FALLS},
}


# -- sampling --------------------------------------------------------------------------------


def _sample_times(
    rate_hz: float, duration_s: float, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    n = max(int(np.floor(duration_s * rate_hz)), 1)
    t = np.arange(n) / rate_hz
    if jitter > 0:
        t = t + rng.uniform(-0.5, 0.5, n) * min(jitter, 0.95) / rate_hz
        t = np.maximum(t, 0.0)
        t = np.maximum.accumulate(t)
        t[1:] = np.maximum(t[1:], t[:-1] + 1e-6)  # strictly increasing
    return t


def _sensor(tf: np.ndarray, sig: np.ndarray, t: np.ndarray, rate_hz: float) -> np.ndarray:
    """Average the fine signal over each sample's period (the ODR low-pass of MEMS parts)."""
    c = np.vstack([np.zeros((1, 3)), np.cumsum(sig, axis=0)])
    hi = np.searchsorted(tf, t, side="right")
    lo = np.searchsorted(tf, t - 1.0 / rate_hz, side="right")
    lo = np.minimum(lo, hi - 1)
    lo = np.maximum(lo, 0)
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def synthesize(
    activity: str,
    *,
    rate_hz: float,
    duration_s: float,
    placement: str,
    rng: np.random.Generator,
    jitter: float = 0.0,
    orientation: np.ndarray | None = None,
    t0: float = 0.0,
) -> MotionTrace:
    """Simulate one activity or fall as seen by an accelerometer.

    Parameters
    ----------
    activity : str
        One of :data:`ACTIVITIES` or :data:`FALLS`.
    rate_hz : float
        Nominal sampling rate (Hz), e.g. 20-200.
    duration_s : float
        Length of the trace (s). Falls place the impact 2.5-4 s in and need at least 6 s
        to include the post-fall stillness.
    placement : str
        One of :data:`PLACEMENTS`.
    rng : numpy.random.Generator
        Source of every random choice (deterministic per seed).
    jitter : float
        Timestamp jitter as a fraction of the sampling period (0 = regular sampling).
    orientation : float64[3, 3], optional
        Device mounting rotation; random (uniform over rotations) when omitted.
    t0 : float
        Time of the first sample (s).

    Returns
    -------
    MotionTrace
    """
    if activity not in _GENERATORS:
        raise ValueError(f"unknown activity {activity!r}; expected one of {sorted(_GENERATORS)}")
    if placement not in _PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; expected one of {PLACEMENTS}")
    if not (rate_hz > 0 and duration_s > 0):
        raise ValueError("rate_hz and duration_s must be > 0")
    rot = random_rotation(rng) if orientation is None else np.asarray(orientation, float)
    p = _PLACEMENTS[placement]
    tf = np.arange(0.0, duration_s + 1.0 / _FINE_HZ, 1.0 / _FINE_HZ)
    ctx = _Ctx(tf, p, rng)
    u, lin, falls = _GENERATORS[activity](ctx)
    spec = (u + lin) @ rot.T  # segment frame -> device frame, in g
    t = _sample_times(rate_hz, duration_s, jitter, rng)
    a = _sensor(tf, spec, t, rate_hz)
    a += rng.normal(0.0, p.noise_g, a.shape)
    a = np.clip(a, -_RANGE_G, _RANGE_G) * G0
    return MotionTrace(
        t=t + t0,
        ax=np.ascontiguousarray(a[:, 0]),
        ay=np.ascontiguousarray(a[:, 1]),
        az=np.ascontiguousarray(a[:, 2]),
        falls=np.asarray(falls, dtype=np.float64) + t0,
        segments=((float(t0), float(t0 + duration_s), activity),),
        placement=placement,
        rate_hz=rate_hz,
    )


def concatenate(traces: Sequence[MotionTrace]) -> MotionTrace:
    """Chain traces in time: each one starts one sampling period after the previous ends.

    Fall labels and activity segments are shifted with their trace, so the result is a
    long labelled recording. All traces should share one placement (the first one's is
    reported).
    """
    if not traces:
        raise ValueError("nothing to concatenate")
    parts_t: list[np.ndarray] = []
    falls: list[np.ndarray] = []
    segments: list[tuple[float, float, str]] = []
    offset = 0.0
    for tr in traces:
        shift = offset - (tr.t[0] if tr.t.size else 0.0)
        parts_t.append(tr.t + shift)
        falls.append(tr.falls + shift)
        segments.extend((float(s + shift), float(e + shift), name) for s, e, name in tr.segments)
        offset = (parts_t[-1][-1] if tr.t.size else offset) + 1.0 / tr.rate_hz
    return MotionTrace(
        t=np.concatenate(parts_t),
        ax=np.concatenate([tr.ax for tr in traces]),
        ay=np.concatenate([tr.ay for tr in traces]),
        az=np.concatenate([tr.az for tr in traces]),
        falls=np.concatenate(falls),
        segments=tuple(segments),
        placement=traces[0].placement,
        rate_hz=traces[0].rate_hz,
    )


def scenario(
    activities: Sequence[str],
    *,
    rate_hz: float,
    placement: str,
    rng: np.random.Generator,
    durations: Sequence[float] | None = None,
    jitter: float = 0.0,
) -> MotionTrace:
    """One device's day in miniature: activities chained with one mounting orientation.

    ``durations`` defaults to 10 s per activity (12 s for falls, which then include the
    post-fall lying still).
    """
    rot = random_rotation(rng)
    if durations is None:
        durations = [12.0 if a in FALLS else 10.0 for a in activities]
    if len(durations) != len(activities):
        raise ValueError("durations must match activities")
    traces = [
        synthesize(
            a,
            rate_hz=rate_hz,
            duration_s=d,
            placement=placement,
            rng=rng,
            jitter=jitter,
            orientation=rot,
        )
        for a, d in zip(activities, durations, strict=True)
    ]
    return concatenate(traces)
