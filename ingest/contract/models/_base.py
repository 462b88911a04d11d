"""Base model and shared field types of the device contract."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo
from pydantic.functional_validators import AfterValidator
from pydantic_core import PydanticCustomError

from ingest.contract.clock import check_time


class ContractModel(BaseModel):
    """Strict, closed model: no type coercion, no unknown keys, finite numbers only.

    ``strict`` rejects ``"72"`` for a number and ``1`` for a boolean; ``extra="forbid"``
    rejects unknown keys (typos would otherwise be silently dropped); ``allow_inf_nan=False``
    rejects NaN and infinities, which JSON parsers in several languages emit.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        allow_inf_nan=False,
        frozen=True,
        json_schema_extra=lambda schema, cls: _schema_extra(schema, cls),
    )

    #: Fields that hold measurements; at least one must be present (see ``_require_any``).
    measurement_fields: ClassVar[tuple[str, ...]] = ()

    def _require_any(self) -> None:
        """Raise ``no_measurement`` when every measurement field is absent or null."""
        for name in self.measurement_fields:
            if getattr(self, name) is not None:
                return
        raise PydanticCustomError(
            "no_measurement",
            "at least one of {fields} must be present",
            {"field": "$", "value": None, "fields": ", ".join(self.measurement_fields)},
        )


def _schema_extra(schema: dict[str, Any], cls: Any) -> None:
    """Express "at least one measurement" in JSON Schema (``anyOf`` of non-null keys)."""
    schema["$comment"] = "cityhealth device contract (ingest.contract); docs/GATEWAYS.md"
    fields: tuple[str, ...] = getattr(cls, "measurement_fields", ())
    if fields:
        schema["anyOf"] = [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in fields
        ]


def _check_ts(value: float, info: ValidationInfo) -> float:
    check_time(info.field_name or "ts", value, info.context)
    return value


#: Seconds since the Unix epoch (UTC), checked against the validation clock.
Timestamp = Annotated[
    float,
    Field(ge=0, description="Seconds since the Unix epoch (UTC)", json_schema_extra={"unit": "s"}),
    AfterValidator(_check_ts),
]

#: A short identifier of a room or door inside a home (``kitchen``, ``front``).
PlaceName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_ -]{0,31}$",
        description="Room or door name (1-32 letters, digits, '_', '-', ' ')",
    ),
]
