"""The `anpr` command end to end on synthetic data: synth, train, evaluate, recognize, errors."""

import csv
import json
import re
import subprocess
import sys

import pytest

from anpr_core import datasets

N_CROPS, N_SCENES = 30, 8  # as written by the `synthetic` fixture
EVALUATE_KEYS = {
    "n_images",
    "plate_accuracy",
    "char_accuracy",
    "detection_recall",
    "ms_per_image",
    "ece",
    "ece_if_calibrated",
    "precision_at",
    "coverage_at",
    "citation_precision",
    "citation_coverage",
    "citation_threshold",
}


def test_synth_writes_both_labeled_formats(synthetic):
    scenes, crops = synthetic["scenes"], synthetic["crops"]
    assert len(list(scenes.glob("*.jpg"))) == len(list(scenes.glob("*.txt"))) == N_SCENES
    for label in scenes.glob("*.txt"):
        fields = label.read_text().strip().split("\t")
        assert fields[0] == label.with_suffix(".jpg").name and len(fields) == 6
        assert all(v.isdigit() for v in fields[1:5]) and fields[5].isalnum()
    with open(crops / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "state", "plate"] and len(rows) == N_CROPS
    assert all((crops / "images" / row["file"]).is_file() for row in rows)
    assert len(datasets.read_labeled(crops)) == N_CROPS


def test_synth_is_deterministic_for_a_seed(tmp_path, anpr):
    for name in ("a", "b"):
        assert anpr("synth", tmp_path / name, "--count", "2", "--seed", "5")[0] == 0
    for txt in (tmp_path / "a").glob("*.txt"):
        assert txt.read_text() == (tmp_path / "b" / txt.name).read_text()


def test_train_prints_the_model_uri_and_metrics(workdir, synthetic, anpr):
    status, out, _ = anpr("train", synthetic["crops"], "--region", "us")
    assert status == 0
    assert "models:/anpr-char-classifier-us/1 (champion)" in out
    assert "holdout_plate_accuracy" in out and "crops_plate_accuracy" in out
    assert "and 0 synthetic" in out
    status, out, _ = anpr("train", synthetic["crops"], "--seed", "1", "--synthetic", "6")
    assert status == 0 and "models:/anpr-char-classifier-us/2\n" in out
    used = int(re.search(r"and (\d+) synthetic", out).group(1))
    assert 0 < used <= 6
    run_id = out.split("run ")[1].split()[0]
    assert mlflow_params(run_id)["synthetic_plates"] == "6"


def mlflow_params(run_id: str) -> dict[str, str]:
    """The parameters logged on MLflow run ``run_id`` of the current tracking store."""
    from mlflow import MlflowClient

    return MlflowClient().get_run(run_id).data.params


def test_train_on_local_workers_registers_the_model_training_in_process_gives(
    workdir, synthetic, anpr, trained
):
    from mlflow import MlflowClient

    status, out, _ = anpr("train", synthetic["crops"], synthetic["scenes"], "--workers", "2")
    assert status == 0, out
    assert "models:/anpr-char-classifier-us/1 (champion)" in out
    run_id = out.split("run ")[1].split()[0]
    run = MlflowClient().get_run(run_id)
    assert run.data.params["feature_extraction"] == "local cluster (2 workers)"
    in_process = trained["result"]  # the same data and seed, trained in this process
    assert (
        MlflowClient(trained["uri"]).get_run(in_process.run_id).data.params["feature_extraction"]
        == "in-process"
    )
    figures = {k: v for k, v in run.data.metrics.items() if not k.endswith("ms_per_image")}
    assert figures == {k: v for k, v in in_process.metrics.items() if k in figures}
    assert len(figures) > 10 and "holdout_plate_accuracy" in figures


def test_train_takes_a_scheduler_or_local_workers_not_both(workdir, synthetic, anpr):
    status, _, err = anpr("train", synthetic["crops"], "--workers", "2", "--scheduler", "x:1")
    assert status != 0 and "not allowed with argument" in err


def test_evaluate_json_has_exactly_the_documented_keys(use_trained, synthetic, anpr):
    status, out, _ = anpr("evaluate", synthetic["crops"], "--json")
    figures = json.loads(out)
    assert status == 0 and set(figures) == EVALUATE_KEYS
    assert figures["n_images"] == N_CROPS and figures["detection_recall"] is None
    assert 0.0 <= figures["plate_accuracy"] <= figures["char_accuracy"] <= 1.0
    thresholds = ["0.5", "0.8", "0.9", "0.95", "0.99"]
    assert list(figures["precision_at"]) == list(figures["coverage_at"]) == thresholds
    coverages = list(figures["coverage_at"].values())
    assert coverages == sorted(coverages, reverse=True) and 0 <= figures["ece"] <= 1
    assert figures["citation_coverage"] <= figures["coverage_at"]["0.8"]

    status, out, _ = anpr("evaluate", synthetic["scenes"], "--json", "--split", "test")
    figures = json.loads(out)
    scenes = datasets.read_labeled(synthetic["scenes"])
    assert figures["n_images"] == sum(datasets.split_of(i.name) == "test" for i in scenes)
    assert figures["detection_recall"] is None or 0 <= figures["detection_recall"] <= 1


def test_evaluate_table_shows_folders_and_progress(use_trained, synthetic, anpr):
    status, out, err = anpr(
        "evaluate", synthetic["crops"], synthetic["scenes"], "--model",
        "models:/anpr-char-classifier-us/1",
    )  # fmt: skip
    assert status == 0
    assert "models:/anpr-char-classifier-us/1" in out
    assert "crops" in out and "scenes" in out and "\nall " in out
    assert f"{N_CROPS + N_SCENES}/{N_CROPS + N_SCENES}" in err
    assert "expected calibration error" in out and "\ntickets " in out
    reads = [line.split() for line in out.split("confidence    reads")[1].splitlines()[1:]]
    table = [row for row in reads if row and re.fullmatch(r"\d\.\d-\d\.\d", row[0])]
    assert sum(int(row[1]) for row in table) == N_CROPS + N_SCENES  # every image in one bin


