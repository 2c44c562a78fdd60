"""`python -m curate` is the `curate` command."""

from curate.cli import entry

entry()
