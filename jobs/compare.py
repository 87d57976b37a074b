"""Two model versions on the same labeled images: the promotion gate of ``anpr train
--promote`` and ``anpr models compare``.

Both read every image with each version's own classifier, region, settings and citation
threshold (a version alone determines how a plate is read and when it is cited) and compare
exact plate matches and the precision of the citations each would send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anpr_core.datasets import LabeledImage
from anpr_core.evaluation import ImageResult, summarize
from jobs import models
from jobs.cluster import blas_threads
from jobs.evaluate import evaluate_one, labeled_items
from jobs.models import Recognizer

EXAMPLES = 3


def read_all(items: Sequence[LabeledImage], recognizer: Recognizer) -> list[ImageResult]:
    """The result of reading each labeled image with ``recognizer``, in order."""
    with blas_threads(1):
        return [evaluate_one(item, recognizer) for item in items]


def items_of(data_dirs: Sequence[str | Path]) -> list[LabeledImage]:
    """Every labeled image of the folders, in folder order."""
    return [item for _, _, items in labeled_items(data_dirs) for item in items]


@dataclass(frozen=True)
class Standing:
    """What the gate weighs of one version on the evaluation images."""

    plate_accuracy: float
    citation_precision: float | None  # None: the ticket rule cites none of the images
    n_cited: int

    @classmethod
    def of(cls, summary: dict) -> Standing:
        """The standing in an ``evaluation.summarize`` result."""
        cited = round(summary["citation_coverage"] * summary["n_images"])
        return cls(summary["plate_accuracy"], summary["citation_precision"], cited)


def citations_worse(new: Standing, champion: Standing) -> bool:
    """Whether ``new`` cites less precisely than ``champion`` by more than one plate's worth
    (one wrong citation among the new version's): a version that reads more plates but sends
    more tickets to the wrong vehicle is not better. Citing nothing is never worse."""
    if new.citation_precision is None or champion.citation_precision is None:
        return False
    return new.citation_precision < champion.citation_precision - 1 / new.n_cited


@dataclass(frozen=True)
class Promotion:
    """The decision of the promotion gate and the figures it rests on."""

    new_version: str
    champion_before: str | None  # None: the region had no champion
    champion_after: str
    new: Standing
    champion: Standing | None
    n_images: int
    eval_data: str  # "holdout" or the evaluation folders

    @property
    def new_plate_accuracy(self) -> float:
        return self.new.plate_accuracy

    @property
    def champion_plate_accuracy(self) -> float | None:
        return self.champion.plate_accuracy if self.champion else None

    @property
    def decision(self) -> str:
        """``first`` (no champion before), ``promoted`` or ``refused``."""
        if self.champion_before is None:
            return "first"
        return "promoted" if self.champion_after == self.new_version else "refused"

    def message(self) -> str:
        """One line saying what happened and why."""
        new = f"version {self.new_version} {self.new.plate_accuracy:.4f}"
        if self.champion is None:
            return f"promotion: {new} on {self.n_images} images; no champion before: champion"
        old = f"champion {self.champion_before} {self.champion.plate_accuracy:.4f}"
        if self.decision == "promoted":
            verdict = f"version {self.new_version} is now champion"
        elif self.new.plate_accuracy < self.champion.plate_accuracy:
            verdict = f"champion stays {self.champion_before} (new plate accuracy is lower)"
        else:
            verdict = (
                f"champion stays {self.champion_before} (new citation precision "
                f"{self.new.citation_precision:.3f} of {self.new.n_cited} is lower than "
                f"{self.champion.citation_precision:.3f} by more than one plate)"
            )
        return f"promotion: plate accuracy {new} vs {old} on {self.n_images} images: {verdict}"

    def metrics(self) -> dict[str, float]:
        """The figures, as MLflow metrics."""
        found = {"promotion_n_images": float(self.n_images)}
        for who, standing in (("new", self.new), ("champion", self.champion)):
            if standing is None:
                continue
            found[f"promotion_{who}_plate_accuracy"] = standing.plate_accuracy
            found[f"promotion_{who}_n_cited"] = float(standing.n_cited)
            if standing.citation_precision is not None:
                found[f"promotion_{who}_citation_precision"] = standing.citation_precision
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


def promotes(new: Standing, champion: Standing) -> bool:
    """Whether ``new`` takes the champion's place: at least its plate accuracy, and citations
    not worse by more than one plate (``citations_worse``)."""
    return new.plate_accuracy >= champion.plate_accuracy and not citations_worse(new, champion)


def promotion_gate(
    new: Recognizer, items: Sequence[LabeledImage], eval_data: str, tracking: str | None = None
) -> Promotion:
    """The Promotion of registered version ``new``, after moving the region's ``champion``
    alias to it when it ``promotes`` over the champion on ``items``.

    The champion is resolved once, before reading, and read with its own region, settings
    and citation threshold. ``tracking`` is the store's URI (default: the one MLflow uses).
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
    new_standing = standing(items, new)
    champion_standing = None
    after = version
    if before is None:
        client.set_registered_model_alias(name, models.CHAMPION, version)
    else:
        champion = models.load_recognizer(f"models:/{name}/{before}", tracking=tracking)
        champion_standing = standing(items, champion)
        if promotes(new_standing, champion_standing):
            client.set_registered_model_alias(name, models.CHAMPION, version)
        else:
            after = before
    return Promotion(version, before, after, new_standing, champion_standing, len(items), eval_data)


def standing(items: Sequence[LabeledImage], recognizer: Recognizer) -> Standing:
    """How ``recognizer`` reads ``items``, with the ticket rule at its own threshold."""
    return Standing.of(summarize(read_all(items, recognizer), recognizer.citation_threshold))


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
    summary_a = summarize(results_a, a.citation_threshold)
    summary_b = summarize(results_b, b.citation_threshold)
    return Comparison(a.uri, b.uri, summary_a, summary_b, only_a, only_b)


def format_comparison(comparison: Comparison, examples: int = EXAMPLES) -> str:
    """The comparison as lines a person reads: each version's figures, then how many plates
    each reads right that the other gets wrong, with a few examples."""

    def read(text: str | None) -> str:
        return text if text is not None else "(no read)"

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    a, b = comparison.summary_a, comparison.summary_b
    lines = [
        f"{'version':<36} {'images':>6} {'plate':>7} {'char':>7} {'ece':>7} "
        f"{'cite_prec':>9} {'cite_cov':>8}"
    ]
    for uri, s in ((comparison.uri_a, a), (comparison.uri_b, b)):
        lines.append(
            f"{uri:<36} {s['n_images']:>6} {s['plate_accuracy']:>7.3f} {s['char_accuracy']:>7.3f}"
            f" {s['ece']:>7.3f} {figure(s['citation_precision']):>9} {s['citation_coverage']:>8.3f}"
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
