"""Writing files whole or not at all (a rename on disk, one PUT on object storage), deleting
objects by their literal names, and checking that an output can be written before any work."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from anpr_core.errors import AnprError
from anpr_jobs.storage.urls import first_line, is_local, open_url

# --- Writing ------------------------------------------------------------------------------


def write_bytes_atomic(fs, path: str, data: bytes) -> None:
    """Nothing; ``data`` appears at ``path`` whole or not at all.

    On a local disk it is written under a hidden temporary name in the same folder and renamed
    into place; on object storage it is one PUT (``pipe_file``), which is all-or-nothing. Never
    a copy and a delete (fsspec's ``mv`` on S3), and the path is taken literally.
    """
    parent = path.rsplit("/", 1)[0]
    if not is_local(fs):
        fs.pipe_file(path, bytes(data))
        return
    os.makedirs(parent, exist_ok=True)
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[1]}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of a zstd-compressed Parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_parquet_atomic(table: pa.Table, fs, path: str) -> None:
    """Nothing; writes ``table`` to ``path`` as Parquet, whole or not at all."""
    write_bytes_atomic(fs, path, parquet_bytes(table))


def write_text_atomic(text: str, fs, path: str) -> None:
    """Nothing; writes ``text`` (UTF-8) to ``path``, whole or not at all."""
    write_bytes_atomic(fs, path, text.encode("utf-8"))


def remove_all(fs, paths: Iterable[str]) -> None:
    """Nothing; deletes each of ``paths`` (files, named literally) that exists."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(path)


def remove_tree(fs, folder: str) -> None:
    """Nothing; deletes every file under ``folder`` (named literally), then the folder."""
    if not fs.isdir(folder):
        return
    remove_all(fs, fs.find(folder))
    if is_local(fs):
        for parent, _, _ in sorted(os.walk(folder), key=lambda w: -len(w[0])):
            os.rmdir(parent)


def check_writable(url: str, storage_options: dict | None = None) -> None:
    """Nothing, once a probe object was written under ``url`` and deleted; AnprError naming
    the output and the reason when it cannot be written (a file, no permission, no bucket),
    so a job finds out before any work, not after reading every image."""
    fs, root = open_url(url, storage_options)
    root = root.rstrip("/")
    if fs.isfile(root):
        raise AnprError(f"output {url} is a file, not a folder: give a folder or prefix")
    probe = f"{root}/_probe-{uuid.uuid4().hex}"
    try:
        write_bytes_atomic(fs, probe, b"")
        remove_all(fs, [probe])
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise AnprError(f"cannot write to output {url}: {reason}") from None


# The plate-reads dataset (DESIGN.md, "Outputs"): one row per input image, declared once here.
# Written partitioned by ``capture_date`` (Hive style, ``capture_date=YYYY-MM-DD/``), so that
# column lives in the folder names only. An image with no capture time (``captured_at`` null)
# goes under the epoch, ``capture_date=1970-01-01``, so the column is a DATE in every reader:
# a word like ``unknown`` turns DuckDB's DATE into VARCHAR the day it first appears, and Hive's
# ``__HIVE_DEFAULT_PARTITION__`` cannot be read by pandas beside dated partitions, nor by
# pyarrow alone ("couldn't infer type"). A camera whose clock was reset lands there too.
