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
