"""anpr_core.samples: which character and reject samples plates give, in any order of cutting."""

import cv2
import numpy as np

from anpr_core.classify import REJECT, build_classifier
from anpr_core.config import load_region, matching_pattern
from anpr_core.samples import (
    class_copies,
    fit_char_model,
    plate_rows,
    plate_samples,
    synthetic_plates,
    training_set,
)
from anpr_core.synth import synth_crops


def _plates(count: int, seed: int):
    region = load_region("us")
    crops = synth_crops(count, seed=seed, region=region)
    return [(cv2.cvtColor(c.image, cv2.COLOR_BGR2GRAY), None, c.text) for _, c in crops]


def _gray(crop) -> np.ndarray:
    return cv2.cvtColor(crop.image, cv2.COLOR_BGR2GRAY)


def backwards_map(fn, items) -> list:
    """A map that computes the last item first (as a cluster may), results in item order."""
    return [fn(item) for item in reversed(items)][::-1]


def test_samples_do_not_depend_on_the_order_plates_are_cut_in():
    region, plates = load_region("us"), _plates(12, seed=3)
    in_order = training_set(plates, region, augment=2, seed=5)
    backwards = training_set(plates, region, augment=2, seed=5, map_plates=backwards_map)
    assert in_order.plates_used > 0 and len(in_order.y) > 0
    assert np.array_equal(in_order.X, backwards.X)
    assert np.array_equal(in_order.y, backwards.y)
    assert in_order.summary() == backwards.summary()


def test_the_seed_changes_the_jittered_samples():
    region, plates = load_region("us"), _plates(6, seed=3)
    one = training_set(plates, region, augment=2, seed=1)
    other = training_set(plates, region, augment=2, seed=2)
    assert one.X.shape != other.X.shape or not np.array_equal(one.X, other.X)


def test_rare_classes_get_more_jittered_copies_and_common_ones_none():
    labels = np.array(list("A" * 40 + "B" * 30 + "C" * 35 + "O" * 3 + "Q" * 15 + "_" * 100))
    copies = class_copies(labels, augment=2, max_boost=8)
    assert copies == {"O": 3 * 8 - 1, "Q": 3 * 2 - 1}  # median class: 30; O capped at 8x
    assert class_copies(labels, augment=2, max_boost=1) == {}


def test_boosted_classes_have_more_samples_in_the_training_set():
    region, plates = load_region("us"), _plates(6, seed=3)
    plain = training_set(plates, region, augment=2, seed=1)
    rare = str(plain.y[0])
    boosted = training_set(plates, region, augment=2, seed=1, copies={rare: 11})
    assert np.sum(boosted.y == rare) == 4 * np.sum(plain.y == rare)
    others = plain.y != rare
    assert np.array_equal(boosted.y[boosted.y != rare], plain.y[others])
    assert np.array_equal(boosted.X[boosted.y != rare], plain.X[others])


