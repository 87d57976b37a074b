"""The outputs of a fixed synthetic archive and two nights, row by row, against a recorded
golden copy (``tests/golden/archive_nights.json``): a restructuring of the jobs must leave
every read, citation, review item, duplicate, rejection and summary count as it was.

The archive, its events and the model are made here with fixed seeds; what varies from run to
run (run ids, times of the run, temporary paths) is left out or made relative. Confidences
are compared to 1e-5, so a different BLAS on another machine does not fail the test; a
different read does. After a deliberate change of outputs, record them again with
``ANPR_WRITE_GOLDEN=1 pytest tests/jobs/test_golden_outputs.py`` and review the diff.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest

from anpr_core.config import load_region
from anpr_jobs.storage import decode_image
from anpr_jobs.synthdata import write_archive, write_events

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "archive_nights.json"
# The second night cites at a low threshold, as the quick test model is seldom sure.
NIGHTS = {"2026-10-05": [], "2026-10-06": ["--min-confidence", "0.02", "--dedupe-window", "720"]}
ARCHIVE_IMAGES, ARCHIVE_SEED = 40, 11
READ_BY_REPROCESS = 28  # the rest have no read before the nights: tickets reads them itself
VOLATILE = {"run_id", "read_run_id", "generated_at", "processed_at", "elapsed_ms", "elapsed_s"}
TOLERANCE = 1e-5


def relative(value, root: Path):
    """``value`` with the temporary root written as ``<root>``, in strings and containers."""
    if isinstance(value, str):
        return value.replace(root.as_posix(), "<root>")
    if isinstance(value, dict):
        return {k: relative(v, root) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [relative(v, root) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def dataset_rows(folder: Path, sort_by: tuple[str, ...]) -> list[dict]:
    """Every row of the Parquet dataset under ``folder`` (Hive partitions), sorted."""
    if not folder.is_dir():
        return []
    table = pads.dataset(folder, format="parquet", partitioning="hive").to_table()
    return sorted(table.to_pylist(), key=lambda row: tuple(str(row[k]) for k in sort_by))


def crops_of(folder: Path) -> dict[str, list[int]]:
    """Each crop PNG's name and the shape of its pixels."""
    return {
        path.relative_to(folder).as_posix(): list(decode_image(path.read_bytes()).shape)
        for path in sorted(folder.rglob("*.png"))
    }


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, trained) -> dict:
    """What the jobs write for the fixed archive and nights, with the trained model: reads,
    and per night every tickets dataset, the crops and the summary."""
    from support import forget_tracking_uri

    from anpr_jobs import cli

    root = tmp_path_factory.mktemp("golden")
    archive_dir = root / "archive"
    archive = write_archive(archive_dir, ARCHIVE_IMAGES, ARCHIVE_SEED, load_region("us"))
    (archive_dir / "cam01" / "2026" / "10" / "05" / "230000-broken.jpg").write_bytes(b"\xff\xd8no")
    events = root / "events" / "events.csv"
    write_events(events, archive, archive_dir, ARCHIVE_SEED)
    with open(events, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        broken = archive_dir / "cam01" / "2026" / "10" / "05" / "230000-broken.jpg"
        writer.writerow(["e-broken", "cam01", "2026-10-05T23:00:00+00:00", broken, 99, 50, "mph"])
        writer.writerow(["e-bad", "cam02", "not a time", "x.jpg", "fast", 50, "mph"])
        later = next(image for image in archive if image.captured_at.day == 6)
        for n, minutes in enumerate((0, 3)):  # one vehicle seen twice: a duplicate
            at = (later.captured_at + timedelta(minutes=minutes)).isoformat()
            key = archive_dir / later.key
            writer.writerow([f"e-twice-{n}", later.camera_id, at, key, 80, 50, "mph"])
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_key"])
        writer.writerows([archive_dir / image.key] for image in archive[:READ_BY_REPROCESS])
        writer.writerow([broken])
    reads, out = root / "reads", root / "tickets"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
        common = ["--workers", "1"]
        argv = ["reprocess", archive_dir, reads, "--manifest", manifest, *common]
        assert cli.main([str(a) for a in argv]) == 0
        for night, rules in NIGHTS.items():
            argv = ["tickets", "--date", night, events, reads, out, *rules, *common]
            assert cli.main([str(a) for a in argv]) == 0
        forget_tracking_uri()
    found = {"reads": dataset_rows(reads, ("image_key",))}
    for night in NIGHTS:
        found[night] = {
            dataset: dataset_rows(out / dataset / f"date={night}", ("citation_id",))
            for dataset in ("citations", "review", "duplicates")
        }
        found[night]["rejected"] = dataset_rows(
            out / "rejected" / f"date={night}", ("row", "column")
        )
        found[night]["crops"] = crops_of(out / "crops" / f"date={night}")
        found[night]["summary"] = json.loads((out / "summaries" / f"{night}.json").read_text())
    return relative(found, root)


def differences(expected, found, where: str = "") -> list[str]:
    """Where ``found`` differs from ``expected``: floats within TOLERANCE, all else exactly."""
    if isinstance(expected, dict) and isinstance(found, dict):
        keys = sorted(set(expected) | set(found))
        return [d for k in keys for d in differences(expected.get(k), found.get(k), f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(found, list):
        if len(expected) != len(found):
            return [f"{where}: {len(expected)} rows recorded, {len(found)} now"]
        pairs = enumerate(zip(expected, found, strict=True))
        return [d for i, (e, f) in pairs for d in differences(e, f, f"{where}[{i}]")]
    if isinstance(expected, float) and isinstance(found, float):
        close = np.isclose(expected, found, rtol=0, atol=TOLERANCE)
        return [] if close else [f"{where}: {expected} -> {found}"]
    return [] if expected == found else [f"{where}: {expected!r} -> {found!r}"]


def test_the_jobs_write_what_was_recorded(outputs):
    if os.environ.get("ANPR_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(outputs, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    assert differences(recorded, json.loads(json.dumps(outputs))) == []


def test_the_record_covers_every_kind_of_outcome(outputs):
    statuses = {row["status"] for row in outputs["reads"]}
    assert {"ok", "error"} <= statuses
    first, second = (outputs[night] for night in NIGHTS)
    assert first["review"] and first["rejected"] and first["crops"]
    assert second["citations"] and second["duplicates"] and second["review"]
    assert first["summary"]["images_read_now"] > 0 and second["summary"]["images_read_now"] > 0
