"""The night's capture events: read from CSV or Parquet, validated value by value, each bad
row rejected with its reason and remembered, so a rerun rejects it again and no other night
does."""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from anpr_jobs.storage import (
    first_line,
    list_objects,
    normalize_key,
    open_url,
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


class EventsError(ValueError):
    """An events file that cannot be used at all (missing columns, not a table)."""


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
        raise EventsError(f"cannot read events file {url}: {first_line(exc)}") from exc
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
