"""Milliseconds per image for each pipeline stage over a scenes folder, and the ratio of the
whole pipeline to decoding the same JPEG bytes with ``cv2.imdecode``.

    python benchmarks/pipeline_speed.py DATA [--model URI] [--region R] [--json] [--limit N]
        [--vs URI [--rounds N]]

Stages: decode, localize, verify (the plate verifier ranking the candidates, when the model
has one), segment, describe (character normalization and the model's feature steps), classify
(the model's final estimator), postprocess. Without ``--model``, the region's champion.

``--vs URI`` pairs the model with a second version in one process: ``--rounds`` rounds, each
measuring both over the same images (which goes first alternates), and the ratio of the second
one's pipeline time to the first's round by round. On a shared machine whose speed drifts, the
ratio within a round holds where two separate runs' figures do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import cv2
import numpy as np

from anpr_core import classify, datasets
from anpr_core.errors import AnprError
from anpr_core.model import char_model_of
from anpr_core.pipeline import StageTimer, analyze


class SplitTimer:
    """A model wrapper that times the feature steps and the final estimator apart.

    ``analyze`` times ``char_vectors`` plus the classifier together as "describe+classify";
    this charges the final estimator to "classify" (its ``predict_proba``, or for
    ``build_classifier``'s MLP, which ``classify.mlp_probabilities`` computes directly, its
    ``classify.mlp_output``), and ``describe`` is the remainder.
    """

    def __init__(self, model, timer: StageTimer):
        self.model = model
        self.char_model = char_model_of(model)
        self.features = self.char_model[:-1]  # sliced once: a slice is a new Pipeline each time
        self.timer = timer
        self.classes_ = model.classes_

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict_proba(self, rows):
        features = self.features.transform(rows)
        with self.timer.stage("classify"):
            return self.char_model[-1].predict_proba(features)

    @contextmanager
    def timing_mlp(self):
        """Within: ``classify.mlp_output`` charged to "classify"."""
        untimed = classify.mlp_output

        def timed(mlp, features):
            with self.timer.stage("classify"):
                return untimed(mlp, features)

        classify.mlp_output = timed
        try:
            yield
        finally:
            classify.mlp_output = untimed


def splittable(model) -> bool:
    """Whether ``model`` is a Pipeline whose feature steps and estimator can be timed apart."""
    char_model = char_model_of(model)
    steps = getattr(char_model, "steps", [])
    return len(steps) > 1 and hasattr(model, "classes_")


def image_bytes(folder: Path, limit: int | None) -> list[tuple[str, bytes]]:
    """(name, file bytes) of the labeled scenes in ``folder``, each file read once."""
    if datasets.dataset_kind(folder) != "scenes":
        raise ValueError(f"{folder} is a crops folder: the speed benchmark needs scenes")
    items = datasets.read_scenes(folder)[:limit]
    if not items:
        raise ValueError(f"{folder} holds no labeled scenes")
    return [(item.name, item.path.read_bytes()) for item in items]


def measure(images: list[tuple[str, bytes]], recognizer) -> dict:
    """The benchmark's figures: n_images, stage_ms, pipeline_ms, decode_ms, ratio_to_decode."""
    timer = StageTimer()
    split = splittable(recognizer.model)
    model = SplitTimer(recognizer.model, timer) if split else recognizer.model
    warm_up = cv2.imdecode(np.frombuffer(images[0][1], np.uint8), cv2.IMREAD_COLOR)
    if warm_up is not None:  # first calls pay for lazy imports and allocations
        analyze(warm_up, recognizer.model, recognizer.region, recognizer.settings)
    with model.timing_mlp() if split else nullcontext():
        decode_total, pipeline_total = timed_passes(images, model, recognizer, timer)
    n = len(images)
    stages = {"decode": decode_total / n}
    stages.update({name: ms / n for name, ms in timer.ms.items()})
    if split:
        combined = stages.pop("describe+classify", 0.0)
        stages["describe"] = combined - stages.get("classify", 0.0)
    order = ["decode", "localize", "verify", "segment", "describe", "classify", "postprocess"]
    stage_ms = {k: round(stages[k], 3) for k in sorted(stages, key=_stage_order(order))}
    return {
        "n_images": n,
        "stage_ms": stage_ms,
        "pipeline_ms": round(pipeline_total / n, 3),
        "decode_ms": round(decode_total / n, 3),
        "ratio_to_decode": round(pipeline_total / decode_total, 2) if decode_total else None,
    }


