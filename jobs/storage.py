"""Storage for the jobs: listing and fetching images at any fsspec URL, decoding them with
clear reasons for what cannot be read, and writing files whole or not at all.

Object keys are data, never patterns: every fetch, existence check, write and delete here
names one object literally, so ``IMG[0001].jpg`` or ``a*b?.jpg`` is that file and nothing else
(fsspec's ``cat``, ``rm``, ``mv`` and ``glob`` expand ``[``, ``*``, ``?`` and ``{``; they are not
used on keys). The one guarded decode (``decode_image``) reads an image's header first, so a
decompression bomb or an oversize file is refused before its pixels are allocated.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
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

from anpr_core.errors import AnprError, ImageError
from anpr_core.pipeline import MAX_PIXELS

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # refuse larger files rather than exhaust a worker's memory
IMAGE_FORMATS = "JPEG, PNG, WebP, TIFF, BMP, GIF, PNM"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def too_large_file(size: int | None = None) -> ImageError:
    """The error of a file over MAX_IMAGE_BYTES (its size when known)."""
    limit = f"the {MAX_IMAGE_BYTES >> 20} MB file limit"
    what = f"{size} bytes over" if size else "over"
    return ImageError(f"too_large: {what} {limit}")


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a local image file; ImageError when it cannot be read or is over
    MAX_IMAGE_BYTES (checked before reading)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise too_large_file(size)
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"missing: no such file {path}") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"not_a_file: {path} is a directory") from exc
    except OSError as exc:
        raise ImageError(f"unreadable: {path}: {exc.strerror or exc}") from exc


# --- The guarded decode ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding its pixels."""

    width: int
    height: int
    exif_time: datetime | None  # DateTimeOriginal, UTC-aware (naive EXIF times taken as UTC)


def check_image(data: bytes, max_pixels: int = MAX_PIXELS) -> ImageHeader:
    """The header of the image in ``data``, after every check that can be made before its
    pixels are decoded; ImageError with a one-line reason (``empty``, ``too_large``,
    ``unsupported``, ``truncated``, ``decode``) for anything that must not be decoded."""
    if not data:
        raise ImageError("empty: the file has no bytes")
    if len(data) > MAX_IMAGE_BYTES:
        raise too_large_file(len(data))
    header = image_header(data)
    if header.width == 0 or header.height == 0:
        raise ImageError(f"empty: the image is {header.width}x{header.height} px")
    if header.width * header.height > max_pixels:
        raise ImageError(
            f"too_large: {header.width}x{header.height} px over {max_pixels // 1_000_000} MP "
            "limit (refused before decoding)"
        )
    if data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise ImageError("truncated: the JPEG ends before its end-of-image marker")
    return header


