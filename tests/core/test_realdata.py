"""Accuracy on real plates (../shared/data): a guard against regressions, not the figures.

The figures come from benchmarks/accuracy_cv.py; this trains once on the fixed training part
of the US crops and reads the held-out part.
"""

import cv2
import pytest

from anpr_core.config import load_region
from anpr_core.datasets import read_labeled, split_of
from anpr_core.evaluation import evaluate_image, summarize
from anpr_core.samples import fit_char_model

pytestmark = pytest.mark.realdata


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
    assert figures["plate_accuracy"] >= 0.65, figures
    assert figures["char_accuracy"] >= 0.9, figures
