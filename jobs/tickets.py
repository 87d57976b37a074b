"""Nightly tickets: a night's speed-camera events joined with plate reads become citations.

The job reads like a recipe: load and validate the events, keep the night's (in the agency's
time zone), keep the speeding ones, join them with the plate reads (reading on the spot any
image that has none yet), decide citation / review / duplicate, write the night.

Outputs under OUTPUT_URL, one partition per night (``date=YYYY-MM-DD``), each file written
whole under a deterministic name, so a rerun of the same night replaces it::

    citations/date=D/part-0.parquet    one row per ticket (EVIDENCE_SCHEMA)
    duplicates/date=D/part-0.parquet   same vehicle, same camera, within the dedupe window
    review/date=D/part-0.parquet       speeding, but the read is not good enough: ``reason``
    rejected/date=D/part-0.parquet     event rows that could not be used (REJECTED_SCHEMA)
    crops/date=D/<citation_id>.png     the plate (or, with no plate, the scene) of each item
    pages/review-D.html                the self-contained review page of the night
    summaries/D.json                   the night's counts and settings

Defaults (CLI options map one to one to ``Rules`` and ``Night``): the night is the calendar
day D in ``--timezone`` (default UTC); a citation needs speed > limit + ``--tolerance``
(default 5, in the event's own unit: 5 mph or 5 km/h) and a best read with confidence >=
``--min-confidence`` (default 0.8) whose text matches a format pattern of its region; one
vehicle (plate text) caught by one camera several times within ``--dedupe-window`` minutes
(default 10) of its first capture gets one citation, for the highest excess speed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import posixpath
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from anpr_core.errors import ImageError
from anpr_core.metrics import citation_confidence
from jobs.cluster import ReadImages
from jobs.storage import (
    READS_SCHEMA,
    check_writable,
    fetch_one,
    list_objects,
    load_image,
    normalize_key,
    open_url,
    parquet_bytes,
    remove_all,
    write_bytes_atomic,
)

EVENT_COLUMNS = (
    "event_id",
    "camera_id",
    "captured_at",
    "image_key",
    "speed",
    "speed_limit",
    "unit",
)
UNITS = {"mph": 1.609344, "km/h": 1.0}  # km/h per unit, to compare excess speeds across units
EVENT_SUFFIXES = (".parquet", ".pq", ".csv")
REASONS = ("low_confidence", "no_plate", "pattern_mismatch", "error")
PARTITION = "date"
PART_NAME = "part-0.parquet"
MAX_DEDUPE_MINUTES = 1440  # a night's dedupe looks back into the night before, not further
CROP_MARGIN = 0.15  # of the plate box, on each side, so the whole plate shows in its crop
SCENE_CROP_WIDTH = 640  # px: with no plate box, the crop is the whole scene, shrunk to this


class EventsError(ValueError):
    """An events file that cannot be used at all (missing columns, not a table)."""


# ---------------------------------------------------------------------------------------------
# Schemas of the outputs (declared once, here)


def _from_reads(*names: str) -> list[pa.Field]:
    """Fields of the reads schema by name (top level first, else of its per-plate struct):
    the evidence carries a read's fields with the reads' own types, so the two cannot drift."""
    plate = READS_SCHEMA.field("plates").type.value_type
    return [
        READS_SCHEMA.field(name) if name in READS_SCHEMA.names else plate.field(name)
        for name in names
    ]


def _evidence_schema() -> pa.Schema:
    """The schema of citations, duplicates and review rows (without the partition column)."""
    utc = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("citation_id", pa.string()),  # stable hash of the event (camera, event, time)
            ("event_id", pa.string()),
            ("camera_id", pa.string()),
            ("captured_at", utc),
            ("captured_local", pa.string()),  # ISO 8601 in the agency's time zone
            ("image_key", pa.string()),
            ("speed", pa.float64()),
            ("speed_limit", pa.float64()),
            ("unit", pa.string()),  # mph | km/h
            ("excess", pa.float64()),  # speed - speed_limit, in ``unit``
            ("reason", pa.string()),  # review only: low_confidence|no_plate|pattern_mismatch|error
            ("duplicate_of", pa.string()),  # duplicates only: the citation_id that was issued
            ("read_status", pa.string()),  # ok | no_plate | error, as in the reads
            ("read_error", pa.string()),
            *_from_reads("plate", "confidence", "detection_score"),
            *_from_reads("box_x", "box_y", "box_w", "box_h", "pattern", "alternatives"),
            *_from_reads("region", "model_name", "model_version", "pipeline_version"),
            ("read_run_id", pa.string()),  # the run that produced the read
            ("min_confidence", pa.float32()),  # the confidence this read needed for a ticket
            ("crop_key", pa.string()),  # the crop PNG, relative to OUTPUT_URL (null: no image)
            ("source_file", pa.string()),
            ("source_row", pa.int64()),  # 1-based data row in source_file (header not counted)
            ("run_id", pa.string()),  # this tickets run
            ("generated_at", utc),
        ]
    )


def _rejected_schema() -> pa.Schema:
    """The schema of rejected event values: one row per bad value of an event row."""
    return pa.schema(
        [
            ("file", pa.string()),
            ("row", pa.int64()),  # 1-based data row in the file (header not counted)
            ("column", pa.string()),
            ("value", pa.string()),  # the offending value as text (null when missing)
            ("reason", pa.string()),
            ("event_id", pa.string()),  # when the row has a readable one
            ("run_id", pa.string()),
        ]
    )


EVIDENCE_SCHEMA = _evidence_schema()
REJECTED_SCHEMA = _rejected_schema()


# ---------------------------------------------------------------------------------------------
# Records


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
class Night:
    """The calendar day ``date`` in the agency's time zone ``timezone`` (an IANA name)."""

    date: date
    timezone: str = "UTC"

    @classmethod
    def parse(cls, day: str, timezone: str = "UTC") -> Night:
        """The Night of a ``YYYY-MM-DD`` text; ValueError naming a bad date or time zone."""
        try:
            parsed = date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"--date must be YYYY-MM-DD, got {day!r}") from None
        agency_zone(timezone)
        return cls(parsed, timezone)

    def bounds(self) -> tuple[datetime, datetime]:
        """The night's first instant and the first instant after it, as aware datetimes.

        Days of a daylight-saving change have 23 or 25 hours; the bounds follow the wall clock.
        """
        zone = agency_zone(self.timezone)
        start = datetime.combine(self.date, datetime.min.time(), zone)
        end = datetime.combine(self.date + timedelta(days=1), datetime.min.time(), zone)
        return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class Event:
    """One validated capture event."""

    event_id: str
    camera_id: str
    captured_at: datetime  # aware, UTC
    image_key: str
    speed: float
    speed_limit: float
    unit: str
    source_file: str = ""
    source_row: int = 0

    @property
    def excess(self) -> float:
        """Speed over the limit, in the event's unit."""
        return self.speed - self.speed_limit

    @property
    def excess_kmh(self) -> float:
        """Speed over the limit in km/h, to rank events of different units."""
        return self.excess * UNITS[self.unit]


