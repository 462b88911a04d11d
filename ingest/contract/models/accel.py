"""Triaxial accelerometer windows (wearable ``accel``, elder-care ``pendant``).

A window holds ``x``, ``y``, ``z`` in m/s² with gravity included, sampled either at a fixed
rate (``t0`` + ``rate_hz``, the compact batched-array form) or at explicit per-sample times
``t`` (strictly increasing). Rules: 25-100 Hz, 1-600 samples, at most 60 s long, equal
lengths, finite values within ±16 g per axis, window start/end inside the time limits.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from ingest.contract.clock import check_time
from ingest.contract.models._base import ContractModel
from ingest.contract.quantities import QUANTITIES, measured

_ACC = QUANTITIES["accel"]
_RATE = QUANTITIES["rate_hz"]

#: Most samples in one window.
MAX_SAMPLES = 600
#: Longest window duration in seconds.
MAX_WINDOW_S = 60.0
#: Tolerance on the mean rate implied by per-sample times (clock jitter): 25-100 Hz ± 20 %.
RATE_TOLERANCE = 0.2

Axis = Annotated[float, Field(ge=_ACC.lo, le=_ACC.hi)]
_SampleTime = Annotated[float, Field(ge=0)]


def _axis_field(name: str) -> object:
    return Field(
        min_length=1,
        max_length=MAX_SAMPLES,
        description=f"Acceleration along {name} [m/s2], gravity included",
        json_schema_extra=_ACC.schema_extra(),
    )


def _violation(rule: str, message: str, field: str, value: object) -> PydanticCustomError:
    return PydanticCustomError(rule, message, {"field": field, "value": value})


class AccelWindow(ContractModel):
    """One window: ``{"t0", "rate_hz", "x", "y", "z"}`` or ``{"t", "x", "y", "z"}``."""

    model_config = ConfigDict(
        json_schema_extra={
            "$comment": "cityhealth device contract (ingest.contract); docs/GATEWAYS.md",
            # exactly one of the two forms (the model enforces the same rule: window_form)
            "oneOf": [
                {
                    "required": ["t0", "rate_hz"],
                    "properties": {
                        "t0": {"type": "number"},
                        "rate_hz": {"type": "number"},
                        "t": {"type": "null"},
                    },
                },
                {
                    "required": ["t"],
                    "properties": {
                        "t": {"type": "array"},
                        "t0": {"type": "null"},
                        "rate_hz": {"type": "null"},
                    },
                },
            ],
        }
    )

    t0: float | None = Field(
        default=None, ge=0, description="Time of sample 0, seconds since the Unix epoch (UTC)"
    )
    rate_hz: float | None = measured("rate_hz")
    t: list[_SampleTime] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SAMPLES,
        description="Per-sample times, seconds since the Unix epoch (UTC), strictly increasing",
    )
    x: list[Axis] = _axis_field("x")  # type: ignore[assignment]
    y: list[Axis] = _axis_field("y")  # type: ignore[assignment]
    z: list[Axis] = _axis_field("z")  # type: ignore[assignment]

    @model_validator(mode="after")
    def _window_rules(self, info: ValidationInfo) -> AccelWindow:
        n = len(self.x)
        for name in ("y", "z"):
            got = len(getattr(self, name))
            if got != n:
                raise _violation(
                    "length_mismatch", f"{name} has {got} samples, x has {n}", name, got
                )
        t = self.t
        if t is None:
            if self.t0 is None or self.rate_hz is None:
                missing = "t0" if self.t0 is None else "rate_hz"
                raise _violation(
                    "window_form",
                    "a window needs either t0 and rate_hz, or per-sample times t",
                    missing,
                    None,
                )
            start, end = self.t0, self.t0 + (n - 1) / self.rate_hz
            if n / self.rate_hz > MAX_WINDOW_S:
                raise _violation(
                    "window_duration",
                    f"{n} samples at {self.rate_hz} Hz last longer than {MAX_WINDOW_S} s",
                    "x",
                    n,
                )
        else:
            if self.t0 is not None or self.rate_hz is not None:
                extra = "t0" if self.t0 is not None else "rate_hz"
                raise _violation(
                    "window_form", "per-sample times t exclude t0 and rate_hz", extra, None
                )
            if len(t) != n:
                raise _violation("length_mismatch", f"t has {len(t)} times, x has {n}", "t", len(t))
            for i in range(1, n):
                if not t[i] > t[i - 1]:
                    raise _violation(
                        "monotonic", f"t must be strictly increasing (t[{i}])", f"t[{i}]", t[i]
                    )
            start, end = t[0], t[-1]
            if end - start > MAX_WINDOW_S:
                raise _violation(
                    "window_duration",
                    f"window spans {end - start} s, more than {MAX_WINDOW_S} s",
                    "t",
                    end - start,
                )
            if n >= 2:
                rate = (n - 1) / (end - start)
                lo, hi = _RATE.lo * (1 - RATE_TOLERANCE), _RATE.hi * (1 + RATE_TOLERANCE)
                if not lo <= rate <= hi:
                    raise _violation(
                        "window_rate",
                        f"mean sample rate {rate:.3g} Hz is outside {lo:g}-{hi:g} Hz",
                        "t",
                        rate,
                    )
        check_time("t0" if t is None else "t[0]", start, info.context)
        check_time("t0" if t is None else f"t[{n - 1}]", end, info.context)
        return self

    @property
    def start(self) -> float:
        """Time of the first sample."""
        return self.t[0] if self.t is not None else self.t0  # type: ignore[return-value]

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.x)

    def times(self) -> list[float]:
        """Per-sample times (computed from ``t0`` and ``rate_hz`` in the rate form)."""
        if self.t is not None:
            return list(self.t)
        t0, dt = self.t0, 1.0 / self.rate_hz  # type: ignore[operator]
        return [t0 + i * dt for i in range(len(self.x))]  # type: ignore[operator]
