"""Exclusion flags: each rule at its boundary, and computed into the export from stored responses."""

from __future__ import annotations

import pytest

from study_server.config_schema import ExperimentConfig
from study_server.db import get_session
from study_server.services.exclusions import TrialOutcome, exclusion_reasons
from study_server.services.export import export_frame
from study_server.services.progress import experiment_progress
from tests.study_server.conftest import experiment_yaml, register, write_experiment


def _cfg(tiny_set, **exclusions) -> ExperimentConfig:  # type: ignore[no-untyped-def]
    return ExperimentConfig.model_validate(experiment_yaml(
        tiny_set, catch={"trials": 4, "min_accuracy": 0.75}, timing={"min_rt_ms": 200},
        analysis={"exclusions": exclusions}))


def _main(n: int, side: int = 0, rt: float = 500.0) -> list[TrialOutcome]:
    return [TrialOutcome("main", True, True, side, rt) for _ in range(n)]


def _catch(correct: int, total: int) -> list[TrialOutcome]:
    return [TrialOutcome("catch", True, i < correct, 0, 500.0) for i in range(total)]


@pytest.mark.parametrize("correct, excluded", [(4, False), (3, False), (2, True), (0, True)])
def test_catch_accuracy_threshold(tiny_set, correct: int, excluded: bool) -> None:  # type: ignore[no-untyped-def]
    reasons = exclusion_reasons(_cfg(tiny_set), "finished", _catch(correct, 4) + _main(6, side=0) + _main(6, side=1))
    assert bool(reasons) == excluded
    if excluded:
        assert reasons == [f"catch_accuracy {correct / 4:.2f} < 0.75"]


def test_catch_threshold_from_analysis_overrides_catch_block(tiny_set) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tiny_set, catch_min_accuracy=0.5)
    assert exclusion_reasons(cfg, "finished", _catch(2, 4)) == []
    assert exclusion_reasons(cfg, "finished", _catch(1, 4)) == ["catch_accuracy 0.25 < 0.50"]


def test_too_fast(tiny_set) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tiny_set, max_fast_fraction=0.25)
    ok = _main(3, rt=150) + _main(9, rt=600)  # 0.25 fast: allowed
    assert exclusion_reasons(cfg, "finished", ok) == []
    bad = _main(4, rt=150) + _main(8, rt=600)
    assert exclusion_reasons(cfg, "finished", bad) == ["too_fast 0.33 of responses < 200 ms"]
    assert exclusion_reasons(_cfg(tiny_set), "finished", bad) == []  # rule off by default


def test_side_bias(tiny_set) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tiny_set, max_side_bias=0.8)
    assert exclusion_reasons(cfg, "finished", _main(8, side=1) + _main(2, side=0)) == []
    assert exclusion_reasons(cfg, "finished", _main(9, side=1) + _main(1, side=0)) == ["side_bias 0.90 > 0.80"]


def test_incomplete_and_all_reasons_in_order(tiny_set) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tiny_set, max_fast_fraction=0.1, max_side_bias=0.6)
    trials = _catch(0, 2) + _main(5, side=0, rt=50) + [TrialOutcome("main", False, False, None, None)]
    assert exclusion_reasons(cfg, "timed_out", trials) == [
        "catch_accuracy 0.00 < 0.75", "too_fast 1.00 of responses < 200 ms", "side_bias 1.00 > 0.60", "incomplete"]
    no_require = ExperimentConfig.model_validate(experiment_yaml(
        tiny_set, analysis={"exclusions": {"require_complete": False}}))
    assert exclusion_reasons(no_require, "started", _main(2)) == []
    assert exclusion_reasons(no_require, "restarted", _main(2)) == ["restarted"]  # never counted twice


def test_flags_computed_into_export_and_progress(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Three participants through the API: careful, always-left and too fast, and one who stops."""
    path = write_experiment(tmp_path, tiny_set, slug="ex", trials_per_participant=8,
                            catch={"trials": 2, "min_accuracy": 0.5},
                            analysis={"exclusions": {"max_side_bias": 0.9, "max_fast_fraction": 0.5}})
    exp = register(app, path)
    from interp_study.httpclient import ManifestOracle

    oracle = ManifestOracle(tiny_set)

    def run(policy, stop_after=None) -> None:  # type: ignore[no-untyped-def]
        token = client.post("/api/v1/experiments/ex/participants", json={}).get_json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        n = 0
        while stop_after is None or n < stop_after:
            data = client.get("/api/v1/trial", headers=h).get_json()
            if data.get("finished"):
                return
            _, correct_side = oracle.lookup(data["trial"])
            choice, rt = policy(data["trial"], correct_side)
            client.post(f"/api/v1/trials/{data['trial']['id']}/response", headers=h, json={"choice": choice, "rt_ms": rt})
            n += 1

    run(lambda t, c: (c, 800.0))  # careful: all correct
    run(lambda t, c: (0, 90.0))  # always left, too fast; catch correct about half the time
    run(lambda t, c: (c, 800.0), stop_after=3)  # leaves early
    with app.app_context():
        s = get_session()
        frame = export_frame(s, [s.get(type(exp), exp.id)])
        progress = experiment_progress(s, s.get(type(exp), exp.id))
    per = frame.groupby("participant_id").agg(excluded=("excluded", "first"), reason=("exclusion_reason", "first"),
                                              status=("participant_status", "first"), ordinal=("started_at", "first"))
    per = per.sort_values("ordinal")
    assert list(per["excluded"]) == [0, 1, 1]
    assert per["reason"].iloc[0] == ""
    assert "too_fast 1.00" in per["reason"].iloc[1] and "side_bias 1.00 > 0.90" in per["reason"].iloc[1]
    assert per["reason"].iloc[2] == "incomplete" and per["status"].iloc[2] == "started"
    total = progress.total
    assert (total.started, total.finished, total.in_progress, total.excluded) == (3, 2, 1, 1)
    assert total.median_duration_min is not None and total.median_duration_min >= 0
    careful_catch = frame[(frame["kind"] == "catch") & (frame["excluded"] == 0)]
    assert careful_catch["correct"].tolist() == [1, 1]
