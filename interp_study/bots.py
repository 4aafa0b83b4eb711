"""Simulated participants over the real HTTP API.

Two kinds of policy:

- ``DialPolicy``: the answer is right with a probability set per condition, on the logit
  scale shifted by a participant effect and an item effect (the generative model the
  analysis fits), with lapses, plausible log-normal RTs, optional side bias and dropouts.
  It needs the stimulus set's answer key (``ManifestOracle``), which only simulations have.
- ``ObserverPolicy``: for ``unit_prediction`` items it looks at the images themselves and
  picks the query that resembles the "strongly activating" references more than the weakly
  activating ones, so the stimuli, not a dial, carry the effect.
"""

from __future__ import annotations

import io
import math
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import click
import numpy as np
import requests

from .httpclient import AnswerRecord, ApiParticipant, ManifestOracle, TrialView

__all__ = ["BotSettings", "DialPolicy", "ObserverPolicy", "run_bots", "parse_accuracy", "bots", "BotRun"]


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def parse_accuracy(text: str) -> dict[str, float]:
    """'natural=0.9,feature_vis=0.8' -> {'natural': 0.9, 'feature_vis': 0.8}"""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"--accuracy: '{part}' is not CONDITION=PROBABILITY")
        name, value = part.split("=", 1)
        try:
            p = float(value)
        except ValueError:
            raise ValueError(f"--accuracy: '{value}' for '{name}' is not a number") from None
        if not 0.0 < p < 1.0:
            raise ValueError(f"--accuracy: {name}={p} must lie strictly between 0 and 1")
        out[name.strip()] = p
    return out


@dataclass
class BotSettings:
    accuracy: dict[str, float] = field(default_factory=dict)
    default_accuracy: float = 0.75
    catch_accuracy: float = 0.97
    participant_sd: float = 0.5
    item_sd: float = 0.3
    lapse_rate: float = 0.0
    side_bias: float = 0.0          # probability of answering "left" regardless
    dropout_rate: float = 0.0       # probability a participant quits before the end
    rt_median_ms: float = 900.0
    rt_sigma: float = 0.35
    seed: int = 0


class DialPolicy:
    """Right with a set probability per condition (logit-normal participant and item effects)."""

    def __init__(self, settings: BotSettings, participant_index: int) -> None:
        self.s = settings
        self.rng = np.random.default_rng([settings.seed, participant_index])
        self.u = float(self.rng.normal(0.0, settings.participant_sd)) if settings.participant_sd > 0 else 0.0

    def item_effect(self, key: str) -> float:
        """The same item effect for every participant (seeded by the item id)."""
        if self.s.item_sd <= 0:
            return 0.0
        rng = np.random.default_rng([self.s.seed, zlib.crc32(key.encode())])
        return float(rng.normal(0.0, self.s.item_sd))

    def p_correct(self, view: TrialView) -> float:
        if view.kind == "catch":
            return self.s.catch_accuracy
        cond = view.item.condition if view.item is not None else None
        acc = self.s.accuracy.get(cond or "", self.s.default_accuracy)
        return _expit(_logit(acc) + self.u + self.item_effect(view.item.id if view.item else ""))

    def rt(self, correct: bool) -> float:
        base = self.s.rt_median_ms * math.exp(float(self.rng.normal(0.0, self.s.rt_sigma)))
        return round(200.0 + base * (0.9 if correct else 1.1), 1)

    def __call__(self, view: TrialView) -> tuple[int, float]:
        if view.correct_side is None:
            raise RuntimeError(f"trial {view.id}: the answer key does not know this trial; "
                               "pass the stimulus folder the experiment uses")
        if self.s.side_bias and self.rng.random() < self.s.side_bias:
            choice = 0
        elif self.s.lapse_rate and self.rng.random() < self.s.lapse_rate:
            choice = int(self.rng.integers(2))
        else:
            right = self.rng.random() < self.p_correct(view)
            choice = view.correct_side if right else 1 - view.correct_side
        return choice, self.rt(choice == view.correct_side)


