"""Training a region's character classifier, tracked in MLflow and registered as a version.

The recipe: read the labeled folders, split each image by its name (``datasets.split_of``),
cut labeled characters out of the training part, fit the classifier, read the held-out part
end to end, log parameters, data summary and metrics, register the model.

Cutting and describing the characters (per plate, the costly part) runs in this process, or,
given a Dask scheduler or a number of local workers, on a cluster: the workers read the
images from their paths and return each plate's sample rows; the classifier is fitted and
everything is logged here, on the driver.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anpr_core import datasets
from anpr_core.calibrate import citation_threshold_of
from anpr_core.classify import REJECT
from anpr_core.config import RegionConfig, learned_from_labels, load_region
from anpr_core.datasets import LabeledImage
from anpr_core.evaluation import ImageResult, summarize
from anpr_core.model import char_model_of
from anpr_core.pipeline import PIPELINE_VERSION, Settings
from anpr_core.samples import RARE_BOOST, SYNTHETIC_PLATES, fit_char_model, training_set
from anpr_jobs import models, reports
from anpr_jobs.cluster import cluster_client
from anpr_jobs.storage import load_gray
from anpr_jobs.threads import blas_threads, single_threaded_process
from anpr_jobs.trainingdata import (
    code_version,
    data_fingerprint,
    labeled_plates,
    metric_key,
    read_folders,
)

DEFAULT_EXPERIMENT = "anpr-train"
MAX_PARAM_CHARS = 500
PLATES_PER_TASK = 16  # plates a cluster task handles: enough to outweigh a task's overhead
IN_PROCESS = "in-process"


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_uri: str  # models:/NAME/VERSION
    model_name: str
    version: str
    champion: bool
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    promotion: models.Promotion | None = None  # with ``promote``: the gate's decision


@dataclass(frozen=True)
class PlateRef:
    """One labeled plate of an image, by the image's path: what a worker reads."""

    path: str
    box: tuple | None
    text: str


def plate_refs(items: Iterable[LabeledImage]) -> list[PlateRef]:
    """A PlateRef per labeled plate, in the order ``labeled_plates`` yields them; absolute
    paths, as workers need not share this process's working directory."""
    return [
        PlateRef(str(item.path.resolve()), box, text) for item in items for box, text in item.plates
    ]


def load_plate(ref: PlateRef) -> tuple[np.ndarray, tuple | None, str]:
    """(grey image, box or None, text) of ``ref``, the image read from its path."""
    return load_gray(Path(ref.path)), ref.box, ref.text


def apply_chunk(chunk: list, fn) -> list:
    """``[fn(item) for item in chunk]``, with BLAS and OpenCV on one thread (on a worker)."""
    single_threaded_process()
    return [fn(item) for item in chunk]


@dataclass(frozen=True)
class ClusterMap:
    """A ``map_plates`` for ``samples.fit_char_model`` on a Dask cluster: ``fn`` is sent to
    every worker once, items go in chunks of ``chunk_size``, results come back in order."""

    client: object  # distributed.Client
    chunk_size: int = PLATES_PER_TASK

    def __call__(self, fn, items) -> list:
        items = list(items)
        if not items:
            return []
        on_workers = self.client.scatter(fn, broadcast=True, hash=False)
        chunks = [items[i : i + self.chunk_size] for i in range(0, len(items), self.chunk_size)]
        futures = self.client.map(apply_chunk, chunks, fn=on_workers, pure=False)
        try:
            return [result for chunk in self.client.gather(futures) for result in chunk]
        finally:
            self.client.cancel([*futures, on_workers])


def where_extracted(client, scheduler: str | None) -> str:
    """The ``feature_extraction`` parameter: ``in-process``, or the cluster and its size."""
    if client is None:
        return IN_PROCESS
    workers = len(client.scheduler_info().get("workers", {}))
    return f"{scheduler} ({workers} workers)" if scheduler else f"local cluster ({workers} workers)"


