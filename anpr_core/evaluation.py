"""Run the pipeline over labeled images and measure it (DESIGN.md, "Measures")."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from anpr_core.config import RegionConfig
from anpr_core.metrics import char_accuracy, detected
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
        name, label, best.text if best else None, best.confidence if best else 0.0, hit, elapsed
    )
    return outcome, result


def summarize(results: Iterable[ImageResult]) -> dict:
    """The evaluation figures: n_images, plate_accuracy, char_accuracy, detection_recall
    (None when no image was a scene) and ms_per_image."""
    results = list(results)
    n = len(results)
    scenes = [r for r in results if r.detected is not None]
    return {
        "n_images": n,
        "plate_accuracy": sum(r.read == r.label for r in results) / n if n else 0.0,
        "char_accuracy": sum(char_accuracy(r.read, r.label) for r in results) / n if n else 0.0,
        "detection_recall": sum(r.detected for r in scenes) / len(scenes) if scenes else None,
        "ms_per_image": sum(r.elapsed_ms for r in results) / n if n else 0.0,
    }
