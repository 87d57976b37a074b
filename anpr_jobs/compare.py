"""``anpr models compare``: two model versions on the same labeled images.

Each image is read with each version's own classifier, region, settings and citation
threshold (a version alone determines how a plate is read and when it is cited); the figures
are exact plate matches, calibration and the precision of the citations each would send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anpr_core.datasets import read_folders
from anpr_core.evaluation import ImageResult, summarize
from anpr_jobs import models

EXAMPLES = 3


@dataclass(frozen=True)
class Difference:
    """One image that exactly one of two versions reads right."""

    name: str
    label: str
    read_a: str | None
    read_b: str | None


@dataclass(frozen=True)
class Comparison:
    """Two versions read on the same images."""

    uri_a: str  # concrete models:/NAME/VERSION
    uri_b: str
    summary_a: dict
    summary_b: dict
    only_a: list[Difference]  # A reads right, B wrong
    only_b: list[Difference]


def differences(
    a: Sequence[ImageResult], b: Sequence[ImageResult]
) -> tuple[list[Difference], list[Difference]]:
    """(images only A reads right, images only B reads right), from results on the same
    images in the same order."""
    only_a, only_b = [], []
    for ra, rb in zip(a, b, strict=True):
        right_a, right_b = ra.read == ra.label, rb.read == rb.label
        if right_a != right_b:
            (only_a if right_a else only_b).append(Difference(ra.name, ra.label, ra.read, rb.read))
    return only_a, only_b


def compare_versions(
    ref_a: str, ref_b: str, data_dirs: Sequence[str | Path], region: str
) -> Comparison:
    """Versions (numbers or aliases) ``ref_a`` and ``ref_b`` of the region's model read on
    every labeled image of ``data_dirs``; each alias is resolved once, before reading."""
    items = [item for folder in read_folders(data_dirs) for item in folder.items]
    a = models.load_recognizer(models.version_uri(ref_a, region), region)
    b = models.load_recognizer(models.version_uri(ref_b, region), region)
    results_a, results_b = a.read_labeled(items), b.read_labeled(items)
    only_a, only_b = differences(results_a, results_b)
    summary_a = summarize(results_a, a.citation_threshold)
    summary_b = summarize(results_b, b.citation_threshold)
    return Comparison(a.uri, b.uri, summary_a, summary_b, only_a, only_b)


def format_comparison(comparison: Comparison, examples: int = EXAMPLES) -> str:
    """The comparison as lines a person reads: each version's figures, then how many plates
    each reads right that the other gets wrong, with a few examples."""

    def read(text: str | None) -> str:
        return text if text is not None else "(no read)"

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    a, b = comparison.summary_a, comparison.summary_b
    lines = [
        f"{'version':<36} {'images':>6} {'plate':>7} {'char':>7} {'ece':>7} "
        f"{'cite_prec':>9} {'cite_cov':>8}"
    ]
    for uri, s in ((comparison.uri_a, a), (comparison.uri_b, b)):
        lines.append(
            f"{uri:<36} {s['n_images']:>6} {s['plate_accuracy']:>7.3f} {s['char_accuracy']:>7.3f}"
            f" {s['ece']:>7.3f} {figure(s['citation_precision']):>9} {s['citation_coverage']:>8.3f}"
        )
    names = (version_label(comparison.uri_a), version_label(comparison.uri_b))
    for mine, only in ((names[0], comparison.only_a), (names[1], comparison.only_b)):
        lines.append(f"{len(only)} plates read right by {mine} only")
        for d in only[:examples]:
            lines.append(
                f"  {d.name}: label {d.label}; {names[0]} read {read(d.read_a)}, "
                f"{names[1]} read {read(d.read_b)}"
            )
    return "\n".join(lines)


def version_label(uri: str) -> str:
    """``v3`` for ``models:/NAME/3``; the URI itself for anything else."""
    version = uri.rpartition("/")[2]
    return f"v{version}" if version.isdigit() else uri
