"""The promotion gate of ``anpr train --promote``: a new version takes the region's
``champion`` alias only when it reads at least as many plates right on the evaluation images
and its citations are not less precise by more than one plate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from anpr_core.datasets import LabeledImage
from anpr_core.evaluation import summarize
from anpr_jobs.models.recognizer import Recognizer, load_recognizer
from anpr_jobs.models.registry import CHAMPION, champion_version


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
    before = champion_version(client, name)
    if before == version:  # it took the alias at registration: the region had no champion
        before = None
    new_standing = standing(items, new)
    champion_standing = None
    after = version
    if before is None:
        client.set_registered_model_alias(name, CHAMPION, version)
    else:
        champion = load_recognizer(f"models:/{name}/{before}", tracking=tracking)
        champion_standing = standing(items, champion)
        if promotes(new_standing, champion_standing):
            client.set_registered_model_alias(name, CHAMPION, version)
        else:
            after = before
    return Promotion(version, before, after, new_standing, champion_standing, len(items), eval_data)


def standing(items: Sequence[LabeledImage], recognizer: Recognizer) -> Standing:
    """How ``recognizer`` reads ``items``, with the ticket rule at its own threshold."""
    return Standing.of(summarize(recognizer.read_labeled(items), recognizer.citation_threshold))
