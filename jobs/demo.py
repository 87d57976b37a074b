"""``anpr demo``: the whole story on synthetic data, in a folder of its own.

Synthesize labeled scenes and plate crops, train a model into a local MLflow store under the
demo folder, measure it on fresh scenes it never saw, and read a few of them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from anpr_core.config import load_region
from jobs.evaluate import evaluate_folders, overall
from jobs.models import load_recognizer
from jobs.recognize import recognize_file
from jobs.runtime import blas_threads
from jobs.synthdata import write_crops, write_scenes
from jobs.train import train

REGION = "us"
TRAIN_SEED, CROP_SEED, EVAL_SEED = 1, 2, 3  # different seeds: evaluation plates are unseen


def say(message: str) -> None:
    """Nothing; prints a demo step as it happens."""
    print(message, flush=True)


def run_demo(workdir: Path, n_scenes: int = 60, n_crops: int = 120, n_eval: int = 30) -> dict:
    """The demo's figures and output paths, after running it in ``workdir``."""
    start = time.perf_counter()
    workdir = Path(workdir).resolve()
    data = workdir / "data"
    region = load_region(REGION)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    workdir.mkdir(parents=True, exist_ok=True)

    say(f"1. synthesizing {n_scenes} scenes and {n_crops} plate crops ({REGION}) in {data}")
    write_scenes(data / "scenes", n_scenes, TRAIN_SEED, region)
    write_crops(data / "crops", n_crops, CROP_SEED, region)
    eval_images = write_scenes(data / "eval_scenes", n_eval, EVAL_SEED, region)

    say(f"2. training a character classifier, tracked in {store}")
    result = train(
        [data / "scenes", data / "crops"], region, experiment="anpr-demo", tracking=store
    )
    say(f"   registered {result.model_uri}" + (" (champion)" if result.champion else ""))
    for key in ("holdout_plate_accuracy", "holdout_char_accuracy", "holdout_detection_recall"):
        if key in result.metrics:
            say(f"   {key:<28} {result.metrics[key]:.3f}")

    say(f"3. evaluating {result.model_uri} on {n_eval} fresh scenes (seed {EVAL_SEED})")
    recognizer = load_recognizer(result.model_uri, REGION, tracking=store)
    figures = overall(evaluate_folders([data / "eval_scenes"], recognizer))
    for key, value in figures.items():
        say(f"   {key:<28} {value if value is None else round(value, 3)}")

    reads_path = workdir / "recognized.jsonl"
    say(f"4. reading {min(3, len(eval_images))} scenes; every line goes to {reads_path}")
    with open(reads_path, "w", encoding="utf-8") as out, blas_threads(1):
        for path in eval_images[:3]:
            line = recognize_file(path, recognizer)
            out.write(json.dumps(line) + "\n")
            texts = [p["text"] for p in line.get("plates", [])] or ["(no plate)"]
            label = path.with_suffix(".txt").read_text(encoding="utf-8").split("\t")[-1].strip()
            say(f"   {path.name}: read {', '.join(texts[:1])}, label {label}")

    say(f"done in {time.perf_counter() - start:.0f} s. Look at:")
    say(f"   data        {data}")
    say(f"   reads       {reads_path}")
    say(f"   MLflow UI   mlflow ui --backend-store-uri {store}")
    return {"model_uri": result.model_uri, "evaluation": figures, "reads": str(reads_path)}