class ObserverPolicy:
    """Answers unit-prediction items by comparing query images with the reference images.

    Each image becomes a small feature vector (a coarse colour histogram plus a 8x8
    thumbnail); a query scores by how much closer it is to the strongly activating
    references than to the weakly activating ones. Without references it guesses.
    """

    def __init__(self, base_url: str, settings: BotSettings, participant_index: int,
                 session: Optional[requests.Session] = None, noise: float = 0.05) -> None:
        from PIL import Image  # noqa: F401 - fail early if Pillow is missing

        self.base = base_url.rstrip("/")
        self.http = session or requests.Session()
        self.rng = np.random.default_rng([settings.seed, participant_index, 7])
        self.noise = noise
        self.dial = DialPolicy(settings, participant_index)
        self._cache: dict[str, np.ndarray] = {}

    def features(self, url: str) -> np.ndarray:
        if url not in self._cache:
            from PIL import Image

            data = self.http.get(self.base + url, timeout=30).content
            img = Image.open(io.BytesIO(data)).convert("RGB")
            arr = np.asarray(img.resize((8, 8)), dtype=np.float64) / 255.0
            hist = np.concatenate([np.histogram(np.asarray(img)[..., c], bins=8, range=(0, 255))[0]
                                   for c in range(3)]).astype(np.float64)
            hist /= max(hist.sum(), 1.0)
            self._cache[url] = np.concatenate([arr.ravel() * 0.25, hist * 4.0])
        return self._cache[url]

    def _groups(self, view: TrialView) -> tuple[list[str], list[str]]:
        strong, weak = [], []
        for group in view.data.get("context", []):
            label = group["label"].lower()
            (weak if ("weak" in label or "low" in label or "least" in label) else strong).extend(group["images"])
        return strong, weak

    def __call__(self, view: TrialView) -> tuple[int, float]:
        options = view.data["options"]
        strong, weak = self._groups(view)
        if view.kind == "catch" and view.correct_side is not None:
            return self.dial(view)  # an attentive participant gets attention checks right
        if not strong or any("image" not in o for o in options):
            return int(self.rng.integers(2)), self.dial.rt(False)  # nothing to go on: a guess
        scores = []
        for opt in options:
            f = self.features(opt["image"])
            d_strong = min(float(np.linalg.norm(f - self.features(u))) for u in strong)
            d_weak = min(float(np.linalg.norm(f - self.features(u))) for u in weak) if weak else 0.0
            scores.append((d_weak - d_strong) + float(self.rng.normal(0.0, self.noise)))
        choice = int(np.argmax(scores))
        return choice, self.dial.rt(True)


@dataclass
class BotRun:
    records: list[list[AnswerRecord]]
    finished: int
    dropped: int
    errors: list[str]

    def accuracy_by_condition(self) -> dict[str, tuple[int, int]]:
        """(correct, n) of main trials per condition, as the bots themselves scored them."""
        out: dict[str, list[int]] = {}
        for recs in self.records:
            for r in recs:
                if r.kind == "main" and r.condition is not None and r.correct is not None:
                    out.setdefault(r.condition, []).append(int(r.correct))
        return {k: (sum(v), len(v)) for k, v in sorted(out.items())}


def run_bots(url: str, slug: str, n: int, settings: BotSettings, oracle: Optional[ManifestOracle],
             policy: str = "dial", concurrency: int = 10, progress: bool = False,
             external_prefix: str = "bot") -> BotRun:
    """Run ``n`` simulated participants against the server at ``url``."""
    if policy == "dial" and oracle is None:
        raise ValueError("the dial policy needs the stimulus set's answer key (--stimuli DIR)")

    def one(i: int) -> tuple[list[AnswerRecord], bool]:
        http = requests.Session()
        bot = ApiParticipant(url, slug, session=http)
        bot.start(external_id=f"{external_prefix}-{settings.seed}-{i}", params={"bot": "1"})
        chooser: Callable[[TrialView], tuple[int, float]]
        chooser = (ObserverPolicy(url, settings, i, session=http) if policy == "observer"
                   else DialPolicy(settings, i))
        rng = np.random.default_rng([settings.seed, i, 99])
        limit = None
        if settings.dropout_rate and rng.random() < settings.dropout_rate:
            limit = int(rng.integers(1, 10))
        end = bot.run(chooser, oracle, max_trials=limit)
        http.close()
        return bot.records, bool(end.get("finished"))

    records: list[list[AnswerRecord]] = []
    finished = dropped = 0
    errors: list[str] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="participants", unit="p")
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        for fut in as_completed(futures):
            try:
                recs, done = fut.result()
                records.append(recs)
                finished += int(done)
                dropped += int(not done)
            except Exception as exc:  # noqa: BLE001 - report every failed participant
                errors.append(str(exc))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return BotRun(records, finished, dropped, errors)


