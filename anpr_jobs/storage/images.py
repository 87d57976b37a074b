"""Images the jobs open: one guarded decode. The header is read first, so a decompression bomb,
an oversize file or a format nobody can decode is refused with its reason before any pixel
is allocated; what a header says of the capture (EXIF time) is read here too."""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.ExifTags import IFD

from anpr_core.errors import ImageError
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


def crop_around(image: np.ndarray, box, margin: float) -> np.ndarray | None:
    """The part of ``image`` in ``box`` (x, y, w, h) grown by ``margin`` of its size on each
    side, clipped to the image; None when nothing of the box is in the image."""
    x, y, w, h = box
    mx, my = round(w * margin), round(h * margin)
    height, width = image.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(width, x + w + mx), min(height, y + h + my)
    if w <= 0 or h <= 0 or x1 <= x0 or y1 <= y0:
        return None
    return image[y0:y1, x0:x1]
