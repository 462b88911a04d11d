"""Measured quantities: units (UCUM, SenML), LOINC codes and plausibility bounds.

One row per payload field that carries a physical or physiological quantity. The models
(:mod:`ingest.contract.models`) take their bounds and schema metadata from here, the SenML
codec (:mod:`ingest.contract.senml`) its unit names, and other code (sinks, dashboards, docs)
can import :data:`UCUM_UNITS`, :data:`LOINC_CODES` and :data:`SENML_UNITS` directly.

Units follow UCUM (https://ucum.org/ucum) for the native contract and the IANA SenML units
registry (RFC 8428 section 12.1, RFC 8798 secondary units) for SenML packs. Vital signs carry
their LOINC codes (heart rate 8867-4, SpO2 59408-5, body temperature 8310-5, respiration rate
9279-1) so stored data is interoperable with clinical systems (e.g. FHIR Observation.code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

#: 16 g full scale per axis (common MEMS accelerometer range), in m/s^2 (1 g = 9.80665 m/s^2).
ACCEL_MAX_MS2 = 16 * 9.80665


@dataclass(frozen=True, slots=True)
class Quantity:
    """A measured quantity as it appears on the wire.

    Attributes
    ----------
    name
        Field name in native JSON payloads (and the default SenML record name).
    ucum
        UCUM unit code of the native value.
    senml_unit
        Unit name emitted in SenML records (``u``).
    lo, hi
        Inclusive plausibility bounds; values outside are contract violations.
    description
        Human-readable meaning (goes into the JSON Schema).
    loinc
        LOINC code for vital signs; SenML records may use it as the record name.
    senml_scale
        Other accepted SenML unit names and the factor converting them to ``ucum``
        (e.g. SpO2 sent as a ratio ``/`` is multiplied by 100).
    integer
        Whether the value is an integer count.
    """

    name: str
    ucum: str
    senml_unit: str
    lo: float
    hi: float
    description: str
    loinc: str | None = None
    senml_scale: dict[str, float] = field(default_factory=dict)
    integer: bool = False

    def schema_extra(self) -> dict[str, Any]:
        """Metadata exposed on the field in the exported JSON Schema."""
        extra: dict[str, Any] = {"unit": self.ucum, "senml_unit": self.senml_unit}
        if self.loinc is not None:
            extra["loinc"] = self.loinc
        return extra

    def field_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`pydantic.Field` (bounds, description, metadata)."""
        return {
            "ge": int(self.lo) if self.integer else self.lo,
            "le": int(self.hi) if self.integer else self.hi,
            "description": f"{self.description} [{self.ucum}]",
            "json_schema_extra": self.schema_extra(),
        }


def measured(name: str, *, required: bool = False) -> Any:
    """A pydantic ``Field`` for quantity ``name``: bounds, description, unit metadata.

    Optional (default ``None``: not measured) unless ``required``.
    """
    kwargs = QUANTITIES[name].field_kwargs()
    return Field(**kwargs) if required else Field(default=None, **kwargs)


_Q = Quantity
QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        # --- wearable vital signs -----------------------------------------------------
        _Q(
            "heart_rate",
            "/min",
            "beat/min",
            20,
            250,
            "Heart rate",
            "8867-4",
            senml_scale={"1/min": 1.0},
        ),
        _Q(
            "spo2",
            "%",
            "%",
            50,
            100,
            "Oxygen saturation (SpO2, pulse oximetry)",
            "59408-5",
            senml_scale={"/": 100.0},
        ),
        _Q("body_temp", "Cel", "Cel", 25, 45, "Body (skin/core) temperature", "8310-5"),
        _Q("respiration_rate", "/min", "1/min", 2, 80, "Respiratory rate", "9279-1"),
        _Q(
            "steps",
            "{steps}",
            "count",
            0,
            1_000_000,
            "Step counter reported by the device",
            integer=True,
        ),
        _Q(
            "battery",
            "%",
            "%EL",
            0,
            100,
            "Remaining battery level",
            senml_scale={"%": 1.0, "/": 100.0},
        ),
        # --- accelerometer (per axis, gravity included) -----------------------------------
        _Q(
            "accel",
            "m/s2",
            "m/s2",
            -ACCEL_MAX_MS2,
            ACCEL_MAX_MS2,
            "Acceleration along one device axis, gravity included (16 g full scale)",
        ),
        # --- air-quality station ------------------------------------------------------
        _Q(
            "pm25",
            "ug/m3",
            "ug/m3",
            0,
            1000,
            "PM2.5 mass concentration",
            senml_scale={"kg/m3": 1e9},
        ),
        _Q(
            "pm10", "ug/m3", "ug/m3", 0, 2000, "PM10 mass concentration", senml_scale={"kg/m3": 1e9}
        ),
        _Q("o3", "[ppb]", "ppb", 0, 1000, "Ozone mole fraction", senml_scale={"/": 1e9}),
        _Q(
            "no2", "[ppb]", "ppb", 0, 2000, "Nitrogen dioxide mole fraction", senml_scale={"/": 1e9}
        ),
        _Q("so2", "[ppb]", "ppb", 0, 2000, "Sulphur dioxide mole fraction", senml_scale={"/": 1e9}),
        _Q("co", "[ppm]", "ppm", 0, 100, "Carbon monoxide mole fraction", senml_scale={"/": 1e6}),
        _Q("temperature", "Cel", "Cel", -60, 60, "Ambient air temperature"),
        _Q("humidity", "%", "%RH", 0, 100, "Relative humidity", senml_scale={"%": 1.0}),
        _Q("lat", "deg", "lat", -90, 90, "Latitude (WGS 84)"),
        _Q("lon", "deg", "lon", -180, 180, "Longitude (WGS 84)"),
        # --- accelerometer window sample rate -----------------------------------------
        _Q("rate_hz", "Hz", "Hz", 25, 100, "Accelerometer sample rate"),
    )
}

#: field name -> UCUM unit code.
UCUM_UNITS: dict[str, str] = {name: q.ucum for name, q in QUANTITIES.items()}
#: field name -> LOINC code (vital signs only).
LOINC_CODES: dict[str, str] = {name: q.loinc for name, q in QUANTITIES.items() if q.loinc}
#: field name -> SenML unit emitted by the encoder.
SENML_UNITS: dict[str, str] = {name: q.senml_unit for name, q in QUANTITIES.items()}
#: LOINC code -> field name (SenML records may be named by LOINC code).
LOINC_FIELDS: dict[str, str] = {code: name for name, code in LOINC_CODES.items()}

#: Vital-sign fields of the wearable ``vitals`` channel, in wire order.
VITAL_FIELDS: tuple[str, ...] = ("heart_rate", "spo2", "body_temp", "respiration_rate", "steps")
#: Measurement fields of the air-quality ``air`` channel, in wire order.
AIR_FIELDS: tuple[str, ...] = (
    "pm25",
    "pm10",
    "o3",
    "no2",
    "so2",
    "co",
    "temperature",
    "humidity",
)