def decode_image(
    data: bytes, flags: int = cv2.IMREAD_COLOR, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """The image encoded in ``data`` (BGR, or grey with IMREAD_GRAYSCALE), decoded only after
    ``check_image`` passed; ImageError with a reason for anything else."""
    check_image(data, max_pixels)
    return pixels(data, flags)


def pixels(data: bytes, flags: int) -> np.ndarray:
    """The decoded pixels of checked image bytes; ImageError when OpenCV cannot decode them."""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise ImageError("decode: the image data is corrupt (OpenCV could not decode it)") from exc
    if image is None or image.size == 0:
        raise ImageError("decode: the image data is corrupt (OpenCV could not decode it)")
    return image


def load_image(source: str | Path | bytes) -> np.ndarray:
    """The BGR uint8 image at a path, or encoded in bytes; ImageError on anything else."""
    data = source if isinstance(source, bytes | bytearray | memoryview) else read_bytes(source)
    return decode_image(bytes(data), cv2.IMREAD_COLOR)


def load_gray(source: str | Path | bytes) -> np.ndarray:
    """The 8-bit grey image at a path, or encoded in bytes; ImageError on anything else."""
    data = source if isinstance(source, bytes | bytearray | memoryview) else read_bytes(source)
    return decode_image(bytes(data), cv2.IMREAD_GRAYSCALE)


@dataclass(frozen=True, eq=False)
class ArchiveImage:
    """An archived camera image, decoded for the pipeline, with what its header says."""

    gray: np.ndarray  # uint8, upright (EXIF orientation applied)
    width: int  # of the upright image
    height: int
    exif_time: datetime | None  # DateTimeOriginal, UTC-aware (naive EXIF times taken as UTC)


def decode_archive_image(data: bytes, max_pixels: int = MAX_PIXELS) -> ArchiveImage:
    """The grey, upright image in ``data``; ImageError with a reason for anything else.

    A JPEG without its end marker is refused as truncated rather than read with a grey lower
    half. Grey, 16-bit, alpha and EXIF-rotated images are read, not refused.
    """
    header = check_image(data, max_pixels)
    gray = pixels(data, cv2.IMREAD_GRAYSCALE)
    return ArchiveImage(gray, gray.shape[1], gray.shape[0], header.exif_time)


def image_header(data: bytes) -> ImageHeader:
    """The header of the image in ``data``, read by Pillow without decoding its pixels;
    ImageError when no reader knows the format (a file no header check can guard is not
    decoded: that is where decompression bombs hide)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            return ImageHeader(width, height, exif_datetime(image))
    except Image.DecompressionBombError:
        width, height = size_past_pillow_limit(data)
        return ImageHeader(width, height, None)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            if not width or not height:  # Pillow refuses these; libpng would print warnings
                return ImageHeader(width, height, None)
        precision = jpeg_precision(data)
        if precision not in (None, 8):
            raise ImageError(
                f"unsupported: {precision}-bit JPEG precision (anpr reads 8-bit JPEG)"
            ) from exc
        raise ImageError(f"decode: not an image anpr reads ({IMAGE_FORMATS}), or corrupt") from exc


def size_past_pillow_limit(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of an image Pillow refuses to open as a decompression bomb, read by
    its format plugin directly (the plugins read the header only)."""
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        if accept is not None and not accept(data[:16]):
            continue
        try:
            return factory(io.BytesIO(data)).size
        except Exception:  # noqa: BLE001, S112 - not this format: try the next plugin
            continue
    return (1 << 30, 1 << 30)  # over every limit, whatever the format


def jpeg_precision(data: bytes) -> int | None:
    """The sample precision (bits) of a JPEG's frame header, or None when ``data`` is not a
    JPEG with one (the markers are walked, not searched, so entropy data cannot fool it)."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[at + 4] if at + 4 < len(data) else None
        if marker == 0xDA:
            return None
        at += 2 + length
    return None


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


def normalize_key(key: str) -> str:
    """The one form an image key is compared in: ``scheme://bucket/key`` with no duplicate
    slashes, or, for a local file (a plain, relative or ``file://`` path), its absolute
    normalized path. Characters are kept as they are (no glob, no percent decoding)."""
    key = key.strip()
    scheme, sep, rest = key.partition("://")
    if sep and scheme not in ("file", "local"):
        return f"{scheme}://{re.sub('/{2,}', '/', rest)}"
    path = re.sub("/{2,}", "/", rest if sep else key)
    return os.path.normpath(os.path.join(os.getcwd(), path))


def hidden(relative: str) -> bool:
    """Whether a path relative to a listing root has a hidden part (``.name``)."""
    return any(part.startswith(".") for part in relative.split("/"))


def list_objects(url: str, storage_options: dict | None = None) -> tuple[object, dict, str]:
    """``(filesystem, {path: info}, root)`` of what ``url`` names: a file is itself, a folder or
    prefix every object under it, and only a URL that names nothing literally and holds
    ``*``, ``?`` or ``[`` is a glob. FileNotFoundError when nothing is there."""
    fs, path = open_url(url, storage_options)
    if fs.isfile(path):
        return fs, {path: fs.info(path)}, path.rsplit("/", 1)[0]
    if fs.isdir(path):
        return fs, fs.find(path, detail=True), path.rstrip("/")
    if GLOB_CHARS.search(path):
        found = fs.glob(path, detail=True)
        if found:
            return fs, found, path[: GLOB_CHARS.search(path).start()].rsplit("/", 1)[0]
    raise FileNotFoundError(f"nothing at {url}: no such folder, prefix or file")


def list_images(url: str, storage_options: dict | None = None) -> list[tuple[str, int | None]]:
    """Every object at ``url`` (``list_objects``) as sorted ``(path, size)`` pairs, whatever
    its extension (hidden names aside). FileNotFoundError when nothing is there."""
    try:
        fs, found, root = list_objects(url, storage_options)
    except FileNotFoundError:
        raise FileNotFoundError(f"no images at {url}: no such folder, prefix or file") from None
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
            paths.append(input_fs._strip_protocol(normalize_key(key)))
        elif is_local(input_fs) and os.path.isabs(key):
            paths.append(normalize_key(key))
        else:
            paths.append(f"{root}/{key.lstrip('/')}")
    return [(p, None) for p in sorted(set(paths))]


def fetch_all(
    fs,
    paths: list[str],
    attempts: int = FETCH_ATTEMPTS,
    max_bytes: int = MAX_IMAGE_BYTES,
    sizes: dict[str, int | None] | None = None,
) -> dict[str, bytes | Exception]:
    """The bytes of each path, or the error that kept it from being read, fetched in one batch
    (concurrently on object storage); each path is one object, named literally, and no failure
    raises. An object whose size ``sizes`` does not give (a manifest's keys) is read up to
    ``max_bytes`` + 1 bytes only, so an oversize one costs no more memory than the limit.
    Failures other than a missing object are retried with a short backoff."""
    sizes = sizes or {}
    results: dict[str, bytes | Exception] = {}
    pending = list(paths)
    for attempt in range(attempts):
        if not pending:
            break
        if attempt:
            time.sleep(0.2 * 2**attempt)
        ends = [None if sizes.get(p) is not None else max_bytes + 1 for p in pending]
        try:
            got = fs.cat_ranges(pending, None, ends, on_error="return")
        except Exception as exc:  # noqa: BLE001 - a failed batch is an error per path
            got = [exc] * len(pending)
        results.update(zip(pending, map(empty_if_unsatisfiable, got), strict=True))
        pending = [p for p in pending if transient(results[p])]
    return {p: checked_size(results.get(p, OSError("not returned")), max_bytes) for p in paths}


def empty_if_unsatisfiable(result: bytes | Exception) -> bytes | Exception:
    """A ranged fetch's result, with S3's "range not satisfiable" as the empty object it
    means: a range that starts at byte 0 is unsatisfiable only for an object of no bytes."""
    if isinstance(result, OSError) and "range is not satisfiable" in str(result).lower():
        return b""
    return result


def checked_size(result: bytes | Exception, max_bytes: int) -> bytes | Exception:
    """A fetch result, with bytes over ``max_bytes`` turned into the too_large error."""
    if isinstance(result, bytes | bytearray) and len(result) > max_bytes:
        return too_large_file()
    return result


def fetch_one(key: str, storage_options: dict | None = None) -> bytes:
    """The bytes of the object or file at ``key`` (a URL or path, named literally);
    ImageError with a one-line reason when it cannot be fetched or is over the size limit."""
    try:
        fs, path = open_url(key, storage_options)
    except (OSError, ValueError, ImportError) as exc:
        raise ImageError(f"unreadable: {key}: {first_line(exc)}") from exc
    data = fetch_all(fs, [path])[path]
    if isinstance(data, Exception):
        raise fetch_error(data)
    return bytes(data)


def transient(result) -> bool:
    """Whether a fetch result is a failure worth retrying (not bytes, not a missing object)."""
    return isinstance(result, Exception) and not isinstance(
        result, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError
    )


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, else its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def fetch_error(exc: Exception) -> ImageError:
    """The ImageError of a failed fetch, with a one-line reason (no credentials, no stack)."""
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return ImageError("missing: no such object")
    if isinstance(exc, IsADirectoryError):
        return ImageError("not_a_file: the key is a folder")
    if isinstance(exc, PermissionError):
        return ImageError("forbidden: access denied")
    message = first_line(exc) if str(exc).strip() else ""
    return ImageError(f"unreadable: {type(exc).__name__} {message}"[:300].strip())


# --- What an image's header says ------------------------------------------------------------


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
STATUSES = ("ok", "no_plate", "error")
PARTITION_COLUMN = "capture_date"
NULL_PARTITION = "1970-01-01"


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
            # the confidence a ticket needs with this version (null: a version without a
            # calibrator, for which the ticket rule's default applies)
            ("citation_threshold", pa.float32()),
            ("run_id", pa.string()),
            ("processed_at", utc),
            ("elapsed_ms", pa.float32()),
        ]
    )


READS_SCHEMA = _reads_schema()
