"""anpr_jobs.train: what a training run records in MLflow and how versions and champion move."""

import pytest

from anpr_core import datasets
from anpr_core.pipeline import Settings
from anpr_core.samples import RARE_BOOST
from anpr_jobs.train import train


def test_a_run_logs_params_data_and_holdout_metrics(use_trained, synthetic):
    import mlflow.artifacts
    from mlflow import MlflowClient

    result = use_trained["result"]
    run = MlflowClient(use_trained["uri"]).get_run(result.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["region"] == "us" and params["classifier"]
    assert params["settings.max_candidates"] == str(Settings().max_candidates)
    assert "bbps__grids" in params
    assert params["rare_class_boost"] == str(RARE_BOOST)
    assert len(params["data_sha256"]) == 64 and params["data_files"] == str(30 + 8)
    for key in ("plate_accuracy", "char_accuracy", "n_images"):
        assert f"holdout_{key}" in metrics
        assert f"crops_{key}" in metrics and f"scenes_{key}" in metrics
    assert "holdout_detection_recall" in metrics and "crops_detection_recall" not in metrics
    crops = datasets.read_labeled(synthetic["crops"])
    held_out = [i for i in crops if datasets.split_of(i.name) == "test"]
    assert metrics["crops_n_images"] == len(held_out) > 0
    mlflow.set_tracking_uri(use_trained["uri"])
    summary = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/data_summary.json")
    assert summary["plates_used"] > 0 and summary["data_files"] == 38
    region = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/region.json")
    assert len(region["pattern_counts"]) == len(region["patterns"])  # learned from the labels
    assert 0 < sum(region["pattern_counts"]) <= summary["plates_used"] + summary["plates_skipped"]
    assert result.metrics == {k: metrics[k] for k in result.metrics}


def test_first_version_is_champion_and_a_second_does_not_take_it(workdir, synthetic):
    from mlflow import MlflowClient

    first = train([synthetic["crops"]], "us")
    second = train([synthetic["crops"]], "us", seed=1)
    assert (first.model_uri, first.champion) == ("models:/anpr-char-classifier-us/1", True)
    assert (second.model_uri, second.champion) == ("models:/anpr-char-classifier-us/2", False)
    champion = MlflowClient().get_model_version_by_alias("anpr-char-classifier-us", "champion")
    assert str(champion.version) == "1"
    assert (workdir / "mlruns").is_dir()  # artifacts beside the store, not in the cwd of others


def test_a_run_logs_reports_a_person_looks_at(use_trained):
    import csv
    import re

    import mlflow.artifacts
    from mlflow import MlflowClient

    result = use_trained["result"]
    client = MlflowClient(use_trained["uri"])
    listed = {a.path for a in client.list_artifacts(result.run_id, "reports")}
    assert listed == {
        "reports/confusion_matrix.png",
        "reports/per_char_accuracy.csv",
        "reports/worst_misreads.png",
        "reports/reliability_diagram.png",
        "reports/precision_coverage.png",
    }
    mlflow.set_tracking_uri(use_trained["uri"])
    table = mlflow.artifacts.download_artifacts(
        f"runs:/{result.run_id}/reports/per_char_accuracy.csv"
    )
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    run = client.get_run(result.run_id)
    per_char = {k: v for k, v in run.data.metrics.items() if k.startswith("char_acc_")}
    assert len(rows) == len(per_char) > 5
    for row in rows:
        expected = pytest.approx(float(row["accuracy"]), abs=1e-4)
        assert per_char[f"char_acc_{row['char']}"] == expected
    total = sum(int(r["n"]) for r in rows)
    assert total == run.data.metrics["holdout_segmented_chars"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", run.data.params["code_version"])
    assert run.data.params["pipeline_version"]


def test_the_fingerprint_follows_the_data_not_where_it_lives(synthetic, tmp_path):
    import shutil

    from anpr_jobs.trainingdata import data_fingerprint, read_folders

    original = data_fingerprint(read_folders([synthetic["crops"], synthetic["scenes"]]))
    moved = tmp_path / "elsewhere"
    shutil.copytree(synthetic["crops"], moved / "other-name")
    shutil.copytree(synthetic["scenes"], moved / "scenes")
    copied = data_fingerprint(read_folders([moved / "other-name", moved / "scenes"]))
    assert copied["data_sha256"] == original["data_sha256"]
    assert copied["data_dirs"] != original["data_dirs"]

    labels = moved / "other-name" / "labels.csv"
    first_plate = labels.read_text().splitlines()[1].split(",")[2]
    labels.write_text(labels.read_text().replace(first_plate, "ZZZ999", 1))
    relabeled = data_fingerprint(read_folders([moved / "other-name", moved / "scenes"]))
    assert relabeled["data_sha256"] != original["data_sha256"]

    image = sorted((moved / "scenes").glob("*.jpg"))[0]
    image.write_bytes(image.read_bytes() + b"\0")
    changed = data_fingerprint(read_folders([synthetic["crops"], moved / "scenes"]))
    assert changed["data_sha256"] != original["data_sha256"]


def test_a_local_cluster_gives_the_samples_and_model_of_training_in_process(synthetic):
    import numpy as np

    from anpr_core.config import load_region
    from anpr_core.verify import plate_verifier
    from anpr_jobs.cluster import cluster_client
    from anpr_jobs.train import fit_model
    from anpr_jobs.trainingdata import read_folders

    folders = read_folders([synthetic["crops"], synthetic["scenes"]])
    items = [item for folder in folders for item in folder.train]
    region, settings = load_region("us"), Settings()
    here_model, here = fit_model(items, region, settings, 2, 0, None)
    with cluster_client(None, 2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        there_model, there = fit_model(items, region, settings, 2, 0, client)
    assert here.summary() == there.summary() and here.plates_used > 0
    assert np.array_equal(here.X, there.X) and np.array_equal(here.y, there.y)
    assert np.array_equal(here_model.predict(here.X), there_model.predict(here.X))
    assert np.array_equal(here_model.predict_proba(here.X), there_model.predict_proba(here.X))
    verifiers = plate_verifier(here_model), plate_verifier(there_model)
    assert verifiers[0] is not None and verifiers[1] is not None
    assert np.array_equal(verifiers[0][-1].coef_, verifiers[1][-1].coef_)
