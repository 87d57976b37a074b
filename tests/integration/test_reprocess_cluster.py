"""`anpr reprocess` on the real thing: images in an S3 server, a dask scheduler and two worker
processes, a killed worker and an interrupted client; one row per key every time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
from support import GLOB_NAMES, assert_one_row_per_key, odd_images, scene_jpeg

from anpr_core.config import load_region
from anpr_core.synth import synth_scene
from anpr_jobs import cli
from anpr_jobs.synthdata import write_archive

pytestmark = pytest.mark.integration

N_ARCHIVE = 24


@pytest.fixture(scope="module")
def s3_archive(s3_dask_stack, tmp_path_factory) -> dict:
    """A synthetic archive and every odd file, uploaded under a fresh prefix of the stack's
    bucket: ``{"url", "expected": {s3 url: "read" | "error:<reason>"}}``."""
    root = tmp_path_factory.mktemp("archive")
    prefix = f"archive-{uuid.uuid4().hex[:8]}"
    written = write_archive(root, N_ARCHIVE, seed=21, region=load_region("us"))
    files = {image.key: (root / image.key).read_bytes() for image in written}
    expected = {image.key: "read" for image in written}
    scene = synth_scene(np.random.default_rng(4), load_region("us")).image
    for key, (data, status) in odd_images(scene).items():
        files[key], expected[key] = data, status
    fs = s3_dask_stack.s3fs()
    fs.pipe({f"{s3_dask_stack.bucket}/{prefix}/{key}": data for key, data in files.items()})
    return {
        "url": s3_dask_stack.url(prefix),
        "expected": {s3_dask_stack.url(prefix, key): want for key, want in expected.items()},
    }


@pytest.fixture
def on_stack(s3_dask_stack, trained, monkeypatch, tmp_path):
    """The stack's variables and the trained model's store in the environment."""
    s3_dask_stack.use(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(tmp_path)
    s3_dask_stack.wait_for_workers()
    return s3_dask_stack


def read_back(stack, url: str) -> pd.DataFrame:
    """The reads dataset at ``url`` in the S3 server, as pandas reads it."""
    return pd.read_parquet(url, storage_options=stack.storage_options)


def markers(stack, url: str) -> list[str]:
    """The progress markers written so far under a reads dataset."""
    fs = stack.s3fs()
    path = url.removeprefix("s3://") + "/_progress"
    return fs.ls(path, detail=False) if fs.exists(path) else []


def test_reads_land_in_object_storage_one_row_per_key(on_stack, s3_archive, capsys):
    out = on_stack.url(f"reads-{uuid.uuid4().hex[:8]}")
    status = cli.main(["reprocess", s3_archive["url"], out, "--partition-size", "6"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert on_stack.scheduler_address in captured.out  # the user's cluster, not a local one
    rows = read_back(on_stack, out)
    assert_one_row_per_key(rows, s3_archive["expected"])
    assert set(rows["model_version"]) == {"1"}
    assert rows.loc[rows["status"] == "ok", "camera_id"].str.startswith("cam").all()
    # the same objects read with pyarrow and DuckDB (through fsspec: no download of extensions)
    fs = on_stack.s3fs()
    table = ds.dataset(out.removeprefix("s3://"), filesystem=fs, partitioning="hive").to_table()
    assert table.num_rows == len(s3_archive["expected"])
    db = duckdb.connect()
    db.register_filesystem(fs)
    count = db.sql(f"select count(distinct image_key) from read_parquet('{out}/*/*.parquet')")
    assert count.fetchall()[0][0] == len(s3_archive["expected"])
    # no credentials in the rows or in the run summary
    secret = on_stack.env["AWS_SECRET_ACCESS_KEY"]
    summaries = fs.glob(out.removeprefix("s3://") + "/_runs/*.json")
    assert summaries and all(secret not in fs.cat(p).decode() for p in summaries)
    assert not rows.astype(str).apply(lambda column: column.str.contains(secret)).any().any()


def test_keys_with_glob_characters_are_read_as_they_are_on_s3(on_stack, capsys):
    prefix = f"globs-{uuid.uuid4().hex[:8]}"
    widths = {f"cam[1]/2026/10/05/{n}": 480 + 16 * i for i, n in enumerate(GLOB_NAMES)}
    fs = on_stack.s3fs()
    for i, (key, width) in enumerate(widths.items()):
        fs.pipe_file(f"{on_stack.bucket}/{prefix}/{key}", scene_jpeg(i, width))
    fs.pipe_file(f"{on_stack.bucket}/{prefix}-out1/keep.txt", b"a neighbour")
    out = on_stack.url(f"{prefix}-out[1]")
    argv = ["reprocess", on_stack.url(prefix), out, "--partition-size", "4"]
    for extra in ([], [], ["--no-resume"]):
        status = cli.main(argv + extra)
        assert status == 0, capsys.readouterr().err
    rows = read_back(on_stack, out)
    assert sorted(rows["image_key"]) == sorted(on_stack.url(prefix, k) for k in widths)
    assert set(rows["status"]) <= {"ok", "no_plate"}, rows[["image_key", "error"]]
    for row in rows.itertuples():
        key = row.image_key.removeprefix(on_stack.url(prefix) + "/")
        assert row.image_width == widths[key], key  # its own object, not one the glob matched
    assert fs.exists(f"{on_stack.bucket}/{prefix}-out1/keep.txt")
    # a manifest's keys have no size: read in a bounded range, an empty object is still empty
    fs.pipe_file(f"{on_stack.bucket}/{prefix}/empty[1].jpg", b"")
    keys = ["cam[1]/2026/10/05/a[1].jpg", "empty[1].jpg", "gone[1].jpg"]
    fs.pipe_file(f"{on_stack.bucket}/{prefix}-keys.csv", ("image_key\n" + "\n".join(keys)).encode())
    listed = on_stack.url(f"{prefix}-listed")
    manifest = ["--manifest", on_stack.url(f"{prefix}-keys.csv")]
    assert cli.main(["reprocess", on_stack.url(prefix), listed, *manifest]) == 0
    errors = read_back(on_stack, listed).set_index("image_key")["error"].fillna("")
    assert errors.to_dict() == {
        on_stack.url(prefix, keys[0]): "",
        on_stack.url(prefix, keys[1]): "empty: the file has no bytes",
        on_stack.url(prefix, keys[2]): "missing: no such object",
    }


def test_an_output_the_credentials_cannot_write_fails_before_any_work(on_stack, s3_archive, capsys):
    env = on_stack.env
    out = on_stack.url(f"reads-{uuid.uuid4().hex[:8]}")
    reader = [f"key={env['ANPR_S3_READER_KEY_ID']}", f"secret={env['ANPR_S3_READER_SECRET']}"]
    argv = ["reprocess", s3_archive["url"], out]
    for option in (*reader, f"endpoint_url={on_stack.endpoint_url}"):
        argv += ["--storage-option", option]
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert status == 1 and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"anpr: error: cannot write to output {out}: ")
    assert "dask:" not in captured.out  # refused before any cluster or image


def test_a_killed_worker_loses_no_image(on_stack, s3_archive, capsys):
    out = on_stack.url(f"reads-{uuid.uuid4().hex[:8]}")
    result = {}
    argv = ["reprocess", s3_archive["url"], out, "--partition-size", "2"]
    run = threading.Thread(target=lambda: result.setdefault("status", cli.main(argv)))
    run.start()
    deadline = time.monotonic() + 120
    while not markers(on_stack, out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert markers(on_stack, out), "no partition finished"
    on_stack.kill_worker()
    run.join(timeout=300)
    assert result.get("status") == 0, capsys.readouterr().err
    assert_one_row_per_key(read_back(on_stack, out), s3_archive["expected"])
    on_stack.wait_for_workers()


def default_sigint() -> None:
    """Nothing; gives SIGINT its default disposition, unblocked (run in a child before exec,
    whose ignored disposition and blocked mask the program it runs would inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def images_done(progress_line: str) -> int:
    """The images done in a progress line such as ``reading [###...] 4/34 2.2 s``."""
    return int(progress_line.split("/")[0].split()[-1])


def test_an_interrupted_run_resumes_where_it_stopped(on_stack, s3_archive):
    out = on_stack.url(f"reads-{uuid.uuid4().hex[:8]}")
    argv = [sys.executable, "-m", "anpr_jobs.cli", "reprocess", s3_archive["url"], out]
    argv += ["--partition-size", "2"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    # In the whole suite the job ran to the end through the Ctrl-C (exit 0), alone it stopped:
    # the test process can hand SIGINT down ignored or blocked; give the job a terminal's
    first = subprocess.Popen(
        argv, env=dict(os.environ), text=True, preexec_fn=default_sigint, **pipes
    )
    # Ctrl-C as soon as the job itself reports two partitions read (it reads the 34 images in
    # a few seconds)
    for line in first.stderr:
        if line.startswith("reading") and images_done(line) >= 4:
            break
    first.send_signal(signal.SIGINT)
    _, rest = first.communicate(timeout=60)
    deadline = time.monotonic() + 30  # the two partitions' markers become visible
    while len(markers(on_stack, out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    done_before = len(markers(on_stack, out))
    total = len(s3_archive["expected"])
    assert first.returncode != 0 and 2 <= done_before < total / 2, (first.returncode, rest)
    second = subprocess.run(argv, env=dict(os.environ), capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    skipped = int(second.stdout.split(" skipped as done")[0].rsplit(" ", 1)[1])
    assert skipped >= 2 * done_before  # the finished partitions were not read again
    assert_one_row_per_key(read_back(on_stack, out), s3_archive["expected"])
