"""Character training samples from labeled plates.

A plate is segmented the way the pipeline will segment it; where the number of pieces equals
the label's length, piece i is labeled with character i, and windows straddling two
neighbouring characters become ``REJECT`` samples. Where a first model is given, plates with
a few pieces too many are force-aligned to their label and the extra pieces (logos, bolts,
frame edges, bands) become ``REJECT`` samples too: they teach the classifier what is not a
character.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from anpr_core.calibrate import fit_calibrator
from anpr_core.classify import REJECT, build_classifier, char_probabilities, model_classes
from anpr_core.config import RegionConfig
from anpr_core.model import PlateModel
from anpr_core.pieces import PIECE_FEATURES, fit_piece_model, piece_features
from anpr_core.pipeline import Settings, analyze, whole_image_candidate
from anpr_core.postprocess import MAX_DROPPED, SlotScores, align
from anpr_core.records import Box, CharImage
from anpr_core.segment import (
    PLATE_HEIGHT,
    binarize,
    cut_characters,
    rectify,
    segment_plate,
)
from anpr_core.verify import fit_plate_verifier

# Fraction of reject pieces kept: of the windows straddling two characters, enough to learn
# them, not to drown characters; of the pieces forced alignment finds are not characters (logos,
# bolts, frame edges: what the reader must learn to drop), all of them.
REJECT_KEEP = 0.35
ALIGNED_REJECT_KEEP = 1.0
# Up to this many times as many samples for a rare character class (O, Q, I on US plates have
# 5-20x fewer than the median class): without it the classifier reads every O as 0.
RARE_BOOST = 8
# Synthetic training crops mixed with the real plates (``synth.training_crop``). None by
# default: on US crops 300 of them cost 0.011 of plate accuracy, 1000 cost 0.057.
SYNTHETIC_PLATES = 0
SYNTHETIC_STREAM = 7  # keeps the synthetic crops' random draws apart from other uses of a seed
# Folds of the cross-fitting that teaches the confidence calibrator (1: no calibrator).
CALIBRATION_FOLDS = 3


@dataclass(frozen=True)
class PlateSamples:
    """The labeled characters and reject pieces cut from one plate."""

    chars: list[CharImage]
    labels: list[str]
    polarity: str
    aligned: bool = False  # paired by forced alignment (its rejects are real non-characters)


def box_quad(box: Box, margin_x: float = 0.04, margin_y: float = 0.08):
    """The quadrilateral of a labeled (x, y, w, h) box grown by a small margin."""
    x, y, w, h = box
    x0, y0 = x - margin_x * w, y - margin_y * h
    x1, y1 = x + w * (1 + margin_x), y + h * (1 + margin_y)
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def plate_samples(
    gray: np.ndarray,
    text: str,
    region: RegionConfig,
    box: Box | None = None,
    thresholds: tuple[tuple[float, float], ...] = Settings.thresholds,
    model=None,
) -> PlateSamples | None:
    """Labeled characters of a plate (the whole image, or ``box`` of a scene), or None.

    Pieces pair with the label where a segmentation yields exactly ``len(text)`` of them. Given
    a ``model``, a segmentation with a few pieces too many is paired by forced alignment: the
    model decides which pieces are not characters, and those become reject samples.
    """
    h, w = gray.shape[:2]
    quad = box_quad(box) if box else ((0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1))
    plate = rectify(gray, quad, PLATE_HEIGHT)
    aligned: list[tuple[float, PlateSamples]] = []
    for polarity in region.polarity:
        for block, offset in thresholds:
            chars = segment_plate(plate, region, polarity, block, offset)
            if len(chars) == len(text):
                rejects = straddling_pieces(plate, chars, polarity, block, offset)
                labels = list(text) + [REJECT] * len(rejects)
                return PlateSamples(chars + rejects, labels, polarity)
            if model is not None and len(text) < len(chars) <= len(text) + MAX_DROPPED:
                found = forced_alignment(model, chars, text)
                if found is not None:
                    score, kept = found
                    labels = [
                        text[kept.index(i)] if i in kept else REJECT for i in range(len(chars))
                    ]
                    aligned.append((score, PlateSamples(chars, labels, polarity, aligned=True)))
    return max(aligned, key=lambda a: a[0])[1] if aligned else None


def forced_alignment(model, chars: list[CharImage], text: str, min_score: float = 0.3):
    """(per-piece score, indices of kept pieces) aligning ``chars`` to the known ``text``, or
    None when the model finds the alignment unlikely (mean piece probability < min_score)."""
    probs = char_probabilities(model, chars)
    classes = model_classes(model)
    if REJECT not in classes or any(c not in classes for c in text):
        return None
    log_p = np.log(np.maximum(probs, 1e-9))
    log_r = log_p[:, classes.index(REJECT)]
    slots = tuple((classes.index(c),) for c in text)
    result = align(SlotScores(log_p), log_r, slots)
    if result is None:
        return None
    log_score, kept, _ = result
    score = float(np.exp(log_score / len(chars)))
    return (score, kept) if score >= min_score else None


def straddling_pieces(plate, chars, polarity, block, offset) -> list[CharImage]:
    """Windows from the middle of one character to the middle of the next: not characters."""
    binary = binarize(plate, polarity, block, offset)
    pieces = []
    for a, b in zip(chars, chars[1:], strict=False):
        ax, ay, aw, ah = a.box
        bx, by, bw, bh = b.box
        x0, x1 = ax + aw // 2, bx + bw // 2
        y0, y1 = min(ay, by), max(ay + ah, by + bh)
        if x1 - x0 >= 3:
            pieces += cut_characters(binary, [(x0, y0, x1 - x0, y1 - y0)], plate)
    return pieces


def jitter(char: CharImage, rng: np.random.Generator, copies: int = 2) -> list[CharImage]:
    """Copies of a character with its crop shifted by a pixel or two and strokes thickened or
    thinned: the small variations segmentation produces on unseen plates. The grey crop, if
    any, moves with the binary one; the grey strokes stay as they were printed."""
    out = []
    image = char.image
    for _ in range(copies):
        h, w = image.shape
        pad = cv2.copyMakeBorder(image, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)
        dx0, dx1, dy0, dy1 = rng.integers(-1, 2, size=4)
        crop = pad[2 + dy0 : 2 + h + dy1, 2 + dx0 : 2 + w + dx1]
        if crop.size == 0:
            continue
        op = rng.integers(0, 3)
        if op == 1:
            crop = cv2.dilate(crop, np.ones((2, 2), np.uint8))
        elif op == 2 and min(crop.shape) > 8:
            crop = cv2.erode(crop, np.ones((2, 2), np.uint8))
        grey = None
        if char.grey is not None:
            grey_pad = cv2.copyMakeBorder(char.grey, 2, 2, 2, 2, cv2.BORDER_REPLICATE)
            grey = np.ascontiguousarray(grey_pad[2 + dy0 : 2 + h + dy1, 2 + dx0 : 2 + w + dx1])
        out.append(CharImage(np.ascontiguousarray(crop), char.box, grey))
    return out


def no_pieces() -> np.ndarray:
    """An empty block of ``pieces.piece_features`` rows."""
    return np.zeros((0, len(PIECE_FEATURES)))


@dataclass(frozen=True)
class TrainingSet:
    """Character rows (``features.char_vectors``) with labels, the context of each plate's
    pieces in its row (``pieces.piece_features``) with whether each is a character, and how
    they were obtained."""

    X: np.ndarray
    y: np.ndarray
    plates_used: int
    plates_skipped: int
    synthetic_used: int = 0  # synthetic crops (``SyntheticPlate``) among the rows' sources
    pieces: np.ndarray = field(default_factory=no_pieces)
    not_char: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # 1: not a character
    # The cross-fitted reads the confidence calibrator learned from: EVIDENCE rows, and whether
    # each was right (``cross_fitted_reads``); empty without calibration.
    calibration_evidence: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    calibration_correct: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def with_synthetic(self, synthetic: TrainingSet) -> TrainingSet:
        """These rows and those of ``synthetic``, drawn from synthetic crops."""
        return TrainingSet(
            np.vstack([self.X, synthetic.X]),
            np.concatenate([self.y, synthetic.y]),
            self.plates_used,
            self.plates_skipped,
            self.synthetic_used + synthetic.plates_used,
            np.vstack([self.pieces, synthetic.pieces]),
            np.concatenate([self.not_char, synthetic.not_char]),
        )

    def summary(self) -> dict:
        """Counts to log with a training run."""
        labels, counts = np.unique(self.y, return_counts=True)
        return {
            "plates_used": self.plates_used,
            "plates_skipped": self.plates_skipped,
            "synthetic_plates_used": self.synthetic_used,
            "samples": len(self.y),
            "reject_samples": int(np.sum(self.y == REJECT)),
            "classes": len(labels),
            "rarest_class": str(labels[counts.argmin()]) if len(labels) else "",
            "rarest_count": int(counts.min()) if len(labels) else 0,
            "row_pieces": len(self.not_char),
            "row_pieces_not_chars": int(self.not_char.sum()),
        }


@dataclass(frozen=True)
class SyntheticPlate:
    """Training crop ``index`` of ``seed`` for ``region`` (``synth.training_crop``), drawn
    where it is loaded: a reference is cheap to send to a cluster, the pixels are not."""

    region: RegionConfig
    seed: int
    index: int

    def triple(self) -> tuple[np.ndarray, None, str]:
        from anpr_core.synth import training_crop

        rng = np.random.default_rng((self.seed, self.index, SYNTHETIC_STREAM))
        crop = training_crop(rng, self.region)
        return crop.image, None, crop.text


def load_synthetic(plate: SyntheticPlate) -> tuple[np.ndarray, None, str]:
    """The ``load_plate`` of synthetic crops."""
    return plate.triple()


def synthetic_plates(count: int, region: RegionConfig, seed: int) -> list[SyntheticPlate]:
    """References to ``count`` synthetic training crops of ``region`` for training ``seed``."""
    return [SyntheticPlate(region, seed, i) for i in range(count)]


def sequential_map(fn, items) -> list:
    """``[fn(item) for item in items]``: the default ``map_plates``, in this process."""
    return [fn(item) for item in items]


def as_plate(plate):
    """``plate`` itself: the default ``load_plate``, for plates given as (grey, box, text)."""
    return plate


def class_copies(labels: np.ndarray, augment: int, max_boost: int) -> dict[str, int]:
    """Jittered copies per sample for each character class in ``labels``: ``augment`` for the
    common ones, up to ``max_boost`` times as many samples in all for the rare ones, so that
    each class gets about as many samples as the median character class."""
    classes, counts = np.unique(labels[labels != REJECT], return_counts=True)
    if not len(classes) or max_boost <= 1:
        return {}
    median = float(np.median(counts))
    boost = {str(c): min(max_boost, int(median // n)) for c, n in zip(classes, counts, strict=True)}
    return {c: (augment + 1) * b - 1 for c, b in boost.items() if b > 1}


def plate_rows(
    numbered,
    region: RegionConfig,
    augment: int = 2,
    seed: int = 0,
    model=None,
    thresholds: tuple[tuple[float, float], ...] = Settings.thresholds,
    load_plate=as_plate,
    copies: dict[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(feature rows, labels, piece-context rows, not-a-character flags) of the plate
    ``numbered`` = (index, plate), or None when it does not segment into its label. The
    context rows are those of the plate's row of pieces (``pieces.piece_features``), as
    segmentation cut it: the label's characters, and the pieces forced alignment dropped.

    ``load_plate(plate)`` gives the (grey image, box or None, text) triple. The random choices
    come from generators seeded by (``seed``, index): which reject pieces are kept from one,
    each piece's jitter from its own. A plate gives the same rows whichever process handles it
    and in whatever order, and more copies of one class leave every other row as it was.
    """
    from anpr_core.features import char_vectors

    index, plate = numbered
    gray, box, text = load_plate(plate)
    found = plate_samples(gray, text, region, box, thresholds, model)
    if found is None:
        return None
    keep_rng = np.random.default_rng((seed, index))
    chars: list[CharImage] = []
    labels: list[str] = []
    for position, (char, label) in enumerate(zip(found.chars, found.labels, strict=True)):
        keep = ALIGNED_REJECT_KEEP if found.aligned else REJECT_KEEP
        if label == REJECT and keep_rng.random() > keep:
            continue
        n = (copies or {}).get(label, augment)
        jitter_rng = np.random.default_rng((seed, index, position))
        variants = [char, *jitter(char, jitter_rng, n)] if n else [char]
        chars.extend(variants)
        labels.extend([label] * len(variants))
    row = len(found.chars) if found.aligned else len(text)  # the straddling windows follow
    not_char = np.array([label == REJECT for label in found.labels[:row]], int)
    return (
        char_vectors(chars, grey=True),
        np.array(labels),
        piece_features(found.chars[:row]),
        not_char,
    )


