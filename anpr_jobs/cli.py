"""The ``anpr`` command: argument parsing and printing; the work happens in the job modules.

Every failure of a whole command that the user can fix ends in one line on stderr,
``anpr: error: ...``, and a non-zero exit status; a bug shows its traceback (every error does
with ``--debug``); a failure on one image is a line of output, not an exit.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import anpr_core
import anpr_jobs
from anpr_core.errors import AnprError
from anpr_jobs.arguments import UsageError, build_parser, storage_options
from anpr_jobs.progress import ProgressBar
from anpr_jobs.storage import first_line

EXIT_FAILURE = 1
EXIT_USAGE = 2
PROJECT_PACKAGES = tuple(Path(p.__file__).resolve().parent for p in (anpr_core, anpr_jobs))


def cmd_synth(args) -> int:
    """Exit status of ``anpr synth``."""
    from anpr_core.config import load_region
    from anpr_jobs.synthdata import write_crops, write_scenes

    region = load_region(args.region)
    write = write_crops if args.crops else write_scenes
    written = write(args.out_dir, args.count, args.seed, region)
    kind = "plate crops" if args.crops else "scenes"
    print(f"wrote {len(written)} synthetic {region.name} {kind} to {args.out_dir}")
    return 0


def cmd_train(args) -> int:
    """Exit status of ``anpr train``."""
    from anpr_core.config import load_region
    from anpr_jobs.train import train

    region = load_region(args.region)
    if args.eval and not args.promote:
        raise UsageError("--eval is the data of --promote: pass --promote too")
    check_folders([*args.data, *(args.eval or [])])
    result = train(
        args.data,
        region,
        experiment=args.experiment,
        seed=args.seed,
        promote=args.promote,
        eval_dirs=args.eval,
        scheduler=args.scheduler,
        workers=args.workers,
        **({} if args.synthetic is None else {"synthetic": args.synthetic}),
    )
    print(f"model {result.model_uri}" + (" (champion)" if result.champion else ""))
    if result.promotion:
        print(result.promotion.message())
    print(f"run {result.run_id}")
    data = result.data
    print(
        f"trained on {data['plates_used']} plates ({data['plates_skipped']} did not segment) "
        f"and {data['synthetic_plates_used']} synthetic, "
        f"{data['samples']} character samples; {data['data_holdout_files']} images held out"
    )
    for key, value in sorted(result.metrics.items()):
        if not key.startswith("char_acc_"):  # per character: in the run's reports/ table
            print(f"  {key:<40} {value:.4f}")
    return 0


def cmd_models(args) -> int:
    """Exit status of ``anpr models list|promote|compare``."""
    from anpr_jobs import compare, models

    if args.models_command == "list":
        rows = models.list_versions(args.region)
        print(models.format_versions(rows) if rows else "no registered model versions yet")
    elif args.models_command == "promote":
        name, version, before = models.set_champion(args.version, args.region)
        print(f"{name}: champion is version {version} (was {before or 'none'})")
    else:
        check_folders(args.data)
        found = compare.compare_versions(args.a, args.b, args.data, args.region)
        print(compare.format_comparison(found))
    return 0


def cmd_evaluate(args) -> int:
    """Exit status of ``anpr evaluate``."""
    from anpr_core.metrics import citation_confidence
    from anpr_jobs.evaluate import evaluate_folders, overall

    check_folders(args.data)
    recognizer = load_for(args)
    progress = None if args.json else ProgressBar("evaluating")
    start = time.perf_counter()
    reports = evaluate_folders(args.data, recognizer, args.split, progress)
    totals = overall(reports, recognizer)
    if args.json:
        threshold = citation_confidence(recognizer.citation_threshold)
        print(json.dumps(totals | {"citation_threshold": threshold}))
        return 0
    print(f"model {recognizer.uri} (region {recognizer.region.name}, split {args.split})")
    print_table(reports, totals)
    print(f"{totals['n_images']} images in {time.perf_counter() - start:.1f} s")
    threshold = citation_confidence(recognizer.citation_threshold)
    print_trust([r for report in reports for r in report.results], totals, threshold)
    return 0


def cmd_recognize(args) -> int:
    """Exit status of ``anpr recognize``: 1 when some image could not be read."""
    from anpr_jobs.recognize import recognize_file
    from anpr_jobs.threads import blas_threads

    recognizer = load_for(args)
    failed = 0
    with blas_threads(1):
        for path in args.images:
            line = recognize_file(path, recognizer, crop=args.crop)
            failed += "error" in line
            print(json.dumps(line), flush=True)
    return EXIT_FAILURE if failed else 0


def cmd_reprocess(args) -> int:
    """Exit status of ``anpr reprocess``: 0 when every image has a row, errors included."""
    from anpr_jobs.reprocess import ReprocessOptions, reprocess

    options = ReprocessOptions(
        input_url=args.input_url,
        output_url=args.output_url,
        model_uri=args.model,
        region=args.region,
        scheduler=args.scheduler,
        workers=args.workers,
        partition_size=args.partition_size,
        key_pattern=args.key_pattern,
        manifest=args.manifest,
        storage_options=storage_options(args.storage_option),
        resume=args.resume,
    )
    recognizer = load_for(args)
    summary = reprocess(options, recognizer, progress=ProgressBar("reading"))
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items()) or "nothing new"
    print(
        f"run {summary.run_id}: {summary.n_processed} images read ({counts}), "
        f"{summary.n_skipped} skipped as done, {summary.images_per_s:.1f} images/s, "
        f"{summary.elapsed_s:.1f} s"
    )
    print(f"model {summary.model_uri}; reads in {summary.output_url}")
    return 0


def cmd_tickets(args) -> int:
    """Exit status of ``anpr tickets``: writes the night's citations, review and rejected."""
    from datetime import timedelta

    from anpr_jobs import tickets
    from anpr_jobs.cluster import ClusterOptions, image_reader

    rules = tickets.Rules(
        args.tolerance, args.min_confidence, timedelta(minutes=args.dedupe_window)
    )
    options = ClusterOptions(args.scheduler, args.workers)
    reader = image_reader(lambda: load_for(args), options)
    night = tickets.Night.parse(args.date, args.timezone)
    summary = tickets.run_tickets(night, args.events, args.reads, args.output, reader, rules, print)
    keys = ("in_night", "speeding", "citations", "duplicates", "review", "rejected_rows")
    print(", ".join(f"{key} {summary[key]}" for key in keys))
    print("\n".join(f"{name}: {path}" for name, path in summary["outputs"].items()))
    return 0


