"""Trial schedules: drawn from the master seed and the participant's seed, stored at start.

Everything here is a pure function of its arguments, so a stored schedule can be
re-derived for audit (``build_schedule`` with the same inputs gives the same list).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..config_schema import ExperimentConfig

__all__ = ["ScheduledTrial", "ItemRef", "build_schedule", "participant_seed", "latin_square",
           "check_feasible", "ScheduleError", "worked_examples"]


class ScheduleError(ValueError):
    """The stimulus set cannot fill the schedule the config asks for."""


@dataclass(frozen=True)
class ItemRef:
    """What scheduling needs to know about an item."""

    id: int
    key: str
    kind: str  # main, practice, catch
    condition: str
    correct: int


@dataclass(frozen=True)
class ScheduledTrial:
    position: int
    block: int
    kind: str
    item_id: int
    left_option: int


def participant_seed(master_seed: int, ordinal: int) -> int:
    """The participant's own seed, derived from the master seed and their ordinal."""
    return int(np.random.SeedSequence([master_seed, ordinal]).generate_state(1)[0] >> 1)


def latin_square(k: int) -> list[list[int]]:
    """A Williams (balanced) Latin square: rows are orders of ``k`` blocks.

    For even ``k`` there are ``k`` rows; for odd ``k`` the mirrored rows are added (2k rows),
    so each block follows each other block equally often.
    """
    if k < 1:
        raise ValueError("k must be positive")
    base, lo, hi = [0], 1, k - 1
    for j in range(1, k):
        if j % 2:
            base.append(lo)
            lo += 1
        else:
            base.append(hi)
            hi -= 1
    rows = [[(b + r) % k for b in base] for r in range(k)]
    if k % 2 == 1 and k > 1:
        rows += [row[::-1] for row in rows]
    return rows


def _stable_perm(master_seed: int, label: str, n: int) -> np.ndarray:
    """A permutation shared by all participants of an experiment (for item rotation)."""
    return np.random.default_rng([master_seed, zlib.crc32(label.encode())]).permutation(n)


def _rotate_pick(pool: Sequence[ItemRef], n: int, master_seed: int, label: str, turn: int) -> list[ItemRef]:
    """Pick ``n`` distinct items, rotating through a fixed permutation participant by participant.

    Over consecutive participants every item is shown equally often (to within one).
    """
    ordered = sorted(pool, key=lambda it: it.key)
    perm = _stable_perm(master_seed, label, len(ordered))
    start = (turn * n) % len(ordered)
    return [ordered[perm[(start + j) % len(ordered)]] for j in range(n)]


def _balanced_sides(n: int, rng: np.random.Generator) -> list[int]:
    sides = [j % 2 for j in range(n)]
    if n % 2:
        sides[-1] = int(rng.integers(2))
    return [int(s) for s in rng.permutation(sides)]


def _left_option(item: ItemRef, correct_side: int) -> int:
    # correct_side 0: the correct option is on the left
    return item.correct if correct_side == 0 else 1 - item.correct


def shown_conditions(cfg: ExperimentConfig, between_condition: str | None) -> list[str]:
    return [between_condition] if cfg.design == "between" and between_condition else list(cfg.conditions)


def check_feasible(cfg: ExperimentConfig, items: Sequence[ItemRef]) -> None:
    """Refuse a config that the stimulus set cannot fill, naming what is short."""
    by_cond: dict[str, int] = {}
    for it in items:
        if it.kind == "main":
            by_cond[it.condition] = by_cond.get(it.condition, 0) + 1
    per = cfg.trials_per_participant if cfg.design == "between" else cfg.trials_per_participant // len(cfg.conditions)
    for cond in cfg.conditions:
        if by_cond.get(cond, 0) == 0:
            raise ScheduleError(f"conditions: '{cond}' has no items in the stimulus set "
                                f"(it has: {sorted(by_cond)})")
        if by_cond[cond] < per:
            raise ScheduleError(f"trials_per_participant: needs {per} items of condition '{cond}' per "
                                f"participant, the stimulus set has {by_cond[cond]}")
    n_practice = sum(1 for it in items if it.kind == "practice")
    if cfg.practice.trials + cfg.practice.worked_examples > n_practice:
        raise ScheduleError(f"practice.trials: {cfg.practice.trials} trials and {cfg.practice.worked_examples} worked "
                            f"examples asked, the stimulus set has {n_practice} practice items")
    n_catch = sum(1 for it in items if it.kind == "catch")
    if cfg.catch.trials > n_catch:
        raise ScheduleError(f"catch.trials: {cfg.catch.trials} asked, the stimulus set has {n_catch} catch items")
    if cfg.blocks.by == "mixed" and cfg.trials_per_participant < cfg.blocks.n:
        raise ScheduleError("blocks.n: more blocks than main trials")