def training_set(
    plates,
    region: RegionConfig,
    augment: int = 2,
    seed: int = 0,
    model=None,
    thresholds: tuple[tuple[float, float], ...] = Settings.thresholds,
    map_plates=sequential_map,
    load_plate=as_plate,
    copies: dict[str, int] | None = None,
    start: int = 0,
) -> TrainingSet:
    """Character samples from ``plates``: triples of (grey image, box or None, text), or
    references that ``load_plate`` turns into such triples.

    ``augment`` jittered copies are added per sample (see ``jitter``); ``model`` enables forced
    alignment of plates that segment into a few pieces too many (see ``plate_samples``).
    ``map_plates(fn, items)`` returns ``[fn(item) for item in items]``, perhaps computed
    elsewhere (a Dask cluster); the rows are the same whichever map computes them. Plates are
    numbered from ``start`` for their random draws.
    """
    from anpr_core.features import char_vectors

    rows_of = functools.partial(
        plate_rows,
        region=region,
        augment=augment,
        seed=seed,
        model=model,
        thresholds=thresholds,
        load_plate=load_plate,
        copies=copies,
    )
    numbered = list(enumerate(plates, start))
    found = [r for r in map_plates(rows_of, numbered) if r is not None]
    if not found:
        return TrainingSet(char_vectors([], grey=True), np.array([], str), 0, len(numbered))
    X, y, pieces, not_char = (np.concatenate(part) for part in zip(*found, strict=True))
    return TrainingSet(X, y, len(found), len(numbered) - len(found), 0, pieces, not_char)


