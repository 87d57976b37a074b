"""Plate-level k-fold cross-validation of the whole recognizer on labeled folders.

Each image belongs to one fold (by a hash of its name); for each fold a model is trained on
every training image outside it and evaluated on the evaluation images inside it, so no
image is ever read by a model that saw it. Prints the figures of `anpr evaluate`.

    D=../shared/data/openalpr-benchmarks
    python benchmarks/accuracy_cv.py --region us --train $D/plates_us $D/endtoend/us \
        --eval $D/endtoend/us [--folds 4] [--seed 0] [--shifts N] [--breakdown] [--json] \
        [--capture FILE]

``--breakdown`` adds where each plate was lost, for the scenes: ``right``; ``misread`` (the
best read is on the plate, with the wrong text); ``outranked`` (a read of the plate lost to a
read elsewhere); ``unread`` (a candidate on the plate, IoU >= 0.5 among the ones localization
proposes, was never read); ``not_found`` (no such candidate).

Besides accuracy, the figures say how far confidence can be trusted (as `anpr evaluate`):
``ece``, ``precision_at`` / ``coverage_at`` per threshold, and ``citation_precision`` /
``citation_coverage`` of the ticket rule at its defaults.

``--capture FILE`` pickles, per fold, the reads its calibrator learned from (EVIDENCE rows,
whose ``whole_image`` tells crops from scenes, and right or not) and the evaluated best
reads (name, read, label, EVIDENCE row, pattern, confidence): calibrator variants can then be
fitted and judged on them without reading an image again (calibration never changes which
read is best).

``--shifts N`` reads each evaluation image N times, shifted by 0..N-1 pixels (its first
rows and columns cropped): a read can change with the resampling phase, so a change that
moves candidates by a pixel is judged on N reads of each image instead of one.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import cv2

from anpr_core.calibrate import citation_threshold_of
from anpr_core.config import learned_from_labels, load_region
from anpr_core.datasets import fold_of, read_labeled
from anpr_core.evaluation import evaluate_recognition, summarize
from anpr_core.localize import localize_plates
from anpr_core.metrics import iou
from anpr_core.pipeline import Settings
from anpr_core.samples import fit_char_model
from anpr_jobs.threads import blas_threads


def shifted(image, box, k: int):
    """``image`` without its first ``k`` rows and columns, and ``box`` (None for a crop) in it."""
    if box is None:
        return image[k:, k:], None
    x, y, w, h = box
    return image[k:, k:], (x - k, y - k, w, h)


STAGES = ("right", "misread", "outranked", "unread", "not_found")


def lost_at(image, box, text: str, reads, region) -> str:
    """Where the plate of a labeled scene, read as ``reads`` (best first), was lost (one of
    STAGES)."""
    if reads and reads[0].text == text:
        return "right"
    on_plate = [read for read in reads if iou(read.box, box) >= 0.3]
    if on_plate and on_plate[0] is reads[0]:
        return "misread"
    if on_plate:
        return "outranked"
    settings = Settings()  # as fit_char_model's models read
    proposed = localize_plates(image, region, settings.verify_candidates, settings.localize_scheme)
    return "unread" if any(iou(c.box, box) >= 0.5 for c in proposed) else "not_found"


def shown(value) -> str:
    """A figure as printed: floats to three decimals, None as a dash."""
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="us")
    parser.add_argument("--train", nargs="+", type=Path, required=True, metavar="DATA")
    parser.add_argument("--eval", nargs="+", type=Path, required=True, metavar="DATA")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument(
        "--seed", type=int, default=0, help="training's random draw: reruns show its spread"
    )
    parser.add_argument(
        "--shifts", type=int, default=1, help="read each image at N one-pixel shifts (default 1)"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="count where scene plates were lost"
    )
    parser.add_argument(
        "--synthetic", type=int, default=None, help="synthetic training crops per fold model"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--capture", type=Path, help="pickle each fold's calibration and evaluated reads here"
    )
    args = parser.parse_args(argv)

    region = load_region(args.region)
    train_items = [item for folder in args.train for item in read_labeled(folder)]
    eval_items = [item for folder in args.eval for item in read_labeled(folder)]
    gray = {
        item.path: cv2.imread(str(item.path), cv2.IMREAD_GRAYSCALE)
        for item in {i.path: i for i in train_items + eval_items}.values()
    }
    start = time.perf_counter()
    results, thresholds, plates_used, plates_total = [], [], 0, 0
    lost = dict.fromkeys(STAGES, 0)
    captured = []
    for fold in range(args.folds):
        plates = [
            (gray[item.path], box, text)
            for item in train_items
            if fold_of(item.name, args.folds) != fold
            for box, text in item.plates
        ]
        learned = learned_from_labels(region, (text for _, _, text in plates))  # as `anpr train`
        with blas_threads(1):  # as `anpr train` fits: threaded BLAS is 4x slower on 2 cores
            extra = {} if args.synthetic is None else {"synthetic": args.synthetic}
            model, training = fit_char_model(plates, learned, seed=args.seed, **extra)
        plates_used += training.plates_used
        plates_total += training.plates_used + training.plates_skipped
        evaluated, threshold, before = [], citation_threshold_of(model), len(results)
        with blas_threads(1):  # as the jobs read: one BLAS thread per process
            for item in eval_items:
                if fold_of(item.name, args.folds) == fold:
                    box, text = item.plates[0]
                    for k in range(args.shifts):
                        image, moved = shifted(gray[item.path], box, k)
                        result, recognition = evaluate_recognition(
                            item.name, image, moved, text, model, learned
                        )
                        results.append(result)
                        thresholds.append(threshold)
                        if recognition.evidence:
                            evaluated.append(
                                (item.name, result.read, text, recognition.evidence[0],
                                 result.pattern, result.confidence)
                            )  # fmt: skip
                        if args.breakdown and moved is not None:
                            lost[lost_at(image, moved, text, recognition.reads, learned)] += 1
        captured.append(
            {
                "calibration": (training.calibration_evidence, training.calibration_correct),
                "citation_threshold": threshold,
                "evaluated": evaluated,
                "n_evaluated": len(results) - before,
            }
        )
        print(f"fold {fold + 1}/{args.folds} done", file=sys.stderr)
    figures = summarize(results, thresholds)
    figures.update(
        region=region.name,
        folds=args.folds,
        seed=args.seed,
        shifts=args.shifts,
        synthetic=args.synthetic,
        train_plates_used=round(plates_used / max(plates_total, 1), 3),
        seconds=round(time.perf_counter() - start, 1),
    )
    if args.breakdown:
        figures["lost_at"] = lost
    if args.capture:
        args.capture.write_bytes(pickle.dumps({"figures": figures, "folds": captured}))
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {shown(v)}" for k, v in value.items())
            print(f"{key:>20}  {shown(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
