"""The plate verifier: trained on labeled scenes, it ranks plate candidates above the rest."""

import cv2
import numpy as np
import pytest
import skops.io

from anpr_core.config import load_region
from anpr_core.localize import localize_plates
from anpr_core.metrics import iou
from anpr_core.records import Candidate
from anpr_core.synth import synth_scenes
from anpr_core.verify import (
    candidate_features,
    feature_count,
    fit_plate_verifier,
    plate_verifier,
    verified,
    window,
    worth_reading,
)


def _scenes(count, seed, region):
    return [
        (cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY), s.plates[0][0], s.plates[0][1])
        for _, s in synth_scenes(count, seed=seed, region=region)
    ]


@pytest.fixture(scope="module")
def region():
    return load_region("us")


@pytest.fixture(scope="module")
def verifier(region):
    return fit_plate_verifier(_scenes(30, 3, region), region)


def _first_hit(candidates, box):
    return next((k for k, c in enumerate(candidates) if iou(c.box, box) >= 0.5), len(candidates))


def test_verifier_puts_the_plate_first_more_often_than_morphology(verifier, region):
    morph_first = verified_first = 0
    for gray, box, _ in _scenes(20, 77, region):
        candidates = localize_plates(gray, region, 40)
        morph_first += _first_hit(candidates, box) == 0
        verified_first += _first_hit(verified(gray, candidates, verifier), box) == 0
    assert verified_first >= 14, (verified_first, morph_first)
    assert verified_first > morph_first


def test_verified_scores_are_probabilities_best_first(verifier, region):
    gray, _, _ = _scenes(1, 5, region)[0]
    ranked = verified(gray, localize_plates(gray, region, 40), verifier)
    scores = [c.score for c in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_only_the_best_and_likely_plates_are_worth_reading():
    def cand(score):
        return Candidate((0, 0, 10, 5), ((0, 0), (10, 0), (10, 5), (0, 5)), score)

    ranked = [cand(0.9), cand(0.4), cand(0.05), cand(0.01)]
    read, unread = worth_reading(ranked, 0.1)
    assert [c.score for c in read] == [0.9, 0.4]
    assert [c.score for c in unread] == [0.05, 0.01]
    read, unread = worth_reading([cand(0.02), cand(0.01)], 0.1)
    assert [c.score for c in read] == [0.02] and len(unread) == 1  # the best is always read
    assert worth_reading([], 0.1) == ([], [])


def test_features_have_a_fixed_width(region):
    gray, _, _ = _scenes(1, 6, region)[0]
    candidates = localize_plates(gray, region, 5)
    assert candidate_features(gray, candidates).shape == (len(candidates), feature_count())
    assert candidate_features(gray, []).shape == (0, feature_count())


def test_no_scenes_no_verifier(region):
    crop = np.full((40, 80), 200, np.uint8)
    assert fit_plate_verifier([(crop, None, "ABC123")], region) is None
    assert plate_verifier(object()) is None


def test_verifier_survives_skops_with_only_sklearn_types(verifier):
    data = skops.io.dumps(verifier)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert all(t.startswith(("sklearn.", "numpy.", "anpr_core.")) for t in untrusted)
    loaded = skops.io.loads(data, trusted=untrusted)
    rows = np.zeros((2, feature_count()), np.float32)
    assert np.allclose(loaded.predict_proba(rows), verifier.predict_proba(rows))


def test_windows_are_contrast_normalized_and_flat_stays_flat():
    gray = np.full((100, 200), 90, np.uint8)
    gray[40:60, 50:150:10] = 20  # dark strokes on the right half of the frame only
    quad = ((40.0, 30.0), (160.0, 30.0), (160.0, 70.0), (40.0, 70.0))
    pixels = window(gray, quad)
    assert pixels.dtype == np.float32 and pixels.shape == (24, 56)
    assert abs(float(pixels.mean())) < 1e-4
    assert pixels.std() > 0.3  # strokes stand out; the +8 grey levels keep it under 1
    assert np.allclose(window(np.full((100, 200), 90, np.uint8), quad), 0.0)
