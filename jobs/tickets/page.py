"""The review page of a night: one self-contained HTML file a reviewer opens anywhere.

Everything is inside the file (crop thumbnails as ``data:`` URIs, the style sheet inline, no
script, no font or link to fetch), so it reads offline, from a mail attachment or a USB stick;
the layout is one column on a phone and a grid on a wider screen.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape

import cv2
import numpy as np

THUMB_SIZE = (360, 200)  # px: the largest thumbnail (width, height); smaller crops stay as is
THUMB_QUALITY = 85  # JPEG quality of the thumbnails
REASON_TEXT = {
    "low_confidence": "low confidence",
    "no_plate": "no plate found",
    "pattern_mismatch": "plate format not recognized",
    "error": "image could not be read",
}

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1b1f24;background:#f4f5f7}
header,main{max-width:1200px;margin:0 auto;padding:12px}
h1{font-size:1.3rem;margin:.2rem 0}
h2{font-size:1.1rem;margin:1.2rem 0 .5rem}
.meta{color:#57606a;font-size:.9rem;overflow-wrap:anywhere}
.counts{display:flex;flex-wrap:wrap;gap:6px;padding:0;margin:.6rem 0;list-style:none}
.counts li{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:4px 8px}
.counts b{font-size:1.05rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,280px),1fr));gap:10px}
.item{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px;min-width:0}
.item.review{border-left:6px solid #d4a72c}
.item.citation{border-left:6px solid #1f883d}
.thumb{display:block;width:100%;height:auto;max-height:200px;object-fit:contain;
background:#222;border-radius:4px}
.noimg{display:flex;align-items:center;justify-content:center;height:80px;
background:#eaeef2;border-radius:4px;color:#57606a}
.plate{font:700 1.4rem/1.2 ui-monospace,Menlo,Consolas,monospace;letter-spacing:.08em;
margin:.4rem 0 .2rem}
.reason{display:inline-block;background:#fff8c5;border-radius:4px;padding:1px 6px;font-size:.9rem}
.item dl{display:grid;grid-template-columns:auto 1fr;gap:2px 8px;margin:.4rem 0 0;
font-size:.9rem}
.item dt{color:#57606a}
.item dd{margin:0;overflow-wrap:anywhere}
.alts{font-family:ui-monospace,Menlo,Consolas,monospace}
.tablewrap{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:.9rem;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
th,td.keep{white-space:nowrap}
td.path{word-break:break-all}
.empty{color:#57606a}
"""


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


def item_html(item: PageItem) -> str:
    """The HTML of one card; its confidence is shown against the threshold it needed."""
    threshold = item.min_confidence
    e = escape
    if item.thumbnail:
        label = f"plate crop of event {item.event_id}"
        image = f'<img class="thumb" src="{item.thumbnail}" alt="{e(label)}">'
    else:
        image = '<div class="noimg">no image</div>'
    plate = e(item.plate) if item.plate else "&mdash;"
    reason = ""
    if item.reason:
        reason = f'<span class="reason">{e(REASON_TEXT.get(item.reason, item.reason))}</span>'
    confidence = "&mdash;"
    if item.confidence is not None:
        shown = shown_confidence(item.confidence, threshold)
        side = "&lt;" if np.float32(item.confidence) < np.float32(threshold) else "&ge;"
        confidence = f"{shown} ({side} {threshold:g} needed)"
    alternatives = (
        ", ".join(f"{e(t)} {shown_confidence(c, threshold)}" for t, c in item.alternatives)
        or "&mdash;"
    )
    rows = [
        (
            "speed",
            f"{format_speed(item.speed)} in a {format_speed(item.speed_limit)} {e(item.unit)}",
        ),
        ("confidence", confidence),
        ("alternatives", f'<span class="alts">{alternatives}</span>'),
        ("camera", e(item.camera_id)),
        ("time", e(item.captured_local)),
        ("event", e(item.event_id)),
        ("citation id", e(item.citation_id)),
        ("model", e(item.model_version or "-")),
        ("image", e(item.image_key)),
    ]
    if item.read_error:
        rows.insert(2, ("error", e(item.read_error)))
    details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return (
        f'<article class="item {e(item.kind)}" id="c-{e(item.citation_id)}" '
        f'data-kind="{e(item.kind)}">{image}<div class="plate">{plate}</div>{reason}'
        f"<dl>{details}</dl></article>"
    )


