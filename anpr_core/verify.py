"""A learned plate verifier: how likely a localization candidate is a plate, from its pixels.

Morphology finds rows of character-like marks, and grilles, signs and text do that too. The
verifier looks at the candidate itself: the candidate is rectified to a small fixed window,
described by gradient-orientation histograms (``features.hog``) and a few shape figures, and
scored by a logistic regression trained on labeled scenes: candidates that overlap a labeled
plate are plates, the others are not. It ranks candidates, so that reading (the costly part)
starts with the likeliest and stops early.

The fitted verifier is a scikit-learn Pipeline (scaler, logistic regression), one part of a
version's ``model.PlateModel``, so it travels with the version.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from anpr_core.config import RegionConfig
from anpr_core.features import hog
from anpr_core.localize import localize_plates
from anpr_core.metrics import iou
from anpr_core.model import part_of, positive_probability
from anpr_core.records import Box, Candidate, Quad
from anpr_core.segment import rectify

WINDOW = (24, 56)  # rows, columns of the rectified candidate the verifier looks at
POSITIVE_IOU = 0.5  # a candidate overlapping a labeled plate this much is a plate
NEGATIVE_IOU = 0.2  # and one overlapping it less than this is not
TRAIN_CANDIDATES = 40  # candidates per training scene


def window(gray: np.ndarray, quad: Quad) -> np.ndarray:
    """The candidate ``quad`` rectified to ``WINDOW``, contrast-normalized, as float32."""
    return normalized(window_pixels(gray, quad)[None])[0]


def window_pixels(gray: np.ndarray, quad: Quad) -> np.ndarray:
    """The candidate ``quad`` rectified to ``WINDOW``, as uint8."""
    plate = rectify(gray, quad, WINDOW[0] * 2)
    return cv2.resize(plate, (WINDOW[1], WINDOW[0]), interpolation=cv2.INTER_AREA)


def normalized(windows: np.ndarray) -> np.ndarray:
    """A stack of windows, each shifted to mean 0 and divided by its spread (plus 8 grey
    levels, so that flat windows stay flat), as float32."""
    pixels = windows.astype(np.float32)
    mean = pixels.mean(axis=(1, 2), keepdims=True)
    spread = pixels.std(axis=(1, 2), keepdims=True)
    return (pixels - mean) / (spread + 8.0)


def candidate_features(gray: np.ndarray, candidates: Sequence[Candidate]) -> np.ndarray:
    """Feature rows of ``candidates`` in ``gray``: HOG of the window, its column and row
    profiles of gradient energy, and the candidate's morphology score and relative size."""
    if not candidates:
        return np.zeros((0, feature_count()), np.float32)
    windows = normalized(np.stack([window_pixels(gray, c.quad) for c in candidates]))
    gx = np.abs(np.diff(windows, axis=2, append=windows[:, :, -1:]))
    columns = gx.mean(axis=1).reshape(len(candidates), 8, -1).mean(axis=2)
    rows = gx.mean(axis=2).reshape(len(candidates), 6, -1).mean(axis=2)
    width = gray.shape[1]
    shape = np.array(
        [
            [c.score, np.log(max(c.box[2], 1) / width), c.box[2] / max(c.box[3], 1)]
            for c in candidates
        ],
        np.float32,
    )
    return np.hstack([hog(windows), columns, rows, shape]).astype(np.float32)


def feature_count() -> int:
    """Columns of ``candidate_features``."""
    cells = (WINDOW[0] // 4) * (WINDOW[1] // 4)
    return cells * 9 + 8 + 6 + 3


def box_candidate(box: Box, polarity: str = "dark_on_light") -> Candidate:
    """The labeled plate ``box`` as a candidate (for positive training samples)."""
    x, y, w, h = box
    quad = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
    return Candidate(box, tuple((float(a), float(b)) for a, b in quad), 1.0, polarity)


def training_rows(
    gray: np.ndarray, box: Box, region: RegionConfig, scheme: str = "pyramid"
) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels 1/0) from one labeled scene: its localization candidates (found
    by ``localize_plates`` with ``scheme``) that overlap the labeled plate (1) or hardly at all
    (0), and the labeled box itself (1)."""
    candidates = localize_plates(gray, region, TRAIN_CANDIDATES, scheme)
    overlaps = [iou(c.box, box) for c in candidates]
    chosen = [c for c, o in zip(candidates, overlaps, strict=True) if not NEGATIVE_IOU <= o < 0.5]
    labels = [1 if iou(c.box, box) >= POSITIVE_IOU else 0 for c in chosen]
    chosen.append(box_candidate(box))
    labels.append(1)
    return candidate_features(gray, chosen), np.array(labels)


def scene_rows(plate, region: RegionConfig, load_plate=None, scheme: str = "pyramid"):
    """``training_rows`` of a labeled scene (``load_plate(plate)`` gives its grey image, box
    and text), or None for a plate crop (no box)."""
    gray, box, _ = load_plate(plate) if load_plate else plate
    return None if box is None else training_rows(gray, box, region, scheme)


def fit_plate_verifier(
    plates: Iterable,
    region: RegionConfig,
    seed: int = 0,
    map_plates=None,
    load_plate=None,
    scheme: str = "pyramid",
) -> Pipeline | None:
    """A plate verifier fitted on the scenes among ``plates`` (triples of grey image, box or
    None, text, or references ``load_plate`` turns into them), on the candidates
    ``localize_plates`` proposes with ``scheme``; None when they hold no scene with both plate
    and non-plate candidates. ``map_plates(fn, items)`` returns
    ``[fn(item) for item in items]`` (default: in this process)."""
    rows_of = functools.partial(scene_rows, region=region, load_plate=load_plate, scheme=scheme)
    items = list(plates)
    found = map_plates(rows_of, items) if map_plates else [rows_of(p) for p in items]
    found = [r for r in found if r is not None]
    X = [rows for rows, _ in found]
    y = [labels for _, labels in found]
    if not X or len(set(np.concatenate(y))) < 2:
        return None
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "logistic",
                LogisticRegression(
                    C=0.01, class_weight="balanced", max_iter=1000, random_state=seed
                ),
            ),
        ]
    )
    return model.fit(np.vstack(X), np.concatenate(y))


def plate_verifier(model) -> Pipeline | None:
    """The plate verifier of a version's model, or None when it has none."""
    return part_of(model, "plate_verifier")


def verified(gray: np.ndarray, candidates: list[Candidate], verifier) -> list[Candidate]:
    """``candidates`` rescored by ``verifier`` (probability of a plate), best first."""
    if verifier is None or not candidates:
        return candidates
    probability = positive_probability(verifier, candidate_features(gray, candidates))
    rescored = [
        Candidate(c.box, c.quad, float(p), c.polarity)
        for c, p in zip(candidates, probability, strict=True)
    ]
    return sorted(rescored, key=lambda c: c.score, reverse=True)


def worth_reading(
    ranked: list[Candidate], min_probability: float
) -> tuple[list[Candidate], list[Candidate]]:
    """(worth reading, not): of verifier-ranked candidates, the best and every other one the
    verifier gives at least ``min_probability`` of being a plate, then the rest."""
    likely = 1 + sum(c.score >= min_probability for c in ranked[1:])
    return ranked[:likely], ranked[likely:]
