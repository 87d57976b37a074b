"""A learned piece model: how likely a segmented piece is not a character, from its place in
the row.

The character classifier sees each piece alone, scaled to a fixed size, so a wheelchair
symbol, a state emblem or a stacked "PC" beside the plate number can look like a 6 or a 9 to
it. What gives such a piece away is the row around it: its width, height, ink and stroke
against the other pieces', and how far it stands from its neighbours. A logistic regression
learns that from the training plates: the pieces that fill a label's characters are
characters, and the pieces forced alignment drops (``samples.plate_samples``) are not.

Its odds are learned with balanced class weights, so they are a likelihood ratio of the
piece's context, and they multiply the classifier's odds of "not a character" (the two look
at different things: the piece's shape, and its place). The fitted model is a scikit-learn
Pipeline, one part of a version's ``model.PlateModel``; a version without one reads as the
classifier alone says.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from anpr_core.model import part_of, positive_probability
from anpr_core.records import CharImage

# Each piece against its row's median: log width and height ratios, top and bottom offsets
# (in row heights), log ink-fill and stroke-width ratios, log distances to the neighbours'
# centres (in the row's median pitch; 1 where there is no neighbour), whether it is first or
# last, and the size of each of the first eight (a piece can stand out either way).
SIGNED = (
    "width",
    "height",
    "top",
    "bottom",
    "fill",
    "stroke",
    "pitch_before",
    "pitch_after",
)
PIECE_FEATURES = (*SIGNED, "first", "last", *(f"abs_{name}" for name in SIGNED))
MIN_PITCH = 0.05  # of the median pitch: overlapping pieces' distance, kept finite in log


def stroke_width(image: np.ndarray) -> float:
    """Mean distance from an ink pixel to the nearest background pixel of a binary piece."""
    padded = cv2.copyMakeBorder(image, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    if not cv2.countNonZero(padded):
        return 0.0
    return cv2.mean(cv2.distanceTransform(padded, cv2.DIST_L2, 3), mask=padded)[0]


def _median(values: np.ndarray) -> float:
    """``np.median`` of a few values, to the bit, without numpy's cost per call."""
    return float(median(values.tolist()))


def piece_features(chars: Sequence[CharImage]) -> np.ndarray:
    """One row of ``PIECE_FEATURES`` per piece of a row of pieces, left to right."""
    if not chars:
        return np.zeros((0, len(PIECE_FEATURES)))
    x, top, width, height = np.array([c.box for c in chars], np.float64).T
    bottom = top + height
    fill = np.array([cv2.countNonZero(c.image) / c.image.size for c in chars]) + 1e-3
    stroke = np.array([stroke_width(c.image) for c in chars]) + 1e-3
    centre = x + width / 2
    row_height = _median(height)
    pitch = max(_median(np.diff(centre)) if len(chars) > 1 else 1.0, 1.0)
    spacing = np.maximum(np.diff(centre) / pitch, MIN_PITCH)
    before = np.log(np.concatenate([[1.0], spacing]))
    after = np.log(np.concatenate([spacing, [1.0]]))
    signed = np.column_stack(
        [
            np.log(width / _median(width)),
            np.log(height / row_height),
            (top - _median(top)) / row_height,
            (bottom - _median(bottom)) / row_height,
            np.log(fill / _median(fill)),
            np.log(stroke / _median(stroke)),
            before,
            after,
        ]
    )
    ends = np.zeros((len(chars), 2))
    ends[0, 0] = ends[-1, 1] = 1.0
    return np.hstack([signed, ends, np.abs(signed)])


def fit_piece_model(X: np.ndarray, y: np.ndarray, seed: int = 0) -> Pipeline | None:
    """A piece model fitted on ``piece_features`` rows ``X`` with ``y`` 1 for a piece that is
    not a character; None without both kinds of piece."""
    if len(set(np.asarray(y).tolist())) < 2:
        return None
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "logistic",
                LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
            ),
        ]
    )
    return model.fit(X, y)


def piece_model(model) -> Pipeline | None:
    """The piece model of a version's model, or None when it has none."""
    return part_of(model, "piece_model")


def with_context(probs: np.ndarray, reject: int, odds: np.ndarray) -> np.ndarray:
    """Class probabilities of pieces (rows of ``probs``) with the odds of column ``reject``
    ("not a character") multiplied by ``odds``, each piece's context likelihood ratio; the
    characters keep their ratios to each other."""
    p_reject = np.clip(probs[:, reject], 1e-6, 1 - 1e-6)
    combined = p_reject / (1 - p_reject) * odds
    new_reject = combined / (1 + combined)
    adjusted = probs * ((1 - new_reject) / (1 - p_reject))[:, None]
    adjusted[:, reject] = new_reject
    return adjusted


def context_odds(model: Pipeline, rows: list[Sequence[CharImage]]) -> list[np.ndarray]:
    """Each row's pieces' likelihood ratios of "not a character" under the piece ``model``,
    for rows of pieces scored in one call (the model's cost is mostly per call)."""
    features = [piece_features(r) for r in rows]
    X = np.vstack(features) if features else np.zeros((0, len(PIECE_FEATURES)))
    q = np.clip(positive_probability(model, X), 1e-4, 1 - 1e-4)
    bounds = np.cumsum([0] + [len(f) for f in features])
    return [q[a:b] / (1 - q[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
