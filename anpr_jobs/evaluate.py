"""Reading labeled folders with a model version and measuring the result (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from anpr_core import datasets
from anpr_core.datasets import LabeledFolder, LabeledImage
from anpr_core.evaluation import ImageResult, summarize
from anpr_jobs.models import Recognizer

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


def labeled_items(data_dirs: Sequence[str | Path], split: str = "all") -> list[LabeledFolder]:
    """The labeled folders, each with its images of ``split``, read before any work starts."""
    return [replace(f, items=select(f.items, split)) for f in datasets.read_folders(data_dirs)]


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
    total = sum(len(f.items) for f in folders)
    count = iter(range(1, total + 1))

    def one_done() -> None:
        if progress:
            progress(next(count), total)

    reports = []
    for folder in folders:
        results = recognizer.read_labeled(folder.items, one_done)
        summary = summarize(results, recognizer.citation_threshold)
        reports.append(FolderReport(folder.path, folder.kind, summary, results))
    return reports


def overall(reports: Sequence[FolderReport], recognizer: Recognizer) -> dict:
    """The figures over every folder together (the keys of ``evaluation.summarize``)."""
    results = [r for report in reports for r in report.results]
    return summarize(results, recognizer.citation_threshold)
