"""Fixtures of the jobs tests: synthetic labeled folders, private MLflow stores, a small model.

Every test runs in its own temporary directory with its own SQLite tracking store; the
read-only tests share one store trained once per module. The classifier is made small and
quick (``FAST_CLASSIFIER``): these tests check behaviour, not accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import forget_tracking_uri, quick_training, store_uri

from anpr_core.config import load_region
from anpr_jobs import cli
from anpr_jobs.synthdata import write_scenes


@pytest.fixture(autouse=True)
def quiet_and_fast(monkeypatch):
    """No tracking store left over from another test, telemetry off, and a small classifier
    wherever jobs build one."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    forget_tracking_uri()
    with quick_training(monkeypatch):
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


@pytest.fixture
def use_trained(trained, tmp_path, monkeypatch) -> dict:
    """The trained store as MLFLOW_TRACKING_URI, from a private working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    return trained


@pytest.fixture(scope="module")
def browser():
    """A headless chromium driven by selenium; skips when either is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("no chromium/chromedriver: run .ci/install-browser.sh (Debian packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


ARCHIVE_SCENES = 6  # the scenes of the `scenes` fixture


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[dict]:
    """Synthetic scenes on disk: ``key`` (absolute path), true ``plate`` and ``box``."""
    folder = tmp_path_factory.mktemp("archive") / "cam1" / "2026" / "11" / "24"
    found = []
    for path in write_scenes(folder, ARCHIVE_SCENES, seed=7, region=load_region("us")):
        fields = path.with_suffix(".txt").read_text().split("\t")
        box = tuple(int(v) for v in fields[1:5])
        found.append({"key": str(path), "plate": fields[5].strip(), "box": box})
    return found
