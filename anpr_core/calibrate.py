"""Calibrated read confidence: the probability that a plate read is exactly right.

The product of the characters' probabilities does not fall when a character is lost, gained
or cut from the wrong candidate: on unseen scenes, 11-24% of reads at 0.99 or more were wrong.
The calibrator is a logistic regression on the evidence of a read (``EVIDENCE``), fitted on
reads of plates the character model did not learn from (cross-fitting, in
``samples.fit_char_model``), so it has seen the mistakes the model makes on unseen plates. It
is one part of a version's ``model.PlateModel``, beside the plate verifier, so a model version
alone decides how confident a read is; a model without one keeps the product of its
characters' probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from anpr_core.config import RegionConfig
from anpr_core.model import part_of, positive_probability
from anpr_core.postprocess import Read

# What a read's correctness is learned from, in this order (one column each).
EVIDENCE = (
    "log_confidence",  # log of the product of the kept characters' probabilities
    "log_least_char",  # log of the least of them: one doubtful character spoils a plate
    "read_score",  # the ranking score per piece: rejects of the dropped pieces included
    "log_runner_up",  # log of the best alternative's confidence over the read's (<= 0)
    "pattern_matched",  # 1 when the text fits one of the region's format patterns
    "length_in_range",  # 1 when the number of characters is within the region's range
    "pieces_dropped",  # pieces of the cut read as "not a character"
    "candidate_score",  # the plate verifier's probability (or localization's score)
    "other_reads",  # reads of the same candidate cut another way or redrawn
    "other_reads_agreeing",  # ... of them, those that read the same text
    # Appended at pipeline 0.5.1; a calibrator fitted before reads the columns above only.
    "edge_cut",  # 1 when ink in the row's band reaches the plate's side (segment.row_ends)
    "end_ink",  # ink in the row's band a pitch beyond its first or last character
    # Appended at pipeline 0.5.2: training reads plate crops beside scenes, and a crop's read is
    # right at another rate for the same evidence (US crops more often than US scenes, crops
    # under EU rules less often than EU scenes); with the column, scenes get their own intercept.
    "whole_image",  # 1 when the image was a plate crop read whole, not localized
)
LOG_FLOOR = math.log(1e-6)
MIN_READS = 20  # reads below which no calibrator is fitted (the model keeps the product)


@dataclass(frozen=True)
class Agreement:
    """What the other reads of one candidate said: how many, and how many read the same."""

    reads: int = 0
    agreeing: int = 0


def read_evidence(
    read: Read,
    pieces: int,
    candidate_score: float,
    agreement: Agreement,
    region: RegionConfig,
    ends: tuple[float, float] = (0.0, 0.0),
    whole_image: bool = False,
) -> np.ndarray:
    """The EVIDENCE row of one read of a candidate cut into ``pieces`` pieces; ``ends``: the
    (edge_cut, end_ink) of its row (``segment.row_ends``); ``whole_image``: the image was a plate
    crop read whole."""
    runner_up = read.alternatives[1][1] if len(read.alternatives) > 1 else 0.0
    ratio = runner_up / read.confidence if read.confidence > 0 else 1.0
    lo, hi = region.char_count
    return np.array(
        [
            max(LOG_FLOOR, math.log(max(read.confidence, 1e-12))),
            max(LOG_FLOOR, math.log(max(min(read.char_confidences, default=0.0), 1e-12))),
            read.score,
            max(LOG_FLOOR, math.log(max(min(ratio, 1.0), 1e-12))),
            float(read.pattern is not None),
            float(lo <= len(read.text) <= hi),
            float(pieces - len(read.kept)),
            candidate_score,
            float(agreement.reads),
            float(agreement.agreeing),
            *ends,
            float(whole_image),
        ]
    )


class ConfidenceCalibrator(ClassifierMixin, BaseEstimator):
    """The probability that a read is right, from its EVIDENCE row: a logistic regression on
    standardized evidence. Fitting also learns ``citation_threshold_``, the least calibrated
    probability at which reads the ticket rule could cite (a format pattern matched) reach
    ``precision``, measured on probabilities the regression gave reads it did not learn from
    (``folds``-fold cross-validation): a figure no constant fitted by hand could carry to
    unseen photos."""

    def __init__(
        self, C: float = 1.0, precision: float = 0.99, strict: float = 0.995, folds: int = 5,
        seed: int = 0,
    ):  # fmt: skip
        self.C = C
        self.precision = precision
        self.strict = strict
        self.folds = folds
        self.seed = seed

    def _regression(self) -> Pipeline:
        logistic = LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed)
        return Pipeline([("scale", StandardScaler()), ("logistic", logistic)])

    def fit(self, X, y):
        """Itself, fitted on reads' EVIDENCE rows ``X`` and whether each was right ``y``."""
        X, y = np.asarray(X, np.float64), np.asarray(y, bool)
        self.regression_ = self._regression().fit(X, y)
        self.classes_ = self.regression_.classes_
        folds = min(self.folds, int(y.sum()), int((~y).sum()))
        if folds >= 2:
            splits = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
            held = cross_val_predict(self._regression(), X, y, cv=splits, method="predict_proba")
            held = held[:, 1]
        else:
            held = self.regression_.predict_proba(X)[:, 1]
        citable = X[:, EVIDENCE.index("pattern_matched")] > 0.5
        self.citation_threshold_ = citation_threshold(
            held[citable], y[citable], (self.strict, self.precision)
        )
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``[[P(wrong), P(right)]]`` per EVIDENCE row."""
        right = positive_probability(self.regression_, np.asarray(X, np.float64))
        return np.column_stack([1 - right, right])


def citation_threshold(
    probabilities: np.ndarray, correct: np.ndarray, targets: tuple[float, ...]
) -> float:
    """The least probability at which the reads at or above it reach the first of ``targets``
    (precisions, strictest first) that enough reads can show: a precision p is claimed only
    over at least 1 / (1 - p) reads (one mistake's worth). Without one, the loosest target
    itself: a calibrated probability of that precision."""
    order = np.argsort(-np.asarray(probabilities))
    p = np.asarray(probabilities)[order]
    right = np.cumsum(np.asarray(correct, bool)[order])
    count = np.arange(1, len(p) + 1)
    for target in targets:
        enough = (right / count >= target) & (count >= 1 / (1 - target))
        # the last index where the reads so far still reach the target, at a distinct value
        ok = [i for i in np.flatnonzero(enough) if i + 1 == len(p) or p[i + 1] < p[i]]
        if ok:
            return float(p[ok[-1]])
    return float(min(targets))


def fit_calibrator(evidence: np.ndarray, correct: np.ndarray, seed: int = 0):
    """A fitted ConfidenceCalibrator from reads' EVIDENCE rows and whether each was right;
    None with fewer than MIN_READS reads or only one outcome."""
    correct = np.asarray(correct, bool)
    if len(correct) < MIN_READS or correct.all() or not correct.any():
        return None
    return ConfidenceCalibrator(seed=seed).fit(evidence, correct)


def citation_threshold_of(model) -> float | None:
    """The citation threshold a model's calibrator learned, or None without a calibrator."""
    calibrator = confidence_calibrator(model)
    return None if calibrator is None else float(calibrator.citation_threshold_)


def confidence_calibrator(model) -> ConfidenceCalibrator | None:
    """The calibrator of a version's model, or None when it has none."""
    return part_of(model, "confidence_calibrator")


def calibrated(calibrator, evidence: np.ndarray) -> np.ndarray:
    """The probability that each read (a row of EVIDENCE) is right."""
    if len(evidence) == 0:
        return np.zeros(0)
    rows = np.asarray(evidence, np.float64).reshape(len(evidence), -1)
    return calibrator.predict_proba(rows[:, : evidence_width(calibrator)])[:, 1]


def evidence_width(calibrator) -> int:
    """How many EVIDENCE columns ``calibrator`` was fitted on: the first ones, so a version
    fitted before columns were appended reads as it did."""
    return int(calibrator.regression_.n_features_in_)
