"""Logistic regression's prepared matrix, stacked a block of rows at a time
(:class:`rudikit.models.estimators.RowBlockColumnTransformer`), is scikit-learn's own."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

from rudikit.models import estimators
from rudikit.models.estimators import RowBlockColumnTransformer, numeric_preparation


def columns(rows: int, seed: int = 0) -> np.ndarray:
    """Four category codes (some missing) and three numbers (some missing, some zero)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, 12, rows).astype(float) for _ in range(4)]
                        + [rng.normal(size=rows) for _ in range(3)])
    X[rng.random(X.shape) < 0.05] = np.nan
    X[rng.random(rows) < 0.1, 5] = 0.0
    return X


@pytest.mark.parametrize("width", [3, 500])  # a dense and a sparse numeric block
def test_row_blocks_stack_the_same_matrix(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """Blocks of 7 rows (the last one short) give scikit-learn's matrix exactly: shape, row
    pointers, column indices and their dtype, values; on fitting and on new rows."""
    monkeypatch.setattr(estimators, "STACK_ROWS", 7)
    X = columns(300)
    if width > 3:  # a wide source's sparse numeric block
        X = np.hstack([X, np.where(np.random.default_rng(1).random((300, width)) < 0.01,
                                   1.0, 0.0)])

    def transformers() -> list:
        return [("onehot", OneHotEncoder(handle_unknown="ignore", min_frequency=5),
                 [0, 1, 2, 3]),
                ("numeric", numeric_preparation(X.shape[1] - 4), list(range(4, X.shape[1])))]

    ours, theirs = RowBlockColumnTransformer(transformers()), ColumnTransformer(transformers())
    new = columns(123, seed=2)
    if width > 3:
        new = np.hstack([new, np.zeros((123, width))])
    for a, b in [(ours.fit_transform(X), theirs.fit_transform(X)),
                 (ours.transform(new), theirs.transform(new))]:
        assert sparse.issparse(a) and type(a) is type(b) and a.shape == b.shape
        for name in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.indices.dtype == b.indices.dtype


def test_a_dense_output_is_left_to_scikit_learn() -> None:
    """Mostly nonzero one-hot input (one category) keeps scikit-learn's dense output."""
    X = np.column_stack([np.zeros(50), np.arange(50.0)])
    prepare = RowBlockColumnTransformer([("onehot", OneHotEncoder(), [0]),
                                         ("numeric", numeric_preparation(1), [1])])
    out = prepare.fit_transform(X)
    assert not sparse.issparse(out)
    np.testing.assert_array_equal(out, ColumnTransformer(
        [("onehot", OneHotEncoder(), [0]), ("numeric", numeric_preparation(1), [1])]
    ).fit_transform(X))