def worked_examples(cfg: ExperimentConfig, items: Sequence[ItemRef]) -> list[ItemRef]:
    """Practice items reserved as worked examples for the instructions page (never trials)."""
    pool = sorted((it for it in items if it.kind == "practice"), key=lambda it: it.key)
    return pool[:cfg.practice.worked_examples]


def build_schedule(cfg: ExperimentConfig, items: Sequence[ItemRef], ordinal: int, seed: int,
                   between_condition: str | None = None) -> list[ScheduledTrial]:
    """The full trial list of participant number ``ordinal`` (1-based) with seed ``seed``.

    Practice first (block 0), then main trials in ``blocks.n`` blocks (by condition with
    Latin-square order, or mixed and balanced by condition), catch trials interleaved at
    random positions after the first main trial. Each condition's correct answers are on the
    left for half of its trials.
    """
    rng = np.random.default_rng(seed)
    turn = ordinal - 1
    conds = shown_conditions(cfg, between_condition)
    per = cfg.trials_per_participant // len(conds)
    pools: dict[str, list[ItemRef]] = {c: [] for c in conds}
    practice_pool, catch_pool = [], []
    reserved = {it.id for it in worked_examples(cfg, items)}
    for it in items:
        if it.kind == "main" and it.condition in pools:
            pools[it.condition].append(it)
        elif it.kind == "practice" and it.id not in reserved:
            practice_pool.append(it)
        elif it.kind == "catch":
            catch_pool.append(it)

    # main trials per condition: (item, correct_side)
    by_cond: dict[str, list[tuple[ItemRef, int]]] = {}
    for c in conds:
        chosen = _rotate_pick(pools[c], per, cfg.seed, f"main:{c}", turn)
        sides = _balanced_sides(per, rng)
        pairs = list(zip(chosen, sides))
        by_cond[c] = [pairs[i] for i in rng.permutation(len(pairs))]

    n_blocks = cfg.blocks.n
    blocks: list[list[tuple[ItemRef, int]]]
    if cfg.blocks.by == "condition" and len(conds) > 1:
        if cfg.blocks.order == "latin_square":
            rows = latin_square(len(conds))
            order = rows[turn % len(rows)]
        elif cfg.blocks.order == "random":
            order = [int(i) for i in rng.permutation(len(conds))]
        else:
            order = list(range(len(conds)))
        blocks = [list(by_cond[conds[i]]) for i in order]
    else:
        blocks = [[] for _ in range(n_blocks)]
        k = 0
        for c in conds:  # deal each condition's trials round robin: blocks balanced by condition
            for pair in by_cond[c]:
                blocks[k % n_blocks].append(pair)
                k += 1
        blocks = [[b[i] for i in rng.permutation(len(b))] for b in blocks]

    main: list[tuple[int, str, ItemRef, int]] = []  # (block, kind, item, correct_side)
    for b, trials in enumerate(blocks, start=1):
        main += [(b, "main", it, side) for it, side in trials]

    if cfg.catch.trials:
        catch_items = _rotate_pick(catch_pool, cfg.catch.trials, cfg.seed, "catch", turn)
        sides = _balanced_sides(len(catch_items), rng)
        # distinct insertion points after the first main trial
        slots = sorted(int(s) for s in rng.choice(np.arange(1, len(main) + 1), size=len(catch_items),
                                                   replace=len(catch_items) > len(main)))
        for offset, (slot, it, side) in enumerate(zip(slots, catch_items, sides)):
            at = slot + offset
            block = main[at - 1][0]
            main.insert(at, (block, "catch", it, side))

    practice: list[tuple[int, str, ItemRef, int]] = []
    if cfg.practice.trials:
        chosen = _rotate_pick(practice_pool, cfg.practice.trials, cfg.seed, "practice", turn)
        sides = _balanced_sides(len(chosen), rng)
        practice = [(0, "practice", it, side) for it, side in zip(chosen, sides)]

    return [ScheduledTrial(position=i, block=b, kind=kind, item_id=it.id, left_option=_left_option(it, side))
            for i, (b, kind, it, side) in enumerate(practice + main, start=1)]
