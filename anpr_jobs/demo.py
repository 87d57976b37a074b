"""``anpr demo``: the whole story on synthetic data, in a folder of its own.

Synthesize a camera archive (scenes across cameras and days), its speed-camera events and
labeled training data; train a model into a local MLflow store under the demo folder;
reprocess the archive on a local Dask cluster into partitioned Parquet and score the reads
against what the archive truly shows; turn one night's events into citations, a review queue
and a review page.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from anpr_core import datasets
from anpr_core.config import load_region
from anpr_core.metrics import mean_char_accuracy, plate_accuracy
from anpr_jobs.cluster import ClusterOptions, image_reader
from anpr_jobs.models import load_recognizer
from anpr_jobs.progress import ProgressBar
from anpr_jobs.reprocess import ReprocessOptions, reprocess
from anpr_jobs.synthdata import (
    ArchivedImage,
    write_archive,
    write_crops,
    write_events,
    write_scenes,
)
from anpr_jobs.tickets import Night, Rules, run_tickets
from anpr_jobs.train import train

REGION = "us"
TRAIN_SEED, CROP_SEED, ARCHIVE_SEED = 1, 2, 3  # different seeds: archive plates are unseen


def say(message: str) -> None:
    """Nothing; prints a demo step as it happens."""
    print(message, flush=True)


DEMO_DATA = ("training", "archive", "archive_truth.csv", "reads", "events", "tickets")
NIGHT = "2026-10-05"  # the archive's first day (anpr_jobs.synthdata.write_archive)


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
    import pyarrow.dataset as pads

    table = pads.dataset(reads_dir, format="parquet", partitioning="hive").to_table(
        columns=["image_key", "plate"]
    )
    read = {row["image_key"]: row["plate"] or "" for row in table.to_pylist()}
    reads = [read.get(str(archive_dir / image.key), "") for image in archive]
    labels = [image.plate for image in archive]
    return {
        "images": len(labels),
        "plate_accuracy": plate_accuracy(reads, labels),
        "char_accuracy": mean_char_accuracy(reads, labels),
    }


def real_archive(folder: Path, cameras: int = 3) -> list[ArchivedImage]:
    """The labeled scenes of ``folder`` as an archive (absolute keys), with made-up cameras and
    capture times spread over the demo's night."""
    scenes = [item for item in datasets.read_labeled(folder) if item.kind == "scene"]
    if not scenes:
        raise ValueError(f"{folder} holds no labeled scenes: --data needs a scenes folder")
    first = datetime.fromisoformat(NIGHT).replace(tzinfo=UTC)
    step = timedelta(days=1) / (len(scenes) + 1)
    return [
        ArchivedImage(
            str(item.path.resolve()), f"cam{index % cameras + 1:02d}", first + step * (index + 1),
            item.text,
        )
        for index, item in enumerate(scenes)
    ]  # fmt: skip


