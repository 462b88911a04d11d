"""Device id strings -> dense local kernel indices, per partition.

Kernels index their state by small integers; micro-batches carry dictionary-encoded ids
(docs/BATCH_FORMAT.md). A batch's dictionary holds each device once, so the mapping runs
once per *unique* device of a batch and rows gather with ``index[codes]``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from itertools import repeat

import numpy as np

#: Per-value labels as ``(distinct names, code of each value into them)``.
Labels = tuple[Sequence[str], np.ndarray]


class DeviceIndex:
    """Assign each device id a stable local index (first seen, first numbered).

    Parameters
    ----------
    blocks
        Checkpoint blocks: a device belongs to block ``crc32(id) % blocks`` forever, so
        the compacted checkpoint key of its state does not depend on arrival order.
    """

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self._index: dict[str, int] = {}
        self.ids: list[str] = []
        self._block = np.empty(0, dtype=np.int32)
        #: District and family names, and each device's code into them.
        self.districts: list[str] = []
        self.families: list[str] = []
        self.district_code = np.empty(0, dtype=np.int32)
        self.family_code = np.empty(0, dtype=np.int32)
        self._district_of: dict[str, int] = {}
        self._family_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, values: Sequence[str], districts: Labels, families: Labels) -> np.ndarray:
        """Local indices of ``values`` (new ids get the next indices), int64.

        ``districts``/``families``: ``(names, code per value)`` (a batch's dictionary and
        the code of each device's row); a device's latest district is kept (the district
        tag of its derived points and alerts).
        """
        index = self._index
        try:  # the usual case, every device known: one C-level pass of subscripts
            out = np.fromiter(map(index.__getitem__, values), np.int64, len(values))
            known = True
        except KeyError:  # -1 for new devices, numbered below
            out = np.fromiter(map(index.get, values, repeat(-1)), np.int64, len(values))
            known = False
        new: list[str] = []
        if not known:
            for i in np.flatnonzero(out < 0).tolist():
                value = values[i]
                j = index.get(value)  # a repeated new value got its index already
                if j is None:
                    j = index[value] = len(self.ids)
                    self.ids.append(value)
                    new.append(value)
                out[i] = j
        if new:
            blocks = np.fromiter((zlib.crc32(v.encode()) % self.blocks for v in new), np.int32)
            self._block = np.concatenate([self._block, blocks])
            pad = np.zeros(len(new), dtype=np.int32)
            self.district_code = np.concatenate([self.district_code, pad])
            self.family_code = np.concatenate([self.family_code, pad])
        names, codes = districts
        self.district_code[out] = self.district_codes(names)[np.asarray(codes, dtype=np.int64)]
        names, codes = families
        self.family_code[out] = self.family_codes(names)[np.asarray(codes, dtype=np.int64)]
        return out

    def district_codes(self, names: Sequence[str]) -> np.ndarray:
        """int64 code in :attr:`districts` of each of ``names`` (new names are added)."""
        return np.array([_code(self._district_of, self.districts, d) for d in names], np.int64)

    def family_codes(self, names: Sequence[str]) -> np.ndarray:
        """int64 code in :attr:`families` of each of ``names`` (new names are added)."""
        return np.array([_code(self._family_of, self.families, f) for f in names], np.int64)

    def block_of(self, devices: np.ndarray) -> np.ndarray:
        """Checkpoint block of each local index."""
        return self._block[devices]

    def members(self, block: int) -> np.ndarray:
        """Local indices of the devices in ``block`` (ascending)."""
        return np.flatnonzero(self._block == block)


def _code(lookup: dict[str, int], names: list[str], name: str) -> int:
    code = lookup.get(name)
    if code is None:
        code = lookup[name] = len(names)
        names.append(name)
    return code
