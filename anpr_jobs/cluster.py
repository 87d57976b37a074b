"""Reading images on a Dask cluster: the client, the per-worker model, the rows of READS_SCHEMA.

``anpr reprocess`` and ``anpr tickets`` both read images here: ``read_images`` turns image keys
into plate-reads rows on the cluster the options name (a scheduler, else a LocalCluster),
``read_images_here`` in this process. Each worker holds one copy of a model version, put
there once by ``RecognizerPlugin``; a task carries keys, never the model.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from distributed import WorkerPlugin

from anpr_core.errors import AnprError, ImageError
from anpr_core.pipeline import recognize
from anpr_jobs.capture import Capture, capture_of, compile_key_pattern
from anpr_jobs.models import Recognizer
from anpr_jobs.storage import (
    MAX_IMAGE_BYTES,
    READS_SCHEMA,
    decode_archive_image,
    fetch_all,
    fetch_error,
    full_url,
    open_url,
    too_large_file,
)
from anpr_jobs.threads import (
    WORKER_ENVIRON,
    blas_threads,
    single_threaded_process,
    steady_allocator,
)

DEFAULT_PARTITION_SIZE = 200
FETCH_BATCH = 16  # images held in memory at once per task: bounds a worker's peak memory

# The per-worker model cache: the one piece of module state, filled once per worker process by
# RecognizerPlugin.setup and read by every task on that worker.
WORKER_RECOGNIZERS: dict[str, Recognizer] = {}

ReadImages = Callable[[list[str]], pa.Table]  # image keys -> their READS_SCHEMA rows


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how images are read: a scheduler address (None: ``DASK_SCHEDULER_ADDRESS``,
    else a LocalCluster of ``workers`` processes), fsspec options, images per task."""

    scheduler: str | None = None
    workers: int | None = None
    storage_options: dict = field(default_factory=dict)
    partition_size: int = DEFAULT_PARTITION_SIZE
    key_pattern: str | None = None


# --- The client ----------------------------------------------------------------------------


def dask_client(options: ClusterOptions):
    """A Dask client (a context manager): the options' scheduler, else
    ``DASK_SCHEDULER_ADDRESS``, else a LocalCluster of single-threaded worker processes."""
    address = options.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    return cluster_client(address, options.workers)


@contextmanager
def cluster_client(scheduler: str | None, workers: int | None = None) -> Iterator:
    """A Dask client on ``scheduler``, else on a LocalCluster of ``workers`` single-threaded
    worker processes (one per core by default); AnprError when the scheduler does not answer."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except OSError as exc:
            raise AnprError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}),
        LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def describe_cluster(client) -> str:
    """E.g. ``2 workers, 2 threads``."""
    workers = client.scheduler_info().get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads at {client.scheduler.address}"


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far, in MiB (run on each worker)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- The model on the workers ----------------------------------------------------------------


def model_key(recognizer: Recognizer) -> str:
    """The WORKER_RECOGNIZERS key of a model version."""
    return hashlib.sha256(recognizer.uri.encode()).hexdigest()[:12]


def worker_recognizer(key: str) -> Recognizer:
    """The model version ``key`` that RecognizerPlugin put on this worker."""
    recognizer = WORKER_RECOGNIZERS.get(key)
    if recognizer is None:
        raise RuntimeError(f"model {key} was not loaded on this worker")
    return recognizer


class RecognizerPlugin(WorkerPlugin):
    """Puts one model version in WORKER_RECOGNIZERS on every worker, once per worker process
    (again on a worker restarted after a crash), with BLAS and OpenCV on one thread and an
    allocator that keeps image-sized blocks."""

    def __init__(self, recognizer: Recognizer, key: str):
        super().__init__()
        self.recognizer = recognizer
        self.key = key
        self.name = f"anpr-recognizer-{key}"

    def setup(self, worker=None):
        single_threaded_process()
        steady_allocator()
        WORKER_RECOGNIZERS[self.key] = self.recognizer

    def teardown(self, worker=None):
        WORKER_RECOGNIZERS.pop(self.key, None)


# --- Rows of images --------------------------------------------------------------------------


def new_run_id() -> str:
    """A sortable, unique run id: UTC time and a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def process_image(
    key: str, data: bytes | Exception, recognizer: Recognizer, pattern, run_id: str
) -> dict:
    """The plate-reads row of one archived image: ``ok``, ``no_plate`` or ``error`` with a
    reason. Never raises: whatever is wrong with one image stays in its row."""
    start = time.perf_counter()
    exif_time, width, height, plates = None, None, None, []
    status, error = "ok", None
    try:
        if isinstance(data, Exception):
            raise fetch_error(data)
        image = decode_archive_image(data)
        exif_time, width, height = image.exif_time, image.width, image.height
        plates = recognize(image.gray, recognizer.model, recognizer.region, recognizer.settings)
        status = "ok" if plates else "no_plate"
    except ImageError as exc:
        status, error = "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - a pipeline bug on one image must not stop the job
        status, error = "error", f"internal: {type(exc).__name__}: {exc}"[:500]
    capture = capture_of(key, pattern, exif_time)
    return reads_row(
        key, capture, status, error, plates, (width, height), recognizer, run_id, start
    )


