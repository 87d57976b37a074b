"""Reading images for the jobs: bytes or a path in, a decoded OpenCV array out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

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