def cmd_demo(args) -> int:
    """Exit status of ``anpr demo``."""
    from anpr_jobs.demo import run_demo

    if args.data is not None:
        check_folders([args.data])
    run_demo(
        args.workdir, args.scenes, args.crops, args.archive, args.workers, args.data, args.region
    )
    return 0


def load_for(args):
    """The Recognizer named by ``--model``/``--region``."""
    from anpr_jobs.models import load_recognizer

    return load_recognizer(args.model, args.region)


def check_folders(folders: Sequence[Path]) -> None:
    """Nothing, when every labeled folder exists; FileNotFoundError naming the first that
    does not (before any slow work starts)."""
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"labeled data folder not found: {folder}")


def print_table(reports, totals: dict) -> None:
    """Nothing; prints per-folder figures and the overall row."""
    width = max(len("data"), *(len(str(r.path)) for r in reports))
    header = f"{'data':<{width}} {'kind':<7} {'images':>6} {'plate':>7} {'char':>7} "
    print(header + f"{'detect':>7} {'ms/img':>8}")
    for report in reports:
        print(table_row(str(report.path), report.kind, report.summary, width))
    if len(reports) > 1:
        print(table_row("all", "", totals, width))


def print_trust(results, totals: dict, threshold: float) -> None:
    """Nothing; prints how far the confidence of the best reads can be trusted: a
    reliability table (reads by confidence, and how many of them are right), then precision
    and coverage per threshold and for the ticket rule."""
    from anpr_core.metrics import reliability_bins

    confidences = [r.confidence if r.read else 0.0 for r in results]
    correct = [r.read == r.label for r in results]
    print(
        f"\nexpected calibration error {totals['ece']:.3f} (a calibrated confidence would "
        f"show {totals['ece_if_calibrated']:.3f} on {len(results)} images)"
    )
    print("confidence    reads  mean conf  right")
    for low, high, n, mean, right in reliability_bins(confidences, correct):
        print(f"{low:.1f}-{high:.1f}   {n:>8} {mean:>10.3f} {right:>6.3f}")
    print("\nthreshold  precision  coverage")
    rows = [
        (f">= {t}", totals["precision_at"][t], totals["coverage_at"][t])
        for t in totals["precision_at"]
    ]
    rows.append(("tickets", totals["citation_precision"], totals["citation_coverage"]))
    for name, precision, coverage in rows:
        shown = "-" if precision is None else f"{precision:.3f}"
        print(f"{name:<10} {shown:>9} {coverage:>9.3f}")
    print(f"(tickets: confidence >= {threshold:.4g} and a format pattern matched: this version's)")