@click.command()
@click.argument("slug")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="the study server")
@click.option("--n", "n", default=20, show_default=True, type=click.IntRange(1, 100000), help="participants")
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(1, 500))
@click.option("--stimuli", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="the experiment's stimulus folder (answer key for the dial policy)")
@click.option("--policy", type=click.Choice(["dial", "observer"]), default="dial", show_default=True)
@click.option("--accuracy", default="", help="per-condition accuracy, e.g. natural=0.9,feature_vis=0.8,none=0.6")
@click.option("--default-accuracy", default=0.75, show_default=True, type=float)
@click.option("--participant-sd", default=0.5, show_default=True, type=float, help="SD of participant effects (logit)")
@click.option("--item-sd", default=0.3, show_default=True, type=float, help="SD of item effects (logit)")
@click.option("--lapse-rate", default=0.0, show_default=True, type=float)
@click.option("--side-bias", default=0.0, show_default=True, type=float, help="probability of answering left regardless")
@click.option("--dropout-rate", default=0.0, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
def bots(slug: str, url: str, n: int, concurrency: int, stimuli: Optional[Path], policy: str, accuracy: str,
         default_accuracy: float, participant_sd: float, item_sd: float, lapse_rate: float, side_bias: float,
         dropout_rate: float, seed: int) -> None:
    """Run N simulated participants through experiment SLUG over the HTTP API."""
    from stimuli_builder.manifest import ManifestError

    try:
        acc = parse_accuracy(accuracy)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--accuracy") from None
    oracle = None
    if stimuli is not None:
        try:
            oracle = ManifestOracle(stimuli)
        except ManifestError as exc:
            raise click.ClickException(str(exc)) from None
    elif policy == "dial":
        stimuli_path = _stimuli_from_server_db(slug)
        if stimuli_path is None:
            raise click.ClickException("the dial policy needs --stimuli DIR (the experiment's stimulus folder)")
        oracle = ManifestOracle(stimuli_path)
    settings = BotSettings(accuracy=acc, default_accuracy=default_accuracy, participant_sd=participant_sd,
                           item_sd=item_sd, lapse_rate=lapse_rate, side_bias=side_bias, dropout_rate=dropout_rate,
                           seed=seed)
    try:
        requests.get(url.rstrip("/") + "/healthz", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        raise click.ClickException(f"the server at {url} does not answer: {exc}") from None
    result = run_bots(url, slug, n, settings, oracle, policy=policy, concurrency=concurrency, progress=True)
    click.echo(f"{result.finished} finished, {result.dropped} dropped out, {len(result.errors)} errors")
    for cond, (k, m) in result.accuracy_by_condition().items():
        click.echo(f"  {cond:24s} {k}/{m} correct ({k / m:.3f})")
    for err in result.errors[:5]:
        click.echo(f"  error: {err}", err=True)
    if result.errors:
        raise SystemExit(1)


def _stimuli_from_server_db(slug: str) -> Optional[str]:
    """The stimulus folder of ``slug`` from the configured database, when reachable."""
    try:
        from study_server import create_app
        from study_server.db import get_session
        from study_server.services.experiments import latest_experiment

        app = create_app()
        with app.app_context():
            return latest_experiment(get_session(), slug).stimuli_path
    except Exception:  # noqa: BLE001 - best effort only
        return None
