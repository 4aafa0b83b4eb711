"""The whole participant flow in real headless Chromium, from a Prolific-style link to the
completion redirect (consent, instructions with a worked example, practice with feedback,
keyboard trials with confidence ratings, a break between blocks, debrief and code), plus the
MTurk form POST and small-screen blocking. A screenshot of each page goes to
``test-artifacts/browser/<test name>/``."""

from __future__ import annotations

import datetime as dt

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from study_server import create_app
from study_server.db import get_session
from study_server.models import Event, Participant
from tests.conftest import LiveServer
from tests.study_server.conftest import write_experiment

STATE_JS = """() => {
  const vis = id => !document.getElementById(id).hidden;
  for (const id of ["done", "practice-done", "break", "smallscreen"]) { if (vis(id)) return id; }
  if (vis("trial")) {
    if (!document.getElementById("confidence").hidden) return "confidence";
    if (!document.getElementById("opt0").disabled)
      return "trial:" + document.querySelector(".progress").getAttribute("aria-valuenow");
  }
  return null;
}"""


def _register(url: str, path: Path) -> None:
    from study_server.services.experiments import register_experiment

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x", "REQUEST_LOG": False})
    with app.app_context():
        register_experiment(get_session(), path)
    app.extensions["db_engine"].dispose()


def _db(url: str):  # type: ignore[no-untyped-def]
    return create_app({"DATABASE_URL": url, "SECRET_KEY": "x", "REQUEST_LOG": False})


def _state(page, previous: str | None) -> str:  # type: ignore[no-untyped-def]
    """Wait for the page to settle in a state other than ``previous`` and return it."""
    handle = page.wait_for_function(f"(prev) => {{ const s = ({STATE_JS})(); return s && s !== prev ? s : null; }}",
                                    arg=previous, timeout=15000)
    return handle.json_value()


def _check_accessible(page) -> None:  # type: ignore[no-untyped-def]
    """Labels on what is visible: images have alt text, buttons have names, the page has a language."""
    assert page.get_attribute("html", "lang") == "en"
    missing = page.evaluate("""() => [...document.querySelectorAll('img')].filter(i => i.offsetParent && !i.alt).length""")
    assert missing == 0
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button')].filter(b => b.offsetParent &&
        !(b.getAttribute('aria-label') || b.textContent.trim())).length""")
    assert unnamed == 0


@pytest.mark.slow
@pytest.mark.browser
def test_prolific_link_to_completion_redirect(page, artifacts: Path, sqlite_url: str, tiny_set: Path,  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:
    path = write_experiment(
        tmp_path, tiny_set, slug="full", trials_per_participant=4, blocks={"n": 2, "by": "mixed", "breaks": True},
        practice={"trials": 2, "feedback": True, "worked_examples": 1}, catch={"trials": 1}, confidence_rating=True,
        text={"instructions": "Pick the **bigger** shape.", "debrief": "This study measured size judgements."},
        recruitment={"platform": "prolific", "completion_url": None, "completion_code": "BROWSER1"})
    _register(sqlite_url, path)
    server = LiveServer(sqlite_url, tmp_path / "instance")
    landed: list[str] = []
    page.route("https://app.prolific.com/**", lambda route: (landed.append(route.request.url), route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>Prolific</title><h1>Submission complete</h1>")))
    shots = iter(range(1, 100))
    api_calls: list[str] = []
    page.on("request", lambda req: api_calls.append(f"{req.method} {req.url.split('/api/v1', 1)[1]}")
            if "/api/v1/" in req.url else None)

    def shot(name: str) -> None:
        page.screenshot(path=str(artifacts / f"{next(shots):02d}-{name}.png"), full_page=True)

    try:
        page.goto(f"{server.url}/study/full?PROLIFIC_PID=pw1&STUDY_ID=st1&SESSION_ID=se1")
        shot("consent")
        _check_accessible(page)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "agree"  # focus order: agree first
        page.keyboard.press("Enter")
        expect(page.locator("#instructions")).to_be_visible()
        expect(page.locator(".example .option.answer")).to_have_count(1)  # a worked example with its answer
        shot("instructions")
        _check_accessible(page)
        page.click("#begin")
        state, seen, ratings = None, [], 0
        while True:
            state = _state(page, state)
            seen.append(state)
            if state == "done":
                break
            if state.startswith("trial:"):
                if state in ("trial:0", "trial:3"):
                    shot("practice-trial" if state == "trial:0" else "main-trial")
                    _check_accessible(page)
                page.keyboard.press("f" if len(seen) % 2 else "j")
            elif state == "confidence":
                if ratings == 0:
                    shot("confidence")
                ratings += 1
                page.keyboard.press("5")
                if ratings <= 2:  # practice: feedback shows before the next trial
                    expect(page.locator("#feedback")).to_have_text(re.compile("Correct!|Not quite"))
                    if ratings == 1:
                        shot("practice-feedback")
            elif state == "practice-done":
                shot("practice-done")
                page.click("#practice-continue")
            elif state == "break":
                shot("break")
                page.click("#continue")
        assert ratings == 7  # 2 practice + 4 main + 1 catch
        assert seen.count("practice-done") == 1 and seen.count("break") == 1
        # one GET for the first trial; every later trial (also after the practice-done and break
        # screens) came with the reply to the answer before it
        answers = [c for c in api_calls if c.startswith("POST /trials/")]
        assert api_calls.count("GET /trial") == 1 and len(answers) == 7
        assert all(c.endswith("/response?next=1") for c in answers)
        expect(page.locator("#completion-code")).to_have_text("BROWSER1")
        expect(page.locator("#done")).to_contain_text("This study measured size judgements.")
        with _db(sqlite_url).app_context():  # the way back appears only after the last write committed
            p = get_session().scalars(select(Participant)).one()
            assert p.status == "finished" and all(t.response is not None for t in p.trials)
            assert [t.response.confidence for t in p.trials] == [5] * 7
            # the page's own clock rides along with every answer (ms since the epoch)
            assert all(t.response.client_time is not None and
                       abs(t.response.client_time / 1000 - t.response.answered_at.replace(
                           tzinfo=dt.timezone.utc).timestamp()) < 600 for t in p.trials)
            assert p.params == {"PROLIFIC_PID": "pw1", "STUDY_ID": "st1", "SESSION_ID": "se1"}
            assert p.external_id == "pw1"
        shot("done")
        _check_accessible(page)
        page.click("#completion-link")
        page.wait_for_url("https://app.prolific.com/**")
        shot("completion-redirect")
        assert landed == ["https://app.prolific.com/submissions/complete?cc=BROWSER1"]
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.browser
def test_mturk_completion_posts_the_assignment(page, artifacts: Path, sqlite_url: str, tiny_set: Path,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    _register(sqlite_url, write_experiment(tmp_path, tiny_set, slug="hit", trials_per_participant=2,
                                           recruitment={"platform": "mturk", "completion_url": None}))
    server = LiveServer(sqlite_url, tmp_path / "instance")
    posted: list[tuple[str, str, str | None]] = []
    page.route("https://workersandbox.mturk.com/**", lambda route: (posted.append(
        (route.request.method, route.request.url, route.request.post_data)), route.fulfill(status=200, body="ok")))
    try:
        page.goto(f"{server.url}/study/hit?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H9")
        expect(page.locator("#agree")).to_have_count(0)  # the preview shows no way in
        page.screenshot(path=str(artifacts / "01-preview.png"))
        page.goto(f"{server.url}/study/hit?assignmentId=A9&hitId=H9&workerId=W9"
                  "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
        page.click("#agree")
        page.click("#begin")
        state = None
        while (state := _state(page, state)) != "done":
            page.keyboard.press("f")
        page.screenshot(path=str(artifacts / "02-done.png"))
        page.click("#mturk-submit")
        page.wait_for_url("https://workersandbox.mturk.com/**")
    finally:
        server.stop()
    assert posted[0][0] == "POST" and posted[0][1] == "https://workersandbox.mturk.com/mturk/externalSubmit"
    assert "assignmentId=A9" in (posted[0][2] or "")


@pytest.mark.browser
def test_small_screen_is_blocked(browser, artifacts: Path, sqlite_url: str, tiny_set: Path,  # type: ignore[no-untyped-def]
                                 tmp_path: Path) -> None:
    _register(sqlite_url, write_experiment(tmp_path, tiny_set, slug="wide", min_screen_width=900))
    server = LiveServer(sqlite_url, tmp_path / "instance")
    context = browser.new_context(viewport={"width": 600, "height": 800})
    try:
        pg = context.new_page()
        pg.goto(f"{server.url}/study/wide")
        pg.click("#agree")
        expect(pg.locator("#smallscreen")).to_be_visible()
        expect(pg.locator("#instructions")).to_be_hidden()
        pg.screenshot(path=str(artifacts / "01-too-small.png"))
    finally:
        context.close()
        server.stop()
    with _db(sqlite_url).app_context():
        s = get_session()
        assert s.scalars(select(Event.type).where(Event.type == "small_screen")).all() == ["small_screen"]
