"""Everything a partition's processor remembers, and its checkpoint blocks.

A :class:`PartitionState` holds the device index and named
:class:`~kernels._state.DeviceStateArrays` (kernels, period accumulators, per-device
columns). Some states keep several rows per device (e.g. one anomaly series per vital
sign: row ``device * k + signal``). Checkpoints export whole *blocks* of devices
(``crc32(id) % blocks``), one compacted-topic record per block, so a checkpoint only
carries the blocks touched since the previous one and compaction keeps the latest
record of each block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from kernels._state import DeviceStateArrays
from streams.devices import DeviceIndex, Labels

CHECKPOINT_VERSION = 1


def _labels(names: list[str]) -> Labels:
    """Per-device names as (distinct names, code per device)."""
    distinct = list(dict.fromkeys(names))
    code = {n: i for i, n in enumerate(distinct)}
    return distinct, np.array([code[n] for n in names], dtype=np.int64)


class CheckpointError(ValueError):
    """A checkpoint record that cannot be restored (version, shape, missing state)."""


class Columns(DeviceStateArrays):
    """Plain per-device columns (watermarks, last-seen times, open-episode flags)."""

    def __init__(self, spec: Mapping[str, tuple[str, float]], n_devices: int = 0) -> None:
        self.spec = dict(spec)
        super().__init__(n_devices)

    def _initial_state(self, n_devices: int) -> dict[str, np.ndarray]:
        return {k: np.full(n_devices, fill, dtype=dt) for k, (dt, fill) in self.spec.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._state[name]

    def import_state(self, devices: npt.ArrayLike, state: Mapping[str, np.ndarray]) -> None:
        """As :meth:`DeviceStateArrays.import_state`; a column the checkpoint lacks (one
        added to the spec after it was written) takes its default, so a worker upgraded
        to a version with a new column restores its devices instead of skipping the
        block and re-learning them. Unknown or malformed arrays still raise."""
        n = int(np.asarray(devices).size)
        filled = dict(state)
        for key, (dtype, fill) in self.spec.items():
            if key not in filled:
                filled[key] = np.full(n, fill, dtype=dtype)
        super().import_state(devices, filled)


def _pack_array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def _unpack_array(d: Mapping[str, Any]) -> np.ndarray:
    return np.frombuffer(d["data"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])


class PartitionState:
    """Device index plus named states with ``rows`` state rows per device."""

    def __init__(self, stream: str, blocks: int) -> None:
        self.stream = stream
        self.index = DeviceIndex(blocks)
        self.parts: dict[str, tuple[DeviceStateArrays, int]] = {}
        self.dirty: set[int] = set()

    def add(self, name: str, state: DeviceStateArrays, rows: int = 1) -> Any:
        """Register ``state`` (returned, for chaining) under ``name``."""
        self.parts[name] = (state, rows)
        return state

    def devices(self, values: Sequence[str], districts: Labels, families: Labels) -> np.ndarray:
        """:meth:`DeviceIndex.lookup`, then grow every state to hold the devices."""
        idx = self.index.lookup(values, districts, families)
        n = len(self.index)
        for state, rows in self.parts.values():
            if state.n_devices < n * rows:
                state.grow(max(n * rows, 2 * state.n_devices))
        return idx

    def touch(self, devices: np.ndarray) -> None:
        """Mark the blocks of ``devices`` as changed since the last checkpoint."""
        if devices.size:
            blocks = np.bincount(self.index.block_of(devices), minlength=self.index.blocks)
            self.dirty.update(np.flatnonzero(blocks).tolist())

    # -- checkpoint records ----------------------------------------------------------------
    def _rows(self, devices: np.ndarray, rows: int) -> np.ndarray:
        return (devices[:, None] * rows + np.arange(rows)).reshape(-1)

    def export_block(self, block: int) -> bytes:
        """msgpack record with every device of ``block`` and all their state rows."""
        return self._export({block: self.index.members(block)})[0][1]

    def take_dirty(self) -> list[tuple[int, bytes]]:
        """Records of the blocks changed since the last call (and forget them).

        One gather per state array for all dirty blocks together (then a slice per
        block), not one per block and array: a commit step touches most blocks.
        """
        if not self.dirty:
            return []
        block_of = self.index.block_of(np.arange(len(self.index)))
        order = np.argsort(block_of, kind="stable")  # ascending members within a block
        ranked = block_of[order]
        blocks = sorted(self.dirty)
        lo = np.searchsorted(ranked, blocks, side="left")
        hi = np.searchsorted(ranked, blocks, side="right")
        self.dirty.clear()
        return self._export({b: order[a:z] for b, a, z in zip(blocks, lo, hi, strict=True)})

    def _export(self, members: dict[int, np.ndarray]) -> list[tuple[int, bytes]]:
        """One record per block of ``members`` (block -> its ascending local indices)."""
        index = self.index
        everyone = np.concatenate(list(members.values()))
        cut = np.zeros(len(members) + 1, dtype=np.int64)
        np.cumsum([m.size for m in members.values()], out=cut[1:])
        gathered = {
            name: (part.export_state(self._rows(everyone, rows)), rows)
            for name, (part, rows) in self.parts.items()
        }
        ids = index.ids
        out = []
        for k, (block, devs) in enumerate(members.items()):
            state = {
                name: {
                    k2: _pack_array(v[cut[k] * rows : cut[k + 1] * rows])
                    for k2, v in arrays.items()
                }
                for name, (arrays, rows) in gathered.items()
            }
            record = {
                "v": CHECKPOINT_VERSION,
                "stream": self.stream,
                "block": block,
                "devices": [ids[i] for i in devs.tolist()],
                "districts": [index.districts[c] for c in index.district_code[devs].tolist()],
                "families": [index.families[c] for c in index.family_code[devs].tolist()],
                "state": state,
            }
            out.append((block, bytes(msgpack.packb(record, use_bin_type=True))))
        return out

    def import_block(self, payload: bytes) -> int:
        """Restore one record of :meth:`export_block`; returns the devices restored.

        Raises
        ------
        CheckpointError
            If the record does not fit this state (version, stream, missing arrays).
            A named state the record lacks (added to the processor after the record was
            written) is not an error: it starts fresh for the record's devices.
        """
        try:
            record = msgpack.unpackb(payload, raw=False)
            if record.get("v") != CHECKPOINT_VERSION:
                raise CheckpointError(f"unsupported checkpoint version {record.get('v')!r}")
            if record.get("stream") != self.stream:
                raise CheckpointError(f"checkpoint of stream {record.get('stream')!r}")
            ids = list(record["devices"])
            idx = self.devices(ids, _labels(record["districts"]), _labels(record["families"]))
            saved = record["state"]
            for name, (part, rows) in self.parts.items():
                if name not in saved:
                    # a state added after the record was written (an upgrade): it starts
                    # fresh for these devices; the others are restored, not re-learned
                    part.reset(self._rows(idx, rows))
                    continue
                arrays = {k: _unpack_array(v) for k, v in saved[name].items()}
                part.import_state(self._rows(idx, rows), arrays)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
            raise CheckpointError(f"bad checkpoint record: {type(exc).__name__}: {exc}") from None
        return len(ids)
