"""Location features from latitude/longitude: the H3 cell (Uber's hexagonal grid, the ``h3``
package) at a chosen resolution and the nearest town (``reverse_geocode``, which ships the
GeoNames places of 1,000+ people, so nothing is downloaded at run time), as categories.

A cell or town seen on fewer than ``min_count`` training rows is folded into "other" (learnt at
fit time, on the training rows only), so a rare place neither overfits nor leaks an id; rows
without usable coordinates are "missing". :class:`LocationEncoder` is used inside
:class:`rudikit.features.encoding.TabularEncoder`, so it is part of the saved pipeline and the
service scores raw coordinates exactly as the run did.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import reverse_geocode
from sklearn.base import BaseEstimator, TransformerMixin

OTHER = "other"  # a place seen on fewer than min_count training rows
MISSING = "missing"  # no coordinates, or coordinates that cannot exist
CELL = "h3_cell"
TOWN = "town"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _valid(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Points that can exist (the loaders' rule, :func:`rudikit.data.validation.
    impossible_coordinates`): others are "missing"."""
    with np.errstate(invalid="ignore"):
        return (np.isfinite(latitude) & np.isfinite(longitude) & (np.abs(latitude) <= 90)
                & (np.abs(longitude) <= 180))


def coordinates(frame: pd.DataFrame, latitude: str, longitude: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """The two columns as floats (NaN where missing or not a number)."""
    return tuple(pd.to_numeric(frame[c], errors="coerce").astype("Float64").to_numpy(
        dtype=float, na_value=np.nan) for c in (latitude, longitude))  # type: ignore[return-value]


def h3_cells(latitude: np.ndarray, longitude: np.ndarray, resolution: int) -> np.ndarray:
    """Each point's H3 cell id (text), None where the point is missing or impossible. Each
    distinct point is looked up once (published coordinates are snapped to map points)."""
    return _per_point(latitude, longitude, lambda points: [
        h3.latlng_to_cell(lat, lon, resolution) for lat, lon in points])


def nearest_towns(latitude: np.ndarray, longitude: np.ndarray, min_population: int
                  ) -> np.ndarray:
    """Each point's nearest place of at least ``min_population`` people, None where the point
    is missing or impossible. reverse_geocode's nearest is in degrees, not kilometres: near a
    border between two towns it may pick the farther one (it is a category, not a distance)."""
    tree, names = _towns(min_population)
    return _per_point(latitude, longitude, lambda points: [
        names[i] for i in tree.query(points, k=1)[1]])


@functools.cache
def _towns(min_population: int) -> tuple[Any, list[str]]:
    """(a k-d tree of the places of at least ``min_population`` people, their names): what
    ``reverse_geocode.search`` looks up, read from the data file it ships. reverse_geocode keeps
    every place as a dict and parses all 150,000 of them to keep some: 97 MB a process (the
    run's driver and each worker), most of it freed dicts the heap cannot give back. Kept here
    as it parses, 13 MB. The same places in the same order give the same tree, so the same
    nearest place (tests/test_location.py checks against reverse_geocode)."""
    from scipy.spatial import cKDTree

    def place(pairs: list[tuple[str, Any]]) -> tuple[float, float, str] | None:
        found = dict(pairs)
        if min_population > 0 and found["population"] < min_population:
            return None
        return found["latitude"], found["longitude"], found["city"]

    path = Path(reverse_geocode.__file__).parent / "geocode.gz"
    with gzip.open(path) as data:
        places = [p for p in json.loads(data.read(), object_pairs_hook=place) if p is not None]
    tree = cKDTree([(latitude, longitude) for latitude, longitude, _ in places])
    return tree, [name for _, _, name in places]


def _per_point(latitude: np.ndarray, longitude: np.ndarray, lookup: Any) -> np.ndarray:
    out = np.full(len(latitude), None, dtype=object)
    valid = _valid(latitude, longitude)
    if not valid.any():
        return out
    points, inverse = np.unique(np.column_stack([latitude[valid], longitude[valid]]), axis=0,
                                return_inverse=True)
    found = np.asarray(lookup([(float(a), float(b)) for a, b in points]), dtype=object)
    out[valid] = found[inverse.ravel()]
    return out


class LocationEncoder(TransformerMixin, BaseEstimator):
    """Latitude/longitude columns -> the location categories (:data:`CELL`, :data:`TOWN`) as
    text, rare values folded into :data:`OTHER` and missing points :data:`MISSING`.
    ``kept_``: per output, the values seen on at least ``min_count`` training rows, with their
    training counts (a dict, which skops saves as plain data)."""

    def __init__(self, latitude: str = "latitude", longitude: str = "longitude",
                 h3_resolution: int | None = 6, town: bool = True,
                 town_min_population: int = 10_000, min_count: int = 200):
        self.latitude = latitude
        self.longitude = longitude
        self.h3_resolution = h3_resolution
        self.town = town
        self.town_min_population = town_min_population
        self.min_count = min_count

    @property
    def names(self) -> list[str]:
        """The output categories, in order (known before fitting)."""
        return ([CELL] if self.h3_resolution is not None else []) + ([TOWN] if self.town else [])

    @property
    def columns(self) -> list[str]:
        return [self.latitude, self.longitude]

    def places(self, latitude: np.ndarray, longitude: np.ndarray) -> dict[str, np.ndarray]:
        """Each output's unfolded value per point (None: missing)."""
        out = {}
        if self.h3_resolution is not None:
            out[CELL] = h3_cells(latitude, longitude, self.h3_resolution)
        if self.town:
            out[TOWN] = nearest_towns(latitude, longitude, self.town_min_population)
        return out

    def fit(self, X: pd.DataFrame, y: Any = None) -> LocationEncoder:
        if self.h3_resolution is not None and not 0 <= self.h3_resolution <= 15:
            raise ValueError(f"h3_resolution must be 0 to 15, got {self.h3_resolution}")
        counts = {name: pd.Series(values).value_counts()
                  for name, values in self.places(*coordinates(X, *self.columns)).items()}
        self.kept_ = {name: {str(k): int(v) for k, v in c[c >= self.min_count].items()}
                      for name, c in counts.items()}
        return self

    def _fold(self, name: str, values: Sequence[Any]) -> list[str]:
        kept = self.kept_[name]
        return [MISSING if v is None else v if v in kept else OTHER for v in values]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """One text column per output, in :attr:`names` order."""
        places = self.places(*coordinates(X, *self.columns))
        folded = {}
        for name, values in places.items():  # each distinct place folded once, not each row
            codes, distinct = pd.factorize(values)  # a missing point: code -1, the last entry
            folded[name] = np.asarray(self._fold(name, [*distinct, None]), dtype=object)[codes]
        return pd.DataFrame(folded, index=X.index, columns=self.names)

    def record(self, latitude: Any, longitude: Any) -> list[str]:
        """One point's categories (the service's path: no DataFrame per request)."""
        places = _point_places(_number(latitude), _number(longitude), self.h3_resolution,
                               self.town, self.town_min_population)
        return [self._fold(name, [place])[0]
                for name, place in zip(self.names, places, strict=True)]


@functools.lru_cache(maxsize=65_536)
def _point_places(latitude: float, longitude: float, h3_resolution: int | None, town: bool,
                  town_min_population: int) -> tuple[str | None, ...]:
    """One point's unfolded places, cached: a lone lookup costs ~0.3 ms (mostly the town's
    tree query), and published points are snapped to a limited set of map points."""
    encoder = LocationEncoder(h3_resolution=h3_resolution, town=town,
                              town_min_population=town_min_population)
    places = encoder.places(np.array([latitude]), np.array([longitude]))
    return tuple(places[name][0] for name in encoder.names)


def cell_summary(latitude: np.ndarray, longitude: np.ndarray, outcome: np.ndarray,
                 resolution: int) -> pd.DataFrame:
    """Searches and success rate per H3 cell (rows with coordinates; ``outcome`` 1/0, NaN
    when not known yet: counted as a search, left out of the rate): ``cell``, ``searches``,
    ``outcomes``, ``success_rate``, largest first."""
    cells = h3_cells(latitude, longitude, resolution)
    frame = pd.DataFrame({"cell": cells, "outcome": np.asarray(outcome, dtype=float)})
    frame = frame[frame["cell"].notna()]
    grouped = frame.groupby("cell")["outcome"]
    out = pd.DataFrame({"searches": grouped.size(), "outcomes": grouped.count(),
                        "success_rate": grouped.mean()}).reset_index()
    return out.sort_values(["searches", "cell"], ascending=[False, True], ignore_index=True)
