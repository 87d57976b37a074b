"""Fixtures shared by every test package."""

import os
from pathlib import Path

import pytest
from support import forget_tracking_uri, quick_training, store_uri

from anpr_jobs import cli

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder: ``ANPR_DATA`` when set, else ../shared/data beside the project;
    the test skips, saying where it looked, when it is absent."""
    found = Path(os.environ.get("ANPR_DATA") or SHARED_DATA)
    if not found.is_dir():
        pytest.skip(f"real data not available: {found} is absent (set ANPR_DATA to its folder)")
    return found


N_CROPS, N_SCENES = 30, 8


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
    """A store holding version 1 (the champion) of the us model, trained quickly on the
    synthetic crops and scenes; ``uri`` is its tracking URI, ``result`` the TrainResult."""
    from anpr_jobs.train import train

    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch, quick_training(patch):
        patch.setenv("MLFLOW_TRACKING_URI", store_uri(root))
        result = train([synthetic["crops"], synthetic["scenes"]], "us")
        forget_tracking_uri()
    return {"root": root, "uri": store_uri(root), "result": result}
