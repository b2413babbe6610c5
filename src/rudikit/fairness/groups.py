"""The one group-label convention of the fairness code, and integer group codes.

Every table, report, stored audit, mitigation threshold and served decision names groups the
same way:

* a group is the attribute value as text: attribute ``"race"``, group ``"African-American"``;
* a missing value is its own group, labelled :data:`rudikit.data.MISSING_GROUP`
  ``"(missing)"`` (the label every layer gives it; imported here too), never dropped;
* an intersection joins the attribute names and the values with :data:`INTERSECTION_SEP`
  ``":"`` (Wilkinson's interaction notation): attribute ``"race:sex"``, group
  ``"African-American:Male"`` (:func:`attribute_name`, :func:`join_group`);
* one group of one attribute, where both must be named in one string (a requirement's unit, a
  list-simulation parameter, ``rudi audit --reference``), is ``attribute=group``
  (:func:`group_key`, :data:`GROUP_KEY_SEP`): ``"race:sex=African-American:Male"``.

Codes: :func:`encode_groups` numbers the observed groups of one attribute or intersection from
one factorisation per column (categories in category order, other values sorted, missing last),
so a million rows over hundreds of cells are coded in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from rudikit.data import MISSING_GROUP
from rudikit.fairness.inputs import available_columns, check_length

INTERSECTION_SEP = ":"
GROUP_KEY_SEP = "="

AttributeSpec = str | Sequence[str]

# Largest number of possible intersection cells handled with a dense lookup table; beyond this
# the observed cells are found by sorting (np.unique), which is slower but needs no big table.
DENSE_CELLS_LIMIT = 1 << 22


def group_key(attribute: str, group: str) -> str:
    """One group of one attribute as ``attribute=group``."""
    return f"{attribute}{GROUP_KEY_SEP}{group}"


def join_group(values: Iterable[object]) -> str:
    """The label of one (intersectional) group from its attribute values, in attribute order;
    ``None`` (a missing value) is :data:`MISSING_GROUP`."""
    return INTERSECTION_SEP.join(MISSING_GROUP if v is None else str(v) for v in values)


def _factorize(series: pd.Series, name: str, missing_label: str) -> tuple[np.ndarray, list[str]]:
    """Codes 0..k-1 (missing values get code k-1 labelled ``missing_label``) and labels."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        labels = [str(c) for c in series.cat.categories]
    else:
        # hash once, then sort the few distinct values (pandas' sort=True hashes twice for
        # Arrow-backed strings)
        codes, uniques = pd.factorize(series, sort=False)
        values = np.asarray(uniques, dtype=object)
        try:
            order = np.argsort(values, kind="stable")
        except TypeError:  # mixed types that do not sort; keep order of appearance
            order = np.arange(len(values))
        rank = np.empty(len(values) + 1, dtype=np.int32)
        rank[order] = np.arange(len(values), dtype=np.int32)
        rank[-1] = -1  # missing values (code -1) stay missing
        codes = rank[codes]
        labels = [str(values[i]) for i in order]
    if len(set(labels)) != len(labels):
        raise ValueError(f"attribute {name!r} has distinct values that print the same "
                         "(e.g. 1 and '1'); convert the column to one type first")
    codes = codes.astype(np.int32)
    missing = codes < 0
    if missing.any():
        if missing_label in labels:
            raise ValueError(
                f"attribute {name!r} has a value equal to the missing-value label "
                f"{missing_label!r}; choose another missing_label"
            )
        codes[missing] = len(labels)
        labels.append(missing_label)
    return codes, labels


