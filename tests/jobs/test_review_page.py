"""The review page: self-contained HTML, checked as text and in a real headless browser.

The browser test drives Debian's chromium through selenium and chromedriver (installed by
.ci/install-browser.sh); it skips, saying why, where they are missing.
"""

from __future__ import annotations

import base64
import re
from dataclasses import replace

import cv2
import numpy as np

from anpr_core.config import load_region
from anpr_core.synth import synth_crops
from anpr_jobs.tickets.page import THUMB_SIZE, PageItem, render_review_page, thumbnail_uri

N_REVIEW, N_CITATIONS = 3, 4
REASONS = ("low_confidence", "no_plate", "pattern_mismatch")


def summary(**counts) -> dict:
    """A night's summary as tickets.run_tickets returns it."""
    return {
        "date": "2026-11-24",
        "timezone": "America/New_York",
        "in_night": 12,
        "speeding": N_REVIEW + N_CITATIONS,
        "citations": N_CITATIONS,
        "review": N_REVIEW,
        "duplicates": 1,
        "rejected_rows": 1,
        "review_by_reason": {"low_confidence": 1, "no_plate": 1, "pattern_mismatch": 1},
        "tolerance": 5.0,
        "min_confidence": 0.8,
        "dedupe_window_min": 10.0,
        "run_id": "0123abcd",
    } | counts


def items() -> list[PageItem]:
    """Review items then citations, each with a synthetic plate crop (the no-plate one without)."""
    found = []
    crops = list(synth_crops(N_REVIEW + N_CITATIONS, 3, load_region("us")))
    for i, (_, plate) in enumerate(crops):
        kind = "review" if i < N_REVIEW else "citation"
        reason = REASONS[i] if kind == "review" else None
        png = None if reason == "no_plate" else cv2.imencode(".png", plate.image)[1].tobytes()
        found.append(
            PageItem(
                kind=kind,
                citation_id=f"{i:020x}",
                event_id=f"ev-{i}",
                camera_id="cam-<7>",
                captured_local=f"2026-11-24T0{i}:15:00-05:00",
                speed=61.5 + i,
                speed_limit=50.0,
                unit="mph",
                plate=None if reason == "no_plate" else plate.text,
                confidence=None if reason == "no_plate" else 0.6 + 0.05 * i,
                alternatives=((plate.text, 0.7), ("<script>", 0.1)),
                reason=reason,
                read_error=None,
                model_version="2",
                image_key=f"s3://archive/cam7/2026/11/24/{i}.jpg",
                thumbnail=thumbnail_uri(png),
            )
        )
    return found


def test_the_page_holds_everything_it_shows():
    page = render_review_page(summary(), items(), [])
    assert page.count('<article class="item review"') == N_REVIEW
    assert page.count('<article class="item citation"') == N_CITATIONS
    assert "To review (3)" in page and "Citations (4)" in page and "citations: <b>4</b>" in page
    assert not re.search(r"https?://|<script|<link|@import|url\(", page)
    sources = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(sources) == N_REVIEW + N_CITATIONS - 1  # the no-plate item has no image
    for source in sources:
        prefix, data = source.split(",", 1)
        assert prefix == "data:image/jpeg;base64"
        assert cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), 1) is not None
    assert "cam-&lt;7&gt;" in page and "&lt;script&gt; 0.10" in page
    assert "no plate found" in page and "low confidence" in page


def test_values_from_data_are_escaped_in_attributes_too():
    hostile = 'x" onmouseover="alert(1)'
    item = replace(items()[0], event_id=hostile, citation_id=hostile, kind="review")
    page = render_review_page(summary(), [item], [{"file": hostile, "row": 1, "column": "c",
                                                   "value": "<b>", "reason": "r"}])  # fmt: skip
    assert 'onmouseover="' not in page and "<b>" not in page.split("<table>")[1]
    assert 'id="c-x&#34; onmouseover=&#34;alert(1)"' in page


def test_the_page_lists_rejected_event_values():
    rejected = [
        {"file": "ev.csv", "row": 4, "column": "unit", "value": "kph", "reason": "unknown unit"}
    ]
    page = render_review_page(summary(), [], rejected)
    assert "Nothing to review." in page and "No citations." in page
    assert "Rejected event values (1)" in page
    assert '<td class="keep">kph</td><td>unknown unit</td>' in page