def fit_char_model(
    plates,
    region: RegionConfig,
    settings: Settings | None = None,
    augment: int = 2,
    seed: int = 0,
    map_plates=sequential_map,
    load_plate=as_plate,
    max_boost: int = RARE_BOOST,
    calibration_folds: int = CALIBRATION_FOLDS,
    synthetic: int = SYNTHETIC_PLATES,
    **classifier_params,
):
    """A PlateModel (character classifier, plate verifier, calibrator, piece model) fitted on
    ``plates`` (triples of grey image, box or None, text, or references that ``load_plate``
    turns into such triples), with the TrainingSet of its final round.

    Two rounds: the first model learns from plates that segment into exactly their label's
    length; it then aligns the plates with a few pieces too many, and the second model learns
    from both (about 20% more plates on the US crops), with rare character classes given up
    to ``max_boost`` times their samples in jittered copies (``class_copies``; 1: none).
    Where ``plates`` hold labeled scenes, a plate verifier (``verify.fit_plate_verifier``) is
    fitted too; a piece model (``pieces.fit_piece_model``) learns from the rows forced alignment
    pairs; with ``calibration_folds`` of 2 or more, a confidence calibrator is learned by
    cross-fitting (``cross_fitted_reads``). They come back as one ``PlateModel``, and the
    TrainingSet holds the reads the calibrator learned from.
    The per-plate work (segmenting, describing, reading) goes through ``map_plates(fn,
    items)``, which returns ``[fn(item) for item in items]`` and may compute it elsewhere (a
    Dask cluster); the models are fitted here.
    """
    plates = list(plates)
    settings = settings or Settings()
    fit = functools.partial(
        fit_once,
        region=region,
        settings=settings,
        augment=augment,
        seed=seed,
        map_plates=map_plates,
        load_plate=load_plate,
        max_boost=max_boost,
        synthetic=synthetic_plates(synthetic, region, seed),
        **classifier_params,
    )
    model, final = fit(plates)
    if calibration_folds >= 2:
        evidence, correct = cross_fitted_reads(
            plates, fit, region, settings, calibration_folds, seed, map_plates, load_plate
        )
        calibrator = fit_calibrator(evidence, correct, seed)
        model.set_params(confidence_calibrator=calibrator)
        final = replace(final, calibration_evidence=evidence, calibration_correct=correct)
    return model, final


