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
        char_model = char_model_of(model)
        if is_plain_mlp(char_model):
            return mlp_probabilities(char_model, rows)
        return np.asarray(model.predict_proba(rows), dtype=np.float32)
    except (AttributeError, ValueError) as exc:
        raise ModelError(f"the character model cannot score characters: {exc}") from exc


def is_plain_mlp(char_model) -> bool:
    """Whether ``char_model`` is ``build_classifier``'s Pipeline (BBPS -> standardize -> ReLU
    MLP with softmax output), which ``mlp_probabilities`` computes directly."""
    steps = [step for _, step in getattr(char_model, "steps", [])]
    return (
        len(steps) == 3
        and isinstance(steps[0], BlockBinaryPixelSum)
        and isinstance(steps[1], StandardScaler)
        and steps[1].with_mean
        and steps[1].with_std
        and isinstance(steps[2], MLPClassifier)
        and steps[2].activation == "relu"
        and getattr(steps[2], "out_activation_", None) == "softmax"
    )


def mlp_probabilities(char_model: Pipeline, rows: np.ndarray) -> np.ndarray:
    """``char_model.predict_proba(rows)`` as float32, with the operations scikit-learn does, in
    its order, but none of its checks: they cost more than the sums on a plate's pieces."""
    bbps, scale, mlp = (step for _, step in char_model.steps)
    features = bbps.transform(rows)  # a new float32 array, standardized in place
    features -= scale.mean_.astype(features.dtype)
    features /= scale.scale_.astype(features.dtype)
    return mlp_output(mlp, features)


def mlp_output(mlp: MLPClassifier, features: np.ndarray) -> np.ndarray:
    """``mlp.predict_proba(features)`` as float32, for a ReLU MLP with softmax output."""
    activation = features
    last = len(mlp.coefs_) - 1
    for i, (weights, bias) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        activation = activation @ weights
        activation += bias
        if i < last:
            np.maximum(activation, 0, out=activation)
    exp = np.exp(activation - activation.max(axis=1)[:, None])
    return np.asarray(exp / exp.sum(axis=1)[:, None], dtype=np.float32)
