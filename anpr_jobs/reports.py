"""What a person looks at after a training run: character confusions, per-character accuracy,
the worst misreads and how far confidence can be trusted (a reliability diagram and a
precision-coverage curve), computed from the held-out part and written as PNG and CSV files.

The figures are drawn with matplotlib's object API (``Figure``), never ``pyplot``, so no
global figure state or display backend is involved.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anpr_core.classify import REJECT
from anpr_core.datasets import LabeledImage
from anpr_core.errors import ImageError
from anpr_core.evaluation import ImageResult
from anpr_core.metrics import (
    at_threshold,
    citation_confidence,
    expected_calibration_error,
    reliability_bins,
)
from anpr_jobs.storage import crop_around, load_image

REJECT_LABEL = "rej"  # how the reject class ("not a character") is shown
GALLERY_SIZE = 12
GALLERY_COLUMNS = 4
CROP_MARGIN = 0.15  # of the labeled box, around a scene's plate in the gallery


@dataclass(frozen=True)
class CharAccuracy:
    """How often one true character was read as itself."""

    char: str
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


@dataclass(frozen=True)
class Misread:
    """A held-out image read wrongly (or not at all), with the plate as it looks."""

    name: str
    label: str
    read: str | None
    confidence: float
    crop: np.ndarray | None  # RGB, or None when the image could not be loaded


def confusion(true: Sequence[str], predicted: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(classes, counts): counts[i, j] is how often true class i was predicted as class j.

    The classes are every character seen on either side, sorted, with the reject class last.
    """
    from sklearn.metrics import confusion_matrix

    classes = sorted(set(true) | set(predicted), key=lambda c: (c == REJECT, c))
    if not classes:
        return [], np.zeros((0, 0), np.int64)
    return classes, confusion_matrix(list(true), list(predicted), labels=classes)


def best_confidences(results: Sequence[ImageResult]) -> tuple[list[float], list[bool]]:
    """(confidence of each image's best read, 0 with no read; whether it is right), the way
    ``evaluation.trust`` counts them."""
    return [r.confidence if r.read else 0.0 for r in results], [r.read == r.label for r in results]


def precision_coverage(results: Sequence[ImageResult]) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, precision) when only the k most confident reads are kept, k = 1..n: the
    curve a threshold on confidence moves along."""
    confidences, correct = best_confidences(results)
    order = np.argsort(-np.asarray(confidences, np.float64), kind="stable")
    right = np.cumsum(np.asarray(correct, np.float64)[order])
    kept = np.arange(1, len(order) + 1)
    return kept / max(len(order), 1), right / kept


def per_char_accuracy(true: Sequence[str], predicted: Sequence[str]) -> list[CharAccuracy]:
    """Accuracy per true character, sorted by character."""
    rows = []
    for char in sorted(set(true)):
        hits = [t == p for t, p in zip(true, predicted, strict=True) if t == char]
        rows.append(CharAccuracy(char, len(hits), sum(hits)))
    return rows


def char_metrics(rows: Sequence[CharAccuracy]) -> dict[str, float]:
    """``char_acc_<C>`` per character, as MLflow metrics."""
    return {f"char_acc_{row.char}": row.accuracy for row in rows}


def worst_misreads(
    pairs: Sequence[tuple[LabeledImage, ImageResult]], limit: int = GALLERY_SIZE
) -> list[Misread]:
    """The wrong reads, most confident first (a confident wrong read is the worst kind; no
    read at all comes last), at most ``limit``, each with its plate crop."""
    wrong = [(item, r) for item, r in pairs if r.read != r.label]
    wrong.sort(key=lambda pair: (pair[1].read is not None, pair[1].confidence), reverse=True)
    return [
        Misread(r.name, r.label, r.read, r.confidence, plate_crop(item))
        for item, r in wrong[:limit]
    ]


def plate_crop(item: LabeledImage) -> np.ndarray | None:
    """The labeled plate of ``item`` (RGB) with a margin, the whole image for a crop; None
    when the image cannot be read."""
    try:
        image = load_image(item.path)[:, :, ::-1]
    except ImageError:
        return None
    box = item.plates[0][0]
    return image if box is None else crop_around(image, box, CROP_MARGIN)


def shown(char: str) -> str:
    """A class as printed on a figure or in a table."""
    return REJECT_LABEL if char == REJECT else char


def write_per_char_csv(rows: Sequence[CharAccuracy], path: Path) -> Path:
    """``path``, after writing ``char,n,correct,accuracy`` per character."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["char", "n", "correct", "accuracy"])
        for row in rows:
            writer.writerow([row.char, row.n, row.correct, f"{row.accuracy:.4f}"])
    return path


