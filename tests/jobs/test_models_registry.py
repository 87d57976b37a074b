"""The registry a user manages: the promotion gate of `anpr train --promote`, and
`anpr models list|promote|compare`, on a store with a good version 1 (champion) and a
deliberately worse version 2 (trained on a handful of plates)."""

import functools
import re
import shutil
import warnings

import pytest

from anpr_core.classify import build_classifier
from anpr_core.config import load_region
from anpr_jobs.compare import compare_versions
from anpr_jobs.models import Standing, promotes
from anpr_jobs.synthdata import write_crops
from anpr_jobs.train import train

NAME = "anpr-char-classifier-us"
FAST_CLASSIFIER = {"hidden_units": 48, "max_iter": 60}  # as in conftest.py
N_CROPS = 30  # as written by the `synthetic` fixture


def store_uri(folder) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory, synthetic) -> dict:
    """A store with version 1 (trained on the synthetic crops, champion) and version 2
    (trained on 6 plates, refused by the promotion gate on the crops)."""
    import mlflow

    root = tmp_path_factory.mktemp("registry")
    few = root / "few"
    write_crops(few, 6, 3, load_region("us"))
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Stochastic Optimizer.*")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setattr(
            "anpr_core.samples.build_classifier",
            functools.partial(build_classifier, **FAST_CLASSIFIER),
        )
        patch.setenv("MLFLOW_TRACKING_URI", store_uri(root))
        first = train([synthetic["crops"]], "us")
        worse = train([few], "us", promote=True, eval_dirs=[synthetic["crops"]])
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return {"root": root, "uri": store_uri(root), "first": first, "worse": worse, "few": few}


@pytest.fixture
def store_copy(registry, tmp_path, monkeypatch) -> str:
    """A private copy of the registry's store (artifacts stay shared) as MLFLOW_TRACKING_URI."""
    shutil.copy(registry["root"] / "mlflow.db", tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(tmp_path))
    return store_uri(tmp_path)


def champion_of(uri: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient(uri).get_model_version_by_alias(NAME, "champion").version)


def test_the_gate_refuses_a_worse_model_and_logs_why(registry):
    from mlflow import MlflowClient

    worse = registry["worse"]
    promotion = worse.promotion
    assert worse.version == "2" and not worse.champion
    assert promotion.decision == "refused" and promotion.champion_before == "1"
    assert promotion.n_images == N_CROPS
    assert promotion.new_plate_accuracy < promotion.champion_plate_accuracy
    assert champion_of(registry["uri"]) == "1"
    run = MlflowClient(registry["uri"]).get_run(worse.run_id)
    assert run.data.tags["promotion.decision"] == "refused"
    assert run.data.tags["promotion.eval_data"] == str(registry["first"].data["data_dirs"][0])
    assert run.data.metrics["promotion_new_plate_accuracy"] == promotion.new_plate_accuracy
    assert run.data.metrics["promotion_champion_plate_accuracy"] == (
        promotion.champion_plate_accuracy
    )
    assert "champion stays 1" in promotion.message()


def test_the_gate_promotes_at_equal_accuracy_and_train_prints_it(store_copy, synthetic, anpr):
    status, out, _ = anpr("train", synthetic["crops"], "--promote")
    assert status == 0
    assert f"models:/{NAME}/3 (champion)" in out
    line = next(line for line in out.splitlines() if line.startswith("promotion:"))
    new, old = re.findall(r"version 3 ([\d.]+) vs champion 1 ([\d.]+)", line)[0]
    assert new == old and "version 3 is now champion" in line  # same data and seed: a tie
    assert champion_of(store_copy) == "3"


@pytest.mark.parametrize(
    ("new", "champion", "promoted"),
    [
        (Standing(0.80, 0.96, 50), Standing(0.70, 1.0, 40), False),  # two plates' worth worse
        (Standing(0.80, 0.98, 50), Standing(0.70, 1.0, 40), True),  # one plate: noise
        (Standing(0.80, None, 0), Standing(0.70, 1.0, 40), True),  # cites nothing
        (Standing(0.80, 0.90, 10), Standing(0.70, None, 0), True),  # nothing to compare
        (Standing(0.69, 1.0, 50), Standing(0.70, 0.9, 40), False),  # fewer plates read
    ],
)
def test_the_gate_weighs_citation_precision_beside_plate_accuracy(new, champion, promoted):
    assert promotes(new, champion) is promoted


