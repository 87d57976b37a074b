"""End to end on synthetic data: train on synthetic crops, read unseen synthetic scenes."""

import cv2
import numpy as np
import pytest

from anpr_core.classify import REJECT, build_classifier
from anpr_core.config import ALPHABET, load_region
from anpr_core.errors import ImageError
from anpr_core.evaluation import evaluate_image, summarize
from anpr_core.pipeline import (
    Hypothesis,
    Settings,
    analyze,
    best_reads,
    hypothesis_plan,
    recognize,
    recognize_crop,
    same_cut,
    to_gray,
)
from anpr_core.records import Candidate, CharImage
from anpr_core.samples import training_set
from anpr_core.synth import synth_crops, synth_plate, synth_scenes


def _gray(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


@pytest.fixture(scope="module")
def us_model():
    region = load_region("us")
    plates = [(_gray(c.image), None, c.text) for _, c in synth_crops(150, seed=11, region=region)]
    first = build_classifier(max_iter=200).fit(*_xy(training_set(plates, region)))
    final = training_set(plates, region, model=first)
    return build_classifier(max_iter=200).fit(final.X, final.y)


def _xy(ts):
    return ts.X, ts.y


def test_reads_unseen_synthetic_scenes(us_model):
    region = load_region("us")
    results = [
        evaluate_image(name, _gray(s.image), s.plates[0][0], s.plates[0][1], us_model, region)
        for name, s in synth_scenes(30, seed=99, region=region)
    ]
    figures = summarize(results)
    assert figures["detection_recall"] >= 0.8, figures
    assert figures["plate_accuracy"] >= 0.45, figures
    assert figures["char_accuracy"] >= 0.8, figures


def test_plate_read_fields(us_model):
    region = load_region("us")
    _, scene = next(synth_scenes(1, seed=5, region=region))
    reads = recognize(scene.image, us_model, region)
    assert reads, "the synthetic plate should be found"
    best = reads[0]
    assert 0 <= best.confidence <= 1 and 0 <= best.detection_score <= 1
    assert len(best.quad) == 4 and len(best.char_confidences) == len(best.text)
    assert best.alternatives[0][0] == best.text
    assert best.region == "us"
    x, y, w, h = best.box
    assert min(x, y) >= 0
    assert x + w <= scene.image.shape[1] and y + h <= scene.image.shape[0]


def test_crop_reading(us_model):
    region = load_region("us")
    crops = list(synth_crops(20, seed=77, region=region))
    reads = [recognize_crop(c.image, us_model, region) for _, c in crops]
    right = sum(bool(r) and r[0].text == c.text for r, (_, c) in zip(reads, crops, strict=True))
    assert right >= 14
    for r, (_, c) in zip(reads, crops, strict=True):  # the crop is the plate, whatever was read
        h, w = c.image.shape[:2]
        assert all(read.box == (0, 0, w, h) for read in r)


def test_no_plate_gives_empty_list(us_model):
    rng = np.random.default_rng(0)
    sky = np.tile(np.linspace(120, 200, 480, dtype=np.uint8)[:, None], (1, 640))
    sky = cv2.GaussianBlur(sky + rng.integers(0, 4, sky.shape, dtype=np.uint8), (5, 5), 0)
    assert recognize(sky, us_model, load_region("us")) == []


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((0, 10), np.uint8),
        np.zeros((10, 10, 7), np.uint8),
        "not an array",
        np.full((40, 40), np.nan),
    ],
)
def test_not_an_image_raises_image_error(us_model, image):
    with pytest.raises(ImageError):
        recognize(image, us_model, load_region("us"))


def test_unusual_but_valid_images_are_read():
    base = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    expected = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(to_gray(base), expected)
    assert np.array_equal(to_gray(cv2.cvtColor(base, cv2.COLOR_BGR2BGRA)), expected)
    assert to_gray(expected.astype(np.uint16) * 257).tolist() == expected.tolist()
    assert to_gray(expected[:, :, None]).shape == expected.shape


def _clipped_candidate(seed: int, text: str):
    """A synthetic plate on a plain background and a candidate whose quad cuts through the
    plate's first character (as a localization blob that missed it would)."""
    region = load_region("us")
    plate = synth_plate(np.random.default_rng(seed), region, text)
    gray = _gray(plate.image)
    h, w = gray.shape
    scene = np.full((h + 200, w + 300), 90, np.uint8)
    ox, oy = 150, 100
    scene[oy : oy + h, ox : ox + w] = gray
    first = plate.char_boxes[0]
    x0, x1 = ox + first[0] + first[2] * 0.5, ox + w - 1.0
    quad = ((x0, oy), (x1, oy), (x1, oy + h - 1.0), (x0, oy + h - 1.0))
    return scene, Candidate((int(x0), oy, int(x1 - x0), h), quad, 1.0)


def test_a_quad_that_cuts_the_first_character_still_reads_the_whole_plate(us_model):
    region = load_region("us")
    for seed, text in [(1, "KC4Z3X"), (3, "HH9G5W"), (4, "AB1234"), (5, "XYZ789")]:
        scene, candidate = _clipped_candidate(seed, text)
        reads = analyze(scene, us_model, region, candidates=[candidate]).reads
        assert reads and reads[0].text == text
        # without reaching past the characters read, the cut character stays lost
        tight = Settings(refine_reaches=(0.0,))
        reads = analyze(scene, us_model, region, tight, candidates=[candidate]).reads
        assert reads and reads[0].text == text[1:]


def _piece_probs(text: str, sure: float, classes: list[str]) -> np.ndarray:
    """Class probabilities of pieces that are each ``text``'s character with ``sure``."""
    probs = np.full((len(text), len(classes)), (1 - sure) / (len(classes) - 1))
    for i, char in enumerate(text):
        probs[i, classes.index(char)] = sure
    return probs


