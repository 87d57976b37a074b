"""The character classifier: a scikit-learn Pipeline from character rows to class probabilities.

Besides A-Z and 0-9 it has a ``REJECT`` class, "not a character" (logos, bolts, stickers, halves
of two characters), so the classifier itself judges which segmented pieces are characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from anpr_core.errors import ModelError
from anpr_core.features import BlockBinaryPixelSum, char_vectors
from anpr_core.records import CharImage

REJECT = "_"


def build_classifier(
    hidden_units: int = 256, alpha: float = 1e-3, max_iter: int = 300, seed: int = 0, **bbps
) -> Pipeline:
    """A fresh character classifier: BBPS(+HOG) -> standardize -> MLP with probabilities.

    An MLP gives calibrated-enough probabilities natively and predicts in microseconds, where
    ``SVC(probability=True)`` is deprecated and slow to calibrate.
    """
    return Pipeline(
        [
            ("bbps", BlockBinaryPixelSum(**bbps)),
            ("scale", StandardScaler()),
            (
                "mlp",
                MLPClassifier(
                    hidden_layer_sizes=(hidden_units,),
                    alpha=alpha,
                    max_iter=max_iter,
                    early_stopping=False,
                    random_state=seed,
                ),
            ),
        ]
    )


def model_classes(model) -> list[str]:
    """The class labels of a fitted character model, as strings."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ModelError("the character model is not fitted (it has no classes_)")
    return [str(c) for c in classes]


def char_probabilities(model, chars: Sequence[CharImage]) -> np.ndarray:
    """Class probabilities (n_chars, n_classes) of each character, in ``model_classes`` order."""
    if not chars:
        return np.zeros((0, len(model_classes(model))), np.float32)
    try:
        return np.asarray(model.predict_proba(char_vectors(chars)), dtype=np.float32)
    except (AttributeError, ValueError) as exc:
        raise ModelError(f"the character model cannot score characters: {exc}") from exc