def fit_once(
    plates: list,
    region: RegionConfig,
    settings: Settings,
    augment: int,
    seed: int,
    map_plates,
    load_plate,
    max_boost: int,
    synthetic: list[SyntheticPlate] = (),
    **classifier_params,
):
    """(PlateModel of the classifier, its plate verifier and its piece model, final
    TrainingSet): the two rounds of ``fit_char_model`` on ``plates``, without calibration.
    The characters come from ``plates`` and the ``synthetic`` crops; the plate verifier
    learns from ``plates``; the piece model from the final round's rows of pieces, where
    forced alignment found the pieces that are not characters."""
    common = dict(thresholds=settings.thresholds, map_plates=map_plates)

    def rounds(**round_options) -> TrainingSet:
        found = training_set(
            plates, region, augment, seed, load_plate=load_plate, **common, **round_options
        )
        if not synthetic:
            return found
        rendered = training_set(
            synthetic,
            region,
            augment,
            seed,
            load_plate=load_synthetic,
            start=len(plates),
            **common,
            **round_options,
        )
        return found.with_synthetic(rendered)

    first = rounds()
    if len(set(first.y)) < 2:
        raise ValueError(
            f"too little training data: {first.plates_used} of "
            f"{first.plates_used + first.plates_skipped} plates gave characters"
        )
    model = build_classifier(seed=seed, **classifier_params).fit(first.X, first.y)
    final = rounds(model=model, copies=class_copies(first.y, augment, max_boost))
    model = build_classifier(seed=seed, **classifier_params).fit(final.X, final.y)
    verifier = fit_plate_verifier(
        plates, region, seed, map_plates, load_plate, settings.localize_scheme
    )
    pieces = fit_piece_model(final.pieces, final.not_char, seed)
    return PlateModel(model, verifier, piece_model=pieces), final


