"""Experiment YAML validation and registration through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from study_server.config_schema import ConfigError, load_experiment_config
from study_server.models import Experiment, Item
from tests.conftest import run_cli


def _counts(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = conn.execute(select(func.count(Experiment.id))).scalar(), conn.execute(select(func.count(Item.id))).scalar()
    engine.dispose()
    return out


def test_valid_file_registers_and_is_idempotent(experiment_file: Path, sqlite_url: str) -> None:
    first = run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "tiny"
    again = run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url)
    assert again.returncode == 0 and "unchanged" in again.stderr
    assert _counts(sqlite_url)[0] == 1
    experiment_file.write_text(experiment_file.read_text().replace("seed: 7", "seed: 8"))
    changed = run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url)
    assert changed.returncode == 0 and "version 2" in changed.stderr


@pytest.mark.parametrize("edit, expected", [
    (lambda s: s.replace("trials_per_participant: 6", "trials_per_participant: six"), "trials_per_participant"),
    (lambda s: s.replace("design: within", "design: sideways"), "design"),
    (lambda s: s + "colour: blue\n", "colour: unknown field"),
    (lambda s: s.replace("practice: {trials: 0", "practice: {trials: -1"), "practice.trials"),
    (lambda s: s.replace("conditions: [reference, none]", "conditions: [reference, gradcam]"), "gradcam"),
    (lambda s: s.replace("trials_per_participant: 6", "trials_per_participant: 5"), "multiple of"),
    (lambda s: s.replace("trials_per_participant: 6", "trials_per_participant: 40"), "needs 20 items"),
    (lambda s: s.replace("slug: tiny", "slug: 'Not A Slug!'"), "slug"),
    (lambda s: s.replace("title: Which", "title: [Which"), "not valid YAML (line 2"),
])
def test_bad_file_exits_nonzero_naming_field(experiment_file: Path, sqlite_url: str, edit, expected: str) -> None:
    good = run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url)
    assert good.returncode == 0
    before = _counts(sqlite_url)
    experiment_file.write_text(edit(experiment_file.read_text()))
    bad = run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url)
    assert bad.returncode != 0
    assert expected in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    assert _counts(sqlite_url) == before  # nothing stored, nothing lost


def test_text_files_are_read_relative_to_yaml(experiment_file: Path) -> None:
    (experiment_file.parent / "consent.md").write_text("# Consent\nYou agree.")
    experiment_file.write_text(experiment_file.read_text() + "text: {consent: consent.md}\n")
    cfg, stimuli = load_experiment_config(experiment_file)
    assert cfg.text.consent.startswith("# Consent")
    assert (stimuli / "manifest.json").is_file()
    experiment_file.write_text(experiment_file.read_text().replace("consent.md", "missing.md"))
    with pytest.raises(ConfigError, match="text.consent: file 'missing.md' not found"):
        load_experiment_config(experiment_file)


def test_missing_stimulus_folder(experiment_file: Path, sqlite_url: str, tmp_path: Path) -> None:
    text = experiment_file.read_text()
    stim_line = next(line for line in text.splitlines() if line.startswith("stimuli:"))
    experiment_file.write_text(text.replace(stim_line, f"stimuli: {tmp_path / 'nowhere'}"))
    bad = run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url)
    assert bad.returncode != 0 and "no manifest.json found" in bad.stderr