def _with_ring_before_first_char(crop) -> np.ndarray:
    """The crop's grey image widened on the left, with a ring (a logo or bolt) drawn there."""
    x, y, w, h = crop.char_boxes[0]
    gray = cv2.cvtColor(crop.image, cv2.COLOR_BGR2GRAY)
    gray = cv2.copyMakeBorder(gray, 0, 0, 2 * w, 0, cv2.BORDER_REPLICATE)
    cv2.circle(gray, (x + w + w // 4, y + h // 2), int(h * 0.3), 0, 4)
    return gray


def test_every_piece_forced_alignment_drops_becomes_a_reject_sample_and_a_non_char_piece():
    region = load_region("us")
    crops = [c for _, c in synth_crops(40, seed=3, region=region)]
    first = training_set([(_gray(c), None, c.text) for c in crops], region, augment=1)
    model = build_classifier(max_iter=100).fit(first.X, first.y)
    aligned = 0
    for i, crop in enumerate(crops):
        plate = (_with_ring_before_first_char(crop), None, crop.text)
        found = plate_samples(plate[0], crop.text, region, model=model)
        if found is None or not found.aligned:
            continue
        aligned += 1
        _, labels, pieces, not_char = plate_rows((i, plate), region, augment=1, model=model)
        assert np.sum(labels == REJECT) == 2 * found.labels.count(REJECT) > 0
        assert not_char.tolist() == [int(label == REJECT) for label in found.labels]
        assert len(pieces) == len(found.chars)
    assert aligned > 0


def test_synthetic_crops_join_the_characters_and_are_counted_apart():
    region, plates = load_region("us"), _plates(8, seed=3)
    rendered = [p.triple() for p in synthetic_plates(4, region, seed=0)]
    assert rendered[0][2] == synthetic_plates(4, region, seed=0)[0].triple()[2]
    assert all(matching_pattern(text, region.patterns) for _, _, text in rendered)
    plain = fit_char_model(plates, region, seed=0, calibration_folds=1)[1]
    mixed = fit_char_model(plates, region, seed=0, calibration_folds=1, synthetic=4)[1]
    assert plain.synthetic_used == 0 and 0 < mixed.synthetic_used <= 4
    assert mixed.plates_used == plain.plates_used
    assert len(mixed.y) > len(plain.y)
    assert mixed.summary()["synthetic_plates_used"] == mixed.synthetic_used


def test_a_jittered_copy_moves_its_grey_crop_with_it():
    from anpr_core.records import CharImage
    from anpr_core.samples import jitter

    image = np.zeros((30, 16), np.uint8)
    image[3:27, 5:11] = 255
    char = CharImage(image, (0, 0, 16, 30), np.where(image > 0, 250, 10).astype(np.uint8))
    copies = jitter(char, np.random.default_rng(4), copies=6)
    assert len(copies) == 6
    for copy in copies:
        assert copy.grey is not None and copy.grey.shape == copy.image.shape
    moved = [c for c in copies if c.image.shape != image.shape or c.grey[2, 5] != 10]
    assert moved  # some copies were shifted, and their grey with them


def _rows_and_pieces(seed: int, plate: int):
    """(the TrainingSet of ten synthetic crops, the pieces of one of them)."""
    region, plates = load_region("us"), _plates(10, seed=seed)
    found = training_set(plates, region, augment=0, seed=seed - 2)
    gray, box, text = plates[plate]
    return found, plate_samples(gray, text, region, box).chars


def test_a_classifier_reads_rows_as_wide_as_it_learned_from():
    from anpr_core.classify import char_probabilities, takes_grey
    from anpr_core.features import char_vectors

    found, chars = _rows_and_pieces(seed=3, plate=0)
    new = build_classifier(max_iter=50).fit(found.X, found.y)
    pixels = found.X.shape[1] // 2
    old = build_classifier(max_iter=50, use_grey=False).fit(found.X[:, : pixels + 1], found.y)
    assert takes_grey(new) and not takes_grey(old)
    assert char_probabilities(new, chars).shape == (len(chars), len(new.classes_))
    binary_rows = char_vectors(chars)  # what a version trained before grey features reads
    assert np.allclose(char_probabilities(old, chars), old.predict_proba(binary_rows))


def test_the_direct_mlp_path_is_scikit_learns_predict_proba_to_the_bit():
    from anpr_core.classify import char_probabilities, is_plain_mlp
    from anpr_core.features import char_vectors

    found, chars = _rows_and_pieces(seed=4, plate=1)
    model = build_classifier(max_iter=50).fit(found.X, found.y)
    expected = np.asarray(model.predict_proba(char_vectors(chars, grey=True)), np.float32)
    assert is_plain_mlp(model)
    assert np.array_equal(char_probabilities(model, chars), expected)
    model.set_params(mlp__activation="tanh").fit(found.X, found.y)  # not the direct path
    assert not is_plain_mlp(model)
    expected = np.asarray(model.predict_proba(char_vectors(chars, grey=True)), np.float32)
    assert np.array_equal(char_probabilities(model, chars), expected)
