"""The ``interp-study`` console command.

Each package contributes its own click commands in ``<package>/cli.py``; they are imported
lazily so that ``interp-study --help`` is fast and the server never imports torch.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> (module, attribute, short help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("study_server.cli", "serve", "Start the study server (upgrades the schema first)."),
    "db": ("study_server.cli", "db", "Database schema commands."),
    "experiment": ("study_server.cli", "experiment", "Register and list experiments."),
    "export": ("study_server.cli", "export", "Export one row per trial as CSV or Parquet."),
    "admin": ("study_server.cli", "admin", "Researcher accounts."),
    "stimuli": ("stimuli_builder.cli", "stimuli", "Build stimulus sets from a model."),
    "analyze": ("analysis.cli", "analyze", "Analyse an export and write a report."),
    "demo": ("interp_study.demo", "demo", "Build the demo world and serve a demo study."),
    "bots": ("interp_study.bots", "bots", "Run simulated participants over the HTTP API."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module_name, attr, _ = _COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in ("torch", "torchvision"):
                hint = "Install the 'stimuli' extra: pip install -e '.[stimuli]'."
            else:
                hint = "Reinstall the project: pip install -e '.[stimuli,dev]'."
            raise click.ClickException(f"'{cmd_name}' needs a module that is not installed ({exc.name}). {hint}") from exc
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="interp-study")
def main() -> None:
    """interp-study: human-subject evaluation of interpretability methods."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
