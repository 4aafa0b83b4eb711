"""The experiment YAML, validated by pydantic.

A bad file is refused with the field path and the reason (``ConfigError``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["ExperimentConfig", "ConfigError", "load_experiment_config", "config_hash"]

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ConfigError(ValueError):
    """An experiment file that cannot be used; the message names the file and field path.

    ``fields`` lists ``(field path, reason)`` pairs where they are known (for forms that show
    each error beside its field).
    """

    def __init__(self, message: str, fields: Optional[list[tuple[str, str]]] = None) -> None:
        super().__init__(message)
        self.fields: list[tuple[str, str]] = fields or []


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Practice(_Strict):
    trials: int = Field(0, ge=0, le=100)
    feedback: bool = True
    worked_examples: int = Field(0, ge=0, le=5, description="practice items shown answered on the instructions page")


class Catch(_Strict):
    trials: int = Field(0, ge=0, le=200)
    min_accuracy: float = Field(0.0, ge=0.0, le=1.0)


class Blocks(_Strict):
    n: int = Field(1, ge=1, le=50, description="number of blocks of main trials")
    by: Literal["mixed", "condition"] = "mixed"
    order: Literal["latin_square", "random", "fixed"] = "latin_square"
    breaks: bool = True


class Timing(_Strict):
    max_trial_seconds: Optional[float] = Field(None, gt=0)
    session_timeout_minutes: float = Field(60.0, gt=0)
    min_rt_ms: float = Field(200.0, ge=0, description="responses faster than this count as too fast")


class Text(_Strict):
    consent: str = "By continuing you agree to take part in this study."
    instructions: str = "Answer each question by clicking an image or pressing F (left) or J (right)."
    debrief: str = "Thank you for taking part."


class Recruitment(_Strict):
    platform: Literal["prolific", "mturk", "sona", "anonymous"] = "anonymous"
    completion_url: Optional[str] = None
    completion_code: Optional[str] = None
    id_param: Optional[str] = Field(None, description="query parameter holding the external id")
    record_params: list[str] = Field(default_factory=list)
    on_return: Literal["resume", "refuse"] = "resume"

    @field_validator("completion_url")
    @classmethod
    def _http_url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    def external_id_param(self) -> Optional[str]:
        if self.id_param:
            return self.id_param
        return {"prolific": "PROLIFIC_PID", "mturk": "workerId", "sona": "id"}.get(self.platform)

    def params_to_record(self) -> list[str]:
        base = {"prolific": ["PROLIFIC_PID", "STUDY_ID", "SESSION_ID"],
                "mturk": ["assignmentId", "workerId", "hitId", "turkSubmitTo"],
                "sona": ["id"], "anonymous": []}[self.platform]
        return list(dict.fromkeys(base + self.record_params + ([self.id_param] if self.id_param else [])))


class Exclusions(_Strict):
    catch_min_accuracy: Optional[float] = Field(None, ge=0, le=1)
    max_fast_fraction: Optional[float] = Field(None, ge=0, le=1)
    max_side_bias: Optional[float] = Field(None, ge=0.5, le=1)
    require_complete: bool = True


class AnalysisPlan(_Strict):
    formula: Optional[str] = None
    baselines: dict[str, list[str]] = Field(default_factory=dict)
    exclusions: Exclusions = Field(default_factory=Exclusions)


class ExperimentConfig(_Strict):
    """An experiment file; see docs/reference/experiment.md for every field."""

    slug: str = Field(pattern=SLUG_PATTERN)
    title: str = Field(min_length=1, max_length=300)
    stimuli: str = Field(min_length=1, description="folder holding manifest.json, relative to the file")
    conditions: list[str] = Field(min_length=1)
    design: Literal["within", "between"] = "within"
    trials_per_participant: int = Field(gt=0, le=5000)
    participants_per_condition: Optional[int] = Field(None, gt=0)
    practice: Practice = Field(default_factory=Practice)
    catch: Catch = Field(default_factory=Catch)
    blocks: Blocks = Field(default_factory=Blocks)
    seed: int = Field(0, ge=0, lt=2**31)
    timing: Timing = Field(default_factory=Timing)
    text: Text = Field(default_factory=Text)
    recruitment: Recruitment = Field(default_factory=Recruitment)
    reload_policy: Literal["resume", "restart", "refuse"] = "resume"
    confidence_rating: bool = False
    min_screen_width: Optional[int] = Field(None, gt=0)
    analysis: AnalysisPlan = Field(default_factory=AnalysisPlan)

    @field_validator("conditions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"conditions repeat: {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentConfig":
        if self.design == "within" and self.trials_per_participant % len(self.conditions):
            raise ValueError(
                f"trials_per_participant ({self.trials_per_participant}) must be a multiple of the "
                f"number of within-subject conditions ({len(self.conditions)}) so each gets equal trials")
        if self.blocks.by == "condition" and self.design == "within" and self.blocks.n != len(self.conditions):
            raise ValueError(f"blocks.by 'condition' needs blocks.n equal to the number of conditions "
                             f"({len(self.conditions)}), got {self.blocks.n}")
        for method, bases in self.analysis.baselines.items():
            for name in [method, *bases]:
                if name not in self.conditions:
                    raise ValueError(f"analysis.baselines names '{name}', which is not in conditions")
        return self


def _field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/reference/experiment.md)"
        out.append((where, msg))
    return out


def _format(fields: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {where}: {msg}" for where, msg in fields)


def _read_text_field(base: Path, value: str, field: str, source: Path) -> str:
    """A text field is Markdown inline, or the name of a .md/.txt file beside the YAML."""
    if value.endswith((".md", ".txt", ".markdown")) and "\n" not in value:
        path = base / value
        if not path.is_file():
            raise ConfigError(f"{source}: text.{field}: file '{value}' not found in {base}",
                              [(f"text.{field}", f"file '{value}' not found in {base}")])
        return path.read_text(encoding="utf-8")
    return value


def load_experiment_config(path: str | Path) -> tuple[ExperimentConfig, Path]:
    """Read and validate an experiment YAML file.

    Returns the config (with text files read in) and the resolved stimulus-set folder.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"{source}: no such file")
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    return validate_config_data(data, source)


def validate_config_data(data: Any, source: Path, base: Optional[Path] = None) -> tuple[ExperimentConfig, Path]:
    """Validate already-parsed YAML data (used by the CLI and the admin upload).

    Relative paths (``stimuli``, text files) are resolved against ``base``, by default the
    folder of ``source``; an uploaded file has no folder, so the admin passes its
    ``STIMULI_ROOT``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of fields")
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        fields = _field_errors(exc)
        raise ConfigError(f"{source}: invalid experiment config:\n{_format(fields)}", fields) from None
    base = source.parent if base is None else base
    text = {f: _read_text_field(base, getattr(cfg.text, f), f, source) for f in ("consent", "instructions", "debrief")}
    cfg = cfg.model_copy(update={"text": Text(**text)})
    stimuli = (base / cfg.stimuli).resolve()
    return cfg, stimuli


def config_hash(cfg: ExperimentConfig, manifest_bytes: bytes) -> str:
    """Hash of the frozen config together with the stimulus manifest it uses."""
    payload = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode() + b"\0" + manifest_bytes
    return hashlib.sha256(payload).hexdigest()
