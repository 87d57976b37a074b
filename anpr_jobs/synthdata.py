"""Writing synthetic labeled data to disk in the two labeled formats (DESIGN.md)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from PIL.ExifTags import IFD

from anpr_core.config import RegionConfig
from anpr_core.synth import synth_crops, synth_scenes

JPEG_QUALITY = 92


def write_image(path: Path, image) -> None:
    """Nothing; writes ``image`` to ``path`` (format from the suffix) or raises OSError."""
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"cannot write {path}")


def write_scenes(out_dir: str | Path, count: int, seed: int, region: RegionConfig) -> list[Path]:
    """The image paths written: ``NAME.jpg`` + ``NAME.txt`` (one tab-separated line per plate)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, scene in synth_scenes(count, seed, region):
        image_path = out / f"{name}.jpg"
        write_image(image_path, scene.image)
        lines = [
            "\t".join([image_path.name, *(str(int(v)) for v in box), text])
            for box, text in scene.plates
        ]
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(image_path)
    return written


def write_crops(out_dir: str | Path, count: int, seed: int, region: RegionConfig) -> list[Path]:
    """The image paths written: ``images/NAME.png`` listed in ``labels.csv`` (file,state,plate)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    written = []
    rows = []
    for name, plate in synth_crops(count, seed, region):
        image_path = out / "images" / f"{name}.png"
        write_image(image_path, plate.image)
        rows.append({"file": image_path.name, "state": region.name, "plate": plate.text})
        written.append(image_path)
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "state", "plate"])
        writer.writeheader()
        writer.writerows(rows)
    return written


@dataclass(frozen=True)
class ArchivedImage:
    """One image of a synthetic camera archive and what it truly shows."""

    key: str  # relative to the archive root: <camera>/<yyyy>/<mm>/<dd>/<HHMMSS>-<n>.jpg
    camera_id: str
    captured_at: datetime  # UTC
    plate: str


def write_archive(
    out_dir: str | Path,
    count: int,
    seed: int,
    region: RegionConfig,
    cameras: Sequence[str] = ("cam01", "cam02", "cam03"),
    first_day: date = date(2026, 10, 5),
    days: int = 2,
) -> list[ArchivedImage]:
    """The images written as a camera archive, ``<camera>/<yyyy>/<mm>/<dd>/<HHMMSS>-<n>.jpg``,
    each JPEG with its capture time in EXIF, spread over ``cameras`` and ``days``."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    written = []
    for index, (_, scene) in enumerate(synth_scenes(count, seed, region)):
        camera = cameras[index % len(cameras)]
        day = first_day + timedelta(days=int(rng.integers(days)))
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=int(rng.integers(86_400))
        )
        key = f"{camera}/{moment:%Y/%m/%d}/{moment:%H%M%S}-{index:05d}.jpg"
        path = out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jpeg_with_time(path, scene.image, moment)
        written.append(ArchivedImage(key, camera, moment, scene.plates[0][1]))
    return written


def write_jpeg_with_time(path: Path, image: np.ndarray, moment: datetime) -> None:
    """Nothing; writes a BGR image as a JPEG whose EXIF DateTimeOriginal is ``moment``."""
    exif = Image.Exif()
    exif.get_ifd(IFD.Exif)[36867] = moment.strftime("%Y:%m:%d %H:%M:%S")
    exif.get_ifd(IFD.Exif)[36881] = moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:]
    rgb = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    rgb.save(path, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes())


CAMERA_LIMITS = {"cam01": (30.0, "mph"), "cam02": (55.0, "mph"), "cam03": (80.0, "km/h")}


def write_events(
    path: str | Path, archive: Sequence[ArchivedImage], archive_dir: str | Path, seed: int
) -> int:
    """The number of capture events written as CSV for the images of a synthetic archive:
    one per image, with the camera's limit and unit, about a third of them speeding."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["event_id", "camera_id", "captured_at", "image_key", "speed", "speed_limit", "unit"]
        )
        for index, image in enumerate(archive):
            limit, unit = CAMERA_LIMITS.get(image.camera_id, (50.0, "km/h"))
            over = rng.random() < 0.35
            speed = limit + rng.uniform(6, 30) if over else limit - rng.uniform(0, 15)
            key = str(Path(archive_dir).resolve() / image.key)
            moment = image.captured_at.isoformat()
            writer.writerow(
                [f"ev-{index:06d}", image.camera_id, moment, key, round(speed, 1), limit, unit]
            )
    return len(archive)
