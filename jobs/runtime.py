"""Process-level settings for reading plates one image at a time."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


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