def table_row(name: str, kind: str, summary: dict, width: int) -> str:
    """One line of the evaluation table."""
    recall = summary["detection_recall"]
    detect = "-" if recall is None else f"{recall:.3f}"
    return (
        f"{name:<{width}} {kind:<7} {summary['n_images']:>6} {summary['plate_accuracy']:>7.3f} "
        f"{summary['char_accuracy']:>7.3f} {detect:>7} {summary['ms_per_image']:>8.1f}"
    )


def cmd_review(args) -> int:
    """Exit status of ``anpr review serve`` (serves the desk until interrupted) and ``anpr
    review labels``."""
    if args.review_command == "labels":
        from anpr_jobs.tickets.labels import write_labels

        found = write_labels(args.output, args.out_dir, args.since)
        skipped = ", ".join(f"{n} {why}" for why, n in found["skipped"].items() if n) or "none"
        print(f"{found['labeled']} reviewed scenes in {args.out_dir} (skipped: {skipped})")
        return 0
    import uvicorn

    from anpr_jobs.tickets.desk import TOKEN_ENV, create_app

    if args.host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get(TOKEN_ENV):
        raise UsageError(f"--host {args.host} opens the desk beyond this machine: set {TOKEN_ENV}")
    app = create_app(args.output)
    print(f"review desk for {args.output} at http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


COMMANDS = {
    "synth": cmd_synth,
    "train": cmd_train,
    "models": cmd_models,
    "evaluate": cmd_evaluate,
    "recognize": cmd_recognize,
    "reprocess": cmd_reprocess,
    "tickets": cmd_tickets,
    "review": cmd_review,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """The exit status of the ``anpr`` command for ``argv`` (default ``sys.argv[1:]``).

    A user's mistake (a bad option, a missing file, a refused input) is one line on stderr; a
    bug shows as a bug, with its traceback, and so does every error with ``--debug``.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("ANPR_DEBUG", "") not in ("", "0")
    if "--debug" in argv:  # accepted anywhere on the line, not only before the command
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception as exc:
        if debug or not users_mistake(exc):
            raise
        return fail(f"MLflow: {exc}" if is_mlflow(exc) else str(exc))


def users_mistake(exc: BaseException) -> bool:
    """Whether ``exc`` reports something the user can fix: an AnprError, an OSError (a
    missing file, a refused permission, a server down), an MLflow error, or a ValueError that
    this project raised on purpose; a ValueError from deep inside a library is a bug."""
    if isinstance(exc, AnprError | OSError) or is_mlflow(exc):
        return True
    return isinstance(exc, ValueError) and raised_here(exc)


def is_mlflow(exc: BaseException) -> bool:
    """Whether ``exc`` is one of MLflow's (imported lazily, to keep startup fast)."""
    return type(exc).__module__.startswith("mlflow")


def raised_here(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is in this project's packages."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return True
    module = Path(frames[-1].filename).resolve()
    return any(module.is_relative_to(package) for package in PROJECT_PACKAGES)


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    """``status``, after printing ``anpr: error: <message>`` as one line on stderr."""
    shown = first_line(message) if str(message).strip() else "unknown error"
    print(f"anpr: error: {shown}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
