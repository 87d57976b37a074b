"""Reading labeled folders with a model version and measuring the result (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from anpr_core import datasets
from anpr_core.datasets import LabeledImage
from anpr_core.errors import ImageError
from anpr_core.evaluation import ImageResult, evaluate_image, summarize
from jobs.cluster import blas_threads
from jobs.models import Recognizer
from jobs.storage import load_gray

SPLITS = ("all", "test", "train")


@dataclass(frozen=True)
class FolderReport:
    """The figures of one labeled folder."""

    path: Path
    kind: str  # "scenes" or "crops"
    summary: dict
    results: list[ImageResult]


def select(items: list[LabeledImage], split: str) -> list[LabeledImage]:
    """The labeled images of ``split``: all, or the train/test part by ``datasets.split_of``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    if split == "all":
        return items
    return [item for item in items if datasets.split_of(item.name) == split]


def labeled_items(data_dirs: Sequence[str | Path], split: str = "all"):
    """(folder, kind, labeled images of ``split``) per folder, read before any work starts."""
    found = []
    for data_dir in data_dirs:
        kind = datasets.dataset_kind(data_dir)
        found.append((Path(data_dir), kind, select(datasets.read_labeled(data_dir), split)))
    return found


def evaluate_folders(
    data_dirs: Sequence[str | Path],
    recognizer: Recognizer,
    split: str = "all",
    progress: Callable[[int, int], None] | None = None,
) -> list[FolderReport]:
    """Per-folder figures of ``recognizer`` on the labeled images of ``split``.

    ``progress(done, total)`` is called after each image.
    """
    folders = labeled_items(data_dirs, split)
    total = sum(len(items) for _, _, items in folders)
    done = 0
    reports = []
    with blas_threads(1):
        for path, kind, items in folders:
            results = []
            for item in items:
                results.append(evaluate_one(item, recognizer))
                done += 1
                if progress:
                    progress(done, total)
            summary = summarize(results, recognizer.citation_threshold)
            reports.append(FolderReport(path, kind, summary, results))
    return reports


def evaluate_one(item: LabeledImage, recognizer: Recognizer) -> ImageResult:
    """The result of reading one labeled image (its first plate) with ``recognizer``; an
    unreadable image counts as not read (and, for a scene, not detected)."""
    box, text = item.plates[0]
    try:
        gray = load_gray(item.path)
    except ImageError:
        return ImageResult(item.name, text, None, 0.0, False if box else None, 0.0)
    return evaluate_image(
        item.name, gray, box, text, recognizer.model, recognizer.region, recognizer.settings
    )


def overall(reports: Sequence[FolderReport], recognizer: Recognizer) -> dict:
    """The figures over every folder together (the keys of ``evaluation.summarize``)."""
    results = [r for report in reports for r in report.results]
    return summarize(results, recognizer.citation_threshold)
