"""anpr_jobs.models: a version holds classifier, region and settings; loading by alias, version,
run and folder; one-line errors for what is missing."""

from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from anpr_core.config import load_region
from anpr_core.errors import ModelError
from anpr_core.features import BlockBinaryPixelSum, row_width
from anpr_core.pipeline import PIPELINE_VERSION, Settings
from anpr_jobs.models import load_recognizer, trusted_types


def test_champion_alias_resolves_to_its_version_once(use_trained):
    by_alias = load_recognizer(None, "us")
    by_version = load_recognizer("models:/anpr-char-classifier-us/1", "us")
    assert by_alias.uri == by_version.uri == "models:/anpr-char-classifier-us/1"
    assert (by_alias.model_name, by_alias.model_version) == ("anpr-char-classifier-us", "1")
    rows = np.random.default_rng(0).random((4, row_width(grey=True)), dtype=np.float32)
    assert np.allclose(by_alias.model.predict_proba(rows), by_version.model.predict_proba(rows))


def test_a_version_carries_region_settings_and_pipeline_version(use_trained):
    recognizer = load_recognizer("models:/anpr-char-classifier-us@champion")
    region = recognizer.region  # the shipped region with what its training labels taught
    assert replace(region, pattern_counts=(), glyph_counts=()) == load_region("us")
    assert len(region.pattern_counts) == len(region.patterns) and sum(region.pattern_counts) > 0
    assert recognizer.settings == Settings()
    assert recognizer.pipeline_version == PIPELINE_VERSION
    assert isinstance(recognizer.model.char_model[0], BlockBinaryPixelSum)  # skops kept it


def test_runs_uri_and_local_folder_load_the_same_model(use_trained, tmp_path):
    import mlflow

    run_id = use_trained["result"].run_id
    from_run = load_recognizer(f"runs:/{run_id}/model", "us")
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=tmp_path)
    from_folder = load_recognizer(folder, "us")
    assert from_run.model_version is None and from_folder.uri == folder
    assert from_folder.region.name == "us"
    assert from_run.model.classes_.tolist() == from_folder.model.classes_.tolist()


def test_missing_champion_version_and_folder_are_one_line_errors(use_trained, tmp_path):
    with pytest.raises(ModelError, match=r"no champion for region eu.*anpr train DATA --region eu"):
        load_recognizer(None, "eu")
    with pytest.raises(ModelError, match="has no version 9"):
        load_recognizer("models:/anpr-char-classifier-us/9")
    with pytest.raises(ModelError, match="no MLflow model at"):
        load_recognizer(tmp_path / "nothing-here")
    with pytest.raises(ModelError, match="reads region us, not eu"):
        load_recognizer("models:/anpr-char-classifier-us/1", "eu")


def test_an_empty_working_directory_has_no_store(workdir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(ModelError, match="no model store at .*mlflow.db: run `anpr train"):
        load_recognizer(None, "us")
    assert not (workdir / "mlflow.db").exists()  # reading never creates a store


def test_an_unreachable_tracking_server_fails_at_once(workdir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(ModelError, match="cannot reach the MLflow tracking server"):
        load_recognizer(None, "us")


class Foreign(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_skops_trusts_our_types_and_refuses_foreign_ones():
    X = np.random.default_rng(0).random((20, 641), dtype=np.float32)
    y = np.array(list("AB") * 10)
    ours = Pipeline([("bbps", BlockBinaryPixelSum()), ("lr", LogisticRegression())]).fit(X, y)
    assert "anpr_core.features.BlockBinaryPixelSum" in trusted_types(ours)
    theirs = Pipeline([("x", Foreign()), ("lr", LogisticRegression())]).fit(X, y)
    with pytest.raises(ModelError, match="unknown types: .*Foreign"):
        trusted_types(theirs)
