"""The confidence calibrator: calibrated on reads with a known answer, applied by the pipeline
where a model has one, and absent (the old confidence) where it has not."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from anpr_core.calibrate import (
    EVIDENCE,
    calibrated,
    citation_threshold,
    confidence_calibrator,
    fit_calibrator,
)
from anpr_core.config import load_region
from anpr_core.metrics import expected_calibration_error
from anpr_core.pipeline import analyze, to_gray, whole_image_candidate
from anpr_core.samples import fit_char_model, image_groups
from anpr_core.synth import synth_crops, synth_scene


def known_reads(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(evidence rows, the true probability each read is right, whether it was): reads whose
    correctness is a known logistic function of two of the evidence columns."""
    evidence = rng.normal(size=(n, len(EVIDENCE)))
    logit = 2.0 * evidence[:, 0] - 1.5 * evidence[:, 8] + 0.5
    truth = 1 / (1 + np.exp(-logit))
    return evidence, truth, rng.random(n) < truth


def test_a_calibrator_of_reads_with_a_known_answer_is_calibrated():
    rng = np.random.default_rng(0)
    calibrator = fit_calibrator(*known_reads(4000, rng)[::2])
    evidence, truth, correct = known_reads(4000, rng)
    predicted = calibrated(calibrator, evidence)
    assert np.abs(predicted - truth).mean() < 0.03
    assert expected_calibration_error(predicted.tolist(), correct.tolist()) < 0.04
    # the product of two of the columns, say, would not be: a known miscalibrated score
    naive = 1 / (1 + np.exp(-evidence[:, 0]))
    assert expected_calibration_error(naive.tolist(), correct.tolist()) > 0.05


def test_a_calibrator_fitted_before_columns_were_appended_reads_its_own_columns():
    rng = np.random.default_rng(2)
    evidence, _, correct = known_reads(600, rng)
    old = fit_calibrator(evidence[:, :10], correct)  # the ten columns of pipeline 0.5.0
    assert evidence.shape[1] > 10
    assert calibrated(old, evidence).tolist() == calibrated(old, evidence[:, :10]).tolist()


def test_scene_reads_outnumbered_by_crop_reads_are_calibrated_by_their_own_column():
    rng = np.random.default_rng(3)
    evidence, truth, _ = known_reads(6000, rng)
    crops = np.arange(6000) % 6 != 0  # five reads in six of crops, as in the US training data
    evidence[:, EVIDENCE.index("whole_image")] = crops
    truth = np.where(crops, truth, 1 / (1 + (1 / truth - 1) * math.e**1.5))  # scenes: logit - 1.5
    correct = rng.random(6000) < truth
    scenes = ~crops

    def scene_bias(calibrator, columns) -> float:  # how far it overstates scenes' reads
        rows = evidence[scenes][:, columns]
        return float((calibrator.predict_proba(rows)[:, 1] - truth[scenes]).mean())

    without = [i for i, name in enumerate(EVIDENCE) if name != "whole_image"]
    assert scene_bias(fit_calibrator(evidence[:, without], correct), without) > 0.15
    assert abs(scene_bias(fit_calibrator(evidence, correct), slice(None))) < 0.03


def test_reads_of_a_whole_image_say_so_in_their_evidence(calibrated_model):
    model, region = calibrated_model
    column = EVIDENCE.index("whole_image")
    for _, plate in synth_crops(12, 9, region):  # read whole, or from a quad redrawn inside
        crop = to_gray(plate.image)
        found = analyze(crop, model, region, candidates=[whole_image_candidate(crop.shape)])
        assert all(row[column] == 1.0 for row in found.evidence)
    scene = synth_scene(np.random.default_rng(8), region)
    found = analyze(scene.image, model, region)
    assert found.evidence and all(row[column] == 0.0 for row in found.evidence)


def test_too_few_reads_or_one_outcome_give_no_calibrator():
    evidence, _, correct = known_reads(200, np.random.default_rng(1))
    assert fit_calibrator(evidence[:10], correct[:10]) is None
    assert fit_calibrator(evidence, np.ones(200, bool)) is None


@pytest.fixture(scope="module")
def calibrated_model():
    """A small character model with a cross-fitted calibrator, from synthetic crops."""
    region = load_region("us")
    crops = synth_crops(90, 4, region)
    plates = [(to_gray(plate.image), None, plate.text) for _, plate in crops]
    model, _ = fit_char_model(plates, region, calibration_folds=3, hidden_units=48, max_iter=80)
    return model, region


def test_training_keeps_a_calibrator_and_the_pipeline_applies_it(calibrated_model):
    model, region = calibrated_model
    calibrator = confidence_calibrator(model)
    assert calibrator is not None
    scene = synth_scene(np.random.default_rng(8), region)
    found = analyze(scene.image, model, region)
    assert found.reads and len(found.evidence) == len(found.reads)
    probabilities = calibrated(calibrator, np.vstack(found.evidence))
    for read, probability in zip(found.reads, probabilities, strict=True):
        assert read.confidence == pytest.approx(float(probability))
        assert read.alternatives[0] == (read.text, read.confidence)
        assert all(c <= read.confidence + 1e-9 for _, c in read.alternatives)


def test_a_model_without_a_calibrator_reads_as_before(calibrated_model):
    model, region = calibrated_model
    old = copy.deepcopy(model.char_model)  # a version before calibration: a bare Pipeline
    scene = synth_scene(np.random.default_rng(8), region)
    new_reads = analyze(scene.image, model, region).reads
    old_reads = analyze(scene.image, old, region).reads
    assert [r.text for r in old_reads] == [r.text for r in new_reads]  # the same plates read
    for read in old_reads:
        assert read.confidence == pytest.approx(math.prod(read.char_confidences))


def test_a_legacy_version_with_its_parts_as_attributes_reads_as_one_plate_model(
    calibrated_model,
):
    from anpr_core.verify import plate_verifier

    model, region = calibrated_model
    legacy = copy.deepcopy(model.char_model)
    legacy.plate_verifier_ = model.plate_verifier
    legacy.confidence_calibrator_ = model.confidence_calibrator
    assert plate_verifier(legacy) is model.plate_verifier
    assert confidence_calibrator(legacy) is model.confidence_calibrator
    scene = synth_scene(np.random.default_rng(9), region)
    assert analyze(scene.image, legacy, region).reads == analyze(scene.image, model, region).reads


def test_the_version_is_one_estimator_clone_and_refit_keep_nothing_stale(calibrated_model):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from anpr_core.model import PlateModel

    model, _ = calibrated_model
    assert isinstance(model, PlateModel) and model.confidence_calibrator is not None
    params = model.get_params(deep=True)
    assert {"char_model", "plate_verifier", "confidence_calibrator"} <= set(params)
    assert "char_model__mlp__alpha" in params
    from anpr_core.features import row_width

    rows = np.random.default_rng(0).random((20, row_width(grey=True)), np.float32)
    labels = np.array(list("AB" * 10))
    fresh = clone(model)
    with pytest.raises(NotFittedError):
        fresh.char_model.predict_proba(rows)
    refit = copy.deepcopy(model).fit(rows, labels)
    assert refit.confidence_calibrator is None  # it learned another classifier's mistakes
    assert refit.classes_.tolist() == ["A", "B"]


def test_plates_of_one_image_stay_together():
    gray_a, gray_b = np.zeros((4, 4)), np.zeros((4, 4))
    plates = [(gray_a, (0, 0, 1, 1), "A"), (gray_a, (2, 2, 1, 1), "B"), (gray_b, None, "C")]
    assert image_groups(plates) == [0, 0, 1]


def test_the_citation_threshold_is_the_least_that_reaches_the_precision():
    # 600 reads at 0.999..0.8: every read above 0.9 right (about 300), one wrong in ten below
    p = np.linspace(0.999, 0.8, 600)
    right = np.ones(600, bool)
    below = np.flatnonzero(p < 0.9)
    right[below[::10]] = False
    found = citation_threshold(p, right, (0.995, 0.99))
    above = p >= found
    assert right[above].mean() >= 0.995 and above.sum() >= 200
    assert found < 0.9  # it takes in every sure read, not only the first 200
    lower = p >= p[above.sum()]  # one read more: the precision is no longer reached
    assert right[lower].mean() < 0.995 or p[above.sum()] == found
    # too few reads to show a precision: the loosest target itself
    assert citation_threshold(p[:20], right[:20], (0.995, 0.99)) == 0.99
