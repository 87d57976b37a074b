"""A night's outputs from what the tickets job decided and what reviewers decided since.

The tickets job keeps its decisions before any review (each speeding event with its evidence
and outcome, the rules, the citations of the night before) under ``_state/nights/date=D/``;
``publish_night`` turns that state and the decisions log into every output of the night:
citations, review, duplicates, voided, dismissed, the summary and the review page. The job
calls it at its end and the review desk after each decision, so the night's outputs are the
same whichever ran last.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from anpr_jobs.storage import (
    EVIDENCE_SCHEMA,
    REJECTED_SCHEMA,
    STATE_SCHEMA,
    parquet_bytes,
    write_bytes_atomic,
)
from anpr_jobs.tickets.events import Event, Night, agency_zone, shown_url
from anpr_jobs.tickets.outputs import (
    PART_NAME,
    decision_counts,
    evidence_row,
    night_folder,
    replace_folder,
)
from anpr_jobs.tickets.page import page_item, render_review_page
from anpr_jobs.tickets.reviews import apply_reviews, latest_by_item, load_reviews
from anpr_jobs.tickets.rules import Decision, EarlierCitation, Evidence, Rules, dedupe

STATE_DIR = "_state/nights"
NIGHT = re.compile(r"\d{4}-\d\d-\d\d")  # a night's date, as its folders name it
DATASETS = {  # outcome -> the dataset it is written to
    "citation": "citations",
    "duplicate": "duplicates",
    "review": "review",
    "voided": "voided",
    "dismissed": "dismissed",
}


def state_folder(root: str, night_date: str) -> str:
    return posixpath.join(root, STATE_DIR, f"date={night_date}")


def rules_dict(rules: Rules) -> dict:
    return {
        "tolerance": rules.tolerance,
        "min_confidence": rules.min_confidence,
        "dedupe_window_min": rules.dedupe_window.total_seconds() / 60,
    }


def rules_from(found: dict) -> Rules:
    window = timedelta(minutes=found["dedupe_window_min"])
    return Rules(found["tolerance"], found["min_confidence"], window)


def write_night_state(
    fs,
    root: str,
    night: Night,
    decisions: list[Decision],
    crop_keys: dict[str, str],
    rules: Rules,
    earlier: list[EarlierCitation],
    summary: dict,
    run: tuple[str, datetime],
) -> None:
    """Nothing; keeps the job's decisions (before reviews and dedupe), with everything
    ``publish_night`` needs to write the night again: rules, earlier citations, the counts of
    loading the events and the run (id, time)."""
    run_id, now = run
    zone = agency_zone(night.timezone)
    rows = [
        evidence_row(d, zone, crop_keys.get(d.citation_id), run_id, now, rules)
        | {"outcome": d.outcome, "citation_threshold": d.evidence.citation_threshold}
        for d in decisions
    ]
    folder = state_folder(root, night.date.isoformat())
    table = pa.Table.from_pylist(rows, schema=STATE_SCHEMA)
    write_bytes_atomic(fs, posixpath.join(folder, PART_NAME), parquet_bytes(table))
    state = {
        "timezone": night.timezone,
        "rules": rules_dict(rules),
        "earlier": [{**vars(c), "group_start": c.group_start.isoformat()} for c in earlier],
        "summary": summary,
        "run_id": run_id,
        "generated_at": now.isoformat(),
    }
    write_bytes_atomic(fs, posixpath.join(folder, "night.json"), json.dumps(state).encode())


def decision_from_row(row: dict) -> Decision:
    """The job's Decision kept in a STATE_SCHEMA row."""
    event = Event(
        row["event_id"], row["camera_id"], row["captured_at"], row["image_key"], row["speed"],
        row["speed_limit"], row["unit"], row["source_file"], row["source_row"],
    )  # fmt: skip
    box = tuple(row[k] for k in ("box_x", "box_y", "box_w", "box_h"))
    evidence = Evidence(
        status=row["read_status"],
        error=row["read_error"],
        plate=row["plate"],
        confidence=row["confidence"],
        detection_score=row["detection_score"],
        box=None if box[0] is None else box,
        pattern=row["pattern"],
        alternatives=tuple((a["text"], a["confidence"]) for a in row["alternatives"] or []),
        region=row["region"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        pipeline_version=row["pipeline_version"],
        run_id=row["read_run_id"],
        citation_threshold=row["citation_threshold"],
    )
    return Decision(event, evidence, row["outcome"], row["reason"])


def nights_run(fs, root: str, since: date | None = None) -> list[str]:
    """The nights (YYYY-MM-DD) the tickets job ran under ``root``, from ``since`` on, oldest
    first."""
    folder = posixpath.join(root, STATE_DIR)
    if not fs.isdir(folder):
        return []
    nights = []
    for path in fs.ls(folder, detail=False):
        name = posixpath.basename(path.rstrip("/"))
        night = name.removeprefix("date=")
        is_night = night != name and NIGHT.fullmatch(night)
        if is_night and (since is None or date.fromisoformat(night) >= since):
            nights.append(night)
    return sorted(nights)


def has_state(fs, root: str, night_date: str) -> bool:
    """Whether the tickets job has run for the night."""
    return fs.isfile(posixpath.join(state_folder(root, night_date), "night.json"))


def read_table(fs, path: str, schema: pa.Schema) -> pa.Table:
    """The Parquet table at ``path``, or an empty one of ``schema`` when there is none."""
    if not fs.isfile(path):
        return schema.empty_table()
    return pq.read_table(io.BytesIO(fs.cat_file(path)), schema=schema)


def publish_night(fs, root: str, night_date: str) -> dict:
    """The night's summary, after writing every output of the night from the job's state and
    the reviewers' decisions; FileNotFoundError when the job has not run for the night."""
    folder = state_folder(root, night_date)
    if not has_state(fs, root, night_date):
        raise FileNotFoundError(f"no tickets run for {night_date} under {root}")
    state = json.loads(fs.cat_file(posixpath.join(folder, "night.json")))
    night = Night(date.fromisoformat(night_date), state["timezone"])
    zone, rules = agency_zone(night.timezone), rules_from(state["rules"])
    run_id, now = state["run_id"], datetime.fromisoformat(state["generated_at"])
    earlier = [
        EarlierCitation(**{**c, "group_start": datetime.fromisoformat(c["group_start"])})
        for c in state["earlier"]
    ]
    machine = read_table(fs, posixpath.join(folder, PART_NAME), STATE_SCHEMA).to_pylist()
    crop_keys = {row["citation_id"]: row["crop_key"] for row in machine}
    decisions = [decision_from_row(row) for row in machine]
    reviews = latest_by_item(load_reviews(fs, root, night_date))
    decisions = dedupe(apply_reviews(decisions, reviews), rules.dedupe_window, earlier)

    tables = {}
    for outcome, dataset in DATASETS.items():
        chosen = sorted(
            (d for d in decisions if d.outcome == outcome),
            key=lambda d: (d.event.captured_at, d.citation_id),
        )
        rows = [
            evidence_row(d, zone, crop_keys.get(d.citation_id), run_id, now, rules) for d in chosen
        ]
        tables[dataset] = pa.Table.from_pylist(rows, schema=EVIDENCE_SCHEMA)
        path = night_folder(root, dataset, night)
        replace_folder(fs, path, {PART_NAME: parquet_bytes(tables[dataset])}, ".parquet")

    rejected = read_table(
        fs, posixpath.join(night_folder(root, "rejected", night), PART_NAME), REJECTED_SCHEMA
    )
    summary = {**state["summary"], **decision_counts(decisions, rules)}
    issued_before = {c.citation_id for c in earlier}
    summary["duplicates_of_earlier_night"] = sum(d.duplicate_of in issued_before for d in decisions)
    page_path = posixpath.join(root, "pages", f"review-{night_date}.html")
    summary_path = posixpath.join(root, "summaries", f"{night_date}.json")
    shown = (*tables, "rejected", "crops")
    summary["outputs"] = {d: shown_url(fs, night_folder(root, d, night)) for d in shown} | {
        "page": shown_url(fs, page_path),
        "summary": shown_url(fs, summary_path),
    }
    items = [
        page_item(row, crop_bytes(fs, root, row["crop_key"]), kind)
        for kind, dataset in (("review", "review"), ("citation", "citations"))
        for row in tables[dataset].to_pylist()
    ]
    page = render_review_page(summary, items, rejected.to_pylist())
    write_bytes_atomic(fs, page_path, page.encode("utf-8"))
    write_bytes_atomic(fs, summary_path, json.dumps(summary, indent=2).encode("utf-8"))
    return summary


def crop_bytes(fs, root: str, crop_key: str | None) -> bytes | None:
    """The crop PNG an output row names (relative to the output root), or None."""
    if not crop_key:
        return None
    path = posixpath.join(root, crop_key)
    return fs.cat_file(path) if fs.isfile(path) else None
