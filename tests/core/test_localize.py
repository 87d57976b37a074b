"""Localization: plate candidates in synthetic scenes, and the suppression that ranks them."""

import cv2
import numpy as np
import pytest

from anpr_core.config import load_region
from anpr_core.localize import (
    SCHEMES,
    best_apart,
    localize_plates,
    open_then_close,
    plate_blobs,
    plate_rect,
    plate_scales,
    suppress,
    text_blobs,
)
from anpr_core.metrics import iou
from anpr_core.records import Candidate
from anpr_core.synth import synth_scenes


@pytest.mark.parametrize("name", ["us", "eu", "br"])
def test_finds_the_plate_among_the_first_candidates(name):
    region = load_region(name)
    found = 0
    for _, scene in synth_scenes(12, seed=21, region=region):
        gray = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
        box = scene.plates[0][0]
        candidates = localize_plates(gray, region, 10)
        # EU candidates hug the characters, narrower than the plate with its blue band
        found += any(iou(c.box, box) >= 0.3 for c in candidates)
        assert len(candidates) <= 10
        assert all(len(c.quad) == 4 for c in candidates)
    assert found >= 10, (name, found)


def test_candidates_come_best_first_and_apart():
    region = load_region("us")
    _, scene = next(synth_scenes(1, seed=4, region=region))
    candidates = localize_plates(cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY), region, 40)
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(candidates):
        assert all(iou(a.box, b.box) <= 0.5 for b in candidates[i + 1 :])


def test_a_blank_scene_has_no_candidates():
    assert localize_plates(np.full((480, 640), 128, np.uint8), load_region("us"), 10) == []


def test_best_apart_keeps_the_best_of_overlapping_boxes_up_to_a_limit():
    boxes = [(0, 0, 100, 50), (5, 0, 100, 50), (300, 0, 100, 50), (600, 0, 100, 50)]
    scores = [0.5, 0.9, 0.4, 0.7]
    assert best_apart(boxes, scores, 0.5, 10) == [1, 3, 2]
    assert best_apart(boxes, scores, 0.5, 2) == [1, 3]
    assert best_apart([], [], 0.5, 10) == []


def test_suppress_drops_candidates_overlapping_a_better_one():
    def cand(box, score):
        x, y, w, h = box
        quad = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
        return Candidate(box, quad, score)

    kept = suppress([cand((0, 0, 100, 50), 0.2), cand((2, 2, 100, 50), 0.8)])
    assert [c.score for c in kept] == [0.8]


def test_scales_bring_expected_plates_to_the_working_height():
    region = load_region("us")
    scales = plate_scales((720, 1280), region)
    assert scales == sorted(scales, reverse=True)
    assert scales[0] == 1.0  # a large frame is never upsampled
    assert 1.5 in plate_scales((480, 640), region)  # a small one is, for its smallest plates


@pytest.mark.parametrize("shape", [(720, 1280), (480, 640), (1080, 1920), (1280, 1280)])
def test_halvings_cover_the_same_scales_with_exact_halves(shape):
    for name in ("us", "eu", "br"):
        region = load_region(name)
        scales = plate_scales(shape, region)
        levels = plate_scales(shape, region, halvings=True)
        assert levels[0] == scales[0]
        assert all(b == a / 2 for a, b in zip(levels, levels[1:], strict=False))
        assert scales[-1] / 2 < levels[-1] <= scales[-1] * 1.2 or len(levels) == 1


@pytest.mark.parametrize("scheme", SCHEMES)
def test_both_scale_schemes_find_synthetic_plates(scheme):
    region = load_region("us")
    found = 0
    for _, scene in synth_scenes(12, seed=22, region=region):
        gray = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
        candidates = localize_plates(gray, region, 10, scheme)
        found += any(iou(c.box, scene.plates[0][0]) >= 0.3 for c in candidates)
    assert found >= 10, found


def test_opening_then_closing_in_three_passes_equals_the_two_operations():
    rng = np.random.default_rng(3)
    mask = cv2.dilate((rng.random((150, 260)) > 0.97).astype(np.uint8) * 255, np.ones((3, 7)))
    mask[rng.random(mask.shape) > 0.98] = 255  # specks for the opening to drop
    square = np.ones((3, 3), np.uint8)
    expected = cv2.morphologyEx(
        cv2.morphologyEx(mask, cv2.MORPH_OPEN, square), cv2.MORPH_CLOSE, np.ones((9, 15), np.uint8)
    )
    assert np.array_equal(open_then_close(mask, (15, 9)), expected)


def test_blob_boxes_hold_every_corner_of_their_plate_at_any_angle():
    region = load_region("us")
    mask = np.zeros((400, 900), np.uint8)
    rects = [
        ((90.0 + 180 * i, 200.0), (70.0, 22.0), angle)
        for i, angle in enumerate([0, 20, 45, -45, 70])
    ]
    for rect in rects:
        cv2.fillPoly(mask, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 255)
    blobs = plate_blobs(mask, 1.0, mask.shape, region, "dark_on_light")
    assert len(blobs) == len(rects)
    for blob in blobs:
        corners = cv2.boxPoints(plate_rect(blob.rect, 1.0, region.plate_aspect, (0.0, 0.0)))
        x, y, w, h = blob.box
        assert (corners[:, 0] >= x - 1e-3).all() and (corners[:, 0] <= x + w + 1e-3).all()
        assert (corners[:, 1] >= y - 1e-3).all() and (corners[:, 1] <= y + h + 1e-3).all()


def test_a_halved_mask_holds_the_same_row_of_marks_at_half_resolution():
    gray = np.full((120, 240), 200, np.uint8)
    for i in range(7):  # a row of dark characters about as tall as a plate's at working scale
        cv2.rectangle(gray, (40 + i * 22, 50), (40 + i * 22 + 5, 68), 30, -1)
    full = text_blobs(gray, "dark_on_light")
    half = text_blobs(gray, "dark_on_light", halve=True)
    assert half.shape == (60, 120)
    for mask, k in ((full, 1), (half, 2)):
        x, y, w, h = cv2.boundingRect(cv2.findNonZero(mask))
        assert abs(x * k - 40) <= 8 and abs((x + w) * k - 177) <= 10, (x, w, k)
        assert y * k <= 52 and (y + h) * k >= 66, (y, h, k)


def test_a_flat_noisy_sky_gives_no_pyramid_candidates():
    rng = np.random.default_rng(0)
    sky = np.tile(np.linspace(120, 200, 480, dtype=np.uint8)[:, None], (1, 640))
    sky = cv2.GaussianBlur(sky + rng.integers(0, 4, sky.shape, dtype=np.uint8), (5, 5), 0)
    # Otsu alone cuts the noise of the halved mask into plate-sized blobs
    assert localize_plates(sky, load_region("us"), 40, "pyramid") == []