def compact(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber codes to the observed ones: (new codes, old code of each new code)."""
    if size <= DENSE_CELLS_LIMIT:
        present = np.bincount(codes, minlength=size) > 0
        observed = np.flatnonzero(present)
        if len(observed) == size:
            return codes, observed
        remap = np.cumsum(present) - 1
        return remap[codes], observed
    observed, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1), observed


def raw_codes(
    frame: pd.DataFrame,
    columns: Sequence[str],
    missing_label: str,
    cache: dict[str, tuple[np.ndarray, list[str]]] | None,
) -> tuple[np.ndarray, list[list[str]]]:
    """Code per row over *all* combinations of the columns' values (mixed radix, not compacted),
    and each column's value labels."""
    columns = list(columns)
    if not columns:
        raise ValueError("an attribute must name at least one column")
    for col in columns:
        if col not in frame.columns:
            raise ValueError(
                f"unknown attribute column {col!r}; available columns: "
                f"{available_columns(frame.columns)}"
            )
    parts = []
    for col in columns:
        if cache is not None and col in cache:
            parts.append(cache[col])
            continue
        part = _factorize(frame[col], col, missing_label)
        if cache is not None:
            cache[col] = part
        parts.append(part)
    size = float(np.prod([len(labels) for _, labels in parts], dtype=np.float64))
    if size > np.iinfo(np.int64).max // 8:
        raise ValueError(f"too many possible intersection cells for {columns}")
    combined = parts[0][0].astype(np.int32 if size < 2**31 else np.int64)
    for codes, labels in parts[1:]:
        combined *= len(labels)
        combined += codes
    return combined, [labels for _, labels in parts]


def labels_for(observed: np.ndarray, part_labels: list[list[str]]) -> list[str]:
    if len(part_labels) == 1:
        return [part_labels[0][i] for i in observed]
    idx = np.unravel_index(observed, [len(labels) for labels in part_labels])
    return [
        INTERSECTION_SEP.join(part_labels[j][idx[j][i]] for j in range(len(part_labels)))
        for i in range(len(observed))
    ]


def encode_groups(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    missing_label: str = MISSING_GROUP,
    _cache: dict[str, tuple[np.ndarray, list[str]]] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Integer group code per row for one attribute or the intersection of several.

    Returns ``(codes, labels)`` with ``codes`` in ``0..len(labels)-1``; only observed groups
    get a code. Groups are ordered by the attribute values (category order for categoricals,
    sorted otherwise; missing last), lexicographically for intersections. Intersection labels
    join the values with ``":"``.
    """
    combined, part_labels = raw_codes(frame, columns, missing_label, _cache)
    size = int(np.prod([len(labels) for labels in part_labels]))
    codes, observed = compact(combined, max(size, 1))
    return codes, labels_for(observed, part_labels)


def attribute_columns(spec: AttributeSpec) -> list[str]:
    """The columns of an attribute spec: one name, or the names of an intersection."""
    return [spec] if isinstance(spec, str) or not isinstance(spec, Sequence) else list(spec)


def attribute_name(spec: AttributeSpec) -> str:
    """Display name of an attribute spec: ``"race"`` or ``"race:sex"`` for an intersection."""
    return INTERSECTION_SEP.join(str(c) for c in attribute_columns(spec))


def as_frame(sensitive_features: object, n: int) -> pd.DataFrame:
    """Attribute columns as a frame: a DataFrame, a Series, a mapping of columns or a 1-d array
    (one column ``"group"``), checked to have ``n`` rows."""
    if isinstance(sensitive_features, pd.DataFrame):
        frame = sensitive_features
    elif isinstance(sensitive_features, pd.Series):
        frame = sensitive_features.to_frame(
            name=sensitive_features.name if sensitive_features.name is not None else "group"
        )
    elif isinstance(sensitive_features, Mapping):
        frame = pd.DataFrame(dict(sensitive_features))
    else:
        arr = np.asarray(sensitive_features, dtype=object)
        if arr.ndim != 1:
            raise ValueError(
                "sensitive_features must be a DataFrame, a Series, a mapping of columns or a 1-d "
                "array"
            )
        frame = pd.DataFrame({"group": arr})
    check_length("sensitive_features", len(frame), "y_true", n)
    return frame