def counts_html(summary: dict) -> str:
    """The night's counts as a list of badges."""
    shown = [
        ("events", summary["in_night"]),
        ("speeding", summary["speeding"]),
        ("citations", summary["citations"]),
        ("to review", summary["review"]),
        ("duplicates", summary["duplicates"]),
        ("rejected rows", summary["rejected_rows"]),
    ]
    shown += [
        (REASON_TEXT[r], n) for r, n in summary.get("review_by_reason", {}).items() if n and r
    ]
    badges = "".join(f"<li>{escape(name)}: <b>{n}</b></li>" for name, n in shown)
    return f'<ul class="counts">{badges}</ul>'


def rejected_html(rejected: list[dict]) -> str:
    """The rejected event values as a table (nothing when there are none)."""
    if not rejected:
        return ""
    head = "<tr><th>file</th><th>row</th><th>column</th><th>value</th><th>reason</th></tr>"
    keep = ' class="keep"'  # numbers, names and values: never cut (the table scrolls instead)
    classes = {"file": ' class="path"', "row": keep, "column": keep, "value": keep}
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{classes.get(k, '')}>{escape('' if r[k] is None else str(r[k]))}</td>"
            for k in ("file", "row", "column", "value", "reason")
        )
        + "</tr>"
        for r in rejected
    )
    return (
        f'<h2>Rejected event values ({len(rejected)})</h2><div class="tablewrap">'
        f"<table>{head}{body}</table></div>"
    )


def section_html(title: str, items: list[PageItem], empty: str) -> str:
    """A titled grid of cards, or a line saying there is nothing."""
    cards = "".join(item_html(i) for i in items)
    inner = f'<div class="grid">{cards}</div>' if items else f'<p class="empty">{empty}</p>'
    return f"<section><h2>{escape(title)} ({len(items)})</h2>{inner}</section>"


def minimum_text(summary: dict) -> str:
    """The night's citation threshold as text: the one given, or each version's."""
    if summary.get("min_confidence") is not None:
        return f"{summary['min_confidence']:g}"
    versions = summary.get("min_confidence_by_version") or {}
    shown = ", ".join(f"{escape(name)}: {value:g}" for name, value in versions.items())
    return f"each version's ({shown})" if shown else "each version's"


def render_review_page(summary: dict, items: list[PageItem], rejected: list[dict]) -> str:
    """The HTML of the night's review page: counts, the review queue, the citations, and the
    rejected event values."""
    night = escape(summary["date"])
    # the likeliest right first, so a reviewer confirms the easy ones quickly; then by time
    review = sorted(
        (i for i in items if i.kind == "review"),
        key=lambda i: (-(i.confidence or 0.0), i.captured_local),
    )
    citations = [i for i in items if i.kind == "citation"]
    settings = (
        f"time zone {escape(summary['timezone'])}; tolerance {summary['tolerance']:g}; "
        f"minimum confidence {minimum_text(summary)}; "
        f"dedupe window {summary['dedupe_window_min']:g} min; run {escape(summary['run_id'])}"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Speed tickets {night}: review</title><style>{STYLE}</style></head><body>"
        f"<header><h1>Speed tickets for {night}</h1>"
        f'<div class="meta">{settings}</div>{counts_html(summary)}</header><main>'
        + section_html("To review", review, "Nothing to review.")
        + section_html("Citations", citations, "No citations.")
        + rejected_html(rejected)
        + "</main></body></html>\n"
    )
