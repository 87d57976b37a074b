"""The plate reads of the night's images: the latest row per image in READS_URL (the reprocess
job's output), as the Evidence a decision rests on."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from anpr_jobs.storage import (
    READS_SCHEMA,
    open_url,
)
from anpr_jobs.tickets.rules import Evidence


def load_reads(url: str, keys: Iterable[str]) -> dict[str, dict]:
    """The reads row of each of ``keys`` found in the reads dataset at ``url`` (the latest
    processed, when an image was read more than once); FileNotFoundError if there is none."""
    keys = sorted(set(keys))
    fs, path = open_url(url)
    if not fs.isdir(path):
        raise FileNotFoundError(f"plate reads not found: {url} (the output of `anpr reprocess`)")
    if not keys:
        return {}
    dataset = pads.dataset(
        path, filesystem=fs, format="parquet", partitioning="hive", schema=READS_SCHEMA
    )
    table = dataset.to_table(filter=pc.field("image_key").isin(keys))
    return latest_reads(table)


def latest_reads(table: pa.Table) -> dict[str, dict]:
    """Rows of a reads table by image key, the latest ``processed_at`` winning."""
    reads: dict[str, dict] = {}
    oldest = datetime.min.replace(tzinfo=UTC)
    for row in table.to_pylist():
        known = reads.get(row["image_key"])
        if known is None or (row["processed_at"] or oldest) >= (known["processed_at"] or oldest):
            reads[row["image_key"]] = row
    return reads


def as_reads_table(table: pa.Table) -> pa.Table:
    """``table`` in READS_SCHEMA (what a ReadImages returned); ValueError naming what is off."""
    missing = [name for name in READS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise ValueError(f"plate reader returned a table without {', '.join(missing)}")
    return table.select(READS_SCHEMA.names).cast(READS_SCHEMA)


def evidence_from(row: dict | None) -> Evidence:
    """The Evidence in a reads row (its best plate); an ``error`` Evidence when there is none."""
    if row is None:
        return Evidence("error", error="no plate read was produced for this image")
    plates = row.get("plates") or []
    best = plates[0] if plates else {}
    box = None
    if row.get("box_x") is not None:
        box = (row["box_x"], row["box_y"], row["box_w"], row["box_h"])
    alternatives = tuple(
        (a["text"], float(a["confidence"])) for a in (best.get("alternatives") or [])
    )
    status = row.get("status") or "error"
    return Evidence(
        status=status if status in ("ok", "no_plate", "error") else "error",
        error=row.get("error"),
        plate=row.get("plate") or best.get("text"),
        confidence=row.get("confidence"),
        detection_score=row.get("detection_score"),
        box=box,
        pattern=best.get("pattern"),
        alternatives=alternatives,
        region=row.get("region"),
        model_name=row.get("model_name"),
        model_version=row.get("model_version"),
        pipeline_version=row.get("pipeline_version"),
        run_id=row.get("run_id"),
        citation_threshold=row.get("citation_threshold"),
    )
