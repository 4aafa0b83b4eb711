"""Fit time for 200 participants x 180 trials (36,000 rows), crossed random intercepts.

Prints our GLMM (correct ~ condition + (1|participant_id) + (1|family)) and LMM
(log(rt_ms) ~ same) times beside statsmodels on the same data: MixedLM with crossed
variance components for the LMM, BinomialBayesMixedGLM (variational Bayes and MAP) for the
GLMM. Each statsmodels fit runs in a child process with a time limit; one that runs out
is reported as "> limit". Usage:

    .venv/bin/python bench/fit_speed.py [--participants 200] [--trials 180] [--timeout 300]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import numpy as np

from analysis import fit_glmm, fit_lmm, simulate_trials

GLMM = "correct ~ condition + (1|participant_id) + (1|family)"
LMM = "log(rt_ms) ~ condition + (1|participant_id) + (1|family)"


def make_data(n_part: int, trials: int, seed: int = 1):
    n_items = trials // 3  # three conditions: every participant sees every item once
    df = simulate_trials({"feature_vis": 0.8, "natural": 0.9, "none": 0.65}, n_participants=n_part,
                         n_items=n_items, trials_per_participant=trials, participant_sd=0.6, item_sd=0.4, seed=seed)
    # give log RT crossed random effects too, so the LMM has variance to find
    rng = np.random.default_rng(seed + 1)
    pe = dict(zip(sorted(df["participant_id"].unique()), rng.normal(0, 0.2, n_part)))
    ie = {f: v for f, v in zip(sorted(df["family"].unique()), rng.normal(0, 0.1, df["family"].nunique()))}
    df["rt_ms"] = np.exp(np.log(df["rt_ms"]) + df["participant_id"].map(pe) + df["family"].map(ie))
    return df


def _sm_job(kind: str, df, q) -> None:
    import warnings

    import statsmodels.formula.api as smf
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    warnings.simplefilter("ignore")
    vc = {"participant": "0 + C(participant_id)", "item": "0 + C(family)"}
    t0 = time.perf_counter()
    if kind == "MixedLM (REML)":
        d = df.assign(logrt=np.log(df["rt_ms"]), one=1)
        r = smf.mixedlm("logrt ~ condition", d, groups="one", vc_formula=vc, re_formula="0").fit(reml=True)
        out = f"fixed {np.round(np.asarray(r.fe_params), 4).tolist()}"
    else:
        m = BinomialBayesMixedGLM.from_formula("correct ~ condition", vc, df)
        r = m.fit_vb() if kind.endswith("(VB)") else m.fit_map()
        out = f"fixed {np.round(np.asarray(r.fe_mean), 4).tolist()}, vc sd {np.round(np.exp(r.vcp_mean), 3).tolist()}"
    q.put((time.perf_counter() - t0, out))


def run_statsmodels(kind: str, df, timeout: float) -> tuple[float | None, str]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_sm_job, args=(kind, df, q))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.terminate()
        p.join()
        return None, f"stopped after {timeout:.0f} s"
    if q.empty():
        return None, f"failed (exit code {p.exitcode})"
    return q.get()


def time_ours(fn, repeats: int):
    times, fit = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--trials", type=int, default=180)
    ap.add_argument("--timeout", type=float, default=300.0, help="limit per statsmodels fit (s)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-statsmodels", action="store_true")
    a = ap.parse_args()
    df = make_data(a.participants, a.trials)
    print(f"data: {len(df)} rows, {df['participant_id'].nunique()} participants, {df['family'].nunique()} items, "
          f"crossed random intercepts; our times are the median of {a.repeats} runs (including model set-up)")
    t_glmm, g = time_ours(lambda: fit_glmm(df, GLMM), a.repeats)
    t_glmm_rx, _ = time_ours(lambda: fit_glmm(df, GLMM, se="rx"), a.repeats)
    t_lmm, m = time_ours(lambda: fit_lmm(df, LMM), a.repeats)
    print(f"ours  GLMM (Laplace, Hessian SEs): {t_glmm:7.2f} s   fixed {np.round(g.beta, 4).tolist()}, "
          f"sd {np.round(g.random['sd'].to_numpy(), 3).tolist()}")
    print(f"ours  GLMM (Laplace, RX SEs):      {t_glmm_rx:7.2f} s")
    print(f"ours  LMM  (REML):                 {t_lmm:7.2f} s   fixed {np.round(m.beta, 4).tolist()}")
    if a.skip_statsmodels:
        return
    for kind, ours in (("MixedLM (REML)", t_lmm), ("BinomialBayesMixedGLM (VB)", t_glmm),
                       ("BinomialBayesMixedGLM (MAP)", t_glmm)):
        t, info = run_statsmodels(kind, df, a.timeout)
        if t is None:
            print(f"statsmodels {kind}: > {a.timeout:.0f} s ({info}); ratio > {a.timeout / ours:.0f}x")
        else:
            print(f"statsmodels {kind}: {t:7.2f} s   {info}; ratio statsmodels/ours = {t / ours:.1f}x")


if __name__ == "__main__":
    main()
