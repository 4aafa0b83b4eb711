"""The analysis report: Markdown and HTML with figures, plus every table as CSV."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import markdown as md_lib
import numpy as np
import pandas as pd

from .contrasts import baseline_pairs, compare_to_baselines
from .exclusions import apply_exclusions
from .glmm import fit_glmm
from .lmm import fit_lmm
from .load import DataError, accuracy_by_condition, load_trials
from .plan import AnalysisPlan, load_plan
from .plots import plot_accuracy, plot_power, plot_rt
from .power import simulate_power

__all__ = ["Report", "build_report"]


@dataclass
class Report:
    """Paths written by :func:`build_report` and the tables behind them."""

    out_dir: Path
    markdown: Path
    html: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return ""
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.3f}"
    return "" if v is None else str(v)


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown pipe table."""
    if df.empty:
        return "_(none)_"
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.2rem;font-size:0.9rem}th,td{border:1px solid #ccc;padding:0.2rem 0.5rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.warn{background:#fff4d6;border-left:4px solid #e0a000;padding:0.4rem 0.8rem}pre{background:#f6f6f6;padding:0.6rem;overflow-x:auto}"""


def _data_summary(data: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, d in (("all", data), ("analysed", kept)):
        rows.append({"set": label, "participants": d["participant_id"].nunique(),
                     "main_trials": int((d["kind"] == "main").sum()),
                     "catch_trials": int((d["kind"] == "catch").sum()),
                     "practice_trials": int((d["kind"] == "practice").sum()),
                     "items": d.loc[d["kind"] == "main", "item_id"].nunique(),
                     "conditions": d.loc[d["kind"] == "main", "condition"].nunique()})
    return pd.DataFrame(rows)


def build_report(
    export: str | PathLike[str] | pd.DataFrame,
    plan: str | PathLike[str] | dict[str, Any] | AnalysisPlan | None,
    out_dir: str | PathLike[str],
    power: bool = True,
    power_sims: int | None = None,
    seed: int = 0,
    n_jobs: int = 2,
    progress: bool = False,
) -> Report:
    """Run the preregistered analysis and write ``report.md``, ``report.html``, PNGs and CSVs.

    Parameters
    ----------
    export : path or DataFrame
        The trial export (CSV/Parquet).
    plan : path, dict, AnalysisPlan or None
        The analysis plan (see :mod:`analysis.plan`); ``None`` uses defaults.
    out_dir : path
        Created if needed; existing report files are overwritten.
    power : bool, default True
        Include a power curve (simulated from the fitted model).
    power_sims : int, optional
        Data sets per point of the power curve (default: the plan's, else 50).
    seed : int, default 0
        Seeds the power simulation and the jitter of the participant points.
    n_jobs : int, default 2
        Worker processes for the power simulation.

    Raises
    ------
    DataError
        Bad export or plan, a declared condition without data, or a model that cannot be
        fitted. Singular fits and convergence trouble are warnings shown in the report.
    """
    p = load_plan(plan)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_trials(export)
    kept, excl = apply_exclusions(data, p.exclusions)
    main = kept[(kept["kind"] == "main") & kept["correct"].notna()].copy()
    if main.empty:
        raise DataError("no main trials left to analyse after exclusions")
    notes: list[str] = []
    tables: dict[str, pd.DataFrame] = {"data_summary": _data_summary(data, kept), "exclusions": excl}
    raw = accuracy_by_condition(main)
    tables["accuracy_raw"] = raw

    pairs = None
    if p.baselines or p.conditions:
        pairs = baseline_pairs(p.conditions, p.baselines)
        named = {c for pr in pairs for c in pr}
        absent = sorted(named - set(main["condition"]))
        if absent:
            raise DataError(f"condition(s) declared in the plan have no data after exclusions: {', '.join(absent)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if pairs:
            plan_map: dict[str, list[str]] = {}
            for m, b in pairs:
                plan_map.setdefault(m, []).append(b)
            cmp = compare_to_baselines(main, plan=plan_map, formula=p.formula, reference=p.reference, alpha=p.alpha)
            fit = cmp.fit
            tables["contrasts"] = cmp.contrasts
            tables["accuracy"] = cmp.accuracy
        else:
            notes.append("The plan declares no baselines: no contrasts were tested.")
            fit = fit_glmm(main, p.formula, reference=p.reference)
    notes += [f"accuracy model: {w}" for w in fit.warnings]
    if not fit.converged:
        notes.append("accuracy model: the optimiser did not converge; treat its numbers with caution.")
    tables["fixed_effects"] = fit.fixed_table(p.alpha)
    tables["random_effects"] = fit.random

    rt_fit = None
    if p.rt_formula:
        rt_data = main[main["rt_ms"] > 0]
        try:
            rt_fit = fit_lmm(rt_data, p.rt_formula, reference=p.reference)
            tables["rt_fixed_effects"] = rt_fit.fixed_table(p.alpha).drop(columns="odds_ratio")
            tables["rt_random_effects"] = rt_fit.random
            notes += [f"RT model: {w}" for w in rt_fit.warnings]
        except DataError as exc:
            notes.append(f"RT model not fitted: {exc}")

    figs = {"accuracy": plot_accuracy(tables.get("accuracy", raw), main, out / "accuracy.png", seed=seed),
            "rt": plot_rt(main, out / "rt.png")}
    if power and pairs:
        tables["power"] = _power(p, fit, main, pairs, power_sims, seed, n_jobs, progress)
        figs["power"] = plot_power(tables["power"], out / "power.png")
    elif power:
        notes.append("Power was not simulated: the plan declares no baselines.")

    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False, float_format="%.10g")
    text = _markdown(p, tables, fit, rt_fit, notes, figs)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(text)
    body = md_lib.markdown(text, extensions=["tables", "fenced_code"])
    body = body.replace("<blockquote>", '<blockquote class="warn">')
    html_path.write_text(f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Analysis report</title>"
                         f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
    return Report(out, md_path, html_path, tables, notes)


def _power(p: AnalysisPlan, fit, main: pd.DataFrame, pairs, sims, seed, n_jobs, progress) -> pd.DataFrame:
    ps = p.power
    from .contrasts import marginal_accuracy

    acc = dict(zip(*marginal_accuracy(fit)[["condition", "accuracy_typical"]].to_numpy().T)) if ps is None or ps.accuracy is None else ps.accuracy
    sds = fit.random.set_index("group")["sd"]
    p_sd = ps.participant_sd if ps and ps.participant_sd is not None else float(sds.get("participant_id", 0.5))
    i_sd = ps.item_sd if ps and ps.item_sd is not None else float(sds.drop("participant_id", errors="ignore").max())
    n_items = ps.n_items if ps and ps.n_items else max(2, int(round(main.groupby("condition")["item_id"].nunique().mean())))
    trials = ps.trials_per_participant if ps and ps.trials_per_participant else int(round(main.groupby("participant_id").size().median()))
    ns = ps.n_participants if ps else [20, 40, 60, 80]
    n_sims = sims if sims is not None else (ps.n_sims if ps else 50)
    plan_map: dict[str, list[str]] = {}
    for m, b in pairs:
        plan_map.setdefault(m, []).append(b)
    used = {c for pr in pairs for c in pr}
    return simulate_power({c: float(a) for c, a in acc.items() if c in used}, plan_map, n_participants=ns,
                          n_items=n_items, trials_per_participant=trials, participant_sd=p_sd, item_sd=float(i_sd),
                          n_sims=n_sims, alpha=p.alpha, seed=seed, n_jobs=n_jobs, formula=p.formula,
                          progress=progress)


def _markdown(p: AnalysisPlan, t: dict[str, pd.DataFrame], fit, rt_fit, notes: list[str], figs: dict) -> str:
    L = ["# Analysis report", ""]
    if notes:
        L += ["## Warnings", ""] + [f"> {n}  " for n in notes] + [""]
    L += ["## Data", "", md_table(t["data_summary"]), "", "## Exclusions", ""]
    ex = t["exclusions"]
    L += [f"{ex['participant_id'].nunique()} participant(s) excluded.", "", md_table(ex), ""]
    L += ["## Accuracy per condition", ""]
    if "accuracy" in t:
        L += ["Model-based accuracy averages over participants and items (population-averaged); "
              "`accuracy_typical` is for a typical participant and item; raw accuracy has Wilson 95% CIs.", "",
              md_table(t["accuracy"]), ""]
    else:
        L += [md_table(t["accuracy_raw"]), ""]
    L += [f"![accuracy per condition]({figs['accuracy'].name})", ""]
    if "contrasts" in t:
        L += ["## Methods against baselines", "",
              f"Wald z tests of log-odds differences; `p_holm` is Holm-adjusted over all {len(t['contrasts'])} contrasts "
              f"(alpha = {p.alpha}); odds-ratio and accuracy-difference CIs are unadjusted 95%.", "",
              md_table(t["contrasts"]), ""]
    L += ["## Accuracy model", "", f"`{fit.formula}` (logistic GLMM, Laplace, ML)", "",
          md_table(t["fixed_effects"]), "", md_table(t["random_effects"]), "",
          f"logLik {fit.loglik:.3f}, AIC {fit.aic:.2f}, BIC {fit.bic:.2f}, {fit.nobs} observations; "
          f"standard errors: {fit.se_method}; converged: {'yes' if fit.converged else 'NO'}.", ""]
    if rt_fit is not None:
        L += ["## Reaction-time model", "", f"`{rt_fit.formula}` (linear mixed model, {rt_fit.method})", "",
              md_table(t["rt_fixed_effects"]), "", md_table(t["rt_random_effects"]), ""]
    L += [f"![reaction times]({figs['rt'].name})", ""]
    if "power" in t:
        L += ["## Power", "", "Simulated from the fitted model (typical-participant accuracy per condition, "
              "estimated SDs), refitted with the same formula; Holm-adjusted tests.", "",
              md_table(t["power"]), "", f"![power curve]({figs['power'].name})", ""]
    L += ["## Files", "", ", ".join(f"`{k}.csv`" for k in t), ""]
    return "\n".join(L)