def image_groups(plates: list) -> list[int]:
    """The index of each plate's image among the distinct images of ``plates``: plates of one
    image (the same array, or the same path for references) come one after another."""
    groups, previous, group = [], None, -1
    for plate in plates:
        image = getattr(plate, "path", None) or id(plate[0])
        if image != previous:
            group += 1
            previous = image
        groups.append(group)
    return groups


def cross_fitted_reads(
    plates: list, fit, region, settings, folds: int, seed: int, map_plates, load_plate
) -> tuple[np.ndarray, np.ndarray]:
    """(EVIDENCE rows, right or not) of reads of plates the model did not learn from: what the
    confidence calibrator learns from (``calibrate.fit_calibrator``).

    The images are dealt into ``folds`` folds (plates of one image together); for each fold, a
    model is fitted (``fit``) on the other folds' plates and reads the first plate of each of
    the fold's images end to end; each best read gives a row."""
    groups = image_groups(plates)
    order = np.random.default_rng(seed).permutation(groups[-1] + 1 if groups else 0)
    fold_of = {int(g): k % folds for k, g in enumerate(order)}
    firsts = [i for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    evidence, correct = [], []
    for fold in range(folds):
        training = [p for p, g in zip(plates, groups, strict=True) if fold_of[g] != fold]
        held_out = [plates[i] for i in firsts if fold_of[groups[i]] == fold]
        if not training or not held_out:
            continue
        try:
            model, _ = fit(training)
        except ValueError:  # a fold too small to learn from: its plates teach nothing
            continue
        read = functools.partial(
            held_out_read, model=model, region=region, settings=settings, load_plate=load_plate
        )
        for found in map_plates(read, held_out):
            if found is not None:
                evidence.append(found[0])
                correct.append(found[1])
    if not evidence:
        return np.zeros((0, 0)), np.zeros(0, bool)
    return np.vstack(evidence), np.array(correct, bool)


def held_out_read(plate, model, region, settings, load_plate=as_plate):
    """(EVIDENCE row, right or not) of the best read of a labeled plate's image (a scene when
    it has a box, else a crop), or None when nothing was read."""
    gray, box, text = load_plate(plate)
    candidates = None if box else [whole_image_candidate(gray.shape)]
    found = analyze(gray, model, region, settings, candidates=candidates)
    if not found.reads:
        return None
    return found.evidence[0], found.reads[0].text == text
