import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from anpr_core.metrics import (
    at_threshold,
    calibrated_ece,
    char_accuracy,
    detected,
    edit_distance,
    expected_calibration_error,
    iou,
    mean_char_accuracy,
    plate_accuracy,
    reliability_bins,
)

text = st.text(alphabet="ABC123", max_size=8)


@given(text, text)
def test_edit_distance_is_a_metric(a, b):
    assert edit_distance(a, b) == edit_distance(b, a)
    assert (edit_distance(a, b) == 0) == (a == b)
    assert edit_distance(a, b) <= max(len(a), len(b))


def test_accuracies():
    assert plate_accuracy(["ABC123", None, "XYZ"], ["ABC123", "ABC", "XYZ"]) == 2 / 3
    assert char_accuracy("ABC12", "ABC123") == 1 - 1 / 6
    assert char_accuracy(None, "ABC") == 0.0
    assert mean_char_accuracy(["AB", "AB"], ["AB", "CD"]) == 0.5


def test_iou_and_detection_take_only_the_top_candidates():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == 50 / 150
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    far = [(100, 100, 10, 10)] * 5
    assert not detected((0, 0, 10, 10), far + [(0, 0, 10, 10)])
    assert detected((0, 0, 10, 10), far[:4] + [(1, 0, 10, 10)])


def test_calibration_error_of_known_reads():
    # 10 reads at 0.9 of which 9 right, 10 at 0.15 of which 5 right: gaps 0 and 0.35
    confidences = [0.9] * 10 + [0.15] * 10
    correct = [True] * 9 + [False] + [True] * 5 + [False] * 5
    assert abs(expected_calibration_error(confidences, correct) - 0.175) < 1e-9
    found = reliability_bins(confidences, correct)
    assert [(low, high, n) for low, high, n, _, _ in found] == [(0.1, 0.2, 10), (0.9, 1.0, 10)]
    assert [(round(mean, 9), right) for *_, mean, right in found] == [(0.15, 0.5), (0.9, 0.9)]
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0  # both edges binned
    assert expected_calibration_error([], []) == 0.0


def test_precision_and_coverage_at_a_threshold():
    confidences = [0.99, 0.95, 0.8, 0.7999, 0.0]
    correct = [True, False, True, True, False]
    assert at_threshold(confidences, correct, 0.8) == (2 / 3, 3 / 5)
    assert at_threshold(confidences, correct, 0.999) == (None, 0.0)


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1))
def test_calibration_error_is_bounded_and_zero_for_a_perfect_oracle(reads):
    confidences = [c for c, _ in reads]
    correct = [r for _, r in reads]
    assert 0.0 <= expected_calibration_error(confidences, correct) <= 1.0
    oracle = [1.0 if r else 0.0 for r in correct]
    assert expected_calibration_error(oracle, correct) == 0.0


def test_the_ece_of_a_calibrated_confidence_falls_with_the_number_of_images():
    rng = np.random.default_rng(3)
    floors = {}
    for n in (55, 400, 4000):
        confidences = rng.uniform(0.2, 1.0, n)
        right = rng.random(n) < confidences  # calibrated by construction
        floors[n] = calibrated_ece(confidences.tolist())
        assert (
            abs(expected_calibration_error(confidences.tolist(), right.tolist()) - floors[n]) < 0.06
        )
    assert floors[55] > 0.08 > floors[400] > floors[4000] and floors[4000] < 0.02
    assert calibrated_ece([1.0] * 30) == 0.0 and calibrated_ece([]) == 0.0
