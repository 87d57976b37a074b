"""The ``anpr`` command: argument parsing and printing; the work happens in the job modules.

Every failure of a whole command that the user can fix ends in one line on stderr,
``anpr: error: ...``, and a non-zero exit status; a bug shows its traceback (every error does
with ``--debug``); a failure on one image is a line of output, not an exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import anpr_core
import jobs
from anpr_core.errors import AnprError
from jobs.progress import ProgressBar
from jobs.storage import first_line

EXIT_FAILURE = 1
EXIT_USAGE = 2
PROJECT_PACKAGES = tuple(Path(p.__file__).resolve().parent for p in (anpr_core, jobs))


class UsageError(Exception):
    """Bad command-line arguments."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports bad arguments as a UsageError instead of exiting."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``anpr`` subcommand."""
    parser = Parser(prog="anpr", description="License-plate recognition: train, evaluate, read.")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of any error (ANPR_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    synth = sub.add_parser("synth", help="write synthetic labeled scenes (or plate crops)")
    synth.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    synth.add_argument("--count", type=positive_int, default=20)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--region", default="us")
    synth.add_argument("--crops", action="store_true", help="plate crops, not scenes")

    train = sub.add_parser("train", help="train and register a new model version")
    train.add_argument("data", nargs="+", type=Path, metavar="DATA")
    train.add_argument("--region", default="us")
    train.add_argument("--experiment", default="anpr-train")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--promote",
        action="store_true",
        help="make the new version champion if it reads at least as well as the champion",
    )
    train.add_argument(
        "--eval", nargs="+", type=Path, metavar="DATA", help="folders to compare on (--promote)"
    )
    cluster = train.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="cut and describe characters on this Dask scheduler's workers, tcp://HOST:8786 "
        "(default: in this process)",
    )
    cluster.add_argument(
        "--workers", type=positive_int, help="cut and describe characters on N local workers"
    )

    models = sub.add_parser("models", help="list, promote and compare registered versions")
    models_sub = models.add_subparsers(dest="models_command", required=True, parser_class=Parser)
    listing = models_sub.add_parser("list", help="versions, aliases, key metrics")
    listing.add_argument("--region", help="one region's versions (default: every region)")
    promote = models_sub.add_parser("promote", help="make VERSION the region's champion")
    promote.add_argument("version", metavar="VERSION", help="version number or alias")
    promote.add_argument("--region", default="us")
    versus = models_sub.add_parser("compare", help="read the same data with two versions")
    versus.add_argument("a", metavar="A", help="version number or alias")
    versus.add_argument("b", metavar="B", help="version number or alias")
    versus.add_argument("data", nargs="+", type=Path, metavar="DATA")
    versus.add_argument("--region", default="us")

    evaluate = sub.add_parser("evaluate", help="measure a model version on labeled folders")
    evaluate.add_argument("data", nargs="+", type=Path, metavar="DATA")
    add_model_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--split",
        choices=("all", "test"),
        default="all",
        help="test: only the images `anpr train` holds out (default: all)",
    )

    recognize = sub.add_parser("recognize", help="read the plates in images (JSON lines)")
    recognize.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    add_model_options(recognize)
    recognize.add_argument("--crop", action="store_true", help="each image is a plate crop")

    reprocess = sub.add_parser(
        "reprocess", help="re-read an archive of images on Dask into partitioned Parquet"
    )
    reprocess.add_argument("input_url", metavar="INPUT_URL", help="folder, prefix or glob")
    reprocess.add_argument("output_url", metavar="OUTPUT_URL", help="Parquet dataset folder")
    add_model_options(reprocess)
    add_cluster_options(reprocess)
    reprocess.add_argument(
        "--partition-size",
        type=positive_int,
        default=200,
        help="most images per task (200; a short run is cut finer, about 10 tasks a thread)",
    )
    reprocess.add_argument(
        "--key-pattern",
        metavar="REGEX",
        help="named groups camera_id and captured_at (or year/month/day) in the image key "
        "(default: <camera>/<yyyy>/<mm>/<dd>/<name>)",
    )
    reprocess.add_argument(
        "--manifest", metavar="URL", help="CSV or Parquet list of keys instead of listing"
    )
    reprocess.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to fsspec, e.g. endpoint_url=http://127.0.0.1:8333 or anon=true",
    )
    reprocess.add_argument(
        "--no-resume", dest="resume", action="store_false", help="redo images already done"
    )

    tickets = sub.add_parser("tickets", help="a night's speed events + plate reads -> citations")
    tickets.add_argument("--date", required=True, help="YYYY-MM-DD, a day in --timezone")
    tickets.add_argument("events", metavar="EVENTS_URL", help="events .parquet/.csv file or folder")
    tickets.add_argument("reads", metavar="READS_URL", help="plate reads (anpr reprocess output)")
    tickets.add_argument("output", metavar="OUTPUT_URL")
    tickets.add_argument("--timezone", default="UTC", help="agency time zone (default: UTC)")
    tickets.add_argument("--tolerance", type=float, default=5.0, help="in the event's unit (5)")
    tickets.add_argument(
        "--min-confidence",
        type=float,
        help="of the read (default: the threshold each model version learned with its "
        "calibrator; 0.8 for a version without one)",
    )
    tickets.add_argument("--dedupe-window", type=float, default=10.0, metavar="MIN", help="(10)")
    add_model_options(tickets)
    add_cluster_options(tickets)

    demo = sub.add_parser(
        "demo", help="synthesize an archive, train, reprocess it on Dask, end to end"
    )
    demo.add_argument("--workdir", type=Path, default=Path("demo"))
    demo.add_argument("--scenes", type=positive_int, default=60, help=argparse.SUPPRESS)
    demo.add_argument("--crops", type=positive_int, default=120, help=argparse.SUPPRESS)
    demo.add_argument("--archive", type=positive_int, default=300, help=argparse.SUPPRESS)
    demo.add_argument("--workers", type=positive_int, help="local Dask workers (default: cores)")
    demo.add_argument(
        "--data", type=Path, metavar="DIR", help="a labeled scenes folder of real photos to use"
    )
    demo.add_argument("--region", default="us", help="region of --data (default: us)")
    return parser


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Nothing; adds ``--model`` and ``--region`` to a subcommand that reads plates."""
    parser.add_argument(
        "--model",
        metavar="URI",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., or a model folder "
        "(default: the region's champion)",
    )
    parser.add_argument("--region", help="region name or .toml file (default: us)")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Nothing; adds ``--scheduler`` / ``--workers`` to a subcommand that runs on Dask."""
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="a Dask scheduler, tcp://HOST:8786 (default: DASK_SCHEDULER_ADDRESS, else a "
        "local cluster)",
    )
    cluster.add_argument(
        "--workers", type=positive_int, help="worker processes of the local cluster (cores)"
    )


def storage_options(pairs: Sequence[str]) -> dict:
    """``--storage-option KEY=VALUE`` pairs as fsspec keyword arguments (true/false as
    booleans, integers as ints)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option takes KEY=VALUE, got {pair!r}")
        lowered = value.lower()
        if lowered in ("true", "false"):
            options[key] = lowered == "true"
        elif value.isdigit():
            options[key] = int(value)
        else:
            options[key] = value
    return options


