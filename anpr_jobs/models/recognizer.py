"""A model version loaded to read plates: the Recognizer, and reading labeled images with it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from anpr_core.config import RegionConfig, load_region
from anpr_core.datasets import LabeledImage
from anpr_core.errors import ImageError, ModelError, RegionError
from anpr_core.evaluation import ImageResult, evaluate_image
from anpr_core.pipeline import PIPELINE_VERSION, Settings
from anpr_jobs.models.registry import DEFAULT_REGION, default_model_uri, resolve_model_uri
from anpr_jobs.models.store import open_store
from anpr_jobs.storage import first_line, load_gray
from anpr_jobs.threads import blas_threads


@dataclass(frozen=True)
class Recognizer:
    """Everything needed to read plates the way one model version does."""

    model: object  # the fitted scikit-learn Pipeline
    region: RegionConfig
    settings: Settings
    model_name: str | None
    model_version: str | None
    uri: str  # concrete: models:/NAME/VERSION, runs:/..., or a local path
    pipeline_version: str = PIPELINE_VERSION

    @property
    def citation_threshold(self) -> float | None:
        """The confidence this version's reads need for a ticket (learned with its
        calibrator), or None for a version without one (the ticket rule's default applies)."""
        from anpr_core.calibrate import citation_threshold_of

        return citation_threshold_of(self.model)

    def read_labeled(
        self, items: Iterable[LabeledImage], done: Callable[[], None] | None = None
    ) -> list[ImageResult]:
        """The result of reading each labeled image (its first plate) as this version does,
        in order; ``done()`` after each image."""
        return read_labeled(items, self.model, self.region, self.settings, done)


def read_labeled(
    items: Iterable[LabeledImage], model, region, settings, done: Callable[[], None] | None = None
) -> list[ImageResult]:
    """The result of reading each labeled image (its first plate) with ``model``, in order,
    BLAS on one thread (set once for all of them); an unreadable image counts as not read
    (and, for a scene, not detected). ``done()`` is called after each image."""
    results = []
    with blas_threads(1):
        for item in items:
            box, text = item.plates[0]
            try:
                gray = load_gray(item.path)
            except ImageError:
                results.append(ImageResult(item.name, text, None, 0.0, False if box else None, 0.0))
            else:
                results.append(evaluate_image(item.name, gray, box, text, model, region, settings))
            if done:
                done()
    return results


def load_recognizer(
    uri_or_path: str | Path | None = None,
    region_name: str | None = None,
    tracking: str | None = None,
) -> Recognizer:
    """The Recognizer stored at an MLflow model URI or local model directory.

    ``models:/NAME@ALIAS`` is resolved to its version once, here, so a job keeps using that
    version even if the alias moves. Without a URI, the champion of ``region_name``. When
    ``region_name`` (a region name or .toml path) is given it must name the region the model
    was trained for. ``tracking`` overrides ``tracking_uri()``.
    """
    region = load_region(region_name).name if region_name else DEFAULT_REGION
    uri = str(uri_or_path) if uri_or_path else default_model_uri(region)
    local = Path(uri) if "://" not in uri and ":/" not in uri else None
    if local is not None and not (local / "MLmodel").is_file():
        raise ModelError(f"no MLflow model at {local}: expected a folder with an MLmodel file")
    if local is None:
        open_store(region, tracking)
    concrete, name, version = resolve_model_uri(uri, region)
    model, metadata = load_model_and_metadata(concrete)
    recognizer = recognizer_from(model, metadata, concrete, name, version)
    if region_name and recognizer.region.name != region:
        raise ModelError(
            f"{concrete} reads region {recognizer.region.name}, not {region}: "
            f"pass --region {recognizer.region.name} or another model"
        )
    return recognizer


def load_model_and_metadata(uri: str):
    """The scikit-learn model at ``uri`` and its MLmodel metadata, downloaded once."""
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        if Path(uri).is_dir():
            return mlflow.sklearn.load_model(uri), Model.load(uri).metadata or {}
        with tempfile.TemporaryDirectory(prefix="anpr-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            return mlflow.sklearn.load_model(local), Model.load(local).metadata or {}
    except MlflowException as exc:
        raise ModelError(f"cannot load model {uri}: {first_line(exc)}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model {uri}: {type(exc).__name__}: {exc}") from exc


def recognizer_from(model, metadata: dict, uri: str, name, version) -> Recognizer:
    """A Recognizer from a loaded model and its metadata; ModelError if metadata is missing."""
    if "region" not in metadata:
        raise ModelError(f"{uri} is not an anpr model: its MLmodel has no region metadata")
    try:
        region = RegionConfig.from_dict(metadata["region"])
    except RegionError as exc:
        raise ModelError(f"{uri}: bad region metadata: {exc}") from exc
    settings = Settings.from_dict(metadata.get("settings") or {})
    return Recognizer(
        model,
        region,
        settings,
        name,
        version,
        uri,
        str(metadata.get("pipeline_version", "")),
    )