@dataclass(frozen=True)
class Rejection:
    """One value that made an event row unusable."""

    file: str
    row: int
    column: str
    value: str | None
    reason: str
    event_id: str | None = None


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
    """What became of a speeding event: ``citation``, ``review`` or ``duplicate``."""

    event: Event
    evidence: Evidence
    outcome: str
    reason: str | None = None
    duplicate_of: str | None = None

    @property
    def citation_id(self) -> str:
        """The event's stable citation id."""
        return citation_id(self.event)


@dataclass(frozen=True)
class EventsLoad:
    """Everything read from EVENTS_URL: valid events, rejections, and the files looked at."""

    events: list[Event]
    rejections: list[Rejection]
    rejected_rows: int
    outside_night: int
    total_rows: int
    files: list[str]
    ignored_files: list[str] = field(default_factory=list)
    unplaced: frozenset[tuple[str, int]] = frozenset()  # rejected rows with no usable time


# ---------------------------------------------------------------------------------------------
# Validation of event values (pure)


class BadValue(ValueError):
    """A value of an event row that cannot be used; the message is the reason."""


def agency_zone(name: str) -> ZoneInfo:
    """The time zone named ``name``; ValueError naming it when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name like Europe/Paris") from exc


def is_missing(value) -> bool:
    """Whether ``value`` is absent: None, NaN, NaT or an empty string."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):
        return False


