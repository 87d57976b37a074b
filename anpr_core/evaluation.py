"""Run the pipeline over labeled images and measure it (DESIGN.md, "Measures")."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from anpr_core.config import RegionConfig
from anpr_core.metrics import (
    TRUST_THRESHOLDS,
    at_threshold,
    calibrated_ece,
    citation_confidence,
    detected,
    expected_calibration_error,
    mean_char_accuracy,
    plate_accuracy,
)
from anpr_core.pipeline import Recognition, Settings, StageTimer, analyze, whole_image_candidate
from anpr_core.records import Box


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one labeled image."""

    name: str
    label: str
    read: str | None
    confidence: float
    detected: bool | None  # None for crops, where there is nothing to detect
    elapsed_ms: float
    pattern: str | None = None  # the format pattern the best read matched


def evaluate_image(
    name: str,
    gray: np.ndarray,
    label_box: Box | None,
    label: str,
    model,
    region: RegionConfig,
    settings: Settings | None = None,
    timer: StageTimer | None = None,
) -> ImageResult:
    """Read one labeled image: a scene (``label_box`` given) or a plate crop (None)."""
    return evaluate_recognition(name, gray, label_box, label, model, region, settings, timer)[0]


def evaluate_recognition(
    name: str,
    gray: np.ndarray,
    label_box: Box | None,
    label: str,
    model,
    region: RegionConfig,
    settings: Settings | None = None,
    timer: StageTimer | None = None,
) -> tuple[ImageResult, Recognition]:
    """``evaluate_image``'s outcome and the ``Recognition`` it measured (the reads and
    candidates, for a closer look at where a plate was lost)."""
    start = time.perf_counter()
    candidates = None if label_box else [whole_image_candidate(gray.shape)]
    result = analyze(gray, model, region, settings, timer, candidates=candidates)
    elapsed = (time.perf_counter() - start) * 1000
    best = result.reads[0] if result.reads else None
    hit = detected(label_box, [c.box for c in result.candidates]) if label_box else None
    outcome = ImageResult(
        name,
        label,
        best.text if best else None,
        best.confidence if best else 0.0,
        hit,
        elapsed,
        best.pattern if best else None,
    )
    return outcome, result


def summarize(
    results: Iterable[ImageResult],
    citation_thresholds: float | Sequence[float | None] | None = None,
) -> dict:
    """The evaluation figures: n_images, plate_accuracy, char_accuracy, detection_recall
    (None when no image was a scene), ms_per_image, and how far confidence can be trusted
    (``trust``, with the ticket rule at ``citation_thresholds``)."""
    results = list(results)
    n = len(results)
    scenes = [r for r in results if r.detected is not None]
    reads, labels = [r.read for r in results], [r.label for r in results]
    return {
        "n_images": n,
        "plate_accuracy": plate_accuracy(reads, labels),
        "char_accuracy": mean_char_accuracy(reads, labels),
        "detection_recall": sum(r.detected for r in scenes) / len(scenes) if scenes else None,
        "ms_per_image": sum(r.elapsed_ms for r in results) / n if n else 0.0,
        **trust(results, citation_thresholds),
    }


def trust(
    results: list[ImageResult], citation_thresholds: float | Sequence[float | None] | None = None
) -> dict:
    """``ece``, and ``ece_if_calibrated`` (what a calibrated confidence would show on these
    images: the ECE's noise floor); ``precision_at`` and ``coverage_at`` keyed by each of
    TRUST_THRESHOLDS (as text, "0.8"); and ``citation_precision`` / ``citation_coverage`` of
    the ticket rule: a format pattern matched and confidence at least the learned citation
    threshold (one for all images, or one per image, as each was read by its own model; None:
    a version without a calibrator, ``metrics.citation_confidence``). The best read per
    image; an image with no read has confidence 0."""
    confidences = [r.confidence if r.read else 0.0 for r in results]
    correct = [r.read == r.label for r in results]
    precision_at, coverage_at = {}, {}
    for threshold in TRUST_THRESHOLDS:
        precision_at[f"{threshold:g}"], coverage_at[f"{threshold:g}"] = at_threshold(
            confidences, correct, threshold
        )
    if citation_thresholds is None or isinstance(citation_thresholds, int | float):
        citation_thresholds = [citation_thresholds] * len(results)
    cited = [
        ok
        for c, ok, r, t in zip(confidences, correct, results, citation_thresholds, strict=True)
        if r.pattern and np.float32(c) >= np.float32(citation_confidence(t))
    ]
    n_cited, right = len(cited), sum(cited)
    return {
        "ece": expected_calibration_error(confidences, correct),
        "ece_if_calibrated": calibrated_ece(confidences),
        "precision_at": precision_at,
        "coverage_at": coverage_at,
        "citation_precision": right / n_cited if n_cited else None,
        "citation_coverage": n_cited / len(results) if results else 0.0,
    }
