"""The model registry: a region's registered model, its versions and the ``champion`` alias.

A version of ``anpr-char-classifier-<region>`` is the whole recognizer for a region: the fitted
model (a scikit-learn Pipeline) plus, in the MLmodel ``metadata``, the region configuration,
the pipeline settings and the pipeline version it was trained with. A version alone therefore
determines how a plate is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anpr_core.config import RegionConfig, load_region
from anpr_core.errors import ModelError
from anpr_core.pipeline import PIPELINE_VERSION, Settings
from anpr_jobs.models.store import mlflow_store, open_store

MODEL_PREFIX = "anpr-char-classifier-"
CHAMPION = "champion"
DEFAULT_REGION = "us"
# Types skops may be told to trust when saving: our own transformers and scikit-learn's
# internals (e.g. the MLP's AdamOptimizer). Anything else in a model is refused, not trusted.
TRUSTED_PREFIXES = ("anpr_core.", "sklearn.", "numpy.", "scipy.")


def model_name(region: str) -> str:
    """The registered model name of a region: ``anpr-char-classifier-<region>``."""
    return f"{MODEL_PREFIX}{region}"


def default_model_uri(region: str) -> str:
    """The URI a job loads when none is given: the region's champion."""
    return f"models:/{model_name(region)}@{CHAMPION}"


def trusted_types(model) -> list[str]:
    """The types skops must be told to trust to save ``model``; ModelError for foreign ones.

    MLflow 3.17 saves scikit-learn models with skops, which refuses types it does not know
    (here ``BlockBinaryPixelSum`` and the MLP's ``AdamOptimizer``). Tried: the default fails at
    ``log_model``; cloudpickle works but loads by executing arbitrary code. Listing the types
    keeps the safe format; MLflow stores the list in the MLmodel file and loads with it.
    """
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in found if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ModelError(f"refusing to save a model with unknown types: {', '.join(foreign)}")
    return found


def model_requirements() -> list[str]:
    """The packages a logged model needs, pinned to the versions here.

    Stated rather than inferred: MLflow's inference imports the model in a subprocess (about
    6 s per training run here). ``anpr_core`` itself is not on an index; a model is loaded
    where this project is installed.
    """
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "scikit-learn", "numpy", "skops", "opencv-python-headless"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def model_metadata(region: RegionConfig, settings: Settings) -> dict:
    """What travels with the classifier in the MLmodel file."""
    return {
        "region": region.to_dict(),
        "settings": settings.to_dict(),
        "pipeline_version": PIPELINE_VERSION,
    }


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version just logged and registered."""

    name: str
    version: str
    uri: str  # models:/NAME/VERSION
    model_uri: str  # the logged model itself (models:/m-...)
    champion: bool  # whether it holds the champion alias


def log_recognizer(
    model, region: RegionConfig, settings: Settings, input_example: np.ndarray
) -> RegisteredVersion:
    """Log ``model`` in the active run and register it as a new version of the region's model.

    The region's first version (more exactly: a version registered while the region has no
    champion) becomes ``champion``; later ones take it only through promotion.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = np.asarray(input_example, np.float32)
    name = model_name(region.name)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(example, model.predict(example)),
        input_example=example,
        registered_model_name=name,
        metadata=model_metadata(region, settings),
        skops_trusted_types=trusted_types(model),
        pip_requirements=model_requirements(),
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, version, "pipeline_version", PIPELINE_VERSION)
    champion = champion_version(client, name) is None
    if champion:
        client.set_registered_model_alias(name, CHAMPION, version)
    return RegisteredVersion(name, version, f"models:/{name}/{version}", info.model_uri, champion)


def champion_version(client, name: str) -> str | None:
    """The version holding ``champion`` in registered model ``name``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def resolve_model_uri(uri: str, region: str) -> tuple[str, str | None, str | None]:
    """A concrete URI for ``uri`` (an alias resolved to its version, once), with the model's
    registered name and version when it has them; ModelError when there is no such model."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        return uri, None, None
    ref = uri[len("models:/") :].rstrip("/")
    name, sep_alias, alias = ref.partition("@")
    if not sep_alias:
        name, _, alias = ref.rpartition("/")
    if not name:  # models:/m-<id>: a logged model that is not a registry reference
        return uri, None, None
    client = MlflowClient()
    try:
        if sep_alias:
            found = client.get_model_version_by_alias(name, alias)
        else:
            found = client.get_model_version(name, alias)
    except MlflowException as exc:
        champion = sep_alias and alias == CHAMPION
        if not champion and name == model_name(region) and not registered(client, name):
            raise ModelError(
                f"no model versions for region {region} in {mlflow_store()}: "
                f"run `anpr train DATA --region {region}` first"
            ) from exc
        raise ModelError(missing_model_message(uri, name, alias, bool(sep_alias), region)) from exc
    return f"models:/{name}/{found.version}", name, str(found.version)