def test_eval_without_promote_is_a_usage_error(store_copy, synthetic, anpr):
    status, out, err = anpr("train", synthetic["crops"], "--eval", synthetic["crops"])
    assert status == 2 and out == "" and "pass --promote too" in err


def test_models_list_shows_versions_aliases_metrics_and_time(registry, store_copy, anpr):
    status, out, _ = anpr("models", "list", "--region", "us")
    header, *rows = out.splitlines()
    assert status == 0 and header.split()[:6] == [
        "model",
        "version",
        "aliases",
        "plate",
        "char",
    ] + ["detect"]
    cells = [row.split() for row in rows]
    assert [c[1] for c in cells] == ["2", "1"] and [c[2] for c in cells] == ["-", "champion"]
    plate = registry["first"].metrics["holdout_plate_accuracy"]
    assert cells[1][3] == f"{plate:.3f}"
    assert header.split()[6:9] == ["ece", "cite_prec", "threshold"]
    ece = registry["first"].metrics["holdout_ece"]
    threshold = registry["first"].metrics.get("citation_threshold")
    assert cells[1][6] == f"{ece:.3f}"
    assert cells[1][8] == ("-" if threshold is None else f"{threshold:.3f}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", " ".join(cells[1][-2:]))
    assert anpr("models", "list", "--region", "eu")[1] == "no registered model versions yet\n"


def test_models_promote_moves_the_champion_by_hand(store_copy, anpr):
    status, out, _ = anpr("models", "promote", "2", "--region", "us")
    assert status == 0 and out == f"{NAME}: champion is version 2 (was 1)\n"
    assert champion_of(store_copy) == "2"


def test_compare_counts_plates_each_version_alone_reads_right(registry, store_copy, synthetic):
    found = compare_versions("champion", "2", [synthetic["crops"]], "us")
    assert found.uri_a == f"models:/{NAME}/1" and found.uri_b == f"models:/{NAME}/2"
    right_a = found.summary_a["plate_accuracy"] * N_CROPS
    right_b = found.summary_b["plate_accuracy"] * N_CROPS
    assert len(found.only_a) - len(found.only_b) == pytest.approx(right_a - right_b)
    assert len(found.only_a) > 0
    assert all(d.read_a == d.label != d.read_b for d in found.only_a)
    assert all(d.read_b == d.label != d.read_a for d in found.only_b)


def test_models_compare_prints_figures_counts_and_examples(store_copy, synthetic, anpr):
    status, out, _ = anpr("models", "compare", "1", "2", synthetic["crops"])
    lines = out.splitlines()
    assert status == 0 and lines[1].startswith(f"models:/{NAME}/1 ") and f"{N_CROPS}" in lines[1]
    assert lines[0].split()[1:] == ["images", "plate", "char", "ece", "cite_prec", "cite_cov"]
    assert all(len(line.split()) == 7 for line in lines[1:3])
    only_1 = next(line for line in lines if "read right by v1 only" in line)
    examples = [line for line in lines if line.startswith("  ")]
    assert int(only_1.split()[0]) > 0 and 0 < len(examples) <= 6
    assert all("; v1 read " in line and ", v2 read " in line for line in examples)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "promote", "9"], f"{NAME} has no version 9"),
        (["models", "promote", "best"], f"{NAME} has no alias 'best'"),
        (["models", "promote", "1", "--region", "xx"], "unknown region 'xx'"),
        (["models", "promote", "1", "--region", "eu"], "no model versions for region eu"),
        (["models", "list", "--region", "mars"], "unknown region 'mars'"),
        (["models", "compare", "1", "7", "{crops}"], f"{NAME} has no version 7"),
        (["models", "compare", "1", "2", "{missing}"], "labeled data folder not found"),
        (["models", "compare", "1", "2", "{crops}", "--region", "eu"], "region eu"),
        (["models", "drop"], "invalid choice: 'drop'"),
    ],
)
def test_models_failures_are_one_line_errors(store_copy, synthetic, tmp_path, anpr, argv, message):
    values = {"crops": synthetic["crops"], "missing": tmp_path / "missing"}
    status, out, err = anpr(*(a.format(**values) for a in argv))
    assert status != 0 and out == ""
    assert err.startswith("anpr: error: ") and err.count("\n") == 1, err
    assert message in err
