"""Accuracy measures as defined in DESIGN.md."""

from __future__ import annotations

from collections.abc import Sequence

from anpr_core.records import Box


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def char_accuracy(read: str | None, label: str) -> float:
    """1 - edit distance / label length, floored at 0; no read scores 0."""
    if not label:
        return 0.0
    return max(0.0, 1.0 - edit_distance(read or "", label) / len(label))


def plate_accuracy(reads: Sequence[str | None], labels: Sequence[str]) -> float:
    """Fraction of exact matches; an image with no read counts as wrong."""
    if not labels:
        return 0.0
    return sum(r == t for r, t in zip(reads, labels, strict=True)) / len(labels)


def mean_char_accuracy(reads: Sequence[str | None], labels: Sequence[str]) -> float:
    """Character accuracy averaged over images."""
    if not labels:
        return 0.0
    return sum(char_accuracy(r, t) for r, t in zip(reads, labels, strict=True)) / len(labels)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def detected(label_box: Box, candidate_boxes: Sequence[Box], top: int = 5, min_iou=0.5) -> bool:
    """Whether one of the first ``top`` candidates overlaps the labeled box with IoU >= min_iou."""
    return any(iou(label_box, box) >= min_iou for box in candidate_boxes[:top])


# --- Trust: how far a read's confidence can be taken at its word ---------------------------

TRUST_THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99)
CITATION_CONFIDENCE = 0.8  # the ticket rule's threshold for a version without a calibrator


def citation_confidence(learned: float | None) -> float:
    """The confidence a read needs for a citation: the threshold its version learned with its
    calibrator, else CITATION_CONFIDENCE."""
    return CITATION_CONFIDENCE if learned is None else float(learned)


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[tuple[float, float, int, float, float]]:
    """``(low, high, reads, mean confidence, share right)`` per non-empty equal-width bin of
    confidence, [0, 0.1) ... [0.9, 1.0] (a confidence of exactly 1 falls in the last)."""
    totals = [[0, 0.0, 0] for _ in range(bins)]  # count, confidence sum, right
    for confidence, right in zip(confidences, correct, strict=True):
        slot = totals[min(bins - 1, max(0, int(confidence * bins)))]
        slot[0] += 1
        slot[1] += confidence
        slot[2] += bool(right)
    return [
        (i / bins, (i + 1) / bins, n, total / n, hits / n)
        for i, (n, total, hits) in enumerate(totals)
        if n
    ]


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """ECE over ``bins`` equal-width bins of confidence: the share-weighted mean gap between
    the mean confidence of a bin and the share of its reads that are right (0: calibrated)."""
    n = len(confidences)
    found = reliability_bins(confidences, correct, bins)
    return sum(count * abs(mean - right) for _, _, count, mean, right in found) / n if n else 0.0


def calibrated_ece(
    confidences: Sequence[float], bins: int = 10, draws: int = 400, seed: int = 0
) -> float:
    """The ECE a perfectly calibrated confidence would show on these reads, on average: each
    read right with probability its confidence, ``draws`` times. On a few dozen images it is
    far from 0 (about 0.1 on 55), so a measured ECE near it is as calibrated as the images can
    show, and only an ECE well above it is a miscalibration."""
    import numpy as np

    p = np.asarray(confidences, np.float64)
    if not len(p):
        return 0.0
    slot = np.clip((p * bins).astype(int), 0, bins - 1)
    mean = np.bincount(slot, weights=p, minlength=bins)
    right = np.random.default_rng(seed).random((draws, len(p))) < p
    hits = np.stack([np.bincount(slot, weights=row, minlength=bins) for row in right])
    return float(np.abs(mean - hits).sum(axis=1).mean() / len(p))


def at_threshold(
    confidences: Sequence[float], correct: Sequence[bool], threshold: float
) -> tuple[float | None, float]:
    """(precision, coverage) of the reads with confidence >= ``threshold``: the share of them
    that are right (None when there is none) and their share of all images. Compared in
    float32, as confidences are stored."""
    import numpy as np

    chosen = [
        right
        for confidence, right in zip(confidences, correct, strict=True)
        if np.float32(confidence) >= np.float32(threshold)
    ]
    n = len(confidences)
    precision = sum(chosen) / len(chosen) if chosen else None
    return precision, (len(chosen) / n if n else 0.0)
