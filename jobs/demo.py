"""``anpr demo``: the whole story on synthetic data, in a folder of its own.

Synthesize a camera archive (scenes across cameras and days) and labeled training data,
train a model into a local MLflow store under the demo folder, reprocess the archive on a
local Dask cluster into partitioned Parquet, and measure the reads against what the archive
truly shows.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
from pathlib import Path

from anpr_core.config import load_region
from anpr_core.metrics import char_accuracy
from jobs.models import load_recognizer
from jobs.progress import ProgressBar
from jobs.reprocess import ReprocessOptions, reprocess
from jobs.synthdata import ArchivedImage, write_archive, write_crops, write_scenes
from jobs.train import train

REGION = "us"
TRAIN_SEED, CROP_SEED, ARCHIVE_SEED = 1, 2, 3  # different seeds: archive plates are unseen


def say(message: str) -> None:
    """Nothing; prints a demo step as it happens."""
    print(message, flush=True)


DEMO_DATA = ("training", "archive", "archive_truth.csv", "reads")


def clear_previous_demo(workdir: Path) -> None:
    """Nothing; removes the data an earlier demo left in ``workdir`` (only the demo's own
    names). Its MLflow store stays: each demo adds a model version, as each training would."""
    for name in DEMO_DATA:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_truth(path: Path, archive: list[ArchivedImage]) -> None:
    """Nothing; writes what each archive image shows as CSV (key, camera, time, plate)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_key", "camera_id", "captured_at", "plate"])
        for image in archive:
            moment = image.captured_at.isoformat()
            writer.writerow([image.key, image.camera_id, moment, image.plate])


def archive_accuracy(reads_dir: Path, archive_dir: Path, archive: list[ArchivedImage]) -> dict:
    """Plate and character accuracy of the reads against the archive's truth."""
    import pandas as pd

    rows = pd.read_parquet(reads_dir, columns=["image_key", "plate"]).set_index("image_key")
    plates = [
        (rows["plate"].get(str(archive_dir / image.key)) or "", image.plate) for image in archive
    ]
    n = max(len(plates), 1)
    return {
        "images": len(plates),
        "plate_accuracy": sum(read == truth for read, truth in plates) / n,
        "char_accuracy": sum(char_accuracy(read, truth) for read, truth in plates) / n,
    }


def run_demo(
    workdir: Path,
    n_scenes: int = 60,
    n_crops: int = 120,
    n_archive: int = 300,
    workers: int | None = None,
) -> dict:
    """The demo's figures and output paths, after running it in ``workdir``."""
    start = time.perf_counter()
    workdir = Path(workdir).resolve()
    data = workdir / "training"
    archive_dir = workdir / "archive"
    reads_dir = workdir / "reads"
    region = load_region(REGION)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    clear_previous_demo(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    say(f"1. synthesizing {n_scenes} labeled scenes and {n_crops} plate crops ({REGION}) in {data}")
    write_scenes(data / "scenes", n_scenes, TRAIN_SEED, region)
    write_crops(data / "crops", n_crops, CROP_SEED, region)
    say(f"   and a camera archive of {n_archive} images in {archive_dir}")
    archive = write_archive(archive_dir, n_archive, ARCHIVE_SEED, region)
    write_truth(workdir / "archive_truth.csv", archive)

    say(f"2. training a character classifier, tracked in {store}")
    result = train(
        [data / "scenes", data / "crops"], region, experiment="anpr-demo", tracking=store
    )
    say(f"   registered {result.model_uri}" + (" (champion)" if result.champion else ""))
    for key in ("holdout_plate_accuracy", "holdout_char_accuracy", "holdout_detection_recall"):
        if key in result.metrics:
            say(f"   {key:<28} {result.metrics[key]:.3f}")

    say(f"3. reprocessing the archive with {result.model_uri} on a local Dask cluster")
    recognizer = load_recognizer(result.model_uri, REGION, tracking=store)
    options = ReprocessOptions(
        str(archive_dir), str(reads_dir), workers=workers, partition_size=25, resume=False
    )
    bar = ProgressBar("   reading", stream=sys.stdout)
    summary = reprocess(options, recognizer, say=lambda line: say(f"   {line}"), progress=bar)
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    say(f"   {summary.n_processed} images ({counts}), {summary.images_per_s:.1f} images/s")
    figures = archive_accuracy(reads_dir, archive_dir, archive)
    say(
        f"   against the archive's truth: plate accuracy {figures['plate_accuracy']:.3f}, "
        f"character accuracy {figures['char_accuracy']:.3f}"
    )

    say(f"done in {time.perf_counter() - start:.0f} s. Look at:")
    say(f"   archive     {archive_dir}  (truth: {workdir / 'archive_truth.csv'})")
    say(f"   reads       {reads_dir}  (Parquet, partitioned by capture_date)")
    say(f"               python -c \"import pandas; print(pandas.read_parquet('{reads_dir}'))\"")
    say(f"               duckdb -c \"select * from read_parquet('{reads_dir}/*/*.parquet')\"")
    say(f"   MLflow UI   mlflow ui --backend-store-uri {store}")
    return {
        "model_uri": result.model_uri,
        "reprocess": summary,
        "accuracy": figures,
        "reads": str(reads_dir),
    }
