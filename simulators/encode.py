"""Fast native-JSON encoding of simulated readings (orjson; numpy rows serialised in C).

At district scale the simulator formats ~20,000 payloads a second, so payloads are built
from column lists with preformatted ``bytes`` templates or one ``orjson.dumps`` call per
message; numbers are rounded once, vectorised, before formatting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ingest.contract import AccelWindow
from simulators.base import senml_bytes

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (numpy arrays and scalars allowed)."""
    return orjson.dumps(obj, option=_NUMPY)


def accel_payloads(
    t0: float, rate_hz: float, windows: np.ndarray, senml: np.ndarray | None = None
) -> list[bytes]:
    """One ``{"t0", "rate_hz", "x", "y", "z"}`` payload per row of ``windows[k, 3, n]``.

    ``senml[i]`` true encodes that window as a SenML pack instead (RFC 8428; one record per
    sample and axis, see :func:`ingest.contract.to_senml`).
    """
    out: list[bytes] = []
    for i in range(windows.shape[0]):
        w = windows[i]
        if senml is not None and senml[i]:
            out.append(
                senml_bytes(
                    AccelWindow,
                    t0=t0,
                    rate_hz=rate_hz,
                    x=w[0].tolist(),
                    y=w[1].tolist(),
                    z=w[2].tolist(),
                )
            )
        else:
            out.append(
                orjson.dumps(
                    {"t0": t0, "rate_hz": rate_hz, "x": w[0], "y": w[1], "z": w[2]}, option=_NUMPY
                )
            )
    return out
