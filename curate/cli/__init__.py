"""The `curate` command line. Subcommands live in modules listed in COMMAND_MODULES."""

from __future__ import annotations

import importlib

import click

from curate import __version__

# Each module defines a `register(group)` function that adds its commands.
COMMAND_MODULES = [
    "curate.cli.corpus",  # run, log, show, verify, export, config
    "curate.cli.rules",  # rules list, rules test, review
    "curate.cli.report",  # report, diff
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
def main() -> None:
    """curate: turn scraped Chinese text into a clean, versioned corpus with a diff report."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(main)