def test_recognize_prints_one_json_line_per_image(use_trained, synthetic, tmp_path, anpr):
    scene = sorted(synthetic["scenes"].glob("*.jpg"))[0]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(scene.read_bytes()[:200])
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n")
    status, out, err = anpr("recognize", scene, corrupt, text, tmp_path / "gone.jpg")
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 1 and len(lines) == 4 and "Traceback" not in err
    good, *bad = lines
    assert set(good) == {"file", "plates", "elapsed_ms", "model_version"}
    assert good["file"] == str(scene) and good["model_version"] == "1"
    for plate in good["plates"]:
        assert {"text", "confidence", "detection_score", "box", "quad", "alternatives"} <= set(
            plate
        )
    assert [set(line) for line in bad] == [{"file", "error"}] * 3
    assert "decode" in bad[0]["error"] and "missing" in bad[2]["error"]


def test_recognize_crop_reads_the_whole_image(use_trained, synthetic, anpr):
    crop = sorted((synthetic["crops"] / "images").glob("*.png"))[0]
    status, out, _ = anpr("recognize", "--crop", crop)
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert status == 0 and line["model_version"] == "1"
    assert all(p["box"][:2] == [0, 0] for p in line["plates"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "{crops}", "--region", "xx"], "unknown region 'xx'"),
        (["recognize", "{scene}", "--region", "mars"], "unknown region 'mars'"),
        (["train", "{crops}", "--region", "xx"], "unknown region 'xx'"),
        (["evaluate", "{crops}", "--model", "models:/anpr-char-classifier-us/7"], "no version 7"),
        (["evaluate", "{crops}", "--model", "models:/nope@best"], "nope has no alias 'best'"),
        (["evaluate", "{crops}", "--region", "eu"], "no champion for region eu"),
        (["recognize", "{scene}", "--model", "{missing}"], "no MLflow model at"),
        (["evaluate", "{missing}"], "labeled data folder not found"),
        (["train", "{missing}"], "labeled data folder not found"),
        (["evaluate", "{crops}", "--split", "dev"], "invalid choice: 'dev'"),
        (["synth", "{missing}", "--count", "0"], "must be at least 1"),
        (["recognize"], "required: IMAGE"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_failures_are_one_line_errors(use_trained, synthetic, tmp_path, anpr, argv, message):
    values = {
        "crops": synthetic["crops"],
        "scene": sorted(synthetic["scenes"].glob("*.jpg"))[0],
        "missing": tmp_path / "missing",
    }
    status, out, err = anpr(*(a.format(**values) for a in argv))
    assert status != 0 and out == ""
    assert err.startswith("anpr: error: ") and err.count("\n") == 1, err
    assert message in err


def test_a_bug_shows_as_a_bug_and_debug_shows_every_traceback(tmp_path, anpr, monkeypatch):
    from anpr_jobs import cli

    def library_bug(args):
        return int(float("nan"))  # a ValueError from Python's own code, not a refusal of ours

    monkeypatch.setitem(cli.COMMANDS, "synth", library_bug)
    with pytest.raises(ValueError, match="cannot convert float NaN"):
        cli.main(["synth", str(tmp_path)])
    monkeypatch.setitem(cli.COMMANDS, "synth", lambda args: {}["missing"])
    with pytest.raises(KeyError):
        cli.main(["synth", str(tmp_path)])
    missing = tmp_path / "missing"
    assert anpr("evaluate", missing)[0] == 1  # the user's mistake: one line
    with pytest.raises(FileNotFoundError, match="labeled data folder not found"):
        cli.main(["evaluate", str(missing), "--debug"])
    monkeypatch.setenv("ANPR_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["evaluate", str(missing)])


def test_an_empty_working_directory_says_to_train_first(workdir, synthetic, anpr, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    status, _, err = anpr("evaluate", synthetic["crops"])
    assert status == 1 and "run `anpr train DATA --region us` first" in err


def test_the_console_script_fails_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from anpr_jobs.cli import main; sys.exit(main())",
         "evaluate", str(tmp_path / "absent")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"anpr: error: labeled data folder not found: {tmp_path / 'absent'}"
    ]


@pytest.mark.realdata
def test_evaluate_split_test_on_real_crops(use_trained, shared_data, anpr):
    crops = shared_data / "openalpr-benchmarks" / "plates_us"
    if not crops.is_dir():
        pytest.skip(f"{crops} is absent")
    status, out, _ = anpr("evaluate", crops, "--json", "--split", "test")
    figures = json.loads(out)
    expected = sum(datasets.split_of(i.name) == "test" for i in datasets.read_labeled(crops))
    assert status == 0 and figures["n_images"] == expected and set(figures) == EVALUATE_KEYS


def test_the_command_reference_is_current_and_every_option_is_explained():
    import argparse
    from pathlib import Path

    from anpr_jobs.arguments import build_parser, reference_markdown, subcommands

    docs = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    assert docs.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/cli.md is out of date: python -m anpr_jobs.arguments > docs/cli.md"
    )
    unexplained = [
        f"{name} {action.option_strings or action.metavar}"
        for name, _, parser in [("anpr", "", build_parser()), *subcommands(build_parser())]
        for action in parser._actions  # noqa: SLF001
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)  # noqa: SLF001
        and not action.help
    ]
    assert unexplained == []