def test_the_whole_read_beats_one_that_dropped_the_first_character():
    region = load_region("us")
    classes = [*ALPHABET, REJECT]
    chars = [CharImage(np.zeros((8, 4), np.uint8), (0, 0, 4, 8))] * 6
    whole = Hypothesis(0, "dark_on_light", chars)
    cut = Hypothesis(0, "dark_on_light", chars)
    probs = [_piece_probs("KC4Z3X", 0.9, classes), _piece_probs("_C4Z3X", 0.99, classes)]
    best, texts = best_reads([whole, cut], probs, classes, region, Settings(), {})
    assert best[0][0].text == "KC4Z3X" and texts == {0: ["KC4Z3X", "C4Z3X"]}


def test_a_split_read_counts_only_when_it_keeps_both_halves():
    region = load_region("us")
    classes = [*ALPHABET, REJECT]
    chars = [CharImage(np.zeros((8, 4), np.uint8), (4 * i, 0, 4, 8)) for i in range(6)]
    whole = Hypothesis(0, "dark_on_light", chars[:5])
    split = Hypothesis(0, "dark_on_light", chars, prior=0.9, halves=(0, 1))
    probs = [_piece_probs("BC123", 0.8, classes), _piece_probs("_BC123", 0.99, classes)]
    before = {}
    best, _ = best_reads([whole, split], probs, classes, region, Settings(), before)
    assert best[0][0].text == "BC123"  # a half read as not a character: the split cut a piece
    assert before == {}  # what it was given stays as it was
    probs[1] = _piece_probs("ABC123", 0.99, classes)
    best, _ = best_reads([whole, split], probs, classes, region, Settings(), best)
    assert best[0][0].text == "ABC123"


def _touching_crop(plate, joined: int) -> np.ndarray:
    """The grey crop of a synthetic ``plate`` with character ``joined`` and the next bridged
    by a bar of ink (as grime, a bolt or a low resolution joins them on real plates)."""
    gray = _gray(plate.image)
    a, b = plate.char_boxes[joined], plate.char_boxes[joined + 1]
    y = a[1] + a[3] // 2
    thick = max(2, a[3] // 12)
    cv2.line(gray, (a[0] + a[2] - 2, y), (b[0] + 2, y), int(np.percentile(gray, 2)), thick)
    return gray


def test_touching_characters_are_read_split_when_the_halves_read_well(us_model):
    region = load_region("us")
    crops = list(synth_crops(20, seed=41, region=region))
    touching = [_touching_crop(c, 2) for _, c in crops]

    def reads(settings):
        found = [recognize_crop(g, us_model, region, settings) for g in touching]
        return [r[0].text if r else "" for r in found]

    texts = [c.text for _, c in crops]
    split, unsplit = reads(Settings()), reads(Settings(split_prior=0))
    right = [sum(r == t for r, t in zip(found, texts, strict=True)) for found in (split, unsplit)]
    whole = [
        sum(len(r) == len(t) for r, t in zip(found, texts, strict=True))
        for found in (split, unsplit)
    ]
    assert right[0] > right[1]
    assert whole[0] >= whole[1] + 5, (split, unsplit)


def test_settings_of_an_older_version_read_as_it_did():
    stored = Settings().to_dict()
    assert Settings.from_dict(stored) == Settings()
    del stored["split_prior"]  # a version stored before touching characters were split
    assert Settings.from_dict(stored).split_prior == 0.0
    del stored["localize_scheme"], stored["refine_same_cut"]  # stored before the speed work
    older = Settings.from_dict(stored)
    assert older.localize_scheme == "scales" and older.refine_same_cut is False
    del stored["split_aspect"]  # stored before a typical width was bounded by the height
    assert Settings.from_dict(stored).split_aspect == 0.0


def test_a_redrawn_candidate_is_cut_only_the_way_that_read_it():
    region = load_region("us")
    settings = Settings()
    quad = ((0.0, 0.0), (199.0, 0.0), (199.0, 99.0), (0.0, 99.0))
    plan = hypothesis_plan(Candidate((0, 0, 200, 100), quad, 1.0), region, settings)
    assert len(plan) == len(region.polarity) * len(settings.thresholds)
    for step in plan:
        winner = Hypothesis(0, step.polarity, [], step.prior, (), step.threshold)
        assert same_cut(plan, winner) == [step]


def test_the_same_cut_refinement_reads_synthetic_plates_as_well(us_model):
    region = load_region("us")
    scenes = [s for _, s in synth_scenes(16, seed=57, region=region)]

    def right(settings):
        reads = [recognize(s.image, us_model, region, settings) for s in scenes]
        return sum(
            bool(r) and r[0].text == s.plates[0][1] for r, s in zip(reads, scenes, strict=True)
        )

    same, every = right(Settings()), right(Settings(refine_same_cut=False))
    assert same >= every - 1 and same >= 12, (same, every)


def test_a_piece_shared_by_two_cuts_is_scored_once_and_read_in_both(us_model, monkeypatch):
    from anpr_core import pipeline

    rng = np.random.default_rng(2)
    chars = [
        CharImage((rng.random((30, 14)) > 0.5).astype(np.uint8) * 255, (i * 16, 0, 14, 30))
        for i in range(3)
    ]
    scored, original = [], pipeline.char_probabilities

    def counting(model, pieces):
        scored.append(len(pieces))
        return original(model, pieces)

    monkeypatch.setattr(pipeline, "char_probabilities", counting)
    shared = pipeline.probabilities_once(us_model, [*chars, chars[0], chars[2]])
    assert scored == [3]
    assert np.array_equal(shared[3], shared[0]) and np.array_equal(shared[4], shared[2])
    assert np.allclose(shared[:3], original(us_model, chars))
