"""Storage for the jobs: listing and fetching images at any fsspec URL, decoding them with
clear reasons for what cannot be read, and writing Parquet files whole or not at all."""

from __future__ import annotations

import io
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem
from PIL import Image, UnidentifiedImageError
from PIL.ExifTags import IFD

from anpr_core.errors import ImageError
from anpr_core.pipeline import MAX_PIXELS

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # refuse larger files rather than exhaust a worker's memory


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a local image file; ImageError when it cannot be read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ImageError(f"too_large: {size} bytes over {MAX_IMAGE_BYTES // 2**20} MB limit")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"missing: no such file {path}") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"not_a_file: {path} is a directory") from exc
    except OSError as exc:
        raise ImageError(f"unreadable: {path}: {exc.strerror or exc}") from exc


def decode_image(data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """The image encoded in ``data`` (BGR, or grey with IMREAD_GRAYSCALE); ImageError if none."""
    if not data:
        raise ImageError("empty: the file has no bytes")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise ImageError(f"decode: {str(exc).strip().splitlines()[-1]}") from exc
    if image is None or image.size == 0:
        raise ImageError("decode: not a JPEG, PNG or other image OpenCV can read (corrupt?)")
    return image


def load_image(source: str | Path | bytes) -> np.ndarray:
    """The BGR uint8 image at a path, or encoded in bytes; ImageError on anything else."""
    data = source if isinstance(source, bytes | bytearray | memoryview) else read_bytes(source)
    return decode_image(bytes(data), cv2.IMREAD_COLOR)


def load_gray(source: str | Path | bytes) -> np.ndarray:
    """The 8-bit grey image at a path, or encoded in bytes; ImageError on anything else."""
    data = source if isinstance(source, bytes | bytearray | memoryview) else read_bytes(source)
    return decode_image(bytes(data), cv2.IMREAD_GRAYSCALE)


# --- Archives at fsspec URLs --------------------------------------------------------------

GLOB_CHARS = re.compile(r"[*?\[]")
FETCH_ATTEMPTS = 3  # a transient read failure is retried this many times in all


def open_url(url: str, storage_options: dict | None = None):
    """``(filesystem, path)`` for an fsspec URL or local path; storage options pass through.

    A fresh filesystem each time: fsspec's shared instances are keyed by the options alone, so
    one made earlier under another endpoint or credentials in the environment (or with a
    stale listing) would be reused silently.
    """
    return fsspec.core.url_to_fs(url, skip_instance_cache=True, **(storage_options or {}))


def is_local(fs) -> bool:
    """Whether ``fs`` is the local disk (where a rename makes a write atomic)."""
    return isinstance(fs, LocalFileSystem)


def full_url(fs, path: str) -> str:
    """The key a row names an object by: ``s3://bucket/key``, or an absolute local path."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def hidden(relative: str) -> bool:
    """Whether a path relative to a listing root has a hidden part (``.name``)."""
    return any(part.startswith(".") for part in relative.split("/"))


def list_images(url: str, storage_options: dict | None = None) -> list[tuple[str, int | None]]:
    """Every object at ``url`` as sorted ``(path, size)`` pairs: a folder or prefix means every
    object under it whatever its extension (hidden names aside), a glob narrows it, a file is
    itself. FileNotFoundError when nothing is there."""
    fs, path = open_url(url, storage_options)
    if GLOB_CHARS.search(path):
        found = fs.glob(path, detail=True)
        root = path[: GLOB_CHARS.search(path).start()].rsplit("/", 1)[0]
    elif fs.isdir(path):
        found = fs.find(path, detail=True)
        root = path.rstrip("/")
    elif fs.isfile(path):
        found = {path: fs.info(path)}
        root = path.rsplit("/", 1)[0]
    else:
        raise FileNotFoundError(f"no images at {url}: no such folder, prefix or file")
    objects = [
        (name, info.get("size"))
        for name, info in found.items()
        if info.get("type") != "directory" and not hidden(name[len(root) :].lstrip("/"))
    ]
    return sorted(objects)


def read_manifest(manifest_url: str, input_url: str, storage_options: dict | None = None):
    """The ``(path, None)`` pairs a CSV or Parquet manifest lists, relative keys resolved
    against ``input_url``: the column ``image_key``, ``key`` or else the first one."""
    import pandas as pd

    fs, path = open_url(manifest_url, storage_options)
    with fs.open(path, "rb") as handle:
        if path.endswith(".parquet"):
            table = pd.read_parquet(handle)
        else:
            table = pd.read_csv(handle, dtype=str, keep_default_na=False)
    column = next((c for c in ("image_key", "key") if c in table.columns), table.columns[0])
    input_fs, root = open_url(input_url, storage_options)
    root = root.rstrip("/")
    paths = []
    for key in table[column].astype(str).str.strip():
        if not key:
            continue
        if "://" in key:
            paths.append(input_fs._strip_protocol(key))
        elif is_local(input_fs) and os.path.isabs(key):
            paths.append(key)
        else:
            paths.append(f"{root}/{key.lstrip('/')}")
    return [(p, None) for p in sorted(set(paths))]


def fetch_all(fs, paths: list[str], attempts: int = FETCH_ATTEMPTS) -> dict[str, bytes | Exception]:
    """The bytes of each path, or the error that kept it from being read, fetched in one batch;
    failures other than a missing object are retried with a short backoff."""
    results: dict[str, bytes | Exception] = {}
    pending = list(paths)
    for attempt in range(attempts):
        if not pending:
            break
        if attempt:
            time.sleep(0.2 * 2**attempt)
        got = fs.cat(pending, on_error="return") if pending else {}
        if len(pending) == 1 and not isinstance(got, dict):  # some versions unwrap one path
            got = {pending[0]: got}
        results.update(got)
        pending = [p for p in pending if transient(results.get(p, OSError("not returned")))]
    return {p: results.get(p, OSError("not returned")) for p in paths}


def transient(result) -> bool:
    """Whether a fetch result is a failure worth retrying (not bytes, not a missing object)."""
    return isinstance(result, Exception) and not isinstance(
        result, FileNotFoundError | IsADirectoryError | PermissionError
    )


def fetch_error(exc: Exception) -> ImageError:
    """The ImageError of a failed fetch, with a one-line reason (no credentials, no stack)."""
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ImageError("missing: the object is gone")
    if isinstance(exc, PermissionError):
        return ImageError("forbidden: access denied")
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ImageError(f"unreadable: {type(exc).__name__} {message}"[:300].strip())


# --- Decoding archive images --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ArchiveImage:
    """An archived camera image, decoded for the pipeline, with what its header says."""

    gray: np.ndarray  # uint8, upright (EXIF orientation applied)
    width: int  # of the upright image
    height: int
    exif_time: datetime | None  # DateTimeOriginal, UTC-aware (naive EXIF times taken as UTC)


def decode_archive_image(data: bytes, max_pixels: int = MAX_PIXELS) -> ArchiveImage:
    """The grey, upright image in ``data``; ImageError with a reason for anything else.

    The header is read first, so a decompression bomb is refused before it is decoded. A JPEG
    without its end marker is refused as truncated rather than read with a grey lower half.
    Grey, 16-bit, alpha and EXIF-rotated images are read, not refused.
    """
    if not data:
        raise ImageError("empty: the file has no bytes")
    width, height, exif_time = image_header(data)
    if width and height and width * height > max_pixels:
        raise ImageError(
            f"too_large: {width}x{height} px over {max_pixels // 1_000_000} MP limit "
            "(refused before decoding)"
        )
    if data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise ImageError("truncated: the JPEG ends before its end-of-image marker")
    gray = decode_image(data, cv2.IMREAD_GRAYSCALE)
    return ArchiveImage(gray, gray.shape[1], gray.shape[0], exif_time)


def image_header(data: bytes) -> tuple[int | None, int | None, datetime | None]:
    """``(width, height, exif_time)`` from an image's header without decoding its pixels;
    Nones where Pillow cannot tell (OpenCV may still read the image)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            return width, height, exif_datetime(image)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too_large: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None, None, None


def exif_datetime(image: Image.Image) -> datetime | None:
    """The EXIF DateTimeOriginal (else DateTime) of an image as a UTC datetime, or None."""
    try:
        exif = image.getexif()
        sub = exif.get_ifd(IFD.Exif)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        return None
    stamp = sub.get(36867) or exif.get(306)
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = parse_offset(sub.get(36881))
    return moment.replace(tzinfo=offset or UTC).astimezone(UTC)


def parse_offset(text) -> timezone | None:
    """The time zone of an EXIF offset string such as ``+02:00``, or None."""
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", str(text or "").strip("\x00 "))
    if not match:
        return None
    sign = 1 if match.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))