def positive_int(text: str) -> int:
    """``text`` as an int >= 1 (argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_synth(args) -> int:
    """Exit status of ``anpr synth``."""
    from anpr_core.config import load_region
    from jobs.synthdata import write_crops, write_scenes

    region = load_region(args.region)
    write = write_crops if args.crops else write_scenes
    written = write(args.out_dir, args.count, args.seed, region)
    kind = "plate crops" if args.crops else "scenes"
    print(f"wrote {len(written)} synthetic {region.name} {kind} to {args.out_dir}")
    return 0


def cmd_train(args) -> int:
    """Exit status of ``anpr train``."""
    from anpr_core.config import load_region
    from jobs.train import train

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
    )
    print(f"model {result.model_uri}" + (" (champion)" if result.champion else ""))
    if result.promotion:
        print(result.promotion.message())
    print(f"run {result.run_id}")
    data = result.data
    print(
        f"trained on {data['plates_used']} plates ({data['plates_skipped']} did not segment), "
        f"{data['samples']} character samples; {data['data_holdout_files']} images held out"
    )
    for key, value in sorted(result.metrics.items()):
        if not key.startswith("char_acc_"):  # per character: in the run's reports/ table
            print(f"  {key:<40} {value:.4f}")
    return 0


def cmd_models(args) -> int:
    """Exit status of ``anpr models list|promote|compare``."""
    from jobs import compare, models

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
    from jobs.evaluate import evaluate_folders, overall

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
    from jobs.cluster import blas_threads
    from jobs.recognize import recognize_file

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
    from jobs.reprocess import ReprocessOptions, reprocess

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

    from jobs import tickets
    from jobs.cluster import ClusterOptions, image_reader

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
    from jobs.demo import run_demo

    if args.data is not None:
        check_folders([args.data])
    run_demo(
        args.workdir, args.scenes, args.crops, args.archive, args.workers, args.data, args.region
    )
    return 0


def load_for(args):
    """The Recognizer named by ``--model``/``--region``."""
    from jobs.models import load_recognizer

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
    print(f"\nexpected calibration error {totals['ece']:.3f}")
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


COMMANDS = {
    "synth": cmd_synth,
    "train": cmd_train,
    "models": cmd_models,
    "evaluate": cmd_evaluate,
    "recognize": cmd_recognize,
    "reprocess": cmd_reprocess,
    "tickets": cmd_tickets,
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
