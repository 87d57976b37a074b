"""`anpr demo` and the benchmarks (pipeline_speed.py, accuracy_cv.py) do what they promise."""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline_speed.py"
ACCURACY_CV = BENCHMARK.with_name("accuracy_cv.py")
SPEED_KEYS = {"n_images", "stage_ms", "pipeline_ms", "decode_ms", "ratio_to_decode"}


def pipeline_speed():
    """The benchmark script as a module."""
    spec = importlib.util.spec_from_file_location("pipeline_speed", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pipeline_speed_json_has_the_documented_keys(use_trained, synthetic, capsys):
    assert pipeline_speed().main([str(synthetic["scenes"]), "--json", "--limit", "3"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == SPEED_KEYS and figures["n_images"] == 3
    assert {"decode", "localize", "segment"} <= set(figures["stage_ms"])
    assert figures["ratio_to_decode"] > 0 and figures["pipeline_ms"] > 0


def test_pipeline_speed_pairs_two_versions_round_by_round(use_trained, synthetic, capsys):
    uri = "models:/anpr-char-classifier-us/1"
    argv = [str(synthetic["scenes"]), "--limit", "2", "--model", uri, "--vs", uri]
    assert pipeline_speed().main([*argv, "--rounds", "3", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert len(figures["first"]) == len(figures["second"]) == len(figures["ratios"]) == 3
    for a, b, ratio in zip(figures["first"], figures["second"], figures["ratios"], strict=True):
        assert set(a) == set(b) == SPEED_KEYS and a["n_images"] == b["n_images"] == 2
        assert ratio == round(b["pipeline_ms"] / a["pipeline_ms"], 3)
    assert min(figures["ratios"]) <= figures["median_ratio"] <= max(figures["ratios"])
    assert pipeline_speed().main([*argv, "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "second / first, round by round" in out


def test_pipeline_speed_without_a_champion_says_so(workdir, synthetic, capsys):
    assert pipeline_speed().main([str(synthetic["scenes"]), "--json"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "anpr train" in err


def test_demo_trains_and_reprocesses_an_archive_in_its_own_folder(tmp_path, monkeypatch, anpr):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "demo"
    argv = ["demo", "--workdir", demo, "--scenes", "12", "--crops", "24", "--archive", "10"]
    status, out, err = anpr(*argv, "--workers", "1")
    assert status == 0, err
    assert "models:/anpr-char-classifier-us/1 (champion)" in out
    assert (demo / "mlflow.db").is_file() and (demo / "mlruns").is_dir()
    rows = pd.read_parquet(demo / "reads")
    assert len(rows) == 10 and set(rows["model_version"]) == {"1"}
    assert "plate accuracy" in out
    assert (demo / "tickets" / "pages" / "review-2026-10-05.html").is_file()
    summary = json.loads((demo / "tickets" / "summaries" / "2026-10-05.json").read_text())
    assert summary["in_night"] + summary["outside_night"] == 10  # one event per archive image
    assert summary["citations"] + summary["review"] + summary["duplicates"] == summary["speeding"]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    # a second demo in the same folder adds version 2 and reads the archive with it
    status, out, err = anpr(*argv, "--workers", "1")
    assert status == 0 and "registered models:/anpr-char-classifier-us/2\n" in out, err
    assert set(pd.read_parquet(demo / "reads")["model_version"]) == {"2"}


def test_demo_on_a_labeled_folder_reads_it_where_it_lies(tmp_path, synthetic, anpr):
    import pandas as pd

    scenes = synthetic["scenes"]
    before = sorted(p.name for p in scenes.iterdir())
    demo = tmp_path / "demo"
    status, out, err = anpr("demo", "--workdir", demo, "--data", scenes, "--workers", "1")
    assert status == 0, err
    rows = pd.read_parquet(demo / "reads")
    assert sorted(rows["image_key"]) == sorted(str(p) for p in scenes.resolve().glob("*.jpg"))
    assert sorted(p.name for p in scenes.iterdir()) == before  # nothing written into the data
    assert "(training images included)" in out


def test_demo_refuses_a_missing_data_folder(tmp_path, anpr):
    status, _, err = anpr("demo", "--workdir", tmp_path / "d", "--data", tmp_path / "absent")
    assert status == 1 and "not found" in err


def accuracy_cv():
    """The cross-validation script as a module."""
    spec = importlib.util.spec_from_file_location("accuracy_cv", ACCURACY_CV)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_cv_shifts_crop_the_image_and_move_the_label_box_with_it():
    image = np.arange(40 * 60, dtype=np.int32).reshape(40, 60)
    box = (10, 5, 20, 8)
    for k in range(3):
        moved_image, moved_box = accuracy_cv().shifted(image, box, k)
        assert moved_image.shape == (40 - k, 60 - k)
        x, y, w, h = moved_box
        assert (w, h) == (20, 8)
        assert np.array_equal(moved_image[y : y + h, x : x + w], image[5 : 5 + h, 10 : 10 + w])
    assert accuracy_cv().shifted(image, None, 2)[1] is None


def test_accuracy_cv_tells_where_a_plate_was_lost(use_trained, synthetic):
    from anpr_core.datasets import read_scenes
    from anpr_core.pipeline import analyze
    from anpr_jobs.models import load_recognizer

    recognizer = load_recognizer(None, "us")
    model, region = recognizer.model, recognizer.region
    module = accuracy_cv()
    stages = []
    for item in read_scenes(synthetic["scenes"]):
        gray = cv2.imread(str(item.path), cv2.IMREAD_GRAYSCALE)
        box, text = item.plates[0]
        reads = analyze(gray, model, region).reads
        stage = module.lost_at(gray, box, text, reads, region)
        stages.append(stage)
        if stage == "right":  # the same read against another label is a misread
            assert module.lost_at(gray, box, text + "X", reads, region) == "misread"
    assert "right" in stages and set(stages) <= set(module.STAGES)
    blank = np.full((480, 640), 128, np.uint8)
    reads = analyze(blank, model, region).reads
    assert module.lost_at(blank, (100, 100, 120, 60), "ABC123", reads, region) == "not_found"


def test_accuracy_cv_captures_what_each_fold_calibrator_learned_from(synthetic, tmp_path, capsys):
    import pickle

    from anpr_core.calibrate import EVIDENCE, fit_calibrator
    from anpr_jobs import cli

    crops = tmp_path / "crops"  # enough that each fold's cross-fitting reads 20 or more plates
    assert cli.main(["synth", str(crops), "--count", "60", "--crops", "--seed", "3"]) == 0
    capsys.readouterr()
    capture = tmp_path / "folds.pkl"
    data = [str(crops), str(synthetic["scenes"])]
    argv = ["--train", *data, "--eval", *data, "--folds", "2", "--json", "--capture", str(capture)]
    assert accuracy_cv().main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    captured = pickle.loads(capture.read_bytes())
    assert captured["figures"] == figures and len(captured["folds"]) == 2
    for fold in captured["folds"]:
        evidence, correct = fold["calibration"]
        assert evidence.shape == (len(correct), len(EVIDENCE)) and len(correct) >= 20
        refit = fit_calibrator(evidence, correct)  # the fold model's calibrator, fitted again
        assert refit.citation_threshold_ == fold["citation_threshold"]
        assert len(fold["evaluated"]) <= fold["n_evaluated"]
        for *_, row, _, confidence in fold["evaluated"]:
            assert row.shape == (len(EVIDENCE),) and 0.0 <= confidence <= 1.0
    assert sum(f["n_evaluated"] for f in captured["folds"]) == figures["n_images"]
    right = sum(read == label for f in captured["folds"] for _, read, label, *_ in f["evaluated"])
    assert right / figures["n_images"] == figures["plate_accuracy"]
