"""What happens when a participant comes back: the reload policy as a plain function.

Two ways back exist. ``reload``: the same browser loads the trial page again (its cookie
still holds the token). ``start_link``: the same external id (e.g. ``PROLIFIC_PID``) comes
through the start link again, maybe from another browser.

Rules, in order:

1. ``recruitment.on_return: refuse`` refuses every start-link return.
2. A finished participant is resumed: they see the end page and completion again, nothing
   is re-counted.
3. A participation that ended (timed out, declined, refused, restarted) is refused.
4. Before any trial was shown nothing has been seen yet, so the participant is resumed.
5. Otherwise ``reload_policy`` decides: ``resume`` (continue at the current trial),
   ``restart`` (a new attempt with a fresh schedule, see ``restart_participant``) or
   ``refuse`` (on a reload the attempt ends with status ``refused``; at the start link
   the request is refused and the running attempt is left alone, so a double-clicked
   start button cannot end a participation).
"""

from __future__ import annotations

from typing import Literal

from ..config_schema import ExperimentConfig

__all__ = ["return_action", "Action"]

Action = Literal["resume", "restart", "refuse"]


def return_action(cfg: ExperimentConfig, status: str, trial_shown: bool,
                  via: Literal["reload", "start_link"]) -> Action:
    """The action for a participant with ``status`` who comes back ``via`` a reload or the start link."""
    if via == "start_link" and cfg.recruitment.on_return == "refuse":
        return "refuse"
    if status == "finished":
        return "resume"
    if status != "started":
        return "refuse"
    if not trial_shown:
        return "resume"
    return cfg.reload_policy
