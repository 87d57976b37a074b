"""Process settings for reading plates one image at a time: BLAS and OpenCV threads, and an
allocator that keeps image-sized blocks. Used in this process (evaluation, training) and by
the Dask worker plugin (``cluster.RecognizerPlugin``)."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

# The environment of local worker processes: Dask's default minus MALLOC_TRIM_THRESHOLD_=65536
# (see steady_allocator, which the reprocess worker plugin also applies on any cluster).
WORKER_ENVIRON = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}


def blas_threads(limit: int | None = 1):
    """A context manager limiting BLAS/OpenMP threads to ``limit`` (None: no limit).

    The classifier scores a handful of characters per call; on such small matrices a
    multi-threaded BLAS spends more time waking threads than computing (on 2 cores here,
    classify took 22 ms per scene with the default threads and 1 ms with one), and its idle
    spinning slows OpenCV beside it. Parallelism belongs across images (Dask), not inside one.
    """
    return threadpool_limits(limits=limit)


def single_threaded_process() -> None:
    """Nothing; limits BLAS and OpenCV to one thread for the rest of this process.

    For Dask workers with one thread each: the cluster runs one image per core, so threads
    inside a call only compete with the neighbouring worker.
    """
    import cv2

    threadpool_limits(limits=1)
    cv2.setNumThreads(1)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def steady_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Whether glibc's allocator was told to keep image-sized blocks (True on glibc only).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes the
    mmap threshold at 128 KiB: every decoded image and intermediate array is then mapped and
    unmapped afresh. Measured here: one partition took 5.0-5.7 s in such a worker, 3.0-3.3 s
    in a plain process or after this call. A worker plugin calls it, so it holds on any
    cluster, whatever the workers' environment.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(
            libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
            and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
        )
    except (OSError, AttributeError):
        return False
