"""Which camera took an archived image, and when: from its key, else from its EXIF header.

Archives are laid out as ``<camera>/<yyyy>/<mm>/<dd>/<anything>``; agencies with another
layout pass ``--key-pattern``, a regular expression with the named groups ``camera_id`` and
``captured_at`` (or ``year``, ``month``, ``day`` and optionally ``hour``, ``minute``,
``second``). Times without a zone are taken as UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

DEFAULT_KEY_PATTERN = (
    r"(?:^|/)(?P<camera_id>[^/]+)/(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})/[^/]+$"
)
TIME_GROUPS = ("captured_at", "year")


@dataclass(frozen=True)
class Capture:
    """Where and when an image was taken, as far as is known."""

    camera_id: str | None
    captured_at: datetime | None  # UTC-aware


def compile_key_pattern(pattern: str | None) -> re.Pattern:
    """The compiled ``--key-pattern`` (the default layout when None); ValueError when it is not
    a regular expression or names neither a camera nor a time."""
    try:
        compiled = re.compile(pattern or DEFAULT_KEY_PATTERN)
    except re.error as exc:
        raise ValueError(f"--key-pattern is not a regular expression: {exc}") from exc
    groups = set(compiled.groupindex)
    if "camera_id" not in groups and not groups & set(TIME_GROUPS):
        raise ValueError(
            "--key-pattern needs a named group camera_id, captured_at or year/month/day, "
            r"e.g. (?P<camera_id>[^/]+)/(?P<captured_at>\d{8}T\d{6})"
        )
    return compiled


def capture_of(key: str, pattern: re.Pattern, exif_time: datetime | None) -> Capture:
    """The camera and capture time of the image at ``key``.

    A full time in the key wins; a key that gives only a date takes the time of day from EXIF
    when EXIF agrees on the date, else midnight; a key that gives no time falls back to EXIF,
    then to None.
    """
    match = pattern.search(key)
    groups = match.groupdict() if match else {}
    camera = groups.get("camera_id") or None
    moment, date_only = key_time(groups)
    if moment is None:
        return Capture(camera, exif_time)
    if date_only and exif_time is not None and exif_time.date() == moment.date():
        return Capture(camera, exif_time)
    return Capture(camera, moment)


def key_time(groups: dict) -> tuple[datetime | None, bool]:
    """``(time, date_only)`` from a key pattern's groups; ``(None, False)`` when absent or
    impossible (a month 13 is not a time)."""
    try:
        if groups.get("captured_at"):
            return parse_time(groups["captured_at"]), False
        if groups.get("year"):
            parts = [int(groups.get(g) or 0) for g in ("hour", "minute", "second")]
            day = date(int(groups["year"]), int(groups["month"]), int(groups["day"]))
            moment = datetime(day.year, day.month, day.day, *parts, tzinfo=UTC)
            return moment, not any(groups.get(g) for g in ("hour", "minute", "second"))
    except (ValueError, TypeError, KeyError):
        pass
    return None, False


def parse_time(text: str) -> datetime:
    """A UTC datetime from ISO 8601 text or compact ``YYYYMMDD[THHMMSS]``; ValueError else."""
    text = text.strip()
    compact = re.fullmatch(r"(\d{8})(?:[T_-]?(\d{6}))?", text)
    if compact:
        moment = datetime.strptime(
            compact.group(1) + (compact.group(2) or "000000"), "%Y%m%d%H%M%S"
        )
    else:
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
