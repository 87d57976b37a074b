"""Fixtures of the jobs tests: synthetic labeled folders, private MLflow stores, a small model.

Every test runs in its own temporary directory with its own SQLite tracking store; the
read-only tests share one store trained once per module. The classifier is made small and
quick (``FAST_CLASSIFIER``): these tests check behaviour, not accuracy.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest

from anpr_core.classify import build_classifier
from jobs import cli

FAST_CLASSIFIER = {"hidden_units": 48, "max_iter": 60}
N_CROPS, N_SCENES = 30, 8


def store_uri(folder: Path) -> str:
    """The tracking URI of a SQLite store in ``folder``."""
    return f"sqlite:///{folder / 'mlflow.db'}"


def forget_tracking_uri() -> None:
    """Nothing; clears the tracking and registry URIs MLflow keeps in globals (and, for the
    tracking URI, in os.environ), so no test sees the store of the one before."""
    import mlflow

    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(autouse=True)
def quiet_and_fast(monkeypatch):
    """No tracking store left over from another test, telemetry off, and a small classifier
    wherever jobs build one."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    forget_tracking_uri()
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr(
        "anpr_core.samples.build_classifier", functools.partial(build_classifier, **FAST_CLASSIFIER)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Stochastic Optimizer.*")
        yield


@pytest.fixture
def anpr(capsys):
    """A function running ``anpr ARGV...`` in this process: (exit status, stdout, stderr)."""

    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        status = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A private working directory with its own tracking store in MLFLOW_TRACKING_URI."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    """Folders of synthetic us data written by `anpr synth`: ``crops`` (N_CROPS plates) and
    ``scenes`` (N_SCENES)."""
    root = tmp_path_factory.mktemp("synthetic")
    assert cli.main(["synth", str(root / "crops"), "--count", str(N_CROPS), "--crops"]) == 0
    assert cli.main(["synth", str(root / "scenes"), "--count", str(N_SCENES), "--seed", "1"]) == 0
    return {"crops": root / "crops", "scenes": root / "scenes"}


@pytest.fixture(scope="session")
def trained(tmp_path_factory, synthetic) -> dict:
    """A store holding version 1 (the champion) of the us model, trained on the synthetic
    crops and scenes; ``uri`` is its tracking URI, ``result`` the TrainResult."""
    from jobs.train import train

    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Stochastic Optimizer.*")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setattr(
            "anpr_core.samples.build_classifier",
            functools.partial(build_classifier, **FAST_CLASSIFIER),
        )
        patch.setenv("MLFLOW_TRACKING_URI", store_uri(root))
        result = train([synthetic["crops"], synthetic["scenes"]], "us")
        forget_tracking_uri()
    return {"root": root, "uri": store_uri(root), "result": result}


@pytest.fixture
def use_trained(trained, tmp_path, monkeypatch) -> dict:
    """The trained store as MLFLOW_TRACKING_URI, from a private working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    return trained