def test_a_confidence_is_shown_on_its_side_of_the_threshold():

    from anpr_jobs.tickets.page import shown_confidence

    assert shown_confidence(0.7987, 0.8) == "0.799" and shown_confidence(0.7999, 0.8) == "0.7999"
    assert shown_confidence(0.8, 0.8) == "0.80" and shown_confidence(0.95, 0.8) == "0.95"
    near, at = (replace(items()[0], confidence=c) for c in (0.7987, 0.8))
    page = render_review_page(summary(), [near, at], [])
    assert "0.799 (&lt; 0.8 needed)" in page and "0.80 (≥ 0.8 needed)" in page
    assert "0.80 (&lt;" not in page


def test_thumbnails_of_large_crops_are_shrunk():
    scene = np.full((720, 1280, 3), 128, np.uint8)
    uri = thumbnail_uri(cv2.imencode(".png", scene)[1].tobytes())
    image = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), 1)
    assert image.shape[1] <= THUMB_SIZE[0] and image.shape[0] <= THUMB_SIZE[1]
    assert thumbnail_uri(None) is None and thumbnail_uri(b"not a png") is None


def layout(driver) -> dict:
    """What a reader sees: item count, loaded images, overflow, items on the first row."""
    return driver.execute_script(
        """
        const items = [...document.querySelectorAll('.item')];
        const images = [...document.querySelectorAll('.item img')];
        const top = items.length ? items[0].getBoundingClientRect().top : 0;
        return {
          items: items.length,
          review: document.querySelectorAll('.item.review').length,
          loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
          images: images.length,
          overflow: document.documentElement.scrollWidth - window.innerWidth,
          first_row: items.filter(i => Math.abs(i.getBoundingClientRect().top - top) < 2).length,
        };
        """
    )


def test_the_page_in_a_headless_browser_on_a_phone_and_a_desktop(browser, tmp_path):
    from selenium.webdriver.common.by import By

    path = tmp_path / "review-2026-11-24.html"
    path.write_text(render_review_page(summary(), items(), []), encoding="utf-8")

    browser.set_window_size(390, 844)  # a phone
    browser.get(path.as_uri())
    phone = layout(browser)
    assert phone["items"] == N_REVIEW + N_CITATIONS and phone["review"] == N_REVIEW
    assert phone["loaded"] == phone["images"] == N_REVIEW + N_CITATIONS - 1
    assert phone["overflow"] <= 0 and phone["first_row"] == 1
    assert "citations: 4" in browser.find_element(By.CSS_SELECTOR, ".counts").text
    shot = cv2.imdecode(np.frombuffer(browser.get_screenshot_as_png(), np.uint8), 1)
    assert shot.shape[1] >= 300 and shot.std() > 10  # drawn, not a blank page
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 50

    browser.set_window_size(1280, 900)
    browser.get(path.as_uri())
    desktop = layout(browser)
    assert desktop["items"] == N_REVIEW + N_CITATIONS and desktop["first_row"] >= 3
    assert desktop["overflow"] <= 0


def test_the_rejected_table_breaks_no_number_or_word_on_a_phone(browser, tmp_path):
    rejected = [
        {
            "file": f"/srv/agency/exports/night-2026-11-24/camera-{i}/events-part-{i:04d}.csv",
            "row": 20 + i,
            "column": column,
            "value": "2026-11-24 23:59:59",
            "reason": "no time zone: give an offset (+02:00, Z) or a tz-aware timestamp",
        }
        for i, column in enumerate(("captured_at", "speed_limit", "image_key"))
    ]
    path = tmp_path / "review.html"
    path.write_text(render_review_page(summary(), [], rejected), encoding="utf-8")
    browser.set_window_size(390, 844)
    browser.get(path.as_uri())
    split = browser.execute_script(
        """
        const broken = [];
        for (const cell of document.querySelectorAll('table th, table td:not(.path)')) {
          const text = cell.firstChild;
          if (!text) continue;
          const words = [...text.data.matchAll(/[^\\s-]+/g)];  // a break after a hyphen is fine
          for (const word of words) {
            const range = document.createRange();
            range.setStart(text, word.index);
            range.setEnd(text, word.index + word[0].length);
            if (range.getClientRects().length > 1) broken.push(word[0]);
          }
        }
        return broken;
        """
    )
    assert split == []
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0  # the table scrolls inside its own box, the page does not