def write_manifest(path: Path, archive: list[ArchivedImage]) -> None:
    """Nothing; writes the archive's keys as a reprocess manifest (column ``image_key``)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_key"])
        writer.writerows([image.key] for image in archive)


def run_demo(
    workdir: Path,
    n_scenes: int = 60,
    n_crops: int = 120,
    n_archive: int = 300,
    workers: int | None = None,
    data: Path | None = None,
    region_name: str = REGION,
) -> dict:
    """The demo's figures and output paths, after running it in ``workdir``: on synthetic
    data, or with ``data`` on a labeled scenes folder of real photos (read where it lies)."""
    start = time.perf_counter()
    workdir = Path(workdir).resolve()
    training = workdir / "training"
    archive_dir = workdir / "archive"
    reads_dir = workdir / "reads"
    region = load_region(region_name)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    clear_previous_demo(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    events = workdir / "events" / "events.csv"
    manifest = None

    if data is None:
        say(f"1. synthesizing {n_scenes} labeled scenes and {n_crops} plate crops in {training}")
        write_scenes(training / "scenes", n_scenes, TRAIN_SEED, region)
        write_crops(training / "crops", n_crops, CROP_SEED, region)
        train_on = [training / "scenes", training / "crops"]
        say(f"   and a camera archive of {n_archive} images in {archive_dir}")
        archive = write_archive(archive_dir, n_archive, ARCHIVE_SEED, region)
    else:
        data = Path(data).resolve()
        archive_dir = data
        archive = real_archive(data)
        manifest = workdir / "archive_manifest.csv"
        write_manifest(manifest, archive)
        train_on = [data]
        say(f"1. {len(archive)} labeled photos in {data} as the archive (listed in {manifest})")
    write_truth(workdir / "archive_truth.csv", archive)
    write_events(events, archive, archive_dir, ARCHIVE_SEED)
    say(f"   and one made-up speed-camera event per image in {events}")

    say(f"2. training a character classifier ({region.name}), tracked in {store}")
    result = train(train_on, region, experiment="anpr-demo", tracking=store)
    say(f"   registered {result.model_uri}" + (" (champion)" if result.champion else ""))
    for key in ("holdout_plate_accuracy", "holdout_char_accuracy", "holdout_detection_recall"):
        if key in result.metrics:
            say(f"   {key:<28} {result.metrics[key]:.3f}")

    say(f"3. reprocessing the archive with {result.model_uri} on a local Dask cluster")
    recognizer = load_recognizer(result.model_uri, region.name, tracking=store)
    options = ReprocessOptions(
        str(archive_dir),
        str(reads_dir),
        workers=workers,
        partition_size=25,
        manifest=str(manifest) if manifest else None,
        resume=False,
    )
    bar = ProgressBar("   reading", stream=sys.stdout)
    summary = reprocess(options, recognizer, say=lambda line: say(f"   {line}"), progress=bar)
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    say(f"   {summary.n_processed} images ({counts}), {summary.images_per_s:.1f} images/s")
    figures = archive_accuracy(reads_dir, archive_dir, archive)
    seen = " (training images included)" if data is not None else ""
    say(
        f"   against the archive's truth{seen}: plate accuracy {figures['plate_accuracy']:.3f}, "
        f"character accuracy {figures['char_accuracy']:.3f}"
    )

    say(f"4. tickets for the night of {NIGHT} (UTC) from {events}")
    tickets_dir = workdir / "tickets"
    reader = image_reader(lambda: recognizer, ClusterOptions(workers=workers))
    night = run_tickets(
        Night.parse(NIGHT), str(events), str(reads_dir), str(tickets_dir), reader, Rules(), say
    )
    say(
        f"   {night['in_night']} events that night, {night['speeding']} speeding: "
        f"{night['citations']} citations, {night['review']} to review "
        f"({', '.join(f'{n} {r}' for r, n in night['review_by_reason'].items() if n)}), "
        f"{night['duplicates']} duplicates, {night['rejected_rows']} rejected rows"
    )

    say(f"done in {time.perf_counter() - start:.0f} s. Look at:")
    say(f"   archive     {archive_dir}  (truth: {workdir / 'archive_truth.csv'})")
    say(f"   reads       {reads_dir}  (Parquet, partitioned by capture_date)")
    say(f"               python -c \"import pandas; print(pandas.read_parquet('{reads_dir}'))\"")
    sql = f"select status, count(*) from read_parquet('{reads_dir}/*/*.parquet') group by 1"
    say(f'               python -c "import duckdb; print(duckdb.sql(\\"{sql}\\"))"')
    say(f"   tickets     {tickets_dir}  (citations/, review/, duplicates/, rejected/, crops/)")
    say(f"   review page {night['outputs']['page']}  (open it in a browser, offline)")
    say(f"   MLflow UI   mlflow ui --backend-store-uri {store}")
    return {
        "model_uri": result.model_uri,
        "reprocess": summary,
        "accuracy": figures,
        "reads": str(reads_dir),
        "tickets": night,
    }
