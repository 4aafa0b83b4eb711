"""``interp-study analyze EXPORT --plan PLAN --out DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from .load import DataError

__all__ = ["analyze"]


@click.command()
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--plan", "plan", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Analysis plan YAML, or the experiment YAML (its 'analysis' section). Default: built-in defaults.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.html, report.md, PNG figures and CSV tables.")
@click.option("--power/--no-power", default=True, show_default=True, help="Simulate a power curve.")
@click.option("--power-sims", type=click.IntRange(min=1), default=None,
              help="Data sets per point of the power curve  [default: the plan's, else 50]")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for simulations and plot jitter.")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes for the power simulation.")
def analyze(export: Path, plan: Path | None, out: Path, power: bool, power_sims: int | None, seed: int,
            jobs: int) -> None:
    """Analyse EXPORT (CSV or Parquet, one row per trial) and write a report to --out."""
    from .report import build_report

    try:
        rep = build_report(export, plan, out, power=power, power_sims=power_sims, seed=seed, n_jobs=jobs,
                           progress=True)
    except DataError as exc:
        raise click.ClickException(str(exc)) from exc
    for w in rep.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"wrote {rep.html} and {rep.markdown}")
