"""The ``anpr`` command line: every subcommand, option and value check, in one parser.

The commands themselves are in ``anpr_jobs.cli``; ``docs/cli.md`` is generated from this parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date
from pathlib import Path


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
    synth.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write into")
    synth.add_argument("--count", type=positive_int, default=20, help="images to write (20)")
    synth.add_argument("--seed", type=int, default=0, help="the same seed writes the same images")
    synth.add_argument("--region", default="us", help="region name or .toml file (default: us)")
    synth.add_argument("--crops", action="store_true", help="plate crops, not scenes")

    train = sub.add_parser("train", help="train and register a new model version")
    train.add_argument(
        "data", nargs="+", type=Path, metavar="DATA", help="labeled folders: scenes or crops"
    )
    train.add_argument("--region", default="us", help="region name or .toml file (default: us)")
    train.add_argument("--experiment", default="anpr-train", help="MLflow experiment (anpr-train)")
    train.add_argument("--seed", type=int, default=0, help="the same seed trains the same model")
    train.add_argument(
        "--synthetic",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="rendered plate crops to learn characters from beside the real plates "
        "(default: 0, which reads real plates best: docs/accuracy.md)",
    )
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
    promote.add_argument("--region", default="us", help="region name (default: us)")
    versus = models_sub.add_parser("compare", help="read the same data with two versions")
    versus.add_argument("a", metavar="A", help="version number or alias")
    versus.add_argument("b", metavar="B", help="version number or alias")
    versus.add_argument("data", nargs="+", type=Path, metavar="DATA", help="labeled folders")
    versus.add_argument("--region", default="us", help="region name (default: us)")

    evaluate = sub.add_parser("evaluate", help="measure a model version on labeled folders")
    evaluate.add_argument("data", nargs="+", type=Path, metavar="DATA", help="labeled folders")
    add_model_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--split",
        choices=("all", "test"),
        default="all",
        help="test: only the images `anpr train` holds out (default: all)",
    )

    recognize = sub.add_parser("recognize", help="read the plates in images (JSON lines)")
    recognize.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files")
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
    tickets.add_argument("output", metavar="OUTPUT_URL", help="where the night's outputs go")
    tickets.add_argument("--timezone", default="UTC", help="agency time zone (default: UTC)")
    tickets.add_argument("--tolerance", type=float, default=5.0, help="in the event's unit (5)")
    tickets.add_argument(
        "--min-confidence",
        type=float,
        help="of the read (default: the threshold each model version learned with its "
        "calibrator; 0.8 for a version without one)",
    )
    tickets.add_argument(
        "--dedupe-window",
        type=float,
        default=10.0,
        metavar="MIN",
        help="one citation per plate and camera within MIN minutes of its first capture (10)",
    )
    add_model_options(tickets)
    add_cluster_options(tickets)

    review = sub.add_parser("review", help="the review desk over a tickets output")
    review_sub = review.add_subparsers(dest="review_command", required=True, parser_class=Parser)
    serve = review_sub.add_parser("serve", help="decide review items and citations in a browser")
    serve.add_argument("output", metavar="OUTPUT_URL", help="a tickets output folder or prefix")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1: this machine only; set ANPR_REVIEW_TOKEN "
        "before listening on another)",
    )
    serve.add_argument("--port", type=positive_int, default=8765, help="port (8765)")
    labels = review_sub.add_parser(
        "labels", help="confirmed and corrected reads as a labeled scenes folder to train on"
    )
    labels.add_argument("output", metavar="OUTPUT_URL", help="a tickets output folder or prefix")
    labels.add_argument("out_dir", type=Path, metavar="DIR", help="the labeled folder to write")
    labels.add_argument(
        "--since", type=date.fromisoformat, metavar="YYYY-MM-DD", help="nights from this one on"
    )

    demo = sub.add_parser(
        "demo", help="synthesize an archive, train, reprocess it on Dask, end to end"
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path("demo"), help="folder of the demo's data (./demo)"
    )
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


def nonnegative_int(text: str) -> int:
    """``text`` as an int >= 0 (argparse type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


REFERENCE_WIDTH = 96  # columns of the generated reference, whatever the terminal


def subcommands(parser: argparse.ArgumentParser, prefix: str = "anpr"):
    """(``anpr models list`` ..., its help line, its parser) of every subcommand, depth first."""
    for action in parser._actions:  # noqa: SLF001 - argparse keeps subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            helps = {choice.dest: choice.help for choice in action._choices_actions}  # noqa: SLF001
            for name, child in action.choices.items():
                yield f"{prefix} {name}", helps.get(name, ""), child
                yield from subcommands(child, f"{prefix} {name}")


def reference_markdown() -> str:
    """docs/cli.md: every command with its options, as ``--help`` prints them."""
    parser = build_parser()
    lines = [
        "# Command reference",
        "",
        "Every `anpr` command and option, as `--help` prints them. Generated from the argument",
        "parser (`anpr_jobs/arguments.py`): `python -m anpr_jobs.arguments > docs/cli.md`;",
        "a test keeps it current.",
        "",
    ]
    for name, summary, child in [("anpr", "", parser), *subcommands(parser)]:
        child.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=REFERENCE_WIDTH)
        lines += [f"## `{name}`", ""]
        if summary:
            lines += [summary[0].upper() + summary[1:] + ".", ""]
        lines += ["```", child.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
