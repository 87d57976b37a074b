"""The training data of a run: labeled folders, each split into training and held-out images by
image name, and the fingerprint of that data and of the code, logged with every version so a
version says exactly what it learned from."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anpr_core import datasets
from anpr_core.datasets import LabeledImage
from anpr_jobs.storage import load_gray


@dataclass(frozen=True)
class Folder:
    """One labeled data folder, split into its training and held-out images."""

    path: Path
    key: str  # the folder's name as used in metric names (unique among the folders)
    train: list[LabeledImage]
    test: list[LabeledImage]


def metric_key(name: str) -> str:
    """A folder name usable inside an MLflow metric name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "data"


def read_folders(data_dirs: Sequence[str | Path], holdout_fraction: float = 0.25) -> list[Folder]:
    """The labeled folders, each split into train and held-out images by image name."""
    folders: list[Folder] = []
    for labeled in datasets.read_folders(data_dirs):
        path, items = labeled.path, labeled.items
        if not items:
            raise ValueError(f"{path} holds no labeled images")
        key = metric_key(path.resolve().name)
        while key in {f.key for f in folders}:
            key = f"{key}_{len(folders)}"
        train = [i for i in items if datasets.split_of(i.name, holdout_fraction) == "train"]
        test = [i for i in items if datasets.split_of(i.name, holdout_fraction) == "test"]
        folders.append(Folder(path, key, train, test))
    return folders


def labeled_plates(items: Iterable[LabeledImage]) -> Iterator[tuple[np.ndarray, object, str]]:
    """(grey image, box or None, text) per labeled plate, images loaded one at a time."""
    for item in items:
        gray = load_gray(item.path)
        for box, text in item.plates:
            yield gray, box, text


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_lines(folder: Folder) -> list[str]:
    """One line per labeled image of ``folder``: path relative to the folder, size, content
    hash and labels, sorted; what stays the same when the folder is copied elsewhere."""
    lines = []
    for item in folder.train + folder.test:
        relative = item.path.relative_to(folder.path).as_posix()
        labels = ";".join(f"{box}:{text}" for box, text in item.plates)
        lines.append(f"{relative}\t{item.path.stat().st_size}\t{file_sha256(item.path)}\t{labels}")
    return sorted(lines)


REVIEW_MANIFEST = "reviews.json"  # written by `anpr review labels` beside reviewed scenes


def review_manifest(folder: Path) -> dict | None:
    """What ``anpr review labels`` says of a folder it wrote, or None for any other folder."""
    path = folder / REVIEW_MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def data_fingerprint(folders: Sequence[Folder]) -> dict:
    """File counts, ``data_sha256`` and the folders of reviewers' labels: which data a
    model saw.

    The hash covers, folder by folder in the order given, each image's path relative to its
    folder, its size, the sha256 of its bytes and its labels; so the same data in another
    place hashes the same, and a changed image or label does not.
    """
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(("\n".join(folder_lines(folder)) + "\n\n").encode())
    return {
        "data_files": sum(len(f.train) + len(f.test) for f in folders),
        "data_train_files": sum(len(f.train) for f in folders),
        "data_holdout_files": sum(len(f.test) for f in folders),
        "data_sha256": digest.hexdigest(),
        "data_dirs": [str(f.path.resolve()) for f in folders],
        # folders of reviewers' labels: the version learned from reviews
        "from_reviews": {
            str(f.path.resolve()): manifest
            for f in folders
            if (manifest := review_manifest(f.path)) is not None
        },
    }


def code_version() -> str:
    """The git commit of this code (``-dirty`` with uncommitted changes) when it runs from a
    git checkout, else ``anpr==<installed version>``."""
    from importlib.metadata import PackageNotFoundError, version

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        try:
            return f"anpr=={version('anpr')}"
        except PackageNotFoundError:
            return "unknown"
