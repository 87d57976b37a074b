"""recognize(image, model, region) -> list[PlateRead]: the four stages wired together.

Localization proposes several candidates; each is rectified, segmented and read, and the
candidates are ranked by how well they read (characters found, their probabilities, a
matching pattern) together with how plate-like they looked. Reading is what tells a plate
from a grille or a sign, so it decides the order.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from anpr_core.classify import char_probabilities, model_classes
from anpr_core.config import RegionConfig
from anpr_core.errors import ImageError
from anpr_core.localize import box_iou, localize_plates, quad_box
from anpr_core.postprocess import Read, read_plate
from anpr_core.records import Candidate, PlateRead
from anpr_core.segment import PLATE_HEIGHT, rectify, segment_plate

PIPELINE_VERSION = "0.1.0"
MIN_SIDE = 16  # pixels: anything smaller cannot hold a readable plate
MAX_PIXELS = 40_000_000  # refuse larger images rather than exhaust a worker's memory
POLARITY_PRIOR = 0.8  # score factor for a region's less common polarity (its second listed)


@dataclass(frozen=True)
class Settings:
    """Pipeline settings that travel with a model version (so a version reads the same way)."""

    max_candidates: int = 12
    # Binarizations tried on each candidate, as (neighbourhood / plate height, grey levels
    # below the local mean after contrast stretch): a fine one that keeps sharp characters
    # apart, and a coarse one that keeps the strokes of small, blurred plates whole.
    thresholds: tuple[tuple[float, float], ...] = ((0.2, 30.0), (0.5, 8.0))
    min_chars: int = 2
    min_read_score: float = 0.15
    top_k: int = 5

    def to_dict(self) -> dict:
        """Plain-data form, for logging next to a model."""
        return {k: _lists(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """The settings in ``data``; keys this version does not know are ignored."""
        known = {k: _tuples(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _lists(value):
    return [_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, tuple | list) else value


@dataclass
class StageTimer:
    """Milliseconds spent per stage, summed over calls (for benchmarks and row timings)."""

    ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] += (time.perf_counter() - start) * 1000


def to_gray(image: np.ndarray) -> np.ndarray:
    """An 8-bit grey image from a grey, BGR, BGRA or 16-bit array; ImageError if not an image."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image array, got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ImageError(f"not an image: array of shape {image.shape}")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"too_small: {width}x{height} px cannot hold a plate")
    if height * width > MAX_PIXELS:
        raise ImageError(f"too_large: {width}x{height} px over {MAX_PIXELS // 1_000_000} MP limit")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating) or not np.isfinite(image).all():
            raise ImageError(f"unsupported pixel type {image.dtype}")
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def read_candidate(
    gray: np.ndarray,
    candidate: Candidate,
    model,
    classes: list[str],
    region: RegionConfig,
    settings: Settings,
    timer: StageTimer,
) -> tuple[Read, str] | None:
    """The best read of one candidate over polarities and thresholds, with its polarity."""
    with timer.stage("segment"):
        plate = rectify(gray, candidate.quad, PLATE_HEIGHT)
    polarities = [candidate.polarity] + [p for p in region.polarity if p != candidate.polarity]
    best: tuple[Read, str] | None = None
    for polarity in polarities:
        for block, offset in settings.thresholds:
            with timer.stage("segment"):
                chars = segment_plate(plate, region, polarity, block, offset)
            if len(chars) < settings.min_chars:
                continue
            with timer.stage("describe+classify"):
                probs = char_probabilities(model, chars)
            with timer.stage("postprocess"):
                read = read_plate(probs, classes, region, settings.top_k)
            if read is None:
                continue
            read = _with_prior(read, POLARITY_PRIOR if polarity != region.polarity[0] else 1.0)
            if best is None or _read_rank(read) > _read_rank(best[0]):
                best = (read, polarity)
    return best


def _with_prior(read: Read, prior: float) -> Read:
    return replace(read, score=read.score * prior) if prior != 1.0 else read


def _read_rank(read: Read) -> float:
    """How much a read looks like a real plate: per-piece score times characters found."""
    return read.score * min(1.0, len(read.text) / 5)


@dataclass(frozen=True)
class Recognition:
    """Everything one image yielded: the reads, best first, and every candidate considered."""

    reads: list[PlateRead]
    candidates: list[Candidate]


def analyze(
    image: np.ndarray,
    model,
    region: RegionConfig,
    settings: Settings | None = None,
    timer: StageTimer | None = None,
    candidates: list[Candidate] | None = None,
) -> Recognition:
    """Reads and candidates of a scene, ranked by read quality (see ``recognize``)."""
    settings = settings or Settings()
    timer = timer or StageTimer()
    classes = model_classes(model)
    gray = to_gray(image)
    if candidates is None:
        with timer.stage("localize"):
            candidates = localize_plates(gray, region, settings.max_candidates)
    scored: list[tuple[float, PlateRead]] = []
    for candidate in candidates:
        result = read_candidate(gray, candidate, model, classes, region, settings, timer)
        if result is None:
            continue
        read, _ = result
        rank = _read_rank(read) * (0.5 + 0.5 * candidate.score)
        if read.score < settings.min_read_score or len(read.text) < region.char_count[0]:
            continue
        scored.append((rank, _plate_read(read, candidate, rank, region, gray.shape)))
    scored.sort(key=lambda item: item[0], reverse=True)
    reads: list[PlateRead] = []
    for _, plate in scored:
        if all(box_iou(plate.box, kept.box) < 0.3 for kept in reads):
            reads.append(plate)
    read_boxes = [r.box for r in reads]
    rest = [c for c in candidates if c.box not in read_boxes]
    ranked = [c for r in reads for c in candidates if c.box == r.box][: len(reads)] + rest
    return Recognition(reads, ranked)


def _plate_read(read: Read, candidate: Candidate, rank: float, region, shape) -> PlateRead:
    quad = np.asarray(candidate.quad, np.float32)
    return PlateRead(
        text=read.text,
        confidence=read.confidence,
        detection_score=float(min(1.0, rank)),
        box=quad_box(quad, shape),
        quad=candidate.quad,
        char_confidences=read.char_confidences,
        alternatives=read.alternatives,
        region=region.name,
        pattern=read.pattern,
    )


def recognize(
    image: np.ndarray, model, region: RegionConfig, settings: Settings | None = None
) -> list[PlateRead]:
    """Plates found and read in ``image``, best first; an empty list when there is none.

    ``model`` is a fitted character classifier (``classify.build_classifier``); raises
    ImageError for something that is not a usable image.
    """
    return analyze(image, model, region, settings).reads


def whole_image_candidate(shape: tuple[int, int]) -> Candidate:
    """A candidate covering a whole image: for plate crops, where the image is the plate."""
    h, w = shape[:2]
    quad = ((0.0, 0.0), (w - 1.0, 0.0), (w - 1.0, h - 1.0), (0.0, h - 1.0))
    return Candidate((0, 0, w, h), quad, 1.0)


def recognize_crop(
    image: np.ndarray, model, region: RegionConfig, settings: Settings | None = None
) -> list[PlateRead]:
    """The read of an image that is a tightly cropped plate (no localization)."""
    gray = to_gray(image)
    return analyze(
        gray, model, region, settings, candidates=[whole_image_candidate(gray.shape)]
    ).reads
