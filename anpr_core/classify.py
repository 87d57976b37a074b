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
from anpr_core.features import BlockBinaryPixelSum, char_vectors, row_width
from anpr_core.model import char_model_of
from anpr_core.records import CharImage

REJECT = "_"


def build_classifier(
    hidden_units: int = 256, alpha: float = 1e-3, max_iter: int = 300, seed: int = 0, **bbps
) -> Pipeline:
    """A fresh character classifier: BBPS(+HOG of the binary and the grey crop) ->
    standardize -> MLP with probabilities. It learns from ``char_vectors(..., grey=True)``.

    An MLP gives calibrated-enough probabilities natively and predicts in microseconds, where
    ``SVC(probability=True)`` is deprecated and slow to calibrate.
    """
    return Pipeline(
        [
            ("bbps", BlockBinaryPixelSum(**{"use_grey": True, **bbps})),
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


def takes_grey(model) -> bool:
    """Whether a fitted character model learned from rows with the grey crop: a version
    trained before grey features takes the binary rows alone, and reads as it did."""
    width = getattr(char_model_of(model), "n_features_in_", None)
    return width == row_width(grey=True)


def char_probabilities(model, chars: Sequence[CharImage]) -> np.ndarray:
    """Class probabilities (n_chars, n_classes) of each character, in ``model_classes`` order."""
    if not chars:
        return np.zeros((0, len(model_classes(model))), np.float32)
    try:
        rows = char_vectors(chars, grey=takes_grey(model))
        return np.asarray(model.predict_proba(rows), dtype=np.float32)
    except (AttributeError, ValueError) as exc:
        raise ModelError(f"the character model cannot score characters: {exc}") from exc
