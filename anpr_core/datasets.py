"""Readers for the two labeled formats: whole scenes and plate crops (DESIGN.md).

- Scenes: ``NAME.jpg`` + ``NAME.txt``, one tab-separated line per plate:
  ``NAME.jpg x y width height PLATE``.
- Crops: ``images/*.png`` + ``labels.csv`` with header ``file,state,plate``.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from anpr_core.records import Box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class LabeledImage:
    """One labeled image: a scene with its plate boxes, or a crop that is the plate."""

    path: Path
    plates: tuple[tuple[Box | None, str], ...]  # (box in the image or None for a crop, text)
    kind: str  # "scene" or "crop"
    state: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def text(self) -> str:
        """The first plate's text (every image in the development data has one plate)."""
        return self.plates[0][1]


def normalize_plate(text: str) -> str:
    """Plate text as compared: upper case, no spaces, dashes or dots."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def dataset_kind(folder: str | Path) -> str:
    """``"crops"`` or ``"scenes"``, recognized by the folder's contents."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"labeled data folder not found: {folder}")
    if (folder / "labels.csv").is_file():
        return "crops"
    if any(folder.glob("*.txt")):
        return "scenes"
    raise ValueError(
        f"{folder} is neither a crops folder (labels.csv + images/) "
        "nor a scenes folder (NAME.jpg + NAME.txt)"
    )


def read_labeled(folder: str | Path) -> list[LabeledImage]:
    """Every labeled image in ``folder`` (either format), sorted by file name."""
    folder = Path(folder)
    return read_crops(folder) if dataset_kind(folder) == "crops" else read_scenes(folder)


@dataclass(frozen=True)
class LabeledFolder:
    """A labeled folder and its images."""

    path: Path
    kind: str  # "scenes" or "crops"
    items: list[LabeledImage]


def read_folders(folders: Iterable[str | Path]) -> list[LabeledFolder]:
    """Every labeled folder, each read whole before any work starts, so a missing or unknown
    folder fails first."""
    return [LabeledFolder(Path(f), dataset_kind(f), read_labeled(f)) for f in folders]


def read_scenes(folder: str | Path) -> list[LabeledImage]:
    """Labeled scenes: each ``NAME.txt`` beside its image, one plate per line."""
    folder = Path(folder)
    items = []
    for label_path in sorted(folder.glob("*.txt")):
        plates: list[tuple[Box | None, str]] = []
        image_name = None
        for line in label_path.read_text(encoding="utf-8").splitlines():
            fields = line.strip().split("\t") if "\t" in line else line.split()
            if len(fields) < 6:
                continue
            image_name = fields[0]
            x, y, w, h = (int(float(v)) for v in fields[1:5])
            plates.append(((x, y, w, h), normalize_plate(" ".join(fields[5:]))))
        if image_name and (folder / image_name).is_file():
            items.append(LabeledImage(folder / image_name, tuple(plates), "scene"))
    return items


def read_crops(folder: str | Path) -> list[LabeledImage]:
    """Labeled plate crops listed in ``labels.csv`` (``file,state,plate``) under ``images/``."""
    folder = Path(folder)
    items = []
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            path = folder / "images" / row["file"]
            if not path.is_file():
                path = folder / row["file"]
            if path.is_file():
                plates = ((None, normalize_plate(row["plate"])),)
                items.append(LabeledImage(path, plates, "crop", row.get("state", "")))
    return sorted(items, key=lambda item: item.name)


def split_of(name: str, holdout_fraction: float = 0.25, seed: int = 0) -> str:
    """``"train"`` or ``"test"`` for an image name: a fixed split by hash, stable across runs."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < holdout_fraction else "train"


def fold_of(name: str, folds: int, seed: int = 0) -> int:
    """The cross-validation fold (0..folds-1) of an image name, by hash."""
    digest = hashlib.sha256(f"fold{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds
