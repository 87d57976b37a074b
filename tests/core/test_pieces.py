"""anpr_core.pieces: a piece that stands out from its row is found, and weighs on the read."""

import pickle

import cv2
import numpy as np
import pytest

from anpr_core.classify import REJECT
from anpr_core.config import load_region
from anpr_core.model import PlateModel
from anpr_core.pieces import PIECE_FEATURES, context_odds, piece_features, with_context
from anpr_core.records import CharImage
from anpr_core.samples import fit_char_model, plate_samples
from anpr_core.synth import synth_crops


def _piece(x: int, width: int, height: int = 40, stroke: int = 4) -> CharImage:
    image = np.zeros((height, width), np.uint8)
    cv2.rectangle(image, (0, 0), (width - 1, height - 1), 255, stroke)
    return CharImage(image, (x, 10, width, height))


def test_features_place_each_piece_against_its_row():
    row = [_piece(0, 20, stroke=9), *(_piece(60 + 25 * i, 20) for i in range(5))]
    features = piece_features(row)
    assert features.shape == (6, len(PIECE_FEATURES))
    column = dict(zip(PIECE_FEATURES, features.T, strict=True))
    assert column["first"].tolist() == [1, 0, 0, 0, 0, 0]
    assert column["last"].tolist() == [0, 0, 0, 0, 0, 1]
    assert column["pitch_after"][0] > 0.5 and abs(column["pitch_after"][2]) < 1e-9
    assert column["stroke"][0] > 0.3 and column["abs_stroke"][0] == column["stroke"][0]
    assert piece_features([]).shape == (0, len(PIECE_FEATURES))


def test_context_odds_multiply_the_reject_odds_and_keep_the_characters_ratios():
    probs = np.array([[0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])  # columns: A, B, REJECT
    same = with_context(probs, 2, np.ones(2))
    assert same == pytest.approx(probs)
    raised = with_context(probs, 2, np.array([9.0, 1 / 9]))
    assert raised.sum(axis=1) == pytest.approx([1.0, 1.0])
    odds = raised[:, 2] / (1 - raised[:, 2])
    assert odds == pytest.approx([0.25 * 9, 4.0 / 9])
    assert raised[:, 0] / raised[:, 1] == pytest.approx(probs[:, 0] / probs[:, 1])


def _with_emblem(crop) -> tuple[np.ndarray, str]:
    """The crop's grey image widened on the left, with a thick-stroked emblem set apart from
    the characters (a wheelchair symbol or a state's seal), and its text."""
    x, y, w, h = crop.char_boxes[0]
    gray = cv2.cvtColor(crop.image, cv2.COLOR_BGR2GRAY)
    gray = cv2.copyMakeBorder(gray, 0, 0, 3 * w, 0, cv2.BORDER_REPLICATE)
    cv2.rectangle(gray, (x + w // 2, y), (x + w // 2 + int(1.4 * w), y + h), 0, max(3, w // 3))
    return gray, crop.text


def test_a_trained_piece_model_finds_the_emblem_beside_the_characters():
    region = load_region("us")
    crops = [c for _, c in synth_crops(60, seed=4, region=region)]
    plates = [(gray, None, text) for gray, text in map(_with_emblem, crops[:40])]
    model, final = fit_char_model(plates, region, seed=0, calibration_folds=1, max_iter=150)
    assert final.not_char.sum() > 0 and model.piece_model is not None
    first, others = [], []
    for crop in crops[40:]:
        gray, text = _with_emblem(crop)
        found = plate_samples(gray, text, region, model=model)
        if found is None or not found.aligned:
            continue
        odds = context_odds(model.piece_model, [found.chars])[0]
        not_char = np.array([label == REJECT for label in found.labels])
        first += odds[not_char].tolist()
        others += odds[~not_char].tolist()
    assert first and others
    assert np.median(first) > 1 > np.median(others)


def test_a_plate_model_pickled_before_piece_models_loads_without_one():
    model = PlateModel("classifier", "verifier", "calibrator")
    state = model.__getstate__()
    del state["piece_model"]
    old = PlateModel.__new__(PlateModel)
    old.__setstate__(state)
    assert old.piece_model is None and old.get_params()["plate_verifier"] == "verifier"
    assert pickle.loads(pickle.dumps(old)).piece_model is None
