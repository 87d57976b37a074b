"""The review page of a night: one self-contained HTML file a reviewer opens anywhere.

Everything is inside the file (crop thumbnails as ``data:`` URIs, the style sheet inline, no
script, no font or link to fetch), so it reads offline, from a mail attachment or a USB stick;
the layout is one column on a phone and a grid on a wider screen. The page is a Jinja2
template (``templates/review_page.html``) with autoescaping: every value that comes from data
is escaped, in text and in attributes.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

import cv2
import jinja2
import numpy as np

THUMB_SIZE = (360, 200)  # px: the largest thumbnail (width, height); smaller crops stay as is
THUMB_QUALITY = 85  # JPEG quality of the thumbnails
REASON_TEXT = {
    "low_confidence": "low confidence",
    "no_plate": "no plate found",
    "pattern_mismatch": "plate format not recognized",
    "error": "image could not be read",
}


@dataclass(frozen=True)
class PageItem:
    """One card of the page: a review item or a citation, with its evidence."""

    kind: str  # review | citation
    citation_id: str
    event_id: str
    camera_id: str
    captured_local: str
    speed: float
    speed_limit: float
    unit: str
    plate: str | None
    confidence: float | None
    alternatives: tuple[tuple[str, float], ...]
    reason: str | None
    read_error: str | None
    model_version: str | None
    image_key: str
    thumbnail: str | None  # a data: URI
    min_confidence: float = 0.8  # the confidence this read needed for a ticket


def thumbnail_uri(png: bytes | None) -> str | None:
    """A ``data:image/jpeg`` URI of the crop ``png`` shrunk to fit THUMB_SIZE, or None without
    an image.

    JPEG, not PNG: a photo's thumbnail is several times smaller, which keeps a night with
    hundreds of items a page a phone opens quickly.
    """
    if not png:
        return None
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height, width = image.shape[:2]
    scale = min(1.0, THUMB_SIZE[0] / width, THUMB_SIZE[1] / height)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])[1]
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


def page_item(row: dict, png: bytes | None, kind: str) -> PageItem:
    """The PageItem of an evidence row (tickets.EVIDENCE_SCHEMA) and its crop PNG."""
    return PageItem(
        kind=kind,
        citation_id=row["citation_id"],
        event_id=row["event_id"],
        camera_id=row["camera_id"],
        captured_local=row["captured_local"],
        speed=row["speed"],
        speed_limit=row["speed_limit"],
        unit=row["unit"],
        plate=row["plate"],
        confidence=row["confidence"],
        alternatives=tuple((a["text"], a["confidence"]) for a in row["alternatives"] or []),
        reason=row["reason"],
        read_error=row["read_error"],
        model_version=row["model_version"],
        image_key=row["image_key"],
        thumbnail=thumbnail_uri(png),
        min_confidence=row.get("min_confidence") or 0.8,
    )


def format_speed(value: float) -> str:
    """A speed without a needless ``.0``."""
    return f"{value:g}"


def shown_confidence(value: float, threshold: float) -> str:
    """``value`` with as few decimals (two at least) as keep it on its side of ``threshold``,
    compared in float32 as the ticket rule compares: 0.7987 under 0.8 shows as 0.799, never
    as a rounded 0.80 that looks like a pass."""
    below = np.float32(value) < np.float32(threshold)
    for digits in range(2, 8):
        text = f"{value:.{digits}f}"
        if (np.float32(float(text)) < np.float32(threshold)) == below:
            return text
    return repr(float(value))


def confidence_text(item: PageItem) -> str:
    """The read's confidence against the threshold it needed: ``0.799 (< 0.8 needed)``."""
    return confidence_against(item.confidence, item.min_confidence)


def confidence_against(confidence: float | None, threshold: float) -> str:
    """``confidence`` shown on its side of ``threshold``: ``0.799 (< 0.8 needed)``."""
    if confidence is None:
        return "—"
    side = "<" if np.float32(confidence) < np.float32(threshold) else "≥"
    return f"{shown_confidence(confidence, threshold)} ({side} {threshold:g} needed)"


def night_counts(summary: dict) -> list[tuple[str, int]]:
    """The night's counts as (name, number) badges, review reasons that occurred included."""
    shown = [
        ("events", summary["in_night"]),
        ("speeding", summary["speeding"]),
        ("citations", summary["citations"]),
        ("to review", summary["review"]),
        ("duplicates", summary["duplicates"]),
        ("rejected rows", summary["rejected_rows"]),
    ]
    reasons = summary.get("review_by_reason", {}).items()
    return shown + [(REASON_TEXT[r], n) for r, n in reasons if n and r]


def minimum_text(summary: dict) -> str:
    """The night's citation threshold as text: the one given, or each version's."""
    if summary.get("min_confidence") is not None:
        return f"{summary['min_confidence']:g}"
    versions = summary.get("min_confidence_by_version") or {}
    shown = ", ".join(f"{name}: {value:g}" for name, value in versions.items())
    return f"each version's ({shown})" if shown else "each version's"


@functools.cache
def templates() -> jinja2.Environment:
    """The page templates (package data), autoescaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("anpr_jobs.tickets", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters |= {
        "speed": format_speed,
        "shown": shown_confidence,
        "confidence_text": confidence_text,
    }
    return env


def render_review_page(summary: dict, items: list[PageItem], rejected: list[dict]) -> str:
    """The HTML of the night's review page: counts, the review queue (the likeliest right
    first, so a reviewer confirms the easy ones quickly; then by time), the citations, and
    the rejected event values."""
    review = sorted(
        (i for i in items if i.kind == "review"),
        key=lambda i: (-(i.confidence or 0.0), i.captured_local),
    )
    return (
        templates()
        .get_template("review_page.html")
        .render(
            summary=summary,
            minimum=minimum_text(summary),
            counts=night_counts(summary),
            review=review,
            citations=[i for i in items if i.kind == "citation"],
            rejected=rejected,
            reason_text=REASON_TEXT,
        )
        + "\n"
    )
