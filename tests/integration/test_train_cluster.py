"""`anpr train --scheduler` on a real dask scheduler with two worker processes: the workers
read the local training folders and cut the characters; the model is the one training in
process gives."""

from __future__ import annotations

import pytest
from support import forget_tracking_uri, quick_training, store_uri

from anpr_jobs import cli

pytestmark = pytest.mark.integration


@pytest.fixture
def anpr(s3_dask_stack, capsys, monkeypatch, tmp_path):
    """``anpr ARGV...`` run in this process with the stack's variables (DASK_SCHEDULER_ADDRESS
    among them) and a private SQLite tracking store: (status, stdout, stderr)."""
    s3_dask_stack.use(monkeypatch)
    s3_dask_stack.wait_for_workers()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    forget_tracking_uri()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(tmp_path))

    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        status = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    with quick_training(monkeypatch):
        yield run
    forget_tracking_uri()


def run_of(out: str):
    """The MLflow run `anpr train` printed."""
    from mlflow import MlflowClient

    return MlflowClient().get_run(out.split("\nrun ")[1].split()[0])


def chunks_done(stack) -> int:
    """How many training chunks (``apply_chunk`` tasks) the stack's scheduler has run."""

    def count(dask_scheduler) -> int:
        prefix = dask_scheduler.task_prefixes.get("apply_chunk")
        return (
            0
            if prefix is None
            else int(prefix.state_counts.get("memory", 0))
            + sum(group.states.get("forgotten", 0) for group in prefix.groups)
        )

    with stack.client() as client:
        return client.run_on_scheduler(count)


def test_train_on_a_scheduler_reads_on_its_workers_and_gives_the_in_process_model(
    s3_dask_stack, synthetic, anpr
):
    data = [synthetic["crops"], synthetic["scenes"]]
    status, out, err = anpr("train", *data)  # DASK_SCHEDULER_ADDRESS set, not asked for
    assert status == 0, err
    here = run_of(out)
    assert here.data.params["feature_extraction"] == "in-process"

    before = chunks_done(s3_dask_stack)
    address = s3_dask_stack.scheduler_address
    status, out, err = anpr("train", *data, "--scheduler", address)
    assert status == 0, err
    assert "models:/anpr-char-classifier-us/2" in out
    there = run_of(out)
    assert there.data.params["feature_extraction"] == f"{address} (2 workers)"
    assert chunks_done(s3_dask_stack) > before
    for key in ("samples", "plates_used", "plates_skipped", "reject_samples", "data_sha256"):
        assert here.data.params[key] == there.data.params[key], key
    timeless = {k: v for k, v in there.data.metrics.items() if not k.endswith("ms_per_image")}
    assert timeless == {k: v for k, v in here.data.metrics.items() if k in timeless}
