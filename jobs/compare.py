"""Two model versions on the same labeled images: the promotion gate of ``anpr train
--promote`` and ``anpr models compare``.

Both read every image with each version's own classifier, region and settings (a version
alone determines how a plate is read) and compare exact plate matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anpr_core.datasets import LabeledImage
from anpr_core.evaluation import ImageResult, summarize
from jobs import models
from jobs.evaluate import evaluate_one, labeled_items
from jobs.models import Recognizer
from jobs.runtime import blas_threads

EXAMPLES = 3


def read_all(items: Sequence[LabeledImage], recognizer: Recognizer) -> list[ImageResult]:
    """The result of reading each labeled image with ``recognizer``, in order."""
    with blas_threads(1):
        return [evaluate_one(item, recognizer) for item in items]


def items_of(data_dirs: Sequence[str | Path]) -> list[LabeledImage]:
    """Every labeled image of the folders, in folder order."""
    return [item for _, _, items in labeled_items(data_dirs) for item in items]


@dataclass(frozen=True)
class Promotion:
    """The decision of the promotion gate and the figures it rests on."""

    new_version: str
    champion_before: str | None  # None: the region had no champion
    champion_after: str
    new_plate_accuracy: float
    champion_plate_accuracy: float | None
    n_images: int
    eval_data: str  # "holdout" or the evaluation folders

    @property
    def decision(self) -> str:
        """``first`` (no champion before), ``promoted`` or ``refused``."""
        if self.champion_before is None:
            return "first"
        return "promoted" if self.champion_after == self.new_version else "refused"

    def message(self) -> str:
        """One line saying what happened and why."""
        new = f"version {self.new_version} {self.new_plate_accuracy:.4f}"
        if self.champion_before is None:
            return f"promotion: {new} on {self.n_images} images; no champion before: champion"
        old = f"champion {self.champion_before} {self.champion_plate_accuracy:.4f}"
        verdict = {
            "promoted": f"version {self.new_version} is now champion",
            "refused": f"champion stays {self.champion_before} (new plate accuracy is lower)",
        }[self.decision]
        return f"promotion: plate accuracy {new} vs {old} on {self.n_images} images: {verdict}"

    def metrics(self) -> dict[str, float]:
        """The figures, as MLflow metrics."""
        found = {
            "promotion_new_plate_accuracy": self.new_plate_accuracy,
            "promotion_n_images": float(self.n_images),
        }
        if self.champion_plate_accuracy is not None:
            found["promotion_champion_plate_accuracy"] = self.champion_plate_accuracy
        return found

    def tags(self) -> dict[str, str]:
        """The decision, as MLflow tags."""
        return {
            "promotion.decision": self.decision,
            "promotion.champion_before": self.champion_before or "",
            "promotion.champion_after": self.champion_after,
            "promotion.eval_data": self.eval_data,
            "promotion.message": self.message(),
        }


def promotion_gate(
    new: Recognizer, items: Sequence[LabeledImage], eval_data: str, tracking: str | None = None
) -> Promotion:
    """The Promotion of registered version ``new``, after moving the region's ``champion``
    alias to it when its plate accuracy on ``items`` is at least the champion's.

    The champion is resolved once, before reading, and read with its own region and settings.
    ``tracking`` is the store's URI (default: the one MLflow uses now).
    """
    import mlflow
    from mlflow import MlflowClient

    tracking = tracking or mlflow.get_tracking_uri()
    if not items:
        raise ValueError("no images to compare the new version with the champion on: pass --eval")
    client = MlflowClient()
    name, version = new.model_name, new.model_version
    before = models.champion_version(client, name)
    if before == version:  # it took the alias at registration: the region had no champion
        before = None
    new_accuracy = summarize(read_all(items, new))["plate_accuracy"]
    champion_accuracy = None
    after = version
    if before is None:
        client.set_registered_model_alias(name, models.CHAMPION, version)
    else:
        champion = models.load_recognizer(f"models:/{name}/{before}", tracking=tracking)
        champion_accuracy = summarize(read_all(items, champion))["plate_accuracy"]
        if new_accuracy >= champion_accuracy:
            client.set_registered_model_alias(name, models.CHAMPION, version)
        else:
            after = before
    return Promotion(version, before, after, new_accuracy, champion_accuracy, len(items), eval_data)


@dataclass(frozen=True)
class Difference:
    """One image that exactly one of two versions reads right."""

    name: str
    label: str
    read_a: str | None
    read_b: str | None


@dataclass(frozen=True)
class Comparison:
    """Two versions read on the same images."""

    uri_a: str  # concrete models:/NAME/VERSION
    uri_b: str
    summary_a: dict
    summary_b: dict
    only_a: list[Difference]  # A reads right, B wrong
    only_b: list[Difference]


def differences(
    a: Sequence[ImageResult], b: Sequence[ImageResult]
) -> tuple[list[Difference], list[Difference]]:
    """(images only A reads right, images only B reads right), from results on the same
    images in the same order."""
    only_a, only_b = [], []
    for ra, rb in zip(a, b, strict=True):
        right_a, right_b = ra.read == ra.label, rb.read == rb.label
        if right_a != right_b:
            (only_a if right_a else only_b).append(Difference(ra.name, ra.label, ra.read, rb.read))
    return only_a, only_b


def compare_versions(
    ref_a: str, ref_b: str, data_dirs: Sequence[str | Path], region: str
) -> Comparison:
    """Versions (numbers or aliases) ``ref_a`` and ``ref_b`` of the region's model read on
    every labeled image of ``data_dirs``; each alias is resolved once, before reading."""
    items = items_of(data_dirs)
    a = models.load_recognizer(models.version_uri(ref_a, region), region)
    b = models.load_recognizer(models.version_uri(ref_b, region), region)
    results_a, results_b = read_all(items, a), read_all(items, b)
    only_a, only_b = differences(results_a, results_b)
    return Comparison(a.uri, b.uri, summarize(results_a), summarize(results_b), only_a, only_b)


def format_comparison(comparison: Comparison, examples: int = EXAMPLES) -> str:
    """The comparison as lines a person reads: each version's figures, then how many plates
    each reads right that the other gets wrong, with a few examples."""

    def read(text: str | None) -> str:
        return text if text is not None else "(no read)"

    a, b = comparison.summary_a, comparison.summary_b
    lines = [f"{'version':<36} {'images':>6} {'plate':>7} {'char':>7}"]
    for uri, s in ((comparison.uri_a, a), (comparison.uri_b, b)):
        lines.append(
            f"{uri:<36} {s['n_images']:>6} {s['plate_accuracy']:>7.3f} {s['char_accuracy']:>7.3f}"
        )
    names = (version_label(comparison.uri_a), version_label(comparison.uri_b))
    for mine, only in ((names[0], comparison.only_a), (names[1], comparison.only_b)):
        lines.append(f"{len(only)} plates read right by {mine} only")
        for d in only[:examples]:
            lines.append(
                f"  {d.name}: label {d.label}; {names[0]} read {read(d.read_a)}, "
                f"{names[1]} read {read(d.read_b)}"
            )
    return "\n".join(lines)


def version_label(uri: str) -> str:
    """``v3`` for ``models:/NAME/3``; the URI itself for anything else."""
    version = uri.rpartition("/")[2]
    return f"v{version}" if version.isdigit() else uri
