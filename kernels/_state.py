"""Per-device state held in numpy arrays, shared by every stateful kernel.

A stateful kernel keeps one row per device in each of its state arrays (first axis is
the device index). This base class gives every kernel the same checkpoint and capacity
API, so the stream layer can persist and restore state without knowing the algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt


class DeviceStateArrays:
    """Base for kernels whose state is a set of per-device numpy arrays.

    Subclasses implement :meth:`_initial_state` and read/write ``self._state``.
    """

    def __init__(self, n_devices: int) -> None:
        if n_devices < 0:
            raise ValueError(f"n_devices must be >= 0, got {n_devices}")
        self._state: dict[str, np.ndarray] = self._initial_state(int(n_devices))

    # -- to implement ---------------------------------------------------------------------
    def _initial_state(self, n_devices: int) -> dict[str, np.ndarray]:
        """Fresh state arrays for ``n_devices`` devices (first axis = device)."""
        raise NotImplementedError

    # -- capacity -------------------------------------------------------------------------
    @property
    def n_devices(self) -> int:
        """Current device capacity."""
        return int(next(iter(self._state.values())).shape[0])

    def grow(self, n_devices: int) -> None:
        """Grow capacity to ``n_devices``, keeping the state of existing devices."""
        extra = int(n_devices) - self.n_devices
        if extra < 0:
            raise ValueError(f"cannot shrink from {self.n_devices} to {n_devices} devices")
        if extra == 0:
            return
        fresh = self._initial_state(extra)
        self._state = {k: np.concatenate([v, fresh[k]], axis=0) for k, v in self._state.items()}

    # -- checkpointing --------------------------------------------------------------------
    def export_state(self, devices: npt.ArrayLike) -> dict[str, np.ndarray]:
        """Copy the state of ``devices`` out as plain arrays (rows in the order given)."""
        idx = self._device_indices(devices)
        return {k: v[idx].copy() for k, v in self._state.items()}

    def import_state(self, devices: npt.ArrayLike, state: Mapping[str, np.ndarray]) -> None:
        """Load state rows for ``devices`` (as produced by :meth:`export_state`).

        Validates every array before changing anything, so a bad checkpoint leaves the
        current state untouched. Capacity grows when a device index is beyond it.
        """
        idx = np.asarray(devices, dtype=np.int64).reshape(-1)
        if idx.size and idx.min() < 0:
            raise ValueError("device indices must be >= 0")
        missing = set(self._state) - set(state)
        if missing:
            raise ValueError(f"state is missing arrays: {sorted(missing)}")
        converted: dict[str, np.ndarray] = {}
        for key, current in self._state.items():
            src = np.asarray(state[key])
            try:
                with np.errstate(invalid="ignore"):  # NaN -> int is caught just below
                    arr = src.astype(current.dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"state[{key!r}] is not convertible to {current.dtype}") from exc
            # A lossy cast (NaN or 1.5 into an int64 column) would corrupt the state
            # silently: NaN becomes int64 min, which is a sentinel in some kernels.
            if src.dtype != current.dtype and not np.array_equal(
                arr, src, equal_nan=arr.dtype.kind in "fc" and src.dtype.kind in "fc"
            ):
                raise ValueError(f"state[{key!r}] does not fit {current.dtype} exactly")
            if arr.shape != (idx.size, *current.shape[1:]):
                raise ValueError(
                    f"state[{key!r}] has shape {arr.shape}, "
                    f"expected {(idx.size, *current.shape[1:])}"
                )
            converted[key] = arr
        if idx.size and idx.max() >= self.n_devices:
            self.grow(int(idx.max()) + 1)
        for key, arr in converted.items():
            self._state[key][idx] = arr

    def reset(self, devices: npt.ArrayLike) -> None:
        """Forget what was learned about ``devices`` (back to the initial state)."""
        idx = self._device_indices(devices)
        fresh = self._initial_state(idx.size)
        for key, arr in fresh.items():
            self._state[key][idx] = arr

    # -- helpers for subclasses -----------------------------------------------------------
    def _device_indices(self, devices: npt.ArrayLike) -> np.ndarray:
        idx = np.asarray(devices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_devices):
            raise ValueError(
                f"device index out of range [0, {self.n_devices}): min {idx.min()}, max {idx.max()}"
            )
        return idx
