"""Writing synthetic labeled data to disk in the two labeled formats (DESIGN.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

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
