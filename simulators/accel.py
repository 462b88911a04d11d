"""Accelerometer windows at city scale: a bank of clips from :mod:`simulators.motion`.

:func:`simulators.motion.synthesize` models one activity or fall on a 1 kHz grid, which is
far too slow to call for 10,000 devices every second. So at start-up the simulator renders a
bank of clips (several random variants of every activity and fall, with the device mounted
in the identity orientation), and each device *plays* clips back: every second it takes the
next ``rate_hz`` samples of its current clip, rotated by the device's own random mounting
rotation (device orientation is unknown in practice) plus a little white noise so two devices
playing the same clip never send identical windows. All of it is one gather and one batched
matrix product over the devices due in a tick.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulators import motion

#: Seconds per clip: falls need room for pre-fall, impact and stillness (motion.synthesize).
CLIP_S = {"fall": 12.0, "other": 10.0}
#: Extra white noise per axis (m/s^2) decorrelating devices that share a clip.
DEVICE_NOISE = 0.04
#: Noise windows drawn once and picked at random per device and second.
NOISE_BANK = 1024
#: Clip limit (m/s^2) just inside the 16 g full scale, so rounding never leaves the range.
LIMIT = 156.9


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly random rotations (batched QR of Gaussian matrices, Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] = -q[flip, :, 0]
    return q


class ClipBank:
    """Rendered clips of every activity and fall for some placements, at one rate.

    Attributes
    ----------
    names
        Activity names, indexable by activity code.
    placements
        Device placements (``motion.PLACEMENTS``), indexable by placement code.
    data
        float32[n_clips, max_len, 3] samples (m/s^2, gravity included), device frame.
    length
        Samples per clip.
    per
        Variants per (placement, activity): clip ``((p * len(names)) + a) * per + v``.
    impact
        Sample index of the fall impact per clip (-1 for activities without a fall).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        rate_hz: float,
        placements: Sequence[str],
        per_activity: int = 4,
        names: Sequence[str] = motion.ACTIVITIES + motion.FALLS,
    ) -> None:
        self.names = tuple(names)
        self.code = {n: i for i, n in enumerate(self.names)}
        self.placements = tuple(placements)
        self.rate_hz = rate_hz
        self.per = per_activity
        eye = np.eye(3)
        traces = []
        for placement in self.placements:
            for name in self.names:
                dur = CLIP_S["fall" if name in motion.FALLS else "other"]
                for _ in range(per_activity):
                    traces.append(
                        motion.synthesize(
                            name,
                            rate_hz=rate_hz,
                            duration_s=dur,
                            placement=placement,
                            rng=rng,
                            orientation=eye,
                        )
                    )
        self.length = np.array([tr.t.size for tr in traces], dtype=np.int64)
        self.data = np.zeros((len(traces), int(self.length.max()), 3), dtype=np.float32)
        self.impact = np.full(len(traces), -1, dtype=np.int64)
        for k, tr in enumerate(traces):
            self.data[k, : tr.t.size] = np.stack([tr.ax, tr.ay, tr.az], axis=1)
            if tr.falls.size:
                self.impact[k] = int(np.searchsorted(tr.t, tr.falls[0]))

    def pick(
        self, rng: np.random.Generator, activity: np.ndarray, placement: np.ndarray
    ) -> np.ndarray:
        """A random clip of each given activity code at each given placement code."""
        first = (placement * len(self.names) + activity) * self.per
        return first + rng.integers(0, self.per, activity.size)


class AccelPlayer:
    """Per-device clip playback producing 1-s windows for the devices due in a tick.

    Parameters
    ----------
    bank
        The clips.
    n
        Number of devices.
    rng
        Random stream (rotations, clip choice, noise).
    window
        Samples per window (``rate_hz`` for 1-s windows).

    Each device gets a random placement among the bank's and a random mounting rotation.
    """

    def __init__(self, bank: ClipBank, n: int, rng: np.random.Generator, window: int) -> None:
        self.bank = bank
        self.rng = rng
        self.window = window
        self.placement = rng.integers(0, len(bank.placements), n)
        self.rot = random_rotations(rng, n).astype(np.float32)
        self.clip = np.zeros(n, dtype=np.int64)
        self.pos = np.full(n, 1 << 30, dtype=np.int64)  # "clip exhausted": choose on first use
        # a bank of white-noise windows, drawn once: per-window draws cost more than the rest
        self.noise = rng.normal(0.0, DEVICE_NOISE, (NOISE_BANK, 3, window))

    def activity(self, idx: np.ndarray) -> np.ndarray:
        """Activity code currently played by each device."""
        return (self.clip[idx] // self.bank.per) % len(self.bank.names)

    def start(self, idx: np.ndarray, activity: np.ndarray) -> None:
        """Switch devices to a fresh clip of ``activity`` now (events: falls, fall-likes)."""
        self.clip[idx] = self.bank.pick(self.rng, activity, self.placement[idx])
        self.pos[idx] = 0

    def exhausted(self, idx: np.ndarray) -> np.ndarray:
        """Devices among ``idx`` whose clip has less than one window left."""
        return idx[self.pos[idx] + self.window > self.bank.length[self.clip[idx]]]

    def windows(self, idx: np.ndarray) -> np.ndarray:
        """float64[k, 3, window] (axis-major rows, C-contiguous), rounded to 0.01 m/s^2.

        Call :meth:`exhausted` and :meth:`start` first so every device has a full window.
        """
        w = self.window
        take = self.bank.data[self.clip[idx][:, None], self.pos[idx][:, None] + np.arange(w)]
        self.pos[idx] += w
        # device frame = R @ clip frame, per sample: (k, w, 3) @ (k, 3, 3)^T
        a = np.matmul(take, self.rot[idx].transpose(0, 2, 1)).transpose(0, 2, 1)
        out = self.noise[self.rng.integers(0, self.noise.shape[0], idx.size)]
        out += a
        np.clip(out, -LIMIT, LIMIT, out=out)
        # round to 0.01 in place (np.round allocates twice as much)
        out *= 100.0
        np.rint(out, out=out)
        out /= 100.0
        return out