# --- Writing ------------------------------------------------------------------------------


def write_parquet_atomic(table: pa.Table, fs, path: str) -> None:
    """Nothing; writes ``table`` to ``path`` so that the file appears whole or not at all.

    On a local disk the file is written under a hidden temporary name and renamed; an object
    store's single upload is already all-or-nothing.
    """
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    if not is_local(fs):
        with fs.open(path, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        return
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[1]}"
    try:
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text_atomic(text: str, fs, path: str) -> None:
    """Nothing; writes ``text`` (UTF-8) to ``path``, whole or not at all."""
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    if not is_local(fs):
        fs.pipe_file(path, text.encode("utf-8"))
        return
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def remove_all(fs, paths: Iterable[str]) -> None:
    """Nothing; deletes each of ``paths`` that exists."""
    paths = list(paths)
    if paths:
        fs.rm(paths)


# The plate-reads dataset (DESIGN.md, "Outputs"): one row per input image, declared once here.
# Written partitioned by ``capture_date`` (Hive style, ``capture_date=YYYY-MM-DD/``; the null
# partition is ``unknown``), so that column lives in the folder names only. Not Hive's
# ``__HIVE_DEFAULT_PARTITION__``: pyarrow and pandas cannot read a dataset whose only partition
# is that one ("couldn't infer type"), as happens for a folder of images with no dates.
STATUSES = ("ok", "no_plate", "error")
PARTITION_COLUMN = "capture_date"
NULL_PARTITION = "unknown"


