"""Accuracy on real plates (../shared/data): a guard against regressions, not the figures.

The figures come from benchmarks/accuracy_cv.py; this trains once on the fixed training part
of the US crops and reads the held-out part (97 crops), where the product reads 0.753 of the
plates and 0.942 of the characters: the floors sit within 0.05 of that, so a regression of
five plates in a hundred fails. ``ANPR_DATA`` points the tests at the data elsewhere.
"""

import cv2
import pytest

from anpr_core.config import load_region
from anpr_core.datasets import read_labeled, split_of
from anpr_core.evaluation import evaluate_image, summarize
from anpr_core.samples import fit_char_model

pytestmark = pytest.mark.realdata
PLATE_FLOOR, CHAR_FLOOR = 0.70, 0.90


def test_reads_held_out_us_crops(shared_data):
    folder = shared_data / "openalpr-benchmarks" / "plates_us"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    region = load_region("us")
    items = read_labeled(folder)
    gray = {item.name: cv2.imread(str(item.path), cv2.IMREAD_GRAYSCALE) for item in items}
    train = [(gray[i.name], None, i.text) for i in items if split_of(i.name) == "train"]
    model, _ = fit_char_model(train, region)
    held_out = [i for i in items if split_of(i.name) == "test"]
    figures = summarize(
        evaluate_image(i.name, gray[i.name], None, i.text, model, region) for i in held_out
    )
    assert figures["plate_accuracy"] >= PLATE_FLOOR, figures
    assert figures["char_accuracy"] >= CHAR_FLOOR, figures
