"""anpr_core.model: a version's learned parts read as scikit-learn would read them."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from anpr_core.model import positive_probability


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_a_scaled_logistic_regression_is_scored_as_predict_proba_to_the_bit(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 7)) * [1, 10, 100, 0.1, 1, 5, 50] + 3
    y = X[:, 0] + 0.1 * X[:, 1] + rng.normal(size=300) > 4
    model = Pipeline([("scale", StandardScaler()), ("logistic", LogisticRegression())]).fit(X, y)
    rows = (rng.normal(size=(9, 7)) * 20).astype(dtype)
    assert np.array_equal(positive_probability(model, rows), model.predict_proba(rows)[:, 1])


def test_any_other_model_is_scored_by_its_own_predict_proba():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(100, 3)), rng.random(100) > 0.5
    model = Pipeline([("scale", MinMaxScaler()), ("logistic", LogisticRegression())]).fit(X, y)
    assert np.array_equal(positive_probability(model, X[:5]), model.predict_proba(X[:5])[:, 1])
