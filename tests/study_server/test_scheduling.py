"""Schedules as pure functions: balance, no repetition, sides, Latin squares, reproducibility."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import pytest

from study_server.config_schema import ExperimentConfig
from study_server.services.scheduling import ItemRef, build_schedule, latin_square, participant_seed


def _items(n_per: int = 20, conds: tuple[str, ...] = ("a", "b", "c"), n_practice: int = 5, n_catch: int = 6) -> list[ItemRef]:
    items, i = [], 0
    for c in conds:
        for j in range(n_per):
            items.append(ItemRef(i, f"{c}/{j}", "main", c, j % 2)); i += 1
    for j in range(n_practice):
        items.append(ItemRef(i, f"p/{j}", "practice", "a", 0)); i += 1
    for j in range(n_catch):
        items.append(ItemRef(i, f"k/{j}", "catch", "a", 1)); i += 1
    return items


def _cfg(**kw) -> ExperimentConfig:  # type: ignore[no-untyped-def]
    base = dict(slug="s", title="t", stimuli=".", conditions=["a", "b", "c"], trials_per_participant=12,
                practice={"trials": 3}, catch={"trials": 2}, seed=11)
    base.update(kw)
    return ExperimentConfig.model_validate(base)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_latin_square_is_balanced(k: int) -> None:
    rows = latin_square(k)
    assert all(sorted(r) == list(range(k)) for r in rows)
    # each block appears in each position equally often
    for pos in range(k):
        assert len(set(Counter(r[pos] for r in rows).values())) == 1
    # Williams property: each ordered pair of neighbours equally often
    pairs = Counter((r[i], r[i + 1]) for r in rows for i in range(k - 1))
    assert set(pairs) == set(permutations(range(k), 2))
    assert len(set(pairs.values())) == 1


def test_within_schedule_structure() -> None:
    cfg, items = _cfg(), _items()
    by_id = {it.id: it for it in items}
    sched = build_schedule(cfg, items, ordinal=1, seed=participant_seed(cfg.seed, 1))
    kinds = [t.kind for t in sched]
    assert kinds[:3] == ["practice"] * 3 and kinds.count("main") == 12 and kinds.count("catch") == 2
    assert kinds[3] == "main"  # catch trials come after the first main trial
    assert [t.position for t in sched] == list(range(1, len(sched) + 1))
    main = [by_id[t.item_id] for t in sched if t.kind == "main"]
    assert Counter(it.condition for it in main) == {"a": 4, "b": 4, "c": 4}
    assert len({t.item_id for t in sched}) == len(sched)  # no repetition
    # correct answer on the left for half the trials of each condition
    for cond in "abc":
        sides = [0 if t.left_option == by_id[t.item_id].correct else 1
                 for t in sched if t.kind == "main" and by_id[t.item_id].condition == cond]
        assert sorted(sides) == [0, 0, 1, 1]


def test_reproducible_from_seed_and_differs_between_participants() -> None:
    cfg, items = _cfg(), _items()
    a1 = build_schedule(cfg, items, 1, participant_seed(cfg.seed, 1))
    a2 = build_schedule(cfg, items, 1, participant_seed(cfg.seed, 1))
    b = build_schedule(cfg, items, 2, participant_seed(cfg.seed, 2))
    assert a1 == a2 and a1 != b


def test_item_exposure_balanced_across_participants() -> None:
    cfg, items = _cfg(practice={"trials": 0}, catch={"trials": 0}), _items(n_per=20)
    counts: Counter[int] = Counter()
    for p in range(1, 16):  # 15 participants x 4 items per condition = 60 = 3 passes over 20 items
        counts.update(t.item_id for t in build_schedule(cfg, items, p, participant_seed(cfg.seed, p)))
    assert set(counts.values()) == {3}


def test_blocks_by_condition_follow_latin_square() -> None:
    cfg = _cfg(blocks={"n": 3, "by": "condition"}, catch={"trials": 0}, practice={"trials": 0})
    items = _items()
    by_id = {it.id: it for it in items}
    rows = latin_square(3)
    for p in range(1, 7):
        sched = build_schedule(cfg, items, p, participant_seed(cfg.seed, p))
        order = []
        for t in sched:
            cond = by_id[t.item_id].condition
            if not order or order[-1] != cond:
                order.append(cond)
        assert order == ["abc"[i] for i in rows[(p - 1) % len(rows)]]
        assert [t.block for t in sched] == [1] * 4 + [2] * 4 + [3] * 4


def test_mixed_blocks_balanced_by_condition() -> None:
    cfg = _cfg(blocks={"n": 2, "by": "mixed"}, trials_per_participant=24, catch={"trials": 0})
    items = _items()
    by_id = {it.id: it for it in items}
    sched = build_schedule(cfg, items, 1, participant_seed(cfg.seed, 1))
    for block in (1, 2):
        conds = Counter(by_id[t.item_id].condition for t in sched if t.block == block and t.kind == "main")
        assert conds == {"a": 4, "b": 4, "c": 4}


def test_between_design_shows_one_condition() -> None:
    cfg = _cfg(design="between", trials_per_participant=10)
    items = _items()
    by_id = {it.id: it for it in items}
    sched = build_schedule(cfg, items, 1, 5, between_condition="b")
    assert {by_id[t.item_id].condition for t in sched if t.kind == "main"} == {"b"}