def fit_model(train_items, config, settings, augment, seed, client, **classifier_options):
    """(model, final TrainingSet) from ``train_items``: in this process without ``client``,
    else with the per-plate work on its cluster (the same samples either way)."""
    with blas_threads(1):  # 5-10x faster than threaded BLAS for this small MLP on a busy machine
        if client is None:
            plates = labeled_plates(train_items)
            return fit_char_model(plates, config, settings, augment, seed, **classifier_options)
        return fit_char_model(
            plate_refs(train_items),
            config,
            settings,
            augment,
            seed,
            map_plates=ClusterMap(client),
            load_plate=load_plate,
            **classifier_options,
        )


def holdout_metrics(
    folders, model, region, settings
) -> tuple[dict[str, float], list[tuple[LabeledImage, ImageResult]]]:
    """(``holdout_*`` metrics over all held-out images and ``<folder>_*`` per folder, each
    held-out image with its result)."""
    metrics: dict[str, float] = {}
    pairs: list[tuple[LabeledImage, ImageResult]] = []
    threshold = citation_threshold_of(model)
    for folder in folders:
        results = models.read_labeled(folder.test, model, region, settings)
        pairs += zip(folder.test, results, strict=True)
        metrics.update(prefixed(folder.key, summarize(results, threshold)) if results else {})
    metrics.update(prefixed("holdout", summarize((r for _, r in pairs), threshold)))
    if threshold is not None:
        metrics["citation_threshold"] = threshold
    return metrics, pairs


def prefixed(prefix: str, summary: dict) -> dict[str, float]:
    """The numeric figures of an evaluation summary, named ``<prefix>_<figure>``; a figure
    keyed by threshold becomes one per threshold (``holdout_precision_at_0.9``)."""
    found = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            found |= prefixed(f"{prefix}_{key}", value)
        elif value is not None:
            found[f"{prefix}_{key}"] = float(value)
    return found


def holdout_chars(folders, model, region: RegionConfig, settings) -> tuple[list[str], list[str]]:
    """(labels, classifier reads) of the held-out plates' characters, where segmentation
    agreed with the label: how well characters are read, apart from finding and cutting
    them."""
    held_out = training_set(
        labeled_plates(i for f in folders for i in f.test),
        region,
        augment=0,
        thresholds=settings.thresholds,
    )
    is_char = held_out.y != REJECT
    if not is_char.any():
        return [], []
    return held_out.y[is_char].tolist(), model.predict(held_out.X[is_char]).tolist()


