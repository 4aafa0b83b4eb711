"""Recruitment platforms: which URL parameters are recorded, who the participant is, how they finish.

Prolific: ``PROLIFIC_PID`` (the external id), ``STUDY_ID`` and ``SESSION_ID`` are recorded;
finishing sends the participant to ``completion_url`` (or Prolific's URL built from
``completion_code``). MTurk external question: ``workerId`` is the external id,
``assignmentId``, ``hitId`` and ``turkSubmitTo`` are recorded; the HIT preview
(``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE``) shows no trials and cannot start; finishing
is a form POST of ``assignmentId`` to ``turkSubmitTo + /mturk/externalSubmit``. SONA: the
id parameter (``id`` unless ``id_param`` names another). Anonymous links record nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional
from urllib.parse import quote, urlsplit

from ..config_schema import ExperimentConfig
from ..errors import BadRequest

__all__ = ["MTURK_PREVIEW", "Completion", "recorded_params", "external_id_of", "is_mturk_preview",
           "check_startable", "completion_for", "mturk_submit_url"]

MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MAX_PARAM_LENGTH = 200


@dataclass(frozen=True)
class Completion:
    """How a finished participant gets back to the platform."""

    url: Optional[str] = None  # a link to follow (Prolific, SONA, any URL)
    code: Optional[str] = None  # a code to show (and to paste where a platform asks for one)
    form_action: Optional[str] = None  # MTurk: POST ``form_fields`` here
    form_fields: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        form = {"action": self.form_action, "fields": self.form_fields} if self.form_action else None
        return {"completion_url": self.url, "completion_code": self.code, "completion_form": form}


def recorded_params(cfg: ExperimentConfig, args: Mapping[str, str]) -> dict[str, str]:
    """The recruitment parameters of ``args`` that the config records (others are dropped)."""
    allowed = cfg.recruitment.params_to_record()
    return {k: str(v)[:MAX_PARAM_LENGTH] for k, v in args.items() if k in allowed and v}


def external_id_of(cfg: ExperimentConfig, params: Mapping[str, str]) -> Optional[str]:
    """The participant's platform id (e.g. ``PROLIFIC_PID``), or None for anonymous links."""
    name = cfg.recruitment.external_id_param()
    value = params.get(name) if name else None
    return value or None


def is_mturk_preview(cfg: ExperimentConfig, params: Mapping[str, str]) -> bool:
    """An MTurk HIT preview: the worker has not accepted the HIT yet."""
    return cfg.recruitment.platform == "mturk" and params.get("assignmentId") == MTURK_PREVIEW


def check_startable(cfg: ExperimentConfig, params: Mapping[str, str]) -> None:
    """Refuse a start the platform would not allow (an MTurk preview), naming the parameter."""
    if is_mturk_preview(cfg, params):
        raise BadRequest("assignmentId: this is the HIT preview; accept the HIT to start", code="mturk_preview")


def mturk_submit_url(turk_submit_to: Optional[str]) -> Optional[str]:
    """``turkSubmitTo + /mturk/externalSubmit`` when ``turkSubmitTo`` is an https mturk.com host."""
    if not turk_submit_to:
        return None
    parts = urlsplit(turk_submit_to)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not (host == "mturk.com" or host.endswith(".mturk.com")):
        return None
    return f"https://{host}/mturk/externalSubmit"


def _fill(template: str, code: Optional[str], external_id: Optional[str]) -> str:
    return (template.replace("{completion_code}", quote(code or "", safe=""))
            .replace("{external_id}", quote(external_id or "", safe="")))


def completion_for(cfg: ExperimentConfig, external_id: Optional[str], params: Mapping[str, str],
                   participant_id: str) -> Completion:
    """Where a finished participant goes; ``{completion_code}`` and ``{external_id}`` fill in URLs."""
    rec = cfg.recruitment
    code = rec.completion_code
    if rec.platform == "mturk":
        action = mturk_submit_url(params.get("turkSubmitTo"))
        assignment = params.get("assignmentId")
        if action and assignment and assignment != MTURK_PREVIEW:
            fields = {"assignmentId": assignment, "participant": participant_id}
            if code:
                fields["completion_code"] = code
            return Completion(code=code, form_action=action, form_fields=fields)
        return Completion(code=code)
    url = None
    if rec.completion_url:
        url = _fill(rec.completion_url, code, external_id)
    elif rec.platform == "prolific" and code:
        url = f"https://app.prolific.com/submissions/complete?cc={quote(code, safe='')}"
    return Completion(url=url, code=code)
