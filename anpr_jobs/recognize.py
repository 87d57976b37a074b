"""Reading the plates in image files with one model version: one JSON-ready dict per file."""

from __future__ import annotations

import time
from pathlib import Path

from anpr_core.errors import ImageError
from anpr_core.pipeline import recognize, recognize_crop
from anpr_jobs.models import Recognizer
from anpr_jobs.storage import load_image


def recognize_file(path: str | Path, recognizer: Recognizer, crop: bool = False) -> dict:
    """``{"file", "plates", "elapsed_ms", "model_version"}`` for an image file, or
    ``{"file", "error"}`` when it cannot be read as an image."""
    start = time.perf_counter()
    read = recognize_crop if crop else recognize
    try:
        plates = read(load_image(path), recognizer.model, recognizer.region, recognizer.settings)
    except ImageError as exc:
        return {"file": str(path), "error": str(exc)}
    return {
        "file": str(path),
        "plates": [plate.to_dict() for plate in plates],
        "elapsed_ms": round((time.perf_counter() - start) * 1000, 2),
        "model_version": recognizer.model_version,
    }
