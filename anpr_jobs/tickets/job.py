"""``anpr tickets``: the night's recipe, from events and reads to every output of the night."""

from __future__ import annotations

import io
import posixpath
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from anpr_jobs.cluster import ReadImages
from anpr_jobs.storage import (
    EVIDENCE_SCHEMA,
    REJECTED_SCHEMA,
    check_writable,
    open_url,
    parquet_bytes,
)
from anpr_jobs.tickets.events import (
    Event,
    Night,
    load_events,
)
from anpr_jobs.tickets.ledger import place_rejections, read_ledgers, write_ledgers
from anpr_jobs.tickets.outputs import (
    PART_NAME,
    crop_png,
    earlier_from_outputs,
    night_folder,
    night_summary,
    rejected_row,
    replace_folder,
)
from anpr_jobs.tickets.publish import publish_night, write_night_state
from anpr_jobs.tickets.reads import as_reads_table, evidence_from, latest_reads, load_reads
from anpr_jobs.tickets.rules import (
    EarlierCitation,
    Rules,
    decide,
    dedupe,
    earlier_from_decisions,
    is_speeding,
    thresholds_by_version,
)


def citations_before(
    fs, root: str, night: Night, events_url: str, rules: Rules
) -> tuple[list[EarlierCitation], list[Event]]:
    """What the night's dedupe must know of the night before: its citations whose group began
    within the dedupe window before this night's start, from its outputs when it was run;
    else (no earlier citations yet) the speeding events of that window, to be decided here the
    way that night will decide them."""
    start, _ = night.bounds()
    since = start - rules.dedupe_window
    previous = Night(night.date - timedelta(days=1), night.timezone)
    summary = posixpath.join(root, "summaries", f"{previous.date.isoformat()}.json")
    if fs.isfile(summary):
        tables = {}
        for dataset in ("citations", "duplicates"):
            path = posixpath.join(night_folder(root, dataset, previous), PART_NAME)
            tables[dataset] = (
                pq.read_table(io.BytesIO(fs.cat_file(path)), schema=EVIDENCE_SCHEMA)
                if fs.isfile(path)
                else EVIDENCE_SCHEMA.empty_table()
            )
        found = earlier_from_outputs(tables["citations"], tables["duplicates"])
        return [c for c in found if c.group_start >= since], []
    if not rules.dedupe_window:
        return [], []
    window = load_events(events_url, previous, (since, start))
    return [], [e for e in window.events if is_speeding(e, rules.tolerance)]


def run_tickets(
    night: Night,
    events_url: str,
    reads_url: str,
    output_url: str,
    read_images: ReadImages,
    rules: Rules = Rules(),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The summary of the night's tickets, after writing every output under ``output_url``.

    Events with a bad value are rejected (never skipped silently); the speeding events whose
    image has no row in ``reads_url`` are read with ``read_images``, once, in one call. The
    decisions are kept as the night's state and published with the reviewers' decisions
    (``publish.publish_night``, which the review desk calls too).
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    run_id, now = uuid.uuid4().hex, datetime.now(UTC)
    check_writable(output_url)
    fs, root = open_url(output_url)
    loaded = load_events(events_url, night)
    ledgers = read_ledgers(fs, root, loaded.files)
    loaded, placed, rejected_before = place_rejections(loaded, ledgers, night)
    say(
        f"{len(loaded.events)} events on {night.date} ({night.timezone}) in "
        f"{len(loaded.files)} events files; {loaded.rejected_rows} rows rejected"
    )
    speeding = [e for e in loaded.events if is_speeding(e, rules.tolerance)]
    earlier, before = citations_before(fs, root, night, events_url, rules)
    keys = {e.image_key for e in (*speeding, *before)}
    reads = load_reads(reads_url, keys)
    missing = sorted(keys - set(reads))
    if missing:
        say(f"reading {len(missing)} images that have no read yet")
        reads |= latest_reads(as_reads_table(read_images(missing)))
    if before:  # the night before was not run: decide its last window as it would
        decided = [decide(e, evidence_from(reads.get(e.image_key)), rules) for e in before]
        earlier = earlier_from_decisions(dedupe(decided, rules.dedupe_window))
    decisions = [decide(e, evidence_from(reads.get(e.image_key)), rules) for e in speeding]
    used = thresholds_by_version(decisions, rules)
    if rules.min_confidence is not None:
        say(f"citation threshold {rules.min_confidence:g} (--min-confidence)")
    elif used:
        say("citation threshold per version: " + ", ".join(f"{k} {v:g}" for k, v in used.items()))

    crops_folder = night_folder(root, "crops", night)
    crops, crop_keys = {}, {}
    for d in decisions:
        png = crop_png(d.event.image_key, d.evidence.box)
        if png is not None:
            crops[f"{d.citation_id}.png"] = png
            crop_keys[d.citation_id] = posixpath.relpath(
                posixpath.join(crops_folder, f"{d.citation_id}.png"), root
            )
    replace_folder(fs, crops_folder, crops, ".png")
    rejected = pa.Table.from_pylist(
        [rejected_row(r, run_id) for r in loaded.rejections], schema=REJECTED_SCHEMA
    )
    folder = night_folder(root, "rejected", night)
    replace_folder(fs, folder, {PART_NAME: parquet_bytes(rejected)}, ".parquet")
    write_ledgers(fs, root, ledgers, placed)

    summary = night_summary(night, rules, loaded, speeding, len(missing), run_id)
    summary["rejected_in_earlier_night"] = rejected_before
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    write_night_state(fs, root, night, decisions, crop_keys, rules, earlier, summary, (run_id, now))
    published = publish_night(fs, root, night.date.isoformat())
    if published["reviewed"]:
        say(f"{published['reviewed']} items decided by reviewers")
    return published


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a perf_counter reading)."""
    return (time.perf_counter() - start) * 1000
