"""Population drift: how far the production inputs (and scores) moved from the training data.

A :class:`ReferenceProfile` is fitted on the training rows: for every categorical/boolean
feature its categories, for every numeric feature (and the score) its training deciles as bucket
edges. Production data is then only *counted* into those buckets, chunk by chunk, so a window of
millions of predictions never has to sit in memory at once. :func:`compare` turns reference and
production counts into per-bucket shares, the population stability index (PSI), a chi-square test
of homogeneity and the missing-value rates.

Written here rather than taken from a drift library because the counting has to run on Arrow
chunks streamed from the store, and the buckets must stay fixed by the training data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from rudikit.data import MISSING_GROUP

OTHER = "(other)"
_EPS = 1e-4  # share floor in PSI so an empty bucket gives a large, finite value


def psi(reference_share: np.ndarray, production_share: np.ndarray) -> float:
    """Population stability index: sum over buckets of (p - r) * ln(p / r)."""
    r = np.clip(np.asarray(reference_share, dtype=float), _EPS, None)
    p = np.clip(np.asarray(production_share, dtype=float), _EPS, None)
    return float(np.sum((p - r) * np.log(p / r)))


def chi2_p_value(reference_counts: np.ndarray, production_counts: np.ndarray) -> float:
    """p-value of a chi-square test that both samples come from one distribution over the
    buckets (empty buckets in both are dropped)."""
    table = np.vstack([reference_counts, production_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return float("nan")
    return float(stats.chi2_contingency(table, correction=False).pvalue)


@dataclass
class FeatureBuckets:
    """The fixed buckets of one feature: categories (with "(other)" for unseen values) or
    numeric edges (``len(edges) + 1`` intervals); :data:`MISSING_GROUP` is always the last
    bucket."""

    name: str
    kind: str  # categorical, numeric
    categories: list[str] = field(default_factory=list)
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [*self.categories, OTHER, MISSING_GROUP]
        e = [f"{v:.4g}" for v in self.edges]
        if not e:
            return ["all", MISSING_GROUP]
        return [f"< {e[0]}", *(f"{a} to < {b}" for a, b in zip(e, e[1:], strict=False)),
                f">= {e[-1]}", MISSING_GROUP]

    def count(self, values: pa.Array | pa.ChunkedArray | np.ndarray | pd.Series) -> np.ndarray:
        """Counts per bucket (in :attr:`labels` order)."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        if self.kind == "categorical":
            arr = _as_arrow(values)
            n_missing = arr.null_count
            if len(arr) - n_missing:
                text = pc.cast(arr, pa.string()) if not pa.types.is_string(arr.type) else arr
                vc = pc.value_counts(text.drop_null())
                seen = dict(zip(vc.field("values").to_pylist(),
                                vc.field("counts").to_numpy(), strict=True))
                known = 0
                for i, cat in enumerate(self.categories):
                    counts[i] = seen.get(cat, 0)
                    known += counts[i]
                counts[-2] = len(arr) - n_missing - known
            counts[-1] = n_missing
            return counts
        numbers = _as_float(values)
        missing = np.isnan(numbers)
        counts[:-1] = np.bincount(np.searchsorted(self.edges, numbers[~missing], side="right"),
                                  minlength=len(self.edges) + 1)
        counts[-1] = int(missing.sum())
        return counts


def _as_arrow(values: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    return pa.array(_text_categories(pd.Series(values)), type=pa.string(), from_pandas=True)


def _as_float(values: Any) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_timestamp(values.type) or pa.types.is_string(values.type):
            values = values.to_pandas()
        else:
            return pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float,
                                                                         na_value=np.nan)


def _text_categories(values: pd.Series) -> pd.Series:
    """Category text as the service stores it: booleans as ``true``/``false``."""
    if values.dtype == bool or str(values.dtype) == "boolean":
        return values.astype("boolean").astype("string").str.lower()
    return values.astype("string")


class ReferenceProfile:
    """Buckets and reference counts per feature, fitted on training rows.

    ``fit(frame, categorical=[...], numeric=[...])`` then ``count(chunk)`` for each production
    chunk; :func:`compare` reads the two.
    """

    def __init__(self, n_bins: int = 10, max_categories: int = 50):
        self.n_bins = n_bins
        self.max_categories = max_categories

    def fit(self, frame: pd.DataFrame, *, categorical: list[str], numeric: list[str]
            ) -> ReferenceProfile:
        self.buckets_: dict[str, FeatureBuckets] = {}
        for name in categorical:
            text = _text_categories(frame[name])
            top = text.value_counts(dropna=True).index[:self.max_categories]
            self.buckets_[name] = FeatureBuckets(name, "categorical",
                                                 categories=[str(c) for c in top])
        for name in numeric:
            values = _as_float(frame[name])
            values = values[~np.isnan(values)]
            edges = (np.unique(np.quantile(values, np.linspace(0, 1, self.n_bins + 1)[1:-1]))
                     if len(values) else np.empty(0))
            self.buckets_[name] = FeatureBuckets(name, "numeric", edges=edges)
        self.reference_counts_ = {name: b.count(frame[name])
                                  for name, b in self.buckets_.items()}
        return self

    def to_json(self) -> dict[str, Any]:
        """The fitted buckets and reference counts as JSON (stored once per deployment)."""
        return {"n_bins": self.n_bins, "max_categories": self.max_categories, "features": [
            {"name": b.name, "kind": b.kind, "categories": b.categories,
             "edges": [float(e) for e in b.edges],
             "counts": [int(c) for c in self.reference_counts_[b.name]]}
            for b in self.buckets_.values()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        profile = cls(int(data["n_bins"]), int(data["max_categories"]))
        profile.buckets_ = {f["name"]: FeatureBuckets(f["name"], f["kind"],
                                                      categories=list(f["categories"]),
                                                      edges=np.asarray(f["edges"], dtype=float))
                            for f in data["features"]}
        profile.reference_counts_ = {f["name"]: np.asarray(f["counts"], dtype=np.int64)
                                     for f in data["features"]}
        return profile

    def count(self, chunk: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Production counts per feature for one chunk (a missing column counts as missing)."""
        out = {}
        for name, b in self.buckets_.items():
            if name in chunk:
                out[name] = b.count(chunk[name])
            else:
                n = len(next(iter(chunk.values()))) if len(chunk) else 0
                out[name] = np.zeros(len(b.labels), dtype=np.int64)
                out[name][-1] = n
        return out


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    chi2_p: float
    reference_missing: float
    production_missing: float
    buckets: pd.DataFrame  # bucket, reference_share, production_share, reference_n, production_n


def compare(profile: ReferenceProfile, production_counts: Mapping[str, np.ndarray]
            ) -> list[FeatureDrift]:
    """Shares, PSI, chi-square p-value and missing rates per feature."""
    out = []
    for name, b in profile.buckets_.items():
        ref = profile.reference_counts_[name].astype(float)
        prod = np.asarray(production_counts[name], dtype=float)
        ref_share = ref / ref.sum() if ref.sum() else ref
        prod_share = prod / prod.sum() if prod.sum() else prod
        table = pd.DataFrame({"bucket": b.labels, "reference_share": ref_share,
                              "production_share": prod_share, "reference_n": ref.astype(int),
                              "production_n": prod.astype(int)})
        out.append(FeatureDrift(name, b.kind, psi(ref_share, prod_share) if prod.sum() else
                                float("nan"), chi2_p_value(ref, prod),
                                float(ref_share[-1]) if ref.sum() else float("nan"),
                                float(prod_share[-1]) if prod.sum() else float("nan"), table))
    return out