def _reads_schema() -> pa.Schema:
    """The schema of one plate-reads file (without the partition column)."""
    utc = pa.timestamp("us", tz="UTC")
    point = pa.struct([("x", pa.float32()), ("y", pa.float32())])
    alternative = pa.struct([("text", pa.string()), ("confidence", pa.float32())])
    plate = pa.struct(
        [
            ("text", pa.string()),
            ("confidence", pa.float32()),
            ("detection_score", pa.float32()),
            ("box_x", pa.int32()),
            ("box_y", pa.int32()),
            ("box_w", pa.int32()),
            ("box_h", pa.int32()),
            ("quad", pa.list_(point)),
            ("char_confidences", pa.list_(pa.float32())),
            ("alternatives", pa.list_(alternative)),
            ("pattern", pa.string()),  # the region pattern the text matches, or null
        ]
    )
    return pa.schema(
        [
            ("image_key", pa.string()),  # full URL of the image: s3://bucket/key or a local path
            ("camera_id", pa.string()),
            ("captured_at", utc),
            ("status", pa.string()),  # ok | no_plate | error
            ("error", pa.string()),  # why, when status is error: "decode: ...", "too_large: ..."
            ("plate", pa.string()),  # the best read's text
            ("confidence", pa.float32()),
            ("detection_score", pa.float32()),
            ("box_x", pa.int32()),
            ("box_y", pa.int32()),
            ("box_w", pa.int32()),
            ("box_h", pa.int32()),
            ("plates", pa.list_(plate)),  # every plate found, best first
            ("image_width", pa.int32()),
            ("image_height", pa.int32()),
            ("region", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("pipeline_version", pa.string()),
            ("run_id", pa.string()),
            ("processed_at", utc),
            ("elapsed_ms", pa.float32()),
        ]
    )


READS_SCHEMA = _reads_schema()