def write_confusion_png(classes: Sequence[str], counts: np.ndarray, path: Path) -> Path:
    """``path``, after drawing the confusion matrix (rows: label, columns: read), each row
    shaded by its share so that rare characters show as clearly as common ones."""
    from matplotlib.figure import Figure

    n = len(classes)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.28 * n + 1.5)
    fig = Figure(figsize=(size, size), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if n == 0:
        ax.axis("off")
        ax.text(0.5, 0.5, "no held-out character segmented", ha="center", va="center")
        fig.savefig(path)
        return path
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = [shown(c) for c in classes]
    ax.set_xticks(range(n), labels, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("read as")
    ax.set_ylabel("label")
    ax.set_title(f"held-out characters ({int(counts.sum())})")
    for i, j in zip(*np.nonzero(counts), strict=True):
        color = "white" if share[i, j] > 0.5 else "black"
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=5, color=color)
    fig.savefig(path)
    return path


def write_gallery_png(misreads: Sequence[Misread], path: Path) -> Path:
    """``path``, after drawing each misread's crop titled ``label -> read (confidence)``; a
    single panel saying so when nothing was misread."""
    from matplotlib.figure import Figure

    columns = min(GALLERY_COLUMNS, max(1, len(misreads)))
    rows = max(1, -(-len(misreads) // columns))
    fig = Figure(figsize=(3.2 * columns, 1.6 * rows + 0.4), dpi=100, layout="constrained")
    fig.suptitle(f"worst misreads of the held-out images ({len(misreads)} shown)")
    for k in range(rows * columns):
        ax = fig.add_subplot(rows, columns, k + 1)
        ax.axis("off")
        if k >= len(misreads):
            if not misreads:
                ax.text(0.5, 0.5, "no misreads", ha="center", va="center")
            continue
        miss = misreads[k]
        if miss.crop is not None:
            ax.imshow(miss.crop)
        read = miss.read if miss.read is not None else "(no read)"
        ax.set_title(f"{miss.label} -> {read} ({miss.confidence:.2f})\n{miss.name}", fontsize=8)
    fig.savefig(path)
    return path


def write_reliability_png(results: Sequence[ImageResult], path: Path) -> Path:
    """``path``, after drawing the reliability diagram: per bin of confidence, the share of
    reads that are right against the bin's mean confidence (on the diagonal: calibrated),
    with how many reads each bin holds."""
    from matplotlib.figure import Figure

    confidences, correct = best_confidences(results)
    fig = Figure(figsize=(5.0, 5.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for low, high, n, mean, right in reliability_bins(confidences, correct):
        ax.bar(
            low,
            right,
            width=high - low,
            align="edge",
            color="tab:blue",
            alpha=0.6,
            edgecolor="tab:blue",
        )
        ax.plot(mean, right, "o", color="tab:red", markersize=4)
        ax.text(low + (high - low) / 2, min(right + 0.02, 0.97), str(n), ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the best read")
    ax.set_ylabel("share read exactly right")
    ece = expected_calibration_error(confidences, correct)
    ax.set_title(f"reliability of {len(results)} held-out images (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.savefig(path)
    return path


def write_precision_coverage_png(
    results: Sequence[ImageResult], path: Path, citation_threshold: float | None = None
) -> Path:
    """``path``, after drawing precision against coverage as the confidence threshold falls,
    with the point where the ticket rule's threshold puts it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    coverage, precision = precision_coverage(results)
    if len(coverage):
        ax.step(coverage, precision, where="post", color="tab:blue")
        threshold = citation_confidence(citation_threshold)
        chosen, share = at_threshold(*best_confidences(results), threshold)
        if chosen is not None:
            ax.plot(
                share,
                chosen,
                "o",
                color="tab:red",
                label=f"confidence >= {threshold:.3f}: precision {chosen:.3f}",
            )
            ax.legend(loc="lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no held-out image", ha="center", va="center")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coverage (share of images kept)")
    ax.set_ylabel("precision (share of kept reads right)")
    ax.set_title("precision and coverage of the most confident reads")
    fig.savefig(path)
    return path


def write_reports(
    true: Sequence[str],
    predicted: Sequence[str],
    pairs: Sequence[tuple[LabeledImage, ImageResult]],
    out_dir: Path,
    citation_threshold: float | None = None,
) -> dict[str, float]:
    """The ``char_acc_<C>`` metrics, after writing ``confusion_matrix.png``,
    ``per_char_accuracy.csv``, ``worst_misreads.png``, ``reliability_diagram.png`` and
    ``precision_coverage.png`` into ``out_dir``.

    ``true``/``predicted`` are the held-out characters (segmented where the segmentation
    agreed with the label) and the classifier's reading of them; ``pairs`` are the held-out
    images with their end-to-end results; ``citation_threshold`` the version's learned one.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    classes, counts = confusion(true, predicted)
    rows = per_char_accuracy(true, predicted)
    results = [r for _, r in pairs]
    write_confusion_png(classes, counts, out_dir / "confusion_matrix.png")
    write_per_char_csv(rows, out_dir / "per_char_accuracy.csv")
    write_gallery_png(worst_misreads(pairs), out_dir / "worst_misreads.png")
    write_reliability_png(results, out_dir / "reliability_diagram.png")
    write_precision_coverage_png(results, out_dir / "precision_coverage.png", citation_threshold)
    return char_metrics(rows)
