"""The three jobs through the local stack, as a deployment runs them: training tracked on an
MLflow server (artifacts in S3), the archive reprocessed from S3 on a dask scheduler with
separate worker processes, a night's tickets written back to S3; read back row by row."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pandas as pd
import pytest
from support import forget_tracking_uri, quick_training

from anpr_core.config import load_region
from anpr_jobs import cli
from anpr_jobs.synthdata import write_archive, write_crops, write_events, write_scenes

pytestmark = pytest.mark.integration
NIGHT = "2026-10-05"


def test_train_reprocess_and_tickets_through_the_stack(full_stack, tmp_path, monkeypatch, capsys):
    full_stack.use(monkeypatch)
    monkeypatch.chdir(tmp_path)
    forget_tracking_uri()
    region = load_region("us")
    write_scenes(tmp_path / "scenes", 10, 1, region)
    write_crops(tmp_path / "crops", 40, 2, region)
    with quick_training(monkeypatch):
        assert cli.main(["train", str(tmp_path / "crops"), str(tmp_path / "scenes")]) == 0
    trained = capsys.readouterr().out
    version = trained.split("models:/anpr-char-classifier-us/")[1].split()[0]

    # the archive and its events, in object storage
    prefix = f"full-{uuid.uuid4().hex[:8]}"
    archive = write_archive(tmp_path / "archive", 12, 5, region)
    fs = full_stack.s3fs()
    fs.put(str(tmp_path / "archive"), f"{full_stack.bucket}/{prefix}/archive", recursive=True)
    write_events(tmp_path / "events.csv", archive, tmp_path / "archive", seed=5)
    local_root = str((tmp_path / "archive").resolve())
    events = (
        (tmp_path / "events.csv").read_text().replace(local_root, full_stack.url(prefix, "archive"))
    )
    fs.pipe(f"{full_stack.bucket}/{prefix}/events/events.csv", events.encode())

    reads = full_stack.url(prefix, "reads")
    status = cli.main(
        ["reprocess", full_stack.url(prefix, "archive"), reads, "--partition-size", "4"]
    )
    out = capsys.readouterr()
    assert status == 0, out.err
    assert full_stack.scheduler_address in out.out
    rows = pd.read_parquet(reads, storage_options=full_stack.storage_options)
    keys = {full_stack.url(prefix, "archive", image.key): image for image in archive}
    assert sorted(rows["image_key"]) == sorted(keys)
    assert set(rows["model_version"]) == {version}
    for row in rows.itertuples():
        image = keys[row.image_key]
        assert row.camera_id == image.camera_id
        assert row.captured_at == pd.Timestamp(image.captured_at)
        assert row.status in ("ok", "no_plate")

    tickets = full_stack.url(prefix, "tickets")
    argv = ["tickets", "--date", NIGHT, full_stack.url(prefix, "events", "events.csv"), reads]
    status = cli.main([*argv, tickets])
    out = capsys.readouterr()
    assert status == 0, out.err
    summary = json.loads(fs.cat(f"{full_stack.bucket}/{prefix}/tickets/summaries/{NIGHT}.json"))
    night_events = [
        e for e in csv.DictReader(io.StringIO(events)) if e["captured_at"].startswith(NIGHT)
    ]
    assert summary["in_night"] == len(night_events)
    issued = summary["citations"] + summary["review"] + summary["duplicates"]
    assert issued == summary["speeding"]
    for dataset in ("citations", "review"):
        path = f"{tickets}/{dataset}"
        if not fs.exists(path.removeprefix("s3://")):
            continue
        table = pd.read_parquet(path, storage_options=full_stack.storage_options)
        assert set(table["image_key"]) <= set(keys)
        assert set(table["model_version"].dropna()) <= {version}
    assert fs.exists(f"{full_stack.bucket}/{prefix}/tickets/pages/review-{NIGHT}.html")
