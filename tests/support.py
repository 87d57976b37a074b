"""Plain helpers shared by the conftest files: tracking stores and a quick classifier."""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

import pytest

from anpr_core.classify import build_classifier

FAST_CLASSIFIER = {"hidden_units": 48, "max_iter": 60}


def store_uri(folder: Path) -> str:
    """The tracking URI of a SQLite store in ``folder``."""
    return f"sqlite:///{folder / 'mlflow.db'}"


def forget_tracking_uri() -> None:
    """Nothing; clears the tracking and registry URIs MLflow keeps in globals (and, for the
    tracking URI, in os.environ), so no test sees the store of the one before."""
    import mlflow

    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@contextlib.contextmanager
def quick_training(patch: pytest.MonkeyPatch):
    """Telemetry off and a small classifier wherever jobs build one (tests check behaviour,
    not accuracy), with the optimizer's convergence warning silenced."""
    patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    patch.setattr(
        "anpr_core.samples.build_classifier", functools.partial(build_classifier, **FAST_CLASSIFIER)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Stochastic Optimizer.*")
        yield


def odd_images(scene) -> dict[str, tuple[bytes, str]]:
    """Bad and unusual archive files made from a BGR ``scene``: ``{relative key: (bytes,
    expected)}``, expected ``"error:<reason>"`` or ``"read"`` (status ok or no_plate)."""
    import io

    import cv2
    import numpy as np
    from PIL import Image

    def encode(suffix, image, *params):
        ok, data = cv2.imencode(suffix, image, list(params))
        assert ok
        return data.tobytes()

    jpeg = encode(".jpg", scene)
    gray = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    sideways = Image.fromarray(cv2.cvtColor(np.rot90(scene).copy(), cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rotated = io.BytesIO()
    sideways.save(rotated, "JPEG", exif=exif.tobytes())
    bomb = encode(".png", np.zeros((9000, 9000), np.uint8), cv2.IMWRITE_PNG_COMPRESSION, 9)
    garbled = jpeg[:600] + bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8))
    return {
        "cam09/2026/10/05/zero-bytes.jpg": (b"", "error:empty"),
        "cam09/2026/10/05/truncated.jpg": (jpeg[: len(jpeg) // 2], "error:truncated"),
        "cam09/2026/10/05/corrupt.jpg": (garbled + b"\xff\xd9", "error:decode"),
        "cam09/2026/10/05/not-an-image.jpg": (b"camera log, not a picture\n" * 20, "error:decode"),
        "cam09/2026/10/05/one-pixel.png": (encode(".png", scene[:1, :1]), "error:too_small"),
        "cam09/2026/10/05/bomb.png": (bomb, "error:too_large"),
        "cam09/2026/10/05/infrared.jpg": (encode(".jpg", gray), "read"),
        "cam09/2026/10/05/sixteen-bit.png": (encode(".png", gray.astype(np.uint16) * 257), "read"),
        "cam09/2026/10/05/alpha.png": (
            encode(".png", cv2.cvtColor(scene, cv2.COLOR_BGR2BGRA)),
            "read",
        ),
        "cam09/2026/10/05/exif-rotated.jpg": (rotated.getvalue(), "read"),
    }


def assert_one_row_per_key(rows, expected: dict) -> None:
    """Nothing; fails unless every key has exactly one row (a pandas DataFrame of reads) with
    the status it should have."""
    assert rows["image_key"].is_unique
    assert sorted(rows["image_key"]) == sorted(expected)
    for row in rows.itertuples():
        want = expected[row.image_key]
        if want == "read":
            assert row.status in ("ok", "no_plate"), (row.image_key, row.error)
        else:
            assert row.status == "error" and row.error.startswith(want.split(":")[1]), row


# Every character that fsspec's glob, brace or URL handling could read as syntax.
GLOB_NAMES = (
    "IMG[0001].jpg",
    "a1.jpg",
    "a[1].jpg",
    "x*y.jpg",
    "q?.jpg",
    "b{1,2}.jpg",
    "b1.jpg",
    "not!this.jpg",
    "with space.jpg",
    "hash#tag.jpg",
    "[!a]1.jpg",
)


def scene_jpeg(seed: int, width: int) -> bytes:
    """A synthetic scene as a JPEG ``width`` px wide: each file's width tells which it is."""
    import cv2
    import numpy as np

    from anpr_core.config import load_region
    from anpr_core.synth import synth_scene

    image = synth_scene(np.random.default_rng(seed), load_region("us")).image
    height = round(image.shape[0] * width / image.shape[1])
    return cv2.imencode(".jpg", cv2.resize(image, (width, height)))[1].tobytes()
