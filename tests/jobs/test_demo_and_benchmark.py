"""`anpr demo` and benchmarks/pipeline_speed.py: they run and print what they promise."""

import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline_speed.py"
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
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    # a second demo in the same folder adds version 2 and reads the archive with it
    status, out, err = anpr(*argv, "--workers", "1")
    assert status == 0 and "registered models:/anpr-char-classifier-us/2\n" in out, err
    assert set(pd.read_parquet(demo / "reads")["model_version"]) == {"2"}
