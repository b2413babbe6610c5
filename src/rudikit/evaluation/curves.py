"""Curves thinned for drawing: a ROC, precision-recall or top-k curve has a point per distinct
score (millions at scale), but a chart a few hundred pixels wide needs a few hundred.

:func:`simplify` keeps the points that carry the shape (the Ramer-Douglas-Peucker rule) and
drops the ones lying within ``tolerance`` of the line through their neighbours that are kept.
Coordinates are first scaled to their range, so the tolerance is a share of the chart's width
and height (2e-3: about a pixel on the reports' charts, some 350 pixels high and 1,000 wide).
The chords of a bulging curve all fall on one side of it, so the area under a thinned curve is
short of the full one's by up to about the tolerance times the curve's length: ROC curves,
whose area is the headline metric a reader checks against the chart, are thinned to 1e-3 (the
drawn area within about 5e-4 of the ROC AUC).
"""

from __future__ import annotations

import heapq

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

#: Most points drawn per curve.
MAX_POINTS = 1000
#: Largest distance of a dropped point from the drawn line, as a share of each axis' range.
TOLERANCE = 2e-3
ROC_TOLERANCE = 1e-3  # see the module docstring


def simplify(points: np.ndarray, tolerance: float = TOLERANCE,
             max_points: int = MAX_POINTS) -> np.ndarray:
    """Positions (sorted) of the rows of ``points`` (n x d, finite, in drawing order) to keep:
    the first and the last, then repeatedly the point farthest from the line drawn so far,
    until none is farther than ``tolerance`` or ``max_points`` are kept.

    Hand-written: the libraries that simplify lines (shapely, rdp) are not dependencies, and
    none of them stops at a point budget, which keeps a jagged curve bounded too. Splitting the
    worst segment first (a heap) means a budget cut keeps the largest deviations."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if n <= 2:
        return np.arange(n)
    if not np.isfinite(points).all():
        raise ValueError("curve points must be finite to be simplified")
    low, span = points.min(axis=0), np.ptp(points, axis=0)
    scaled = (points - low) / np.where(span > 0, span, 1.0)
    heap: list[tuple[float, int, int, int]] = []

    def push(first: int, last: int) -> None:
        if last - first < 2:
            return
        start, direction = scaled[first], scaled[last] - scaled[first]
        offset = scaled[first + 1:last] - start
        length = direction @ direction
        along = offset @ direction
        if length > 0:
            np.clip(along / length, 0.0, 1.0, out=along)
        else:
            along[:] = 0.0
        offset -= along[:, None] * direction
        squared = np.einsum("ij,ij->i", offset, offset)
        worst = int(squared.argmax())
        heapq.heappush(heap, (-float(squared[worst]), first, last, first + 1 + worst))

    keep = [0, n - 1]
    push(0, n - 1)
    while heap and len(keep) < max_points:
        squared, first, last, worst = heapq.heappop(heap)
        if -squared <= tolerance ** 2:
            break
        keep.append(worst)
        push(first, worst)
        push(worst, last)
    return np.sort(np.array(keep))


def thin(x: np.ndarray, y: np.ndarray, tolerance: float = TOLERANCE,
         max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The points of one curve to draw, as float32 (seven significant digits are more than a
    chart shows, in half the bytes)."""
    keep = simplify(np.column_stack([x, y]), tolerance, max_points)
    return np.asarray(x)[keep].astype(np.float32), np.asarray(y)[keep].astype(np.float32)


def thin_roc(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates of the ROC curve, thinned for drawing."""
    fpr, tpr, _ = roc_curve(y, score)
    return thin(fpr, tpr, ROC_TOLERANCE)


def thin_precision_recall(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision of the precision-recall curve, thinned for drawing."""
    precision, recall, _ = precision_recall_curve(y, score, drop_intermediate=True)
    return thin(recall, precision)