def timed_passes(images, model, recognizer, timer: StageTimer) -> tuple[float, float]:
    """(milliseconds decoding, milliseconds in the pipeline), summed over ``images``."""
    decode_total = pipeline_total = 0.0
    for _, data in images:
        start = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        decode_total += (time.perf_counter() - start) * 1000
        if image is None:
            raise ValueError("a labeled scene is not a readable image")
        start = time.perf_counter()
        analyze(image, model, recognizer.region, recognizer.settings, timer)
        pipeline_total += (time.perf_counter() - start) * 1000
    return decode_total, pipeline_total


def _stage_order(order: list[str]):
    return lambda name: (order.index(name) if name in order else len(order), name)


def print_table(figures: dict, recognizer) -> None:
    """Nothing; prints the figures for a person."""
    print(f"model {recognizer.uri} (region {recognizer.region.name}), {figures['n_images']} images")
    for stage, ms in figures["stage_ms"].items():
        print(f"  {stage:<14} {ms:9.2f} ms")
    print(f"  {'pipeline':<14} {figures['pipeline_ms']:9.2f} ms  (without decode)")
    print(f"  ratio to decode {figures['ratio_to_decode']}")


def print_pair(figures: dict, first, second) -> None:
    """Nothing; prints a ``paired`` measurement for a person."""
    for name, recognizer in (("first", first), ("second", second)):
        print(f"{name}: {recognizer.uri}")
        for run in figures[name]:
            ms, ratio = run["pipeline_ms"], run["ratio_to_decode"]
            print(f"  pipeline {ms:9.2f} ms, ratio to decode {ratio}")
    ratios, median = figures["ratios"], figures["median_ratio"]
    print(f"second / first, round by round: {ratios} (median {median})")


def paired(images, first, second, rounds: int) -> dict:
    """``measure`` of two recognizers over ``rounds`` rounds, the order alternating: each one's
    figures per round, and the ratio of the second's pipeline time to the first's in each."""
    runs: dict[str, list[dict]] = {"first": [], "second": []}
    for k in range(rounds):
        order = [("first", first), ("second", second)]
        for name, recognizer in order if k % 2 == 0 else order[::-1]:
            runs[name].append(measure(images, recognizer))
    ratios = [
        round(b["pipeline_ms"] / a["pipeline_ms"], 3)
        for a, b in zip(runs["first"], runs["second"], strict=True)
    ]
    return {**runs, "ratios": ratios, "median_ratio": float(np.median(ratios))}


def main(argv=None) -> int:
    """Exit status of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, metavar="DATA", help="a labeled scenes folder")
    parser.add_argument("--model", metavar="URI", help="default: the region's champion")
    parser.add_argument("--region", help="default: us")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="at most N images")
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1, as the jobs run)"
    )
    parser.add_argument("--vs", metavar="URI", help="pair with this second model version")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of a --vs pair (default 3)")
    args = parser.parse_args(argv)
    from anpr_jobs.models import load_recognizer
    from anpr_jobs.threads import blas_threads

    try:
        images = image_bytes(args.data, args.limit)
        recognizer = load_recognizer(args.model, args.region)
        second = load_recognizer(args.vs, args.region) if args.vs else None
        with blas_threads(args.threads or None):
            if second is None:
                figures = measure(images, recognizer)
            else:
                figures = paired(images, recognizer, second, max(1, args.rounds))
    except (AnprError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"pipeline_speed: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(figures))
    elif second is not None:
        print_pair(figures, recognizer, second)
    else:
        print_table(figures, recognizer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
