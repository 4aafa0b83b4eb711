"""50 participants at once against 4 gunicorn workers: balanced conditions, no response lost or
stored twice, one participant per external id. Runs on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from interp_study.httpclient import ApiParticipant, ManifestOracle, TrialView
from study_server import create_app
from study_server.db import get_session
from study_server.models import Participant, Response, Trial
from tests.conftest import LiveServer
from tests.study_server.conftest import write_experiment

N = 50


def _register(database_url: str, path: Path) -> None:
    from study_server.services.experiments import register_experiment

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "x", "REQUEST_LOG": False})
    with app.app_context():
        register_experiment(get_session(), path)
    app.extensions["db_engine"].dispose()


@pytest.mark.slow
def test_fifty_at_once_on_four_workers(database_url: str, three_set: Path, tmp_path: Path) -> None:
    path = write_experiment(tmp_path, three_set, slug="crowd", design="between", trials_per_participant=4,
                            conditions=["reference", "none", "third"], practice={"trials": 1}, catch={"trials": 1})
    _register(database_url, path)
    server = LiveServer(database_url, tmp_path / "instance", workers=4)
    oracle = ManifestOracle(three_set)
    barrier = threading.Barrier(N)
    bots = [ApiParticipant(server.url, "crowd", timeout=60) for _ in range(N)]
    duplicate_replies: list[list[dict]] = [[] for _ in range(N)]

    def one(i: int) -> dict:
        bot = bots[i]
        barrier.wait()  # all 50 start at the same instant
        bot.start(params={"PROLIFIC_PID": f"crowd{i}", "STUDY_ID": "s"})
        first = True

        def policy(view: TrialView) -> tuple[int, float]:
            nonlocal first
            if first:  # the first answer is also sent twice more, concurrently with the real one
                first = False
                race = threading.Barrier(3)

                def dup() -> None:
                    race.wait()
                    r = bot.answer(view.id, view.correct_side or 0, 999.0)
                    duplicate_replies[i].append({"status": r.status_code, **r.json()})
                threads = [threading.Thread(target=dup) for _ in range(2)]
                for t in threads:
                    t.start()
                race.wait()
                policy.joins = threads  # type: ignore[attr-defined]
            return (view.correct_side if i % 2 else 1 - (view.correct_side or 0)), 300.0 + i

        end = bot.run(policy, oracle)
        for t in getattr(policy, "joins", []):
            t.join()
        return end

    try:
        with ThreadPoolExecutor(N) as pool:
            ends = list(pool.map(one, range(N)))
        # ten tabs of one person opening the same link at once: one participant, never two
        same = threading.Barrier(10)

        def same_id(_: int) -> requests.Response:
            same.wait()
            return requests.post(f"{server.url}/api/v1/experiments/crowd/participants",
                                 json={"params": {"PROLIFIC_PID": "twin"}}, timeout=60)
        with ThreadPoolExecutor(10) as pool:
            twins = list(pool.map(same_id, range(10)))
    finally:
        server.stop()

    # structured request logs: one JSON line per request, none of them a 5xx
    import json

    lines = [json.loads(line) for line in Path(server.log.name).read_text().splitlines() if line.startswith('{"')]
    # per bot: a start, one GET /trial, 6 answers (each reply carries the next trial), 2 duplicates
    assert len(lines) >= N * 10 and all(line["status"] < 500 for line in lines)
    assert all(e["finished"] for e in ends)
    assert sorted(r.status_code for r in twins) == [200] * 9 + [201]
    assert len({r.json()["participant_id"] for r in twins}) == 1

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "x", "REQUEST_LOG": False})
    with app.app_context():
        s = get_session()
        people = s.scalars(select(Participant).where(Participant.external_id != "twin")).all()
        counts = Counter(p.between_condition for p in people)
        assert len(people) == N and sorted(counts.values()) == [16, 17, 17], counts
        assert {p.status for p in people} == {"finished"}
        assert s.scalar(select(func.count(Participant.id)).where(Participant.external_id == "twin")) == 1
        stored = {r.trial_id: r for r in s.scalars(select(Response))}
        n_trials = s.scalar(select(func.count(Trial.id)).join(Participant)
                            .where(Participant.external_id != "twin")) or 0
        # every trial answered exactly once (the unique constraint makes twice impossible; this checks none is lost)
        twin_trials = s.scalar(select(func.count(Trial.id)).join(Participant).where(Participant.external_id == "twin"))
        assert len(stored) == n_trials == N * 6 and twin_trials == 6
        for i, bot in enumerate(bots):
            assert [r.status for r in bot.records] == [200] * 6
            for rec in bot.records:
                row = stored[rec.trial_id]
                if rec.reply.get("duplicate"):  # a concurrent twin won the race: its answer is the one stored
                    assert row.rt_ms == 999.0
                else:
                    assert (row.chosen_side, row.rt_ms) == (rec.choice, rec.rt_ms)
            replies = duplicate_replies[i] + [bot.records[0].reply | {"status": 200}]
            assert all(r["status"] == 200 and r["stored"] for r in replies), replies
            assert sum(not r["duplicate"] for r in replies) == 1  # exactly one of three writes stored
    app.extensions["db_engine"].dispose()
