"""The citation rules, pure: whether an event is speeding, whether its read is good enough for
a ticket, and one citation per vehicle and camera within the dedupe window."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from anpr_core.metrics import citation_confidence
from anpr_jobs.tickets.events import Event

REASONS = ("low_confidence", "no_plate", "pattern_mismatch", "error")
MAX_DEDUPE_MINUTES = 1440  # a night's dedupe looks back into the night before, not further


@dataclass(frozen=True)
class Rules:
    """When a speeding event becomes a citation."""

    tolerance: float = 5.0  # in the event's own unit
    # None: each read needs the threshold its model version learned (``citation_threshold``
    # of its reads row), or 0.8 for a version without a calibrator (metrics.citation_confidence).
    min_confidence: float | None = None
    dedupe_window: timedelta = timedelta(minutes=10)

    def threshold_for(self, evidence: Evidence) -> float:
        """The confidence a read needs for a citation: ``min_confidence`` when given, else
        its version's learned threshold, else 0.8 (``metrics.citation_confidence``)."""
        if self.min_confidence is not None:
            return self.min_confidence
        return citation_confidence(evidence.citation_threshold)

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be 0 or more, got {self.tolerance}")
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min confidence must be within 0..1, got {self.min_confidence}")
        minutes = self.dedupe_window.total_seconds() / 60
        if not 0 <= minutes <= MAX_DEDUPE_MINUTES:
            raise ValueError(
                f"dedupe window must be 0 to {MAX_DEDUPE_MINUTES} minutes, got {minutes:g}"
            )


@dataclass(frozen=True)
class Evidence:
    """The best plate read of an event's image, with the model version that made it."""

    status: str  # ok | no_plate | error
    error: str | None = None
    plate: str | None = None
    confidence: float | None = None
    detection_score: float | None = None
    box: tuple[int, int, int, int] | None = None
    pattern: str | None = None
    alternatives: tuple[tuple[str, float], ...] = ()
    region: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    pipeline_version: str | None = None
    run_id: str | None = None
    citation_threshold: float | None = None  # learned with the version's calibrator


@dataclass(frozen=True)
class Decision:
    """What became of a speeding event: ``citation``, ``review`` or ``duplicate``; after a
    reviewer's decision (``reviews.apply_reviews``) also ``voided`` or ``dismissed``."""

    event: Event
    evidence: Evidence
    outcome: str
    reason: str | None = None
    duplicate_of: str | None = None
    source: str = "model"  # who named the plate of a citation: the model, or a reviewer
    reviewer: str | None = None  # who decided on the item, when a reviewer did
    review: str | None = None  # what the reviewer decided (reviews.KINDS)

    @property
    def citation_id(self) -> str:
        """The event's stable citation id."""
        return citation_id(self.event)


# ---------------------------------------------------------------------------------------------
# Rules (pure)


def citation_id(event: Event) -> str:
    """A stable id of the event: the same capture always gets the same id, on every rerun."""
    identity = "|".join(
        ("anpr-citation-v1", event.camera_id, event.event_id, event.captured_at.isoformat())
    )
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20]


def is_speeding(event: Event, tolerance: float) -> bool:
    """Whether the event is over its limit by more than ``tolerance`` (in the event's unit)."""
    return event.speed > event.speed_limit + tolerance


def review_reason(evidence: Evidence, min_confidence: float) -> str | None:
    """Why a speeding event's read cannot make a citation (one of REASONS), or None if it can.

    Confidences are stored as float32, so the threshold is compared in float32 too: a read
    stored as 0.9 passes ``--min-confidence 0.9``.
    """
    if evidence.status not in ("ok", "no_plate"):
        return "error"
    if evidence.status == "no_plate" or not evidence.plate:
        return "no_plate"
    if evidence.confidence is None or np.float32(evidence.confidence) < np.float32(min_confidence):
        return "low_confidence"
    if not evidence.pattern:
        return "pattern_mismatch"
    return None


def decide(event: Event, evidence: Evidence, rules: Rules) -> Decision:
    """A citation or a review item for one speeding event (before deduplication)."""
    reason = review_reason(evidence, rules.threshold_for(evidence))
    return Decision(event, evidence, "review" if reason else "citation", reason)


@dataclass(frozen=True)
class EarlierCitation:
    """A citation issued for a capture group that began before the night: the night's own
    captures of the same vehicle at the same camera within the window are its duplicates."""

    citation_id: str
    camera_id: str
    plate: str
    group_start: datetime  # the group's first capture


@dataclass
class _Group:
    """Captures of one vehicle at one camera within the window of the first (dedupe)."""

    start: datetime
    members: list[Decision]
    issued: str | None = None  # the citation issued before this night, when it began then


def dedupe(
    decisions: Iterable[Decision], window: timedelta, earlier: Iterable[EarlierCitation] = ()
) -> list[Decision]:
    """The decisions with repeated citations turned into duplicates.

    Citations of the same plate text by the same camera form groups: a group starts at its
    first capture and takes every later capture within ``window`` of that first one
    (inclusive); the next capture starts a new group. Each group keeps the citation with the
    highest excess speed (ties: the earliest); the others become duplicates of it. A group
    that began before the night (``earlier``) already has its citation: every capture of the
    night that falls in it is a duplicate of that one, across midnight as within a night.
    """
    decisions = list(decisions)
    groups: dict[tuple[str, str], list[_Group]] = {}
    for c in sorted(earlier, key=lambda c: c.group_start):
        runs = groups.setdefault((c.camera_id, c.plate), [])
        runs.append(_Group(c.group_start, [], c.citation_id))
    cited = [d for d in decisions if d.outcome == "citation"]
    for d in sorted(cited, key=lambda d: (d.event.captured_at, d.event.event_id)):
        runs = groups.setdefault((d.event.camera_id, d.evidence.plate), [])
        if runs and d.event.captured_at - runs[-1].start <= window:
            runs[-1].members.append(d)
        else:
            runs.append(_Group(d.event.captured_at, [d]))
    replaced: dict[int, Decision] = {}
    for runs in groups.values():
        for run in runs:
            keep = run.issued
            if keep is None and run.members:
                best = max(
                    run.members,
                    key=lambda d: (d.event.excess_kmh, -d.event.captured_at.timestamp()),
                )
                keep = best.citation_id
            for d in run.members:
                if d.citation_id != keep:
                    replaced[id(d)] = replace(d, outcome="duplicate", duplicate_of=keep)
    return [replaced.get(id(d), d) for d in decisions]


def earlier_from_decisions(decisions: Iterable[Decision]) -> list[EarlierCitation]:
    """The citations among deduplicated decisions, each with its group's first capture."""
    decisions = list(decisions)
    starts: dict[str, datetime] = {}
    for d in decisions:
        if d.outcome in ("citation", "duplicate"):
            group = d.duplicate_of or d.citation_id
            starts[group] = min(starts.get(group, d.event.captured_at), d.event.captured_at)
    return [
        EarlierCitation(d.citation_id, d.event.camera_id, d.evidence.plate, starts[d.citation_id])
        for d in decisions
        if d.outcome == "citation"
    ]


def thresholds_by_version(decisions: Iterable[Decision], rules: Rules) -> dict[str, float]:
    """The confidence a citation needed, per model version that read the night's images
    (``name version``)."""
    found = {}
    for d in decisions:
        if d.evidence.model_version is not None:
            name = f"{d.evidence.model_name} {d.evidence.model_version}"
            found[name] = round(rules.threshold_for(d.evidence), 4)
    return dict(sorted(found.items()))