def parse_text(value) -> str:
    """``value`` as a non-empty string (integers are accepted, as ids often are)."""
    if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
        raise BadValue(f"not text: {type(value).__name__}")
    return str(value).strip()


def parse_captured_at(value) -> datetime:
    """``value`` as an aware UTC datetime; BadValue when unparseable or without a time zone."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise BadValue("not an ISO 8601 timestamp") from exc
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise BadValue(f"not a timestamp: {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadValue("no time zone: give an offset (+02:00, Z) or a tz-aware timestamp")
    return value.astimezone(UTC)


def parse_number(value) -> float:
    """``value`` as a finite float; BadValue otherwise."""
    if isinstance(value, bool):
        raise BadValue("not a number: a boolean")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError) as exc:
        raise BadValue("not a number") from exc
    if not math.isfinite(number):
        raise BadValue("not a finite number")
    return number


def parse_image_key(value) -> str:
    """An image key in the one form keys are compared in (``storage.normalize_key``), so
    ``file:///a/b.jpg``, ``/a//b.jpg`` and a relative ``b.jpg`` run from ``/a`` are one key."""
    return normalize_key(parse_text(value))


def parse_speed(value) -> float:
    """A measured speed: a number >= 0."""
    speed = parse_number(value)
    if speed < 0:
        raise BadValue("negative speed")
    return speed


def parse_speed_limit(value) -> float:
    """A speed limit: a number > 0."""
    limit = parse_number(value)
    if limit <= 0:
        raise BadValue("speed limit must be positive")
    return limit


def parse_unit(value) -> str:
    """``mph`` or ``km/h`` (case and surrounding spaces ignored); BadValue otherwise."""
    unit = parse_text(value).lower()
    if unit not in UNITS:
        raise BadValue(f"unknown unit: use {' or '.join(UNITS)}")
    return unit


PARSERS = {
    "event_id": parse_text,
    "camera_id": parse_text,
    "captured_at": parse_captured_at,
    "image_key": parse_image_key,
    "speed": parse_speed,
    "speed_limit": parse_speed_limit,
    "unit": parse_unit,
}


