"""Tests of the synthesizer: labels that are right, geometry that holds, same seed same images."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anpr_core.config import ALPHABET, RegionConfig, load_region, matching_pattern
from anpr_core.synth import (
    SynthPlate,
    random_plate_text,
    synth_crops,
    synth_plate,
    synth_scene,
    synth_scenes,
    training_crop,
    training_crops,
)

REGIONS = ("us", "eu", "br")
SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=15, deadline=None)


@pytest.fixture(scope="module", params=REGIONS)
def region(request) -> RegionConfig:
    return load_region(request.param)


def gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def ink_mask(plate: SynthPlate) -> np.ndarray:
    """Otsu binarization of the plate with ink = 255, whichever the polarity."""
    g = gray(plate.image)
    inside = np.zeros(g.shape, bool)
    for x, y, w, h in plate.char_boxes:
        inside[y : y + h, x : x + w] = True
    _, dark = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    dark_ink = g[inside].mean() < g[~inside].mean()
    return dark if dark_ink else 255 - dark


def box_inside(box: tuple[int, int, int, int], width: int, height: int) -> bool:
    x, y, w, h = box
    return w > 0 and h > 0 and 0 <= x <= width - w and 0 <= y <= height - h


def assert_char_boxes_valid(plate: SynthPlate) -> None:
    h, w = plate.image.shape[:2]
    boxes = plate.char_boxes
    assert len(boxes) == len(plate.text)
    assert all(box_inside(box, w, h) for box in boxes)
    for (x0, _, w0, _), (x1, _, _, _) in zip(boxes, boxes[1:], strict=False):
        assert x0 + w0 + 2 <= x1, "characters must be left to right with a gap"


# ---------------------------------------------------------------------------------------------
# Text


@given(seed=SEEDS)
@settings(max_examples=50, deadline=None)
def test_random_text_matches_one_of_the_region_patterns(seed):
    for name in REGIONS:
        region = load_region(name)
        text = random_plate_text(np.random.default_rng(seed), region)
        assert re.fullmatch("[A-Z0-9]+", text)
        assert matching_pattern(text, region.patterns) is not None


def test_region_without_patterns_gets_text_within_char_count():
    region = RegionConfig(name="xx", char_count=(4, 6))
    rng = np.random.default_rng(3)
    texts = [random_plate_text(rng, region) for _ in range(50)]
    assert all(4 <= len(t) <= 6 and set(t) <= set(ALPHABET) for t in texts)
    assert len({len(t) for t in texts}) > 1


# ---------------------------------------------------------------------------------------------
# Plates


def test_plate_is_bgr_uint8_of_the_region_aspect(region):
    for seed in range(5):
        plate = synth_plate(np.random.default_rng(seed), region)
        h, w, channels = plate.image.shape
        assert plate.image.dtype == np.uint8 and channels == 3
        assert 100 <= h <= 130
        assert w / h == pytest.approx(region.plate_aspect, rel=0.05)
        assert matching_pattern(plate.text, region.patterns) is not None


@given(seed=SEEDS)
@FAST
def test_char_boxes_are_ordered_separate_and_plate_sized(seed):
    for name in REGIONS:
        plate = synth_plate(np.random.default_rng(seed), load_region(name))
        assert_char_boxes_valid(plate)
        heights = np.array([b[3] for b in plate.char_boxes]) / plate.image.shape[0]
        assert np.all((heights > 0.4) & (heights < 0.7)), heights


@given(text=st.text(alphabet=ALPHABET, min_size=1, max_size=9), seed=SEEDS)
@FAST
def test_character_shapes_stay_inside_the_region_aspect_range(text, seed):
    for name in REGIONS:
        region = load_region(name)
        plate = synth_plate(np.random.default_rng(seed), region, text=text)
        low, high = region.char_aspect_range
        assert all(low <= w / h <= high for _, _, w, h in plate.char_boxes), plate.char_boxes


@given(text=st.text(alphabet=ALPHABET, min_size=1, max_size=9), seed=SEEDS)
@FAST
def test_any_given_text_is_drawn_with_one_box_per_character(text, seed):
    for name in REGIONS:
        plate = synth_plate(np.random.default_rng(seed), load_region(name), text=text)
        assert plate.text == text
        assert_char_boxes_valid(plate)


def test_each_character_is_one_blob_and_other_marks_are_small(region):
    for seed in range(12):
        plate = synth_plate(np.random.default_rng(seed), region)
        ink = ink_mask(plate)
        char_h = min(b[3] for b in plate.char_boxes)
        for x, y, w, h in plate.char_boxes:
            crop = ink[y : y + h, x : x + w]
            count, _, stats, _ = cv2.connectedComponentsWithStats(crop)
            areas = stats[1:, cv2.CC_STAT_AREA]
            assert (areas > 0.05 * areas.max()).sum() == 1, (plate.text, seed)
        covered = np.zeros(ink.shape, bool)
        for x, y, w, h in plate.char_boxes:
            covered[y : y + h, x : x + w] = True
        count, labels, stats, _ = cv2.connectedComponentsWithStats(ink)
        for label in range(1, count):
            height = stats[label, cv2.CC_STAT_HEIGHT]
            if covered[labels == label].any() or height > 0.8 * ink.shape[0]:
                continue  # a character, or the border / band
            assert height < 0.6 * char_h, (region.name, seed, stats[label])


def test_plate_is_deterministic_for_a_seed(region):
    a, b = (synth_plate(np.random.default_rng(11), region) for _ in range(2))
    c = synth_plate(np.random.default_rng(12), region)
    assert np.array_equal(a.image, b.image) and a.text == b.text
    assert a.char_boxes == b.char_boxes
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_unknown_region_gets_a_plain_plate():
    region = RegionConfig(name="xx", plate_aspect=4.0, char_count=(5, 5))
    plate = synth_plate(np.random.default_rng(0), region)
    assert plate.image.shape[1] / plate.image.shape[0] == pytest.approx(4.0, rel=0.05)
    assert_char_boxes_valid(plate)


def test_plate_style_comes_from_the_synth_table_not_the_name():
    eu = load_region("eu")
    renamed = RegionConfig.from_dict({**eu.to_dict(), "name": "nl"})
    a, b = (synth_plate(np.random.default_rng(4), r) for r in (eu, renamed))
    assert np.array_equal(a.image, b.image) and a.char_boxes == b.char_boxes
    plain = RegionConfig.from_dict({**eu.to_dict(), "synth": {"plate_style": "plain"}})
    c = synth_plate(np.random.default_rng(4), plain)
    assert c.image.shape != a.image.shape or not np.array_equal(c.image, a.image)


@pytest.mark.parametrize("text", ["", "ab12", "A-12", "Ä12"])
def test_bad_text_is_refused(text):
    with pytest.raises(ValueError, match="A-Z0-9"):
        synth_plate(np.random.default_rng(0), load_region("us"), text=text)


def test_us_plates_are_sometimes_light_on_dark():
    region = load_region("us")
    dark = 0
    for seed in range(60):
        plate = synth_plate(np.random.default_rng(seed), region)
        dark += gray(plate.image).mean() < 100
    assert 1 <= dark <= 15


# ---------------------------------------------------------------------------------------------
# Scenes


DEFAULT_SIZES = {"us": (960, 540), "eu": (800, 600), "br": (1024, 768)}


def rectified(scene_image: np.ndarray, quad, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32) - 0.5
    matrix = cv2.getPerspectiveTransform(np.array(quad, np.float32) - 0.5, target)
    return cv2.warpPerspective(scene_image, matrix, (w, h), flags=cv2.INTER_AREA)


def test_scene_has_one_plate_whose_quad_shows_the_plate(region):
    for seed in range(4):
        scene = synth_scene(np.random.default_rng(seed), region)
        plate = synth_plate(np.random.default_rng(seed), region)  # the same draws come first
        w, h = DEFAULT_SIZES[region.name]
        assert scene.image.shape == (h, w, 3) and scene.image.dtype == np.uint8
        ((box, text),) = scene.plates
        (quad,) = scene.quads
        assert text == plate.text and len(quad) == 4
        assert box_inside(box, w, h)
        bx, by, bw, bh = box
        xs, ys = np.array(quad).T
        assert abs(xs.min() - bx) <= 1 and abs(xs.max() - (bx + bw)) <= 1
        assert abs(ys.min() - by) <= 1 and abs(ys.max() - (by + bh)) <= 1
        size = (round(np.hypot(*np.subtract(quad[1], quad[0]))), 0)
        size = (size[0], round(size[0] * plate.image.shape[0] / plate.image.shape[1]))
        seen = gray(rectified(scene.image, quad, size)).astype(float)
        drawn = gray(cv2.resize(plate.image, size, interpolation=cv2.INTER_AREA)).astype(float)
        assert np.corrcoef(seen.ravel(), drawn.ravel())[0, 1] > 0.7


@given(seed=SEEDS)
@settings(max_examples=10, deadline=None)
def test_scene_quad_is_clockwise_from_top_left_and_readable_size(seed):
    for name in REGIONS:
        region = load_region(name)
        scene = synth_scene(np.random.default_rng(seed), region)
        plate = synth_plate(np.random.default_rng(seed), region)
        quad = np.array(scene.quads[0])
        x, y = quad[:, 0], quad[:, 1]
        assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0  # clockwise, y down
        assert np.argmin(x + y) == 0
        side = min(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))
        char_fraction = min(b[3] for b in plate.char_boxes) / plate.image.shape[0]
        assert side * char_fraction >= 14


def test_region_file_without_synth_table_synthesizes_with_the_defaults(tmp_path):
    path = tmp_path / "nl.toml"
    path.write_text('name = "nl"\nplate_aspect = 4.7\nchar_count = [6, 6]\n')
    region = load_region(path)
    for seed in range(3):
        scene = synth_scene(np.random.default_rng(seed), region)
        assert scene.image.shape == (720, 960, 3)
        plate = synth_plate(np.random.default_rng(seed), region)
        assert len(plate.text) == 6 and scene.plates[0][1] == plate.text
        assert_char_boxes_valid(plate)
        box_w = scene.plates[0][0][2]
        assert 0.1 * 960 < box_w < 0.4 * 960  # default plate width: 0.15..0.30 of the scene
    ((_, crop),) = synth_crops(1, 0, region)
    assert crop.image.shape[1] / crop.image.shape[0] == pytest.approx(4.7, rel=0.05)


def test_scene_size_comes_from_the_synth_table(tmp_path):
    path = tmp_path / "nl.toml"
    path.write_text('name = "nl"\n[synth]\nscene_size = [640, 360]\n')
    scene = synth_scene(np.random.default_rng(0), load_region(path))
    assert scene.image.shape == (360, 640, 3)


def test_scene_size_can_be_chosen(region):
    scene = synth_scene(np.random.default_rng(1), region, size=(320, 240))
    assert scene.image.shape == (240, 320, 3)
    assert box_inside(scene.plates[0][0], 320, 240)


def test_scene_is_deterministic_for_a_seed(region):
    a, b, c = (synth_scene(np.random.default_rng(s), region) for s in (5, 5, 6))
    assert np.array_equal(a.image, b.image)
    assert a.plates == b.plates and a.quads == b.quads
    assert not np.array_equal(a.image, c.image)


def test_scenes_are_named_and_item_i_does_not_depend_on_count():
    region = load_region("eu")
    short = list(synth_scenes(2, 9, region))
    long = list(synth_scenes(4, 9, region))
    assert [name for name, _ in long] == [f"eu_9_{i:05d}" for i in range(4)]
    for (name_a, a), (name_b, b) in zip(short, long[:2], strict=True):
        assert name_a == name_b and np.array_equal(a.image, b.image) and a.plates == b.plates
    assert not np.array_equal(long[0][1].image, long[1][1].image)


def test_crops_are_named_labeled_and_deterministic(region):
    first = list(synth_crops(3, 4, region))
    again = list(synth_crops(3, 4, region))
    assert [name for name, _ in first] == [f"{region.name}_4_{i:05d}" for i in range(3)]
    for (_, a), (_, b) in zip(first, again, strict=True):
        assert np.array_equal(a.image, b.image)
        assert matching_pattern(a.text, region.patterns) is not None
        assert_char_boxes_valid(a)


def test_training_crops_are_grey_labeled_in_the_charset_and_deterministic(region):
    first = list(training_crops(4, 9, region))
    again = list(training_crops(4, 9, region))
    for a, b in zip(first, again, strict=True):
        assert a.image.ndim == 2 and a.image.dtype == np.uint8
        assert np.array_equal(a.image, b.image) and a.text == b.text
        assert set(a.text) <= set(ALPHABET)
        assert matching_pattern(a.text, region.patterns) is not None
    assert not np.array_equal(first[0].image, first[1].image)


def test_training_crops_span_small_and_large_plates():
    region = load_region("us")
    heights = [training_crop(np.random.default_rng(i), region).image.shape[0] for i in range(40)]
    assert min(heights) < 45 and max(heights) > 110
