"""Reviewers' decisions: the audit log under ``decisions/date=D/`` and what a decision does.

Each decision is one row (REVIEWS_SCHEMA) in a Parquet file of its own, written whole under a
name no other decision takes and never edited: the folder is the audit trail, and a restarted
server or a rerun of ``anpr tickets`` finds every decision made. When two reviewers decide the
same item, both rows stay; the later one counts (``latest_by_item``).

What a decision does (``apply_reviews``, pure, used by the tickets job on every run): a review
item confirmed or given the right text becomes a citation (``source = review``); one marked
unreadable, not a plate or not a violation leaves the queue (``dismissed``); a voided citation
leaves ``citations/`` for ``voided/``. Deduplication runs after, on the plates as corrected.
"""

from __future__ import annotations

import io
import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from anpr_core.datasets import normalize_plate
from anpr_jobs.storage import REVIEWS_SCHEMA, fetch_all, write_bytes_atomic
from anpr_jobs.tickets.rules import Decision

DECISIONS_DIR = "decisions"
# What a reviewer may decide, and on which kind of item.
ON_REVIEW = ("confirm", "correct", "unreadable", "not_a_plate", "not_a_violation")
ON_CITATION = ("confirm", "correct", "void")
KINDS = tuple(dict.fromkeys(ON_REVIEW + ON_CITATION))
CITING = ("confirm", "correct")  # decisions after which the item is a citation
MAX_PLATE_CHARS = 12
MAX_TEXT_CHARS = 500  # of a reviewer name or a reason: a log row, not a document


class ReviewError(ValueError):
    """A decision that cannot be recorded (unknown kind, no reviewer, no plate or reason)."""


@dataclass(frozen=True)
class Review:
    """One reviewer's decision on one item of a night."""

    citation_id: str
    event_id: str
    decision: str
    plate_before: str | None
    plate_after: str | None
    reviewer: str
    decided_at: datetime
    reason: str | None = None
    decision_id: str = ""


def make_review(
    item_kind: str,
    citation_id: str,
    event_id: str,
    decision: str,
    plate_before: str | None,
    reviewer: str,
    plate: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> Review:
    """A checked Review of an item of ``item_kind`` (``review`` or ``citation``); ReviewError
    naming what is wrong. ``correct`` needs the right ``plate`` (normalized: upper case, no
    spaces or dashes), ``void`` a ``reason``; every decision needs a reviewer."""
    allowed = ON_REVIEW if item_kind == "review" else ON_CITATION
    if decision not in allowed:
        raise ReviewError(f"a {item_kind} item takes {', '.join(allowed)}, not {decision!r}")
    reviewer = (reviewer or "").strip()[:MAX_TEXT_CHARS]
    if not reviewer:
        raise ReviewError("a decision needs the reviewer's name")
    reason = (reason or "").strip()[:MAX_TEXT_CHARS] or None
    after = plate_before
    if decision == "correct":
        after = normalize_plate(plate or "")
        if not after or len(after) > MAX_PLATE_CHARS:
            raise ReviewError(f"the right plate is 1 to {MAX_PLATE_CHARS} letters and digits")
    elif decision == "void" and not reason:
        raise ReviewError("voiding a citation needs a reason")
    elif decision == "confirm" and not plate_before:
        raise ReviewError("there is no read to confirm: type the plate instead")
    elif decision not in CITING:
        after = None
    decided_at = now or datetime.now(UTC)
    return Review(
        citation_id, event_id, decision, plate_before, after, reviewer, decided_at, reason,
        f"{decided_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip


def reviews_folder(root: str, night_date: str) -> str:
    """The night's decisions folder under OUTPUT_URL's root."""
    return posixpath.join(root, DECISIONS_DIR, f"date={night_date}")


def record_review(fs, root: str, night_date: str, review: Review) -> str:
    """The path of the new file holding ``review``, written whole, beside the night's others."""
    row = {field: getattr(review, field) for field in REVIEWS_SCHEMA.names}
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=REVIEWS_SCHEMA), sink)
    path = posixpath.join(reviews_folder(root, night_date), f"{review.decision_id}.parquet")
    write_bytes_atomic(fs, path, sink.getvalue())
    return path


def load_reviews(fs, root: str, night_date: str) -> list[Review]:
    """Every decision recorded for the night, oldest first (none when there is no folder)."""
    folder = reviews_folder(root, night_date)
    if not fs.isdir(folder):
        return []
    paths = sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".parquet"))
    reviews = []
    for path, data in fetch_all(fs, paths).items():
        if isinstance(data, Exception):
            raise OSError(f"cannot read decision {path}: {data}")
        for row in pq.read_table(io.BytesIO(data), schema=REVIEWS_SCHEMA).to_pylist():
            reviews.append(Review(**row))
    return sorted(reviews, key=lambda r: (r.decided_at, r.decision_id))


def latest_by_item(reviews: Iterable[Review]) -> dict[str, Review]:
    """The decision that counts for each item: the latest."""
    found: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda r: (r.decided_at, r.decision_id)):
        found[review.citation_id] = review
    return found


def apply_reviews(decisions: Iterable[Decision], latest: dict[str, Review]) -> list[Decision]:
    """The night's decisions (before deduplication) with each reviewer's decision applied:
    confirmed or corrected items are citations on the reviewed plate, dismissed review items
    and voided citations leave the queue and the citations."""
    applied = []
    for d in decisions:
        review = latest.get(d.citation_id)
        if review is None or d.outcome not in ("review", "citation"):
            applied.append(d)
            continue
        who = {"reviewer": review.reviewer, "review": review.decision}
        if review.decision in CITING:
            evidence = replace(d.evidence, plate=review.plate_after)
            source = "review" if d.outcome == "review" or review.decision == "correct" else "model"
            applied.append(
                replace(d, evidence=evidence, outcome="citation", reason=None, source=source, **who)
            )
        elif review.decision == "void":
            applied.append(replace(d, outcome="voided", reason=review.reason, **who))
        else:
            applied.append(replace(d, outcome="dismissed", reason=review.decision, **who))
    return applied