def value_text(value) -> str | None:
    """``value`` as it would be shown to a person fixing the file (None when missing)."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def validate_row(values: dict, file: str, row: int) -> Event | list[Rejection]:
    """The Event in one row of an events file, or one Rejection per bad value."""
    parsed, problems = {}, []
    event_id = values.get("event_id")
    event_id = None if is_missing(event_id) else str(event_id)
    for column in EVENT_COLUMNS:
        value = values.get(column)
        try:
            if is_missing(value):
                raise BadValue("missing value")
            parsed[column] = PARSERS[column](value)
        except BadValue as exc:
            problems.append(Rejection(file, row, column, value_text(value), str(exc), event_id))
    if problems:
        return problems
    return Event(**parsed, source_file=file, source_row=row)


# ---------------------------------------------------------------------------------------------
# Loading events (I/O at the edge)


def events_files(url: str) -> tuple[list[str], list[str]]:
    """The events files at ``url`` (a file, a folder or prefix, or a glob; a name is taken
    literally when it exists) and the files found there that are not events files (another
    suffix); FileNotFoundError when there is none."""
    fs, path = open_url(url)
    if fs.isfile(path):
        return [url], []
    try:
        fs, found, _ = list_objects(url)
    except FileNotFoundError:
        raise FileNotFoundError(f"events not found: {url}") from None
    names = sorted(p for p, info in found.items() if info.get("type") != "directory")
    visible = [p for p in names if not posixpath.basename(p).startswith((".", "_"))]
    files = [p for p in visible if p.lower().endswith(EVENT_SUFFIXES)]
    if not files:
        raise FileNotFoundError(f"no events files ({', '.join(EVENT_SUFFIXES)}) under {url}")
    ignored = [p for p in visible if p not in files]
    return [shown_url(fs, p) for p in files], [shown_url(fs, p) for p in ignored]


def shown_url(fs, path: str) -> str:
    """``path`` on ``fs`` as a user would type it: a plain path on the local disk, else a URL."""
    return path if "file" in fs.protocol else fs.unstrip_protocol(path)


def read_events_table(url: str) -> list[dict]:
    """The rows of one events file (CSV values as text); EventsError naming the file when it
    cannot be read or lacks columns."""
    try:
        fs, path = open_url(url)
        with fs.open(path, "rb") as f:
            if url.lower().endswith(".csv"):
                import pandas as pd

                frame = pd.read_csv(f, dtype=str, keep_default_na=False)
                columns, rows = list(frame.columns), frame.to_dict("records")
            else:
                table = pq.read_table(f)
                columns, rows = table.column_names, table.to_pylist()
    except (OSError, ValueError, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EventsError(f"cannot read events file {url}: {first}") from exc
    missing = [c for c in EVENT_COLUMNS if c not in columns]
    if missing:
        raise EventsError(
            f"events file {url} lacks columns {', '.join(missing)} "
            f"(needs {', '.join(EVENT_COLUMNS)})"
        )
    return rows


def load_events(
    url: str, night: Night, bounds: tuple[datetime, datetime] | None = None
) -> EventsLoad:
    """The night's valid events from every events file at ``url``, and what was rejected.

    A row whose ``captured_at`` is valid and outside the night (or ``bounds``, when given) is
    counted, not checked further (that night's run reports it). Any other row with a bad value
    is rejected, as is a second row with an ``event_id`` already seen this night; a rejected
    row with no usable time belongs to no night by its time, and is listed in ``unplaced``.
    """
    start, end = bounds or night.bounds()
    files, ignored = events_files(url)
    events, rejections = [], []
    seen: dict[str, Event] = {}
    unplaced: set[tuple[str, int]] = set()
    rejected_rows = outside = total = 0
    for file in files:
        for row, values in enumerate(read_events_table(file), start=1):
            total += 1
            try:
                captured = parse_captured_at(values.get("captured_at"))
            except BadValue:
                captured = None
            if captured is not None and not start <= captured < end:
                outside += 1
                continue
            result = validate_row(values, file, row)
            if isinstance(result, Event) and result.event_id in seen:
                first = seen[result.event_id]
                reason = f"duplicate event_id: first in {first.source_file} row {first.source_row}"
                result = [
                    Rejection(file, row, "event_id", result.event_id, reason, result.event_id)
                ]
            if isinstance(result, Event):
                seen[result.event_id] = result
                events.append(result)
            else:
                rejections.extend(result)
                rejected_rows += 1
                if captured is None:
                    unplaced.add((file, row))
    return EventsLoad(
        events, rejections, rejected_rows, outside, total, files, ignored, frozenset(unplaced)
    )


REJECTION_LEDGER = "_state/rejections"  # under OUTPUT_URL: which night rejected which row


def ledger_path(root: str, file: str) -> str:
    """The ledger of one events file: the night each of its unplaced rows was rejected in."""
    digest = hashlib.sha256(file.encode("utf-8")).hexdigest()[:20]
    return posixpath.join(root, REJECTION_LEDGER, f"{digest}.json")


def read_ledgers(fs, root: str, files: Iterable[str]) -> dict[str, dict[str, str]]:
    """``{file: {row: night}}`` of the rows rejected so far, per events file."""
    ledgers = {}
    for file in files:
        path = ledger_path(root, file)
        ledgers[file] = json.loads(fs.cat_file(path))["rows"] if fs.isfile(path) else {}
    return ledgers


def place_rejections(
    loaded: EventsLoad, ledgers: dict[str, dict[str, str]], night: Night
) -> tuple[EventsLoad, dict[str, dict[str, str]], int]:
    """The night's rejections without the unplaced rows an earlier night already rejected,
    the ledgers with this night's unplaced rows added, and how many rows were left out.

    A row whose time cannot be read belongs to no night: it is rejected once, by the first
    night run over its file, and that night keeps it on every rerun."""
    day = night.date.isoformat()
    elsewhere = {
        (file, row)
        for file, row in loaded.unplaced
        if ledgers.get(file, {}).get(str(row), day) != day
    }
    updated = {file: dict(rows) for file, rows in ledgers.items()}
    for file, row in loaded.unplaced - elsewhere:
        updated.setdefault(file, {})[str(row)] = day
    kept = [r for r in loaded.rejections if (r.file, r.row) not in elsewhere]
    placed = replace(
        loaded,
        rejections=kept,
        rejected_rows=loaded.rejected_rows - len(elsewhere),
        unplaced=loaded.unplaced - elsewhere,
    )
    return placed, updated, len(elsewhere)


def write_ledgers(fs, root: str, before: dict, after: dict) -> None:
    """Nothing; writes the ledgers that changed."""
    for file, rows in sorted(after.items()):
        if rows != before.get(file, {}):
            ordered = dict(sorted(rows.items(), key=lambda item: int(item[0])))
            data = json.dumps({"file": file, "rows": ordered}, indent=1)
            write_bytes_atomic(fs, ledger_path(root, file), data.encode("utf-8"))


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


def earlier_from_outputs(citations: pa.Table, duplicates: pa.Table) -> list[EarlierCitation]:
    """The citations of an earlier night's outputs, each with the first capture of its group
    (the citation and the duplicates of it)."""
    starts: dict[str, datetime] = {}
    for row in duplicates.select(["duplicate_of", "captured_at"]).to_pylist():
        if row["duplicate_of"]:
            known = starts.get(row["duplicate_of"], row["captured_at"])
            starts[row["duplicate_of"]] = min(known, row["captured_at"])
    found = []
    for row in citations.select(["citation_id", "camera_id", "plate", "captured_at"]).to_pylist():
        start = min(row["captured_at"], starts.get(row["citation_id"], row["captured_at"]))
        found.append(EarlierCitation(row["citation_id"], row["camera_id"], row["plate"], start))
    return found


# ---------------------------------------------------------------------------------------------
# Plate reads


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


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a perf_counter reading)."""
    return (time.perf_counter() - start) * 1000


# ---------------------------------------------------------------------------------------------
# Crops


def crop_image(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The plate in ``box`` with a margin, or the whole scene shrunk when there is no box."""
    if box is None or box[2] <= 0 or box[3] <= 0:
        height, width = image.shape[:2]
        if width <= SCENE_CROP_WIDTH:
            return image
        size = (SCENE_CROP_WIDTH, max(1, round(height * SCENE_CROP_WIDTH / width)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    x, y, w, h = box
    mx, my = round(w * CROP_MARGIN), round(h * CROP_MARGIN)
    height, width = image.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(width, x + w + mx), min(height, y + h + my)
    if x1 <= x0 or y1 <= y0:
        return crop_image(image, None)
    return image[y0:y1, x0:x1]


def crop_png(image_key: str, box) -> bytes | None:
    """The PNG of the crop of an event's image, or None when the image cannot be read."""
    try:
        image = load_image(fetch_one(image_key))
    except ImageError:
        return None
    ok, encoded = cv2.imencode(".png", crop_image(image, box))
    return encoded.tobytes() if ok else None


# ---------------------------------------------------------------------------------------------
# Output rows


def evidence_row(
    decision: Decision, zone: ZoneInfo, crop_key, run_id, now, rules: Rules = Rules()
) -> dict:
    """The EVIDENCE_SCHEMA row of a decision."""
    event, evidence = decision.event, decision.evidence
    box = evidence.box or (None, None, None, None)
    return {
        "citation_id": decision.citation_id,
        "event_id": event.event_id,
        "camera_id": event.camera_id,
        "captured_at": event.captured_at,
        "captured_local": event.captured_at.astimezone(zone).isoformat(),
        "image_key": event.image_key,
        "speed": event.speed,
        "speed_limit": event.speed_limit,
        "unit": event.unit,
        "excess": event.excess,
        "reason": decision.reason,
        "duplicate_of": decision.duplicate_of,
        "read_status": evidence.status,
        "read_error": evidence.error,
        "plate": evidence.plate,
        "confidence": evidence.confidence,
        "detection_score": evidence.detection_score,
        "box_x": box[0],
        "box_y": box[1],
        "box_w": box[2],
        "box_h": box[3],
        "pattern": evidence.pattern,
        "alternatives": [{"text": t, "confidence": c} for t, c in evidence.alternatives],
        "region": evidence.region,
        "model_name": evidence.model_name,
        "model_version": evidence.model_version,
        "pipeline_version": evidence.pipeline_version,
        "read_run_id": evidence.run_id,
        "min_confidence": rules.threshold_for(evidence),
        "crop_key": crop_key,
        "source_file": event.source_file,
        "source_row": event.source_row,
        "run_id": run_id,
        "generated_at": now,
    }


def rejected_row(rejection: Rejection, run_id: str) -> dict:
    """The REJECTED_SCHEMA row of a rejection."""
    return {
        "file": rejection.file,
        "row": rejection.row,
        "column": rejection.column,
        "value": rejection.value,
        "reason": rejection.reason,
        "event_id": rejection.event_id,
        "run_id": run_id,
    }


# ---------------------------------------------------------------------------------------------
# Writing (each file whole or not at all, under a deterministic name)


def replace_folder(fs, folder: str, files: dict[str, bytes], suffix: str) -> None:
    """Nothing; writes ``files`` (name -> bytes) into ``folder`` and then removes the files
    with ``suffix`` that a previous run left there and this one did not write."""
    for name, data in sorted(files.items()):
        write_bytes_atomic(fs, posixpath.join(folder, name), data)
    if fs.isdir(folder):
        stale = [
            path
            for path in fs.ls(folder, detail=False)
            if (name := posixpath.basename(path)).endswith(suffix)
            and not name.startswith("_")
            and name not in files
        ]
        remove_all(fs, stale)


def night_folder(root: str, dataset: str, night: Night) -> str:
    """The partition folder of ``dataset`` for the night."""
    return posixpath.join(root, dataset, f"{PARTITION}={night.date.isoformat()}")


# ---------------------------------------------------------------------------------------------
# The job


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
    image has no row in ``reads_url`` are read with ``read_images``, once, in one call.
    """
    from jobs.review_page import page_item, render_review_page

    say = progress or (lambda message: None)
    started = time.perf_counter()
    run_id, now = uuid.uuid4().hex, datetime.now(UTC)
    zone = agency_zone(night.timezone)
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
    decisions = dedupe(decisions, rules.dedupe_window, earlier)
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
    tables = {}
    for outcome, dataset in (
        ("citation", "citations"),
        ("duplicate", "duplicates"),
        ("review", "review"),
    ):
        chosen = sorted(
            (d for d in decisions if d.outcome == outcome),
            key=lambda d: (d.event.captured_at, d.citation_id),
        )
        rows = [
            evidence_row(d, zone, crop_keys.get(d.citation_id), run_id, now, rules) for d in chosen
        ]
        tables[dataset] = pa.Table.from_pylist(rows, schema=EVIDENCE_SCHEMA)
    tables["rejected"] = pa.Table.from_pylist(
        [rejected_row(r, run_id) for r in loaded.rejections], schema=REJECTED_SCHEMA
    )
    for dataset, table in tables.items():
        folder = night_folder(root, dataset, night)
        replace_folder(fs, folder, {PART_NAME: parquet_bytes(table)}, ".parquet")

    write_ledgers(fs, root, ledgers, placed)
    summary = night_summary(night, rules, loaded, speeding, decisions, len(missing), run_id)
    issued_before = {c.citation_id for c in earlier}
    summary |= {
        "rejected_in_earlier_night": rejected_before,
        "duplicates_of_earlier_night": sum(d.duplicate_of in issued_before for d in decisions),
    }
    page_path = posixpath.join(root, "pages", f"review-{night.date.isoformat()}.html")
    summary_path = posixpath.join(root, "summaries", f"{night.date.isoformat()}.json")
    summary["outputs"] = {
        dataset: shown_url(fs, night_folder(root, dataset, night)) for dataset in (*tables, "crops")
    } | {"page": shown_url(fs, page_path), "summary": shown_url(fs, summary_path)}
    items = [
        page_item(row, crops.get(f"{row['citation_id']}.png"), kind)
        for kind, dataset in (("review", "review"), ("citation", "citations"))
        for row in tables[dataset].to_pylist()
    ]
    page = render_review_page(summary, items, tables["rejected"].to_pylist())
    write_bytes_atomic(fs, page_path, page.encode("utf-8"))
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    write_bytes_atomic(fs, summary_path, json.dumps(summary, indent=2).encode("utf-8"))
    return summary


def thresholds_by_version(decisions: Iterable[Decision], rules: Rules) -> dict[str, float]:
    """The confidence a citation needed, per model version that read the night's images
    (``name version``)."""
    found = {}
    for d in decisions:
        if d.evidence.model_version is not None:
            name = f"{d.evidence.model_name} {d.evidence.model_version}"
            found[name] = round(rules.threshold_for(d.evidence), 4)
    return dict(sorted(found.items()))


def night_summary(night, rules, loaded: EventsLoad, speeding, decisions, read_now, run_id):
    """The night's counts: every event row is in exactly one of ``outside_night``,
    ``rejected_rows``, ``not_speeding``, ``citations``, ``duplicates`` and ``review``, or, for a
    row with no usable time rejected by an earlier night, ``rejected_in_earlier_night`` (added
    by the job)."""
    start, end = night.bounds()
    outcomes = [d.outcome for d in decisions]
    return {
        "date": night.date.isoformat(),
        "timezone": night.timezone,
        "night_start": start.isoformat(),
        "night_end": end.isoformat(),
        "events_files": loaded.files,
        "ignored_files": loaded.ignored_files,
        "events_rows": loaded.total_rows,
        "outside_night": loaded.outside_night,
        "rejected_rows": loaded.rejected_rows,
        "rejected_values": len(loaded.rejections),
        "in_night": len(loaded.events),
        "not_speeding": len(loaded.events) - len(speeding),
        "speeding": len(speeding),
        "citations": outcomes.count("citation"),
        "duplicates": outcomes.count("duplicate"),
        "review": outcomes.count("review"),
        "review_by_reason": {r: sum(d.reason == r for d in decisions) for r in REASONS},
        "images_read_now": read_now,
        "tolerance": rules.tolerance,
        "min_confidence": rules.min_confidence,  # null: each version's own threshold
        "min_confidence_by_version": thresholds_by_version(decisions, rules),
        # the number of citations expected to name the wrong plate, if confidence is calibrated
        "expected_wrong_citations": round(
            sum(1 - (d.evidence.confidence or 0) for d in decisions if d.outcome == "citation"), 3
        ),
        "dedupe_window_min": rules.dedupe_window.total_seconds() / 60,
        "run_id": run_id,
    }
