"""``anpr review serve``: the review desk, a small web app over a tickets output folder.

A reviewer lists the nights, opens one and decides each item from the keyboard: confirm the
read, type the right plate, mark it unreadable, not a plate or not a violation; void a
citation with a reason. Each decision is recorded in the night's decisions log and the night
is published again (``publish.publish_night``, as ``anpr tickets`` does), so citations,
review queue and voided citations always follow the log.

Safe by default: bound to 127.0.0.1 unless told otherwise; a reviewer name is required; with
``ANPR_REVIEW_TOKEN`` set every request needs the token (a bearer header, or ``?token=`` once,
kept in a cookie); decisions are POSTs carrying a CSRF token that must match the reviewer's
cookie; every value from data is escaped by the templates (Jinja2, autoescape). An image is
served only as the crop or capture of an item of the night, never by a path from the request.
"""

from __future__ import annotations

import hmac
import json
import os
import posixpath
import secrets
from urllib.parse import urlencode

import cv2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from anpr_core.errors import ImageError
from anpr_jobs.storage import EVIDENCE_SCHEMA, fetch_one, load_image, open_url
from anpr_jobs.tickets.outputs import PART_NAME
from anpr_jobs.tickets.page import REASON_TEXT, confidence_against, templates
from anpr_jobs.tickets.publish import NIGHT, has_state, nights_run, publish_night, read_table
from anpr_jobs.tickets.reviews import (
    ON_CITATION,
    ON_REVIEW,
    ReviewError,
    latest_by_item,
    load_reviews,
    make_review,
    record_review,
)

TOKEN_ENV = "ANPR_REVIEW_TOKEN"
REVIEWER_COOKIE, CSRF_COOKIE, TOKEN_COOKIE = "anpr_reviewer", "anpr_csrf", "anpr_token"
CAPTURE_WIDTH = 1280  # px: the larger view of a capture is shrunk to this at most
DECISION_TEXT = {
    "confirm": "confirm the read",
    "correct": "correct the plate",
    "unreadable": "unreadable",
    "not_a_plate": "not a plate",
    "not_a_violation": "not a violation",
    "void": "void the citation",
}


def render(name: str, status: int = 200, **values) -> HTMLResponse:
    """The page of template ``name`` (the review page's environment: autoescaped)."""
    page = templates().get_template(name)
    shown = page.render(reason_text=REASON_TEXT, decision_text=DECISION_TEXT, **values)
    return HTMLResponse(shown, status_code=status)


class Desk:
    """The desk over one tickets output: where it is and how to read its nights."""

    def __init__(self, output_url: str, token: str | None = None):
        self.output_url = output_url
        self.fs, self.root = open_url(output_url)
        self.token = token

    def nights(self) -> list[dict]:
        """Each night the tickets job ran, newest first, with its summary's counts."""
        return [self.summary(night) for night in reversed(nights_run(self.fs, self.root))]

    def summary(self, night: str) -> dict:
        path = posixpath.join(self.root, "summaries", f"{night}.json")
        if not self.fs.isfile(path):
            return {"date": night, "citations": 0, "review": 0, "voided": 0, "reviewed": 0}
        return json.loads(self.fs.cat_file(path))

    def items(self, night: str) -> dict[str, list[dict]]:
        """The night's review queue (likeliest right first, then by time) and citations."""
        found = {}
        for dataset in ("review", "citations", "voided", "dismissed"):
            path = posixpath.join(self.root, dataset, f"date={night}", PART_NAME)
            found[dataset] = read_table(self.fs, path, EVIDENCE_SCHEMA).to_pylist()
        found["review"].sort(key=lambda r: (-(r["confidence"] or 0.0), r["captured_at"]))
        return found

    def item(self, night: str, citation_id: str) -> tuple[str, dict] | None:
        """(kind, row) of the night's review item or citation ``citation_id``, or None."""
        items = self.items(night)
        for kind, dataset in (("review", "review"), ("citation", "citations")):
            for row in items[dataset]:
                if row["citation_id"] == citation_id:
                    return kind, row
        return None

    def any_item(self, night: str, citation_id: str) -> dict | None:
        """The night's item ``citation_id`` in any output (voided and dismissed too)."""
        for rows in self.items(night).values():
            for row in rows:
                if row["citation_id"] == citation_id:
                    return row
        return None


def of_a_night(desk: Desk, handler):
    """``handler(request, night)`` for a night the tickets job ran; 404 for any other."""

    async def checked(request: Request) -> Response:
        night = request.path_params["night"]
        if not NIGHT.fullmatch(night) or not has_state(desk.fs, desk.root, night):
            return PlainTextResponse(f"no tickets run for {night}", status_code=404)
        return await handler(request, night)

    return checked


def authorized(request: Request, token: str | None) -> bool:
    """Whether the request carries the desk's token (always, without one)."""
    if not token:
        return True
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    given = given or request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE, "")
    return hmac.compare_digest(given.encode(), token.encode())


