"""The model lifecycle against a real tracking server: `mlflow/start-server.sh` (SQLite backend,
artifacts on the local stack's SeaweedFS S3) driven through the `anpr` command: train ->
register -> promote (refusing a worse model) -> load by alias -> compare; and the one-line
errors of a broken or unreachable server, an unknown region or version, a missing champion."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from pathlib import Path

import psutil
import pytest

from anpr_core.classify import build_classifier
from anpr_core.config import load_region
from anpr_jobs import cli
from anpr_jobs.synthdata import write_crops

pytestmark = pytest.mark.integration

START_SERVER = Path(__file__).resolve().parents[2] / "mlflow" / "start-server.sh"
NAME = "anpr-char-classifier-us"
FAST_CLASSIFIER = {"hidden_units": 48, "max_iter": 60}  # behaviour, not accuracy
N_CROPS = 30
SERVER_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    """Nothing; returns once ``url`` answers 200, fails if the server exits or times out."""
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer {url} in {SERVER_TIMEOUT_S} s")


def stop_group(process: subprocess.Popen) -> None:
    """Nothing; stops the server's process group (SIGTERM, then SIGKILL) and checks that no
    process of it is left."""
    group = process.pid
    members = [p for p in psutil.process_iter() if safe_pgid(p) == group]
    os.killpg(group, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=20)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=10)
    process.wait(timeout=10)
    left = [p for p in psutil.process_iter() if safe_pgid(p) == group and p.status() != "zombie"]
    assert not left, f"mlflow server processes left: {left}"


def safe_pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, psutil.Error):
        return None


@pytest.fixture(scope="module")
def server(s3_dask_stack, tmp_path_factory) -> dict:
    """A tracking server started by mlflow/start-server.sh on a free port, with its own SQLite
    store and an artifact prefix of its own in the stack's bucket."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    prefix = f"mlflow-lifecycle-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **s3_dask_stack.env,
        "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow"),
        "MLFLOW_DATA_DIR": str(root / "data"),
        "MLFLOW_ARTIFACTS_BUCKET": s3_dask_stack.bucket,
        "MLFLOW_ARTIFACTS_PREFIX": prefix,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    log = root / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(START_SERVER)], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        wait_for_health(f"{uri}/health", process, log)
        print(f"mlflow server up in {time.monotonic() - started:.1f} s")
        yield {"uri": uri, "root": root, "prefix": prefix, "stack": s3_dask_stack, "log": log}
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Synthetic us plate crops: ``crops`` (30) to train a usable model and evaluate on, and
    ``few`` (6) to train a deliberately worse one."""
    root = tmp_path_factory.mktemp("lifecycle-data")
    region = load_region("us")
    write_crops(root / "crops", N_CROPS, 0, region)
    write_crops(root / "few", 6, 3, region)
    return {"crops": root / "crops", "few": root / "few"}


@pytest.fixture
def anpr(server, capsys, monkeypatch, tmp_path):
    """``anpr ARGV...`` run in this process against the server: (status, stdout, stderr)."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["uri"])
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)  # a client needs the tracking URI only
    monkeypatch.setattr(
        "anpr_core.samples.build_classifier", functools.partial(build_classifier, **FAST_CLASSIFIER)
    )

    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Stochastic Optimizer.*")
            status = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    yield run
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def one_line_error(result, message: str) -> None:
    status, out, err = result
    assert status != 0 and out == "", (status, out, err)
    assert err.startswith("anpr: error: ") and err.count("\n") == 1, err
    assert message in err, err


def read_version(anpr, data) -> str:
    """The model version `anpr recognize` reads with by default (the champion)."""
    import json

    crop = sorted((data["crops"] / "images").glob("*.png"))[0]
    status, out, _ = anpr("recognize", "--crop", crop)
    assert status == 0
    return json.loads(out)["model_version"]


def test_train_register_promote_load_and_compare(server, data, anpr):
    from mlflow import MlflowClient

    status, out, _ = anpr("train", data["crops"], "--promote")
    assert status == 0 and f"models:/{NAME}/1 (champion)" in out
    assert "no champion before: champion" in out

    status, out, _ = anpr("train", data["few"], "--promote", "--eval", data["crops"])
    assert status == 0 and f"models:/{NAME}/2\n" in out
    assert "champion stays 1 (new plate accuracy is lower)" in out

    client = MlflowClient(server["uri"])
    refused = client.get_run(client.get_model_version(NAME, "2").run_id)
    assert refused.data.tags["promotion.decision"] == "refused"
    assert (
        refused.data.metrics["promotion_new_plate_accuracy"]
        < refused.data.metrics["promotion_champion_plate_accuracy"]
    )
    assert read_version(anpr, data) == "1"  # loaded by alias: the champion did not move

    status, out, _ = anpr("models", "list")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert status == 0 and [(r[1], r[2]) for r in rows] == [("2", "-"), ("1", "champion")]

    status, out, _ = anpr("models", "compare", "champion", "2", data["crops"])
    only_1 = next(line for line in out.splitlines() if "read right by v1 only" in line)
    assert status == 0 and int(only_1.split()[0]) > 0

    status, out, _ = anpr("models", "promote", "2", "--region", "us")
    assert status == 0 and out == f"{NAME}: champion is version 2 (was 1)\n"
    assert read_version(anpr, data) == "2"

    # Models and reports live in the S3 bucket, under the server's artifact prefix.
    stack = server["stack"]
    keys = stack.s3fs().find(f"{stack.bucket}/{server['prefix']}")
    assert any(k.endswith("/reports/confusion_matrix.png") for k in keys)
    assert any(k.endswith("/reports/worst_misreads.png") for k in keys)
    assert any(k.endswith("/MLmodel") for k in keys)
    assert not (server["root"] / "data" / "mlartifacts").exists()


def test_a_missing_champion_is_a_one_line_error(server, data, anpr):
    from mlflow import MlflowClient

    one_line_error(anpr("evaluate", data["crops"], "--region", "eu"), "no champion for region eu")
    client = MlflowClient(server["uri"])
    if not client.search_model_versions(f"name = '{NAME}'"):
        anpr("train", data["few"])
    client.delete_registered_model_alias(NAME, "champion")
    one_line_error(anpr("recognize", data["crops"] / "labels.csv"), "no champion for region us")
    assert anpr("models", "promote", "1")[0] == 0  # and back


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "list", "--region", "xx"], "unknown region 'xx'"),
        (["train", "{crops}", "--region", "xx", "--promote"], "unknown region 'xx'"),
        (["models", "promote", "9"], f"{NAME} has no version 9"),
        (["models", "compare", "1", "9", "{crops}"], f"{NAME} has no version 9"),
        (["models", "promote", "1", "--region", "br"], "no model versions for region br"),
    ],
)
def test_unknown_region_or_version_is_a_one_line_error(server, data, anpr, argv, message):
    one_line_error(anpr(*(a.format(crops=data["crops"]) for a in argv)), message)


def test_an_unreachable_tracking_server_is_a_one_line_error(data, anpr, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    one_line_error(anpr("models", "list"), "cannot reach the MLflow tracking server")
    one_line_error(anpr("train", data["few"]), "cannot reach the MLflow tracking server")
    assert time.monotonic() - started < 60  # at once, not after MLflow's retries


def test_a_tracking_uri_that_is_not_mlflow_is_a_one_line_error(server, data, anpr, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["stack"].endpoint_url)  # the S3 server
    one_line_error(anpr("models", "list"), "MLflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nonsense://nowhere")
    one_line_error(anpr("models", "list"), "nonsense")
