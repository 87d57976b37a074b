"""Images per second of ``anpr reprocess``: a plain loop in one process, the job on one worker
and on two (one thread each), and the peak memory of a worker.

    python benchmarks/reprocess_scaling.py [--images N] [--model URI] [--json]

Synthesizes N archive images (default 500) in a temporary folder. ``--partition-size`` is
the most images per task; the job cuts a short run finer (``reprocess.partition_size_for``).
Without ``--model`` it first trains a model on synthetic plates in a temporary MLflow store.
The loop runs the job's own partition function in this process (read, recognize, write
Parquet), so the three figures differ only in the Dask around them. Cluster start-up is
excluded from the job's figures.
Targets: ``overhead`` (1 - one_worker_ips / loop_ips) <= 0.15, ``speedup`` (two_worker_ips /
one_worker_ips) >= 1.7, ``peak_worker_mib`` flat as N grows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from anpr_core.config import load_region
from anpr_jobs.cluster import DEFAULT_PARTITION_SIZE
from anpr_jobs.models import load_recognizer
from anpr_jobs.reprocess import (
    ReprocessOptions,
    TaskContext,
    list_inputs,
    process_partition,
    reprocess,
)
from anpr_jobs.storage import open_url
from anpr_jobs.synthdata import write_archive, write_crops, write_scenes
from anpr_jobs.threads import single_threaded_process


def train_synthetic_model(workdir: Path) -> str:
    """The URI of a model trained on synthetic plates in a store under ``workdir``."""
    from anpr_jobs.train import train

    region = load_region("us")
    write_scenes(workdir / "scenes", 60, 1, region)
    write_crops(workdir / "crops", 120, 2, region)
    result = train([workdir / "scenes", workdir / "crops"], region, tracking=tracking(workdir))
    return result.model_uri


def tracking(workdir: Path) -> str:
    """The SQLite tracking URI of the benchmark's own store."""
    return f"sqlite:///{workdir / 'mlflow.db'}"


def loop_ips(options: ReprocessOptions, recognizer, partition_size: int) -> float:
    """Images per second of the job's partition function called in a loop, in this process."""
    items = list_inputs(options)
    input_fs, _ = open_url(options.input_url)
    ctx = TaskContext(options.output_url, {}, None, "loop", "loop")
    single_threaded_process()  # as on a worker
    start = time.perf_counter()
    for first in range(0, len(items), partition_size):
        process_partition(items[first : first + partition_size], recognizer, ctx, input_fs)
    return len(items) / (time.perf_counter() - start)


def job(options: ReprocessOptions, recognizer, workers: int):
    """The run summary of the job on a local cluster of ``workers`` single-threaded workers."""
    run = ReprocessOptions(**{**options.__dict__, "workers": workers, "resume": False})
    return reprocess(run, recognizer, say=lambda _: None, progress=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--model", help="model URI (default: train one on synthetic plates)")
    parser.add_argument("--region", default="us")
    parser.add_argument("--partition-size", type=int, default=DEFAULT_PARTITION_SIZE // 4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="anpr-bench-") as tmp:
        workdir = Path(tmp)
        if args.model:
            recognizer = load_recognizer(args.model, args.region)
        else:
            uri = train_synthetic_model(workdir)
            recognizer = load_recognizer(uri, "us", tracking=tracking(workdir))
        write_archive(workdir / "archive", args.images, 42, recognizer.region, days=3)
        options = ReprocessOptions(
            str(workdir / "archive"),
            str(workdir / "reads"),
            partition_size=args.partition_size,
            storage_options={},
        )
        loop = loop_ips(
            ReprocessOptions(**{**options.__dict__, "output_url": str(workdir / "loop")}),
            recognizer,
            args.partition_size,
        )
        one = job(options, recognizer, 1)
        two = job(options, recognizer, 2)
    figures = {
        "n_images": args.images,
        "partition_size": args.partition_size,
        "cores": os.cpu_count(),
        "loop_ips": round(loop, 2),
        "one_worker_ips": one.images_per_s,
        "two_worker_ips": two.images_per_s,
        "overhead": round(1 - one.images_per_s / loop, 3),
        "speedup": round(two.images_per_s / one.images_per_s, 3),
        "peak_worker_mib": max(one.peak_worker_rss_mib or 0, two.peak_worker_rss_mib or 0),
        "model": recognizer.uri,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:<16} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