def registered(client, name: str) -> bool:
    """Whether the registry holds a model called ``name``."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def missing_model_message(uri: str, name: str, ref: str, is_alias: bool, region: str) -> str:
    """A one-line, actionable reason why ``uri`` does not name a model version."""
    import mlflow

    store = mlflow.get_tracking_uri()
    if is_alias and ref == CHAMPION and name == model_name(region):
        return (
            f"no champion for region {region} in {store}: "
            f"run `anpr train DATA --region {region}` first"
        )
    what = f"alias {ref!r}" if is_alias else f"version {ref}"
    return f"no model {uri}: {name} has no {what} in {store}"


def version_uri(ref: str, region: str) -> str:
    """The registry URI of a version number (``3``) or an alias (``champion``) of the
    region's model."""
    ref = ref.strip()
    sep = "/" if ref.isdigit() else "@"
    return f"models:/{model_name(region)}{sep}{ref}"


def set_champion(ref: str, region: str, tracking: str | None = None) -> tuple[str, str, str | None]:
    """(model name, version now champion, version that was champion or None), after moving the
    region's ``champion`` alias to version (or alias) ``ref`` by hand."""
    from mlflow import MlflowClient

    region = load_region(region).name
    open_store(region, tracking)
    uri = version_uri(ref, region)
    _, name, version = resolve_model_uri(uri, region)
    client = MlflowClient()
    before = champion_version(client, name)
    client.set_registered_model_alias(name, CHAMPION, version)
    return name, version, before


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as ``anpr models list`` shows it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    created_ms: int  # registration time, ms since the epoch
    run_id: str | None
    metrics: dict[str, float]  # the training run's metrics


KEY_METRICS = (
    "holdout_plate_accuracy",
    "holdout_char_accuracy",
    "holdout_detection_recall",
    "holdout_ece",
    "holdout_citation_precision",
    "citation_threshold",  # logged only for a version with a calibrator
)


def list_versions(region: str | None = None, tracking: str | None = None) -> list[VersionInfo]:
    """Every registered version of the region's model (of every region's when None), newest
    first within a model, models by name."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    region = load_region(region).name if region else None
    open_store(region or DEFAULT_REGION, tracking)
    client = MlflowClient()
    wanted = f"name = '{model_name(region)}'" if region else f"name LIKE '{MODEL_PREFIX}%'"
    rows = []
    for registered in sorted(
        client.search_registered_models(filter_string=wanted), key=lambda m: m.name
    ):
        aliases: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        found = client.search_model_versions(f"name = '{registered.name}'")
        for mv in sorted(found, key=lambda v: int(v.version), reverse=True):
            metrics: dict[str, float] = {}
            if mv.run_id:
                try:
                    metrics = dict(client.get_run(mv.run_id).data.metrics)
                except MlflowException:
                    metrics = {}  # the run was deleted; the version stays listed
            rows.append(
                VersionInfo(
                    registered.name,
                    str(mv.version),
                    tuple(sorted(aliases.get(str(mv.version), []))),
                    int(mv.creation_timestamp or 0),
                    mv.run_id,
                    metrics,
                )
            )
    return rows


def format_versions(rows: list[VersionInfo]) -> str:
    """A readable table of versions: name, version, aliases, plate/char accuracy, detection
    recall, calibration error and the ticket rule's precision on the training run's held-out
    part, the citation threshold (``-``: not calibrated, tickets at 0.8), creation time (UTC)."""
    from datetime import UTC, datetime

    def figure(info: VersionInfo, key: str) -> str:
        value = info.metrics.get(key)
        return "-" if value is None else f"{value:.3f}"

    header = (
        "model", "version", "aliases", "plate", "char", "detect", "ece", "cite_prec",
        "threshold", "created (UTC)",
    )  # fmt: skip
    lines = [header]
    for info in rows:
        created = datetime.fromtimestamp(info.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        lines.append(
            (
                info.name,
                info.version,
                ",".join(info.aliases) or "-",
                *(figure(info, key) for key in KEY_METRICS),
                created,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {1, 3, 4, 5, 6, 7, 8}
    return "\n".join(
        " ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )
