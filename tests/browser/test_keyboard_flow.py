"""A participant completes a 6-trial experiment with the keyboard in real Chromium."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer, run_cli


@pytest.mark.slow
@pytest.mark.browser
def test_keyboard_run_reaches_export(page, artifacts: Path, sqlite_url: str, experiment_file: Path,  # type: ignore[no-untyped-def]
                                     tmp_path: Path) -> None:
    assert run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url).returncode == 0
    server = LiveServer(sqlite_url, tmp_path / "instance")
    try:
        page.goto(f"{server.url}/study/tiny?PROLIFIC_PID=browser1&STUDY_ID=s1&SESSION_ID=x1")
        page.screenshot(path=str(artifacts / "1-consent.png"))
        page.click("#agree")
        page.wait_for_selector("#instructions:not([hidden])")
        page.screenshot(path=str(artifacts / "2-instructions.png"))
        page.click("#begin")
        seen = []
        for i in range(6):
            page.wait_for_selector("#trial:not([hidden])")
            # wait until trial i+1 is drawn and its images are decoded
            expect(page.locator(".progress")).to_have_attribute("aria-valuenow", str(i))
            expect(page.locator("#opt0")).to_be_enabled()
            seen.append(page.inner_text("#prompt"))
            if i == 0:
                page.screenshot(path=str(artifacts / "3-trial.png"))
            if i == 2:  # a reload in the middle resumes at the current trial
                page.reload()
                expect(page.locator("#opt0")).to_be_enabled()
                assert page.get_attribute(".progress", "aria-valuenow") == "2"
            page.keyboard.press("f" if i % 2 == 0 else "j")
        page.wait_for_selector("#done:not([hidden])")
        page.screenshot(path=str(artifacts / "4-done.png"))
        assert "cc=TINY123" in page.get_attribute("#completion-link", "href")
        assert seen == ["Which shape is bigger?"] * 6
    finally:
        server.stop()
    out = tmp_path / "export.csv"
    assert run_cli("export", "tiny", "--out", str(out), "--database-url", sqlite_url).returncode == 0
    df = pd.read_csv(out)
    assert len(df) == 6 and df["chosen_side"].notna().sum() == 6
    assert list(df.sort_values("position")["chosen_side"]) == [0, 1, 0, 1, 0, 1]
    assert (df["rt_ms"] > 0).all()
    assert df["external_id"].unique().tolist() == ["browser1"]


@pytest.mark.browser
def test_time_limit_reminds_and_the_answer_still_counts(page, sqlite_url: str, tiny_set: Path,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    """``timing.max_trial_seconds``: once a trial's time is up the page asks for an answer;
    the late answer is stored with its RT (the analysis drops it by the plan's ``max_rt_ms``)."""
    from stimuli_builder.tiny import write_tiny_experiment

    path = write_tiny_experiment(tmp_path / "exp", tiny_set, slug="limit", trials=2,
                                 extra="timing: {max_trial_seconds: 1.5}\n")
    assert run_cli("experiment", "create", str(path), "--database-url", sqlite_url).returncode == 0
    server = LiveServer(sqlite_url, tmp_path / "instance")
    try:
        page.goto(f"{server.url}/study/limit?PROLIFIC_PID=slow1")
        page.click("#agree")
        page.wait_for_selector("#instructions:not([hidden])")
        page.click("#begin")
        expect(page.locator("#opt0")).to_be_enabled()
        expect(page.locator("#feedback")).to_have_text("Time is up for this question: please answer now.")
        page.keyboard.press("f")
        expect(page.locator(".progress")).to_have_attribute("aria-valuenow", "1")
        expect(page.locator("#opt0")).to_be_enabled()
        assert page.inner_text("#feedback") == ""  # the next trial starts without the reminder
        page.keyboard.press("j")
        page.wait_for_selector("#done:not([hidden])")
    finally:
        server.stop()
    out = tmp_path / "export.csv"
    assert run_cli("export", "limit", "--out", str(out), "--database-url", sqlite_url).returncode == 0
    df = pd.read_csv(out).sort_values("position")
    assert df["chosen_side"].tolist() == [0, 1]
    assert df["rt_ms"].iloc[0] >= 1500  # answered after the reminder
