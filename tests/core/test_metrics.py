from hypothesis import given
from hypothesis import strategies as st

from anpr_core.metrics import (
    char_accuracy,
    detected,
    edit_distance,
    iou,
    mean_char_accuracy,
    plate_accuracy,
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
