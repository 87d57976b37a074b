"""Reading images for the jobs: bytes or a path in, a decoded OpenCV array out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from anpr_core.errors import ImageError

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


# The plate-reads dataset (DESIGN.md, "Outputs"): one row per input image, declared once here.
# Written partitioned by ``capture_date`` (Hive style, ``capture_date=YYYY-MM-DD/``; the null
# partition is ``__HIVE_DEFAULT_PARTITION__``), so that column lives in the folder names only.
STATUSES = ("ok", "no_plate", "error")
PARTITION_COLUMN = "capture_date"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


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