def segmented_char_accuracy(true: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """``holdout_segmented_char_accuracy`` and the number of characters it counts."""
    if not true:
        return {}
    return {
        "holdout_segmented_char_accuracy": float(np.mean(np.array(true) == np.array(predicted))),
        "holdout_segmented_chars": float(len(true)),
    }


def classifier_params(model) -> dict[str, str]:
    """The character classifier's step parameters (``mlp__alpha`` ...), as short strings,
    named as in every version so runs compare in the MLflow UI."""
    params = {}
    for key, value in char_model_of(model).get_params(deep=True).items():
        if "__" in key and (value is None or isinstance(value, str | int | float | bool | tuple)):
            params[key] = str(value)[:MAX_PARAM_CHARS]
    return params


def run_params(
    model,
    region,
    settings,
    holdout_fraction,
    seed,
    augment,
    extraction=IN_PROCESS,
    rare_class_boost=RARE_BOOST,
    synthetic=SYNTHETIC_PLATES,
) -> dict[str, str]:
    """Every parameter a training run logs."""
    params = {f"settings.{k}": str(v) for k, v in settings.to_dict().items()}
    params.update(classifier_params(model))
    params.update(
        region=region.name,
        classifier=type(char_model_of(model)[-1]).__name__,
        holdout_fraction=str(holdout_fraction),
        seed=str(seed),
        augment=str(augment),
        rare_class_boost=str(rare_class_boost),
        synthetic_plates=str(synthetic),
        pipeline_version=PIPELINE_VERSION,
        code_version=code_version(),
        feature_extraction=extraction,
    )
    return params


def train(
    data_dirs: Sequence[str | Path],
    region: str | RegionConfig = "us",
    experiment: str = DEFAULT_EXPERIMENT,
    holdout_fraction: float = 0.25,
    seed: int = 0,
    augment: int = 2,
    settings: Settings | None = None,
    artifact_location: str | None = None,
    tracking: str | None = None,
    promote: bool = False,
    eval_dirs: Sequence[str | Path] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    synthetic: int = SYNTHETIC_PLATES,
    **classifier_options,
) -> TrainResult:
    """A new registered version of the region's classifier, trained on ``data_dirs``.

    The images whose name ``datasets.split_of`` puts in "test" are held out and read end to
    end after training, so (with the default ``holdout_fraction``) ``anpr evaluate --split
    test`` reproduces those figures.
    With ``promote``, the new version and the champion are read on ``eval_dirs`` (default:
    the held-out images) and the new version becomes champion if it reads at least as many
    plates right (``models.promotion_gate``); the decision is logged on the run.
    ``tracking`` overrides ``models.tracking_uri()``; ``artifact_location`` is used when the
    experiment is created. With ``scheduler`` (a Dask scheduler's address) or ``workers`` (a
    LocalCluster of that many processes) the characters are cut and described on the cluster;
    the samples, and so the model, are the same as in this process. ``synthetic`` rendered
    plate crops (``synth.training_crop``) join the real plates' characters.
    """
    import mlflow

    config = region if isinstance(region, RegionConfig) else load_region(region)
    settings = settings or Settings()
    folders = read_folders(data_dirs, holdout_fraction)
    eval_items = (
        [i for f in datasets.read_folders(eval_dirs) for i in f.items] if eval_dirs else None
    )
    train_items = [item for f in folders for item in f.train]
    if not train_items:
        raise ValueError("no training images: every image fell in the held-out part")
    config = learned_from_labels(config, (text for item in train_items for _, text in item.plates))
    cluster = cluster_client(scheduler, workers) if scheduler or workers else nullcontext()
    with cluster as client:
        extraction = where_extracted(client, scheduler)
        model, samples = fit_model(
            train_items,
            config,
            settings,
            augment,
            seed,
            client,
            synthetic=synthetic,
            **classifier_options,
        )

    store = models.use_tracking(tracking)
    experiment_id = ensure_experiment(experiment, artifact_location)
    data = {**samples.summary(), **data_fingerprint(folders)}
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(
            run_params(
                model,
                config,
                settings,
                holdout_fraction,
                seed,
                augment,
                extraction,
                classifier_options.get("max_boost", RARE_BOOST),
                synthetic,
            )
        )
        mlflow.log_params({k: str(v)[:MAX_PARAM_CHARS] for k, v in data.items()})
        mlflow.log_dict(data, "data_summary.json")
        mlflow.log_dict(config.to_dict(), "region.json")
        with blas_threads(1):
            metrics, pairs = holdout_metrics(folders, model, config, settings)
            true, predicted = holdout_chars(folders, model, config, settings)
        metrics.update(segmented_char_accuracy(true, predicted))
        with tempfile.TemporaryDirectory(prefix="anpr-reports-") as tmp:
            threshold = metrics.get("citation_threshold")
            metrics.update(reports.write_reports(true, predicted, pairs, Path(tmp), threshold))
            mlflow.log_artifacts(tmp, "reports")
        mlflow.log_metrics(metrics)
        registered = models.log_recognizer(model, config, settings, samples.X[:5])
        mlflow.set_tags({"region": config.name, "model_version": registered.version})
        promotion = None
        if promote:
            recognizer = models.Recognizer(
                model, config, settings, registered.name, registered.version, registered.uri
            )
            holdout = [item for f in folders for item in f.test]
            promotion = models.promotion_gate(
                recognizer,
                eval_items if eval_items is not None else holdout,
                ", ".join(str(d) for d in eval_dirs) if eval_dirs else "holdout",
                store,
            )
            mlflow.log_metrics(promotion.metrics())
            mlflow.set_tags(promotion.tags())
    return TrainResult(
        registered.uri,
        registered.name,
        registered.version,
        registered.champion or (promotion is not None and promotion.decision != "refused"),
        run.info.run_id,
        metrics,
        data,
        promotion,
    )


def ensure_experiment(name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created if missing.

    A new experiment in a local SQLite store keeps its artifacts beside the database
    (``mlruns/`` next to ``mlflow.db``) rather than under whatever directory is current.
    """
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    db = models.local_store_path(mlflow.get_tracking_uri())
    if artifact_location is None and db is not None:
        artifact_location = (db.resolve().parent / "mlruns" / metric_key(name)).as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)
