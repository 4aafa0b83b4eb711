"""The thin path that must always work: stimulus set -> real server -> HTTP participants ->
export -> analysis, with an answer policy whose accuracy per condition is known."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

import analysis
from interp_study.httpclient import ApiParticipant, ManifestOracle, TrialView
from tests.conftest import run_cli


def _policy(participant_index: int):  # type: ignore[no-untyped-def]
    """'reference' answered correctly always; 'none' correctly on odd positions only."""

    def choose(view: TrialView) -> tuple[int, float]:
        assert view.correct_side is not None, "oracle must recognise every served trial"
        if view.item.condition == "reference" or view.data["position"] % 2 == 1:
            return view.correct_side, 400.0 + participant_index
        return 1 - view.correct_side, 650.0

    return choose


@pytest.mark.slow
def test_five_participants_end_to_end(live_server, experiment_file: Path, tiny_set: Path, tmp_path: Path) -> None:
    created = run_cli("experiment", "create", str(experiment_file), "--database-url", live_server.database_url)
    assert created.returncode == 0, created.stderr
    oracle = ManifestOracle(tiny_set)
    expected: dict[str, list[int]] = defaultdict(list)
    for i in range(5):
        bot = ApiParticipant(live_server.url, "tiny")
        bot.start(external_id=f"PID{i}")
        end = bot.run(_policy(i), oracle)
        assert end["finished"] and end["completion_url"].endswith("cc=TINY123")
        assert [r.status for r in bot.records] == [200] * 6
        for r in bot.records:
            expected[r.condition].append(int(r.correct))

    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"export{suffix}"
        done = run_cli("export", "tiny", "--out", str(out), "--database-url", live_server.database_url)
        assert done.returncode == 0, done.stderr
        df = analysis.load_trials(out)
        assert len(df) == 30 and df["participant_id"].nunique() == 5
        assert list(df.columns[:20]) == list(analysis.EXPORT_COLUMNS)[:20]
        assert (df["excluded"] == 0).all()
        table = analysis.accuracy_by_condition(df).set_index("condition")
        for cond, outcomes in expected.items():
            assert table.loc[cond, "n"] == len(outcomes)
            assert table.loc[cond, "correct"] == sum(outcomes)
            assert table.loc[cond, "accuracy"] == pytest.approx(sum(outcomes) / len(outcomes), abs=1e-12)
            assert table.loc[cond, "ci_low"] <= table.loc[cond, "accuracy"] <= table.loc[cond, "ci_high"]
        assert table.loc["reference", "accuracy"] == 1.0
        # the export's correctness agrees with the policy's own record, trial by trial
        assert int(df["correct"].sum()) == sum(sum(v) for v in expected.values())
