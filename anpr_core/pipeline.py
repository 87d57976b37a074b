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

from anpr_core.calibrate import Agreement, calibrated, confidence_calibrator, read_evidence
from anpr_core.classify import REJECT, char_probabilities, model_classes
from anpr_core.config import RegionConfig
from anpr_core.errors import ImageError
from anpr_core.localize import localize_plates, quad_box
from anpr_core.metrics import iou
from anpr_core.pieces import context_odds, piece_model, with_context
from anpr_core.postprocess import Read, read_plate
from anpr_core.records import Candidate, CharImage, PlateRead
from anpr_core.segment import (
    PLATE_HEIGHT,
    TYPICAL_ASPECT,
    binarize,
    plate_around_chars,
    rectify,
    row_ends,
    segment_plate_cuts,
)
from anpr_core.verify import plate_verifier, verified, worth_reading

PIPELINE_VERSION = "0.5.2"
MIN_SIDE = 16  # pixels: anything smaller cannot hold a readable plate
MAX_PIXELS = 40_000_000  # refuse larger images rather than exhaust a worker's memory
POLARITY_PRIOR = 0.8  # score factor for a region's less common polarity (its second listed)
FALLBACK_PRIOR = 0.7  # score factor for the thresholds after the first in Settings
WHOLE_READ = 6  # characters from which a read counts as a whole plate in ranking
PLATE_MARGIN = 0.08  # a plate's margin around its characters, as a fraction of their span


