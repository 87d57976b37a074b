"""The learned parts of a model version as one scikit-learn estimator.

A version reads plates with four fitted parts: the character classifier (BBPS -> MLP), the
plate verifier (is a candidate a plate?), the confidence calibrator (is a read right?) and
the piece model (is a piece, by its place in the row, not a character?). ``PlateModel``
holds the four as its parameters, so ``clone``, ``get_params`` and MLflow see one model and
nothing rides on it unseen: a clone is the same parts unfitted, and ``fit`` on character
samples refits the classifier and drops the calibrator, which learned the mistakes of the
classifier it replaced. A PlateModel pickled before the piece model existed loads with none.

Versions registered before it are a bare character Pipeline carrying the verifier and the
calibrator as the attributes ``plate_verifier_`` and ``confidence_calibrator_``; ``part_of``
reads either, so such a version keeps reading exactly as it did.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

LEGACY_ATTRIBUTES = {
    "plate_verifier": "plate_verifier_",
    "confidence_calibrator": "confidence_calibrator_",
}


class PlateModel(ClassifierMixin, BaseEstimator):
    """A character classifier with its plate verifier, confidence calibrator and piece model
    (each may be None: a version trained without scenes has no verifier, one too small to
    cross-fit no calibrator, one from before pieces were modelled no piece model). It
    predicts characters from character images, as its classifier does."""

    def __init__(
        self, char_model=None, plate_verifier=None, confidence_calibrator=None, piece_model=None
    ):
        self.char_model = char_model
        self.plate_verifier = plate_verifier
        self.confidence_calibrator = confidence_calibrator
        self.piece_model = piece_model

    def __setstate__(self, state: dict) -> None:
        super().__setstate__({"piece_model": None, **state})

    def fit(self, X, y) -> PlateModel:
        """This model, its classifier refitted (a fresh clone) on character images ``X`` with
        labels ``y``; the verifier and the piece model stay, the calibrator is dropped."""
        self.char_model = clone(self.char_model).fit(X, y)
        self.confidence_calibrator = None
        return self

    @property
    def classes_(self) -> np.ndarray:
        return self.char_model.classes_

    def predict_proba(self, X) -> np.ndarray:
        return self.char_model.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.char_model.predict(X)


def part_of(model, name: str):
    """The part ``name`` (``plate_verifier``, ``confidence_calibrator`` or ``piece_model``) of
    a version's model, a PlateModel (or a wrapper that passes its attributes on) or a legacy
    Pipeline; None when it has none."""
    found = getattr(model, name, None)
    legacy = LEGACY_ATTRIBUTES.get(name)
    return found if found is not None or legacy is None else getattr(model, legacy, None)


def char_model_of(model):
    """The character classifier of a version's model (the model itself for a legacy one)."""
    found = getattr(model, "char_model", None)
    return model if found is None else found


def positive_probability(model, X) -> np.ndarray:
    """``model.predict_proba(X)[:, 1]``; for a fitted StandardScaler -> binary
    LogisticRegression Pipeline (the verifier, calibrator and piece model), computed with the
    operations scikit-learn does, in its order, but none of its checks: on the few rows of
    one image they cost more than the sums."""
    steps = [step for _, step in getattr(model, "steps", [])]
    plain = (
        len(steps) == 2
        and isinstance(steps[0], StandardScaler)
        and steps[0].with_mean
        and steps[0].with_std
        and isinstance(steps[1], LogisticRegression)
        and len(steps[1].classes_) == 2
    )
    if not plain:
        return np.asarray(model.predict_proba(X))[:, 1]
    scale, logistic = steps
    X = np.asarray(X)
    scaled = X.astype(X.dtype if X.dtype in (np.float32, np.float64) else np.float64, copy=True)
    scaled -= scale.mean_.astype(scaled.dtype)
    scaled /= scale.scale_.astype(scaled.dtype)
    scores = (scaled @ logistic.coef_.T + logistic.intercept_).reshape(-1)
    return expit(scores)
