"""Design features against a real database (SQLite and PostgreSQL): balanced between-subject
assignment, slot release on timeout, Latin-square block orders, schedules re-derived from seeds."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select, update

from study_server.config_schema import ExperimentConfig
from study_server.db import get_session
from study_server.models import Item, Participant
from study_server.services.experiments import item_refs
from study_server.services.participants import ACTIVE
from study_server.services.scheduling import build_schedule, latin_square
from tests.study_server.conftest import register, start, write_experiment


def _active_counts(app) -> Counter[str]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = get_session().scalars(select(Participant).where(Participant.status.in_(ACTIVE))).all()
        return Counter(p.between_condition for p in rows)


def _assert_rederived(app, exp_id: int) -> int:  # type: ignore[no-untyped-def]
    """Every stored schedule equals the one built again from the participant's seed."""
    with app.app_context():
        s = get_session()
        people = s.scalars(select(Participant).where(Participant.experiment_id == exp_id,
                                                     Participant.status != "declined")).all()
        exp = people[0].experiment
        cfg, refs = ExperimentConfig.model_validate(exp.config), item_refs(s, exp_id)
        for p in people:
            stored = [(t.position, t.block, t.kind, t.item_id, t.left_option) for t in p.trials]
            again = [(t.position, t.block, t.kind, t.item_id, t.left_option)
                     for t in build_schedule(cfg, refs, p.ordinal, p.seed, p.between_condition)]
            assert stored == again, f"participant {p.ordinal}"
        return len(people)


def test_between_balance_over_200_starts(app, three_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_experiment(tmp_path, three_set, slug="bal", design="between", trials_per_participant=4,
                            conditions=["reference", "none", "third"], catch={"trials": 1}, practice={"trials": 1})
    exp = register(app, path)
    seen = []
    for i in range(1, 201):
        start(app, "bal")
        counts = _active_counts(app)
        seen.append(max(counts.values()) - min(counts.get(c, 0) for c in ("reference", "none", "third")))
    assert max(seen) <= 1  # within one after every single start, not only at the end
    assert sorted(_active_counts(app).values()) == [66, 67, 67]
    assert _assert_rederived(app, exp.id) == 200


def test_timed_out_participant_releases_the_slot(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_experiment(tmp_path, tiny_set, slug="full", design="between", trials_per_participant=4,
                            participants_per_condition=2, timing={"session_timeout_minutes": 30})
    register(app, path)
    tokens = [client.post("/api/v1/experiments/full/participants", json={}).get_json()["token"] for _ in range(4)]
    assert _active_counts(app) == {"reference": 2, "none": 2}
    full = client.post("/api/v1/experiments/full/participants", json={})
    assert full.status_code == 409 and full.get_json()["error"]["code"] == "study_full"
    with app.app_context():  # the first participant walked away 31 minutes ago
        s = get_session()
        first = s.scalars(select(Participant).order_by(Participant.ordinal)).first()
        freed = first.between_condition
        s.execute(update(Participant).where(Participant.id == first.id)
                  .values(last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=31)))
        s.commit()
    again = client.post("/api/v1/experiments/full/participants", json={})
    assert again.status_code == 201
    with app.app_context():
        s = get_session()
        people = s.scalars(select(Participant).order_by(Participant.ordinal)).all()
        assert people[0].status == "timed_out" and people[-1].between_condition == freed
    assert _active_counts(app) == {"reference": 2, "none": 2}
    late = client.get("/api/v1/trial", headers={"Authorization": f"Bearer {tokens[0]}"})
    assert late.status_code == 401 and late.get_json()["error"]["code"] == "participation_ended"


def test_idle_participant_times_out_on_next_request(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="idle", timing={"session_timeout_minutes": 5}))
    token = client.post("/api/v1/experiments/idle/participants", json={}).get_json()["token"]
    with app.app_context():
        s = get_session()
        s.execute(update(Participant).values(last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=6)))
        s.commit()
    resp = client.get("/api/v1/trial", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    with app.app_context():
        assert get_session().scalars(select(Participant)).one().status == "timed_out"


def test_latin_square_block_orders_in_stored_schedules(app, three_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_experiment(tmp_path, three_set, slug="latin", conditions=["reference", "none", "third"],
                            trials_per_participant=6, blocks={"n": 3, "by": "condition", "order": "latin_square"})
    exp = register(app, path)
    start(app, "latin", 12)
    rows = latin_square(3)
    conds = ["reference", "none", "third"]
    position_counts: Counter[tuple[int, str]] = Counter()
    with app.app_context():
        s = get_session()
        cond_of = dict(s.execute(select(Item.id, Item.condition)).all())
        for p in s.scalars(select(Participant).order_by(Participant.ordinal)):
            order = []
            for t in p.trials:
                if not order or order[-1] != cond_of[t.item_id]:
                    order.append(cond_of[t.item_id])
            assert order == [conds[i] for i in rows[(p.ordinal - 1) % len(rows)]]
            assert [t.block for t in p.trials] == [1, 1, 2, 2, 3, 3]
            position_counts.update((i, c) for i, c in enumerate(order))
    assert set(position_counts.values()) == {4}  # each condition in each block position 4 times of 12
    assert _assert_rederived(app, exp.id) == 12


def test_item_by_condition_balance_across_participants(app, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    exp = register(app, write_experiment(tmp_path, tiny_set, slug="items", trials_per_participant=8))
    start(app, "items", 6)  # 6 people x 4 items per condition = 24 = 2 passes over 12 items
    with app.app_context():
        s = get_session()
        shown = Counter(t.item_id for p in s.scalars(select(Participant)) for t in p.trials)
        main_items = s.scalars(select(Item.id).where(Item.experiment_id == exp.id, Item.kind == "main")).all()
    assert {shown[i] for i in main_items} == {2}
