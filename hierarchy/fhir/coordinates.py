"""Positions: SOR's ETRS89 / UTM zone 32N coordinates as FHIR's WGS84 longitude and latitude.

SOR v2 addresses carry ``CoordETRS89z32EMeasure`` and ``CoordETRS89z32NMeasure`` (metres,
EPSG:25832). FHIR's ``Location.position`` is WGS84 (EPSG:4326) in decimal degrees. The
conversion is pyproj's (PROJ), not a formula written here; ETRS89 and WGS84 differ by less
than a metre in Denmark, which PROJ's default transformation between them reflects. Seven
decimals are about a centimetre.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from typing import Any

from pyproj import Transformer

UTM32_ETRS89 = "EPSG:25832"
WGS84 = "EPSG:4326"


@cache
def _transformer() -> Transformer:
    # always_xy: (easting, northing) in, (longitude, latitude) out, whatever the CRS's axes.
    return Transformer.from_crs(UTM32_ETRS89, WGS84, always_xy=True)


def wgs84_position(address: dict[str, Any] | None) -> dict[str, float] | None:
    """FHIR's position of *address* from its UTM32 coordinates; None without (usable) ones."""
    if not address:
        return None
    easting, northing = address.get("etrs89_easting"), address.get("etrs89_northing")
    if easting is None or northing is None:
        return None
    return _position(str(easting), str(northing))


@lru_cache(maxsize=65536)  # units at one address share it; an export meets each once
def _position(easting_text: str, northing_text: str) -> dict[str, float] | None:
    try:
        easting, northing = float(easting_text), float(northing_text)
    except ValueError:
        return None
    longitude, latitude = _transformer().transform(easting, northing)
    if not (math.isfinite(longitude) and math.isfinite(latitude)
            and -180 <= longitude <= 180 and -90 <= latitude <= 90):
        return None
    return {"longitude": round(longitude, 7), "latitude": round(latitude, 7)}
