"""Wearable channels: ``vitals`` (single reading or batched columns) and ``status``.

Vital signs use UCUM units and LOINC codes (see :mod:`ingest.contract.quantities`); bounds
are physiological plausibility limits, wide enough for real patients (HR 20-250 /min, SpO2
50-100 %, body temperature 25-45 Cel, respiration 2-80 /min) and narrow enough to catch unit
mix-ups (°F sent as Cel, a ratio sent as %).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from ingest.contract.clock import check_time
from ingest.contract.models._base import ContractModel, Timestamp
from ingest.contract.quantities import QUANTITIES, VITAL_FIELDS, measured

_Q = QUANTITIES

#: Most rows in one batched vitals payload (an hour at 1 Hz).
MAX_BATCH_ROWS = 3600


class Vitals(ContractModel):
    """One vital-signs reading of a wearable (topic channel ``vitals``)."""

    measurement_fields: ClassVar[tuple[str, ...]] = VITAL_FIELDS

    ts: Timestamp
    heart_rate: float | None = measured("heart_rate")
    spo2: float | None = measured("spo2")
    body_temp: float | None = measured("body_temp")
    respiration_rate: float | None = measured("respiration_rate")
    steps: int | None = measured("steps")

    @model_validator(mode="after")
    def _at_least_one(self) -> Vitals:
        self._require_any()
        return self


def _column(name: str) -> object:
    """Annotated item type of one batched column (null = not measured in that row)."""
    q = _Q[name]
    item = int if q.integer else float
    return Annotated[item | None, Field(ge=q.field_kwargs()["ge"], le=q.field_kwargs()["le"])]


_FiniteTime = Annotated[float, Field(ge=0)]


class VitalsBatch(ContractModel):
    """Columnar batch of vital-signs readings: ``{"ts": [...], "heart_rate": [...], ...}``.

    Every present column has one entry per ``ts`` (``null`` where not measured); ``ts`` is
    strictly increasing; each row has at least one measurement. Decodes to the same readings
    as the equivalent sequence of :class:`Vitals` (see :meth:`readings`).
    """

    measurement_fields: ClassVar[tuple[str, ...]] = VITAL_FIELDS

    ts: list[_FiniteTime] = Field(
        min_length=1, max_length=MAX_BATCH_ROWS, description="Seconds since the Unix epoch (UTC)"
    )
    heart_rate: list[_column("heart_rate")] | None = Field(  # type: ignore[valid-type]
        default=None, json_schema_extra=_Q["heart_rate"].schema_extra()
    )
    spo2: list[_column("spo2")] | None = Field(  # type: ignore[valid-type]
        default=None, json_schema_extra=_Q["spo2"].schema_extra()
    )
    body_temp: list[_column("body_temp")] | None = Field(  # type: ignore[valid-type]
        default=None, json_schema_extra=_Q["body_temp"].schema_extra()
    )
    respiration_rate: list[_column("respiration_rate")] | None = Field(  # type: ignore[valid-type]
        default=None, json_schema_extra=_Q["respiration_rate"].schema_extra()
    )
    steps: list[_column("steps")] | None = Field(  # type: ignore[valid-type]
        default=None, json_schema_extra=_Q["steps"].schema_extra()
    )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> VitalsBatch:
        self._require_any()
        ts = self.ts
        n = len(ts)
        columns = [(name, getattr(self, name)) for name in VITAL_FIELDS]
        columns = [(name, col) for name, col in columns if col is not None]
        for name, col in columns:
            if len(col) != n:
                raise PydanticCustomError(
                    "length_mismatch",
                    "column {field} has {got} values for {n} timestamps",
                    {"field": name, "value": len(col), "got": len(col), "n": n},
                )
        for i in range(1, n):
            if not ts[i] > ts[i - 1]:
                raise PydanticCustomError(
                    "monotonic",
                    "ts must be strictly increasing (ts[{i}] = {value})",
                    {"field": f"ts[{i}]", "value": ts[i], "i": i},
                )
        check_time("ts[0]", ts[0], info.context)
        check_time(f"ts[{n - 1}]", ts[-1], info.context)
        for i in range(n):
            if all(col[i] is None for _, col in columns):
                raise PydanticCustomError(
                    "no_measurement",
                    "row {i} has no measurement",
                    {"field": f"ts[{i}]", "value": ts[i], "i": i},
                )
        return self

    def readings(self) -> list[Vitals]:
        """Expand into one :class:`Vitals` per row (already validated: no re-validation)."""
        present = [(name, getattr(self, name)) for name in VITAL_FIELDS]
        out = []
        for i, t in enumerate(self.ts):
            values = {name: col[i] if col is not None else None for name, col in present}
            out.append(Vitals.model_construct(ts=t, **values))
        return out


class DeviceStatus(ContractModel):
    """Device status of a wearable or an elder-care hub (topic channel ``status``)."""

    ts: Timestamp
    battery: float = measured("battery", required=True)
