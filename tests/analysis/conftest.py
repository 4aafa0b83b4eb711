"""Fixtures for the analysis tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require

# The repository sits beside ../shared (CI clones it that way); see the issue for the data.
REFERENCE_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "lme4"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    require((REFERENCE_DIR / "expected.json").exists(),
            f"lme4 reference data not found at {REFERENCE_DIR.resolve()} (../shared beside the repository)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def expected(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "expected.json").read_text())["models"]


@pytest.fixture(scope="session")
def cbpp(reference_dir: Path) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "cbpp.csv")


@pytest.fixture(scope="session")
def sleepstudy(reference_dir: Path) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "sleepstudy.csv")
