"""anpr_jobs.reprocess on a local cluster: one row per image, bad files as rows, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest
from support import assert_one_row_per_key, odd_images

from anpr_core.config import load_region
from anpr_core.errors import AnprError
from anpr_core.synth import synth_scene
from anpr_jobs.cluster import process_image
from anpr_jobs.reprocess import PROGRESS_DIR, partition_size_for, prepare_output
from anpr_jobs.storage import open_url
from anpr_jobs.synthdata import write_archive

N_ARCHIVE = 8


@pytest.fixture
def archive(tmp_path) -> dict:
    """A synthetic camera archive plus every odd file: ``{"root", "expected": {key: status}}``."""
    import numpy as np

    root = tmp_path / "archive"
    written = write_archive(root, N_ARCHIVE, seed=11, region=load_region("us"))
    expected = {str(root / image.key): "read" for image in written}
    scene = synth_scene(np.random.default_rng(3), load_region("us")).image
    for key, (data, status) in odd_images(scene).items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
        expected[str(root / key)] = status
    return {"root": root, "expected": expected, "written": written}


def read_rows(out: Path) -> pd.DataFrame:
    """The plate-reads dataset at ``out`` as pandas reads it."""
    return pd.read_parquet(out)


def test_every_image_gets_one_row_with_its_status(use_trained, archive, anpr, tmp_path):
    out = tmp_path / "reads"
    status, stdout, err = anpr(
        "reprocess", archive["root"], out, "--workers", "2", "--partition-size", "4"
    )
    assert status == 0, err
    rows = read_rows(out)
    expected = archive["expected"]
    assert_one_row_per_key(rows, expected)
    assert set(rows["model_version"]) == {"1"} and rows["run_id"].nunique() == 1
    assert set(rows["model_name"]) == {"anpr-char-classifier-us"}
    rotated = rows[rows["image_key"].str.endswith("exif-rotated.jpg")].iloc[0]
    assert rotated.image_width > rotated.image_height  # read upright, as EXIF says
    by_key = rows.set_index("image_key")
    for image in archive["written"]:
        row = by_key.loc[str(archive["root"] / image.key)]
        assert row.camera_id == image.camera_id
        assert row.captured_at == pd.Timestamp(image.captured_at)  # the EXIF time, to the second
    good = rows[rows["status"] == "ok"]
    assert len(good) >= N_ARCHIVE // 2 and good["plate"].str.len().min() >= 5
    assert f"{len(expected)} images read" in stdout
    # the same files read as they are with pyarrow and DuckDB, partitioned by capture date
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(expected)
    days = duckdb.sql(
        f"select count(*), count(distinct image_key) from read_parquet('{out}/*/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()[0]
    assert days == (len(expected), len(expected))
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    assert summary["n_processed"] == len(expected) and summary["model_version"] == "1"


def test_a_rerun_finishes_what_an_interrupted_run_left(use_trained, archive, anpr, tmp_path):
    out = tmp_path / "reads"
    args = ("reprocess", archive["root"], out, "--workers", "1", "--partition-size", "5")
    assert anpr(*args)[0] == 0
    markers = sorted((out / PROGRESS_DIR).glob("*.json"))
    # an interrupted partition: its files were written, its marker never was
    lost = json.loads(markers[0].read_text())
    markers[0].unlink()
    status, stdout, _ = anpr(*args)
    assert status == 0
    assert f"{len(lost['keys'])} images read" in stdout
    assert f"{len(archive['expected']) - len(lost['keys'])} skipped as done" in stdout
    rows = read_rows(out)
    assert sorted(rows["image_key"]) == sorted(archive["expected"])  # no duplicate, none lost
    assert rows["run_id"].nunique() == 2
    # everything done: a third run reads nothing and starts no cluster
    status, stdout, _ = anpr(*args)
    assert "0 images read" in stdout and "dask:" not in stdout
    # --no-resume redoes everything, still one row per key
    assert anpr(*args, "--no-resume")[0] == 0
    rows = read_rows(out)
    assert sorted(rows["image_key"]) == sorted(archive["expected"])
    assert rows["run_id"].nunique() == 1


def test_resuming_with_another_model_version_is_refused(use_trained, tmp_path):
    from anpr_jobs.models import load_recognizer

    recognizer = load_recognizer(None, "us")
    progress = tmp_path / "reads" / PROGRESS_DIR
    progress.mkdir(parents=True)
    marker = {"keys": ["a.jpg"], "files": [], "counts": {"ok": 1}, "model_version": "7"}
    (progress / "p.json").write_text(json.dumps(marker | {"model_name": recognizer.model_name}))
    fs, root = open_url(str(tmp_path / "reads"))
    with pytest.raises(AnprError, match="version 7.*--no-resume"):
        prepare_output(fs, root, recognizer, resume=True)


def test_one_bad_image_is_a_row_not_an_exception(use_trained):
    from anpr_jobs.capture import compile_key_pattern
    from anpr_jobs.models import load_recognizer

    recognizer = load_recognizer(None, "us")
    pattern = compile_key_pattern(None)
    row = process_image("cam1/2026/10/05/x.jpg", OSError("reset"), recognizer, pattern, "r1")
    assert row["status"] == "error" and row["error"].startswith("unreadable: OSError")
    assert row["camera_id"] == "cam1" and row["model_version"] == "1"
    row = process_image("x.jpg", FileNotFoundError("gone"), recognizer, pattern, "r1")
    assert row["error"] == "missing: no such object" and row["captured_at"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reprocess", "{tmp}/absent", "{tmp}/out"], "no images at"),
        (["reprocess", "{tmp}", "{tmp}/out", "--storage-option", "anon"], "KEY=VALUE"),
        (["reprocess", "{tmp}", "{tmp}/out", "--key-pattern", "("], "regular expression"),
        (
            ["reprocess", "{tmp}", "{tmp}/out", "--scheduler", "tcp://127.0.0.1:9"],
            "cannot reach the Dask scheduler",
        ),
    ],
)
def test_whole_run_failures_are_one_line(use_trained, anpr, tmp_path, argv, message):
    (tmp_path / "img.jpg").write_bytes(b"not an image")
    status, _, err = anpr(*(a.format(tmp=tmp_path) for a in argv))
    assert status != 0
    assert err.startswith("anpr: error:") and message in err and len(err.splitlines()) == 1


def test_a_short_run_is_cut_into_enough_tasks_for_every_thread():
    assert partition_size_for(500, 2, 200) == 25  # 20 tasks, not 3
    assert partition_size_for(2000, 2, 50) == 50  # a long run keeps the size asked for
    assert partition_size_for(10**6, 16, 200) == 200
    assert partition_size_for(3, 4, 200) == 1
    assert partition_size_for(0, 2, 200) == 1