@dataclass(frozen=True)
class Settings:
    """Pipeline settings that travel with a model version (so a version reads the same way)."""

    max_candidates: int = 20  # candidates read (segmented and classified) without a verifier
    # With a plate verifier in the model, localization proposes ``verify_candidates`` and the
    # ``verified_candidates`` the verifier finds likeliest are read; after the likeliest, only
    # those it gives at least ``min_plate_probability`` (reading is the costly part).
    verify_candidates: int = 40
    verified_candidates: int = 3
    min_plate_probability: float = 0.1
    # Binarizations tried on each candidate, as (neighbourhood / plate height, grey levels
    # below the local mean after contrast stretch): a fine one that keeps sharp characters
    # apart, and a coarse one that keeps the strokes of small, blurred plates whole.
    thresholds: tuple[tuple[float, float], ...] = ((0.2, 30.0), (0.5, 8.0))
    small_plate_height: float = 60.0  # source pixels below which thresholds go coarse first
    min_chars: int = 2
    min_read_score: float = 0.15
    top_k: int = 5
    refine_top: int = 5  # candidates re-read in a quad redrawn around their characters
    # How far the redrawn quads reach past the characters' plate on each side, in character
    # pitches: not at all, and far enough to take back an end character the first read lost.
    refine_reaches: tuple[float, ...] = (0.0, 1.0)
    good_read_score: float = 0.9  # a read this sure stops trying other cuts of its candidate
    # Score factor for a cut with its widest pieces split as touching characters
    # (``segment.split_touching``), read beside the unsplit cut; 0: never split.
    split_prior: float = 0.8
    # The most a typical character's width is of its height, when a row's pieces are judged
    # touching (``segment.typical_width``); 0: the median piece width alone.
    split_aspect: float = TYPICAL_ASPECT
    localize_scheme: str = "pyramid"  # how localization lays out its scales (localize.SCHEMES)
    # Re-read a redrawn candidate only the way (polarity, threshold) that read it best.
    refine_same_cut: bool = True

    def to_dict(self) -> dict:
        """Plain-data form, for logging next to a model."""
        return {k: _lists(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """The settings in ``data``; keys this version does not know are ignored, and a
        setting that came after the version was stored takes the value that reads as that
        version did (``ADDED_LATER``)."""
        known = {k: _tuples(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**ADDED_LATER, **known})


# Settings added after models were registered, with the value that reads as those models did.
ADDED_LATER = {
    "split_prior": 0.0,
    "localize_scheme": "scales",
    "refine_same_cut": False,
    "split_aspect": 0.0,
}


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


@dataclass(frozen=True)
class Hypothesis:
    """One way of cutting one candidate into pieces: a polarity and a threshold."""

    candidate: int  # index into the candidates
    polarity: str
    chars: list[CharImage]
    prior: float = 1.0  # score factor: below 1 for a less usual polarity or threshold
    halves: tuple[int, ...] = ()  # pieces split from a wider one: a read must keep them all
    threshold: tuple[float, float] = ()  # (block fraction, offset) of the binarization


def quad_height(quad) -> float:
    """Mean length of a quadrilateral's left and right sides, in pixels."""
    q = np.asarray(quad, np.float32)
    return float((np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2)


@dataclass(frozen=True)
class CutStep:
    """One way to cut a candidate into pieces: a polarity and a binarization threshold, with
    the prior that ranks it among the others."""

    polarity: str
    block: float  # the adaptive threshold's block size, as a fraction of the plate height
    offset: float  # subtracted from the local mean
    prior: float = 1.0

    @property
    def threshold(self) -> tuple[float, float]:
        return (self.block, self.offset)


def hypothesis_plan(candidate: Candidate, region: RegionConfig, settings: Settings):
    """The CutSteps of a candidate, most promising first: the region's usual polarity, and
    for small (blurred) plates the coarse threshold, sharp plates the fine one."""
    thresholds = list(settings.thresholds)
    if quad_height(candidate.quad) < settings.small_plate_height:
        thresholds.reverse()
    plan = []
    for p, polarity in enumerate(region.polarity):
        for t, (block, offset) in enumerate(thresholds):
            prior = (POLARITY_PRIOR if p else 1.0) * (FALLBACK_PRIOR if t else 1.0)
            plan.append(CutStep(polarity, block, offset, prior))
    return sorted(plan, key=lambda step: -step.prior)


def best_reads(
    found: list[Hypothesis],
    probs: list[np.ndarray],
    classes,
    region,
    settings,
    best: dict[int, tuple[Read, Hypothesis]],
) -> tuple[dict[int, tuple[Read, Hypothesis]], dict[int, list[str]]]:
    """(``best`` updated with the best read of each candidate, by ``_read_rank``, with the
    hypothesis it came from; the text of every read of ``found``, by candidate): whether a
    candidate's cuts agree is evidence of how likely its read is right.

    A read of a split cut counts only when it keeps every half as a character: a half read
    as "not a character" means the split cut through one character (or a logo), and such a
    read would only win by the length it gains over the unsplit read.
    """
    best, texts = dict(best), {}
    for hypothesis, piece_probs in zip(found, probs, strict=True):
        read = read_plate(piece_probs, classes, region, settings.top_k)
        if read is None or not set(hypothesis.halves) <= set(read.kept):
            continue
        texts.setdefault(hypothesis.candidate, []).append(read.text)
        if hypothesis.prior != 1.0:
            read = replace(read, score=read.score * hypothesis.prior)
        current = best.get(hypothesis.candidate)
        if current is None or _read_rank(read) > _read_rank(current[0]):
            best[hypothesis.candidate] = (read, hypothesis)
    return best, texts


def probabilities_once(model, chars: list[CharImage]) -> np.ndarray:
    """``char_probabilities(model, chars)``, each piece scored once: a split cut shares the
    pieces it did not split with the whole cut (the same CharImage)."""
    unique = list({id(c): c for c in chars}.values())
    position = {id(c): k for k, c in enumerate(unique)}
    probs = char_probabilities(model, unique)
    return probs[[position[id(c)] for c in chars]]


def merged(texts: dict[int, list[str]], more: dict[int, list[str]]) -> dict[int, list[str]]:
    """The texts of both, candidate by candidate, ``texts``' first."""
    keys = dict.fromkeys([*texts, *more])
    return {k: [*texts.get(k, []), *more.get(k, [])] for k in keys}


def read_candidates(
    gray, candidates, model, classes, region, settings, timer, plans=None
) -> tuple[dict[int, tuple[Read, Hypothesis]], dict[int, list[str]]]:
    """(the best read of each candidate that has one, keyed by the candidate's index; the
    text of each of its reads).

    Each candidate is cut the ways of its ``plans`` entry (default: ``hypothesis_plan``).
    Hypotheses go in rounds, most promising first; a candidate already read with a score of
    ``settings.good_read_score`` is not cut again. Each round classifies all its pieces in
    one batch: the classifier's cost is mostly per call. Where the model has a piece model,
    each piece's odds of not being a character are weighed by its place in its row
    (``pieces.with_context``).
    """
    pieces = piece_model(model) if REJECT in classes else None
    with timer.stage("segment"):
        plates = [rectify(gray, c.quad, PLATE_HEIGHT) for c in candidates]
    if plans is None:
        plans = [hypothesis_plan(c, region, settings) for c in candidates]
    best: dict[int, tuple[Read, Hypothesis]] = {}
    texts: dict[int, list[str]] = {}
    for step in range(max((len(p) for p in plans), default=0)):
        found = []
        with timer.stage("segment"):
            for index, plan in enumerate(plans):
                done = index in best and best[index][0].score >= settings.good_read_score
                if step >= len(plan) or done:
                    continue
                cut = plan[step]
                cuts = segment_plate_cuts(
                    plates[index], region, cut.polarity, cut.block, cut.offset,
                    split=settings.split_prior > 0, split_aspect=settings.split_aspect,
                )  # fmt: skip
                whole = {c.box for c in cuts[0]}
                for k, chars in enumerate(cuts):
                    if len(chars) >= settings.min_chars:
                        cut_prior = cut.prior * (settings.split_prior if k else 1.0)
                        halves = tuple(i for i, c in enumerate(chars) if c.box not in whole)
                        found.append(
                            Hypothesis(index, cut.polarity, chars, cut_prior, halves, cut.threshold)
                        )
        if not found:
            continue
        with timer.stage("describe+classify"):
            all_probs = probabilities_once(model, [c for h in found for c in h.chars])
            bounds = np.cumsum([0] + [len(h.chars) for h in found])
            probs = [all_probs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            if pieces is not None:
                odds = context_odds(pieces, [h.chars for h in found])
                reject = classes.index(REJECT)
                probs = [with_context(p, reject, o) for p, o in zip(probs, odds, strict=True)]
        with timer.stage("postprocess"):
            best, round_texts = best_reads(found, probs, classes, region, settings, best)
        texts = merged(texts, round_texts)
    return best, texts


def refined_candidate(
    candidate: Candidate, read: Read, hypothesis: Hypothesis, region, shape, reach: float = 0
):
    """The candidate redrawn around the characters its read kept; its quad (what is read)
    reaches ``reach`` character pitches further on each side than its box (the plate).

    Morphology blobs often take in a plate's frame or the dark recess around it; the
    characters themselves say where the plate is, and a tighter quad reads better. A read
    that lost an end character (joined to the frame, or cut by the quad) keeps the others
    only, and a quad that reaches past them takes it back.
    """
    boxes = [hypothesis.chars[i].box for i in read.kept]
    plate = plate_around_chars(candidate.quad, boxes, region.plate_aspect, PLATE_MARGIN)
    margin = PLATE_MARGIN + reach / len(boxes)
    quad = plate_around_chars(candidate.quad, boxes, region.plate_aspect, margin)
    box = quad_box(np.asarray(plate, np.float32), shape)
    return Candidate(box, quad, candidate.score, hypothesis.polarity)


def refine(gray, candidates, best, model, classes, region, settings, timer, texts):
    """(candidates, best reads, texts of every read), each of the ``settings.refine_top``
    best-read candidates replaced by its redrawn self (``refined_candidate``, one per reach of
    ``settings.refine_reaches``) where that reads at least as well; the redrawn reads' texts
    join their candidate's.

    With ``settings.refine_same_cut``, a redrawn candidate is cut only the way that read it
    best: it holds the same characters, and the other ways cost as much again to read."""
    top = sorted(best, key=lambda i: _read_rank(best[i][0]), reverse=True)
    top = top[: settings.refine_top]
    refined = [
        (index, refined_candidate(candidates[index], *best[index], region, gray.shape, reach))
        for reach in settings.refine_reaches
        for index in top
    ]
    plans = [hypothesis_plan(c, region, settings) for _, c in refined]
    if settings.refine_same_cut:
        plans = [same_cut(plan, best[i][1]) for plan, (i, _) in zip(plans, refined, strict=True)]
    again, again_texts = read_candidates(
        gray, [c for _, c in refined], model, classes, region, settings, timer, plans
    )
    candidates, best = list(candidates), dict(best)
    for j, (index, candidate) in enumerate(refined):
        texts = merged(texts, {index: again_texts.get(j, [])})
        if j in again and _read_rank(again[j][0]) >= _read_rank(best[index][0]):
            candidates[index] = candidate
            best[index] = again[j]
    return candidates, best, texts


def same_cut(plan: list[CutStep], hypothesis: Hypothesis) -> list[CutStep]:
    """The steps of ``plan`` that cut the way ``hypothesis`` did (its polarity and threshold)."""
    wanted = (hypothesis.polarity, hypothesis.threshold)
    return [step for step in plan if (step.polarity, step.threshold) == wanted]


def _read_rank(read: Read) -> float:
    """How much a read looks like a real plate: per-piece score times characters found, up
    to ``WHOLE_READ`` (a read that dropped a plate's first or last character as "not a
    character" costs little in its per-piece score, and competes with the whole read)."""
    return read.score * min(1.0, len(read.text) / WHOLE_READ)


@dataclass(frozen=True)
class Recognition:
    """Everything one image yielded: the reads, best first, and every candidate considered."""

    reads: list[PlateRead]
    candidates: list[Candidate]
    evidence: list[np.ndarray] = field(default_factory=list)  # calibrate.EVIDENCE per read


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
    unread: list[Candidate] = []
    # a plate crop read whole (its candidates may be redrawn inside it: still a crop)
    full = whole_image_candidate(gray.shape).box
    whole = candidates is not None and all(c.box == full for c in candidates)
    if candidates is None:
        verifier = plate_verifier(model)
        with timer.stage("localize"):
            proposed = settings.verify_candidates if verifier else settings.max_candidates
            candidates = localize_plates(gray, region, proposed, settings.localize_scheme)
        with timer.stage("verify"):
            keep = settings.verified_candidates if verifier else settings.max_candidates
            candidates = verified(gray, candidates, verifier)[:keep]
            if verifier:
                candidates, unread = worth_reading(candidates, settings.min_plate_probability)
    candidates = list(candidates)
    best, texts = read_candidates(gray, candidates, model, classes, region, settings, timer)
    candidates, best, texts = refine(
        gray, candidates, best, model, classes, region, settings, timer, texts
    )
    kept = [
        index
        for index, (read, _) in best.items()
        if read.score >= settings.min_read_score and len(read.text) >= region.char_count[0]
    ]
    evidence = {
        index: _evidence(gray, best[index], candidates[index], texts.get(index, []), region, whole)
        for index in kept
    }
    confidences = _confidences(model, best, kept, evidence)
    scored = []
    for index in kept:
        read = best[index][0]
        rank = _read_rank(read) * (0.5 + 0.5 * candidates[index].score)
        plate = _plate_read(read, candidates[index], rank, region, confidences[index])
        scored.append((rank, index, plate))
    scored.sort(key=lambda item: item[0], reverse=True)
    reads: list[PlateRead] = []
    read_from: list[int] = []
    for _, index, plate in scored:
        if all(iou(plate.box, other.box) < 0.3 for other in reads):
            reads.append(plate)
            read_from.append(index)
    rest = [c for i, c in enumerate(candidates) if i not in read_from] + unread
    return Recognition(
        reads, [candidates[i] for i in read_from] + rest, [evidence[i] for i in read_from]
    )


def _evidence(
    gray, found: tuple[Read, Hypothesis], candidate: Candidate, seen, region, whole: bool
) -> np.ndarray:
    """The calibrate.EVIDENCE row of a candidate's best read, with the agreement of the texts
    ``seen`` in every read of the candidate (the read itself among them), the ends of its
    row in the plate binarized the way the read was cut, and ``whole``: the image was a plate
    crop read whole."""
    read, hypothesis = found
    seen = seen or [read.text]
    agreement = Agreement(max(0, len(seen) - 1), max(0, seen.count(read.text) - 1))
    ends = (0.0, 0.0)
    if hypothesis.threshold:
        plate = rectify(gray, candidate.quad, PLATE_HEIGHT)
        binary = binarize(plate, hypothesis.polarity, *hypothesis.threshold)
        ends = row_ends(binary, [hypothesis.chars[i].box for i in read.kept])
    pieces = len(hypothesis.chars)
    return read_evidence(read, pieces, candidate.score, agreement, region, ends, whole)


def _confidences(model, best, kept, evidence) -> dict[int, float]:
    """Each kept read's confidence: its calibrated probability of being right where the
    model has a calibrator, else the product of its characters' probabilities."""
    calibrator = confidence_calibrator(model)
    if calibrator is None or not kept:
        return {index: best[index][0].confidence for index in kept}
    probabilities = calibrated(calibrator, np.vstack([evidence[i] for i in kept]))
    return {index: float(p) for index, p in zip(kept, probabilities, strict=True)}


def _plate_read(read: Read, candidate: Candidate, rank: float, region, confidence) -> PlateRead:
    """The PlateRead of a candidate's read, with its confidence; the alternatives keep their
    ratio to the read's own."""
    scale = confidence / read.confidence if read.confidence > 0 else 0.0
    alternatives = tuple((text, min(1.0, c * scale)) for text, c in read.alternatives)
    return PlateRead(
        text=read.text,
        confidence=confidence,
        detection_score=float(min(1.0, rank)),
        box=candidate.box,
        quad=candidate.quad,
        char_confidences=read.char_confidences,
        alternatives=((read.text, confidence), *alternatives[1:]),
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
    """The read of an image that is a tightly cropped plate (no localization); its box and
    quad are the whole image, whatever cut of it read best."""
    gray = to_gray(image)
    whole = whole_image_candidate(gray.shape)
    reads = analyze(gray, model, region, settings, candidates=[whole]).reads
    return [replace(read, box=whole.box, quad=whole.quad) for read in reads]
