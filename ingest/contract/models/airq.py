"""Air-quality station channel ``air``.

Bounds are physical plausibility limits of low-cost and reference monitors (PM2.5 0-1000
µg/m³, PM10 0-2000 µg/m³, O3 0-1000 ppb, NO2 and SO2 0-2000 ppb, CO 0-100 ppm, temperature
-60-60 °C, RH 0-100 %); readings beyond them are sensor faults or unit mix-ups.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from ingest.contract.models._base import ContractModel, Timestamp
from ingest.contract.quantities import AIR_FIELDS, measured


class AirQuality(ContractModel):
    """One air-quality reading of a fixed station (station id = topic device id)."""

    measurement_fields: ClassVar[tuple[str, ...]] = AIR_FIELDS

    ts: Timestamp
    lat: float = measured("lat", required=True)
    lon: float = measured("lon", required=True)
    pm25: float | None = measured("pm25")
    pm10: float | None = measured("pm10")
    o3: float | None = measured("o3")
    no2: float | None = measured("no2")
    so2: float | None = measured("so2")
    co: float | None = measured("co")
    temperature: float | None = measured("temperature")
    humidity: float | None = measured("humidity")

    @model_validator(mode="after")
    def _at_least_one(self) -> AirQuality:
        self._require_any()
        return self