def create_app(output_url: str, token: str | None = None) -> Starlette:
    """The desk's web app over the tickets output at ``output_url``; ``token`` (default:
    ``ANPR_REVIEW_TOKEN``) is required of every request when set."""
    desk = Desk(output_url, token if token is not None else os.environ.get(TOKEN_ENV) or None)

    async def guard(request: Request, call_next):
        if not authorized(request, desk.token):
            return PlainTextResponse("a token is required (ANPR_REVIEW_TOKEN)", status_code=401)
        response = await call_next(request)
        if desk.token and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, desk.token, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def session(request: Request) -> tuple[str | None, str]:
        """(reviewer name or None, CSRF token: the cookie's, else a new one for this page)."""
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        return request.cookies.get(REVIEWER_COOKIE), csrf

    def with_csrf(response: Response, request: Request, csrf: str) -> Response:
        if request.cookies.get(CSRF_COOKIE) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, samesite="strict", httponly=True)
        return response

    async def nights(request: Request) -> Response:
        reviewer, csrf = session(request)
        page = render("desk_nights.html", nights=desk.nights(), reviewer=reviewer, csrf=csrf)
        return with_csrf(page, request, csrf)

    async def night(request: Request, date: str) -> Response:
        reviewer, csrf = session(request)
        items = desk.items(date)
        decided = latest_by_item(load_reviews(desk.fs, desk.root, date))
        page = render(
            "desk_night.html",
            night=date,
            summary=desk.summary(date),
            items=items,
            decided=decided,
            reviewer=reviewer,
            csrf=csrf,
            message=request.query_params.get("message", ""),
            override=request.query_params.get("override", ""),
            on_review=ON_REVIEW,
            on_citation=ON_CITATION,
            confidence_text=row_confidence,
        )
        return with_csrf(page, request, csrf)

    async def set_reviewer(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, form):
            return PlainTextResponse("stale form: reload the page", status_code=403)
        name = str(form.get("reviewer", "")).strip()[:100]
        back = str(form.get("next", "/"))
        back = back if back.startswith("/") and not back.startswith("//") else "/"
        response = RedirectResponse(back, status_code=303)
        if name:
            response.set_cookie(REVIEWER_COOKIE, name, samesite="strict", httponly=True)
        return response

    async def decide(request: Request, date: str) -> Response:
        form = await request.form()
        if not csrf_ok(request, form):
            return PlainTextResponse("stale form: reload the page", status_code=403)
        reviewer, _ = session(request)
        citation_id = str(form.get("citation_id", ""))
        found = desk.item(date, citation_id)
        earlier = latest_by_item(load_reviews(desk.fs, desk.root, date)).get(citation_id)
        if found is None and earlier is None:
            return PlainTextResponse(f"no item {citation_id} on {date}", status_code=404)
        if earlier is not None and form.get("override") != "1":
            when = earlier.decided_at.strftime("%Y-%m-%d %H:%M UTC")
            message = f"already decided by {earlier.reviewer} ({earlier.decision}, {when})"
            return back_to(date, citation_id, f"{message}; decide again to override", citation_id)
        if found is None:  # decided before, so no longer a review item or a citation
            row = desk.any_item(date, citation_id)
            kind = "citation" if earlier.decision in ("confirm", "correct") else "review"
        else:
            kind, row = found
        try:
            review = make_review(
                kind, citation_id, row["event_id"], str(form.get("decision", "")), row["plate"],
                reviewer or "", plate=str(form.get("plate", "")) or None,
                reason=str(form.get("reason", "")) or None,
            )  # fmt: skip
        except ReviewError as exc:
            return back_to(date, citation_id, str(exc))
        record_review(desk.fs, desk.root, date, review)
        publish_night(desk.fs, desk.root, date)
        return RedirectResponse(f"/night/{date}#next", status_code=303)

    async def crop(request: Request, date: str) -> Response:
        row = desk.any_item(date, request.path_params["citation_id"])
        if row is None or not row["crop_key"]:
            return PlainTextResponse("no crop", status_code=404)
        data = desk.fs.cat_file(posixpath.join(desk.root, row["crop_key"]))
        return Response(data, media_type="image/png")

    async def capture(request: Request, date: str) -> Response:
        row = desk.any_item(date, request.path_params["citation_id"])
        if row is None:
            return PlainTextResponse("no such item", status_code=404)
        try:
            image = load_image(fetch_one(row["image_key"]))
        except ImageError as exc:
            return PlainTextResponse(f"cannot show the capture: {exc}", status_code=404)
        height, width = image.shape[:2]
        if width > CAPTURE_WIDTH:
            size = (CAPTURE_WIDTH, max(1, round(height * CAPTURE_WIDTH / width)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
        return Response(jpeg.tobytes(), media_type="image/jpeg")

    routes = [
        Route("/", nights),
        Route("/reviewer", set_reviewer, methods=["POST"]),
        Route("/night/{night}", of_a_night(desk, night)),
        Route("/night/{night}/decide", of_a_night(desk, decide), methods=["POST"]),
        Route("/night/{night}/crop/{citation_id}", of_a_night(desk, crop)),
        Route("/night/{night}/capture/{citation_id}", of_a_night(desk, capture)),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


def back_to(night: str, citation_id: str, message: str, override: str = "") -> Response:
    """A redirect to the night's page at an item, with a message (and, after a conflict, the
    item whose next decision overrides the earlier one)."""
    query = urlencode({"message": message, "override": override})
    return RedirectResponse(f"/night/{night}?{query}#c-{citation_id}", status_code=303)


def csrf_ok(request: Request, form) -> bool:
    """Whether the form's CSRF token is the reviewer's cookie (double submit)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = str(form.get("csrf", ""))
    return bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())


def row_confidence(row: dict) -> str:
    """An output row's confidence against the threshold it needed."""
    return confidence_against(row["confidence"], row["min_confidence"] or 0.8)
