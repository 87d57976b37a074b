"""anpr_core.samples: training samples are the same whatever order the plates are cut in."""

import cv2
import numpy as np

from anpr_core.config import load_region
from anpr_core.samples import training_set
from anpr_core.synth import synth_crops


def _plates(count: int, seed: int):
    region = load_region("us")
    crops = synth_crops(count, seed=seed, region=region)
    return [(cv2.cvtColor(c.image, cv2.COLOR_BGR2GRAY), None, c.text) for _, c in crops]


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