def reads_row(key, capture: Capture, status, error, plates, size, recognizer, run_id, start):
    """A row of READS_SCHEMA as a dict."""
    best = plates[0] if plates else None
    box = best.box if best else (None, None, None, None)
    return {
        "image_key": key,
        "camera_id": capture.camera_id,
        "captured_at": capture.captured_at,
        "status": status,
        "error": error,
        "plate": best.text if best else None,
        "confidence": best.confidence if best else None,
        "detection_score": best.detection_score if best else None,
        "box_x": box[0],
        "box_y": box[1],
        "box_w": box[2],
        "box_h": box[3],
        "plates": [plate_struct(p) for p in plates],
        "image_width": size[0],
        "image_height": size[1],
        "region": recognizer.region.name,
        "model_name": recognizer.model_name,
        "model_version": recognizer.model_version,
        "pipeline_version": recognizer.pipeline_version,
        "citation_threshold": recognizer.citation_threshold,
        "run_id": run_id,
        "processed_at": datetime.now(UTC),
        "elapsed_ms": (time.perf_counter() - start) * 1000,
    }


def plate_struct(plate) -> dict:
    """A PlateRead as the ``plates`` list element of READS_SCHEMA."""
    x, y, w, h = plate.box
    return {
        "text": plate.text,
        "confidence": plate.confidence,
        "detection_score": plate.detection_score,
        "box_x": x,
        "box_y": y,
        "box_w": w,
        "box_h": h,
        "quad": [{"x": px, "y": py} for px, py in plate.quad],
        "char_confidences": list(plate.char_confidences),
        "alternatives": [{"text": t, "confidence": c} for t, c in plate.alternatives],
        "pattern": plate.pattern,
    }


def read_batch(
    items, recognizer: Recognizer, input_fs, key_pattern: str | None, run_id: str
) -> list[dict]:
    """The READS_SCHEMA rows of ``items`` (``(path, size or None)`` on ``input_fs``), fetched
    FETCH_BATCH at a time so that a task holds few images in memory."""
    pattern = compile_key_pattern(key_pattern)
    rows = []
    for start in range(0, len(items), FETCH_BATCH):
        batch = items[start : start + FETCH_BATCH]
        sizes = {path: size for path, size in batch if size is None or size <= MAX_IMAGE_BYTES}
        fetched = fetch_all(input_fs, list(sizes), sizes=sizes)
        for path, size in batch:
            data = fetched[path] if path in fetched else too_large_file(size)
            key = full_url(input_fs, path)
            rows.append(process_image(key, data, recognizer, pattern, run_id))
    return rows


def rows_for_keys(
    keys: list[str], recognizer: Recognizer, options: ClusterOptions, run_id: str
) -> list[dict]:
    """The READS_SCHEMA rows of images named by full URL (local paths and object URLs may be
    mixed: each kind of storage is read with its own filesystem)."""
    by_scheme: dict[str, list[str]] = {}
    for key in keys:
        by_scheme.setdefault(key.partition("://")[0] if "://" in key else "", []).append(key)
    rows = []
    for same in by_scheme.values():
        input_fs, _ = open_url(same[0], options.storage_options)
        items = [(input_fs._strip_protocol(key), None) for key in same]
        rows.extend(read_batch(items, recognizer, input_fs, options.key_pattern, run_id))
    return rows


def rows_on_worker(keys, recognizer_key: str, options: ClusterOptions, run_id: str) -> list[dict]:
    """The rows of some images, read with this worker's cached model (no files written)."""
    recognizer = worker_recognizer(recognizer_key)
    return rows_for_keys(list(keys), recognizer, options, run_id)


def read_images(keys: list[str], recognizer: Recognizer, options: ClusterOptions) -> pa.Table:
    """The READS_SCHEMA rows of the images at ``keys`` (full URLs), read on the cluster that
    ``options`` names; for jobs that need a few reads now."""
    import dask.bag as db

    rows: list[dict] = []
    if keys:
        key, run_id = model_key(recognizer), new_run_id()
        with dask_client(options) as client:
            client.register_plugin(RecognizerPlugin(recognizer, key))
            bag = db.from_sequence(list(keys), partition_size=options.partition_size)
            work = bag.map_partitions(rows_on_worker, key, options, run_id)
            rows = client.compute(work).result()
    return pa.Table.from_pylist(rows, schema=READS_SCHEMA)


def read_images_here(keys: list[str], recognizer: Recognizer) -> pa.Table:
    """The READS_SCHEMA rows of the images at ``keys``, read in this process one after
    another (the same rows as on a cluster)."""
    with blas_threads(1):
        rows = rows_for_keys(list(keys), recognizer, ClusterOptions(), new_run_id())
    return pa.Table.from_pylist(rows, schema=READS_SCHEMA)


def image_reader(
    load_recognizer: Callable[[], Recognizer], options: ClusterOptions | None = None
) -> ReadImages:
    """A ReadImages on the cluster of ``options`` (None: in this process). The model is
    loaded at the first call, so a job whose images all have reads never loads one."""
    loaded: list[Recognizer] = []

    def read(keys: list[str]) -> pa.Table:
        if not loaded:
            loaded.append(load_recognizer())
        if options is None:
            return read_images_here(keys, loaded[0])
        return read_images(keys, loaded[0], options)

    return read
