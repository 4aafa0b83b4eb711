"""Coverage of 95% Wald CIs over simulated data sets (parameter recovery at scale).

Simulates data sets of 60 participants x 80 trials from a logistic GLMM with crossed
participant and item intercepts and known fixed effects, refits each with fit_glmm, and
prints how often each 95% CI covers the truth (target 93%-97%) with the mean bias and
the ratio of the mean SE to the SD of the estimates. Uses two worker processes.

    .venv/bin/python bench/recovery.py [--sims 200] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from analysis import fit_glmm, simulate_trials, wilson_ci

ACC = {"a": 0.6, "b": 0.75, "c": 0.85}
TRUTH = {"(Intercept)": np.log(0.6 / 0.4), "conditionb": np.log(3.0) - np.log(1.5),
         "conditionc": np.log(0.85 / 0.15) - np.log(1.5)}
FORMULA = "correct ~ condition + (1|participant_id) + (1|family)"


def one(args):
    seq, se = args
    df = simulate_trials(ACC, n_participants=60, n_items=40, trials_per_participant=80, participant_sd=0.7,
                         item_sd=0.5, seed=np.random.default_rng(seq))
    fit = fit_glmm(df, FORMULA, reference={"condition": "a"}, se=se)
    fx = fit.fixed.set_index("term")
    return ({t: (fx.loc[t, "estimate"], fx.loc[t, "std_error"], fx.loc[t, "ci_low"], fx.loc[t, "ci_high"])
             for t in TRUTH}, dict(zip(fit.random["group"], fit.random["sd"])), fit.converged)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--se", choices=["hessian", "rx"], default="hessian")
    a = ap.parse_args()
    seqs = np.random.SeedSequence(a.seed).spawn(a.sims)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        res = list(tqdm(pool.map(one, [(s, a.se) for s in seqs]), total=a.sims, desc="fits"))
    dt = time.perf_counter() - t0
    print(f"{a.sims} data sets (60 participants x 80 trials, participant SD 0.7, item SD 0.5), "
          f"SEs: {a.se}; {dt:.0f} s with {a.jobs} workers; converged {sum(r[2] for r in res)}/{a.sims}")
    print(f"{'term':<14} {'truth':>7} {'coverage':>9} {'(95% CI of coverage)':>22} {'bias':>8} {'meanSE/SD':>10}")
    for t, v in TRUTH.items():
        est = np.array([r[0][t][0] for r in res])
        se = np.array([r[0][t][1] for r in res])
        cov = np.array([r[0][t][2] <= v <= r[0][t][3] for r in res])
        lo, hi = wilson_ci(cov.sum(), len(cov))
        print(f"{t:<14} {v:7.3f} {cov.mean():9.1%}   ({float(lo):.1%} to {float(hi):.1%}) {est.mean() - v:8.4f} "
              f"{se.mean() / est.std(ddof=1):10.3f}")
    allcov = np.mean([r[0][t][2] <= v <= r[0][t][3] for r in res for t, v in TRUTH.items()])
    print(f"all fixed effects: coverage {allcov:.1%} (target 93%-97%)")
    for g, truth in (("participant_id", 0.7), ("family", 0.5)):
        sds = np.array([r[1][g] for r in res])
        print(f"random SD {g}: truth {truth}, mean estimate {sds.mean():.3f}, SD of estimates {sds.std(ddof=1):.3f}")


if __name__ == "__main__":
    main()
