"""What every CLI module shares: one-line failures."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, no traceback; exit 2 for usage or input errors unless told."""
    click.echo(f"curate: {message}", err=True)
    sys.exit(code)
