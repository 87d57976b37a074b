"""jobs.train: what a training run records in MLflow and how versions and champion move."""

from anpr_core import datasets
from anpr_core.pipeline import Settings
from jobs.train import train


def test_a_run_logs_params_data_and_holdout_metrics(use_trained, synthetic):
    import mlflow.artifacts
    from mlflow import MlflowClient

    result = use_trained["result"]
    run = MlflowClient(use_trained["uri"]).get_run(result.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["region"] == "us" and params["classifier"]
    assert params["settings.max_candidates"] == str(Settings().max_candidates)
    assert "bbps__grids" in params
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
