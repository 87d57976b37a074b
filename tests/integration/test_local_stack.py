"""The local stack of infra/local: S3, dask and mlflow answer as a user of `anpr` needs them,
and up.sh/down.sh start, reuse, restart and stop it leaving no process behind."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def unique_key(prefix: str) -> str:
    """A key under ``prefix`` that no other test or run uses."""
    return f"{prefix}/{uuid.uuid4().hex}.bin"


def boto3_client(stack, secret: str | None = None):
    """A boto3 S3 client of the stack (with another secret key when ``secret`` is given)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack.endpoint_url,
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or stack.env["AWS_SECRET_ACCESS_KEY"],
        region_name=stack.env["AWS_DEFAULT_REGION"],
    )


def test_objects_written_with_s3fs_read_back_with_boto3_and_the_other_way(s3_dask_stack):
    key_a, key_b = unique_key("stack-test"), unique_key("stack-test")
    fs = s3_dask_stack.s3fs()
    fs.pipe(f"{s3_dask_stack.bucket}/{key_a}", b"written by s3fs")
    s3 = boto3_client(s3_dask_stack)
    assert s3.get_object(Bucket=s3_dask_stack.bucket, Key=key_a)["Body"].read() == (
        b"written by s3fs"
    )
    s3.put_object(Bucket=s3_dask_stack.bucket, Key=key_b, Body=b"written by boto3")
    assert s3_dask_stack.s3fs().cat(s3_dask_stack.url(key_b)) == b"written by boto3"


def test_the_env_file_alone_points_s3fs_at_the_stack(s3_dask_stack, monkeypatch):
    import s3fs

    key = unique_key("stack-test")
    boto3_client(s3_dask_stack).put_object(Bucket=s3_dask_stack.bucket, Key=key, Body=b"env")
    s3_dask_stack.use(monkeypatch)
    assert s3fs.S3FileSystem(skip_instance_cache=True).cat(s3_dask_stack.url(key)) == b"env"


def test_wrong_credentials_are_refused(s3_dask_stack):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKey"):
        boto3_client(s3_dask_stack, secret="not-the-secret").list_objects_v2(
            Bucket=s3_dask_stack.bucket
        )


def test_tasks_run_in_two_worker_processes_under_their_nannies_and_read_s3(s3_dask_stack):
    def task_identity(key: str) -> tuple[int, int, bytes]:
        """(pid, parent pid, content of s3 ``key``) as seen by the worker process running it;
        the S3 endpoint and credentials come from the worker's environment alone. (Nested, so
        that it travels by value: the workers cannot import test modules.)"""
        import s3fs

        return os.getpid(), os.getppid(), s3fs.S3FileSystem(skip_instance_cache=True).cat(key)

    key = unique_key("stack-test")
    s3_dask_stack.s3fs().pipe(s3_dask_stack.url(key), b"seen by workers")
    with s3_dask_stack.client() as client:
        addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
        assert len(addresses) == 2
        futures = [
            client.submit(task_identity, s3_dask_stack.url(key), workers=[a], pure=False)
            for a in addresses
        ]
        results = client.gather(futures)
    pids = {pid for pid, _, _ in results}
    assert len(pids) == 2
    assert {ppid for _, ppid, _ in results} == set(s3_dask_stack.nanny_pids())
    assert set(s3_dask_stack.worker_pids().values()) == pids
    assert [data for _, _, data in results] == [b"seen by workers"] * 2


def test_a_killed_worker_process_is_restarted_by_its_nanny(s3_dask_stack):
    before = s3_dask_stack.worker_pids()
    killed = s3_dask_stack.kill_worker()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            after = s3_dask_stack.worker_pids()
        except Exception:  # noqa: BLE001 - the scheduler may still list the dead worker
            after = {}
        if len(after) == 2 and killed not in after.values():
            break
        time.sleep(0.5)
    assert len(after) == 2 and killed not in after.values()
    assert set(after.values()) & set(before.values()) == set(before.values()) - {killed}
    with s3_dask_stack.client() as client:
        assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6


def test_services_listen_on_loopback_only(s3_dask_stack):
    listening = []
    for proc in s3_dask_stack.processes():
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening += [c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN]
    assert listening and set(listening) == {"127.0.0.1"}


def test_up_again_on_a_running_stack_changes_nothing(s3_dask_stack):
    def state(stack):
        return stack.env, sorted(p.pid for p in stack.processes())

    before = state(s3_dask_stack)
    again, output = s3_dask_stack.up_again()
    assert "already up" in output
    assert state(again) == before


def test_mlflow_run_artifacts_land_in_the_stack_s3(full_stack, monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", full_stack.tracking_uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    for name in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)  # the server proxies artifacts, not the client
    note = tmp_path / "note.txt"
    note.write_text("logged through the local stack")
    try:
        mlflow.set_tracking_uri(full_stack.tracking_uri)
        mlflow.set_experiment(f"stack-test-{uuid.uuid4().hex[:8]}")
        with mlflow.start_run() as run:
            mlflow.log_param("stack", "full")
            mlflow.log_artifact(str(note))
    finally:
        mlflow.set_tracking_uri(None)
    stored = [
        key
        for key in full_stack.s3fs().find(full_stack.url("mlflow"))
        if run.info.run_id in key and key.endswith("note.txt")
    ]
    assert len(stored) == 1
    assert full_stack.s3fs().cat(stored[0]) == b"logged through the local stack"


def test_up_restarts_a_broken_stack_and_down_leaves_no_process(local_stack_factory):
    stack = local_stack_factory("restart", workers=1)
    try:
        scheduler_pid = int(Path(stack.env["ANPR_DASK_SCHEDULER_PID_FILE"]).read_text())
        psutil.Process(scheduler_pid).kill()
        restarted, output = stack.up_again()
        assert "restarting" in output
        assert restarted.scheduler_address != stack.scheduler_address
        with restarted.client() as client:
            assert client.submit(sum, [4, 5]).result(timeout=30) == 9
        processes = restarted.processes()
        names = " ".join(" ".join(p.cmdline()) for p in processes)
        for part in ("weed", "dask scheduler", "dask worker", "spawn_main"):
            assert part in names
    finally:
        stack.down()
    assert not stack.processes()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
    assert not (stack.run_dir / "env").exists()
    with pytest.raises(Exception, match="[Cc]onnect"):
        boto3_client(restarted).list_buckets()
