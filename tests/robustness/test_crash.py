"""SIGKILL of the whole server under load: every acknowledged response is stored exactly once
and every participant resumes at the right trial (real gunicorn, real SQLite file, real
PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import crash_run


@pytest.mark.slow
def test_sigkill_under_load_loses_nothing(database_url: str, tmp_path: Path) -> None:
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    result = crash_run(kind, database_url, tmp_path, participants=24, trials=10, kill_share=0.4, workers=4)
    assert result.acked_before_kill >= 96, "the kill must come after real load"
    assert result.acked_before_kill < 24 * 10, "the kill must come before everyone finished"
    assert result.errors == []
    assert result.resumed == 24 and result.wrong_resume == 0 and result.replay_errors == 0
    assert result.finished == 24
    assert result.acked_total == result.rows == 24 * 10
    assert result.lost == 0 and result.duplicated == 0 and result.unacked_rows == 0
    assert result.wrong_position == 0
