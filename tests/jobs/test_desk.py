"""The review desk (`anpr review serve`): a real uvicorn server on a free loopback port over a
tickets output the tests make, driven over HTTP and, for the keyboard, by headless chromium.

Checked on the outputs themselves: the decisions log, citations, review and voided rows."""

from __future__ import annotations

import http.cookiejar
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import fsspec
import pytest
from test_tickets import DAY, NOON, by_event, event, output, read_row, run

from anpr_jobs.tickets.reviews import load_reviews

NIGHT = DAY.isoformat()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The desk's app served by uvicorn in a thread of this process."""

    def __init__(self, output, token=None):
        import uvicorn

        from anpr_jobs.tickets.desk import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(str(output), token), host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the desk did not start"
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Reviewer:
    """A browser-like client: cookies kept, redirects followed."""

    def __init__(self, server: Server, name: str | None = None):
        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.get("/")
        if name:
            self.post("/reviewer", reviewer=name, next="/")

    @property
    def csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "anpr_csrf")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.server.url + path) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, csrf: str | None = None, **form) -> tuple[int, str]:
        data = urllib.parse.urlencode({"csrf": self.csrf if csrf is None else csrf, **form})
        try:
            with self.opener.open(self.server.url + path, data=data.encode()) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def decide(self, row: dict, decision: str, **form) -> tuple[int, str]:
        path = f"/night/{NIGHT}/decide"
        return self.post(path, citation_id=row["citation_id"], decision=decision, **form)


@pytest.fixture
def night(tmp_path):
    """A tickets output: e0 and e1 cited, e2 and e3 to review; e3's camera and image key hold
    markup, as hostile data may."""
    keys = [str(tmp_path / f"img{i}.jpg") for i in range(3)]
    keys.append(str(tmp_path / 'x" onerror="alert(1).jpg'))
    events = [event(f"e{i}", k, 80, at=NOON + timedelta(hours=i)) for i, k in enumerate(keys)]
    events[3]["camera_id"] = "<script>alert(1)</script>"
    reads = [
        read_row(keys[0], "AAA1111", confidence=0.99),
        read_row(keys[1], "BBB2222", confidence=0.99),
        read_row(keys[2], "CCC3333", confidence=0.4),
        read_row(keys[3], "DDD4444", confidence=0.3),
    ]
    run(tmp_path, events, reads)
    return tmp_path / "out"


@pytest.fixture
def desk(night):
    server = Server(night)
    yield server
    server.stop()


def log_of(folder) -> list:
    return load_reviews(fsspec.filesystem("file"), str(folder), NIGHT)


def test_decisions_become_outputs_and_every_one_is_logged(desk, night):
    ana = Reviewer(desk, "ana")
    status, page = ana.get("/")
    assert status == 200 and f'href="/night/{NIGHT}"' in page
    status, page = ana.get(f"/night/{NIGHT}")
    assert status == 200 and "2</b> left to review of 2" in page
    review = by_event(output(night.parent, "review"))
    cited = by_event(output(night.parent, "citations"))
    assert ana.decide(review["e2"], "confirm")[0] == 200
    assert ana.decide(review["e3"], "correct", plate="ddd 4445")[0] == 200
    status, page = ana.decide(cited["e1"], "void", reason="plate obscured")
    assert status == 200 and "0</b> left to review of 0" in page
    cited = by_event(output(night.parent, "citations"))
    assert set(cited) == {"e0", "e2", "e3"} and cited["e3"]["plate"] == "DDD4445"
    assert cited["e2"]["source"] == "review" and cited["e2"]["reviewer"] == "ana"
    assert by_event(output(night.parent, "voided"))["e1"]["reason"] == "plate obscured"
    log = log_of(night)
    assert [(r.event_id, r.decision, r.reviewer) for r in log] == [
        ("e2", "confirm", "ana"),
        ("e3", "correct", "ana"),
        ("e1", "void", "ana"),
    ]
    assert log[1].plate_before == "DDD4444" and log[1].plate_after == "DDD4445"


def test_a_second_reviewer_is_told_and_may_override(desk, night):
    item = by_event(output(night.parent, "review"))["e2"]
    ana, ben = Reviewer(desk, "ana"), Reviewer(desk, "ben")
    ana.decide(item, "unreadable")
    status, page = ben.decide(item, "correct", plate="CCC3338")
    assert status == 200 and "already decided by ana (unreadable" in page
    assert len(log_of(night)) == 1
    ben.decide(item, "correct", plate="CCC3338", override="1")
    assert [r.reviewer for r in log_of(night)] == ["ana", "ben"]
    assert by_event(output(night.parent, "citations"))["e2"]["plate"] == "CCC3338"


def test_a_restarted_desk_shows_every_decision(night):
    first = Server(night)
    Reviewer(first, "ana").decide(by_event(output(night.parent, "review"))["e2"], "confirm")
    first.stop()
    second = Server(night)
    try:
        status, page = Reviewer(second, "ben").get(f"/night/{NIGHT}")
        assert status == 200 and "decided: confirm the read by ana" in page
        assert "1</b> left to review of 1" in page
    finally:
        second.stop()


def test_no_decision_without_a_reviewer_or_a_matching_csrf_token(desk, night):
    item = by_event(output(night.parent, "review"))["e2"]
    anonymous = Reviewer(desk)
    status, page = anonymous.decide(item, "confirm")
    assert status == 200 and "needs the reviewer" in page
    ana = Reviewer(desk, "ana")
    assert ana.post(f"/night/{NIGHT}/decide", csrf="forged", citation_id="x")[0] == 403
    assert log_of(night) == []


def test_values_from_data_show_as_text(desk, night):
    status, page = Reviewer(desk, "ana").get(f"/night/{NIGHT}")
    assert status == 200 and "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'onerror="alert' not in page and not re.search(r"<[^>]+ onerror=", page)


def test_images_are_only_those_of_the_night(desk, night):
    ana = Reviewer(desk, "ana")
    row = by_event(output(night.parent, "review"))["e2"]
    assert ana.get(f"/night/{NIGHT}/crop/nope")[0] == 404
    assert ana.get("/night/2026-01-01")[0] == 404
    assert ana.get("/night/..%2F..%2Fetc")[0] == 404
    assert ana.get(f"/night/{NIGHT}/capture/{row['citation_id']}")[0] == 404  # no such file


def test_with_a_token_every_request_needs_it(night):
    server = Server(night, token="s3cret")
    try:
        opener = urllib.request.build_opener()
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(server.url + "/")
        assert refused.value.code == 401
        jar = http.cookiejar.CookieJar()
        kept = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with kept.open(server.url + "/?token=s3cret") as response:
            assert response.status == 200
        with kept.open(server.url + f"/night/{NIGHT}") as response:  # the cookie carries it
            assert response.status == 200
        request = urllib.request.Request(server.url + "/", headers={"Authorization": "Bearer no"})
        with pytest.raises(urllib.error.HTTPError):
            opener.open(request)
    finally:
        server.stop()


def test_the_keyboard_decides_a_night_in_a_browser(desk, night, browser):
    """Confirm and correct with the keyboard, void a citation, reload: every decision shows
    and the outputs hold them, at phone and desktop width."""
    import cv2
    import numpy as np
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def shown(text: str) -> None:
        deadline = time.monotonic() + 15
        while text not in browser.page_source and time.monotonic() < deadline:
            time.sleep(0.1)
        assert text in browser.page_source

    def typed(*keys) -> None:  # to the focused element, as typed: no click anywhere
        ActionChains(browser).send_keys(*keys).perform()

    browser.set_window_size(390, 844)  # a phone
    browser.get(desk.url + "/")
    browser.find_element(By.NAME, "reviewer").send_keys("ana" + Keys.ENTER)
    browser.get(f"{desk.url}/night/{NIGHT}")
    shown("2</b> left to review of 2")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    typed(Keys.ENTER)  # confirms the likeliest right read: e2
    shown("1</b> left to review of 1")
    typed("c")  # into the next item's plate field
    typed("DDD4449", Keys.ENTER)
    shown("0</b> left to review of 0")
    voided = by_event(output(night.parent, "citations"))["e1"]["citation_id"]
    field = browser.find_element(By.CSS_SELECTOR, f'#c-{voided} input[name="reason"]')
    field.send_keys("wrong vehicle in frame" + Keys.ENTER)
    shown("1 voided")
    browser.refresh()
    shown("decided: void the citation by ana")
    assert browser.page_source.count("decided: ") == 3

    assert [(r.event_id, r.decision) for r in log_of(night)] == [
        ("e2", "confirm"),
        ("e3", "correct"),
        ("e1", "void"),
    ]
    cited = by_event(output(night.parent, "citations"))
    assert set(cited) == {"e0", "e2", "e3"} and cited["e3"]["plate"] == "DDD4449"
    assert by_event(output(night.parent, "voided"))["e1"]["reason"] == "wrong vehicle in frame"
    for size in ((390, 844), (1280, 900)):
        browser.set_window_size(*size)
        png = browser.get_screenshot_as_png()
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.std() > 10  # drawn, not blank
        visible = browser.execute_script(
            "return [...document.querySelectorAll('article.item')]"
            ".filter(a => a.getBoundingClientRect().width > 0).length"
        )
        assert visible == 4  # the three citations and the voided one; nothing left to review


def test_beyond_loopback_the_desk_needs_a_token(night, anpr, monkeypatch):
    monkeypatch.delenv("ANPR_REVIEW_TOKEN", raising=False)
    status, out, err = anpr("review", "serve", night, "--host", "0.0.0.0")
    assert status == 2 and out == ""
    assert err.startswith("anpr: error: --host 0.0.0.0 opens the desk")
    assert "set ANPR_REVIEW_TOKEN" in err
